/**
 * SGD with momentum, PyTorch's `torch.optim.SGD` (docs/SPEC.md): its option and hyperparameter
 * types, its one moment (`momentum_buffer`, kept only with momentum), its scalar block and the
 * float64 code that fills it each step, and its TypeScript and WGSL element loops (the
 * AssemblyScript one is assembly/sgd.ts).
 *
 * Per element, in f32 (every backend, in this order, with no fused multiply-add):
 *
 * ```text
 * g = gradScale · grad (+ coupledDecay · p, only when coupledDecay ≠ 0)
 * plain (momentum 0): d = g
 * momentum: b = bufferDecay · b + bufferGrad · g; d = b        (step 1: bufferDecay 0, bufferGrad 1)
 * Nesterov: b = bufferDecay · b + bufferGrad · g; d = g + momentum · b
 * p = p − stepSize · d
 * sync (LookAhead): slow = slow + alpha · (p − slow); p = slow
 * ```
 *
 * @module
 */
import { optionError } from "../base/_errors.ts";
import type { CommonOptions } from "../base/options.ts";
import type { JsStep, Moment, Rule } from "../base/rule.ts";
import { LR_WORD, scalarLayout, type StepScalars, wgslBlock } from "../base/scalars.ts";
import {
  booleanOption,
  checkBoolean,
  F32_MAX,
  lrOption,
  numberOption,
  type Schema,
} from "../base/schema.ts";
import type { CommonHyperparameters } from "../base/settings.ts";

/**
 * Options of {@linkcode sgd}: the common options (`lr` default `1e-3`, `weightDecay` added to the
 * gradient as L2, `maximize`) and the momentum's.
 *
 * @example
 * ```ts
 * import { sgd, type SgdOptions } from "@optim/radam";
 * import assert from "node:assert/strict";
 * const options: SgdOptions = { lr: 0.1, momentum: 0.9, nesterov: true };
 * assert.equal(sgd(options).settings.hyperparameters.dampening, 0);
 * ```
 */
export interface SgdOptions extends CommonOptions {
  /** Momentum factor μ, ≥ 0. Default 0: plain SGD, which keeps no moment. */
  momentum?: number;
  /** Dampening τ of the momentum, 0 ≤ τ ≤ 1: `b = μ·b + (1 − τ)·g` after step 1. Default 0. */
  dampening?: number;
  /**
   * Nesterov momentum: the step uses `g + μ·b` in place of `b`. Default false. As PyTorch, it
   * needs momentum > 0 and dampening 0 (RangeError otherwise).
   */
  nesterov?: boolean;
}

/**
 * The hyperparameters {@linkcode sgd} resolves.
 *
 * @example
 * ```ts
 * import { sgd } from "@optim/radam";
 * import assert from "node:assert/strict";
 * const { hyperparameters } = sgd({ momentum: 0.9 }).settings;
 * assert.equal(hyperparameters.momentum * 10, 9);
 * assert.equal(hyperparameters.nesterov, false);
 * ```
 */
export interface SgdHyperparameters extends CommonHyperparameters {
  /** The momentum factor (0: plain SGD). */
  readonly momentum: number;
  /** The momentum's dampening. */
  readonly dampening: number;
  /** Nesterov momentum. */
  readonly nesterov: boolean;
}

/** Kernel mode: plain SGD, `p −= lr · g` (no moment). */
export const MODE_PLAIN = 0;
/** Kernel mode: heavy-ball momentum, `p −= lr · b`. */
export const MODE_MOMENTUM = 1;
/** Kernel mode: Nesterov momentum, `p −= lr · (g + μ · b)`. */
export const MODE_NESTEROV = 2;

/** `nesterov`: a boolean, true only with momentum > 0 and dampening 0 (PyTorch's rule). */
function checkNesterov(value: unknown, resolved: Readonly<Record<string, unknown>>): boolean {
  const nesterov = checkBoolean("nesterov", value);
  const { momentum, dampening } = resolved;
  if (nesterov && !((momentum as number) > 0 && dampening === 0)) {
    throw optionError(
      "nesterov",
      `false with momentum ${momentum} and dampening ${dampening} (Nesterov needs momentum > 0 and dampening 0, as PyTorch)`,
      value,
      true,
    );
  }
  return nesterov;
}

const SGD_OPTIONS: Schema = [
  lrOption(1e-3),
  numberOption("momentum", 0, "required", 0, F32_MAX),
  numberOption("dampening", 0, "required", 0, 1),
  numberOption("weightDecay", 0, "required", 0, F32_MAX),
  { key: "nesterov", default: false, stored: "required", check: checkNesterov },
  booleanOption("maximize", false, "required"),
];

/** The rule's scalar block (after the header: see base/scalars.ts). */
export const SGD_SCALARS = scalarLayout({
  coupledDecay: "f32",
  bufferDecay: "f32",
  bufferGrad: "f32",
  momentum: "f32",
  stepSize: "f32",
  mode: "u32",
});

const W = SGD_SCALARS.word;

/**
 * The scalars of step `t` at the learning rate `out[LR_WORD]`: step 1 sets the buffer to the
 * gradient (PyTorch's clone).
 */
function computeScalars(h: SgdHyperparameters, t: number, out: StepScalars): void {
  const lr = out[LR_WORD];
  out[W.gradScale] = h.maximize ? -1 : 1;
  out[W.coupledDecay] = h.weightDecay;
  out[W.bufferDecay] = t === 1 ? 0 : h.momentum;
  out[W.bufferGrad] = t === 1 ? 1 : 1 - h.dampening;
  out[W.momentum] = h.momentum;
  out[W.stepSize] = lr;
  out[W.mode] = h.momentum === 0 ? MODE_PLAIN : h.nesterov ? MODE_NESTEROV : MODE_MOMENTUM;
}

const f32 = Math.fround;

/** The TypeScript element loop (the operations of the module doc, each rounded to f32). */
const jsStep: JsStep = (s, start, end, f, u, b, mo) => {
  const { p, g, m0: m } = s;
  const gs = f[b + W.gradScale], wd = f[b + W.coupledDecay];
  const bd = f[b + W.bufferDecay], bg = f[b + W.bufferGrad];
  const mu = f[b + W.momentum], ss = f[b + W.stepSize];
  const mode = u[b + W.mode];
  const coupled = wd !== 0;
  for (let i = start; i < end; i++) {
    const pi = p[i];
    let gi = f32(gs * g[i]);
    if (coupled) gi = f32(gi + f32(wd * pi));
    let d = gi;
    if (mode !== MODE_PLAIN) {
      const bi = f32(f32(bd * m[i - mo]) + f32(bg * gi));
      m[i - mo] = bi;
      d = mode === MODE_NESTEROV ? f32(gi + f32(mu * bi)) : bi;
    }
    p[i] = f32(pi - f32(ss * d));
  }
};

/**
 * WGSL of the element operations on four elements' values (see {@linkcode Rule.wgsl}). Where a
 * parameter, buffer or gradient as stored is NaN or an infinity (under nonFinite "propagate"),
 * the new values' classes are decided from the bits as stored and the finite scalars, as IEEE-754
 * has them on the CPU (WGSL lets a compiler assume that no float value is either:
 * RULE_VALUES_WGSL).
 */
const WGSL = /* wgsl */ `
${wgslBlock(SGD_SCALARS, "SgdScalars", "ring")}
fn rule_values(base: u32, grad_scale: f32, pre: f32, p0: vec4<f32>, g: vec4<f32>, m0: vec4<f32>, v0: vec4<f32>) -> RuleValues {
  let b = loadSgdScalars(base);
  var gi = grad_scale * (g * pre);
  if (b.coupledDecay != 0.0) { gi = gi + b.coupledDecay * p0; }
  var d = gi;
  var mi = m0;
  if (b.mode != ${MODE_PLAIN}u) {
    // The buffer (moment m; without momentum the kernels neither read nor write it).
    mi = b.bufferDecay * m0 + b.bufferGrad * gi;
    d = mi;
    if (b.mode == ${MODE_NESTEROV}u) { d = gi + b.momentum * mi; }
  }
  var r = RuleValues(p0 - b.stepSize * d, mi, v0, vec4<u32>(0u), vec4<u32>(0u), vec4<u32>(0u));
  // A NaN or an infinity as stored, or a magnitude from which an operation may pass f32's largest
  // (sgd_limit; rare): the classes from the bits, and for finite values whether an operation
  // overflows (told from scaled or halved operands, RULE_VALUES_WGSL).
  let pb = bitcast<vec4<u32>>(p0);
  let gb = bitcast<vec4<u32>>(g);
  let mb = bitcast<vec4<u32>>(m0);
  if (any(at_least(pb, gb, mb, vec4<u32>(0u), sgd_limit(b)))) {
    let sp0 = special_times(pb, 1.0);
    let sg = grad_special(grad_scale, pre, g, gb, p0, sp0, b.coupledDecay);
    var sd = sg;
    if (b.mode != ${MODE_PLAIN}u) {
      r.ms = sum_checked(b.bufferDecay * m0, times_checked(m0, special_times(mb, 1.0), b.bufferDecay), b.bufferGrad * gi, times_checked(gi, sg, b.bufferGrad));
      sd = r.ms;
      if (b.mode == ${MODE_NESTEROV}u) { sd = sum_checked(gi, sg, b.momentum * mi, times_checked(mi, r.ms, b.momentum)); }
    }
    r.ps = difference_checked(p0, sp0, b.stepSize * d, times_checked(d, sd, b.stepSize));
  }
  return r;
}

// The bits of 2^k, below which no magnitude as stored lets an f32 operation of the step pass f32's
// largest (docs/SPEC.md, "Numerics the backends share"): with |p|, |g|, |m| < 2^k and each scalar
// below 2^exp_above (bufferGrad ≤ 1), |g'| ≤ 2^(k+a), |buffer'| ≤ 2^(k+a+bd+1), the direction
// ≤ 2^(k+c+2) (c = a+bd+mu), stepSize · it ≤ 2¹²⁶ and |p| ≤ 2¹²⁴.
fn sgd_limit(b: SgdScalars) -> u32 {
  let a = max(exp_above(bitcast<u32>(b.coupledDecay)), 0) + 1;
  let c = a + max(exp_above(bitcast<u32>(b.bufferDecay)), 0) + max(exp_above(bitcast<u32>(b.momentum)), 0);
  return limit_bits(min(125 - c, 124 - c - exp_above(bitcast<u32>(b.stepSize))));
}
`;

const BUFFER: readonly Moment[] = Object.freeze([{ name: "momentum_buffer", nonNegative: false }]);

/** SGD, with momentum (a buffer) or without (no moment). */
export const SGD: Rule<SgdHyperparameters> = Object.freeze({
  name: "sgd",
  options: SGD_OPTIONS,
  moments: (h: SgdHyperparameters) => h.momentum === 0 ? [] : BUFFER,
  scalars: SGD_SCALARS,
  computeScalars,
  jsStep,
  wgsl: WGSL,
});
