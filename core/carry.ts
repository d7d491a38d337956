/**
 * A state made from another over a changed set of tensors: `init`'s option `from`. Layers
 * frozen or unfrozen in fine-tuning, a head added or a tensor dropped: the tensors that stay
 * keep their moments and slow weights, bit for bit, new ones start fresh, and the state goes on
 * at the step count of the one it came from, as the TensorFlow.js adapter's state does at a
 * change of the variables it trains (tfjs/cpu_path.ts, tfjs/kept.ts).
 *
 * @module
 */
import { described } from "../base/_errors.ts";
import { DISPOSED_STATE_MESSAGE, halfStepRefusal, stateHint } from "../base/_state_errors.ts";
import { EXP_AVG, EXP_AVG_SQ, hasSection, SLOW } from "../base/arena.ts";
import {
  type DeviceBackend,
  type HeldState,
  holdsCodes,
  type HostBackend,
  type TensorState,
} from "../base/backend.ts";
import type { Settings } from "../base/settings.ts";
import { label } from "../base/tensors.ts";
import {
  halfStepOf,
  onHost,
  type OptimizerState,
  StateHandle,
  type StateInternals,
  stateInternals,
} from "./state.ts";
import type { Start, Taking } from "./init_state.ts";

/**
 * Options of `init` for a state made from another (on the CPU backends and on WebGPU).
 *
 * `from` is a state of the same optimizer (see below) over another set of tensors, e.g. before
 * layers were unfrozen. Each tensor of the new params that `from` holds under its name takes
 * from it its moments (the codes and scales themselves with `states: "8bit"`) and LookAhead's
 * slow weights, with the same bits; the others start fresh (zero moments, slow weights equal to
 * their values); tensors of `from` left out are not carried. The parameters are those given, as
 * always: pass `from.params[name]` to go on from the values `from` trained. The new state goes
 * on at `from`'s step count (and skipped steps) for every tensor, as the TensorFlow.js adapter
 * does when the variables it trains change, and as tfjs's own Adam does: bias corrections (and
 * RAdam's rectification, LookAhead's period, a schedule) follow that one count. A tensor added
 * late thus takes its first steps with its bias corrections near 1: with Adam's defaults up to
 * (1 − β1) / √(1 − β2) ≈ 3.2 times as large as a first step at step 1 (a step's size is then
 * about lr). Where that matters, warm its learning rate up (a group's `lrScale` with a schedule),
 * or train it in a state of its own, with its own step count, as PyTorch counts each
 * parameter's.
 *
 * Read at the call: `from` is left as it was, usable (a copy of what it holds is taken, as
 * `saveState` takes one, so steps of it before the Promise settles change nothing of the new
 * state). Dispose of it when done if it holds workers (option `threads`). Checked at the call,
 * changing nothing: `from` must be a live state of this library (else a TypeError: a consumed
 * or disposed state, or a threaded one whose step failed half way, as `saveState` refuses it)
 * of an optimizer of the same name (`radam`, `ranger`, …), states format and hyperparameters
 * but `lr` and `weightDecay` (those a parameter group can set too), and the same LookAhead `k`
 * and `alpha` (else a TypeError naming the setting: the moments would not be those of this
 * optimizer's rule). The learning rate, weight decay, groups, clipping,
 * `nonFinite`, `gc`, backend and threads may change. A tensor that `from` holds under its name
 * with another shape is a RangeError naming it and both shapes (its moments are not carried
 * silently into a resized tensor: give it a new name to start it fresh).
 *
 * On WebGPU: a CPU `from` goes into a WebGPU state through the host (its copy taken at the
 * call, uploaded once the state is made). A WebGPU `from` goes into a WebGPU state on its own
 * device (the one it runs on where option `device` is left out, with backend `"webgpu"` or
 * `"auto"`: a WebGPU `from` makes `"auto"` pick WebGPU, as a device does; another device is a
 * TypeError) by a copy on the GPU, with no readback, and into a CPU state (backend `"wasm"` or
 * `"js"`) by a read back of the tensors kept alone. Either way its tensors kept and its step
 * counts are taken at the call, as on the CPU: copied on its device (for a while as much GPU
 * memory again as their state), with the device's counts at that point of its queue, so that
 * steps of `from` before the Promise settles change nothing of the new state. Its step counts
 * are exact: init waits for the device to report the steps submitted to `from` before the call
 * (as `saveState` does), so a step it skipped (`nonFinite: "skip"`) counts as skipped, and a
 * halt (`"throw"`) at one of them not yet reported makes init reject with that RangeError, once,
 * as `saveState` would (`from` then goes on from where it stopped: init again). A WebGPU `from`
 * disposed before init read it makes init reject with a TypeError.
 *
 * @example Train the head, then the whole model
 * ```ts
 * import { dispose, radam, readMoments, step } from "@optim/radam";
 * import assert from "node:assert/strict";
 *
 * const opt = radam({ lr: 1e-2 });
 * let state = await opt.init({ head: new Float32Array([1, 2]) });
 * for (let t = 0; t < 3; t++) state = step(state, { head: new Float32Array([0.1, 0.2]) });
 * // Unfreeze the body: the head keeps its moments, the body starts fresh, at step 3.
 * const next = await opt.init({ ...state.params, body: new Float32Array(4) }, { from: state });
 * assert.equal(next.step, 3);
 * assert.deepEqual((await readMoments(next)).exp_avg.head, (await readMoments(state)).exp_avg.head);
 * assert.deepEqual((await readMoments(next)).exp_avg.body, new Float32Array(4));
 * dispose(state); // left usable: dispose of it when done
 * ```
 */
export interface InitOptions {
  /** The state whose tensors' moments, slow weights and step count the new state takes. */
  from?: OptimizerState<unknown>;
}

/** The state of one tensor taken from `from`, and its name. */
export interface Taken extends TensorState {
  readonly name: string;
}

/**
 * `from` (init's option) checked against `config`, the optimizer's settings, at the call: a
 * live state of this library of the same optimizer; else a TypeError.
 */
function checkFrom(config: Settings<unknown>, from: unknown): StateInternals {
  if (!(from instanceof StateHandle)) {
    throw new TypeError(
      `Option from of init must be an optimizer state made by init() or step(), got ${
        described(from)
      }${stateHint(from)}`,
    );
  }
  let internals: StateInternals;
  try {
    internals = stateInternals(from);
  } catch (error) {
    throw new TypeError(`Option from of init: ${(error as Error).message}`, { cause: error });
  }
  const half = halfStepOf(internals.backend);
  if (half !== undefined) {
    throw halfStepRefusal(
      "Option from of init is a threaded optimizer state that init refuses",
      half,
      "the new state",
      "made",
      " and give that state as from; dispose(from)",
    );
  }
  const difference = settingsDifference(config, internals.config);
  if (difference !== undefined) {
    throw new TypeError(
      `Option from of init must be a state of this optimizer, ${config.name}, with the same ` +
        `settings but lr and weightDecay: ${difference}`,
    );
  }
  return internals;
}

/**
 * Checks `from` (init's option) against `config` at the call, for a new state on a CPU backend;
 * returns how the new state starts from it: a WebGPU `from`'s state read back.
 */
export function startFrom(config: Settings<unknown>, from: unknown): Start {
  const internals = checkFrom(config, from);
  const source = internals.backend;
  return {
    take: (names, shapes) => {
      const kept = keptNames(internals, names, shapes);
      if (!onHost(source)) return readBack(source, kept);
      const { taken, counts } = takenOnHost(internals, source, kept);
      return {
        ready: undefined, // (taken now: nothing to wait for)
        counts: () => counts,
        write: (backend) => writeTaken(backend, taken),
      };
    },
  };
}

/** The state of `kept` that a CPU `from` (`internals`, on `source`) holds, and its step counts. */
function takenOnHost(
  internals: StateInternals,
  source: HostBackend,
  kept: readonly string[],
): { taken: Taken[]; counts: { steps: number; skipped: number } } {
  const counts = { steps: internals.steps, skipped: internals.skipped };
  return { taken: takeState(source, kept), counts };
}

/**
 * The read back of the state of `kept` from the WebGPU state `from` (its `source`): held at the
 * call, read once the device has reported the steps before it (rejecting with a halt of one of
 * them, as reads do).
 */
function readBack(source: DeviceBackend, kept: readonly string[]): Taking {
  const held = source.holdTensorState(kept);
  const taken: Taken[] = [];
  let counts = { steps: 0, skipped: 0 };
  const ready = (async () => {
    try {
      counts = await settledCounts(held);
      const states = await held.read();
      for (const name of kept) taken.push({ name, ...states[name] });
    } finally {
      held.discard();
    }
  })();
  return { ready, counts: () => counts, write: (backend) => writeTaken(backend, taken) };
}

/**
 * The step counts `held` holds, once settled; a TypeError where `from` was disposed before
 * (its halt, or the loss of its device, as they are).
 */
async function settledCounts(held: HeldState): Promise<{ steps: number; skipped: number }> {
  try {
    return { ...await held.settled };
  } catch (error) {
    if (!(error instanceof TypeError) || error.message !== DISPOSED_STATE_MESSAGE) throw error;
    throw new TypeError(
      "Option from of init was disposed before init() read it (on WebGPU it first waits for " +
        "the GPU to report its steps): await init(params, { from }) before dispose(from)",
      { cause: error },
    );
  }
}

/** The GPUDevice of `from` where it is a live WebGPU state; else undefined (checked later). */
export function deviceOfFrom(from: unknown): GPUDevice | undefined {
  if (!(from instanceof StateHandle)) return undefined;
  try {
    const backend = stateInternals(from).backend;
    return onHost(backend) ? undefined : backend.device;
  } catch {
    return undefined;
  }
}

/**
 * How a new WebGPU state starts from `from`: `settle`, then (synchronously) `counts` and the
 * copy, of `taken` (a CPU `from`'s, copied at the call) or of `held` (a WebGPU `from`'s, held on
 * its device at the call); `discard` once the state is made, or init failed.
 */
export interface DeviceStart {
  /** `from`'s device, where it is a WebGPU state: the new state goes on it. */
  readonly device?: GPUDevice;
  /** Waits for `from`'s counts at the call to be known (a WebGPU `from`'s steps reported). */
  readonly settle: () => Promise<void>;
  /** The step counts the new state starts at (after `settle`). */
  readonly counts: () => { steps: number; skipped: number };
  /** A CPU `from`'s state of the tensors kept, copied at the call. */
  readonly taken?: readonly Taken[];
  /** A WebGPU `from`'s state of the tensors kept, held on its device at the call. */
  readonly held?: HeldState;
  /** Frees what `held` holds (idempotent). */
  readonly discard: () => void;
}

/**
 * Checks `from` (init's option) against `config` at the call, for a new WebGPU state of the
 * tensors `names` of `shapes` on `device` (init's option, if given); returns how it starts.
 */
export function startFromOnDevice(
  config: Settings<unknown>,
  from: unknown,
  names: readonly string[],
  shapes: readonly (readonly number[])[],
  device: GPUDevice | undefined,
): DeviceStart {
  const internals = checkFrom(config, from);
  const source = internals.backend;
  const kept = keptNames(internals, names, shapes);
  if (onHost(source)) {
    const { taken, counts } = takenOnHost(internals, source, kept);
    const settle = () => Promise.resolve();
    return { settle, counts: () => counts, taken, discard: () => {} };
  }
  if (device !== undefined && device !== source.device) {
    throw new TypeError(
      `Option from of init is a state on GPUDevice ${deviceLabel(source.device)}, and option ` +
        `device is another, ${deviceLabel(device)}: a state's moments are copied on one device ` +
        "(give the device of from, or none); to go on from it on the other device, save it and " +
        "load it there, await loadState(await saveState(from), { device })",
    );
  }
  const held = source.holdTensorState(kept);
  let counts = { steps: 0, skipped: 0 };
  return {
    device: source.device,
    held,
    settle: async () => void (counts = await settledCounts(held)),
    counts: () => counts,
    discard: () => held.discard(),
  };
}

/** A GPUDevice in words: its label, if it has one. */
function deviceLabel(device: GPUDevice): string {
  return device.label ? JSON.stringify(device.label) : "(no label)";
}

/** What differs, in words, between the settings of `from` and the optimizer's; else undefined. */
function settingsDifference(
  mine: Settings<unknown>,
  theirs: Settings<unknown>,
): string | undefined {
  if (theirs.name !== mine.name) return `it is a state of ${theirs.name}`;
  if (theirs.run.states !== mine.run.states) {
    return `it holds its moments in ${theirs.run.states}, this optimizer in ${mine.run.states} ` +
      `(loadState(await saveState(from), { states: "${mine.run.states}" }) converts it)`;
  }
  const a = mine.hyperparameters as Record<string, unknown>;
  const b = theirs.hyperparameters as Record<string, unknown>;
  for (const key of Object.keys(a)) {
    if (key === "lr" || key === "weightDecay" || Object.is(a[key], b[key])) continue;
    return `its ${key} is ${described(b[key])}, this optimizer's ${described(a[key])}`;
  }
  for (const key of ["k", "alpha"] as const) {
    const x = mine.lookahead?.[key], y = theirs.lookahead?.[key];
    if (!Object.is(x, y)) return `its LookAhead ${key} is ${y}, this optimizer's ${x}`;
  }
  return undefined;
}

/**
 * The names of `names` (the new params', of `shapes`) that `from` (its `internals`) holds; a
 * RangeError for one held with another shape.
 */
function keptNames(
  internals: StateInternals,
  names: readonly string[],
  shapes: readonly (readonly number[])[],
): string[] {
  const at = new Map(internals.backend.layout.names.map((name, i) => [name, i]));
  return names.filter((name, j) => {
    const i = at.get(name);
    if (i === undefined) return false;
    const held = internals.shapes[i];
    if (held.length !== shapes[j].length || held.some((d, k) => d !== shapes[j][k])) {
      throw new RangeError(
        `Option from of init holds ${label(name)} with shape [${held}], the params give it shape [${
          shapes[j]
        }]: its moments are not carried into a tensor of another shape (give it a new name to ` +
          "start it fresh)",
      );
    }
    return true;
  });
}

/** Copies of the state `source` holds of each of `kept`. */
function takeState(source: HostBackend, kept: readonly string[]): Taken[] {
  const layout = source.layout;
  const held = [EXP_AVG, EXP_AVG_SQ, SLOW].filter((s) => hasSection(layout, s));
  const views = held.map((s) => source.viewSection(s));
  const compact = holdsCodes(source) ? source : undefined;
  const codes = compact ? layout.unsignedCodes.map((_, k) => compact.viewCompact(k)) : [];
  return kept.map((name) => {
    const sections: (Float32Array | undefined)[] = [];
    held.forEach((s, i) => sections[s] = views[i][name]?.slice());
    return {
      name,
      sections,
      codes: codes.map((of) => {
        const c = of[name];
        return c && { codes: c.codes.slice(), scales: c.scales.slice() };
      }),
    };
  });
}

/**
 * Writes the taken state into a new state's `backend` (its params and fresh slow weights
 * written). Its layout holds each taken tensor as the source did: of the same length and states
 * format, so in 8 bits (compact) or not alike.
 */
function writeTaken(backend: HostBackend, taken: readonly Taken[]): void {
  [EXP_AVG, EXP_AVG_SQ, SLOW].forEach((s) => {
    if (!hasSection(backend.layout, s)) return;
    const views = backend.viewSection(s);
    for (const t of taken) {
      const values = t.sections[s];
      if (values !== undefined && views[t.name] !== undefined) views[t.name].set(values);
    }
  });
  if (!holdsCodes(backend)) return;
  backend.layout.unsignedCodes.forEach((_, k) => {
    const views = backend.viewCompact(k);
    for (const t of taken) {
      const c = t.codes[k];
      if (c === undefined || views[t.name] === undefined) continue;
      views[t.name].codes.set(c.codes);
      views[t.name].scales.set(c.scales);
    }
  });
}
