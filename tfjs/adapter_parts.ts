/**
 * The parts of the TensorFlow.js optimizer class (optimizer.ts) and the work of its methods on
 * them: the CPU and WebGPU paths (state_paths.ts), the notes of skipped steps, the gradients
 * accumulated, the moving averages, the weights given and the state loaded; a step, the weights
 * out, the loads (`setWeights`, `loadState`) checked against steps taken meanwhile, and the end.
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs-core";
import type { Settings } from "../base/settings.ts";
import type { OptimizerState } from "../core/state.ts";
import { onWebGpu } from "./backend_choice.ts";
import type { GradItem, NamedTensor } from "./gradients.ts";
import { GivenWeights } from "./given.ts";
import type { KeptStates } from "./kept.ts";
import { StatePaths } from "./state_paths.ts";
import { SkipNotes } from "./skip_notes.ts";
import type { AdapterOptions } from "./options.ts";
import { checkpointForLoad } from "./from_checkpoint.ts";
import { Accumulator } from "./accumulate.ts";
import { checkSumsFinite } from "./accum_weights.ts";
import { WeightAverages } from "./ema.ts";
import { averagedStep } from "./ema_step.ts";
import { loadedWeights } from "./weights_in.ts";
import { besideLoaded, extrasSource, extraWeights, loadExtras } from "./checkpoint_extras.ts";
import { DISPOSED_MESSAGE } from "./_hints.ts";
import { LoadedState } from "./loaded_state.ts";
import { checkNotOtherModels } from "./_other_model.ts";

/** What the parts read and set of the optimizer they are of. */
export interface PartsHost {
  /** The settings in force. */
  readonly config: () => Settings;
  /** The optimizer's `state`. */
  readonly state: () => OptimizerState<unknown> | undefined;
  /** The optimizer's `skippedSteps`. */
  readonly skippedSteps: () => number;
  /** The optimizer's `iterations`. */
  readonly iterations: () => number;
  /** Sets tfjs's count of the steps (`iterations_`). */
  readonly setIterations: (steps: number) => void;
}

/** The parts of one optimizer, and its steps, loads and end on them. */
export class AdapterParts {
  /** The CPU and WebGPU paths, and the state kept aside (state_paths.ts). */
  readonly paths: StatePaths;
  /** The one-time warning, and the count of skipped steps never going back (skip_notes.ts). */
  readonly skips = new SkipNotes();
  /** The tensors getWeights gave, which the optimizer owns (see given.ts). */
  readonly given = new GivenWeights();
  /** The gradients summed towards the next step (option `gradientAccumulationSteps`). */
  readonly accumulator: Accumulator;
  /** The moving averages of the variables (option `ema`). */
  readonly averages: WeightAverages | undefined;
  /** What `saveState(optimizer.state)` writes beside the state: the sums and the averages. */
  readonly extras: ReturnType<typeof extrasSource>;
  /** The state `loadState` read, which `state` gives until a step makes one (loaded_state.ts). */
  readonly loaded = new LoadedState();
  /** Set by `dispose`: every later step or read of the state throws. */
  #disposed = false;
  /** Calls of `applyGradients` that stepped: a `loadState` or `setWeights` under way sees one. */
  #calls = 0;
  readonly #options: AdapterOptions;
  readonly #host: PartsHost;

  /** The parts of an optimizer of `options`, which `host` reads and sets. */
  constructor(options: AdapterOptions, host: PartsHost) {
    this.#options = options;
    this.#host = host;
    const { ema, gradientAccumulationSteps: steps } = options;
    const keeps = (name: string) => this.averages?.keeps(name) ?? false;
    this.paths = new StatePaths({ steps, averages: ema !== undefined, keeps });
    this.accumulator = new Accumulator(steps);
    this.averages = ema === undefined ? undefined : new WeightAverages(ema, () => this.checkLive());
    const finiteOnly = () => host.config().loop.nonFinite === "throw";
    this.extras = extrasSource(this.accumulator, this.averages, finiteOnly);
  }

  /** Throws a TypeError once the optimizer was disposed. */
  checkLive(): void {
    if (this.#disposed) throw new TypeError(DISPOSED_MESSAGE);
  }

  /**
   * Throws the TypeError of a disposed optimizer, then one when a step was taken since `calls` (an
   * `await` forgotten on `loadState` or `setWeights`, which would then have replaced that step's
   * moments and step count under the update it made to the variables), or while the averages are
   * swapped into the variables (ema.ts: the load would drop the training weights).
   */
  #checkLoadable(calls: number, what: string): void {
    this.checkLive();
    this.averages?.checkNotSwapped(what);
    if (this.#calls === calls) return;
    throw new TypeError(
      `A step was taken while ${what} was under way (was it awaited?); nothing was loaded: ` +
        `await optimizer.${what} before training`,
    );
  }

  /** `applyGradients` over checked gradients, `items` (at least one). */
  step(items: readonly GradItem[]): void {
    this.#checkLoaded();
    const host = this.#host;
    if (this.paths.state === undefined) checkNotOtherModels(this.paths.kept, items);
    const { strict } = this.#options;
    // (Under "throw", calls 1 to N − 1 are checked where they are read: on the GPU, the step's.)
    const finite = host.config().loop.nonFinite === "throw" && !onWebGpu(host.config());
    const run = (items: readonly GradItem[]) => {
      this.paths.step(host.config(), strict, items);
      const steps = host.state()!.step;
      host.setIterations(steps);
      this.skips.afterStep(host.skippedSteps(), this.#options.warnOnSkip);
      return steps;
    };
    const decided = (every?: number) => this.paths.gpu.decided(every);
    const step = averagedStep(this.averages, host.config(), host.iterations, run, decided);
    const count = this.accumulator.count;
    try {
      this.accumulator.run(items, this.paths.entries, strict, step, finite);
      this.#calls++;
      // (The averages loaded go at a swap to the variables of the last minimize call, if any.)
      if (this.averages !== undefined) this.averages.trained = this.accumulator.trained;
      if (this.accumulator.count > count) this.paths.tryMake(host.config(), strict, items);
    } finally {
      if (this.paths.state !== undefined) this.#endLoaded(); // (one made: the loaded ends)
      // (None made where the sums could not be saved: then neither can the loaded one be.)
      else if (this.accumulator.count > count && !this.loaded.summed()) this.#endLoaded();
    }
  }

  /**
   * `f`, a `minimize` call over `varList` (under `model.fit`, the model's trainable weights): a
   * sum loaded and given no gradient since goes only to one of them (accumulate.ts).
   */
  minimizing<T>(varList: readonly tf.Variable[] | null | undefined, f: () => T): T {
    this.accumulator.trained = varList ?? undefined;
    try {
      return f();
    } finally {
      this.accumulator.trained = undefined;
    }
  }

  /** `getWeights`: the weights, owned by the optimizer (given.ts). */
  async weights(): Promise<NamedTensor[]> {
    this.checkLive();
    this.#checkLoaded();
    const call = this.given.begin();
    const config = this.#host.config();
    // (Under "throw" the CPU backends checked each call's sums as it summed them: no readback.)
    const finite = config.loop.nonFinite === "throw" && !this.accumulator.checked;
    const extra = extraWeights(this.accumulator, this.averages);
    const weights = await this.paths.readWeights(config, extra, () => this.checkLive());
    if (finite) await checkSumsFinite(weights); // (refused: they are disposed)
    this.given.own(call, weights);
    return weights;
  }

  /** `setWeights`: the state replaced by `weightValues`. */
  async loadWeights(weightValues: NamedTensor[]): Promise<void> {
    const calls = this.#calls, what = "setWeights(weights)";
    this.#checkLoadable(calls, what);
    const { steps, kept, sums, averages } = await loadedWeights(
      this.#host.config(),
      weightValues,
      this.accumulator.steps,
      () => this.#checkLoadable(calls, what),
    );
    // Nothing has changed so far; now replace the state (the skipped steps are the optimizer's
    // own count: the weights do not carry one) and the gradients accumulated.
    this.#replaceState(kept, steps, this.#host.skippedSteps());
    if (sums !== undefined) this.accumulator.load(sums);
    if (this.averages === undefined) tf.dispose([...averages.values()]);
    else this.averages.load(averages);
  }

  /** `loadState`: the state replaced by the checkpoint `bytes`. */
  async loadCheckpoint(bytes: Uint8Array): Promise<void> {
    const calls = this.#calls, what = "loadState(bytes)";
    this.#checkLoadable(calls, what);
    const live = () => this.#checkLoadable(calls, what);
    const settled = () => this.paths.gpu.settled(); // (webgpu: every skip before it counted)
    const config = this.#host.config();
    const read = await checkpointForLoad(config, bytes, this.accumulator, live, settled);
    this.#replaceState(read.kept, read.steps, read.skipped);
    loadExtras(read.extras, this.accumulator, this.averages);
    const averaged = this.averages === undefined
      ? []
      : [...read.extras.averages].map(([name, { shape }]) => [name, shape] as const);
    const beside = () => besideLoaded(this.accumulator, averaged);
    this.loaded.keep(read.state, this.#host.config(), beside);
    if (this.loaded.state === undefined) this.#endLoaded(); // (not kept: laid out otherwise)
  }

  /**
   * Ends the state loadState read; the kept states read with it, views of its arena (so that
   * the moments are held once until a step), are copied where no step has taken them yet.
   */
  #endLoaded(): void {
    this.loaded.end();
    this.paths.kept.ownBorrowed();
  }

  /**
   * Throws a TypeError where the memory of the state loadState read, which the kept states read
   * with it are views of, was detached (its params' ArrayBuffer transferred): their moments are
   * gone (KeptStates.checkBorrowed). Only while that state lasts: a step ends it.
   */
  #checkLoaded(): void {
    if (this.loaded.state !== undefined) this.paths.kept.checkBorrowed();
  }

  /** Drops the state; keeps `kept` aside instead, with these counts. */
  #replaceState(kept: Parameters<KeptStates["replace"]>[0], steps: number, skipped: number): void {
    this.skips.replaced(this.#host.skippedSteps(), skipped);
    this.loaded.end();
    this.paths.replace(kept, steps, skipped);
    this.accumulator.clear();
    this.averages?.clear();
    this.#host.setIterations(steps);
  }

  /** `dispose`: every part released; a later step or load throws. */
  dispose(): void {
    this.#disposed = true;
    this.given.disposeAll();
    this.accumulator.clear();
    this.averages?.clear();
    this.paths.drop();
    this.loaded.end();
  }
}
