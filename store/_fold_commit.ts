/**
 * The commit of a fold of the data-parallel mode (private to store/): its step and what it
 * decided, or its refusals alone; the lease handed on with it; what follows a commit refused (a
 * conflict) or a step no checkpoint can hold; the requests settled.
 *
 * @module
 */
import { dispose, type OptimizerState, saveState } from "../mod.ts";
import { checkMeta } from "./_checks.ts";
import { boundReason, contributionFailed, ContributionRefusedError } from "./errors.ts";
import { type ParamsView, readParamsPrefix } from "./layout.ts";
import type { CommitResult } from "./training.ts";
import { checkCommitted } from "./_store_calls.ts";
import { type Instant, instant } from "./_lease.ts";
import { deadlineIn } from "./_time.ts";
import { type Cached, type Fold, keep, type Local, type Plan, renewed } from "./_fold_state.ts";

/** Settles what a committed fold decided. */
function settle(f: Fold, p: Plan, step: number): void {
  for (const l of p.appliedLocal) {
    l.resolve({ status: "applied", id: l.info.id, step, duplicate: false });
  }
  refuseLocal(p, step);
  for (const c of p.applied) f.settleWatched(c.id, { state: "applied", step });
  for (const { id, reason } of p.refused) f.settleWatched(id, { state: "refused", step, reason });
}

/**
 * Rejects the contributions of this process the fold refused (`step` the step that refused
 * them), each with its refusal: none of them is written by a commit.
 */
function refuseLocal(p: Plan, step: number): void {
  for (const [l, reason] of p.refusedLocal) {
    l.reject(new ContributionRefusedError(l.info.id, step, reason));
  }
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
  f.backoffUntil = deadlineIn(f.options.pollMs);
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
      const deadline = deadlineIn(f.options.waitMs);
      f.watch(l.info.id, deadline).then(l.resolve, l.reject);
    }
  }
  f.queue.unshift(...back);
}

/**
 * After a step whose state no checkpoint can hold (a gradient so large that a moment passed
 * float32's range): of one contribution, it is refused; of several (where the fold did not find
 * them all whose step alone does so: see `afterUnsavable`), the next folds take half of them
 * each, first, to find whose it is (the others are applied: see `takeIsolated`), and those it
 * refused (found so, or too stale) are committed so now, not left to be folded again.
 */
export async function unsavable(
  f: Fold,
  p: Plan,
  version: string | null,
  at: { step: number; seq: number },
  message: string,
): Promise<void> {
  if (p.parts.length > 1) {
    // First: a commit that throws fails the fold, which then rejects every local one it took.
    await commitRefusals(f, { ...p, parts: [], applied: [], appliedLocal: [] }, version, at);
    f.isolate = Math.ceil(p.parts.length / 2);
    f.suspects = new Set(p.applied.map((c) => c.id));
    for (const l of p.appliedLocal) l.taken = false;
    f.queue.unshift(...p.appliedLocal.filter((l) => !l.abandoned));
    return;
  }
  const reason = boundReason(
    `the step on its gradient gives a state that no checkpoint holds: ${message}`,
  );
  const [l] = p.appliedLocal;
  if (l !== undefined) p.refusedLocal.push([l, reason]);
  else p.refused.push({ ...p.applied[0], reason });
  await commitRefusals(f, p, version, at);
}

/** A commit of a fold's step that failed (not a conflict) with `error`: it may have been made. */
export class CommitFailure {
  constructor(readonly error: unknown) {}
}

/** What the commit `call` answers; a failure of it, as a {@linkcode CommitFailure}. */
const commitCall = <T>(call: Promise<T>): Promise<T> =>
  call.catch((error) => {
    throw new CommitFailure(error);
  });

/** The checkpoint of `next`, or why no checkpoint holds it (a moment past float32's range). */
async function savedOrWhy(next: OptimizerState): Promise<Uint8Array | string> {
  try {
    return await saveState(next);
  } catch (error) {
    if (error instanceof RangeError) return error.message;
    throw error;
  }
}

/** What a fold's commit holds and what follows it, besides the plan and the state stepped. */
interface Committing {
  readonly bytes: Uint8Array;
  readonly meta: string | undefined;
  /** The parameters' part of `bytes`, read before the commit. */
  readonly params: ParamsView;
  readonly holder: { token: string; ms: number } | undefined;
}

/** Asks the store to commit the step `next` and what the fold decided, as `w` says. */
function askCommit(f: Fold, p: Plan, current: Cached, next: OptimizerState, w: Committing) {
  return commitCall(f.store.commit({
    checkpoint: w.bytes,
    expected: current.version,
    meta: w.meta,
    step: next.step,
    seq: next.step + next.skippedSteps,
    ...(f.lease === null ? {} : { lease: f.lease }),
    ...(w.holder === undefined ? {} : { next: w.holder }),
    applied: p.applied,
    refused: p.refused,
    fresh: p.appliedLocal.map((l) => l.info.id),
  }));
}

/**
 * After the store made the step `next` current as `result`: keeps it as the fold's state, takes
 * the lease it answered (asked at `asked`), and settles what the fold decided.
 */
function afterCommitted(
  f: Fold,
  p: Plan,
  next: OptimizerState,
  w: Committing,
  result: CommitResult,
  asked: Instant,
): void {
  keep(f, { version: result.version, state: next, meta: w.meta, order: w.params.names });
  f.see({ ...w.params, version: result.version! });
  renewed(f, result.lease, asked);
  if (result.lease === null && f.queue.length > 0) {
    f.backoffUntil = deadlineIn(2 * f.options.pollMs);
  }
  settle(f, p, next.step);
  if (w.holder !== undefined && w.holder.token !== f.token) f.handedOn();
}

/**
 * Commits the step `next` and what the fold decided; settles the requests. The error message
 * when the new state cannot be saved (nothing committed then), else null.
 */
export async function commitStep(
  f: Fold,
  p: Plan,
  current: Cached,
  next: OptimizerState,
  local: Local[],
): Promise<string | null> {
  let committed = false;
  try {
    const bytes = await savedOrWhy(next);
    if (typeof bytes === "string") return bytes;
    const meta = f.options.meta?.(current.meta, next.step);
    checkMeta(meta); // refused before the commit: a commit's failure says it may have been made
    const params = readParamsPrefix(bytes, bytes.length, true);
    const w: Committing = { bytes, meta, params, holder: await nextHolder(f) };
    const asked = instant();
    const result = await askCommit(f, p, current, next, w);
    if (result === null) return await afterConflict(f, local), null;
    try {
      checkCommitted(f.store.name, result);
    } catch (error) {
      throw new CommitFailure(error); // made, and refused: its contributions may be applied
    }
    committed = true;
    afterCommitted(f, p, next, w, result, asked);
    return null;
  } catch (error) {
    // Refused here, and nothing of them in the commit: refused whether or not it was made. (On
    // a conflict, none is settled: afterConflict queues them again, folded on the new head.)
    if (error instanceof CommitFailure) refuseLocal(p, next.step);
    throw error;
  } finally {
    if (!committed) dispose(next);
  }
}

/** Records refusals without a step (every contribution of the fold was refused). */
export async function commitRefusals(
  f: Fold,
  p: Plan,
  version: string | null,
  at: { step: number; seq: number },
): Promise<void> {
  const { step, seq } = at;
  refuseLocal(p, step);
  if (p.refused.length > 0) {
    const asked = instant();
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
    renewed(f, result.lease, asked);
  }
  for (const { id, reason } of p.refused) f.settleWatched(id, { state: "refused", step, reason });
}
