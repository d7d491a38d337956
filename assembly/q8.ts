// The block-wise 8-bit codes of compact optimizer states (docs/SPEC.md, "Compact states"; the
// TypeScript twin is base/q8.ts, bit for bit): the vector helpers the compact element loops are
// built from, and whole-block encode/decode for the host (checkpoints, readMoments, tests).
//
// A moment is cut into blocks of BLOCK elements; each block keeps one f32 scale S, the largest
// magnitude in the block, and one byte per element. Two code maps, both relative to S:
//
//   signed (first moments, momentum): an i8 c = ±k, k in 0..127; k = 0 is 0, else the f32 whose
//     bits are (k << 20) + SIGNED_OFFSET (a float with 3 mantissa bits over 16 binades, k = 127
//     being 1.0), with c's sign, times S.
//   unsigned (second moments): a u8 k in 0..255, the f32 whose bits are (k << 20) +
//     UNSIGNED_OFFSET (3 mantissa bits over 32 binades, k = 255 being 1.0), times S. Code 0 is
//     the smallest value, 2^-32 · 1.125, never 0: a non-zero second moment never decodes to 0
//     (a block whose values are all 0 has S = 0 and decodes to 0). Three mantissa bits of v are
//     four of sqrt(v), which is what the update divides by.
//
// Encoding a block: S = the largest |x| (an integer max of the bits with the sign cleared, so a
// NaN is above +Infinity is above every finite value); R = f32(1 / S); for each value,
// y = x · R and k = (bits(|y|) + ROUND) >> SHIFT, saturated to 0..K (the nearest code, ties
// away from 0; values below the smallest code's lower half step go to 0); the signed code takes
// y's sign (−0 gives 0); the unsigned code of a negative y (−0 included) is 0 (the step's encoder
// is only given values of +0 or more). Special blocks: a NaN in the block: the scale is stored as
// NaN (bits 0x7fc00000) and every code as 0, so the whole block decodes to NaN; an infinity (and
// no NaN): the scale is the largest finite f32, FLT_MAX, and the infinity gets the top code, so
// that it decodes to ±FLT_MAX and the rest of the block stays finite (a finite gradient above
// sqrt(FLT_MAX) makes g · g, and so v, +Infinity); S above 2^126, where f32(1 / S) would be a
// subnormal (which a GPU may flush to 0): the block is encoded wide, y = (x · 2^-2) · R with
// R = f32(1 / (S · 2^-2)), its magnitudes saturated to the top code; S subnormal (every
// |x| < 2^-126): the scale is the smallest normal f32; S = 0: the scale 0 and every code 0.
//
// Every operation is an integer operation or one correctly rounded f32 multiply (or the one
// f32 division of R per block), so the TypeScript twin gives the same bits.

/** Elements of a block (one scale each). */
export const BLOCK: i32 = 256;

/** Bit position of the signed code's magnitude in the f32 it decodes to. */
export const SIGNED_SHIFT: i32 = 20;
/** Added to `k << SIGNED_SHIFT` to give the bits of the value of magnitude k (k = 127: 1.0). */
export const SIGNED_OFFSET: i32 = 0x3f800000 - (127 << 20);
/** Added to the bits of |y| before the shift: half a code step, less the offset. */
export const SIGNED_ROUND: i32 = (1 << 19) - SIGNED_OFFSET;

/** Bit position of the unsigned code in the f32 it decodes to. */
export const UNSIGNED_SHIFT: i32 = 20;
/** Added to `k << UNSIGNED_SHIFT` to give the bits of the value of code k (k = 255: 1.0). */
export const UNSIGNED_OFFSET: i32 = 0x3f800000 - (255 << 20);
/** Added to the bits of y before the shift: half a code step, less the offset. */
export const UNSIGNED_ROUND: i32 = (1 << 19) - UNSIGNED_OFFSET;

/** The bits of the scale stored for a block holding a NaN. */
export const NAN_SCALE_BITS: u32 = 0x7fc00000;
/** The bits of the scale stored for a block holding an infinity (and no NaN): FLT_MAX. */
export const LARGEST_SCALE_BITS: u32 = 0x7f7fffff;

// The constants the compact loops splat, as globals set at run time (`q8Ready`, called by every
// compact loop before it splats them): a splat of a compile-time constant becomes a v128.const,
// which V8 materializes again in every iteration of the loop that uses it.
let READY: bool = false;
/** `SIGNED_OFFSET >> 16`: the upper half of the bits of magnitude 0's value. */
export let SIGNED_HIGH: i32 = 0;
/** `UNSIGNED_OFFSET >> 16`. */
export let UNSIGNED_HIGH: i32 = 0;
/** The sign bit of an i16 lane. */
export let SIGN_HIGH: i32 = 0;
/** All bits but the sign of an i32 lane. */
export let ABS_BITS: i32 = 0;
/** {@link SIGNED_ROUND}. */
export let SIGNED_ROUNDING: i32 = 0;
/** {@link UNSIGNED_ROUND}. */
export let UNSIGNED_ROUNDING: i32 = 0;
/** 1.0. */
export let ONE: f32 = 0;

/** Sets the constants above (once). */
// @ts-ignore: decorator
@inline
export function q8Ready(): void {
  if (READY) return;
  SIGNED_HIGH = SIGNED_OFFSET >> 16;
  UNSIGNED_HIGH = UNSIGNED_OFFSET >> 16;
  SIGN_HIGH = 0x8000;
  ABS_BITS = 0x7fffffff;
  SIGNED_ROUNDING = SIGNED_ROUND;
  UNSIGNED_ROUNDING = UNSIGNED_ROUND;
  ONE = 1;
  READY = true;
}

/** Bits of |x| at or above this are not finite; above it, a NaN. */
const INFINITY_BITS: u32 = 0x7f800000;
/** Bits of a scale above this (2^126) make f32(1 / S) a subnormal: its block is encoded wide. */
const WIDE_BITS: u32 = 0x7e800000;
/** What a wide block's values and scale are multiplied by before the reciprocal: 2^-2. */
const WIDE_FACTOR: f32 = 0.25;
/** Bits of |x| below this are subnormal (or 0). */
const SMALLEST_NORMAL_BITS: u32 = 0x00800000;

/**
 * The i16 upper halves of the f32 bits that 8 signed codes decode to (before the scale), from
 * `h`, the codes sign-extended to i16 lanes (`v128.load8x8_s`). `offset` is
 * `i16x8.splat(SIGNED_OFFSET >> 16)`, `sign` is `i16x8.splat(0x8000)`; the lower halves are 0.
 */
// @ts-ignore: decorator
@inline
export function signedHalves(h: v128, offset: v128, sign: v128): v128 {
  const k = i16x8.abs(h);
  const t = v128.and(i16x8.add(i16x8.shl(k, 4), offset), i16x8.gt_s(k, i16x8.splat(0)));
  return v128.or(t, v128.and(h, sign));
}

/**
 * The i16 upper halves of the f32 bits that 8 unsigned codes decode to (before the scale), from
 * `h`, the codes zero-extended to i16 lanes (`v128.load8x8_u`); `offset` is
 * `i16x8.splat(UNSIGNED_OFFSET >> 16)`.
 */
// @ts-ignore: decorator
@inline
export function unsignedHalves(h: v128, offset: v128): v128 {
  return i16x8.add(i16x8.shl(h, 4), offset);
}

/** The f32 bits of lanes 0–3 of `halves` (upper halves, lower halves 0). */
// @ts-ignore: decorator
@inline
export function lowWords(halves: v128): v128 {
  return i16x8.shuffle(i16x8.splat(0), halves, 0, 8, 1, 9, 2, 10, 3, 11);
}

/** The f32 bits of lanes 4–7 of `halves`. */
// @ts-ignore: decorator
@inline
export function highWords(halves: v128): v128 {
  return i16x8.shuffle(i16x8.splat(0), halves, 4, 12, 5, 13, 6, 14, 7, 15);
}

/**
 * Signed codes of the 16 f32 values at `x` into the 16 bytes at `out`, with `r` the splatted
 * reciprocal of the block's scale, `abs` `i32x4.splat(0x7fffffff)` and `round`
 * `i32x4.splat(SIGNED_ROUND)`. `wide` (a block whose scale is above 2^126): each value is first
 * multiplied by 2^-2 (`r` is then the reciprocal of the scale times 2^-2), and the magnitudes are
 * saturated to 127 (an infinity's y is one).
 */
// @ts-ignore: decorator
@inline
export function encodeSigned16(x: usize, out: usize, r: v128, abs: v128, round: v128, wide: bool): void {
  let x0 = v128.load(x), x1 = v128.load(x, 16), x2 = v128.load(x, 32), x3 = v128.load(x, 48);
  if (wide) {
    const q = f32x4.splat(WIDE_FACTOR);
    x0 = f32x4.mul(x0, q);
    x1 = f32x4.mul(x1, q);
    x2 = f32x4.mul(x2, q);
    x3 = f32x4.mul(x3, q);
  }
  const y0 = f32x4.mul(x0, r);
  const y1 = f32x4.mul(x1, r);
  const y2 = f32x4.mul(x2, r);
  const y3 = f32x4.mul(x3, r);
  // k of each lane, saturated to 0.. by the unsigned narrow (a finite y never gives more than
  // 127: |y| ≤ 1 + 2^-23)
  let ka = i16x8.narrow_i32x4_u(
    i32x4.shr_s(i32x4.add(v128.and(y0, abs), round), SIGNED_SHIFT),
    i32x4.shr_s(i32x4.add(v128.and(y1, abs), round), SIGNED_SHIFT),
  );
  let kb = i16x8.narrow_i32x4_u(
    i32x4.shr_s(i32x4.add(v128.and(y2, abs), round), SIGNED_SHIFT),
    i32x4.shr_s(i32x4.add(v128.and(y3, abs), round), SIGNED_SHIFT),
  );
  if (wide) {
    ka = i16x8.min_u(ka, i16x8.splat(127));
    kb = i16x8.min_u(kb, i16x8.splat(127));
  }
  // y's sign as 0 / −1 in i16 lanes: c = (k ^ s) − s
  const sa = i16x8.narrow_i32x4_s(i32x4.shr_s(y0, 31), i32x4.shr_s(y1, 31));
  const sb = i16x8.narrow_i32x4_s(i32x4.shr_s(y2, 31), i32x4.shr_s(y3, 31));
  v128.store(
    out,
    i8x16.narrow_i16x8_s(i16x8.sub(v128.xor(ka, sa), sa), i16x8.sub(v128.xor(kb, sb), sb)),
  );
}

/**
 * The unsigned codes (i32 lanes, not yet saturated) of the 4 values `x · r`. With `any`, a
 * negative value, −0 included, gets code 0: its bits are first taken as at least 0 (an i32 max),
 * since a negative value's bits, the sign bit set, would wrap past the rounding offset to the top
 * code. The step passes `false`: every second moment it encodes is +0 or more, and the max would
 * cost it about 2% (radam 8-bit, 256K-16M). `wide`: `x` is first multiplied by 2^-2 (an
 * infinity's code saturates to 255 as it is).
 */
// @ts-ignore: decorator
@inline
function unsignedLanes(x: v128, r: v128, round: v128, any: bool, wide: bool): v128 {
  let y = f32x4.mul(wide ? f32x4.mul(x, f32x4.splat(WIDE_FACTOR)) : x, r);
  if (any) y = i32x4.max_s(y, i32x4.splat(0));
  return i32x4.shr_s(i32x4.add(y, round), UNSIGNED_SHIFT);
}

/**
 * Unsigned codes of the 16 f32 values at `x` into the 16 bytes at `out`, with `r` the splatted
 * reciprocal of the block's scale and `round` `i32x4.splat(UNSIGNED_ROUND)`. The values must be
 * +0 or more, or, with `any`, may be anything (a negative value, −0 included, gets code 0).
 * `wide`: as {@link encodeSigned16}.
 */
// @ts-ignore: decorator
@inline
export function encodeUnsigned16(x: usize, out: usize, r: v128, round: v128, any: bool, wide: bool): void {
  const k0 = unsignedLanes(v128.load(x), r, round, any, wide);
  const k1 = unsignedLanes(v128.load(x, 16), r, round, any, wide);
  const k2 = unsignedLanes(v128.load(x, 32), r, round, any, wide);
  const k3 = unsignedLanes(v128.load(x, 48), r, round, any, wide);
  v128.store(
    out,
    i8x16.narrow_i16x8_u(i16x8.narrow_i32x4_u(k0, k1), i16x8.narrow_i32x4_u(k2, k3)),
  );
}

/** The largest u32 lane of `acc` (lanes of |x| bits: the block's largest magnitude). */
// @ts-ignore: decorator
@inline
export function largestLane(acc: v128): u32 {
  const a = i32x4.max_u(acc, v128.shuffle<u32>(acc, acc, 2, 3, 0, 1));
  return i32x4.extract_lane(i32x4.max_u(a, v128.shuffle<u32>(a, a, 1, 0, 3, 2)), 0);
}

/**
 * The bits of the scale stored for a block whose largest |x| has bits `top`: `top`, or the
 * smallest normal f32 where `top` is a subnormal (not 0), FLT_MAX where it is an infinity, a NaN
 * where it is one.
 */
// @ts-ignore: decorator
@inline
export function scaleBits(top: u32): u32 {
  if (top >= INFINITY_BITS) return top == INFINITY_BITS ? LARGEST_SCALE_BITS : NAN_SCALE_BITS;
  return top == 0 ? 0 : top < SMALLEST_NORMAL_BITS ? SMALLEST_NORMAL_BITS : top;
}

/**
 * Whether a block whose largest |x| has bits `top` is stored with codes (else its codes are all
 * 0: a block of zeros, or one holding a NaN).
 */
// @ts-ignore: decorator
@inline
export function hasCodes(top: u32): bool {
  return top != 0 && top <= INFINITY_BITS;
}

/** f32(1 / S) for a block with codes, not wide, whose largest |x| has bits `top`. */
// @ts-ignore: decorator
@inline
export function reciprocalOf(top: u32): f32 {
  return <f32> 1 / reinterpret<f32>(scaleBits(top));
}

/** Writes BLOCK zero bytes at `out`. */
// @ts-ignore: decorator
@inline
export function zeroCodes(out: usize): void {
  const z = i32x4.splat(0);
  for (let i: usize = 0; i < <usize> BLOCK; i += 16) v128.store(out + i, z);
}

/**
 * The signed codes of a wide block (scale above 2^126; an infinity in it included): R =
 * f32(1 / (S · 2^-2)) and y = (x · 2^-2) · R. Not inlined: the compact loops meet it once in a
 * blue moon, and keep their code as it was.
 */
function encodeSignedWide(x: usize, codes: usize, top: u32): void {
  const r = f32x4.splat(<f32> 1 / (reinterpret<f32>(scaleBits(top)) * WIDE_FACTOR));
  const abs = i32x4.splat(0x7fffffff);
  const round = i32x4.splat(SIGNED_ROUND);
  for (let i: usize = 0; i < <usize> BLOCK; i += 16) encodeSigned16(x + (i << 2), codes + i, r, abs, round, true);
}

/** {@link encodeSignedWide} for unsigned codes (values ≥ 0, or anything with `any`). */
function encodeUnsignedWide(x: usize, codes: usize, top: u32, any: bool): void {
  const r = f32x4.splat(<f32> 1 / (reinterpret<f32>(scaleBits(top)) * WIDE_FACTOR));
  const round = i32x4.splat(UNSIGNED_ROUND);
  if (any) {
    for (let i: usize = 0; i < <usize> BLOCK; i += 16) encodeUnsigned16(x + (i << 2), codes + i, r, round, true, true);
  } else {
    for (let i: usize = 0; i < <usize> BLOCK; i += 16) encodeUnsigned16(x + (i << 2), codes + i, r, round, false, true);
  }
}

/**
 * Writes the scale (at `scale`) and the signed codes (at `codes`) of the BLOCK f32 values at `x`,
 * whose largest |x| has bits `top`. `abs`: `i32x4.splat(0x7fffffff)`, `round`:
 * `i32x4.splat(SIGNED_ROUND)`.
 */
// @ts-ignore: decorator
@inline
function signedBlock(x: usize, codes: usize, scale: usize, top: u32, abs: v128, round: v128): void {
  store<u32>(scale, scaleBits(top));
  if (!hasCodes(top)) {
    zeroCodes(codes);
    return;
  }
  if (top > WIDE_BITS) {
    encodeSignedWide(x, codes, top);
    return;
  }
  const r = f32x4.splat(reciprocalOf(top));
  for (let i: usize = 0; i < <usize> BLOCK; i += 16) encodeSigned16(x + (i << 2), codes + i, r, abs, round, false);
}

/**
 * Writes the scale and the unsigned codes of the BLOCK f32 values at `x` (≥ 0, or anything with
 * `any`), whose largest |x| has bits `top`. `round`: `i32x4.splat(UNSIGNED_ROUND)`.
 */
// @ts-ignore: decorator
@inline
function unsignedBlock(x: usize, codes: usize, scale: usize, top: u32, round: v128, any: bool): void {
  store<u32>(scale, scaleBits(top));
  if (!hasCodes(top)) {
    zeroCodes(codes);
    return;
  }
  if (top > WIDE_BITS) {
    encodeUnsignedWide(x, codes, top, any);
    return;
  }
  const r = f32x4.splat(reciprocalOf(top));
  for (let i: usize = 0; i < <usize> BLOCK; i += 16) encodeUnsigned16(x + (i << 2), codes + i, r, round, any, false);
}

/**
 * The end of a compact loop's block, for a signed moment: its new values are the BLOCK f32 at
 * `x` (the loop's scratch), `acc` the lane maxima of their |x| bits; writes the block's scale at
 * `scale` and its codes at `codes`. `abs`: `i32x4.splat(0x7fffffff)`, `round`:
 * `i32x4.splat(SIGNED_ROUND)`.
 */
// @ts-ignore: decorator
@inline
export function finishSigned(x: usize, codes: usize, scale: usize, acc: v128, abs: v128, round: v128): void {
  signedBlock(x, codes, scale, largestLane(acc), abs, round);
}

/** {@link finishSigned} for a non-negative moment (unsigned codes; `round`: UNSIGNED_ROUND). */
// @ts-ignore: decorator
@inline
export function finishUnsigned(x: usize, codes: usize, scale: usize, acc: v128, round: v128): void {
  unsignedBlock(x, codes, scale, largestLane(acc), round, false);
}

/** The largest |x| bits over the BLOCK f32 values at `x`. */
function blockTop(x: usize): u32 {
  const abs = i32x4.splat(0x7fffffff);
  let acc = i32x4.splat(0);
  for (let i: usize = 0; i < <usize> BLOCK; i += 4) {
    acc = i32x4.max_u(acc, v128.and(v128.load(x + (i << 2)), abs));
  }
  return largestLane(acc);
}

/**
 * Encodes `blocks` blocks of BLOCK f32 values at `x` with the signed code: the codes (i8) at
 * `codes`, one f32 scale a block at `scales`.
 */
export function encodeSignedBlocks(x: usize, codes: usize, scales: usize, blocks: i32): void {
  const abs = i32x4.splat(0x7fffffff);
  const round = i32x4.splat(SIGNED_ROUND);
  for (let b = 0; b < blocks; b++) {
    const xb = x + ((<usize> b * <usize> BLOCK) << 2);
    signedBlock(xb, codes + <usize> b * <usize> BLOCK, scales + (<usize> b << 2), blockTop(xb), abs, round);
  }
}

/**
 * Encodes `blocks` blocks of BLOCK f32 values (≥ 0; a negative value, −0 included, gets code 0)
 * at `x` with the unsigned code: the codes (u8) at `codes`, one f32 scale a block at `scales`.
 */
export function encodeUnsignedBlocks(x: usize, codes: usize, scales: usize, blocks: i32): void {
  const round = i32x4.splat(UNSIGNED_ROUND);
  for (let b = 0; b < blocks; b++) {
    const xb = x + ((<usize> b * <usize> BLOCK) << 2);
    unsignedBlock(xb, codes + <usize> b * <usize> BLOCK, scales + (<usize> b << 2), blockTop(xb), round, true);
  }
}

/** Decodes `blocks` blocks of signed codes at `codes` with their scales at `scales` into f32 at `out`. */
export function decodeSignedBlocks(codes: usize, scales: usize, out: usize, blocks: i32): void {
  const offset = i16x8.splat(<i16> (SIGNED_OFFSET >> 16));
  const sign = i16x8.splat(<i16> 0x8000);
  for (let b = 0; b < blocks; b++) {
    const cb = codes + <usize> b * <usize> BLOCK;
    const ob = out + ((<usize> b * <usize> BLOCK) << 2);
    const s = f32x4.splat(load<f32>(scales + (<usize> b << 2)));
    for (let i: usize = 0; i < <usize> BLOCK; i += 8) {
      const t = signedHalves(v128.load8x8_s(cb + i), offset, sign);
      v128.store(ob + (i << 2), f32x4.mul(lowWords(t), s));
      v128.store(ob + (i << 2), f32x4.mul(highWords(t), s), 16);
    }
  }
}

/** Decodes `blocks` blocks of unsigned codes at `codes` with their scales at `scales` into f32 at `out`. */
export function decodeUnsignedBlocks(codes: usize, scales: usize, out: usize, blocks: i32): void {
  const offset = i16x8.splat(<i16> (UNSIGNED_OFFSET >> 16));
  for (let b = 0; b < blocks; b++) {
    const cb = codes + <usize> b * <usize> BLOCK;
    const ob = out + ((<usize> b * <usize> BLOCK) << 2);
    const s = f32x4.splat(load<f32>(scales + (<usize> b << 2)));
    for (let i: usize = 0; i < <usize> BLOCK; i += 8) {
      const t = unsignedHalves(v128.load8x8_u(cb + i), offset);
      v128.store(ob + (i << 2), f32x4.mul(lowWords(t), s));
      v128.store(ob + (i << 2), f32x4.mul(highWords(t), s), 16);
    }
  }
}
