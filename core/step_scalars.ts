/**
 * The scalars of a step, computed on the host in float64 before the kernel runs: the learning
 * rate of step `t` (a schedule's value checked), each scalar block's scalars (the optimizer's
 * own and each parameter group's), and gradient clipping folded into them; and the error of a
 * step refused for a non-finite gradient.
 *
 * @module
 */
import { described, isThenable, markHandled, textHint } from "../base/_errors.ts";
import type { HostBackend } from "../base/backend.ts";
import type { Hyperparameters, Rule } from "../base/rule.ts";
import { HEADER, LR_WORD, type StepScalars } from "../base/scalars.ts";
import type { Settings } from "../base/settings.ts";
import { label } from "../base/tensors.ts";
import { F32_MAX } from "./options.ts";

/** What a state's scalar blocks are computed from, and into (a state's core holds them). */
export interface ScalarBlocks {
  readonly config: Settings;
  /** The rule it runs (rules/). */
  readonly rule: Rule;
  /**
   * Per scalar block (0: the optimizer's own settings, g: parameter group g): the rule's
   * hyperparameters with the group's weight decay, its lr scale, and its scalars of the step.
   */
  readonly groupHypers: readonly Hyperparameters[];
  readonly groupLrScales: readonly number[];
  readonly groupScalars: readonly StepScalars[];
  /** The step t whose scalars `groupScalars` hold, kept while steps at t are skipped (else 0). */
  scalarsAt: number;
}

/** The learning rate of step `t`, checked. */
function learningRateAt(config: Settings, t: number): number {
  const given = config.hyperparameters.lr;
  const lr = typeof given === "function" ? given(t) : given;
  if (isThenable(lr)) {
    // Refused, and never awaited: its rejection, if any, must not be left unhandled.
    markHandled(lr);
    throw new TypeError(
      `The learning-rate schedule returned a Promise at step ${t}; a schedule must return a finite number ≥ 0 synchronously, not a Promise (it cannot be an async function)`,
    );
  }
  if (typeof lr !== "number" || !Number.isFinite(lr) || lr < 0) {
    const message = `The learning-rate schedule returned ${
      described(lr)
    } at step ${t}; expected a finite number ≥ 0${textHint("a number", lr)}`;
    throw typeof lr === "number" ? new RangeError(message) : new TypeError(message);
  }
  return lr;
}

/** The error for a schedule's `lr` at step `t` that times block `g`'s scale is past f32's range. */
function scaledLearningRateError(lr: number, t: number, g: number, scale: number): RangeError {
  return new RangeError(
    `The learning-rate schedule returned ${lr} at step ${t}${
      g === 0 ? "" : `, which times groups[${g - 1}].lrScale (${scale}) is ${lr * scale}`
    }, past the largest f32 (${F32_MAX}); the step was not taken`,
  );
}

/**
 * Every block's scalars of step `t` (block 0: the optimizer's own settings; g: group g, with
 * its lr scale and weight decay): the rule's, then LookAhead's `sync` and `alpha`, from the
 * learning rate `known` where the host computed it for t already (else the schedule's, asked
 * now). Returns that learning rate. Throws a RangeError for a `t` past 2⁵³ − 1, which a count
 * cannot hold exactly.
 */
export function computeScalars(core: ScalarBlocks, t: number, known?: number): number {
  core.scalarsAt = 0;
  if (!Number.isSafeInteger(t)) {
    throw new RangeError(
      `The state cannot take step ${t}: a step count is exact up to 2⁵³ − 1 (past it, it would count no further, and a checkpoint could not hold it); the step was not taken`,
    );
  }
  const config = core.config;
  const lr = known ?? learningRateAt(config, t);
  const la = config.lookahead;
  for (let g = 0; g < core.groupScalars.length; g++) {
    const out = core.groupScalars[g];
    const scaled = lr * core.groupLrScales[g];
    if (scaled > F32_MAX) throw scaledLearningRateError(lr, t, g, core.groupLrScales[g]);
    out[LR_WORD] = scaled;
    core.rule.computeScalars(core.groupHypers[g], t, out);
    checkF32Range(core.rule, out, t, g);
    out[HEADER.alpha] = la ? la.alpha : 0;
    out[HEADER.sync] = la && t % la.k === 0 ? 1 : 0;
  }
  return lr;
}

/**
 * {@linkcode computeScalars} of step `t`, unless `core` holds them already: a schedule is asked
 * once for each t (before the non-finite check, so that gradients it writes are checked too),
 * its value kept while steps at t are skipped or refused by that check. Returns `t`.
 */
export function scalarsOf(core: ScalarBlocks, t: number): number {
  if (core.scalarsAt === t) return t;
  computeScalars(core, t);
  return core.scalarsAt = t;
}

/**
 * Throws a RangeError where one of a block's f32 scalars, finite in float64, is past f32's range
 * (its options are each within it, but a product of them is not: a decoupled `1 − lr ·
 * weightDecay`, RAdam/Adam's `lr / (1 − β1^t)` with β1 near 1): rounded to ±Infinity, it would
 * make every zero it multiplies NaN.
 */
function checkF32Range(rule: Rule, out: StepScalars, t: number, g: number): void {
  const fields = rule.scalars.fields;
  for (let i = 0; i < fields.length; i++) {
    const x = out[i];
    if (fields[i][1] !== "f32" || !Number.isFinite(x) || Number.isFinite(Math.fround(x))) continue;
    throw new RangeError(
      `The scalar ${fields[i][0]} of step ${t}${
        g === 0 ? "" : ` of groups[${g - 1}]`
      } is ${x}, past the largest f32 (${F32_MAX}): the learning rate and the ` +
        "hyperparameters are too large together; the step was not taken",
    );
  }
}

/**
 * The least normal f32, 2⁻¹²⁶: a gradient scale below it would be rounded to a subnormal f32.
 */
const F32_MIN_NORMAL = 2 ** -126;

/**
 * Clipping by `coef` (in (0, 1), or 0): folded into every block's gradient scale, or, where the
 * scale would be a subnormal f32 (a norm above 2¹²⁶ times the limit: 3 to 23 significant bits,
 * the clipped gradients off by up to several percent), applied to the gradient slots in float64
 * instead, each product rounded once to f32.
 */
export function clip(backend: HostBackend, blocks: readonly StepScalars[], coef: number): void {
  if (coef === 0 || coef >= F32_MIN_NORMAL) {
    for (let g = 0; g < blocks.length; g++) blocks[g][HEADER.gradScale] *= coef;
    return;
  }
  for (const name of backend.layout.names) {
    const g = backend.grads[name];
    for (let i = 0; i < g.length; i++) g[i] *= coef;
  }
}

/**
 * The error for `nonFinite: "throw"`, naming the first tensor with a NaN or ±Infinity in
 * `order`: the order the tensors were given, which an 8-bit state's arena may not keep. `also`
 * goes after what was found (why such a step is not skipped either).
 */
export function nonFiniteError(
  backend: HostBackend,
  order: readonly string[],
  also = "",
): RangeError {
  for (const name of order) {
    const g = backend.grads[name];
    for (let i = 0; i < g.length; i++) {
      if (!Number.isFinite(g[i])) {
        return new RangeError(
          `The gradient of ${label(name)} holds ${
            g[i]
          } at index ${i}${also}; the step was not taken`,
        );
      }
    }
  }
  return new RangeError(`A gradient holds a non-finite number${also}; the step was not taken`);
}
