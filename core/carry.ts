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
import { stateHint } from "../base/_state_errors.ts";
import { type CompactMoment, EXP_AVG, EXP_AVG_SQ, hasSection, SLOW } from "../base/arena.ts";
import { holdsCodes, type HostBackend } from "../base/backend.ts";
import type { Settings } from "../base/settings.ts";
import { label } from "../base/tensors.ts";
import {
  onHost,
  type OptimizerState,
  type Start,
  StateHandle,
  type StateInternals,
  stateInternals,
} from "./state.ts";

/**
 * Options of `init` for a state made from another (on the CPU backends: js, wasm, threads).
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
 * changing nothing: `from` must be a live state of this library on a CPU backend (else a
 * TypeError: a consumed or disposed state, a WebGPU one, or this optimizer's backend `"webgpu"`,
 * which this option does not run on) of an optimizer of the same name (`radam`, `ranger`, …),
 * states format and hyperparameters but `lr` and `weightDecay` (those a parameter group can set
 * too), and the same LookAhead `k` and `alpha` (else a TypeError naming the setting: the moments
 * would not be those of this optimizer's rule). The learning rate, weight decay, groups,
 * clipping, `nonFinite`, `gc`, backend and threads may change. A tensor that `from` holds under
 * its name with another shape is a RangeError naming it and both shapes (its moments are not
 * carried silently into a resized tensor: give it a new name to start it fresh).
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

/** The state of one tensor taken from `from`: f32 sections by index, codes by moment. */
interface Taken {
  readonly name: string;
  readonly sections: (Float32Array | undefined)[];
  readonly codes: (CompactMoment | undefined)[];
}

/**
 * Checks `from` (init's option) against `config`, the optimizer's settings, at the call
 * (`onDevice`: the new state would go on WebGPU); returns how the new state starts from it.
 */
export function startFrom(config: Settings<unknown>, from: unknown, onDevice: boolean): Start {
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
  if (onDevice || !onHost(internals.backend)) {
    throw new TypeError(
      `Option from of init runs on the CPU backends (js, wasm, threads) only, not on WebGPU: ${
        onDevice ? "this optimizer's state would go on WebGPU" : "from is a WebGPU state"
      }`,
    );
  }
  const difference = settingsDifference(config, internals.config);
  if (difference !== undefined) {
    throw new TypeError(
      `Option from of init must be a state of this optimizer, ${config.name}, with the same ` +
        `settings but lr and weightDecay: ${difference}`,
    );
  }
  const source = internals.backend;
  return {
    steps: internals.steps,
    skipped: internals.skipped,
    take: (names, shapes) => {
      const taken = takeState(internals, source, names, shapes);
      return (backend) => writeTaken(backend, taken);
    },
  };
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
 * Copies of the state `source` holds of each of `names` (the new params', of `shapes`) that it
 * holds; a RangeError, before anything is copied, for one held with another shape.
 */
function takeState(
  internals: StateInternals,
  source: HostBackend,
  names: readonly string[],
  shapes: readonly (readonly number[])[],
): Taken[] {
  const layout = source.layout;
  const at = new Map(layout.names.map((name, i) => [name, i]));
  const kept = names.filter((name, j) => {
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
  const sections = [EXP_AVG, EXP_AVG_SQ, SLOW].map((s) =>
    hasSection(layout, s) ? source.viewSection(s) : undefined
  );
  const compact = holdsCodes(source) ? source : undefined;
  const codes = compact ? layout.unsignedCodes.map((_, k) => compact.viewCompact(k)) : [];
  return kept.map((name) => ({
    name,
    sections: sections.map((views) => views?.[name]?.slice()),
    codes: codes.map((views) => {
      const c = views[name];
      return c && { codes: c.codes.slice(), scales: c.scales.slice() };
    }),
  }));
}

/**
 * Writes the taken state into a new state's `backend` (its params and fresh slow weights
 * written). Its layout holds each taken tensor as the source did: of the same length and states
 * format, so in 8 bits (compact) or not alike.
 */
function writeTaken(backend: HostBackend, taken: readonly Taken[]): void {
  [EXP_AVG, EXP_AVG_SQ, SLOW].forEach((s, i) => {
    if (!hasSection(backend.layout, s)) return;
    const views = backend.viewSection(s);
    for (const t of taken) {
      const values = t.sections[i];
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
