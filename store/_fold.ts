/**
 * One fold of the data-parallel mode, by the process that holds the lease: the contributions
 * waiting in this process and those the store holds, their mean, one optimizer step, one
 * commit (_fold_commit.ts). What it works on: _fold_state.ts. Private to store/.
 *
 * @module
 */
import { CheckpointError, dispose, type OptimizerState, step } from "../mod.ts";
import { boundReason, contributionFailed, staleReason } from "./errors.ts";
import type { PendingContribution } from "./training.ts";
import { currentState, type Fold, type Local, type Plan } from "./_fold_state.ts";
import { CommitFailure, commitRefusals, commitStep } from "./_fold_commit.ts";
import { afterUnsavable, writeMean } from "./_fold_isolate.ts";

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
    p.refused.push({ id: c.id, reason: boundReason(reason), ref: c.ref });
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
 * The most contributions of this process one fold takes: each is a fresh id, which the commit
 * checks is still unknown to the store, and Deno KV takes at most 100 checks in one atomic
 * write, beside the head's, the version record's and the lease's. A store that takes fewer
 * says so (`TrainingStore.maxFresh`), and a fold takes no more than that (`maxLocal`). Where
 * that is fewer than `maxFold`, the holder stores those of its own that would else wait past
 * `staleness`, and all of them when it hands the lease on (the coordinator's `#storeSurplus`),
 * for the next folds to take as stored ones.
 */
export const MAX_LOCAL = 90;

/** Moves up to `n` contributions queued in this process into `local`, taken. */
function takeQueued(f: Fold, local: Local[], n: number): void {
  for (const l of f.queue.splice(0, Math.max(0, n))) local.push(l), l.taken = true;
}

/** Moves up to `n` of the contributions queued here that are `suspects` into `local`, taken. */
function takeSuspects(f: Fold, local: Local[], n: number): void {
  const found = f.queue.filter((l) => f.suspects.has(l.info.id)).slice(0, Math.max(0, n));
  for (const l of found) {
    f.queue.splice(f.queue.indexOf(l), 1);
    f.suspects.delete(l.info.id);
    local.push(l), l.taken = true;
  }
}

/**
 * The contributions of a fold that looks for whose gradient gave a state no checkpoint could
 * hold: up to `isolate` of that step's (`suspects`), those stored first (among the first
 * `maxFold` the store lists: others may have been stored before them since), then those queued
 * here; null once none is found (the folds go on as before). A fold of half of them that
 * steps, then one of the other half; one that fails again is searched as the first was (see
 * `afterUnsavable`), what its search leaves halved in turn (see `unsavable`): about log₂ of the
 * failing fold's size steps, where folds of one contribution each took as many steps as it had,
 * and refused those past `staleness`.
 */
async function takeIsolated(f: Fold, local: Local[]): Promise<PendingContribution[] | null> {
  const listed = await f.store.pending(f.options.maxFold);
  const stored = listed.filter((c) => f.suspects.has(c.id)).slice(0, f.isolate);
  for (const c of stored) f.suspects.delete(c.id);
  takeSuspects(f, local, Math.min(f.options.maxLocal, f.isolate - stored.length));
  // The last of them taken (or none found: folded by another process, or listed too late).
  if (f.suspects.size === 0 || stored.length + local.length === 0) {
    f.isolate = 0;
    f.suspects.clear();
  }
  return stored.length + local.length === 0 ? null : stored;
}

/**
 * At most how many folds, each of at most one step, the folds that look for whose gradient it
 * was (see `takeIsolated`) make before the others fold again: those of the suspects left, at
 * `isolate` each, and one for each time a failing one is halved, and the last.
 */
export function isolatingSteps(f: Fold): number {
  if (f.isolate === 0) return 0;
  return Math.ceil(f.suspects.size / f.isolate) + Math.ceil(Math.log2(f.isolate)) + 1;
}

/**
 * The contributions of one fold: up to `maxFold` (fewer, while isolating: see `takeIsolated`),
 * those queued in this process (up to `maxLocal`: {@linkcode MAX_LOCAL}, or the store's
 * `maxFresh`) and those stored, stored first. While both could fill it, each has half of it (of
 * an odd `maxFold`, the larger half goes to each in turn), where the queued took it all:
 * contributions stored by other processes waited, while the holder's own kept coming, until
 * refused as stale. The stored are the oldest by base step (see `TrainingStore.pending`); no
 * process's clock compares them with the queued.
 */
async function take(f: Fold, local: Local[]): Promise<PendingContribution[]> {
  const { maxFold } = f.options;
  if (f.isolate > 0) {
    const isolated = await takeIsolated(f, local);
    if (isolated !== null) return isolated;
  }
  const most = Math.min(f.options.maxLocal, maxFold);
  f.storedTurn = !f.storedTurn;
  const share = f.storedTurn ? Math.ceil(maxFold / 2) : Math.floor(maxFold / 2);
  takeQueued(f, local, Math.min(most, maxFold - share));
  const stored = local.length < maxFold ? await f.store.pending(maxFold - local.length) : [];
  // The stored took less than their share: the queued have the rest (those queued meanwhile too).
  takeQueued(f, local, Math.min(most, maxFold - stored.length) - local.length);
  return stored;
}

/**
 * One fold: takes up to `maxFold` contributions (those waiting in this process, up to
 * `maxLocal`, and the first the store lists, each a share: see `take`), refuses the too stale,
 * steps on the mean of the others, and commits, under the lease. False when there was nothing
 * to fold.
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
    f.folding(state.step);
    const at = { step: state.step, seq: state.step + state.skippedSteps };
    let size = 0;
    for (const name of state.names) size += state.grads[name].length;
    const p = await plan(f, local, stored, state, size);
    if (p.parts.length === 0) {
      await commitRefusals(f, p, current.version, at);
      return true;
    }
    writeMean(f, state, current.order, p.parts, size);
    f.cache = null; // the step consumes the state
    next = step(state);
    const message = await commitStep(f, p, current, next, local);
    if (message !== null) await afterUnsavable(f, p, current, local, at, size, message);
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
