// The SGD element loop (rules/sgd.ts has the rule, its scalars and the TypeScript loop this one
// matches bit for bit), f32x4 SIMD with a scalar tail.
//
// Per element:
//   g = gradScale * grad (+ coupledDecay * p, only when coupledDecay != 0)
//   plain (momentum 0): d = g
//   momentum: b = bufferDecay * b + bufferGrad * g; d = b
//   Nesterov: b = bufferDecay * b + bufferGrad * g; d = g + momentum * b
//   p = p - stepSize * d
//   sync (LookAhead): slow = slow + alpha * (p - slow); p = slow
//
// The weight-decay term is skipped, not multiplied by zero, when there is none, so that a
// non-finite parameter never leaks into the buffer (PyTorch skips it too). Without momentum the
// buffer is never touched (the state has no section for it). Each combination of (coupled decay,
// LookAhead sync, mode) gets its own loop, specialised at compile time. With an 8-bit buffer
// (sgdCompactRange, at the end), the same element math runs on the buffer decoded from its codes,
// block by block.

import {
  HEADER_ALPHA,
  HEADER_GRAD_SCALE,
  HEADER_SYNC,
  SGD_BUFFER_DECAY,
  SGD_BUFFER_GRAD,
  SGD_COUPLED_DECAY,
  SGD_MODE,
  SGD_MOMENTUM,
  SGD_STEP_SIZE,
} from "./layout.generated";
import { finishScalar, finishVector } from "./lookahead";
import {
  ABS_BITS,
  BLOCK,
  finishSigned,
  highWords,
  lowWords,
  q8Ready,
  SIGN_HIGH,
  SIGNED_HIGH,
  SIGNED_ROUNDING,
  signedHalves,
} from "./q8";

/** `mode` value: plain SGD, no buffer. */
const MODE_PLAIN: u32 = 0;
/** `mode` value: heavy-ball momentum. */
const MODE_MOMENTUM: u32 = 1;
// Any other mode: Nesterov momentum.

/**
 * `n` elements from the given section addresses, with the scalar block at `block` (`m`: the
 * buffer's; `_m1`: the second moment's, which SGD does not keep).
 */
export function sgdRange(
  params: usize, grads: usize, m: usize, _m1: usize, slow: usize, n: i32, block: usize,
): void {
  const coupled = load<f32>(block + SGD_COUPLED_DECAY) != 0;
  const sync = load<u32>(block + HEADER_SYNC) != 0;
  if (coupled) {
    if (sync) sgdModes(params, grads, m, slow, n, block, true, true);
    else sgdModes(params, grads, m, slow, n, block, true, false);
  } else if (sync) sgdModes(params, grads, m, slow, n, block, false, true);
  else sgdModes(params, grads, m, slow, n, block, false, false);
}

/** The loop of the block's mode. */
// @ts-ignore: decorator
@inline
function sgdModes(
  params: usize, grads: usize, m: usize, slow: usize, n: i32, block: usize,
  coupled: bool, sync: bool,
): void {
  const mode = load<u32>(block + SGD_MODE);
  if (mode == MODE_PLAIN) sgdLoop(params, grads, m, slow, n, block, coupled, sync, 0);
  else if (mode == MODE_MOMENTUM) sgdLoop(params, grads, m, slow, n, block, coupled, sync, 1);
  else sgdLoop(params, grads, m, slow, n, block, coupled, sync, 2);
}

// @ts-ignore: decorator
@inline
function sgdLoop(
  params: usize, grads: usize, m: usize, slow: usize, n: i32, block: usize,
  coupled: bool, sync: bool, mode: u32,
): void {
  const gradScale = load<f32>(block + HEADER_GRAD_SCALE);
  const coupledDecay = load<f32>(block + SGD_COUPLED_DECAY);
  const bufferDecay = load<f32>(block + SGD_BUFFER_DECAY);
  const bufferGrad = load<f32>(block + SGD_BUFFER_GRAD);
  const momentum = load<f32>(block + SGD_MOMENTUM);
  const stepSize = load<f32>(block + SGD_STEP_SIZE);
  const alpha = load<f32>(block + HEADER_ALPHA);
  const gs = f32x4.splat(gradScale);
  const wd = f32x4.splat(coupledDecay);
  const bd = f32x4.splat(bufferDecay);
  const bg = f32x4.splat(bufferGrad);
  const mu = f32x4.splat(momentum);
  const ss = f32x4.splat(stepSize);
  const al = f32x4.splat(alpha);
  const vecEnd = n & ~3;
  const unrolledEnd = n & ~15;
  let i = 0;
  for (; i < unrolledEnd; i += 16) {
    const o = <usize> i << 2;
    sgdVector(params + o, grads + o, m + o, slow + o, gs, wd, bd, bg, mu, ss, al, coupled, sync, mode);
    sgdVector(params + o + 16, grads + o + 16, m + o + 16, slow + o + 16, gs, wd, bd, bg, mu, ss, al, coupled, sync, mode);
    sgdVector(params + o + 32, grads + o + 32, m + o + 32, slow + o + 32, gs, wd, bd, bg, mu, ss, al, coupled, sync, mode);
    sgdVector(params + o + 48, grads + o + 48, m + o + 48, slow + o + 48, gs, wd, bd, bg, mu, ss, al, coupled, sync, mode);
  }
  for (; i < vecEnd; i += 4) {
    const o = <usize> i << 2;
    sgdVector(params + o, grads + o, m + o, slow + o, gs, wd, bd, bg, mu, ss, al, coupled, sync, mode);
  }
  // Scalar tail: the same operations, one lane at a time.
  for (; i < n; i++) {
    const o = <usize> i << 2;
    const p = load<f32>(params + o);
    let g = gradScale * load<f32>(grads + o);
    if (coupled) g = g + coupledDecay * p;
    let d = g;
    if (mode != MODE_PLAIN) {
      const b = bufferDecay * load<f32>(m + o) + bufferGrad * g;
      store<f32>(m + o, b);
      d = mode == MODE_MOMENTUM ? b : g + momentum * b;
    }
    finishScalar(params + o, slow + o, p - stepSize * d, alpha, sync);
  }
}

/** One vector (4 elements) of the step; the operations of `sgdLoop`'s scalar tail, lane-wise. */
// @ts-ignore: decorator
@inline
function sgdVector(
  params: usize, grads: usize, m: usize, slow: usize,
  gs: v128, wd: v128, bd: v128, bg: v128, mu: v128, ss: v128, al: v128,
  coupled: bool, sync: bool, mode: u32,
): void {
  const p = v128.load(params);
  let g = f32x4.mul(gs, v128.load(grads));
  if (coupled) g = f32x4.add(g, f32x4.mul(wd, p));
  let d = g;
  if (mode != MODE_PLAIN) {
    const b = f32x4.add(f32x4.mul(bd, v128.load(m)), f32x4.mul(bg, g));
    v128.store(m, b);
    d = mode == MODE_MOMENTUM ? b : f32x4.add(g, f32x4.mul(mu, b));
  }
  finishVector(params, slow, f32x4.sub(p, f32x4.mul(ss, d)), al, sync);
}

// ---------------------------------------------------------------------------------------------
// 8-bit buffer (docs/SPEC.md "Compact states", assembly/q8.ts): signed codes. Without momentum
// there is no buffer, and no compact tensor.

/**
 * `blocks` blocks of 256 elements whose buffer is codes (`mCodes`: one byte an element;
 * `mScales`: one f32 a block), with the scalar block at `block` and 1 KiB of scratch at
 * `scratch`: per block, the buffer decoded, the element math of `sgdRange`, the new buffer kept
 * in the scratch with its largest magnitude, then encoded (`_vCodes`, `_vScales`: a second
 * moment's, which SGD does not keep).
 */
export function sgdCompactRange(
  params: usize, grads: usize, mCodes: usize, mScales: usize, _vCodes: usize, _vScales: usize,
  slow: usize, blocks: i32, block: usize, scratch: usize,
): void {
  q8Ready();
  const coupled = load<f32>(block + SGD_COUPLED_DECAY) != 0;
  const sync = load<u32>(block + HEADER_SYNC) != 0;
  const nesterov = load<u32>(block + SGD_MODE) != MODE_MOMENTUM;
  if (!coupled && !sync && !nesterov) {
    sgdCompactLoop(params, grads, mCodes, mScales, slow, blocks, block, scratch, false, false, MODE_MOMENTUM);
  } else sgdCompactLoop(params, grads, mCodes, mScales, slow, blocks, block, scratch, coupled, sync, nesterov ? 2 : MODE_MOMENTUM);
}

// @ts-ignore: decorator
@inline
function sgdCompactLoop(
  params: usize, grads: usize, mCodes: usize, mScales: usize, slow: usize, blocks: i32,
  block: usize, scratch: usize, coupled: bool, sync: bool, mode: u32,
): void {
  const gs = f32x4.splat(load<f32>(block + HEADER_GRAD_SCALE));
  const wd = f32x4.splat(load<f32>(block + SGD_COUPLED_DECAY));
  const bd = f32x4.splat(load<f32>(block + SGD_BUFFER_DECAY));
  const bg = f32x4.splat(load<f32>(block + SGD_BUFFER_GRAD));
  const mu = f32x4.splat(load<f32>(block + SGD_MOMENTUM));
  const ss = f32x4.splat(load<f32>(block + SGD_STEP_SIZE));
  const al = f32x4.splat(load<f32>(block + HEADER_ALPHA));
  const signedHigh = i16x8.splat(<i16> SIGNED_HIGH);
  const signHigh = i16x8.splat(<i16> SIGN_HIGH);
  const abs = i32x4.splat(ABS_BITS);
  const signedRound = i32x4.splat(SIGNED_ROUNDING);
  for (let b = 0; b < blocks; b++) {
    const e = <usize> b * <usize> BLOCK;
    const p = params + (e << 2), g = grads + (e << 2), s = slow + (e << 2);
    const mc = mCodes + e, ms = mScales + (<usize> b << 2);
    const sm = f32x4.splat(load<f32>(ms));
    let top = i32x4.splat(0);
    for (let i: usize = 0; i < <usize> BLOCK; i += 8) {
      const mh = signedHalves(v128.load8x8_s(mc + i), signedHigh, signHigh);
      for (let h: usize = 0; h < 32; h += 16) {
        const o = (i << 2) + h;
        const m = f32x4.mul(h == 0 ? lowWords(mh) : highWords(mh), sm);
        const p0 = v128.load(p + o);
        let gv = f32x4.mul(gs, v128.load(g + o));
        if (coupled) gv = f32x4.add(gv, f32x4.mul(wd, p0));
        const buf = f32x4.add(f32x4.mul(bd, m), f32x4.mul(bg, gv));
        v128.store(scratch + o, buf);
        top = i32x4.max_u(top, i32x4.shl(buf, 1));
        const d = mode == MODE_MOMENTUM ? buf : f32x4.add(gv, f32x4.mul(mu, buf));
        finishVector(p + o, s + o, f32x4.sub(p0, f32x4.mul(ss, d)), al, sync);
      }
    }
    finishSigned(scratch, mc, ms, i32x4.shr_u(top, 1), abs, signedRound);
  }
}
