/**
 * Per-step scalars, computed once per step on the host in float64 (SPEC.md), then handed to
 * the kernels, which round them to f32. Nothing here runs per element.
 *
 * @module
 */
import type { ResolvedConfig } from "./options.ts";

/** Kernel mode: adaptive update `p -= stepSize · m / (sqrt(v) + eps)`. */
export const MODE_ADAPTIVE = 0;
/** Kernel mode: bias-corrected momentum-SGD update `p -= stepSize · m`. */
export const MODE_MOMENTUM = 1;
/** Kernel mode: moments only; the parameters are left untouched. */
export const MODE_MOMENTS_ONLY = 2;

/** The scalars of one step, in the order the kernels take them. */
export interface StepScalars {
  /** `-1` when maximizing, else `1`. */
  gradScale: number;
  /** L2 weight decay added to the gradient (`wd`), or 0 when decoupled. */
  coupledDecay: number;
  beta1: number;
  oneMinusBeta1: number;
  beta2: number;
  oneMinusBeta2: number;
  /** Decoupled decay factor `1 − lr · wd`, or 1. */
  paramDecay: number;
  /** Multiplier of the update (`lr · r · sqrt(bc2) / bc1`, `lr / bc1`, …). */
  stepSize: number;
  /** Denominator term added to `sqrt(v)` (uncorrected). */
  eps: number;
  /** One of the `MODE_*` constants. */
  mode: number;
  /** ρt of RAdam at this step (NaN for Adam). */
  rho: number;
  /** Rectification factor r (NaN when not rectified, 1 for Adam). */
  rectifier: number;
  /** LookAhead's slow step α (0 without LookAhead). */
  alpha: number;
  /**
   * Nesterov (optax's RAdam `nesterov`): the update uses `m + gradMix · g` in place of `m`
   * (0: off).
   */
  gradMix: number;
  /** 1 on a LookAhead sync step (`slow += α (p − slow); p = slow`, fused), else 0. */
  sync: number;
}

/** A zeroed scalars record, to be filled in place by {@linkcode computeScalars}. */
export function emptyScalars(): StepScalars {
  return {
    gradScale: 1,
    coupledDecay: 0,
    beta1: 0,
    oneMinusBeta1: 1,
    beta2: 0,
    oneMinusBeta2: 1,
    paramDecay: 1,
    stepSize: 0,
    eps: 0,
    mode: MODE_MOMENTS_ONLY,
    rho: NaN,
    rectifier: NaN,
    alpha: 0,
    sync: 0,
    gradMix: 0,
  };
}

/** ρ∞ = 2 / (1 − β2) − 1. */
export function rhoInfinity(beta2: number): number {
  return 2 / (1 - beta2) - 1;
}

/** ρt = ρ∞ − 2 t β2^t / (1 − β2^t), in float64. */
export function rhoAt(beta2: number, t: number): number {
  const b2t = Math.pow(beta2, t);
  return rhoInfinity(beta2) - (2 * t * b2t) / (1 - b2t);
}

/**
 * Fills `out` with the scalars of step `t` (1-based) at learning rate `lr`, and returns it.
 */
export function computeScalars(
  config: ResolvedConfig,
  t: number,
  lr: number,
  out: StepScalars,
): StepScalars {
  const { beta1, beta2, eps, weightDecay } = config;
  const bc1 = 1 - Math.pow(beta1, t);
  const bc2 = 1 - Math.pow(beta2, t);
  out.gradScale = config.maximize ? -1 : 1;
  const la = config.lookahead;
  out.alpha = la ? la.alpha : 0;
  out.sync = la && t % la.k === 0 ? 1 : 0;
  out.coupledDecay = config.decoupledWeightDecay ? 0 : weightDecay;
  out.paramDecay = config.decoupledWeightDecay ? 1 - lr * weightDecay : 1;
  out.beta1 = beta1;
  out.oneMinusBeta1 = 1 - beta1;
  out.beta2 = beta2;
  out.oneMinusBeta2 = 1 - beta2;
  if (config.kind === "adam") {
    // lr/bc1 · m / (sqrt(v)/sqrt(bc2) + eps) == (lr·sqrt(bc2)/bc1) · m / (sqrt(v) + eps·sqrt(bc2))
    out.mode = MODE_ADAPTIVE;
    out.stepSize = (lr * Math.sqrt(bc2)) / bc1;
    out.eps = eps * Math.sqrt(bc2);
    out.rho = NaN;
    out.rectifier = 1;
    return out;
  }
  const rhoInf = rhoInfinity(beta2);
  const rho = rhoAt(beta2, t);
  out.rho = rho;
  out.eps = eps;
  // m̂: m / bc1, or with Nesterov (optax) β1 m / (1 − β1^(t+1)) + (1 − β1) g / bc1
  //   = (β1 / (1 − β1^(t+1))) · (m + gradMix · g).
  let mHatNum = 1, mHatDen = bc1;
  out.gradMix = 0;
  if (config.nesterov && beta1 !== 0) {
    const bc1Next = 1 - Math.pow(beta1, t + 1);
    mHatNum = beta1;
    mHatDen = bc1Next;
    out.gradMix = ((1 - beta1) * bc1Next) / (beta1 * bc1);
  }
  if (rho > config.threshold) {
    const r = Math.sqrt(((rho - 4) * (rho - 2) * rhoInf) / ((rhoInf - 4) * (rhoInf - 2) * rho));
    out.rectifier = r;
    out.mode = MODE_ADAPTIVE;
    out.stepSize = (lr * r * Math.sqrt(bc2) * mHatNum) / mHatDen;
  } else {
    out.rectifier = NaN;
    if (config.degenerateToSgd) {
      out.mode = MODE_MOMENTUM;
      out.stepSize = (lr * mHatNum) / mHatDen;
    } else {
      out.mode = MODE_MOMENTS_ONLY;
      out.stepSize = 0;
      out.paramDecay = 1;
    }
  }
  return out;
}
