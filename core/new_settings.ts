/**
 * A state's arena under other settings: the TensorFlow.js adapter's `loadState` reads a
 * checkpoint as saved (its optimizer, hyperparameters and learning rate), and its
 * `optimizer.state` is then to be saved as a step of that optimizer would save it, under its
 * own settings, which its `setLearningRate` may change again before the step.
 *
 * @module
 */
import type { Settings } from "../base/settings.ts";
import { checkSavableSize, type SavedBeside } from "./checkpoint_header.ts";
import { layoutIndices, planNamedState } from "./plan.ts";
import { coreOf, type OptimizerState, restoreState } from "./state.ts";

/**
 * The state `state` holds (its arena, step counts, shapes and order) under `config`, where
 * `config` lays its tensors out exactly as the state's settings did (the same moments, slow
 * weights, states format, groups and `gc`): `state` is then ended (every later use of it throws
 * as a disposed state's) and the new state owns the arena. Else undefined, and `state`
 * unchanged. Where every checkpoint of it, with what its holder saves beside it (`beside`: see
 * `checkSavableSize`), would not fit the cap on a header's length, `checkSavableSize`'s
 * RangeError, `state` unchanged: such a state could not be saved under `config`.
 *
 * @example
 * ```ts
 * import { stateUnder } from "./new_settings.ts";
 * import { adam, adamw, lion, saveState } from "@optim/radam";
 * import assert from "node:assert/strict";
 *
 * const state = await adam({ lr: 0.1 }).init({ w: new Float32Array(3) });
 * assert.equal(stateUnder(state, lion().settings), undefined); // (one moment: another arena)
 * const moved = stateUnder(state, adamw({ lr: 0.5 }).settings)!;
 * assert.equal(moved.optimizer, "adamw");
 * await assert.rejects(saveState(state), TypeError); // (ended)
 * assert.ok((await saveState(moved)).length > 0);
 * const long = { name: "w".repeat(100_000_000), shape: [3], dtype: "F32", byteLength: 12 } as const;
 * const beside = { tensors: [long], metadata: {} };
 * assert.throws(() => stateUnder(moved, adamw().settings, beside), RangeError); // (too long)
 * assert.equal(moved.step, 0); // (unchanged)
 * ```
 */
export function stateUnder(
  state: OptimizerState<unknown>,
  config: Settings,
  beside?: SavedBeside,
): OptimizerState<unknown> | undefined {
  const core = coreOf(state);
  const { backend, shapes, order } = core;
  const layout = backend.layout;
  if (core.config.loop.gc !== config.loop.gc) return undefined;
  try {
    const lengths = layoutIndices(layout, order).map((i) => layout.lengths[i]);
    const planned = planNamedState(config, order, lengths); // (its names checked when made)
    if (JSON.stringify(planned) !== JSON.stringify(layout)) return undefined;
  } catch {
    return undefined; // (names it could not save: the state is left as it is)
  }
  checkSavableUnder(state, config, beside);
  const info = { steps: state.step, skipped: state.skippedSteps, shapes, order };
  core.disposed = true; // (this core ends; the arena goes on in the new one)
  core.current = undefined;
  return restoreState(config, backend, info);
}

/**
 * Throws `checkSavableSize`'s RangeError where a checkpoint of `state` (its layout, shapes and
 * tensor order) under settings `config` (a new learning rate: its digits in the header), with
 * what its holder saves beside it (`beside`), would pass the cap on a header's length: the check
 * of new settings for a state, made before they are taken, so that nothing changes where they
 * are refused (the TensorFlow.js adapter's `setLearningRate`, on a state loaded or stepped).
 * Returns the length of that header's JSON before its padding, as `checkSavableSize`.
 *
 * @example
 * ```ts
 * import { checkSavableUnder } from "./new_settings.ts";
 * import { radam } from "@optim/radam";
 * import assert from "node:assert/strict";
 *
 * const state = await radam().init({ w: new Float32Array(2) });
 * checkSavableUnder(state, radam({ lr: 1.2345678901234567e-10 }).settings); // (fits)
 * const long = { name: "w".repeat(100_000_000), shape: [2], dtype: "F32", byteLength: 8 } as const;
 * const beside = { tensors: [long], metadata: {} };
 * assert.throws(() => checkSavableUnder(state, radam().settings, beside), RangeError);
 * ```
 */
export function checkSavableUnder(
  state: OptimizerState<unknown>,
  config: Settings,
  beside?: SavedBeside,
): number {
  const { backend, shapes, order } = coreOf(state);
  return checkSavableSize(config, backend.layout, shapes, order, beside);
}

/**
 * The state `state` holds (its arena, step counts, shapes and order) under `config`, where
 * `config` is the state's own settings with another learning rate only (`withLearningRate`'s:
 * every other field the same value, the records it shares with them): laid out as the state is
 * by construction, so not planned again, nor checked against the cap on a header's length (the
 * caller checked `config` when it was given: {@linkcode checkSavableUnder}). Else undefined.
 * Unlike {@linkcode stateUnder}, `state` is left as it is: the two share the arena until one of them is ended by {@linkcode endBeside}
 * (the other disposed would take the arena with it). For a step under a new learning rate that
 * leaves the state it would replace as it was where it is refused: the state stepped is then
 * ended, and the one made here otherwise.
 *
 * @example
 * ```ts
 * import { endBeside, rateBeside } from "./new_settings.ts";
 * import { withLearningRate } from "./options.ts";
 * import { adam, lion, saveState, step } from "@optim/radam";
 * import assert from "node:assert/strict";
 *
 * const optimizer = adam({ lr: 0.1 });
 * const state = await optimizer.init({ w: new Float32Array(3) });
 * assert.equal(rateBeside(state, lion({ lr: 0.5 }).settings), undefined); // (not a rate only)
 * const under = rateBeside(state, withLearningRate(optimizer.settings, 0.5))!;
 * const next = step(under, { w: new Float32Array([1, 2, 3]) }); // (under lr 0.5)
 * endBeside(state); // (taken: the state it replaces ends; the arena goes on in `next`)
 * await assert.rejects(saveState(state), TypeError);
 * assert.equal(next.step, 1);
 * ```
 */
export function rateBeside(
  state: OptimizerState<unknown>,
  config: Settings,
): OptimizerState<unknown> | undefined {
  const core = coreOf(state);
  if (!sameButRate(core.config, config)) return undefined;
  const { backend, shapes, order } = core;
  const info = { steps: state.step, skipped: state.skippedSteps, shapes, order };
  return restoreState(config, backend, info);
}

/** Whether settings `a` and `b` are the same but for their learning rate (the same values). */
function sameButRate(a: Settings, b: Settings): boolean {
  const same = (x: object, y: object, but: string) => {
    const keys = Object.keys(x);
    if (keys.length !== Object.keys(y).length) return false;
    return keys.every((k) => k === but || (x as never)[k] === (y as never)[k]);
  };
  return same(a, b, "hyperparameters") && same(a.hyperparameters, b.hyperparameters, "lr");
}

/**
 * Ends `state` without disposing its arena, which a state {@linkcode rateBeside} made over it
 * goes on with: every later use of `state` throws as a disposed state's.
 *
 * @example
 * ```ts
 * import { endBeside, rateBeside } from "./new_settings.ts";
 * import { withLearningRate } from "./options.ts";
 * import { radam, saveState } from "@optim/radam";
 * import assert from "node:assert/strict";
 *
 * const optimizer = radam();
 * const state = await optimizer.init({ w: new Float32Array(2) });
 * const under = rateBeside(state, withLearningRate(optimizer.settings, 0.5))!;
 * endBeside(under); // (refused: the state goes on as it was)
 * assert.ok((await saveState(state)).length > 0);
 * await assert.rejects(saveState(under), TypeError);
 * ```
 */
export function endBeside(state: OptimizerState<unknown>): void {
  const core = coreOf(state);
  core.disposed = true;
  core.current = undefined;
}
