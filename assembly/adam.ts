// The RAdam / Adam / AdamW element loop (rules/adam.ts has the rule, its scalars and the
// TypeScript loop this one matches bit for bit), f32x4 SIMD with a scalar tail.
//
// Per element:
//   g = gradScale * grad (+ coupledDecay * p, only when coupledDecay != 0)
//   m = beta1 * m + oneMinusBeta1 * g
//   v = beta2 * v + oneMinusBeta2 * (g * g)
//   num = m, or momentMix * m + gradMix * g when gradMix != 0 (Nesterov)
//   adaptive: p = p * paramDecay - stepSize * (num / (sqrt(v) + eps))
//   momentum: p = p * paramDecay - stepSize * num
//   sync (LookAhead): slow = slow + alpha * (p - slow); p = slow
//
// The weight-decay term is skipped, not multiplied by zero, when there is none, so that a
// non-finite parameter never leaks into the moments (PyTorch skips it too). Each combination of
// (coupled decay, mode) gets its own loop, specialised at compile time.
//
// With 8-bit moments (adamCompactRange, at the end), the same element math runs on moments
// decoded from their codes, block by block.

import {
  ADAM_BETA1,
  ADAM_BETA2,
  ADAM_COUPLED_DECAY,
  ADAM_EPS,
  ADAM_GRAD_MIX,
  ADAM_MODE,
  ADAM_MOMENT_MIX,
  ADAM_ONE_MINUS_BETA1,
  ADAM_ONE_MINUS_BETA2,
  ADAM_PARAM_DECAY,
  ADAM_STEP_SIZE,
  HEADER_ALPHA,
  HEADER_GRAD_SCALE,
  HEADER_SYNC,
} from "./layout.generated";
import { finishScalar, finishVector } from "./lookahead";
import {
  ABS_BITS,
  BLOCK,
  finishSigned,
  finishUnsigned,
  highWords,
  lowWords,
  q8Ready,
  SIGN_HIGH,
  SIGNED_HIGH,
  SIGNED_ROUNDING,
  signedHalves,
  UNSIGNED_HIGH,
  UNSIGNED_ROUNDING,
  unsignedHalves,
} from "./q8";

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
let MOMENT_MIX: f32 = 1;

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
  MOMENT_MIX = load<f32>(block + ADAM_MOMENT_MIX);
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
  const momentMix = MOMENT_MIX;
  const gm = f32x4.splat(gradMix);
  const mm = f32x4.splat(momentMix);
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
    vector(params + o, grads + o, m + o, v + o, slow + o, gs, wd, b1, c1, b2, c2, pd, ss, ep, al, gm, mm, coupled, mode, nesterov, sync, unitScale);
    vector(params + o + 16, grads + o + 16, m + o + 16, v + o + 16, slow + o + 16, gs, wd, b1, c1, b2, c2, pd, ss, ep, al, gm, mm, coupled, mode, nesterov, sync, unitScale);
    vector(params + o + 32, grads + o + 32, m + o + 32, v + o + 32, slow + o + 32, gs, wd, b1, c1, b2, c2, pd, ss, ep, al, gm, mm, coupled, mode, nesterov, sync, unitScale);
    vector(params + o + 48, grads + o + 48, m + o + 48, v + o + 48, slow + o + 48, gs, wd, b1, c1, b2, c2, pd, ss, ep, al, gm, mm, coupled, mode, nesterov, sync, unitScale);
  }
  for (; i < vecEnd; i += 4) {
    const o = <usize> i << 2;
    vector(params + o, grads + o, m + o, v + o, slow + o, gs, wd, b1, c1, b2, c2, pd, ss, ep, al, gm, mm, coupled, mode, nesterov, sync, unitScale);
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
    const num = nesterov ? momentMix * mNew + gradMix * g : mNew;
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
  al: v128, gm: v128, mm: v128, coupled: bool, mode: i32, nesterov: bool, sync: bool, unitScale: bool,
): void {
  const p = v128.load(params);
  const g = gradient(p, v128.load(grads), gs, wd, coupled, unitScale);
  const mNew = f32x4.add(f32x4.mul(b1, v128.load(m)), f32x4.mul(c1, g));
  const vNew = f32x4.add(f32x4.mul(b2, v128.load(v)), f32x4.mul(c2, f32x4.mul(g, g)));
  v128.store(m, mNew);
  v128.store(v, vNew);
  finishVector(params, slow, update(p, g, mNew, vNew, pd, ss, ep, gm, mm, mode, nesterov, unitScale), al, sync);
}

/** The gradient of a vector: scaled (unless `unitScale`), plus the coupled decay. */
// @ts-ignore: decorator
@inline
function gradient(p: v128, grad: v128, gs: v128, wd: v128, coupled: bool, unitScale: bool): v128 {
  // unitScale: gs is 1 (the product is exact, so skipping it changes no bit).
  let g = unitScale ? grad : f32x4.mul(gs, grad);
  if (coupled) g = f32x4.add(g, f32x4.mul(wd, p));
  return g;
}

/** The new parameters of a vector, from its new moments (before LookAhead's sync). */
// @ts-ignore: decorator
@inline
function update(
  p: v128, g: v128, mNew: v128, vNew: v128, pd: v128, ss: v128, ep: v128, gm: v128, mm: v128,
  mode: i32, nesterov: bool, unitScale: bool,
): v128 {
  // Nesterov (optax): the update uses momentMix * m + gradMix * g in place of m.
  const num = nesterov ? f32x4.add(f32x4.mul(mm, mNew), f32x4.mul(gm, g)) : mNew;
  // unitScale: pd is 1.
  const decayed = unitScale ? p : f32x4.mul(p, pd);
  if (mode == MODE_ADAPTIVE) {
    return f32x4.sub(decayed, f32x4.mul(ss, f32x4.div(num, f32x4.add(f32x4.sqrt(vNew), ep))));
  } else if (mode == MODE_MOMENTUM) {
    return f32x4.sub(decayed, f32x4.mul(ss, num));
  }
  return p;
}

// ---------------------------------------------------------------------------------------------
// 8-bit moments (docs/SPEC.md "Compact states", assembly/q8.ts): `m` signed codes, `v` unsigned.

/**
 * `blocks` blocks of 256 elements whose moments are codes (`mCodes`, `vCodes`: one byte an
 * element; `mScales`, `vScales`: one f32 a block), with the scalar block at `block` and 2 KiB of
 * scratch at `scratch`: per block, the moments decoded, the element math of `adamRange`, the new
 * moments kept in the scratch with their largest magnitudes, then encoded. Bit for bit the
 * TypeScript backend's step of decoded blocks (cpu/js_backend.ts).
 */
export function adamCompactRange(
  params: usize, grads: usize, mCodes: usize, mScales: usize, vCodes: usize, vScales: usize,
  slow: usize, blocks: i32, block: usize, scratch: usize,
): void {
  q8Ready();
  const coupledDecay = load<f32>(block + ADAM_COUPLED_DECAY);
  const paramDecay = load<f32>(block + ADAM_PARAM_DECAY);
  const mode = load<i32>(block + ADAM_MODE);
  const plain = coupledDecay == 0 && load<f32>(block + ADAM_GRAD_MIX) == 0 &&
    load<u32>(block + HEADER_SYNC) == 0;
  const unit = load<f32>(block + HEADER_GRAD_SCALE) == 1 && paramDecay == 1;
  // The common steps have loops of their own; the rest one loop with every feature.
  if (plain && unit && mode == MODE_ADAPTIVE) {
    compactLoop(params, grads, mCodes, mScales, vCodes, vScales, slow, blocks, block, scratch, false, MODE_ADAPTIVE, false, false, true);
  } else if (plain && unit && mode == MODE_MOMENTUM) {
    compactLoop(params, grads, mCodes, mScales, vCodes, vScales, slow, blocks, block, scratch, false, MODE_MOMENTUM, false, false, true);
  } else if (plain && mode == MODE_ADAPTIVE) {
    compactLoop(params, grads, mCodes, mScales, vCodes, vScales, slow, blocks, block, scratch, false, MODE_ADAPTIVE, false, false, false);
  } else {
    compactLoop(params, grads, mCodes, mScales, vCodes, vScales, slow, blocks, block, scratch, coupledDecay != 0, mode, true, true, false);
  }
}

// @ts-ignore: decorator
@inline
function compactLoop(
  params: usize, grads: usize, mCodes: usize, mScales: usize, vCodes: usize, vScales: usize,
  slow: usize, blocks: i32, block: usize, scratch: usize,
  coupled: bool, mode: i32, mayNesterov: bool, maySync: bool, unitScale: bool,
): void {
  const gs = f32x4.splat(load<f32>(block + HEADER_GRAD_SCALE));
  const wd = f32x4.splat(load<f32>(block + ADAM_COUPLED_DECAY));
  const b1 = f32x4.splat(load<f32>(block + ADAM_BETA1));
  const c1 = f32x4.splat(load<f32>(block + ADAM_ONE_MINUS_BETA1));
  const b2 = f32x4.splat(load<f32>(block + ADAM_BETA2));
  const c2 = f32x4.splat(load<f32>(block + ADAM_ONE_MINUS_BETA2));
  const pd = f32x4.splat(load<f32>(block + ADAM_PARAM_DECAY));
  const ss = f32x4.splat(load<f32>(block + ADAM_STEP_SIZE));
  const ep = f32x4.splat(load<f32>(block + ADAM_EPS));
  const al = f32x4.splat(load<f32>(block + HEADER_ALPHA));
  const gradMix = load<f32>(block + ADAM_GRAD_MIX);
  const gm = f32x4.splat(gradMix);
  const mm = f32x4.splat(load<f32>(block + ADAM_MOMENT_MIX));
  const nesterov = mayNesterov && gradMix != 0;
  const sync = maySync && load<u32>(block + HEADER_SYNC) != 0;
  const signedHigh = i16x8.splat(<i16> SIGNED_HIGH);
  const unsignedHigh = i16x8.splat(<i16> UNSIGNED_HIGH);
  const signHigh = i16x8.splat(<i16> SIGN_HIGH);
  const abs = i32x4.splat(ABS_BITS);
  const signedRound = i32x4.splat(SIGNED_ROUNDING);
  const unsignedRound = i32x4.splat(UNSIGNED_ROUNDING);
  const mNext = scratch;
  const vNext = scratch + (<usize> BLOCK << 2);
  for (let b = 0; b < blocks; b++) {
    const e = <usize> b * <usize> BLOCK;
    const p = params + (e << 2), g = grads + (e << 2), s = slow + (e << 2);
    const mc = mCodes + e, vc = vCodes + e;
    const ms = mScales + (<usize> b << 2), vs = vScales + (<usize> b << 2);
    const sm = f32x4.splat(load<f32>(ms));
    const sv = f32x4.splat(load<f32>(vs));
    let mTop = i32x4.splat(0);
    let vTop = i32x4.splat(0);
    for (let i: usize = 0; i < <usize> BLOCK; i += 8) {
      const mh = signedHalves(v128.load8x8_s(mc + i), signedHigh, signHigh);
      const vh = unsignedHalves(v128.load8x8_u(vc + i), unsignedHigh);
      const o = i << 2;
      // lanes 0–3, then 4–7
      let m = f32x4.mul(lowWords(mh), sm);
      let v = f32x4.mul(lowWords(vh), sv);
      let p0 = v128.load(p + o);
      let gv = gradient(p0, v128.load(g + o), gs, wd, coupled, unitScale);
      let mNew = f32x4.add(f32x4.mul(b1, m), f32x4.mul(c1, gv));
      let vNew = f32x4.add(f32x4.mul(b2, v), f32x4.mul(c2, f32x4.mul(gv, gv)));
      v128.store(mNext + o, mNew);
      v128.store(vNext + o, vNew);
      // (the bits shifted left: the magnitude's, without a mask held in a register)
      mTop = i32x4.max_u(mTop, i32x4.shl(mNew, 1));
      vTop = i32x4.max_u(vTop, vNew); // v ≥ 0: its bits are its magnitude's (a NaN's: above all)
      finishVector(p + o, s + o, update(p0, gv, mNew, vNew, pd, ss, ep, gm, mm, mode, nesterov, unitScale), al, sync);
      m = f32x4.mul(highWords(mh), sm);
      v = f32x4.mul(highWords(vh), sv);
      p0 = v128.load(p + o, 16);
      gv = gradient(p0, v128.load(g + o, 16), gs, wd, coupled, unitScale);
      mNew = f32x4.add(f32x4.mul(b1, m), f32x4.mul(c1, gv));
      vNew = f32x4.add(f32x4.mul(b2, v), f32x4.mul(c2, f32x4.mul(gv, gv)));
      v128.store(mNext + o, mNew, 16);
      v128.store(vNext + o, vNew, 16);
      mTop = i32x4.max_u(mTop, i32x4.shl(mNew, 1));
      vTop = i32x4.max_u(vTop, vNew);
      finishVector(p + o + 16, s + o + 16, update(p0, gv, mNew, vNew, pd, ss, ep, gm, mm, mode, nesterov, unitScale), al, sync);
    }
    finishSigned(mNext, mc, ms, i32x4.shr_u(mTop, 1), abs, signedRound);
    finishUnsigned(vNext, vc, vs, vTop, unsignedRound);
  }
}
