/**
 * The RAdam / Adam / AdamW rule (docs/SPEC.md): one rule whose flags are its hyperparameters.
 * RAdam's optimizers (`radam`, `ranger`) resolve the rectification's (`threshold`,
 * `degenerateToSgd`, `nesterov`: {@linkcode RADAM_OPTIONS}); Adam's (`adam`, `adamw`) do not,
 * and take Adam's step. Its two moments (`exp_avg`, `exp_avg_sq`), its scalar block and the
 * float64 code that fills it each step, and its TypeScript and WGSL element loops (the
 * AssemblyScript one is assembly/adam.ts); its option and hyperparameter types are
 * adam_options.ts's.
 *
 * Per element, in f32 (every backend, in this order, with no fused multiply-add):
 *
 * ```text
 * g = gradScale · grad (+ coupledDecay · p, only when coupledDecay ≠ 0)
 * m = beta1 · m + oneMinusBeta1 · g
 * v = beta2 · v + oneMinusBeta2 · (g · g)
 * num = m, or momentMix · m + gradMix · g when gradMix ≠ 0 (Nesterov)
 * adaptive: p = p · paramDecay − stepSize · (num / (sqrt(v) + eps))
 * momentum: p = p · paramDecay − stepSize · num
 * moments only: p unchanged
 * sync (LookAhead): slow = slow + alpha · (p − slow); p = slow
 * ```
 *
 * @module
 */
import type { JsStep, Moment, Rule } from "../base/rule.ts";
import {
  EMA_FIELDS,
  emaScalars,
  LR_WORD,
  scalarLayout,
  type StepScalars,
  wgslBlock,
} from "../base/scalars.ts";
import {
  betasOption,
  booleanOption,
  F32_MAX,
  lrOption,
  numberOption,
  type Schema,
} from "../base/schema.ts";
import type { AdamHyperparameters, RAdamHyperparameters } from "./adam_options.ts";

/** Kernel mode: adaptive update `p -= stepSize · m / (sqrt(v) + eps)`. */
export const MODE_ADAPTIVE = 0;
/** Kernel mode: bias-corrected momentum-SGD update `p -= stepSize · m`. */
export const MODE_MOMENTUM = 1;
/** Kernel mode: moments only; the parameters are left untouched. */
export const MODE_MOMENTS_ONLY = 2;

/**
 * What the kernel's scalars are computed from: Adam's hyperparameters, and RAdam's when the
 * optimizer is RAdam (a `threshold` is what rectifies).
 */
type AdamRuleHyperparameters =
  & AdamHyperparameters
  & Partial<Pick<RAdamHyperparameters, "threshold" | "degenerateToSgd" | "nesterov">>;

/** Adam's options (`adam`, `adamw`): the rule's own schema. */
const ADAM_OPTIONS: Schema = [
  lrOption(1e-3),
  betasOption([0.9, 0.999]),
  numberOption("eps", 1e-8, "required", 0, F32_MAX),
  numberOption("weightDecay", 0, "required", 0, F32_MAX),
  booleanOption("decoupledWeightDecay", false, "required"),
  booleanOption("maximize", false, "required"),
];

/** RAdam's options (`radam`, `ranger`): Adam's, and the rectification's. */
export const RADAM_OPTIONS: Schema = [
  ...ADAM_OPTIONS,
  numberOption("threshold", 5, "required", 4),
  booleanOption("degenerateToSgd", true, "required"),
  booleanOption("nesterov", false, "always"),
];

/** The rule's scalar block (after the header: see base/scalars.ts). */
export const ADAM_SCALARS = scalarLayout({
  coupledDecay: "f32",
  ...EMA_FIELDS,
  paramDecay: "f32",
  stepSize: "f32",
  eps: "f32",
  mode: "u32",
  gradMix: "f32",
  momentMix: "f32",
});

/** ρ∞ = 2 / (1 − β2) − 1. */
export function rhoInfinity(beta2: number): number {
  return 2 / (1 - beta2) - 1;
}

/**
 * 1 − β^t in float64 to a few ulps, also where β^t is near 1 (β near 1, small t): there
 * `1 − β^t` is the difference of two nearly equal numbers, wrong in its 10th significant digit
 * and beyond (β = 1 − 1e-9: in the 7th at t = 2), so it is −expm1(t · ln β), with ln β as
 * log1p(β − 1) (β − 1 exact for β ≥ 0.5). Elsewhere (β^t ≤ 1 − 2⁻¹⁰) `1 − β^t`, exact to 10
 * bits' loss at most, as before.
 */
function oneMinusPow(beta: number, t: number): number {
  const q = Math.pow(beta, t);
  return q > 1 - 2 ** -10 ? -Math.expm1(t * Math.log1p(beta - 1)) : 1 - q;
}

/** 2 B_n / n! for n = 2, 4, …, 12 (B_n the Bernoulli numbers): {@linkcode rhoAt}'s series. */
const RHO_SERIES = [1 / 6, -1 / 360, 1 / 15120, -1 / 604800, 1 / 23950080, -691 / 653837184000];

/**
 * ρt = ρ∞ − 2 t β2^t / (1 − β2^t), in float64. Its two terms are each about 2 / (1 − β2), and ρt
 * is about t: where β2^t > 1 − 2⁻¹⁰ (β2 near 1, ρt far below ρ∞) it is their difference
 * expanded, ρt = t + Σ (2 B_n / n!) (1 − t^n) a^(n−1) over even n ≥ 2 with a = ln(1/β2) (the
 * difference of x / (e^x − 1) at −a and t·a, times 2 / a), each term below 3e-8 of the one
 * before; elsewhere the formula as written, which loses 10 bits at most there. (As the plain
 * difference of its terms, with β2 = 0.999999, ρ4 came out 4.0000064, rectified at the paper's
 * threshold 4, where it is 3.9999975; with β2 = 1 − 1e-9, ρt was 2t − 1.)
 */
export function rhoAt(beta2: number, t: number): number {
  const q = Math.pow(beta2, t);
  if (!(q > 1 - 2 ** -10)) return rhoInfinity(beta2) - (2 * t * q) / (1 - q);
  const a = -Math.log1p(beta2 - 1);
  const x = t * a;
  let rho = t;
  for (let k = 0; k < RHO_SERIES.length; k++) {
    const n = 2 * k + 2;
    rho += RHO_SERIES[k] * (Math.pow(a, n - 1) - Math.pow(x, n) / a);
  }
  return rho;
}

/** The least positive f32, 2⁻¹⁴⁹ (a subnormal). */
const F32_MIN_POSITIVE = 2 ** -149;

/**
 * The f32 `eps` scalar of a step: `folded` (Adam's `eps · sqrt(bc2)`, RAdam's `eps`), or, where
 * that rounds to an f32 0 while the option `eps` is not 0, the least positive f32, so that an
 * element whose m and v are 0 steps by 0 / (0 + eps) = 0, as PyTorch's `m̂ / (sqrt(v̂) + eps)`
 * does, and not by 0 / 0 = NaN (Adam's `1e-45 · sqrt(bc2)` is 0 in f32). It changes nothing
 * else: a non-zero f32 v has a square root above 2⁻⁷⁵, which no eps this small moves.
 */
function positiveEps(folded: number, eps: number): number {
  return eps > 0 && Math.fround(folded) === 0 ? F32_MIN_POSITIVE : folded;
}

const W = ADAM_SCALARS.word;

/** The scalars of step `t` at the learning rate `out[LR_WORD]`, into `out`. */
function computeScalars(h: AdamRuleHyperparameters, t: number, out: StepScalars): void {
  const lr = out[LR_WORD];
  const { beta1, beta2, eps, weightDecay } = h;
  const bc1 = oneMinusPow(beta1, t);
  const bc2 = oneMinusPow(beta2, t);
  out[W.gradScale] = h.maximize ? -1 : 1;
  out[W.coupledDecay] = h.decoupledWeightDecay ? 0 : weightDecay;
  out[W.paramDecay] = h.decoupledWeightDecay ? 1 - lr * weightDecay : 1;
  emaScalars(W, beta1, beta2, out);
  out[W.gradMix] = 0;
  out[W.momentMix] = 1;
  if (h.threshold === undefined) {
    // Adam: lr/bc1 · m / (sqrt(v)/sqrt(bc2) + eps)
    //   == (lr·sqrt(bc2)/bc1) · m / (sqrt(v) + eps·sqrt(bc2))
    out[W.mode] = MODE_ADAPTIVE;
    out[W.stepSize] = (lr * Math.sqrt(bc2)) / bc1;
    out[W.eps] = positiveEps(eps * Math.sqrt(bc2), eps);
    return;
  }
  const rhoInf = rhoInfinity(beta2);
  const rho = rhoAt(beta2, t);
  out[W.eps] = positiveEps(eps, eps);
  // m̂: m / bc1, or with Nesterov (optax) β1 m / (1 − β1^(t+1)) + (1 − β1) g / bc1, factored
  // by the larger of its two coefficients so that neither the step size nor a mix over- or
  // underflows f32 (a tiny β1 made the gradient's mix 1/β1: Infinity below about 3e-39):
  //   = (β1 / (1 − β1^(t+1))) · (m + gradMix · g)               (β1's term the larger)
  //   = ((1 − β1) / bc1) · (momentMix · m + g)                   (the gradient's the larger)
  let mHatNum = 1, mHatDen = bc1;
  if (h.nesterov && beta1 !== 0) {
    const bc1Next = oneMinusPow(beta1, t + 1);
    if (beta1 / bc1Next >= (1 - beta1) / bc1) {
      mHatNum = beta1;
      mHatDen = bc1Next;
      out[W.gradMix] = ((1 - beta1) * bc1Next) / (beta1 * bc1);
    } else {
      mHatNum = 1 - beta1;
      out[W.gradMix] = 1;
      out[W.momentMix] = (beta1 * bc1) / ((1 - beta1) * bc1Next);
    }
  }
  if (rho > h.threshold) {
    // The rectifier r.
    const r = Math.sqrt(((rho - 4) * (rho - 2) * rhoInf) / ((rhoInf - 4) * (rhoInf - 2) * rho));
    out[W.mode] = MODE_ADAPTIVE;
    out[W.stepSize] = (lr * r * Math.sqrt(bc2) * mHatNum) / mHatDen;
  } else if (h.degenerateToSgd) {
    out[W.mode] = MODE_MOMENTUM;
    out[W.stepSize] = (lr * mHatNum) / mHatDen;
  } else {
    out[W.mode] = MODE_MOMENTS_ONLY;
    out[W.stepSize] = 0;
    out[W.paramDecay] = 1;
  }
}

const f32 = Math.fround;

/** The TypeScript element loop (the operations of the module doc, each rounded to f32). */
const jsStep: JsStep = (s, start, end, f, u, b, mo) => {
  const { p, g, m0: m, m1: v } = s;
  const gs = f[b + W.gradScale], wd = f[b + W.coupledDecay];
  const b1 = f[b + W.beta1], c1 = f[b + W.oneMinusBeta1];
  const b2 = f[b + W.beta2], c2 = f[b + W.oneMinusBeta2];
  const pd = f[b + W.paramDecay], ss = f[b + W.stepSize], eps = f[b + W.eps];
  const mode = u[b + W.mode];
  const coupled = wd !== 0;
  const gm = f[b + W.gradMix], mm = f[b + W.momentMix], nesterov = gm !== 0;
  for (let i = start; i < end; i++) {
    const pi = p[i];
    let gi = f32(gs * g[i]);
    if (coupled) gi = f32(gi + f32(wd * pi));
    const j = i - mo;
    const mi = f32(f32(b1 * m[j]) + f32(c1 * gi));
    const vi = f32(f32(b2 * v[j]) + f32(c2 * f32(gi * gi)));
    m[j] = mi;
    v[j] = vi;
    const num = nesterov ? f32(f32(mm * mi) + f32(gm * gi)) : mi;
    let pNew = pi;
    if (mode === MODE_ADAPTIVE) {
      pNew = f32(f32(pi * pd) - f32(ss * f32(num / f32(f32(Math.sqrt(vi)) + eps))));
    } else if (mode === MODE_MOMENTUM) {
      pNew = f32(f32(pi * pd) - f32(ss * num));
    }
    p[i] = pNew;
  }
};

/**
 * WGSL of the element operations on four elements' values (see {@linkcode Rule.wgsl}). Where a
 * parameter, moment or gradient as stored is NaN or an infinity (under nonFinite "propagate"),
 * `adam_special` decides which new values are NaN or infinite from the bits as stored, the finite
 * scalars and, for the finite values among them, whether an operation overflows (told from scaled
 * or halved operands), as IEEE-754 has them on the CPU (WGSL lets a compiler assume that no float
 * value is NaN or infinite: RULE_VALUES_WGSL); where `v` is +Infinity and the numerator finite, the
 * quotient `num / (sqrt(v) + eps)` is 0.
 */
const WGSL = /* wgsl */ `
${wgslBlock(ADAM_SCALARS, "AdamScalars", "ring")}
fn rule_values(base: u32, grad_scale: f32, pre: f32, p0: vec4<f32>, g: vec4<f32>, m0: vec4<f32>, v0: vec4<f32>) -> RuleValues {
  let b = loadAdamScalars(base);
  var gi = grad_scale * (g * pre);
  if (b.coupledDecay != 0.0) { gi = gi + b.coupledDecay * p0; }
  let mi = b.beta1 * m0 + b.oneMinusBeta1 * gi;
  let vi = b.beta2 * v0 + b.oneMinusBeta2 * (gi * gi);
  // Nesterov (optax): the update uses momentMix · m + gradMix · g in place of m.
  var num = mi;
  if (b.gradMix != 0.0) { num = b.momentMix * mi + b.gradMix * gi; }
  let z = vec4<u32>(0u);
  // A NaN or an infinity as stored, or a magnitude from which an operation may pass f32's largest
  // (adam_limit), or an eps below 2⁻⁶⁴ over a v below 2⁻¹²⁶ (rare): the classes from the bits,
  // and each overflow from scaled or halved operands.
  let special = at_least(bitcast<vec4<u32>>(p0), bitcast<vec4<u32>>(g), bitcast<vec4<u32>>(m0), bitcast<vec4<u32>>(v0), adam_limit(b));
  if (any(special) || (b.mode == ${MODE_ADAPTIVE}u && b.eps < 0x1p-64f && any(vi < vec4<f32>(0x1p-126f)))) {
    var r = adam_special(b, grad_scale, pre, p0, bitcast<vec4<u32>>(p0), g, bitcast<vec4<u32>>(g), m0, bitcast<vec4<u32>>(m0), v0, bitcast<vec4<u32>>(v0), gi, vi, num);
    r.m = mi;
    r.v = vi;
    return r;
  }
  return RuleValues(adam_p(b, p0, num, adam_quotient(b, num, vi)), mi, vi, z, z, z);
}

// The bits of 2^k, below which no magnitude as stored lets an f32 operation of the step pass f32's
// largest (docs/SPEC.md, "Numerics the backends share"): with |p|, |g|, |m|, |v| < 2^k and each
// scalar below 2^exp_above, |g'| ≤ 2^(k+a), |m'| ≤ 2^(k+a+1), |v'| ≤ 2^(2k+2a+1), |num| ≤ 2^n
// (n = k+a+2+em), the quotient below 2^(n−le+1) (sqrt(v') + eps ≥ 2^le, le ≥ −64: a smaller eps
// takes a v' below 2⁻¹²⁶ through the checked path), at most 2¹²⁷ and stepSize times it at most
// 2¹²⁶, and p · paramDecay at most 2¹²⁶.
fn adam_limit(b: AdamScalars) -> u32 {
  let a = max(exp_above(bitcast<u32>(b.coupledDecay)), 0) + 1;
  let em = max(max(exp_above(bitcast<u32>(b.momentMix)), exp_above(bitcast<u32>(b.gradMix))), 0);
  let le = clamp(exp_above(bitcast<u32>(b.eps)) - 1, -64, 0);
  let pd = exp_above(bitcast<u32>(b.paramDecay));
  let ss = exp_above(bitcast<u32>(b.stepSize));
  return limit_bits(min(min(63 - a, 125 - a - em), min(126 - pd, 123 - max(ss, -1) - a - em + le)));
}

// num / (sqrt(v) + eps). An eps > 0 held as an f32 subnormal, which a GPU may flush to 0 (Metal
// does): where num and v are 0 the quotient is 0, as on the CPU, not 0 / 0 (the same value
// wherever eps is kept).
fn adam_quotient(b: AdamScalars, num: vec4<f32>, vi: vec4<f32>) -> vec4<f32> {
  let tiny = (num == vec4<f32>(0.0)) & (vi == vec4<f32>(0.0)) & vec4<bool>(bitcast<u32>(b.eps) != 0u);
  return select(num / (sqrt(vi) + b.eps), num, tiny);
}

// The new parameters of the mode from the numerator and the quotient (adaptive).
fn adam_p(b: AdamScalars, p0: vec4<f32>, num: vec4<f32>, quotient: vec4<f32>) -> vec4<f32> {
  if (b.mode == ${MODE_ADAPTIVE}u) { return p0 * b.paramDecay - b.stepSize * quotient; }
  if (b.mode == ${MODE_MOMENTUM}u) { return p0 * b.paramDecay - b.stepSize * num; }
  return p0;
}

// The new parameters and the specials (RULE_VALUES_WGSL) of p, m and v, from the values and the
// bits (pb, gb, mb, vb) of p, g, m and v as stored and the values computed (gi, vi, num), as
// IEEE-754 gives them (∞ − ∞, ∞ · 0, 0 / 0 and ∞ / ∞ NaN; a finite num over an infinite v 0; an
// overflow an infinity).
fn adam_special(b: AdamScalars, grad_scale: f32, pre: f32, p0: vec4<f32>, pb: vec4<u32>, g: vec4<f32>, gb: vec4<u32>, m0: vec4<f32>, mb: vec4<u32>, v0: vec4<f32>, vb: vec4<u32>, gi: vec4<f32>, vi: vec4<f32>, num: vec4<f32>) -> RuleValues {
  let nan = vec4<u32>(0x7fc00000u);
  let z = vec4<u32>(0u);
  let sp0 = special_times(pb, 1.0);
  let sg = grad_special(grad_scale, pre, g, gb, p0, sp0, b.coupledDecay);
  let mi = b.beta1 * m0 + b.oneMinusBeta1 * gi;
  let sm = sum_checked(b.beta1 * m0, times_checked(m0, special_times(mb, 1.0), b.beta1), b.oneMinusBeta1 * gi, times_checked(gi, sg, b.oneMinusBeta1));
  let gg = gi * gi;
  let sv = sum_checked(b.beta2 * v0, times_checked(v0, special_times(vb, 1.0), b.beta2), b.oneMinusBeta2 * gg, times_checked(gg, square_checked(gi, sg), b.oneMinusBeta2));
  var sn = sm;
  if (b.gradMix != 0.0) {
    sn = sum_checked(b.momentMix * mi, times_checked(mi, sm, b.momentMix), b.gradMix * gi, times_checked(gi, sg, b.gradMix));
  }
  var q = num;
  var sq = sn;
  if (b.mode == ${MODE_ADAPTIVE}u) {
    // num / (sqrt(v) + eps), with sqrt(v) + eps finite (at most 2⁶⁴ + eps, which rounds below
    // FLT_MAX's next): NaN for 0 / 0, an infinity where it overflows (not decided to the last ulp:
    // WGSL's division is within 2.5 ulp), 0 over an infinite v, NaN for ∞ / ∞ or a NaN.
    let den = sqrt(vi) + b.eps;
    let over = (den < vec4<f32>(1.0)) & (abs(num * ${2 ** -64}) >= den * 0x1p64f);
    let inf = select(vec4<u32>(0x7f800000u), vec4<u32>(0xff800000u), num < vec4<f32>(0.0));
    let zero = (num == vec4<f32>(0.0)) & (den == vec4<f32>(0.0));
    let tiny = (num == vec4<f32>(0.0)) & (vi == vec4<f32>(0.0)) & vec4<bool>(bitcast<u32>(b.eps) != 0u);
    let finite_sq = select(select(z, inf, over & (num != vec4<f32>(0.0))), nan, zero & !tiny);
    sq = select(select(finite_sq, sn, sn != z), z, (sn == z) & (sv != z));
    sq = select(sq, nan, (sn == nan) | (sv == nan) | ((sn != z) & (sv != z)));
    q = select(adam_quotient(b, num, vi), vec4<f32>(0.0), sv != z);
  }
  var sp = sp0;
  if (b.mode != ${MODE_MOMENTS_ONLY}u) {
    sp = difference_checked(p0 * b.paramDecay, times_checked(p0, sp0, b.paramDecay), b.stepSize * q, times_checked(q, sq, b.stepSize));
  }
  return RuleValues(adam_p(b, p0, q, q), vec4<f32>(0.0), vec4<f32>(0.0), sp, sm, sv);
}
`;

const MOMENTS: readonly Moment[] = Object.freeze([
  { name: "exp_avg", nonNegative: false },
  { name: "exp_avg_sq", nonNegative: true },
]);

/** RAdam, Adam and AdamW: one element loop, rectified when the optimizer resolves a threshold. */
export const ADAM: Rule<AdamRuleHyperparameters> = Object.freeze({
  name: "adam",
  options: ADAM_OPTIONS,
  moments: () => MOMENTS,
  scalars: ADAM_SCALARS,
  computeScalars,
  jsStep,
  wgsl: WGSL,
});
