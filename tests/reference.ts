/**
 * The rule-agnostic part of the independent float64 reference of docs/SPEC.md (written from the
 * published formulas, sharing no code with the library): states and step results with their error
 * bounds, the training-loop features (clipping, centralization, LookAhead's sync), and the
 * comparison; and the step of RAdam, Adam and AdamW, which tests beyond the rule table read too.
 * The other rules' steps are their rows of tests/rule_table.ts.
 *
 * Besides the next state it returns, per element, a bound on how far an f32 implementation of
 * the same step may stray from it, started from the same state. The bound is a first-order
 * running error analysis: every f32 operation and every f32-rounded hyperparameter contributes
 * at most u = 2⁻²⁴ relative to the magnitude of its operands, so a quantity computed with n
 * roundings from operands of absolute sum A is within ≈ n·u·A. Each quantity below passes
 * through at most 4 roundings plus those of its hyperparameters; `K` allows 8, a 2× margin.
 * The errors of g, m and v are carried into the quotient m / (sqrt(v) + eps) exactly as they
 * propagate (sqrt is bounded by its secant, the quotient by its worst-case denominator), so
 * the bound stays honest where cancellation (coupled weight decay) or a tiny v make the update
 * ill-conditioned.
 */

/** Unit roundoff of f32. */
export const U = 2 ** -24;
/** Roundings allowed per quantity (see the module comment). */
export const K = 8;
/**
 * Absolute error of one f32 rounding in the subnormal range (2⁻¹⁴⁹, f32's smallest step):
 * below f32's normal range a relative bound no longer holds, so each quantity also gets K·η.
 */
export const ETA = 2 ** -149;

/** A state in float64. */
export interface RefState {
  p: Float64Array;
  m: Float64Array;
  v: Float64Array;
  /** LookAhead's slow weights, when there are any. */
  s?: Float64Array;
}

/** A step's result with per-element error bounds for an f32 implementation. */
export interface RefStep extends RefState {
  tolP: Float64Array;
  tolM: Float64Array;
  tolV: Float64Array;
  /** Whether the step was a rectified (adaptive) one (RAdam; always true for other rules). */
  rectified: boolean;
}

/** Copies f32 arrays into float64. */
export function toF64(a: ArrayLike<number>): Float64Array {
  return Float64Array.from(a);
}

/** A zeroed step result of `n` elements. */
export function emptyStep(n: number): RefStep {
  return {
    p: new Float64Array(n),
    m: new Float64Array(n),
    v: new Float64Array(n),
    tolP: new Float64Array(n),
    tolM: new Float64Array(n),
    tolV: new Float64Array(n),
    rectified: false,
  };
}

/** The least magnitude that rounds to ±Infinity in f32: 2¹²⁸ · (1 − 2⁻²⁵). */
const F32_OVERFLOW = 2 ** 128 * (1 - 2 ** -25);

/**
 * Index of the first element where `actual` is farther than `tol` from `expected` (equal
 * values, infinities included, or both NaN count as agreement; so does an infinity where the
 * reference is within its tolerance of the f32 overflow threshold, with the same sign), or -1.
 */
export function firstMismatch(
  actual: ArrayLike<number>,
  expected: ArrayLike<number>,
  tol: ArrayLike<number>,
): number {
  for (let i = 0; i < expected.length; i++) {
    const a = actual[i], x = expected[i];
    if (Number.isNaN(a) && Number.isNaN(x)) continue;
    if (a === x) continue; // equal, infinities included (∞ − ∞ is NaN)
    // f32 overflow: a value within its tolerance of f32's rounding threshold may round to ±∞.
    if (Math.abs(a) === Infinity && a * x > 0 && Math.abs(x) + tol[i] >= F32_OVERFLOW) continue;
    if (!(Math.abs(a - x) <= tol[i])) {
      if (tol[i] === Infinity) continue;
      return i;
    }
  }
  return -1;
}

/** Global L2 norm of all gradients, summed in float64 in plain index order. */
export function refGlobalNorm(grads: readonly ArrayLike<number>[]): number {
  let sum = 0;
  for (const g of grads) for (let i = 0; i < g.length; i++) sum += g[i] * g[i];
  return Math.sqrt(sum);
}

/**
 * The gradient a step uses after global-norm clipping (`coef = min(1, max / norm)`, norm over
 * all tensors) and, for tensors given `rows`, centralization of each row, in float64; with a
 * per-element bound on an f32 implementation's error (the clip coefficient and the product
 * rounded once each; the f32 row sum within (cols + 2)·u·Σ|g| of the exact one).
 */
export function refEffectiveGrads(
  grads: readonly ArrayLike<number>[],
  rows: readonly (number | undefined)[],
  clip: number | undefined,
): { grads: Float64Array[]; err: Float64Array[] } {
  const norm = refGlobalNorm(grads);
  const coef = clip !== undefined && norm > clip ? clip / norm : 1;
  const outG: Float64Array[] = [];
  const outE: Float64Array[] = [];
  for (let k = 0; k < grads.length; k++) {
    const g = grads[k];
    const n = g.length;
    const out = new Float64Array(n);
    const err = new Float64Array(n);
    const r = rows[k];
    if (r === undefined || n === 0) {
      for (let i = 0; i < n; i++) {
        out[i] = coef * g[i];
        err[i] = coef === 1 ? 0 : 3 * U * Math.abs(out[i]) + ETA;
      }
    } else {
      const cols = n / r;
      for (let row = 0; row < r; row++) {
        let sum = 0, abs = 0;
        for (let i = 0; i < cols; i++) {
          sum += g[row * cols + i];
          abs += Math.abs(g[row * cols + i]);
        }
        const mean = sum / cols;
        const meanErr = ((cols + 4) * U * abs) / cols + ETA;
        for (let i = 0; i < cols; i++) {
          const x = g[row * cols + i] - mean;
          out[row * cols + i] = coef * x;
          err[row * cols + i] = coef *
              (meanErr + U * (Math.abs(g[row * cols + i]) + Math.abs(mean) + meanErr)) +
            (coef === 1 ? 0 : 3 * U * coef * (Math.abs(x) + meanErr)) + 2 * ETA;
        }
      }
    }
    outG.push(out);
    outE.push(err);
  }
  return { grads: outG, err: outE };
}

/**
 * LookAhead's sync in float64 (`slow += α (p − slow); p = slow`) after a step whose parameters
 * `p` are within `tolP`; returns the new slow weights (= params) and their bound.
 */
export function refSync(
  slow: ArrayLike<number>,
  p: ArrayLike<number>,
  tolP: ArrayLike<number>,
  alpha: number,
): { slow: Float64Array; tol: Float64Array } {
  const n = slow.length;
  const out = new Float64Array(n);
  const tol = new Float64Array(n);
  const e = K * U;
  for (let i = 0; i < n; i++) {
    const d = p[i] - slow[i];
    out[i] = slow[i] + alpha * d;
    if (!Number.isFinite(tolP[i])) {
      // p itself is unbounded (e.g. 0/0 once v underflows in f32 with eps = 0): so is the sync,
      // even at α = 0, since slow + 0 · (NaN − slow) is NaN.
      tol[i] = Infinity;
      continue;
    }
    // With α = 0 and a bounded p, the slow weights stay exactly as they were.
    const tp = alpha === 0 ? 0 : tolP[i];
    tol[i] = alpha === 0 ? 0 : alpha * tp * (1 + e) +
      e * (Math.abs(slow[i]) + Math.abs(d) + tp + alpha * (Math.abs(d) + tp)) + K * ETA;
  }
  return { slow: out, tol };
}

// ---------------------------------------------------------------------------------------------
// RAdam, Adam, AdamW (PyTorch's torch.optim semantics): the rule table's row, and the
// rectification and long-run tests, read this one.

/**
 * 1 − β^t; where β^t is near 1, by the binomial series of 1 − (1 − δ)^t in δ = 1 − β (exact for
 * β ≥ 0.5): t δ − C(t, 2) δ² + …, whose terms fall by t δ < 1e-3 each, to a few roundings.
 * `1 − β^t` there loses the leading digits the two share (β = 1 − 1e-9: 7 of them at t = 2, which
 * ρt multiplies by 2 / (1 − β)).
 */
export function oneMinusPower(beta: number, t: number): number {
  const q = beta ** t;
  if (q <= 1 - 2 ** -10) return 1 - q;
  const delta = 1 - beta;
  let term = t * delta, sum = term;
  for (let k = 2; k <= t && Math.abs(term) > 1e-20 * sum; k++) {
    term *= (-(t - k + 1) / k) * delta;
    sum += term;
  }
  return sum;
}

/**
 * ρt computed exactly in rationals and rounded at the end (β2 ≥ 0.5 is n / 2^53 exactly): where
 * β2^t is near 1, ρt ≈ t is the difference of two terms of about 2 / (1 − β2), which float64
 * holds to about 2⁻⁵² · 2 / (1 − β2) only (1e-7 at β2 = 1 − 1e-9: ρ4 on either side of 4).
 */
function exactRho(beta2: number, t: number): number {
  const n = BigInt(beta2 * 2 ** 53), d = 2n ** 53n, nt = n ** BigInt(t), dt = d ** BigInt(t);
  // 2d / (d − n) − 1 − 2t nt / (dt − nt), over the denominator (d − n)(dt − nt)
  const den = (d - n) * (dt - nt);
  const num = 2n * d * (dt - nt) - den - 2n * BigInt(t) * nt * (d - n);
  return Number((num << 64n) / den) / 2 ** 64;
}

/** ρt for RAdam. */
export function rho(beta2: number, t: number): { rhoInf: number; rhoT: number } {
  const rhoInf = 2 / (1 - beta2) - 1;
  if (beta2 ** t > 1 - 2 ** -10 && t <= 4096) return { rhoInf, rhoT: exactRho(beta2, t) };
  return { rhoInf, rhoT: rhoInf - (2 * t * beta2 ** t) / oneMinusPower(beta2, t) };
}

/** The rectifier r_t (NaN when not rectified at `threshold`). */
export function rectifier(beta2: number, t: number, threshold: number): number {
  const { rhoInf, rhoT } = rho(beta2, t);
  if (!(rhoT > threshold)) return NaN;
  return Math.sqrt(((rhoT - 4) * (rhoT - 2) * rhoInf) / ((rhoInf - 4) * (rhoInf - 2) * rhoT));
}

/** The hyperparameters of the RAdam/Adam reference. */
export interface AdamConfig {
  kind: "radam" | "adam";
  beta1: number;
  beta2: number;
  eps: number;
  weightDecay: number;
  decoupled: boolean;
  maximize: boolean;
  threshold: number;
  degenerateToSgd: boolean;
  /** RAdam with optax's Nesterov m̂ (absent: false). */
  nesterov?: boolean;
}

/** One RAdam or Adam step (PyTorch's RAdam, Adam, AdamW; amsgrad off). */
export function refAdamStep(
  c: AdamConfig,
  s: RefState,
  grad: ArrayLike<number>,
  t: number,
  lr: number,
  gradErr?: ArrayLike<number>,
  k: number = K,
): RefStep {
  const n = s.p.length;
  const out = emptyStep(n);
  const { beta1: b1, beta2: b2, eps, weightDecay: wd } = c;
  const bc1 = oneMinusPower(b1, t);
  const bc2 = oneMinusPower(b2, t);
  const r = c.kind === "radam" ? rectifier(b2, t, c.threshold) : 1;
  const rectified = c.kind === "adam" || !Number.isNaN(r);
  out.rectified = rectified;
  const e = k * U;
  for (let i = 0; i < n; i++) {
    const p = s.p[i];
    let g = c.maximize ? -grad[i] : grad[i];
    let gAbs = Math.abs(g);
    if (!c.decoupled && wd !== 0) {
      g = g + wd * p;
      gAbs += wd * Math.abs(p);
    }
    // gradErr: error the f32 implementation may already carry in its gradient (clipping,
    // centralization), on top of the roundings counted here.
    const ge = gradErr ? gradErr[i] : 0;
    const eg = e * gAbs + k * ETA + ge;
    const m = b1 * s.m[i] + (1 - b1) * g;
    const v = b2 * s.v[i] + (1 - b2) * g * g;
    const em = e * (b1 * Math.abs(s.m[i]) + (1 - b1) * gAbs) + (1 - b1) * ge + k * ETA;
    const ev = e * (b2 * s.v[i] + (1 - b2) * gAbs * gAbs) +
      (1 - b2) * (2 * Math.abs(g) * eg + eg * eg) + k * ETA;
    // m̂ = scale · num: plain m / bc1, or optax's Nesterov β1 m / (1 − β1^(t+1)) + (1 − β1) g / bc1.
    let num = m, enm = em, scale = 1 / bc1;
    if (c.kind === "radam" && c.nesterov && b1 !== 0) {
      const bc1Next = oneMinusPower(b1, t + 1);
      const mix = (1 - b1) * bc1Next / (b1 * bc1);
      num = m + mix * g;
      enm = em + mix * eg + e * (Math.abs(m) + mix * gAbs);
      scale = b1 / bc1Next;
    }
    out.m[i] = m;
    out.v[i] = v;
    out.tolM[i] = em;
    out.tolV[i] = ev;
    let pNew = p;
    let ep = 0;
    const decayed = c.decoupled ? p * (1 - lr * wd) : p;
    if (c.kind === "adam") {
      // PyTorch Adam: p -= (lr / bc1) · m / (sqrt(v) / sqrt(bc2) + eps)
      const sq = Math.sqrt(bc2);
      const d = Math.sqrt(v) / sq + eps;
      const ed = (Math.sqrt(v + ev) - Math.sqrt(v)) / sq + e * d;
      const q = m / d;
      const size = lr / bc1;
      pNew = decayed - size * q;
      ep = ed >= d ? Infinity : e * (Math.abs(decayed) + size * Math.abs(q)) +
        size * ((em + Math.abs(q) * ed) / (d - ed)) + k * ETA * Math.abs(q);
    } else if (rectified) {
      // PyTorch RAdam: p -= lr · r · m̂ · sqrt(bc2) / (sqrt(v) + eps)
      const d = Math.sqrt(v) + eps;
      const ed = Math.sqrt(v + ev) - Math.sqrt(v) + e * d;
      const mHat = scale * num;
      const upd = lr * r * mHat * Math.sqrt(bc2) / d;
      const size = lr * r * Math.sqrt(bc2) * scale;
      pNew = decayed - upd;
      ep = ed >= d ? Infinity : e * (Math.abs(decayed) + Math.abs(upd)) +
        size * ((enm + Math.abs(num / d) * ed) / (d - ed)) + k * ETA * Math.abs(num / d);
    } else if (c.degenerateToSgd) {
      const mHat = scale * num;
      pNew = decayed - lr * mHat;
      ep = e * (Math.abs(decayed) + Math.abs(lr * mHat)) + lr * scale * enm +
        k * ETA * Math.abs(num);
    } else {
      pNew = p; // untouched, weight decay included
    }
    out.p[i] = pNew;
    // The f32 step size the kernel multiplies by may be subnormal (a tiny lr, or r, or √bc2):
    // its rounding is then an absolute ETA / 2, not relative, hence the `k · ETA · |q|` terms.
    out.tolP[i] = ep + k * ETA;
  }
  return out;
}
