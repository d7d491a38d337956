/**
 * The article's mechanism, measured: the size of the step each parameter takes,
 * `|lr · m̂ / (√v̂ + ε)|` for Adam, over the first iterations, as histograms of log₁₀ of it.
 *
 * The sizes are computed in float64 from the moments the optimizer holds after each step
 * (`readMoments(optimizer.state)`, this library's public API) and the rule's hyperparameters
 * (`settings.hyperparameters`), by the update rules of docs/SPEC.md:
 *
 * - Adam: `lr_t / bc1 · |m| / (√v / √bc2 + eps)`;
 * - RAdam, rectified (ρ_t > 5, from step 6 at β2 = 0.999):
 *   `lr · r_t / bc1 · |m| · √bc2 / (√v + eps)`; before that, the momentum-SGD step
 *   `lr / bc1 · |m|`, which has no adaptive term.
 *
 * Each traced step is also checked against the change it made to the parameters (`|Δp|`,
 * read from the model before and after): {@linkcode StepCheck} counts the elements where they
 * differ by more than f32 rounding, so the histograms are of the steps actually taken.
 *
 * @module
 */
import type { LearningRate } from "../../mod.ts";

/** Histogram bins: log₁₀ of the step size, from `HIST_MIN` to `HIST_MAX`, `HIST_BINS` wide. */
export const HIST_MIN = -9;
export const HIST_MAX = 0;
export const HIST_BINS = 90;

/** The rule and hyperparameters a traced optimizer steps by. */
export interface TracedRule {
  readonly kind: "adam" | "radam";
  readonly lr: LearningRate;
  readonly beta1: number;
  readonly beta2: number;
  readonly eps: number;
  /** RAdam only: rectify when ρ_t exceeds it. */
  readonly threshold?: number;
}

/** The learning rate at 1-based step `t`. */
export function lrAt(lr: LearningRate, t: number): number {
  return typeof lr === "function" ? lr(t) : lr;
}

/** RAdam's rectification at step `t`: `r_t`, or 0 when not rectified. */
export function rectification(beta2: number, t: number, threshold = 5): number {
  const rhoInf = 2 / (1 - beta2) - 1;
  const b2t = beta2 ** t;
  const rho = rhoInf - 2 * t * b2t / (1 - b2t);
  if (!(rho > threshold)) return 0;
  return Math.sqrt((rho - 4) * (rho - 2) * rhoInf / ((rhoInf - 4) * (rhoInf - 2) * rho));
}

/**
 * The size of every element's step `t` (1-based), from the moments after it: written into
 * `out` (same length as `m`).
 */
export function stepSizes(
  rule: TracedRule,
  t: number,
  m: Float32Array,
  v: Float32Array,
  out: Float64Array,
): void {
  const lr = lrAt(rule.lr, t);
  const bc1 = 1 - rule.beta1 ** t, bc2 = 1 - rule.beta2 ** t;
  if (rule.kind === "adam") {
    const a = lr / bc1, s = Math.sqrt(bc2);
    for (let i = 0; i < m.length; i++) {
      out[i] = a * Math.abs(m[i]) / (Math.sqrt(v[i]) / s + rule.eps);
    }
    return;
  }
  const r = rectification(rule.beta2, t, rule.threshold);
  if (r === 0) {
    for (let i = 0; i < m.length; i++) out[i] = lr / bc1 * Math.abs(m[i]);
    return;
  }
  const a = lr * r / bc1 * Math.sqrt(bc2);
  for (let i = 0; i < m.length; i++) out[i] = a * Math.abs(m[i]) / (Math.sqrt(v[i]) + rule.eps);
}

/** Adds `sizes` to `histogram` (HIST_BINS counts); returns how many were exactly 0. */
export function addToHistogram(sizes: Float64Array, histogram: Float64Array): number {
  let zeros = 0;
  const scale = HIST_BINS / (HIST_MAX - HIST_MIN);
  for (const x of sizes) {
    if (x === 0) {
      zeros++;
      continue;
    }
    const bin = Math.floor((Math.log10(x) - HIST_MIN) * scale);
    histogram[Math.min(HIST_BINS - 1, Math.max(0, bin))]++;
  }
  return zeros;
}

/** Quantiles of `values` (sorted copy), at the fractions `qs`. */
export function quantiles(values: Float64Array, qs: readonly number[]): number[] {
  const sorted = Float64Array.from(values).sort();
  return qs.map((q) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]);
}

/** How well the computed sizes match the parameter changes of the traced steps. */
export interface StepCheck {
  /** Elements compared, over all traced steps. */
  compared: number;
  /** Elements whose `|Δp|` differs from the computed size by more than f32 rounding. */
  outside: number;
  /** The largest difference, in units of that rounding bound. */
  worst: number;
}

/**
 * Compares the computed sizes with `|before − after|`: the bound is 4·10⁻⁶ of the size (the
 * kernel's f32 arithmetic) plus one f32 ulp of the larger parameter (the rounding of `p − step`).
 */
export function checkAgainstChange(
  sizes: Float64Array,
  before: Float32Array,
  after: Float32Array,
  check: StepCheck,
): void {
  for (let i = 0; i < sizes.length; i++) {
    const bound = 4e-6 * sizes[i] + 2 ** -23 * Math.max(Math.abs(before[i]), Math.abs(after[i])) +
      1e-30;
    const excess = Math.abs(Math.abs(before[i] - after[i]) - sizes[i]) / bound;
    check.compared++;
    if (excess > 1) check.outside++;
    if (excess > check.worst) check.worst = excess;
  }
}
