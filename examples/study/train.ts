/**
 * One run of the study: a tfjs-layers model compiled with `tfOptimizer(...)` and trained with
 * `model.fit` on the batches of its seed, then scored on the task's evaluation set. A traced run
 * also records the histograms of its step sizes over its first steps (see `step_sizes.ts`).
 *
 * @module
 */
import { readMoments } from "../../mod.ts";
import { type TfOptimizer, tfOptimizer } from "../../tfjs.ts";
import { batchSource, type Chunk, evaluationSet, lossOf, type TaskData } from "./batches.ts";
import { modelFor, type TaskName } from "./models.ts";
import { studyOptimizer } from "./optimizers.ts";
import {
  addToHistogram,
  checkAgainstChange,
  HIST_BINS,
  lrAt,
  quantiles,
  type StepCheck,
  stepSizes,
  type TracedRule,
} from "./step_sizes.ts";
import { tf, type tfl } from "./tfjs_env.ts";

/** One run: a task, an optimizer of the table, a sweep point and a seed. */
export interface Job {
  readonly task: TaskName;
  readonly optimizer: string;
  readonly lr: number;
  readonly seed: number;
  readonly steps: number;
  readonly batchSize: number;
  /** Trace the step sizes of this many first steps (0: none). */
  readonly traceSteps: number;
}

/** The step sizes of one traced step. */
export interface TraceRow {
  /** The 1-based step. */
  readonly t: number;
  /** Its learning rate. */
  readonly lr: number;
  /** Counts per log₁₀ bin (see `step_sizes.ts`). */
  readonly histogram: number[];
  /** Elements whose step was exactly 0. */
  readonly zeros: number;
  /** 10th, 50th and 90th percentiles of the sizes. */
  readonly q10: number;
  readonly median: number;
  readonly q90: number;
}

/** What a run gives back. */
export interface RunResult {
  readonly job: Job;
  /** Training loss of every step (NaN from a diverged step on). */
  readonly losses: number[];
  /** Loss (nats) and accuracy on the evaluation set at the end. */
  readonly evalLoss: number;
  readonly evalAccuracy: number;
  readonly diverged: boolean;
  /** The backend the adapter ran the update on (`optimizer.backend`). */
  readonly updateBackend: string;
  /** The tfjs backend the model ran on. */
  readonly tfjsBackend: string;
  readonly seconds: number;
  readonly trace?: { readonly rows: TraceRow[]; readonly check: StepCheck };
}

/** Steps per `model.fit` call (the batches of a call are built at once). */
const CHUNK = 50;

function tracedRule(optimizer: TfOptimizer): TracedRule {
  const { name, hyperparameters: h } = optimizer.settings as unknown as {
    name: string;
    hyperparameters: Record<string, unknown>;
  };
  if (name !== "adam" && name !== "radam") {
    throw new RangeError(`Step sizes are traced for adam and radam, not ${name}`);
  }
  return {
    kind: name,
    lr: h.lr as TracedRule["lr"],
    beta1: h.beta1 as number,
    beta2: h.beta2 as number,
    eps: h.eps as number,
    threshold: h.threshold as number | undefined,
  };
}

/** Traces the first steps: parameters before each, moments after it. */
class Tracer {
  readonly rows: TraceRow[] = [];
  readonly check: StepCheck = { compared: 0, outside: 0, worst: 0 };
  #before: Float32Array[] = [];
  constructor(
    readonly model: tfl.LayersModel,
    readonly optimizer: TfOptimizer,
    readonly limit: number,
  ) {}

  #params(): Float32Array[] {
    return this.model.trainableWeights.map((w) => w.read().dataSync() as Float32Array);
  }

  before(): void {
    if (this.rows.length < this.limit) this.#before = this.#params();
  }

  async after(): Promise<void> {
    if (this.rows.length >= this.limit || !this.optimizer.state) return;
    const rule = tracedRule(this.optimizer);
    const t = this.optimizer.state.step;
    const moments = await readMoments(this.optimizer.state) as Record<
      string,
      Record<string, Float32Array>
    >;
    const after = this.#params();
    const histogram = new Float64Array(HIST_BINS);
    const all: Float64Array[] = [];
    let zeros = 0;
    this.model.trainableWeights.forEach((w, i) => {
      const m = moments.exp_avg[w.name], v = moments.exp_avg_sq[w.name];
      if (!m || !v) throw new Error(`No moments for the variable ${w.name}`);
      const sizes = new Float64Array(m.length);
      stepSizes(rule, t, m, v, sizes);
      checkAgainstChange(sizes, this.#before[i], after[i], this.check);
      zeros += addToHistogram(sizes, histogram);
      all.push(sizes);
    });
    const flat = new Float64Array(all.reduce((n, a) => n + a.length, 0));
    let at = 0;
    for (const a of all) flat.set(a, (at += a.length) - a.length);
    const [q10, median, q90] = quantiles(flat, [0.1, 0.5, 0.9]);
    this.rows.push({
      t,
      lr: lrAt(rule.lr, t),
      histogram: [...histogram],
      zeros,
      q10,
      median,
      q90,
    });
  }
}

/** Loss and accuracy of `model` on `set` (scored 500 examples at a time). */
export function evaluate(model: tfl.LayersModel, task: TaskName, set: Chunk): [number, number] {
  const n = set.x.shape[0];
  let loss = 0, correct = 0, count = 0;
  for (let from = 0; from < n; from += 500) {
    const size = Math.min(500, n - from);
    const [l, c, k] = tf.tidy(() => {
      const x = tf.slice(set.x, from, size);
      const y = tf.slice(set.y, from, size);
      const p = model.predict(x) as tf.Tensor;
      const classes = p.shape[p.shape.length - 1]!;
      const probs = tf.reshape(p, [-1, classes]);
      const target = task === "image" ? tf.argMax(y, -1) : tf.cast(tf.reshape(y, [-1]), "int32");
      const picked = tf.sum(tf.mul(probs, tf.oneHot(target, classes)), -1);
      const nll = tf.sum(tf.neg(tf.log(tf.maximum(picked, 1e-12))));
      const hits = tf.sum(tf.cast(tf.equal(tf.argMax(probs, -1), target), "float32"));
      return [nll.dataSync()[0], hits.dataSync()[0], target.size];
    });
    loss += l;
    correct += c;
    count += k;
  }
  return [loss / count, correct / count];
}

/**
 * Runs `job` on `data` (scored on `evalSet`, `evaluationSet(data)` when not given); `onSteps(n)`
 * is told as steps are taken.
 */
export async function runJob(
  job: Job,
  data: TaskData,
  evalSet?: Chunk,
  onSteps?: (steps: number) => void,
): Promise<RunResult> {
  const started = performance.now();
  const row = studyOptimizer(job.optimizer);
  const model = modelFor(job.task, job.seed);
  const optimizer = tfOptimizer(row.make(job.lr));
  model.compile({ optimizer, loss: lossOf(job.task) });
  const source = batchSource(data, job.batchSize, job.seed);
  const tracer = job.traceSteps > 0 ? new Tracer(model, optimizer, job.traceSteps) : undefined;
  const losses: number[] = [];
  let diverged = false;
  for (let done = 0; done < job.steps && !diverged; done += CHUNK) {
    const count = Math.min(CHUNK, job.steps - done);
    const chunk = source.next(count);
    await model.fit(chunk.x, chunk.y, {
      batchSize: job.batchSize,
      epochs: 1,
      shuffle: false,
      verbose: 0,
      callbacks: {
        onBatchBegin: () => tracer?.before(),
        onBatchEnd: async (_batch, logs) => {
          const loss = logs?.loss ?? NaN;
          losses.push(loss);
          if (!Number.isFinite(loss)) {
            diverged = true;
            model.stopTraining = true;
          }
          await tracer?.after();
        },
      },
    });
    tf.dispose([chunk.x, chunk.y]);
    onSteps?.(count);
  }
  while (losses.length < job.steps) losses.push(NaN);
  const set = evalSet ?? evaluationSet(data);
  const [evalLoss, evalAccuracy] = diverged ? [NaN, NaN] : evaluate(model, job.task, set);
  if (!evalSet) tf.dispose([set.x, set.y]);
  const result: RunResult = {
    job,
    losses,
    evalLoss,
    evalAccuracy,
    diverged,
    updateBackend: optimizer.backend ?? "none",
    tfjsBackend: tf.getBackend(),
    seconds: (performance.now() - started) / 1000,
    trace: tracer ? { rows: tracer.rows, check: tracer.check } : undefined,
  };
  model.dispose();
  optimizer.dispose();
  return result;
}
