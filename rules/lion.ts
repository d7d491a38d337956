/**
 * The Lion rule (Chen et al. 2023, "Symbolic Discovery of Optimization Algorithms"; as optax's
 * `lion` and lucidrains' `lion-pytorch`, docs/SPEC.md): its options, its one moment (`exp_avg`),
 * its scalar block and the float64 code that fills it each step, and its TypeScript and WGSL
 * element loops (the AssemblyScript one is assembly/lion.ts).
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
import type { LionHyperparameters } from "../core/options.ts";
import type { Hyperparameters, JsStep, Rule } from "../core/rule.ts";
import {
  EMA_FIELDS,
  emaScalars,
  scalarLayout,
  type StepScalars,
  wgslBlock,
} from "../core/scalars.ts";
import { finishJs } from "./lookahead.ts";
import { betasOption, booleanOption, lrOption, numberOption } from "../core/schema.ts";

/** The rule's scalar block (after the header: see core/scalars.ts). */
export const LION_SCALARS = scalarLayout({
  ...EMA_FIELDS,
  paramDecay: "f32",
  stepSize: "f32",
});

/** The value of the block's `rule` word for this rule. */
export const LION_TAG = 1;

function computeScalars(hyper: Hyperparameters, _t: number, lr: number, out: StepScalars): void {
  const h = hyper as unknown as LionHyperparameters;
  out.rule = LION_TAG;
  out.gradScale = h.maximize ? -1 : 1;
  emaScalars(h.beta1, h.beta2, out);
  out.paramDecay = 1 - lr * h.weightDecay;
  out.stepSize = lr;
}

const f32 = Math.fround;
const W = LION_SCALARS.word;

/** The TypeScript element loop (the operations of the module doc, each rounded to f32). */
const jsStep: JsStep = (s, start, end, f, u, b) => {
  const { p, g, m0: m, slow } = s;
  const gs = f[b + W.gradScale];
  const b1 = f[b + W.beta1], c1 = f[b + W.oneMinusBeta1];
  const b2 = f[b + W.beta2], c2 = f[b + W.oneMinusBeta2];
  const pd = f[b + W.paramDecay], ss = f[b + W.stepSize];
  const alpha = f[b + W.alpha], sync = u[b + W.sync] !== 0;
  for (let i = start; i < end; i++) {
    const pi = p[i];
    const mi = m[i];
    const gi = f32(gs * g[i]);
    const c = f32(f32(b1 * mi) + f32(c1 * gi));
    m[i] = f32(f32(b2 * mi) + f32(c2 * gi));
    const sign = c > 0 ? 1 : c < 0 ? -1 : c === 0 ? 0 : c;
    finishJs(p, slow, i, f32(f32(pi * pd) - f32(ss * sign)), alpha, sync);
  }
};

/** WGSL of the element loop on vec4 `i` (see {@linkcode Rule.wgsl}). */
const WGSL = /* wgsl */ `
${wgslBlock(LION_SCALARS, "LionScalars", "ring")}
fn rule_update(i: u32, base: u32, grad_scale: f32, keep: vec4<bool>) {
  let b = loadLionScalars(base);
  let p0 = p[i];
  let m0 = m[i];
  let gi = grad_scale * g[i];
  let c = b.beta1 * m0 + b.oneMinusBeta1 * gi;
  let mi = b.beta2 * m0 + b.oneMinusBeta2 * gi;
  let sign_c = select(select(vec4<f32>(-1.0), vec4<f32>(1.0), c > vec4<f32>(0.0)), vec4<f32>(0.0), c == vec4<f32>(0.0));
  let pi = p0 * b.paramDecay - b.stepSize * sign_c;
  m[i] = select(mi, m0, keep);
  finish_update(i, p0, pi, b.sync, b.alpha, keep);
}
`;

/** Lion. */
export const LION: Rule = Object.freeze({
  kind: "lion",
  tag: LION_TAG,
  kernel: "lion",
  options: [
    lrOption(1e-4),
    betasOption([0.9, 0.99]),
    numberOption("weightDecay", 0, "required"),
    booleanOption("maximize", false, "required"),
  ],
  moments: [{ name: "exp_avg", nonNegative: false }],
  scalars: LION_SCALARS,
  computeScalars,
  jsStep,
  wgsl: WGSL,
});
