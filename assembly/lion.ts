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
// products by 1 (exact: the same bits).

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
  const vecEnd = n & ~3;
  const unrolledEnd = n & ~15;
  let i = 0;
  for (; i < unrolledEnd; i += 16) {
    const o = <usize> i << 2;
    lionVector(params + o, grads + o, m + o, slow + o, gs, b1, c1, b2, c2, pd, ss, al, sync, unitScale);
    lionVector(params + o + 16, grads + o + 16, m + o + 16, slow + o + 16, gs, b1, c1, b2, c2, pd, ss, al, sync, unitScale);
    lionVector(params + o + 32, grads + o + 32, m + o + 32, slow + o + 32, gs, b1, c1, b2, c2, pd, ss, al, sync, unitScale);
    lionVector(params + o + 48, grads + o + 48, m + o + 48, slow + o + 48, gs, b1, c1, b2, c2, pd, ss, al, sync, unitScale);
  }
  for (; i < vecEnd; i += 4) {
    const o = <usize> i << 2;
    lionVector(params + o, grads + o, m + o, slow + o, gs, b1, c1, b2, c2, pd, ss, al, sync, unitScale);
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
  sync: bool, unitScale: bool,
): void {
  const p = v128.load(params);
  const m0 = v128.load(m);
  // unitScale: gs and pd are 1 (the products are exact, so skipping them changes no bit).
  const g = unitScale ? v128.load(grads) : f32x4.mul(gs, v128.load(grads));
  const c = f32x4.add(f32x4.mul(b1, m0), f32x4.mul(c1, g));
  v128.store(m, f32x4.add(f32x4.mul(b2, m0), f32x4.mul(c2, g)));
  // sign(c): ±1 with c's sign where c ≠ 0 (NaN included), +0 where c = ±0, then c itself where
  // c is NaN.
  const one = v128.or(v128.and(c, i32x4.splat(0x80000000)), f32x4.splat(1));
  const signed = v128.and(one, f32x4.ne(c, f32x4.splat(0)));
  const sign = v128.bitselect(signed, c, f32x4.eq(c, c));
  const pNew = f32x4.sub(unitScale ? p : f32x4.mul(p, pd), f32x4.mul(ss, sign));
  finishVector(params, slow, pNew, al, sync);
}
