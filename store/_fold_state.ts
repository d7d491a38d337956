/**
 * What a fold of the data-parallel mode works on (private to store/): the contributions of this
 * process, the coordinator's part a fold reads and changes, the state of a version as this
 * process last committed or read it (made, loaded, cached), and what a fold decided.
 *
 * @module
 */
import { dispose, type OptimizerState, type Params, saveState } from "../mod.ts";
import { initParams, newState, stateOf, storedState } from "./_model.ts";
import { checkLoaded } from "./_store_calls.ts";
import { grantedSince, type Instant, instant } from "./_lease.ts";
import type { CheckedOptions, SubmitResult } from "./parallel.ts";
import { checkpointOrder, readParamsPrefix } from "./layout.ts";
import type { WeightedGradient } from "./mean.ts";
import type {
  ContributionInfo,
  Lease,
  RequestRecord,
  StoredParams,
  TrainingStore,
} from "./training.ts";

/** A contribution from this process, waiting for a fold. */
export interface Local {
  readonly info: { readonly id: string; readonly base: number; readonly samples: number };
  readonly gradient: Float32Array;
  /** Taken by the fold in progress. */
  taken: boolean;
  settled: boolean;
  /**
   * Its submit gave up waiting for the fold that took it (a call of the store not answered by
   * `waitMs`): not queued again if that fold gives it back, for no submit waits for it then
   * (the id sent again is a new contribution, and must not be folded beside this one).
   */
  abandoned: boolean;
  readonly done: Promise<SubmitResult>;
  resolve(result: SubmitResult): void;
  reject(error: unknown): void;
}

/** The state of a version, as this process last committed or read it. */
export interface Cached {
  readonly version: string | null;
  readonly state: OptimizerState;
  readonly meta: string | undefined;
  /**
   * The order of the tensors in the checkpoint the state was read from or saved to (its
   * `tensor_order`, `StoredParams.names`): the order contributions flatten their gradients in.
   */
  readonly order: readonly string[];
  /**
   * Where the store holds no checkpoint (`version` null): the parameters `init` gave the fold
   * (called once a fold), which every copy of its state is made from.
   */
  readonly init?: Params;
}

/** What a fold reads and changes of its process's coordinator. */
export interface Fold {
  readonly store: TrainingStore;
  readonly options: CheckedOptions;
  readonly token: string;
  /** Set by close(): a state made now is not kept (close frees only the one cached then). */
  readonly closed: boolean;
  queue: Local[];
  cache: Cached | null;
  lease: Lease | null;
  /**
   * When the store granted the lease held, on this process's monotonic clock
   * (`performance.now()`): its `expires` less `leaseMs` where that falls within the call that
   * got or renewed it, else when that call was made (see `grantedSince` of store/_lease.ts).
   */
  leaseSince: number;
  /** Until when (the monotonic clock: see `deadlineIn` of store/_time.ts) not to ask for it. */
  backoffUntil: number;
  /**
   * The most contributions a fold takes while it looks for whose gradient gave a step no
   * checkpoint could hold (half of that step's); 0 when none does.
   */
  isolate: number;
  /** The ids of the contributions of the step no checkpoint could hold, not folded again yet. */
  suspects: Set<string>;
  /** Whether the stored contributions have the larger share of the next contended fold. */
  storedTurn: boolean;
  scratch: { flat: Float32Array; acc: Float64Array } | null;
  readonly watched: ReadonlyMap<string, unknown>;
  see(params: StoredParams): void;
  settleWatched(id: string, record: RequestRecord): void;
  /** Waits for the outcome of `id`, until `deadline` (the monotonic clock: see `deadlineIn`). */
  watch(id: string, deadline: number): Promise<SubmitResult>;
  dropLease(): Promise<void>;
  /** Called by a fold once it took its contributions and read the step it folds on. */
  folding(step: number): void;
  /** Called once a commit of this process handed the lease on to another. */
  handedOn(): void;
}

/** The parameters of a committed checkpoint, as callers of `params()` get them. */
function paramsOf(bytes: Uint8Array, version: string): StoredParams {
  return { ...readParamsPrefix(bytes, bytes.length, true), version };
}

/** Makes the first checkpoint, from `init`, unless another process made one first. */
export async function initialize(f: Fold): Promise<void> {
  const state = await newState(f.options, f.store);
  let kept = false;
  try {
    const bytes = await saveState(state);
    const meta = f.options.meta?.(undefined, state.step);
    const result = await f.store.commit({
      checkpoint: bytes,
      expected: null,
      meta,
      step: state.step,
      seq: state.step + state.skippedSteps,
      applied: [],
      refused: [],
      fresh: [],
    });
    if (result === null || result.version === null) return;
    const params = paramsOf(bytes, result.version);
    if (!f.closed) {
      keep(f, { version: result.version, state, meta, order: params.names }), kept = true;
    }
    f.see(params);
  } finally {
    // Not kept (meta or the commit threw, another process made the first checkpoint, or the
    // trainer was closed meanwhile).
    if (!kept) dispose(state);
  }
}

/**
 * Caches `cached`, freeing the state cached before (set meanwhile by a request that made the
 * first checkpoint, or by a fold): no fold runs on it, for one fold runs at a time and it
 * takes its state out of the cache before it steps.
 */
export function keep(f: Fold, cached: Cached): void {
  if (f.cache !== null && f.cache.state !== cached.state) dispose(f.cache.state);
  f.cache = cached;
}

/**
 * Holds `lease`, the lease as a call made at `asked` (this process's clocks) got or renewed it
 * (`acquire`, a commit), or none: its term counted from when the store granted it, on the
 * monotonic clock (`grantedSince`).
 */
export function renewed(f: Fold, lease: Lease | null, asked: Instant): void {
  f.lease = lease;
  if (lease !== null) {
    f.leaseSince = grantedSince(lease.expires, f.options.leaseMs, asked, instant());
  }
}

/** The current state: the cached one when it is still current, else loaded (or made). */
export async function currentState(f: Fold): Promise<Cached> {
  const head = await f.store.head();
  if (f.cache !== null && head !== null && head.version === f.cache.version) return f.cache;
  if (f.cache !== null) dispose(f.cache.state);
  f.cache = null;
  const stored = checkLoaded(f.store.name, await f.store.load());
  if (stored === null) {
    // No checkpoint (all contributions were flattened by one since removed): the order its
    // first checkpoint will have.
    const init = await initParams(f.options, f.store);
    const state = await stateOf(f.options, init);
    let order: readonly string[];
    try {
      order = checkpointOrder(await saveState(state));
    } catch (error) {
      dispose(state);
      throw error;
    }
    return { version: null, state, meta: undefined, order, init };
  }
  const state = await storedState(stored.bytes, f.options, f.store);
  keep(f, {
    version: stored.version,
    state,
    meta: stored.meta,
    order: checkpointOrder(stored.bytes),
  });
  return f.cache!;
}

/** What a fold decided: the gradients to average, whose they are, and what it refuses. */
export interface Plan {
  readonly parts: WeightedGradient[];
  readonly applied: (ContributionInfo & { ref?: unknown })[];
  readonly appliedLocal: Local[];
  readonly refused: { id: string; reason: string; ref?: unknown }[];
  readonly refusedLocal: [Local, string][];
}
