// The RAdam / Adam / AdamW element loop (rules/adam.ts has the rule, its scalars and the
// TypeScript loop this one matches bit for bit), f32x4 SIMD with a scalar tail.
//
// Per element:
//   g = gradScale * grad (+ coupledDecay * p, only when coupledDecay != 0)
//   m = beta1 * m + oneMinusBeta1 * g
//   v = beta2 * v + oneMinusBeta2 * (g * g)
//   num = m, or m + gradMix * g when gradMix != 0 (Nesterov)
//   adaptive: p = p * paramDecay - stepSize * (num / (sqrt(v) + eps))
//   momentum: p = p * paramDecay - stepSize * num
//   sync (LookAhead): slow = slow + alpha * (p - slow); p = slow
//
// The weight-decay term is skipped, not multiplied by zero, when there is none, so that a
// non-finite parameter never leaks into the moments (PyTorch skips it too). Each combination of
// (coupled decay, mode) gets its own loop, specialised at compile time.

import {
  ADAM_BETA1,
  ADAM_BETA2,
  ADAM_COUPLED_DECAY,
  ADAM_EPS,
  ADAM_GRAD_MIX,
  ADAM_MODE,
  ADAM_ONE_MINUS_BETA1,
  ADAM_ONE_MINUS_BETA2,
  ADAM_PARAM_DECAY,
  ADAM_STEP_SIZE,
  HEADER_ALPHA,
  HEADER_GRAD_SCALE,
  HEADER_SYNC,
} from "./layout.generated";
import { finishScalar, finishVector } from "./lookahead";

/** `mode` value: adaptive (rectified RAdam, or Adam) update of the parameters. */
const MODE_ADAPTIVE: i32 = 0;
/** `mode` value: bias-corrected momentum-SGD update (RAdam before rectification). */
const MODE_MOMENTUM: i32 = 1;
// Any other mode: moments only, the parameters are left untouched.

let GRAD_SCALE: f32 = 1;
let BETA1: f32 = 0;
let ONE_MINUS_BETA1: f32 = 1;
let BETA2: f32 = 0;
let ONE_MINUS_BETA2: f32 = 1;
let EPS: f32 = 0;
let ALPHA: f32 = 0;
let SYNC: bool = false;
let GRAD_MIX: f32 = 0;

/** `n` elements from the given section addresses, with the scalar block at `block`. */
export function adamRange(
  params: usize, grads: usize, m: usize, v: usize, slow: usize, n: i32, block: usize,
): void {
  GRAD_SCALE = load<f32>(block + HEADER_GRAD_SCALE);
  BETA1 = load<f32>(block + ADAM_BETA1);
  ONE_MINUS_BETA1 = load<f32>(block + ADAM_ONE_MINUS_BETA1);
  BETA2 = load<f32>(block + ADAM_BETA2);
  ONE_MINUS_BETA2 = load<f32>(block + ADAM_ONE_MINUS_BETA2);
  EPS = load<f32>(block + ADAM_EPS);
  ALPHA = load<f32>(block + HEADER_ALPHA);
  SYNC = load<u32>(block + HEADER_SYNC) != 0;
  GRAD_MIX = load<f32>(block + ADAM_GRAD_MIX);
  stepRange(
    params, grads, m, v, slow, n,
    load<f32>(block + ADAM_COUPLED_DECAY), load<f32>(block + ADAM_PARAM_DECAY),
    load<f32>(block + ADAM_STEP_SIZE), load<i32>(block + ADAM_MODE),
  );
}

/** One run of elements with its own decay and step size: picks the specialised loop. */
function stepRange(
  params: usize, grads: usize, m: usize, v: usize, slow: usize, n: i32,
  coupledDecay: f32, paramDecay: f32, stepSize: f32, mode: i32,
): void {
  // The common step (no coupled decay, no Nesterov, no LookAhead sync) has its own loops, and
  // those of plain RAdam/Adam (gradient scale 1, no decoupled decay) skip the two products by
  // 1, which are exact: the results are the same bits.
  if (coupledDecay == 0 && GRAD_MIX == 0 && !SYNC) {
    if (GRAD_SCALE == 1 && paramDecay == 1) {
      if (mode == MODE_ADAPTIVE) loop(params, grads, m, v, slow, n, coupledDecay, paramDecay, stepSize, false, MODE_ADAPTIVE, false, false, true);
      else if (mode == MODE_MOMENTUM) loop(params, grads, m, v, slow, n, coupledDecay, paramDecay, stepSize, false, MODE_MOMENTUM, false, false, true);
      else loop(params, grads, m, v, slow, n, coupledDecay, paramDecay, stepSize, false, -1, false, false, true);
    } else {
      if (mode == MODE_ADAPTIVE) loop(params, grads, m, v, slow, n, coupledDecay, paramDecay, stepSize, false, MODE_ADAPTIVE, false, false, false);
      else if (mode == MODE_MOMENTUM) loop(params, grads, m, v, slow, n, coupledDecay, paramDecay, stepSize, false, MODE_MOMENTUM, false, false, false);
      else loop(params, grads, m, v, slow, n, coupledDecay, paramDecay, stepSize, false, -1, false, false, false);
    }
  } else if (coupledDecay != 0) {
    if (mode == MODE_ADAPTIVE) loop(params, grads, m, v, slow, n, coupledDecay, paramDecay, stepSize, true, MODE_ADAPTIVE, true, true, false);
    else if (mode == MODE_MOMENTUM) loop(params, grads, m, v, slow, n, coupledDecay, paramDecay, stepSize, true, MODE_MOMENTUM, true, true, false);
    else loop(params, grads, m, v, slow, n, coupledDecay, paramDecay, stepSize, true, -1, true, true, false);
  } else {
    if (mode == MODE_ADAPTIVE) loop(params, grads, m, v, slow, n, coupledDecay, paramDecay, stepSize, false, MODE_ADAPTIVE, true, true, false);
    else if (mode == MODE_MOMENTUM) loop(params, grads, m, v, slow, n, coupledDecay, paramDecay, stepSize, false, MODE_MOMENTUM, true, true, false);
    else loop(params, grads, m, v, slow, n, coupledDecay, paramDecay, stepSize, false, -1, true, true, false);
  }
}

// @ts-ignore: decorator
@inline
function loop(
  params: usize, grads: usize, m: usize, v: usize, slow: usize, n: i32,
  coupledDecay: f32, paramDecay: f32, stepSize: f32, coupled: bool, mode: i32,
  mayNesterov: bool, maySync: bool, unitScale: bool,
): void {
  const gradScale = GRAD_SCALE;
  const beta1 = BETA1;
  const oneMinusBeta1 = ONE_MINUS_BETA1;
  const beta2 = BETA2;
  const oneMinusBeta2 = ONE_MINUS_BETA2;
  const eps = EPS;
  const alpha = ALPHA;
  // Compile-time false in the common loops: the checks below then vanish.
  const sync = maySync && SYNC;
  const gradMix = GRAD_MIX;
  const al = f32x4.splat(alpha);
  const gm = f32x4.splat(gradMix);
  const nesterov = mayNesterov && gradMix != 0;
  // Constants splatted once.
  const gs = f32x4.splat(gradScale);
  const wd = f32x4.splat(coupledDecay);
  const b1 = f32x4.splat(beta1);
  const c1 = f32x4.splat(oneMinusBeta1);
  const b2 = f32x4.splat(beta2);
  const c2 = f32x4.splat(oneMinusBeta2);
  const pd = f32x4.splat(paramDecay);
  const ss = f32x4.splat(stepSize);
  const ep = f32x4.splat(eps);
  const vecEnd = n & ~3;
  const unrolledEnd = n & ~15;
  let i = 0;
  // v128 main loop, unrolled four times (16 elements an iteration), then one vector at a time.
  for (; i < unrolledEnd; i += 16) {
    const o = <usize> i << 2;
    vector(params + o, grads + o, m + o, v + o, slow + o, gs, wd, b1, c1, b2, c2, pd, ss, ep, al, gm, coupled, mode, nesterov, sync, unitScale);
    vector(params + o + 16, grads + o + 16, m + o + 16, v + o + 16, slow + o + 16, gs, wd, b1, c1, b2, c2, pd, ss, ep, al, gm, coupled, mode, nesterov, sync, unitScale);
    vector(params + o + 32, grads + o + 32, m + o + 32, v + o + 32, slow + o + 32, gs, wd, b1, c1, b2, c2, pd, ss, ep, al, gm, coupled, mode, nesterov, sync, unitScale);
    vector(params + o + 48, grads + o + 48, m + o + 48, v + o + 48, slow + o + 48, gs, wd, b1, c1, b2, c2, pd, ss, ep, al, gm, coupled, mode, nesterov, sync, unitScale);
  }
  for (; i < vecEnd; i += 4) {
    const o = <usize> i << 2;
    vector(params + o, grads + o, m + o, v + o, slow + o, gs, wd, b1, c1, b2, c2, pd, ss, ep, al, gm, coupled, mode, nesterov, sync, unitScale);
  }
  // Scalar tail: the same operations, one lane at a time.
  for (; i < n; i++) {
    const o = <usize> i << 2;
    const p = load<f32>(params + o);
    let g = gradScale * load<f32>(grads + o);
    if (coupled) g = g + coupledDecay * p;
    const mNew = beta1 * load<f32>(m + o) + oneMinusBeta1 * g;
    const vNew = beta2 * load<f32>(v + o) + oneMinusBeta2 * (g * g);
    store<f32>(m + o, mNew);
    store<f32>(v + o, vNew);
    const num = nesterov ? mNew + gradMix * g : mNew;
    let pNew = p;
    if (mode == MODE_ADAPTIVE) {
      pNew = p * paramDecay - stepSize * (num / (sqrt<f32>(vNew) + eps));
    } else if (mode == MODE_MOMENTUM) {
      pNew = p * paramDecay - stepSize * num;
    }
    finishScalar(params + o, slow + o, pNew, alpha, sync);
  }
}

/** One vector (4 elements) of the step; the operations of `loop`'s scalar tail, lane-wise. */
// @ts-ignore: decorator
@inline
function vector(
  params: usize, grads: usize, m: usize, v: usize, slow: usize,
  gs: v128, wd: v128, b1: v128, c1: v128, b2: v128, c2: v128, pd: v128, ss: v128, ep: v128,
  al: v128, gm: v128, coupled: bool, mode: i32, nesterov: bool, sync: bool, unitScale: bool,
): void {
  const p = v128.load(params);
  // unitScale: gs and pd are 1 (the products are exact, so skipping them changes no bit).
  let g = unitScale ? v128.load(grads) : f32x4.mul(gs, v128.load(grads));
  if (coupled) g = f32x4.add(g, f32x4.mul(wd, p));
  const mNew = f32x4.add(f32x4.mul(b1, v128.load(m)), f32x4.mul(c1, g));
  const vNew = f32x4.add(
    f32x4.mul(b2, v128.load(v)),
    f32x4.mul(c2, f32x4.mul(g, g)),
  );
  v128.store(m, mNew);
  v128.store(v, vNew);
  // Nesterov (optax): the update uses m + gradMix * g in place of m.
  const num = nesterov ? f32x4.add(mNew, f32x4.mul(gm, g)) : mNew;
  let pNew = p;
  if (mode == MODE_ADAPTIVE) {
    const q = f32x4.div(num, f32x4.add(f32x4.sqrt(vNew), ep));
    pNew = f32x4.sub(unitScale ? p : f32x4.mul(p, pd), f32x4.mul(ss, q));
  } else if (mode == MODE_MOMENTUM) {
    pNew = f32x4.sub(unitScale ? p : f32x4.mul(p, pd), f32x4.mul(ss, num));
  }
  finishVector(params, slow, pNew, al, sync);
}
