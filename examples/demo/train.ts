/**
 * One training run: a fresh network, one optimizer at one learning rate and seed, trained by
 * minibatch gradient descent through the library's public API (`init`, `step`, `readParams`),
 * then measured on the whole training set and on the held-out test set.
 *
 * @module
 */
import { readParams, step } from "../../mod.ts";
import type { OptimizerState, Params } from "../../mod.ts";
import type { DigitSplit } from "./mnist_data.ts";
import {
  evaluate,
  initMlp,
  lossAndGradient,
  mlpScratch,
  type MlpShape,
  tensorShapes,
} from "./mlp.ts";
import type { OptimizerEntry } from "./optimizer_table.ts";
import { seededRandom, shuffleInPlace } from "./random.ts";

/** How a run trains. */
export interface TrainOptions {
  /** Peak learning rate. */
  readonly lr: number;
  /** Seed of the initial weights and of the minibatch order. */
  readonly seed: number;
  /** Passes over the training set. */
  readonly epochs: number;
  /** Samples per minibatch (the last, short one of an epoch is dropped). */
  readonly batchSize: number;
  /** Backend requested from the library. */
  readonly backend: string;
  /** Steps of linear warmup (for the rows that warm up). */
  readonly warmupSteps: number;
  /** Steps averaged into one point of the loss curve. */
  readonly stepsPerPoint: number;
}

/** What one run measured. */
export interface RunResult {
  readonly optimizer: string;
  readonly lr: number;
  readonly seed: number;
  /** Optimizer steps taken (fewer than planned if the loss stopped being finite). */
  readonly steps: number;
  /** Mean minibatch training loss over each `stepsPerPoint` steps. */
  readonly curve: number[];
  /** Cross-entropy on the whole training set after training (NaN if it diverged). */
  readonly trainLoss: number;
  /** Fraction of the test set classified correctly after training. */
  readonly testAccuracy: number;
  /** Whether the training loss stopped being a finite number. */
  readonly diverged: boolean;
}

/** Optimizer steps a run of these options takes on `trainCount` samples. */
export function plannedSteps(
  trainCount: number,
  options: Pick<TrainOptions, "epochs" | "batchSize">,
): number {
  return Math.floor(trainCount / options.batchSize) * options.epochs;
}

function initialParams(entry: OptimizerEntry, shape: MlpShape, seed: number): Params {
  const tensors: Record<string, Float32Array> = { ...initMlp(shape, seededRandom(seed)) };
  if (!entry.shapedParams) return tensors;
  // Ranger's gradient centralization needs to know which tensors are matrices.
  const shapes = tensorShapes(shape) as Record<string, number[]>;
  const shaped: Record<string, { data: Float32Array; shape: number[] }> = {};
  for (const name of Object.keys(tensors)) {
    shaped[name] = { data: tensors[name], shape: shapes[name] };
  }
  return shaped as unknown as Params;
}

/**
 * Trains a fresh `shape` network on `data.train` with `entry`'s optimizer and measures it.
 * `onSteps(n)` is told every few steps how many more were taken (for a progress bar).
 */
export async function trainRun(
  entry: OptimizerEntry,
  data: DigitSplit,
  shape: MlpShape,
  options: TrainOptions,
  onSteps: (steps: number) => void = () => {},
): Promise<RunResult> {
  if (!entry.make) throw new Error(`${entry.label} is not available: ${entry.missing}`);
  const optimizer = entry.make(options);
  let state: OptimizerState = await optimizer.init(initialParams(entry, shape, options.seed));
  const random = seededRandom(options.seed * 7919 + 1);
  const order = Uint32Array.from({ length: data.train.count }, (_, i) => i);
  const scratch = mlpScratch(shape);
  const batches = Math.floor(data.train.count / options.batchSize);
  const total = batches * options.epochs;
  const curve: number[] = [];
  let pointSum = 0, pointSteps = 0, steps = 0, reported = 0;
  let diverged = false;
  training: for (let epoch = 0; epoch < options.epochs; epoch++) {
    shuffleInPlace(order, random);
    for (let b = 0; b < batches; b++) {
      const start = b * options.batchSize;
      // the gradient goes straight into the optimizer's own slots: step(state) copies nothing
      const loss = lossAndGradient(
        state.params,
        state.grads,
        data.train,
        order,
        start,
        start + options.batchSize,
        scratch,
      );
      if (!Number.isFinite(loss)) {
        diverged = true;
        break training;
      }
      state = step(state);
      steps++;
      pointSum += loss;
      if (++pointSteps === options.stepsPerPoint || steps === total) {
        curve.push(pointSum / pointSteps);
        pointSum = 0;
        pointSteps = 0;
      }
      if (steps - reported >= 25) {
        onSteps(steps - reported);
        reported = steps;
      }
    }
  }
  onSteps(total - reported); // a diverged run's skipped steps count as done
  const params = await readParams(state);
  const train = evaluate(params, data.train, scratch);
  const test = evaluate(params, data.test, scratch);
  diverged ||= !Number.isFinite(train.loss);
  return {
    optimizer: entry.id,
    lr: options.lr,
    seed: options.seed,
    steps,
    curve,
    trainLoss: diverged ? NaN : train.loss,
    testAccuracy: test.accuracy,
    diverged,
  };
}
