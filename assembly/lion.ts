// The Lion element loop (rules/lion.ts has the rule, its scalars and the TypeScript loop this
// one matches bit for bit), f32x4 SIMD with a scalar tail.
//
// Per element:
//   g = gradScale * grad
//   c = beta1 * m + oneMinusBeta1 * g
//   p = p * paramDecay - stepSize * sign(c)      sign(±0) = +0, sign(NaN) = NaN
//   m = beta2 * m + oneMinusBeta2 * g
//   sync (LookAhead): slow = slow + alpha * (p - slow); p = slow
//
// The common step (gradient scale 1, no decay, no sync) has its own loop, which skips the two
// products by 1 (exact: the same bits). With an 8-bit moment (lionCompactRange, at the end), the
// same element math runs on the moment decoded from its codes, block by block.

import {
  HEADER_ALPHA,
  HEADER_GRAD_SCALE,
  HEADER_SYNC,
  LION_BETA1,
  LION_BETA2,
  LION_ONE_MINUS_BETA1,
  LION_ONE_MINUS_BETA2,
  LION_PARAM_DECAY,
  LION_STEP_SIZE,
} from "./layout.generated";
import { finishScalar, finishVector } from "./lookahead";
import {
  ABS_BITS,
  BLOCK,
  finishSigned,
  highWords,
  lowWords,
  q8Ready,
  ONE,
  SIGN_HIGH,
  SIGNED_HIGH,
  SIGNED_ROUNDING,
  signedHalves,
} from "./q8";

/**
 * `n` elements from the given section addresses, with the scalar block at `block` (`_m1`: the
 * second moment's, which Lion does not keep).
 */
export function lionRange(
  params: usize, grads: usize, m: usize, _m1: usize, slow: usize, n: i32, block: usize,
): void {
  const gradScale = load<f32>(block + HEADER_GRAD_SCALE);
  const paramDecay = load<f32>(block + LION_PARAM_DECAY);
  const sync = load<u32>(block + HEADER_SYNC) != 0;
  if (sync) lionLoop(params, grads, m, slow, n, block, true, false);
  else if (gradScale == 1 && paramDecay == 1) lionLoop(params, grads, m, slow, n, block, false, true);
  else lionLoop(params, grads, m, slow, n, block, false, false);
}

// @ts-ignore: decorator
@inline
function lionLoop(
  params: usize, grads: usize, m: usize, slow: usize, n: i32, block: usize,
  sync: bool, unitScale: bool,
): void {
  const gradScale = load<f32>(block + HEADER_GRAD_SCALE);
  const beta1 = load<f32>(block + LION_BETA1);
  const oneMinusBeta1 = load<f32>(block + LION_ONE_MINUS_BETA1);
  const beta2 = load<f32>(block + LION_BETA2);
  const oneMinusBeta2 = load<f32>(block + LION_ONE_MINUS_BETA2);
  const paramDecay = load<f32>(block + LION_PARAM_DECAY);
  const stepSize = load<f32>(block + LION_STEP_SIZE);
  const alpha = load<f32>(block + HEADER_ALPHA);
  const gs = f32x4.splat(gradScale);
  const b1 = f32x4.splat(beta1);
  const c1 = f32x4.splat(oneMinusBeta1);
  const b2 = f32x4.splat(beta2);
  const c2 = f32x4.splat(oneMinusBeta2);
  const pd = f32x4.splat(paramDecay);
  const ss = f32x4.splat(stepSize);
  const al = f32x4.splat(alpha);
  q8Ready();
  const signBit = v128.not(i32x4.splat(ABS_BITS));
  const one = f32x4.splat(ONE);
  const vecEnd = n & ~3;
  const unrolledEnd = n & ~15;
  let i = 0;
  for (; i < unrolledEnd; i += 16) {
    const o = <usize> i << 2;
    lionVector(params + o, grads + o, m + o, slow + o, gs, b1, c1, b2, c2, pd, ss, al, signBit, one, sync, unitScale);
    lionVector(params + o + 16, grads + o + 16, m + o + 16, slow + o + 16, gs, b1, c1, b2, c2, pd, ss, al, signBit, one, sync, unitScale);
    lionVector(params + o + 32, grads + o + 32, m + o + 32, slow + o + 32, gs, b1, c1, b2, c2, pd, ss, al, signBit, one, sync, unitScale);
    lionVector(params + o + 48, grads + o + 48, m + o + 48, slow + o + 48, gs, b1, c1, b2, c2, pd, ss, al, signBit, one, sync, unitScale);
  }
  for (; i < vecEnd; i += 4) {
    const o = <usize> i << 2;
    lionVector(params + o, grads + o, m + o, slow + o, gs, b1, c1, b2, c2, pd, ss, al, signBit, one, sync, unitScale);
  }
  // Scalar tail: the same operations, one lane at a time.
  for (; i < n; i++) {
    const o = <usize> i << 2;
    const p = load<f32>(params + o);
    const m0 = load<f32>(m + o);
    const g = gradScale * load<f32>(grads + o);
    const c = beta1 * m0 + oneMinusBeta1 * g;
    store<f32>(m + o, beta2 * m0 + oneMinusBeta2 * g);
    const sign: f32 = c > 0 ? 1 : c < 0 ? -1 : c == 0 ? 0 : c;
    const pNew = p * paramDecay - stepSize * sign;
    finishScalar(params + o, slow + o, pNew, alpha, sync);
  }
}

/** One vector (4 elements) of the step; the operations of `lionLoop`'s scalar tail, lane-wise. */
// @ts-ignore: decorator
@inline
function lionVector(
  params: usize, grads: usize, m: usize, slow: usize,
  gs: v128, b1: v128, c1: v128, b2: v128, c2: v128, pd: v128, ss: v128, al: v128,
  signBit: v128, one: v128, sync: bool, unitScale: bool,
): void {
  const p = v128.load(params);
  const m0 = v128.load(m);
  // unitScale: gs is 1 (the product is exact, so skipping it changes no bit).
  const g = unitScale ? v128.load(grads) : f32x4.mul(gs, v128.load(grads));
  v128.store(m, f32x4.add(f32x4.mul(b2, m0), f32x4.mul(c2, g)));
  finishVector(params, slow, lionUpdate(p, m0, g, b1, c1, pd, ss, signBit, one, unitScale), al, sync);
}

/** The new parameters of a vector, from its moment before the step and its gradient. */
// @ts-ignore: decorator
@inline
function lionUpdate(
  p: v128, m0: v128, g: v128, b1: v128, c1: v128, pd: v128, ss: v128, signBit: v128, one: v128,
  unitScale: bool,
): v128 {
  const c = f32x4.add(f32x4.mul(b1, m0), f32x4.mul(c1, g));
  // sign(c): ±1 with c's sign where c ≠ 0 (NaN included), +0 where c = ±0, then c itself where
  // c is NaN. (`signBit`, `one`: splats of 0x80000000 and 1.0 made outside the loop.)
  const signed = v128.and(v128.or(v128.and(c, signBit), one), f32x4.ne(c, f32x4.splat(0)));
  const sign = v128.bitselect(signed, c, f32x4.eq(c, c));
  // unitScale: pd is 1.
  return f32x4.sub(unitScale ? p : f32x4.mul(p, pd), f32x4.mul(ss, sign));
}

// ---------------------------------------------------------------------------------------------
// 8-bit moment (docs/SPEC.md "Compact states", assembly/q8.ts): `m` signed codes.

/**
 * `blocks` blocks of 256 elements whose moment is codes (`mCodes`: one byte an element;
 * `mScales`: one f32 a block), with the scalar block at `block` and 1 KiB of scratch at
 * `scratch`: per block, the moment decoded, the element math of `lionRange`, the new moment kept
 * in the scratch with its largest magnitude, then encoded (`_vCodes`, `_vScales`: the second
 * moment's, which Lion does not keep).
 */
export function lionCompactRange(
  params: usize, grads: usize, mCodes: usize, mScales: usize, _vCodes: usize, _vScales: usize,
  slow: usize, blocks: i32, block: usize, scratch: usize,
): void {
  q8Ready();
  const gradScale = load<f32>(block + HEADER_GRAD_SCALE);
  const paramDecay = load<f32>(block + LION_PARAM_DECAY);
  const sync = load<u32>(block + HEADER_SYNC) != 0;
  if (!sync && gradScale == 1 && paramDecay == 1) {
    lionCompactLoop(params, grads, mCodes, mScales, slow, blocks, block, scratch, false, true);
  } else lionCompactLoop(params, grads, mCodes, mScales, slow, blocks, block, scratch, true, false);
}

// @ts-ignore: decorator
@inline
function lionCompactLoop(
  params: usize, grads: usize, mCodes: usize, mScales: usize, slow: usize, blocks: i32,
  block: usize, scratch: usize, maySync: bool, unitScale: bool,
): void {
  const gs = f32x4.splat(load<f32>(block + HEADER_GRAD_SCALE));
  const b1 = f32x4.splat(load<f32>(block + LION_BETA1));
  const c1 = f32x4.splat(load<f32>(block + LION_ONE_MINUS_BETA1));
  const b2 = f32x4.splat(load<f32>(block + LION_BETA2));
  const c2 = f32x4.splat(load<f32>(block + LION_ONE_MINUS_BETA2));
  const pd = f32x4.splat(load<f32>(block + LION_PARAM_DECAY));
  const ss = f32x4.splat(load<f32>(block + LION_STEP_SIZE));
  const al = f32x4.splat(load<f32>(block + HEADER_ALPHA));
  const sync = maySync && load<u32>(block + HEADER_SYNC) != 0;
  const signedHigh = i16x8.splat(<i16> SIGNED_HIGH);
  const signHigh = i16x8.splat(<i16> SIGN_HIGH);
  const abs = i32x4.splat(ABS_BITS);
  const signBit = v128.not(abs);
  const one = f32x4.splat(ONE);
  const signedRound = i32x4.splat(SIGNED_ROUNDING);
  for (let b = 0; b < blocks; b++) {
    const e = <usize> b * <usize> BLOCK;
    const p = params + (e << 2), g = grads + (e << 2), s = slow + (e << 2);
    const mc = mCodes + e, ms = mScales + (<usize> b << 2);
    const sm = f32x4.splat(load<f32>(ms));
    let top = i32x4.splat(0);
    for (let i: usize = 0; i < <usize> BLOCK; i += 8) {
      const mh = signedHalves(v128.load8x8_s(mc + i), signedHigh, signHigh);
      const o = i << 2;
      // lanes 0–3, then 4–7
      let m0 = f32x4.mul(lowWords(mh), sm);
      let gv = unitScale ? v128.load(g + o) : f32x4.mul(gs, v128.load(g + o));
      let mNew = f32x4.add(f32x4.mul(b2, m0), f32x4.mul(c2, gv));
      v128.store(scratch + o, mNew);
      top = i32x4.max_u(top, i32x4.shl(mNew, 1));
      finishVector(p + o, s + o, lionUpdate(v128.load(p + o), m0, gv, b1, c1, pd, ss, signBit, one, unitScale), al, sync);
      m0 = f32x4.mul(highWords(mh), sm);
      gv = unitScale ? v128.load(g + o, 16) : f32x4.mul(gs, v128.load(g + o, 16));
      mNew = f32x4.add(f32x4.mul(b2, m0), f32x4.mul(c2, gv));
      v128.store(scratch + o, mNew, 16);
      top = i32x4.max_u(top, i32x4.shl(mNew, 1));
      finishVector(p + o + 16, s + o + 16, lionUpdate(v128.load(p + o, 16), m0, gv, b1, c1, pd, ss, signBit, one, unitScale), al, sync);
    }
    finishSigned(scratch, mc, ms, i32x4.shr_u(top, 1), abs, signedRound);
  }
}
