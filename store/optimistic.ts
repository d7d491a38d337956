/**
 * The optimistic step: "load, compute the gradient on the loaded parameters, step, save if the
 * version is still current", retried on a conflict.
 *
 * @module
 */
import {
  dispose,
  type LoadOptions,
  type Optimizer,
  type OptimizerState,
  type Params,
  saveState,
  step,
} from "../mod.ts";
import {
  checkCount,
  checkFunctionOption,
  checkMeta,
  checkModelOptions,
  checkOptimizerOption,
  checkOptionsObject,
  checkRequestId,
  checkStore,
  checkTrainingStore,
  optionError,
} from "./_checks.ts";
import { checkGradientCall } from "./_gradient.ts";
import {
  answered,
  type Calls,
  checkLoaded,
  checkSaved,
  MIN_CALL_MS,
  put,
  rejectingThrows,
} from "./_store_calls.ts";
import { newState, storedState } from "./_model.ts";
import type { StoredCheckpoint, VersionedCheckpointStore } from "./contract.ts";
import { CheckpointConflictError, ContributionRefusedError } from "./errors.ts";
import { deadlineIn, sleep } from "./_time.ts";
import { monotonic } from "./_lease.ts";
import { takeTurn } from "./_turns.ts";
import type { TrainingStore } from "./training.ts";

/**
 * Options of {@linkcode optimisticStep}.
 *
 * @example
 * ```ts
 * import { radam } from "@optim/radam";
 * import type { OptimisticStepOptions } from "@optim/radam/store";
 *
 * const options: OptimisticStepOptions<number> = {
 *   optimizer: radam({ lr: 0.01 }),
 *   init: () => ({ w: new Float32Array(3) }),
 *   gradient(state) {
 *     state.grads.w.set(state.params.w.map((w) => w - 1)); // ½‖w − 1‖²
 *     return 0;
 *   },
 *   timeoutMs: 10_000,
 * };
 * ```
 */
export interface OptimisticStepOptions<R> {
  /**
   * The optimizer of a new state, and the one a stored checkpoint must be of (by name). A
   * stored checkpoint resumes with its own hyperparameters and training-loop options, a
   * constant lr included (as PyTorch's `load_state_dict` restores them; `loadOptions.lr`
   * replaces it; the others, `groups` and `clipGradNorm` among them, are not compared with the
   * optimizer's and cannot change on resume), and with the optimizer's learning-rate schedule
   * when it has one (a checkpoint cannot hold a function; the optimizer's constant lr where the
   * checkpoint was saved with a schedule). How the state is held and runs is the optimizer's:
   * its `states` (a checkpoint of another moments' format is converted, as
   * `loadState({ states })` converts it), `backend`, `threads` and `threadThreshold`, unless
   * `loadOptions` gives them.
   */
  optimizer: Optimizer;
  /**
   * The initial parameters, for when the store holds no checkpoint yet. Without `tensors`, the
   * names of its tensors are also those a stored checkpoint must have: it is called once per
   * store object to learn them (give `tensors` to avoid the call, e.g. when it fetches
   * weights; called again before a refusal where the names were learned from another
   * `init`), and a checkpoint of other names is refused with a CheckpointError naming the
   * first that differs.
   */
  init: () => Params | Promise<Params>;
  /**
   * Writes the gradient at `state.params` (the loaded parameters) into `state.grads`, and
   * returns what the caller wants back (e.g. the loss). Called once per attempt, on that
   * attempt's state; `meta` is the metadata stored with the loaded checkpoint. What it throws
   * ends the call, with nothing saved. A gradient returned instead of written (a record of the
   * state's tensors, while `state.grads` is still all zeros), or a state that `gradient` steps
   * or disposes itself, is refused with a TypeError, nothing saved.
   */
  gradient: (state: OptimizerState, meta: string | undefined) => R | Promise<R>;
  /**
   * The metadata to save with the new checkpoint, from that of the loaded one (undefined for
   * a new state) and the new state's step; default: none.
   */
  meta?: (previous: string | undefined, step: number) => string | undefined;
  /**
   * The tensors a checkpoint must have: name → number of values. A stored checkpoint with
   * others (of another model) is refused with a CheckpointError naming the store; parameters
   * from `init` with others, with a RangeError (nothing saved).
   */
  tensors?: Readonly<Record<string, number>>;
  /**
   * Options of `loadState` for a stored checkpoint (`lr`, `states`, `backend`, `threads`, …):
   * what they give wins over the optimizer's (see `optimizer`).
   */
  loadOptions?: LoadOptions;
  /**
   * The request's id: an idempotency key (1 to 64 characters of text: a lone surrogate is a
   * TypeError). Sent again, it is not applied again: the answer is a
   * {@linkcode DuplicateStep} naming the step that applied it. The id
   * is recorded atomically with the step; it needs a store that keeps the `TrainingStore`
   * contract (`kvCheckpointStore`, `memoryCheckpointStore`). A contribution of the
   * data-parallel mode stored under this id and not yet folded is waited for, within the time
   * budget; then the step rejects with an Error that says it may yet be applied. Default: none.
   */
  id?: string;
  /**
   * How long to keep trying, in ms, before giving up with a
   * {@linkcode CheckpointConflictError}: the time budget (default 30 000). Attempts past it
   * are not started. A database that does not answer holds no step longer: a call of the store
   * (the load, the id's record, the save) that takes longer than `timeoutMs` (or 1 s, when
   * longer) is taken as hung, and the step rejects with an Error that says whether the update
   * may yet be applied (then, with an `id`, send it again with the same id to learn its
   * outcome: a {@linkcode DuplicateStep} if it was applied).
   */
  timeoutMs?: number;
  /**
   * Whether this process's attempts on the same store object take turns (default true): two
   * attempts of one process from the same version would conflict, one of them for nothing, so
   * each waits for the one before it (within the time budget); conflicts then come only from
   * other processes. Share one store object between the requests of a process
   * (`kvCheckpointStore` returns the same object for the same database, prefix and options).
   */
  serialize?: boolean;
  /** The most attempts, whatever the time; default unbounded (the time budget ends them). */
  maxAttempts?: number;
  /**
   * Backoff before attempt n + 1 after n refused ones: a random wait, uniform in [0,
   * min(max(maxBackoffMs, 16d), max(backoffMs, d) · 2^(n−1))] ms, where d is how long the
   * refused attempt took (so that a large model backs off in units of its own step); defaults
   * 2 and 1000.
   */
  backoffMs?: number;
  /** See `backoffMs`. */
  maxBackoffMs?: number;
}

/**
 * What {@linkcode optimisticStep} answers for a request id that a step applied already: that
 * step, and nothing applied now.
 *
 * @example
 * ```ts
 * import type { DuplicateStep } from "@optim/radam/store";
 *
 * const describe = (d: DuplicateStep) => `${d.id} was applied by step ${d.step}`;
 * ```
 */
export interface DuplicateStep {
  /** True: nothing was applied now. */
  readonly duplicate: true;
  /** The request id. */
  readonly id: string;
  /** The step that applied it. */
  readonly step: number;
}

/**
 * What {@linkcode optimisticStep} returns: the value of `gradient`, the new state (still
 * usable; dispose it if it runs on threads), the checkpoint saved and its version.
 *
 * @example
 * ```ts
 * import type { OptimisticStepResult } from "@optim/radam/store";
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
  /** The checkpoint saved (`saveState`'s bytes, over an `ArrayBuffer` of their own). */
  readonly checkpoint: Uint8Array<ArrayBuffer>;
  /** The metadata saved with it. */
  readonly meta: string | undefined;
  /** Attempts it took (1 when no other writer came first). */
  readonly attempts: number;
  /** False: this call applied the update (see {@linkcode DuplicateStep}). */
  readonly duplicate: false;
}

/** The names of the options (each one of the interface's, and every one). */
const OPTIONS = Object.keys(
  {
    optimizer: true,
    init: true,
    gradient: true,
    meta: true,
    tensors: true,
    loadOptions: true,
    id: true,
    timeoutMs: true,
    serialize: true,
    maxAttempts: true,
    backoffMs: true,
    maxBackoffMs: true,
  } satisfies Record<keyof OptimisticStepOptions<unknown>, true>,
);

/** The options, checked, with their defaults. */
function checkOptions<R>(store: VersionedCheckpointStore, options: OptimisticStepOptions<R>) {
  checkStore(store, "optimisticStep");
  checkOptionsObject(options, "optimisticStep", OPTIONS);
  const { optimizer, init, gradient, id } = options;
  checkOptimizerOption(optimizer);
  checkFunctionOption("init", init, true);
  checkFunctionOption("gradient", gradient, true);
  checkFunctionOption("meta", options.meta, false);
  if (id !== undefined) {
    checkRequestId(id, "Option id");
    checkTrainingStore(store, "Option id");
  }
  checkModelOptions(options, "optimisticStep");
  if (options.serialize !== undefined && typeof options.serialize !== "boolean") {
    throw optionError("serialize", "a boolean", options.serialize, false);
  }
  return {
    serialize: options.serialize ?? true,
    maxAttempts: checkCount("maxAttempts", options.maxAttempts ?? Infinity, 1, true, true),
    timeoutMs: checkCount("timeoutMs", options.timeoutMs ?? 30_000, 0, false, true),
    backoff: checkCount("backoffMs", options.backoffMs ?? 2, 0, false),
    maxBackoff: checkCount("maxBackoffMs", options.maxBackoffMs ?? 1000, 0, false),
  };
}

/** The state of a loaded checkpoint (or a new one), checked against the model. */
function stateOf<R>(
  store: VersionedCheckpointStore,
  stored: StoredCheckpoint | null,
  options: OptimisticStepOptions<R>,
): Promise<OptimizerState> {
  if (stored === null) return newState(options, store);
  return storedState(stored.bytes, options, store);
}

/**
 * What the store knows of the request `id`: a duplicate's answer, or null when it is unknown
 * (or settled as not applied, which throws). A contribution of the data-parallel mode with
 * this id that is still pending is waited for, until `deadline`: then an Error says that it may
 * yet be applied.
 */
async function known(
  store: TrainingStore,
  id: string,
  deadline: number,
  calls: Calls,
): Promise<DuplicateStep | null> {
  for (let n = 1;; n++) {
    const record = await answered(calls, store.request(id), false);
    if (record === null) return null;
    if (record.state === "applied") return { duplicate: true, id, step: record.step };
    if (record.state === "refused") {
      throw new ContributionRefusedError(id, record.step, record.reason);
    }
    if (monotonic() > deadline) {
      // Not a conflict: it was stored, and a fold may yet apply it.
      throw new Error(
        `Request ${JSON.stringify(id)} is a contribution of the data-parallel mode that ` +
          `${store.name} holds, not applied or refused within timeoutMs; it may yet be applied: ` +
          "send it again, with the same id, to learn its outcome",
      );
    }
    await sleep(Math.min(250, 2 ** n));
  }
}

/**
 * One attempt: load, compute, step, save. The result, or null when another writer came first
 * (the attempt's state then disposed).
 */
async function attempt<R>(
  store: VersionedCheckpointStore,
  options: OptimisticStepOptions<R>,
  n: number,
  deadline: number,
  calls: Calls,
): Promise<OptimisticStepResult<R> | DuplicateStep | null> {
  const stored = checkLoaded(calls.store, await answered(calls, store.load(), false));
  // Read after the load: an id applied since would have moved the version loaded.
  if (options.id !== undefined) {
    const duplicate = await known(store as TrainingStore, options.id, deadline, calls);
    if (duplicate !== null) return duplicate;
  }
  let state = await stateOf(store, stored, options);
  let saved = false;
  try {
    const base = state.step;
    const result = await options.gradient(state, stored?.meta);
    checkGradientCall(result, state);
    state = step(state);
    const checkpoint = await saveState(state);
    const meta = options.meta?.(stored?.meta, state.step);
    checkMeta(meta); // refused before the save: a save's failure says the update may be saved
    const request = options.id === undefined ? null : { id: options.id, base };
    const saving = put(store, checkpoint, stored, meta, state, request);
    const version = await answered(calls, saving, true);
    checkSaved(calls, store, version);
    if (version === null) return null;
    saved = true;
    const s = state;
    return {
      result,
      state: s,
      step: s.step,
      version,
      checkpoint,
      meta,
      attempts: n,
      duplicate: false,
    };
  } finally {
    // A refused or failed attempt's state is dropped (its workers, if any, stopped).
    if (!saved) dispose(state);
  }
}

/**
 * One training step on a checkpoint that concurrent writers share, without ever losing an
 * update: load the current checkpoint and its version (or start from `init` when there is
 * none), call `gradient` on the loaded parameters, step, and save only if that version is still
 * current. When another writer saved first, nothing of this attempt is kept: after a jittered
 * exponential backoff it starts again from the new checkpoint, until the time budget
 * `timeoutMs` (or `maxAttempts`) runs out, then throws a {@linkcode CheckpointConflictError}.
 * The attempts of one process on one store take turns (option `serialize`), so that they do
 * not waste each other's work.
 * Each update is thus applied exactly once, to the state it was computed on, or not at all.
 * With an `id`, a request sent again is not applied again (see {@linkcode DuplicateStep}). (A
 * step the optimizer skips for a non-finite gradient, with `nonFinite: "skip"`, is saved as
 * such: the step count stays, `skippedSteps` grows.)
 *
 * Bad stored data (see the store), or a checkpoint of another optimizer or (with `tensors`)
 * other tensors, throws a CheckpointError naming the store; nothing is saved.
 *
 * @example
 * ```ts
 * import { radam } from "@optim/radam";
 * import { memoryCheckpointStore, optimisticStep } from "@optim/radam/store";
 * import assert from "node:assert/strict";
 *
 * const store = memoryCheckpointStore();
 * const options = {
 *   optimizer: radam(),
 *   init: () => ({ w: new Float32Array(2) }),
 *   gradient: (state: { grads: Record<string, Float32Array> }) => void state.grads.w.fill(1),
 * };
 * const r = await optimisticStep(store, options);
 * assert.equal(r.step, 1);
 * // With a request id, sent twice: applied once.
 * const first = await optimisticStep(store, { ...options, id: "req-7" });
 * const again = await optimisticStep(store, { ...options, id: "req-7" });
 * assert.deepEqual([first.step, again.duplicate, again.step], [2, true, 2]);
 * ```
 */
export function optimisticStep<R>(
  store: VersionedCheckpointStore,
  options: OptimisticStepOptions<R> & { id?: undefined },
): Promise<OptimisticStepResult<R>>;
/** With a request id: the step it made, or the step that applied it before. */
export function optimisticStep<R>(
  store: VersionedCheckpointStore,
  options: OptimisticStepOptions<R>,
): Promise<OptimisticStepResult<R> | DuplicateStep>;
export async function optimisticStep<R>(
  store: VersionedCheckpointStore,
  options: OptimisticStepOptions<R>,
): Promise<OptimisticStepResult<R> | DuplicateStep> {
  const { serialize, maxAttempts, timeoutMs, backoff, maxBackoff } = checkOptions(store, options);
  store = rejectingThrows(store);
  // Timed on the monotonic clock: a wall clock set back (or forward) meanwhile neither stretches
  // nor cuts the time budget.
  const start = monotonic();
  const deadline = deadlineIn(timeoutMs);
  const calls: Calls = {
    store: store.name,
    id: options.id,
    limitMs: Math.max(timeoutMs, MIN_CALL_MS),
    timeoutMs,
  };
  let took = 0;
  for (let n = 1;; n++) {
    if (n > 1) {
      const cap = Math.max(maxBackoff, 16 * took);
      const wait = Math.random() * Math.min(cap, Math.max(backoff, took) * 2 ** (n - 2));
      if (n > maxAttempts || monotonic() + wait > deadline) {
        throw new CheckpointConflictError(store.name, n - 1, monotonic() - start);
      }
      await sleep(wait);
    }
    const end = serialize ? await takeTurn(store, deadline) : () => {};
    if (end === null) throw new CheckpointConflictError(store.name, n - 1, monotonic() - start);
    const begun = monotonic();
    try {
      const done = await attempt(store, options, n, deadline, calls);
      if (done !== null) return done;
    } finally {
      end();
    }
    took = monotonic() - begun;
  }
}
