/**
 * What a fold of the data-parallel mode does after its step gave a state no checkpoint holds
 * (a gradient so large that a moment passed float32's range; private to store/): whose
 * gradients do so, found by halves on copies of the state it folded on, with no commit
 * between, so that the others are applied together in that fold's one step.
 *
 * @module
 */
import { dispose, type OptimizerState, saveState, step } from "../mod.ts";
import { boundReason } from "./errors.ts";
import { meanOfContributions, type WeightedGradient } from "./mean.ts";
import { stateOf, storedState } from "./_model.ts";
import { checkLoaded } from "./_store_calls.ts";
import type { Cached, Fold, Local, Plan } from "./_fold_state.ts";
import { commitRefusals, commitStep, unsavable } from "./_fold_commit.ts";
import { monotonic } from "./_lease.ts";

/**
 * Writes the mean of `parts` into `state`'s gradient slots, by name: a contribution's gradient
 * is flat in the order of its checkpoint's `tensor_order` (`order`, the order the tensors were
 * given to `init`), which is not the state's arena's (`state.names`) where an 8-bit state puts
 * its compact tensors last.
 */
export function writeMean(
  f: Fold,
  state: OptimizerState,
  order: readonly string[],
  parts: WeightedGradient[],
  size: number,
): void {
  if (f.scratch === null || f.scratch.flat.length !== size) {
    f.scratch = { flat: new Float32Array(size), acc: new Float64Array(size) };
  }
  const { flat, acc } = f.scratch;
  meanOfContributions(parts, flat, acc);
  let at = 0;
  for (const name of order) {
    const slot = state.grads[name];
    slot.set(flat.subarray(at, at + slot.length));
    at += slot.length;
  }
}

/**
 * Makes copies of the state a fold folded on (`current`): with no checkpoint, of the parameters
 * `init` gave it (not `init` called again: another call may give others); null when the store
 * moved on.
 */
async function copies(f: Fold, current: Cached): Promise<(() => Promise<OptimizerState>) | null> {
  if (current.version === null) {
    const init = current.init!;
    return () => stateOf(f.options, init);
  }
  const stored = checkLoaded(f.store.name, await f.store.load());
  if (stored === null || stored.version !== current.version) return null;
  return () => storedState(stored.bytes, f.options, f.store);
}

/** The step on the mean of `parts` from a copy: the state it gives, unsaved. */
async function stepOn(
  f: Fold,
  copy: () => Promise<OptimizerState>,
  order: readonly string[],
  parts: WeightedGradient[],
  size: number,
): Promise<OptimizerState> {
  const state = await copy();
  try {
    writeMean(f, state, order, parts, size);
    return step(state);
  } catch (error) {
    dispose(state);
    throw error;
  }
}

/** Why the step on the mean of `parts` gives a state no checkpoint holds; null if none. */
async function unsavableBy(
  f: Fold,
  copy: () => Promise<OptimizerState>,
  order: readonly string[],
  parts: WeightedGradient[],
  size: number,
): Promise<string | null> {
  const next = await stepOn(f, copy, order, parts, size);
  try {
    await saveState(next);
    return null;
  } catch (error) {
    if (error instanceof RangeError) return error.message;
    throw error;
  } finally {
    dispose(next);
  }
}

/**
 * Of the parts of a fold whose step gave a state no checkpoint holds, those whose step alone
 * does so, each with why: each half of a failing set tried, a failing half halved in turn.
 * Empty where none alone does (a set may fail where each of its halves steps). No try is begun
 * that would end past half the lease's term since the store granted it, were it as long as the
 * longest try so far (on the monotonic clock, which no setting of the wall clock moves): those
 * found so far.
 */
async function unsavableParts(
  f: Fold,
  copy: () => Promise<OptimizerState>,
  order: readonly string[],
  parts: WeightedGradient[],
  size: number,
): Promise<Map<number, string>> {
  const found = new Map<number, string>();
  // Each try a step and a save: one that would pass half the lease's term (were it as long as the
  // longest so far) is not begun, the rest left to the next folds.
  // Time held, on the monotonic clock: a wall clock set back meanwhile does not prolong it.
  let longest = 0;
  const late = () =>
    f.lease !== null && monotonic() + longest - f.leaseSince > f.options.leaseMs / 2;
  const search = async (at: number[]): Promise<boolean> => {
    const half = Math.ceil(at.length / 2);
    for (const part of [at.slice(0, half), at.slice(half)]) {
      if (late()) return false;
      const began = monotonic();
      const why = await unsavableBy(f, copy, order, part.map((i) => parts[i]), size);
      longest = Math.max(longest, monotonic() - began);
      if (why === null) continue;
      if (part.length === 1) found.set(part[0], why);
      else if (!await search(part)) return false;
    }
    return true;
  };
  await search(parts.map((_, i) => i));
  return found;
}

/**
 * After a fold's step gave a state no checkpoint holds (`message`): of one contribution, it is
 * refused; of several, those whose step alone does so are refused, and the others stepped on
 * and committed in this fold, from a copy of the state it folded on. Where none is found (the
 * search stopped at its guard first, or none fails alone), the store moved on (no
 * copy to search on: none found), or that step fails again (the search stopped with some yet to
 * find), those found are refused all the same, committed with no step, and the next folds take
 * the others again, half of them a fold (see `unsavable`).
 */
export async function afterUnsavable(
  f: Fold,
  p: Plan,
  current: Cached,
  local: Local[],
  at: { step: number; seq: number },
  size: number,
  message: string,
): Promise<void> {
  const copy = p.parts.length > 1 ? await copies(f, current) : null;
  const bad = copy === null ? null : await unsavableParts(f, copy, current.order, p.parts, size);
  if (copy === null || bad === null || bad.size === 0) {
    return await unsavable(f, p, current.version, at, message);
  }
  const q: Plan = {
    parts: [],
    applied: [],
    appliedLocal: [],
    refused: [...p.refused],
    refusedLocal: [...p.refusedLocal],
  };
  const firstLocal = p.applied.length - p.appliedLocal.length;
  p.parts.forEach((part, i) => {
    const why = bad.get(i);
    const l = i >= firstLocal ? p.appliedLocal[i - firstLocal] : undefined;
    if (why === undefined) {
      q.parts.push(part), q.applied.push(p.applied[i]);
      if (l !== undefined) q.appliedLocal.push(l);
      return;
    }
    const reason = boundReason(
      `the step on its gradient gives a state that no checkpoint holds: ${why}`,
    );
    if (l !== undefined) q.refusedLocal.push([l, reason]);
    else q.refused.push({ ...p.applied[i], reason });
  });
  if (q.parts.length === 0) return await commitRefusals(f, q, current.version, at);
  const next = await stepOn(f, copy, current.order, q.parts, size);
  const again = await commitStep(f, q, current, next, local);
  if (again !== null) await unsavable(f, q, current.version, at, again);
}
