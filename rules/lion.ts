/**
 * The Lion rule (Chen et al. 2023, "Symbolic Discovery of Optimization Algorithms"; as optax's
 * `lion` and lucidrains' `lion-pytorch`, docs/SPEC.md): its one moment (`exp_avg`),
 * its option and hyperparameter types, its scalar block and the float64 code that fills it each
 * step, and its TypeScript and WGSL element loops (the AssemblyScript one is assembly/lion.ts).
 *
 * Per element, in f32 (every backend, in this order, with no fused multiply-add):
 *
 * ```text
 * g = gradScale · grad
 * c = beta1 · m + oneMinusBeta1 · g
 * p = p · paramDecay − stepSize · sign(c)      sign(±0) = 0, sign(NaN) = NaN
 * m = beta2 · m + oneMinusBeta2 · g
 * sync (LookAhead): slow = slow + alpha · (p − slow); p = slow
 * ```
 *
 * @module
 */
import type { CommonOptions } from "../base/options.ts";
import type { JsStep, Moment, Rule } from "../base/rule.ts";
import {
  EMA_FIELDS,
  emaScalars,
  LR_WORD,
  scalarLayout,
  type StepScalars,
  wgslBlock,
} from "../base/scalars.ts";
import { betasOption, booleanOption, F32_MAX, lrOption, numberOption } from "../base/schema.ts";
import type { CommonHyperparameters } from "../base/settings.ts";

/**
 * Options of {@linkcode lion}: the common options and `betas` (defaults `lr = 1e-4`, `betas =
 * [0.9, 0.99]`, `weightDecay = 0`, always decoupled).
 *
 * @example
 * ```ts
 * import { lion, type LionOptions } from "@optim/radam";
 * import assert from "node:assert/strict";
 * const options: LionOptions = { lr: 3e-5, weightDecay: 0.1 };
 * assert.equal(lion(options).settings.hyperparameters.beta2, 0.99);
 * ```
 */
export interface LionOptions extends CommonOptions {
  /**
   * Coefficients `[β1, β2]`: of the update's interpolation between the moment and the gradient,
   * and of the moment's running average. Default `[0.9, 0.99]`.
   */
  betas?: readonly [number, number];
}

/**
 * The hyperparameters {@linkcode lion} resolves: the common ones and the betas (its decay is
 * always decoupled).
 *
 * @example
 * ```ts
 * import { lion } from "@optim/radam";
 * import assert from "node:assert/strict";
 * const beta2: number = lion().settings.hyperparameters.beta2;
 * assert.equal(beta2, 0.99);
 * ```
 */
export interface LionHyperparameters extends CommonHyperparameters {
  /** The first beta (the update's interpolation). */
  readonly beta1: number;
  /** The second beta (the moment's average). */
  readonly beta2: number;
}

/** The rule's scalar block (after the header: see base/scalars.ts). */
export const LION_SCALARS = scalarLayout({
  ...EMA_FIELDS,
  paramDecay: "f32",
  stepSize: "f32",
});

const W = LION_SCALARS.word;

function computeScalars(h: LionHyperparameters, _t: number, out: StepScalars): void {
  const lr = out[LR_WORD];
  out[W.gradScale] = h.maximize ? -1 : 1;
  emaScalars(W, h.beta1, h.beta2, out);
  out[W.paramDecay] = 1 - lr * h.weightDecay;
  out[W.stepSize] = lr;
}

/** The exponent k of the bound 2^k below which no moment operation of Lion can overflow. */
const LION_LIMIT = 126;

const f32 = Math.fround;

/** The TypeScript element loop (the operations of the module doc, each rounded to f32). */
const jsStep: JsStep = (s, start, end, f, _u, b, mo) => {
  const { p, g, m0: m } = s;
  const gs = f[b + W.gradScale];
  const b1 = f[b + W.beta1], c1 = f[b + W.oneMinusBeta1];
  const b2 = f[b + W.beta2], c2 = f[b + W.oneMinusBeta2];
  const pd = f[b + W.paramDecay], ss = f[b + W.stepSize];
  for (let i = start; i < end; i++) {
    const pi = p[i];
    const mi = m[i - mo];
    const gi = f32(gs * g[i]);
    const c = f32(f32(b1 * mi) + f32(c1 * gi));
    m[i - mo] = f32(f32(b2 * mi) + f32(c2 * gi));
    const sign = c > 0 ? 1 : c < 0 ? -1 : c === 0 ? 0 : c;
    p[i] = f32(f32(pi * pd) - f32(ss * sign));
  }
};

/**
 * WGSL of the element operations on four elements' values (see {@linkcode Rule.wgsl}). WGSL lets
 * a compiler assume that no float value is infinite or NaN, so where a parameter, moment or
 * gradient as stored is NaN or infinite (under nonFinite "propagate"), the classes of `c`, `m`
 * and `p` are decided from the stored bits and the finite scalars, as IEEE-754 has them on the
 * CPU, and returned as the specials of `p` and `m` (RULE_VALUES_WGSL). Lion's scalars other than
 * `paramDecay` and `stepSize` are at most 1 (`gradScale` ±1, the clipping factor, the betas and
 * their f32 complements), so with every magnitude as stored below 2¹²⁶ (`LION_LIMIT`) no product
 * or sum of `c` and `m` reaches 2¹²⁷; a vec4 with one at or above it takes the checked path: the
 * sign of `c` from its two products' magnitudes, with no sum (a contracted one could overflow;
 * an overflowing `c` has the sign all the same), and `β2 · m + (1 − β2) · g`, which can round past
 * f32's largest (`fround(β2) + fround(1 − β2)` may exceed 1), to the infinity IEEE-754 gives
 * (`sum_checked`). A finite `p · paramDecay − stepSize · sign(c)` can pass f32's largest (a parameter of
 * 2¹²⁷ or more, `|paramDecay| > 1` or `stepSize ≥ 2¹²⁷`, all else stays within it): there
 * `lion_step_overflow` decides the infinity the CPU's f32 operations round it to.
 */
const WGSL = /* wgsl */ `
${wgslBlock(LION_SCALARS, "LionScalars", "ring")}
// sign(x + y) of finite x, y from their magnitudes (no sum, which may overflow): the larger's
// sign, 0 where they cancel.
fn lion_sign_of_sum(x: vec4<f32>, y: vec4<f32>) -> vec4<f32> {
  let ax = abs(x);
  let ay = abs(y);
  return select(select(select(vec4<f32>(0.0), sign(x), x == y), sign(y), ay > ax), sign(x), ax > ay);
}

// The bits of the infinity p · pd − ss · s is (s = sign(c): −1, 0 or 1; p, pd, ss finite) where
// it passes f32's largest, as IEEE-754 rounds it on the CPU (WGSL lets an overflow give any
// value), else 0: p · pd overflows exactly where (p · 2⁻⁶⁴) · (pd · 2⁻⁶⁴) rounds to 1 or more
// (scaling by powers of two is exact where it matters: a factor below 2⁻⁶² makes the product far
// from the largest); else the difference of that finite product overflows exactly where its half
// does past 2¹²⁷ (as centralization's minus_mean).
fn lion_step_overflow(p: vec4<f32>, pd: f32, ss: f32, s: vec4<f32>) -> vec4<u32> {
  let scaled = (p * ${2 ** -64}) * (pd * ${2 ** -64});
  let half = (p * pd) * 0.5 - (ss * 0.5) * s;
  let big = abs(scaled) >= vec4<f32>(1.0);
  let neg = select(half < vec4<f32>(0.0), scaled < vec4<f32>(0.0), big);
  let inf = big | (abs(half) >= vec4<f32>(${2 ** 127}));
  return select(vec4<u32>(0u), select(vec4<u32>(0x7f800000u), vec4<u32>(0xff800000u), neg), inf);
}

fn rule_values(base: u32, grad_scale: f32, pre: f32, p0: vec4<f32>, g: vec4<f32>, m0: vec4<f32>, v0: vec4<f32>) -> RuleValues {
  let b = loadLionScalars(base);
  let gi = grad_scale * (g * pre);
  let c = b.beta1 * m0 + b.oneMinusBeta1 * gi;
  var r = RuleValues(p0, b.beta2 * m0 + b.oneMinusBeta2 * gi, v0, vec4<u32>(0u), vec4<u32>(0u), vec4<u32>(0u));
  var sign_c = select(select(vec4<f32>(-1.0), vec4<f32>(1.0), c > vec4<f32>(0.0)), vec4<f32>(0.0), c == vec4<f32>(0.0));
  // Values as stored that are NaN, infinite or of magnitude 2^126 or more (rare): the classes
  // from the bits, and the moment's overflow (see WGSL's doc in rules/lion.ts).
  let pb = bitcast<vec4<u32>>(p0);
  let mb = bitcast<vec4<u32>>(m0);
  let gb = bitcast<vec4<u32>>(g);
  // (LION_LIMIT: below 2¹²⁶ no moment operation can pass f32's largest, see WGSL's doc.)
  let wide = at_least(pb, mb, gb, vec4<u32>(0u), limit_bits(${LION_LIMIT}));
  if (any(wide)) {
    let sg = special_times(gb, grad_scale);
    let sc = special_sum(special_times(mb, b.beta1), sg);
    let inf_sign = select(vec4<f32>(-1.0), vec4<f32>(1.0), sc < vec4<u32>(0x80000000u));
    let wide_sign = select(lion_sign_of_sum(b.beta1 * m0, b.oneMinusBeta1 * gi), inf_sign, sc != vec4<u32>(0u));
    sign_c = select(sign_c, wide_sign, wide);
    // β2 · m + (1 − β2) · g near f32's largest: from the halves, which cannot overflow however
    // contracted, and are exact halves of the products where the sum is 2¹⁰⁰ or more; doubled, a
    // half below 2¹²⁷ gives the CPU's finite value, one at or above it the infinity sum_checked
    // decides. (A finite m is clamped: one this missed would read ±FLT_MAX, not pass as IEEE's.)
    let hm = b.beta2 * (m0 * 0.5) + b.oneMinusBeta2 * (gi * 0.5);
    r.m = select(r.m, select(r.m, hm * 2.0, abs(hm) >= vec4<f32>(${2 ** 99})), wide);
    r.m = select(r.m, clamp(r.m, vec4<f32>(-${F32_MAX}), vec4<f32>(${F32_MAX})), wide);
    let sm = sum_checked(b.beta2 * m0, special_times(mb, b.beta2), b.oneMinusBeta2 * gi, special_times(sg, b.oneMinusBeta2));
    r.ms = select(vec4<u32>(0u), sm, wide);
    // p · paramDecay − stepSize · sign(c): NaN where c is, else p · paramDecay's where not finite.
    let sp = select(special_times(pb, b.paramDecay), vec4<u32>(0x7fc00000u), sc == vec4<u32>(0x7fc00000u));
    r.ps = select(vec4<u32>(0u), sp, wide);
  }
  r.p = p0 * b.paramDecay - b.stepSize * sign_c;
  // A step of magnitude 2^127 or more, a decay that grows, or a wide p: p may overflow (rare).
  if (any(wide) || abs(b.paramDecay) > 1.0 || b.stepSize >= ${2 ** 127}) {
    r.ps = select(lion_step_overflow(p0, b.paramDecay, b.stepSize, sign_c), r.ps, r.ps != vec4<u32>(0u));
  }
  return r;
}
`;

const MOMENTS: readonly Moment[] = Object.freeze([{ name: "exp_avg", nonNegative: false }]);

/** Lion. */
export const LION: Rule<LionHyperparameters> = Object.freeze({
  name: "lion",
  options: [
    lrOption(1e-4),
    betasOption([0.9, 0.99]),
    numberOption("weightDecay", 0, "required", 0, F32_MAX),
    booleanOption("maximize", false, "required"),
  ],
  moments: () => MOMENTS,
  scalars: LION_SCALARS,
  computeScalars,
  jsStep,
  wgsl: WGSL,
});
