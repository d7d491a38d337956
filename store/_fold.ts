/**
 * One fold of the data-parallel mode, by the process that holds the lease: the contributions
 * waiting in this process and those the store holds, their mean, one optimizer step, one
 * commit. Private to store/.
 *
 * @module
 */
import { CheckpointError, dispose, type OptimizerState, saveState, step } from "../mod.ts";
import { newState, storedState } from "./_model.ts";
import { checkMeta } from "./_checks.ts";
import type { CheckedOptions, SubmitResult } from "./parallel.ts";
import { contributionFailed, ContributionRefusedError, staleReason } from "./errors.ts";
import { checkpointOrder, readParamsPrefix } from "./layout.ts";
import { meanOfContributions, type WeightedGradient } from "./mean.ts";
import type {
  ContributionInfo,
  Lease,
  PendingContribution,
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
  leaseSince: number;
  backoffUntil: number;
  /** Folds left to take one contribution at a time (after a step no checkpoint could hold). */
  isolate: number;
  /** Whether the stored contributions have the larger share of the next contended fold. */
  storedTurn: boolean;
  scratch: { flat: Float32Array; acc: Float64Array } | null;
  readonly watched: ReadonlyMap<string, unknown>;
  see(params: StoredParams): void;
  settleWatched(id: string, record: RequestRecord): void;
  watch(id: string, deadline: number): Promise<SubmitResult>;
  dropLease(): Promise<void>;
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
function keep(f: Fold, cached: Cached): void {
  if (f.cache !== null && f.cache.state !== cached.state) dispose(f.cache.state);
  f.cache = cached;
}

/** The current state: the cached one when it is still current, else loaded (or made). */
export async function currentState(f: Fold): Promise<Cached> {
  const head = await f.store.head();
  if (f.cache !== null && head !== null && head.version === f.cache.version) return f.cache;
  if (f.cache !== null) dispose(f.cache.state);
  f.cache = null;
  const stored = await f.store.load();
  if (stored === null) {
    // No checkpoint (all contributions were flattened by one since removed): the order its
    // first checkpoint will have.
    const state = await newState(f.options, f.store);
    const order = checkpointOrder(await saveState(state));
    return { version: null, state, meta: undefined, order };
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
interface Plan {
  readonly parts: WeightedGradient[];
  readonly applied: (ContributionInfo & { ref?: unknown })[];
  readonly appliedLocal: Local[];
  readonly refused: { id: string; reason: string; ref?: unknown }[];
  readonly refusedLocal: [Local, string][];
}

/** A stored contribution's gradient, or why it cannot be read (damaged: refused, not retried). */
async function storedGradient(f: Fold, c: PendingContribution): Promise<Uint8Array | string> {
  try {
    return await f.store.gradient(c);
  } catch (error) {
    if (!(error instanceof CheckpointError)) throw error;
    return `its stored gradient is damaged: ${error.message}`;
  }
}

/** Sorts the contributions into applied and refused (too stale, or not of the model). */
async function plan(
  f: Fold,
  local: Local[],
  stored: PendingContribution[],
  state: OptimizerState,
  size: number,
): Promise<Plan> {
  const p: Plan = { parts: [], applied: [], appliedLocal: [], refused: [], refusedLocal: [] };
  for (const c of stored) {
    let reason = staleReason(c.base, state.step, f.options.staleness);
    if (reason === null) {
      const bytes = await storedGradient(f, c);
      if (typeof bytes !== "string" && bytes.length === size * 4) {
        const gradient = new Float32Array(bytes.buffer, bytes.byteOffset, size);
        p.parts.push({ samples: c.samples, gradient });
        p.applied.push(c);
        continue;
      }
      reason = typeof bytes === "string"
        ? bytes
        : `its gradient has ${bytes.length / 4} values, the model ${size}`;
    }
    p.refused.push({ id: c.id, reason, ref: c.ref });
  }
  for (const l of local) {
    const reason = staleReason(l.info.base, state.step, f.options.staleness);
    if (reason !== null) {
      p.refusedLocal.push([l, reason]);
      continue;
    }
    p.parts.push({ samples: l.info.samples, gradient: l.gradient });
    p.applied.push(l.info);
    p.appliedLocal.push(l);
  }
  return p;
}

/**
 * Writes the mean of `parts` into the state's gradient slots, by name: a contribution's gradient
 * is flat in the order of its checkpoint's `tensor_order` (`order`, the order the tensors were
 * given to `init`), which is not the state's arena's (`state.names`) where an 8-bit state puts
 * its compact tensors last.
 */
function writeMean(f: Fold, current: Cached, parts: WeightedGradient[], size: number): void {
  if (f.scratch === null || f.scratch.flat.length !== size) {
    f.scratch = { flat: new Float32Array(size), acc: new Float64Array(size) };
  }
  const { flat, acc } = f.scratch;
  meanOfContributions(parts, flat, acc);
  let at = 0;
  for (const name of current.order) {
    const slot = current.state.grads[name];
    slot.set(flat.subarray(at, at + slot.length));
    at += slot.length;
  }
}

/** Settles what a committed fold decided. */
function settle(f: Fold, p: Plan, step: number): void {
  for (const l of p.appliedLocal) {
    l.resolve({ status: "applied", id: l.info.id, step, duplicate: false });
  }
  for (const [l, reason] of p.refusedLocal) {
    l.reject(new ContributionRefusedError(l.info.id, step, reason));
  }
  for (const c of p.applied) f.settleWatched(c.id, { state: "applied", step });
  for (const { id, reason } of p.refused) f.settleWatched(id, { state: "refused", step, reason });
}

/**
 * The first term of a lease handed on: ten of the new holder's polls, and at least 200 ms
 * (reads over a network), before it takes it for leaseMs.
 */
const handOnMs = (pollMs: number): number => Math.max(10 * pollMs, 200);

/**
 * Who holds the lease after this commit: the process that has waited longest for it, else
 * this one when work waits here; else no one.
 */
async function nextHolder(f: Fold): Promise<{ token: string; ms: number } | undefined> {
  if (f.lease === null) return undefined;
  const waiting = await f.store.waiting(f.lease);
  const { leaseMs, pollMs } = f.options;
  // Handed on, for a short first term: the process named may have stopped asking since it was
  // read (its contribution applied, it released its note before this commit hands it on). It
  // takes the lease for leaseMs at its next poll; unclaimed, the lease expires soon, and no one
  // waits leaseMs for it.
  if (waiting !== null) return { token: waiting, ms: Math.min(leaseMs, handOnMs(pollMs)) };
  return f.queue.length > 0 ? { token: f.token, ms: leaseMs } : undefined;
}

/**
 * After a commit whose checks failed (the lease lost, the head moved, or an id of this
 * process became known): each local contribution is settled from the store's record, or
 * waits again. One whose record cannot be read is rejected alone, saying so: its id may be
 * the one that became known (stored by another submission), so it may yet be applied.
 */
async function afterConflict(f: Fold, local: Local[]): Promise<void> {
  await f.dropLease();
  f.backoffUntil = Date.now() + f.options.pollMs;
  const back: Local[] = [];
  for (const l of local) {
    let record;
    try {
      record = await f.store.request(l.info.id);
    } catch (error) {
      const what = "looking up its id after the commit of its fold was refused";
      l.reject(contributionFailed(l.info.id, what, error, "stored"));
      continue;
    }
    if (record === null) {
      l.taken = false;
      if (!l.abandoned) back.push(l);
    } else {
      const deadline = Date.now() + f.options.waitMs;
      f.watch(l.info.id, deadline).then(l.resolve, l.reject);
    }
  }
  f.queue.unshift(...back);
}

/** Moves up to `n` contributions queued in this process into `local`, taken. */
function takeQueued(f: Fold, local: Local[], n: number): void {
  for (const l of f.queue.splice(0, Math.max(0, n))) local.push(l), l.taken = true;
}

/**
 * The contributions of one fold: up to `maxFold` (or one, while isolating), those queued in this
 * process (up to 90) and those stored, stored first. While both could fill it, each has half of
 * it (of an odd `maxFold`, the larger half goes to each in turn), where the queued took it all:
 * contributions stored by other processes waited, while the holder's own kept coming, until
 * refused as stale. The stored are the oldest by base step (see `TrainingStore.pending`); no
 * process's clock compares them with the queued.
 */
async function take(f: Fold, local: Local[]): Promise<PendingContribution[]> {
  const { maxFold } = f.options;
  if (f.isolate === 0) {
    const most = Math.min(90, maxFold);
    f.storedTurn = !f.storedTurn;
    const share = f.storedTurn ? Math.ceil(maxFold / 2) : Math.floor(maxFold / 2);
    takeQueued(f, local, Math.min(most, maxFold - share));
    const stored = local.length < maxFold ? await f.store.pending(maxFold - local.length) : [];
    // The stored took less than their share: the queued have the rest (those queued meanwhile too).
    takeQueued(f, local, Math.min(most, maxFold - stored.length) - local.length);
    return stored;
  }
  f.isolate--;
  const stored = await f.store.pending(1);
  if (stored.length === 0) takeQueued(f, local, 1);
  return stored;
}

/**
 * One fold: takes up to `maxFold` contributions (those waiting in this process, up to 90, and
 * the first the store lists, each a share: see `take`), refuses the too stale, steps on the
 * mean of the others, and commits, under the lease. False when there was nothing to fold.
 */
export async function foldOnce(f: Fold): Promise<boolean> {
  const local: Local[] = [];
  // The state folded on, and the one stepped from it: freed at the end unless cached.
  let state: OptimizerState | null = null, next: OptimizerState | null = null;
  try {
    const stored = await take(f, local);
    if (local.length === 0 && stored.length === 0) return false;
    const current = await currentState(f);
    state = current.state;
    const at = { step: state.step, seq: state.step + state.skippedSteps };
    let size = 0;
    for (const name of state.names) size += state.grads[name].length;
    const p = await plan(f, local, stored, state, size);
    if (p.parts.length === 0) {
      await commitRefusals(f, p, current.version, at);
      return true;
    }
    writeMean(f, current, p.parts, size);
    f.cache = null; // the step consumes the state
    next = step(state);
    const message = await commitStep(f, p, current, next, local);
    if (message !== null) await unsavable(f, p, current.version, at, message);
    return true;
  } catch (thrown) {
    // The fold's own contributions are stored by its commit alone: one that failed may have
    // been made; before it, nothing of them was stored.
    const committing = thrown instanceof CommitFailure;
    const error = committing ? thrown.error : thrown;
    for (const l of local) {
      if (l.settled) continue;
      const what = committing ? "the commit of the step applying it" : "its fold";
      l.reject(contributionFailed(l.info.id, what, error, committing ? "committed" : "none"));
    }
    await f.dropLease();
    throw error;
  } finally {
    for (const l of local) if (!l.settled) l.taken = false;
    // A state made for a store with no checkpoint yet, or stepped and not committed: not kept.
    const cached = f.cache?.state;
    if (state !== null && cached !== state && (next === null || cached !== next)) dispose(state);
  }
}

/**
 * After a step whose state no checkpoint can hold (a gradient so large that a moment passed
 * float32's range): of one contribution, it is refused; of several, each is folded alone next,
 * to find whose it is (the others are applied).
 */
async function unsavable(
  f: Fold,
  p: Plan,
  version: string | null,
  at: { step: number; seq: number },
  message: string,
): Promise<void> {
  if (p.parts.length > 1) {
    f.isolate = p.parts.length;
    for (const [l, reason] of p.refusedLocal) {
      l.reject(new ContributionRefusedError(l.info.id, at.step, reason));
    }
    for (const l of p.appliedLocal) l.taken = false;
    f.queue.unshift(...p.appliedLocal.filter((l) => !l.abandoned));
    return;
  }
  const reason = `the step on its gradient gives a state that no checkpoint holds: ${message}`;
  const [l] = p.appliedLocal;
  if (l !== undefined) p.refusedLocal.push([l, reason]);
  else p.refused.push({ ...p.applied[0], reason });
  await commitRefusals(f, p, version, at);
}

/** A commit of a fold's step that failed (not a conflict) with `error`: it may have been made. */
class CommitFailure {
  constructor(readonly error: unknown) {}
}

/** What the commit `call` answers; a failure of it, as a {@linkcode CommitFailure}. */
const commitCall = <T>(call: Promise<T>): Promise<T> =>
  call.catch((error) => {
    throw new CommitFailure(error);
  });

/**
 * Commits the step `next` and what the fold decided; settles the requests. The error message
 * when the new state cannot be saved (nothing committed then), else null.
 */
async function commitStep(
  f: Fold,
  p: Plan,
  current: Cached,
  next: OptimizerState,
  local: Local[],
): Promise<string | null> {
  let committed = false;
  try {
    let bytes: Uint8Array;
    try {
      bytes = await saveState(next);
    } catch (error) {
      if (error instanceof RangeError) return error.message; // a moment past float32's range
      throw error;
    }
    const meta = f.options.meta?.(current.meta, next.step);
    checkMeta(meta); // refused before the commit: a commit's failure says it may have been made
    const params = readParamsPrefix(bytes, bytes.length, true);
    const holder = await nextHolder(f);
    const result = await commitCall(f.store.commit({
      checkpoint: bytes,
      expected: current.version,
      meta,
      step: next.step,
      seq: next.step + next.skippedSteps,
      ...(f.lease === null ? {} : { lease: f.lease }),
      ...(holder === undefined ? {} : { next: holder }),
      applied: p.applied,
      refused: p.refused,
      fresh: p.appliedLocal.map((l) => l.info.id),
    }));
    if (result === null) return await afterConflict(f, local), null;
    committed = true;
    keep(f, { version: result.version, state: next, meta, order: params.names });
    f.see({ ...params, version: result.version! });
    f.lease = result.lease;
    f.leaseSince = Date.now();
    if (result.lease === null && f.queue.length > 0) {
      f.backoffUntil = Date.now() + 2 * f.options.pollMs;
    }
    settle(f, p, next.step);
    return null;
  } finally {
    if (!committed) dispose(next);
  }
}

/** Records refusals without a step (every contribution of the fold was refused). */
async function commitRefusals(
  f: Fold,
  p: Plan,
  version: string | null,
  at: { step: number; seq: number },
): Promise<void> {
  const { step, seq } = at;
  for (const [l, reason] of p.refusedLocal) {
    l.reject(new ContributionRefusedError(l.info.id, step, reason));
  }
  if (p.refused.length > 0) {
    const result = await f.store.commit({
      checkpoint: null,
      expected: version,
      step,
      seq,
      ...(f.lease === null
        ? {}
        : { lease: f.lease, next: { token: f.token, ms: f.options.leaseMs } }),
      applied: [],
      refused: p.refused,
      fresh: [],
    });
    if (result === null) {
      await f.dropLease();
      return;
    }
    f.lease = result.lease;
  }
  for (const { id, reason } of p.refused) f.settleWatched(id, { state: "refused", step, reason });
}
