/**
 * The optimistic step: "load, compute the gradient on the loaded parameters, step, save if the
 * version is still current", retried on a conflict.
 *
 * @module
 */
import {
  CheckpointError,
  dispose,
  type LoadOptions,
  loadState,
  type Optimizer,
  type OptimizerState,
  type Params,
  saveState,
  step,
} from "../mod.ts";
import { checkCount, checkOptionsObject } from "./_checks.ts";
import { checkModel } from "./_model.ts";
import type { VersionedCheckpointStore } from "./contract.ts";
import { CheckpointConflictError } from "./errors.ts";

/**
 * Options of {@linkcode optimisticStep}.
 *
 * @example
 * ```ts
 * import { radam } from "../mod.ts";
 * import type { OptimisticStepOptions } from "../store.ts";
 *
 * const options: OptimisticStepOptions<number> = {
 *   optimizer: radam({ lr: 0.01 }),
 *   init: () => ({ w: new Float32Array(3) }),
 *   gradient(state) {
 *     state.grads.w.set(state.params.w.map((w) => w - 1)); // ½‖w − 1‖²
 *     return 0;
 *   },
 *   maxAttempts: 20,
 * };
 * ```
 */
export interface OptimisticStepOptions<R> {
  /**
   * The optimizer of a new state, and the one a stored checkpoint must be of (by name); a
   * stored checkpoint resumes with its own hyperparameters (`loadOptions.lr` replaces its lr).
   */
  optimizer: Optimizer;
  /** The initial parameters, called only when the store holds no checkpoint yet. */
  init: () => Params | Promise<Params>;
  /**
   * Writes the gradient at `state.params` (the loaded parameters) into `state.grads`, and
   * returns what the caller wants back (e.g. the loss). Called once per attempt, on that
   * attempt's state; `meta` is the metadata stored with the loaded checkpoint. What it throws
   * ends the call, with nothing saved.
   */
  gradient: (state: OptimizerState, meta: string | undefined) => R | Promise<R>;
  /**
   * The metadata to save with the new checkpoint, from that of the loaded one (undefined for
   * a new state) and the new state's step; default: none.
   */
  meta?: (previous: string | undefined, step: number) => string | undefined;
  /**
   * The tensors a stored checkpoint must have: name → number of values. A checkpoint with
   * others (of another model) is refused with a CheckpointError naming the store.
   */
  tensors?: Readonly<Record<string, number>>;
  /** Options of `loadState` (backend, schedule, threads). */
  loadOptions?: LoadOptions;
  /** Attempts before giving up with a {@linkcode CheckpointConflictError}; default 10. */
  maxAttempts?: number;
  /**
   * Backoff before retry n (1-based): a random wait, uniform in [0, min(maxBackoffMs,
   * backoffMs · 2^(n−1))] ms; defaults 2 and 250.
   */
  backoffMs?: number;
  /** See `backoffMs`. */
  maxBackoffMs?: number;
}

/**
 * What {@linkcode optimisticStep} returns: the value of `gradient`, the new state (still
 * usable; dispose it if it runs on threads), the checkpoint saved and its version.
 *
 * @example
 * ```ts
 * import type { OptimisticStepResult } from "../store.ts";
 *
 * function report(r: OptimisticStepResult<number>): string {
 *   return `step ${r.step} (loss ${r.result}) saved as ${r.version} after ${r.attempts} tries`;
 * }
 * ```
 */
export interface OptimisticStepResult<R> {
  /** What `gradient` returned on the attempt that was saved. */
  readonly result: R;
  /** The state after the step; its bytes are `checkpoint`. */
  readonly state: OptimizerState;
  /** `state.step`: the step this update became. */
  readonly step: number;
  /** The version the checkpoint was saved under. */
  readonly version: string;
  /** The checkpoint saved. */
  readonly checkpoint: Uint8Array;
  /** The metadata saved with it. */
  readonly meta: string | undefined;
  /** Attempts it took (1 when no other writer came first). */
  readonly attempts: number;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * One training step on a checkpoint that concurrent writers share, without ever losing an
 * update: load the current checkpoint and its version (or start from `init` when there is
 * none), call `gradient` on the loaded parameters, step, and save only if that version is still
 * current. When another writer saved first, nothing of this attempt is kept: after a jittered
 * exponential backoff it starts again from the new checkpoint, at most `maxAttempts` times,
 * then throws a {@linkcode CheckpointConflictError}. Each update is thus applied exactly once,
 * to the state it was computed on, or not at all. (A step the optimizer skips for a non-finite
 * gradient, with `nonFinite: "skip"`, is saved as such: the step count stays, `skippedSteps`
 * grows.)
 *
 * Bad stored data (see the store), or a checkpoint of another optimizer or (with `tensors`)
 * other tensors, throws a CheckpointError naming the store; nothing is saved.
 *
 * @example
 * ```ts
 * import { radam } from "../mod.ts";
 * import { memoryCheckpointStore, optimisticStep } from "../store.ts";
 *
 * const store = memoryCheckpointStore();
 * const r = await optimisticStep(store, {
 *   optimizer: radam(),
 *   init: () => ({ w: new Float32Array(2) }),
 *   gradient: (state) => void state.grads.w.fill(1),
 * });
 * console.log(r.step); // 1
 * ```
 */
export async function optimisticStep<R>(
  store: VersionedCheckpointStore,
  options: OptimisticStepOptions<R>,
): Promise<OptimisticStepResult<R>> {
  checkOptionsObject(options, "optimisticStep");
  const { optimizer, init, gradient } = options;
  if (typeof optimizer !== "object" || optimizer === null || typeof optimizer.init !== "function") {
    throw new TypeError("Option optimizer must be an optimizer, e.g. radam()");
  }
  if (typeof init !== "function") throw new TypeError("Option init must be a function");
  if (typeof gradient !== "function") throw new TypeError("Option gradient must be a function");
  if (options.meta !== undefined && typeof options.meta !== "function") {
    throw new TypeError("Option meta must be a function");
  }
  const maxAttempts = checkCount("maxAttempts", options.maxAttempts ?? 10, 1, true);
  const backoff = checkCount("backoffMs", options.backoffMs ?? 2, 0, false);
  const maxBackoff = checkCount("maxBackoffMs", options.maxBackoffMs ?? 250, 0, false);

  for (let attempt = 1; attempt <= maxAttempts; attempt++) {
    if (attempt > 1) {
      await sleep(Math.random() * Math.min(maxBackoff, backoff * 2 ** (attempt - 2)));
    }
    const stored = await store.load();
    let state: OptimizerState;
    if (stored === null) {
      state = await optimizer.init(await init());
    } else {
      try {
        state = await loadState(stored.bytes, options.loadOptions);
      } catch (error) {
        if (!(error instanceof CheckpointError)) throw error;
        throw new CheckpointError(`Checkpoint ${store.name}: ${error.message}`);
      }
    }
    let saved = false;
    try {
      if (stored !== null) checkModel(state, options, store.name);
      const result = await gradient(state, stored?.meta);
      state = step(state);
      const checkpoint = await saveState(state);
      const meta = options.meta?.(stored?.meta, state.step);
      const version = await store.save(checkpoint, stored?.version ?? null, meta);
      if (version !== null) {
        saved = true;
        return { result, state, step: state.step, version, checkpoint, meta, attempts: attempt };
      }
    } finally {
      // A refused or failed attempt's state is dropped (its workers, if any, stopped).
      if (!saved) dispose(state);
    }
  }
  throw new CheckpointConflictError(store.name, maxAttempts);
}
