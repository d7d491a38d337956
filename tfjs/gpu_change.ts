/**
 * A change of the set of variables on tfjs's webgpu backend (layers frozen or unfrozen), as the
 * CPU paths make it: the new state takes, on the GPU, the state of the variables still there
 * (the same bits) and the device's step counts (`continueCount`), and the state of those left
 * out is kept aside, read back to the host once, at the change (never at a step), theirs alone
 * (nothing where none is left out). Until that read ends, the state it is read from is kept on
 * the GPU, and a variable that comes back meanwhile takes its state from there.
 *
 * @module
 */
import type { CompactMoment } from "../base/arena.ts";
import { type OptimizerState, stateInternals } from "../core/state.ts";
import { WebGpuBackend } from "../gpu/webgpu_backend.ts";
import type { Kept } from "./kept.ts";
import { type Entry, takesState } from "./layout.ts";

/**
 * A variable whose state kept aside is still being read back from a state before a change: that
 * state (kept until the read ends) and the variable as it held it.
 */
export interface Pending {
  readonly source: WebGpuBackend;
  readonly entry: Entry;
}

/** The variables of a runner (the webgpu path's state and its variables). */
interface Held {
  readonly state: OptimizerState<unknown>;
  readonly entries: readonly Entry[];
}

/**
 * Copies into `state`, a new state over `entries`, on the GPU, the state of its variables held by
 * `before` (the state it replaces, if any) and by the states their kept-aside state is still being
 * read back from (`pending`, by name), where they held them with the same shape.
 *
 * @example
 * ```ts ignore
 * copyHeld(runner.state, entries, before, pending); // at a change, before `before` is retired
 * ```
 */
export function copyHeld(
  state: OptimizerState<unknown>,
  entries: readonly Entry[],
  before: Held | undefined,
  pending: ReadonlyMap<string, Pending>,
): void {
  const target = gpuBackendOf(state);
  const bySource = new Map<WebGpuBackend, string[]>();
  const add = (source: WebGpuBackend, name: string) => {
    const names = bySource.get(source);
    if (names === undefined) bySource.set(source, [name]);
    else names.push(name);
  };
  const held = new Map(before?.entries.map((e) => [e.name, e]));
  const source = before && gpuBackendOf(before.state);
  for (const e of entries) {
    const from = pending.get(e.name);
    if (source !== undefined && held.has(e.name)) {
      const h = held.get(e.name)!;
      if (takesState(h, e.shape, e.variable)) add(source, e.name);
    } else if (from !== undefined && takesState(from.entry, e.shape, e.variable)) {
      add(from.source, e.name);
    }
  }
  for (const [from, names] of bySource) target.copyStateFrom(from, names);
}

/**
 * Makes `state`, a new state made instead of `before` (a change), go on with the step count of
 * `before` as its device keeps it: the device's count of the steps taken and skipped is copied
 * on the GPU after every step submitted to `before`, with no readback, so that a step the device
 * skipped and has not reported yet counts as skipped, as on the CPU backends
 * (`GpuStepCounter.continueFrom`).
 *
 * @example
 * ```ts ignore
 * continueCount(runner.state, before.state); // at a change, before the new state's first step
 * ```
 */
export function continueCount(
  state: OptimizerState<unknown>,
  before: OptimizerState<unknown>,
): void {
  gpuBackendOf(state).counter.continueFrom(gpuBackendOf(before).counter);
}

/**
 * The WebGPU backend of a state of the webgpu path.
 *
 * @example
 * ```ts ignore
 * gpuBackendOf(runner.state).copyStateFrom(gpuBackendOf(before.state), ["dense/kernel"]);
 * ```
 */
export function gpuBackendOf(state: OptimizerState<unknown>): WebGpuBackend {
  const backend = stateInternals(state).backend;
  if (!(backend instanceof WebGpuBackend)) {
    throw new TypeError(`Expected a WebGPU state, got one on ${JSON.stringify(backend.name)}`);
  }
  return backend;
}

/**
 * The kept-aside states of `leaving` (variables of the state on `backend`, in its order), each
 * filled in once the read of their state begun now has ended (its `ready`): only their bytes are
 * read back (none where none is left out), f32 values in the tfjs layout (the webgpu path holds
 * every variable so), and the codes and scales of a moment held in 8 bits as they are. `ready`
 * never goes unhandled: it is read by getWeights. Where the read finds the state halted (a
 * non-finite gradient under `nonFinite: "throw"` in a step before the change, not yet reported),
 * the halt goes to `onFault` (for a later call to throw, as the state would have) and their
 * state is read again: it is the state at the halt, which the bad step did not reach. `ready`
 * rejects only where it cannot be read at all (a lost device: the backend's error saying so).
 * `done`, which never rejects, settles with `ready`: the state may be freed then (also where
 * none is left out: the read, of no bytes then, still tells a halt).
 *
 * @example
 * ```ts ignore
 * const { kept, done } = readKeptAside(gpuBackendOf(before.state), leaving, (e) => fault = e);
 * ```
 */
export function readKeptAside(
  backend: WebGpuBackend,
  leaving: readonly Entry[],
  onFault: (error: unknown) => void,
): { kept: Kept[]; done: Promise<unknown> } {
  const names = leaving.map((e) => e.name);
  const reads = backend.readTensorState(names).catch((error) => {
    // (Lost or destroyed: nothing can be read.)
    backend.checkUsable();
    // A halt (or a refusal) of a step before the change, now taken: the state is as it was.
    onFault(error);
    return backend.readTensorState(names);
  });
  // (Filled in place: the kept states hold these arrays from now on.)
  const held = leaving.map((entry) => ({
    entry,
    sections: [] as (Float32Array | undefined)[],
    codes: [] as (CompactMoment | undefined)[],
  }));
  const ready = reads.then((states) => {
    for (const k of held) {
      const state = states[k.entry.name];
      state.sections.forEach((values, s) => k.sections[s] = values);
      state.codes.forEach((c, m) => k.codes[m] = c);
    }
  });
  const done = ready.catch(() => {});
  return { kept: held.map((k) => ({ ...k, ready })), done };
}
