/**
 * Checkpoints shared by concurrent writers: the check-and-set contract of a versioned store,
 * an in-process store that keeps it, and the optimistic step "load, compute the gradient on the
 * loaded parameters, step, save if the version is still current", retried on a conflict.
 *
 * Runtime-agnostic (no permissions, no Deno APIs); the Deno KV store is in kv.ts. mod.ts does
 * not import this file.
 *
 * @module
 */
import { CheckpointError } from "../base/safetensors.ts";
import type { Params } from "../base/tensors.ts";
import type { LoadOptions } from "./checkpoint.ts";
import { dispose, loadState, saveState, step } from "./operations.ts";
import type { Optimizer } from "./optimizer.ts";
import type { OptimizerState } from "./state.ts";

/**
 * A checkpoint as a versioned store holds it: its bytes, the version they were saved under,
 * and the application's metadata string saved with them.
 *
 * @example
 * ```ts
 * import { memoryCheckpointStore, type StoredCheckpoint } from "../kv.ts";
 * import assert from "node:assert/strict";
 *
 * const store = memoryCheckpointStore();
 * await store.save(new Uint8Array([1, 2, 3]), null, "first");
 * const stored: StoredCheckpoint | null = await store.load();
 * assert.deepEqual(stored?.bytes, new Uint8Array([1, 2, 3]));
 * assert.equal(stored?.version, "1");
 * assert.equal(stored?.meta, "first");
 * ```
 */
export interface StoredCheckpoint {
  /** The checkpoint bytes (the caller's own copy). */
  readonly bytes: Uint8Array;
  /** The version they were saved under; pass it to `save` to replace exactly this one. */
  readonly version: string;
  /** The metadata string saved with them, if any. */
  readonly meta?: string;
}

/**
 * The contract a store of checkpoints keeps for {@linkcode optimisticStep}: `load` returns the
 * current checkpoint with its version, and `save` makes new bytes current only if the version
 * it is given is still the current one (`null`: only if the store is empty), atomically: a
 * reader sees either the old checkpoint or the new one, whole.
 *
 * @example A store that keeps one checkpoint in a variable
 * ```ts
 * import type { StoredCheckpoint, VersionedCheckpointStore } from "../kv.ts";
 *
 * let current: StoredCheckpoint | null = null;
 * let counter = 0;
 * const store: VersionedCheckpointStore = {
 *   name: "variable",
 *   load: () => Promise.resolve(current && { ...current, bytes: current.bytes.slice() }),
 *   save(bytes, expected, meta) {
 *     if ((current?.version ?? null) !== expected) return Promise.resolve(null);
 *     current = { bytes: bytes.slice(), version: String(++counter), meta };
 *     return Promise.resolve(current.version);
 *   },
 * };
 * ```
 */
export interface VersionedCheckpointStore {
  /** Says which checkpoint this is, in error messages (e.g. its database key). */
  readonly name: string;
  /** The current checkpoint, or `null` when none was saved yet. */
  load(): Promise<StoredCheckpoint | null>;
  /**
   * Makes `bytes` (and `meta`) the current checkpoint if `expected` is the current version
   * (`null`: if there is none yet) and returns the new version; returns `null`, changing
   * nothing a reader can see, if another save came first.
   */
  save(bytes: Uint8Array, expected: string | null, meta?: string): Promise<string | null>;
}

/**
 * The largest metadata string a store must keep with a checkpoint, in UTF-8 bytes: 32 KiB.
 *
 * @example
 * ```ts
 * import { MAX_META_BYTES, memoryCheckpointStore } from "../kv.ts";
 * import assert from "node:assert/strict";
 *
 * const meta = JSON.stringify({ epoch: 3, cursor: 1024 });
 * assert.ok(new TextEncoder().encode(meta).length <= MAX_META_BYTES);
 * await memoryCheckpointStore().save(new Uint8Array([1]), null, meta);
 * ```
 */
export const MAX_META_BYTES = 32768;

/** Throws unless `meta` is undefined or a string of at most {@linkcode MAX_META_BYTES}. */
export function checkMeta(meta: unknown): asserts meta is string | undefined {
  if (meta === undefined) return;
  if (typeof meta !== "string") {
    throw new TypeError(`Checkpoint metadata must be a string, got ${typeof meta}`);
  }
  const size = new TextEncoder().encode(meta).length;
  if (size > MAX_META_BYTES) {
    throw new RangeError(
      `Checkpoint metadata must be at most ${MAX_META_BYTES} bytes of UTF-8, got ${size}`,
    );
  }
}

/** Throws unless `bytes` is a non-empty Uint8Array and `expected` a string or null. */
export function checkSaveArguments(bytes: unknown, expected: unknown): void {
  if (!(bytes instanceof Uint8Array) || bytes.length === 0) {
    throw new TypeError("Checkpoint bytes must be a non-empty Uint8Array");
  }
  if (expected !== null && typeof expected !== "string") {
    throw new TypeError(
      `Expected version must be a string or null (an empty store), got ${typeof expected}`,
    );
  }
}

/**
 * Options of {@linkcode memoryCheckpointStore}.
 *
 * @example
 * ```ts
 * import { memoryCheckpointStore, type MemoryStoreOptions } from "../kv.ts";
 *
 * const options: MemoryStoreOptions = { name: "test store", latencyMs: 1 };
 * const store = memoryCheckpointStore(options);
 * ```
 */
export interface MemoryStoreOptions {
  /** The store's name in error messages; default `"in memory"`. */
  name?: string;
  /**
   * Answers each call this many ms later (a timer), as a database would after a round trip,
   * so that concurrent callers interleave as they would on one; default 0 (a microtask).
   */
  latencyMs?: number;
}

/**
 * An in-process store of one checkpoint with the same check-and-set contract as the Deno KV
 * store (see {@linkcode VersionedCheckpointStore}): what a test or a single process uses. It
 * keeps copies, so the caller's arrays may change afterwards; versions are `"1"`, `"2"`, ….
 *
 * @example Two writers from the same version: the second one is refused
 * ```ts
 * import { memoryCheckpointStore } from "../kv.ts";
 * import assert from "node:assert/strict";
 *
 * const store = memoryCheckpointStore();
 * const v1 = await store.save(new Uint8Array([1]), null);
 * assert.equal(await store.save(new Uint8Array([2]), v1), "2");
 * assert.equal(await store.save(new Uint8Array([3]), v1), null); // v1 is no longer current
 * ```
 */
export function memoryCheckpointStore(options: MemoryStoreOptions = {}): VersionedCheckpointStore {
  if (typeof options !== "object" || options === null) {
    throw new TypeError(
      `Options of memoryCheckpointStore must be an object, got ${typeof options}`,
    );
  }
  const { name = "in memory", latencyMs = 0 } = options;
  if (typeof name !== "string") throw new TypeError(`Option name must be a string, got ${name}`);
  if (typeof latencyMs !== "number" || !(latencyMs >= 0) || latencyMs === Infinity) {
    throw new RangeError(`Option latencyMs must be a finite number ≥ 0, got ${latencyMs}`);
  }
  let current: { bytes: Uint8Array; version: string; meta?: string } | null = null;
  let counter = 0;
  // Each call takes effect, at once and whole, when its answer comes.
  const later = <T>(f: () => T): Promise<T> =>
    latencyMs > 0
      ? new Promise((resolve) => setTimeout(resolve, latencyMs)).then(f)
      : Promise.resolve().then(f);
  return {
    name,
    load: () =>
      later(() => {
        if (current === null) return null;
        const { bytes, version, meta } = current;
        return { bytes: bytes.slice(), version, ...(meta === undefined ? {} : { meta }) };
      }),
    save(bytes, expected, meta) {
      try {
        checkSaveArguments(bytes, expected);
        checkMeta(meta);
      } catch (error) {
        return Promise.reject(error);
      }
      const copy = bytes.slice();
      return later(() => {
        if ((current?.version ?? null) !== expected) return null;
        current = {
          bytes: copy,
          version: String(++counter),
          ...(meta === undefined ? {} : { meta }),
        };
        return current.version;
      });
    },
  };
}

/**
 * Thrown by {@linkcode optimisticStep} when every attempt found that another writer had saved
 * first: the update was not applied (the caller may try again later, e.g. answer HTTP 409).
 *
 * @example
 * ```ts
 * import { CheckpointConflictError } from "../kv.ts";
 * import assert from "node:assert/strict";
 *
 * const error = new CheckpointConflictError('["model"]', 5);
 * assert.equal(error.name, "CheckpointConflictError");
 * assert.equal(error.attempts, 5);
 * ```
 */
export class CheckpointConflictError extends Error {
  /** The store's name (see {@linkcode VersionedCheckpointStore.name}). */
  readonly store: string;
  /** How many times the update was computed and refused. */
  readonly attempts: number;
  /** An error saying that `attempts` saves to `store` were all refused. */
  constructor(store: string, attempts: number) {
    super(
      `Checkpoint ${store} was saved by another writer first on each of ${attempts} attempts; ` +
        "this update was not applied",
    );
    this.name = "CheckpointConflictError";
    this.store = store;
    this.attempts = attempts;
  }
}

/**
 * Options of {@linkcode optimisticStep}.
 *
 * @example
 * ```ts
 * import { radam } from "../mod.ts";
 * import type { OptimisticStepOptions } from "../kv.ts";
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
 * import type { OptimisticStepResult } from "../kv.ts";
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

function checkCount(name: string, value: unknown, min: number, integer: boolean): number {
  if (
    typeof value !== "number" || !(value >= min) || value === Infinity ||
    (integer && !Number.isInteger(value))
  ) {
    throw new RangeError(
      `Option ${name} must be ${integer ? "an integer" : "a finite number"} ≥ ${min}, got ${
        String(value)
      }`,
    );
  }
  return value;
}

/** Refuses a loaded state that is not of `options`' model, naming the store. */
function checkModel(
  state: OptimizerState,
  options: OptimisticStepOptions<unknown>,
  store: string,
): void {
  if (state.optimizer !== options.optimizer.name) {
    throw new CheckpointError(
      `Checkpoint ${store} is of another model: optimizer ${
        JSON.stringify(state.optimizer)
      }, expected ${JSON.stringify(options.optimizer.name)}`,
    );
  }
  if (options.tensors === undefined) return;
  const expected = Object.keys(options.tensors);
  for (const name of state.names) {
    if (!Object.hasOwn(options.tensors, name)) {
      throw new CheckpointError(
        `Checkpoint ${store} is of another model: it has a tensor ${
          JSON.stringify(name)
        }, expected only ${expected.map((n) => JSON.stringify(n)).join(", ")}`,
      );
    }
    const length = (state.params[name] as Float32Array).length;
    if (length !== options.tensors[name]) {
      throw new CheckpointError(
        `Checkpoint ${store} is of another model: tensor ${
          JSON.stringify(name)
        } has ${length} values, expected ${options.tensors[name]}`,
      );
    }
  }
  for (const name of expected) {
    if (!state.names.includes(name)) {
      throw new CheckpointError(
        `Checkpoint ${store} is of another model: it lacks the tensor ${JSON.stringify(name)}`,
      );
    }
  }
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
 * import { memoryCheckpointStore, optimisticStep } from "../kv.ts";
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
  if (typeof options !== "object" || options === null) {
    throw new TypeError(`Options of optimisticStep must be an object, got ${typeof options}`);
  }
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
      if (stored !== null) checkModel(state, options as OptimisticStepOptions<unknown>, store.name);
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
