/**
 * The block-wise 8-bit codes of compact optimizer states, in TypeScript: the twin of
 * assembly/q8.ts, bit for bit (docs/SPEC.md, "Compact states").
 *
 * A moment is cut into blocks of {@linkcode Q8_BLOCK} elements; each block keeps one f32 scale
 * `S`, the largest magnitude in the block, and one byte an element. Two code maps, both relative
 * to `S`:
 *
 * - **signed** (first moments, momentum): an i8 `c = ±k`, `k` in 0…127; `k = 0` is 0, else the
 *   f32 whose bits are `(k << 20) + SIGNED_OFFSET` (3 mantissa bits over 16 binades; `k = 127`
 *   is 1.0), with `c`'s sign, times `S`;
 * - **unsigned** (second moments): a u8 `k` in 0…255, the f32 whose bits are
 *   `(k << 20) + UNSIGNED_OFFSET` (3 mantissa bits over 32 binades; `k = 255` is 1.0), times
 *   `S`. Code 0 is the smallest value, 2^-32 · 1.125, never 0: a non-zero second moment never
 *   decodes to 0 (3 mantissa bits of `v` are 4 of `sqrt(v)`, which the update divides by).
 *
 * Encoding a block: `S` = the largest `|x|` (the integer max of the bits with the sign cleared:
 * NaN above +Infinity above every finite value); `R = f32(1 / S)`; per value `y = f32(x · R)`,
 * `k = (bits(|y|) + ROUND) >> SHIFT` saturated to 0…K (the nearest code, ties away from 0);
 * the signed code takes `y`'s sign (−0 gives 0); the unsigned code of a negative `y` (−0
 * included) is 0. A block holding a NaN stores the scale NaN (bits 0x7fc00000) and codes 0, so it
 * decodes to NaN; a block holding an infinity (and no NaN) stores the scale FLT_MAX, the largest
 * finite f32, and the infinity takes the top code, so that it decodes to ±FLT_MAX and the rest of
 * the block stays finite (a finite gradient above √FLT_MAX makes `g · g`, and so `v`, +Infinity);
 * a block whose scale is above 2^126, where `f32(1 / S)` would be a subnormal (which a GPU may
 * flush to 0), is encoded _wide_: `y = f32(f32(x · 2^-2) · R)` with `R = f32(1 / (S · 2^-2))`; a
 * block of zeros stores the scale 0 and codes 0; a block whose largest `|x|` is a subnormal takes
 * the smallest normal f32, 2^-126, as its scale (so that `R` is finite and a non-zero second
 * moment still never decodes to 0).
 *
 * Every step is an integer operation, one correctly rounded f32 multiply, or the one f32
 * division of `R` a block, so that this file, the wasm kernels and the tests agree bit for bit.
 *
 * @module
 */

/** Elements of a block (one scale each). */
export const Q8_BLOCK = 256;

/**
 * Tensors of fewer elements keep f32 moments with `states: "8bit"` (biases, norms, small heads:
 * a few percent of a model's elements, those whose statistics vary most; as bitsandbytes'
 * `min_8bit_size`).
 */
export const Q8_MIN_ELEMENTS = 4096;

/**
 * The version of the code maps, as checkpoints record it (`q8` metadata): blocks of 256, a signed
 * code of 4 exponent and 3 mantissa bits for first moments, an unsigned one of 5 and 3 for second
 * moments. A change of the maps must change it, so that old codes never load as new ones.
 */
export const Q8_VERSION = "b256-i8e4m3-u8e5m3-v1";

/**
 * Whether a tensor of `n` elements keeps its moments in 8 bits in a state with
 * `states: "8bit"`.
 *
 * @example
 * ```ts
 * import { compactLength } from "./q8.ts";
 * import assert from "node:assert/strict";
 * assert.equal(compactLength(4095), false);
 * assert.equal(compactLength(4096), true);
 * ```
 */
export function compactLength(n: number): boolean {
  return n >= Q8_MIN_ELEMENTS;
}

/** Blocks of a tensor of `n` elements: `ceil(n / 256)`. */
export function blocksOf(n: number): number {
  return Math.ceil(n / Q8_BLOCK);
}

/** Bit position of the signed code's magnitude in the f32 it decodes to. */
export const SIGNED_SHIFT = 20;
/** Added to `k << SIGNED_SHIFT` to give the bits of magnitude `k`'s value (`k = 127`: 1.0). */
export const SIGNED_OFFSET = 0x3f800000 - (127 << 20);
/** Added to the bits of `|y|` before the shift: half a code step, less the offset. */
export const SIGNED_ROUND = (1 << 19) - SIGNED_OFFSET;
/** Bit position of the unsigned code in the f32 it decodes to. */
export const UNSIGNED_SHIFT = 20;
/** Added to `k << UNSIGNED_SHIFT` to give the bits of code `k`'s value (`k = 255`: 1.0). */
export const UNSIGNED_OFFSET = 0x3f800000 - (255 << 20);
/** Added to the bits of `y` before the shift: half a code step, less the offset. */
export const UNSIGNED_ROUND = (1 << 19) - UNSIGNED_OFFSET;
/** The bits of the scale stored for a block holding a NaN. */
export const NAN_SCALE_BITS = 0x7fc00000;
/** The bits of the scale stored for a block holding an infinity (and no NaN): FLT_MAX. */
export const LARGEST_SCALE_BITS = 0x7f7fffff;

const INFINITY_BITS = 0x7f800000;
const SMALLEST_NORMAL_BITS = 0x00800000;
/** Bits of a scale above this (2^126) make `f32(1 / S)` a subnormal: its block is encoded wide. */
const WIDE_BITS = 0x7e800000;
/** What a wide block's values and scale are multiplied by before the reciprocal: 2^-2. */
const WIDE_FACTOR = 0.25;

const f32 = Math.fround;

/** The f32 with bits `bits` (an int32). */
function fromBits(bits: number): number {
  BITS[0] = bits;
  return FLOAT[0];
}
const FLOAT = new Float32Array(1);
const BITS = new Int32Array(FLOAT.buffer);

/**
 * The value of each signed code before the scale, indexed by the code's byte (`c & 255`): what
 * the kernel's integer decode gives.
 */
export const SIGNED_VALUES: Float32Array = Float32Array.from({ length: 256 }, (_, byte) => {
  const c = byte << 24 >> 24;
  const k = Math.abs(c);
  const value = k === 0 ? 0 : fromBits((k << SIGNED_SHIFT) + SIGNED_OFFSET);
  return c < 0 ? -value : value;
});

/** The value of each unsigned code before the scale. */
export const UNSIGNED_VALUES: Float32Array = Float32Array.from(
  { length: 256 },
  (_, k) => fromBits((k << UNSIGNED_SHIFT) + UNSIGNED_OFFSET),
);

/**
 * The bits of the largest `|x|` over the block of `xBits` (the values' bits, an Int32Array view)
 * from `offset`: an unsigned integer.
 */
export function blockTop(xBits: Int32Array, offset: number): number {
  let top = 0;
  for (let i = offset, end = offset + Q8_BLOCK; i < end; i++) {
    const a = xBits[i] & 0x7fffffff;
    if (a > top) top = a;
  }
  return top;
}

/**
 * The bits of the scale stored for a block whose largest `|x|` has bits `top`: `top`, or the
 * smallest normal f32 where `top` is a subnormal (not 0), FLT_MAX where it is an infinity, a NaN
 * where it is one.
 */
export function scaleBits(top: number): number {
  if (top >= INFINITY_BITS) return top === INFINITY_BITS ? LARGEST_SCALE_BITS : NAN_SCALE_BITS;
  return top === 0 ? 0 : top < SMALLEST_NORMAL_BITS ? SMALLEST_NORMAL_BITS : top;
}

/** Whether a block whose largest `|x|` has bits `top` is stored with codes (else codes 0). */
export function hasCodes(top: number): boolean {
  return top !== 0 && top <= INFINITY_BITS;
}

/** `y = f32(x · R)` of a block, and its bits: the encoders' scratch. */
const Y = new Float32Array(Q8_BLOCK);
const Y_BITS = new Int32Array(Y.buffer);

/**
 * `y` of the block of `x` from `offset` into Y / Y_BITS: `f32(x · R)` with `R = f32(1 / S)`, or
 * in a wide block (`S` above 2^126) `f32(f32(x · 2^-2) · R)` with `R = f32(1 / (S · 2^-2))`.
 */
function scaled(x: Float32Array, offset: number, top: number): void {
  const s = fromBits(scaleBits(top));
  if (top > WIDE_BITS) {
    const r = f32(1 / (s * WIDE_FACTOR));
    for (let j = 0; j < Q8_BLOCK; j++) Y[j] = f32(x[offset + j] * WIDE_FACTOR) * r;
    return;
  }
  const r = f32(1 / s);
  for (let j = 0; j < Q8_BLOCK; j++) Y[j] = x[offset + j] * r;
}

/**
 * Signed codes of the block of `x` from `offset`, whose largest `|x|` has bits `top` (see
 * {@linkcode blockTop}), into `codes` from `at`.
 */
export function encodeSignedBlock(
  x: Float32Array,
  offset: number,
  top: number,
  codes: Int8Array,
  at: number,
): void {
  if (!hasCodes(top)) {
    codes.fill(0, at, at + Q8_BLOCK);
    return;
  }
  scaled(x, offset, top);
  for (let j = 0; j < Q8_BLOCK; j++) {
    const y = Y_BITS[j];
    const k = Math.min(127, Math.max(0, ((y & 0x7fffffff) + SIGNED_ROUND) >> SIGNED_SHIFT));
    codes[at + j] = y < 0 ? -k : k;
  }
}

/**
 * Unsigned codes of the block of `x` (≥ 0; a negative value, −0 included, gets code 0) from
 * `offset`, whose largest `|x|` has bits `top`, into `codes` from `at`. The bits of `y` are first
 * taken as at least 0: a negative `y`'s bits, the sign bit set, would wrap past the rounding
 * offset to the top code.
 */
export function encodeUnsignedBlock(
  x: Float32Array,
  offset: number,
  top: number,
  codes: Uint8Array,
  at: number,
): void {
  if (!hasCodes(top)) {
    codes.fill(0, at, at + Q8_BLOCK);
    return;
  }
  scaled(x, offset, top);
  for (let j = 0; j < Q8_BLOCK; j++) {
    const y = Math.max(0, Y_BITS[j]);
    codes[at + j] = Math.min(255, Math.max(0, (y + UNSIGNED_ROUND) >> UNSIGNED_SHIFT));
  }
}

/** The int32 view of a Float32Array's values. */
function bitsOf(x: Float32Array): Int32Array {
  return new Int32Array(x.buffer, x.byteOffset, x.length);
}

/**
 * Encodes `blocks` blocks of {@linkcode Q8_BLOCK} values of `x` with the signed code: codes into
 * `codes`, one scale a block into `scales` (the block's largest `|x|`, 0, FLT_MAX or NaN as above).
 *
 * @example
 * ```ts
 * import { decodeSignedBlocks, encodeSignedBlocks, Q8_BLOCK } from "./q8.ts";
 * import assert from "node:assert/strict";
 *
 * const x = new Float32Array(Q8_BLOCK).map((_, i) => Math.sin(i));
 * const codes = new Int8Array(Q8_BLOCK);
 * const scales = new Float32Array(1);
 * encodeSignedBlocks(x, codes, scales, 1);
 * const back = new Float32Array(Q8_BLOCK);
 * decodeSignedBlocks(codes, scales, back, 1);
 * for (let i = 0; i < Q8_BLOCK; i++) assert.ok(Math.abs(back[i] - x[i]) <= scales[0] / 16);
 * ```
 */
export function encodeSignedBlocks(
  x: Float32Array,
  codes: Int8Array,
  scales: Float32Array,
  blocks: number,
): void {
  encodeBlocks(x, codes, scales, blocks, encodeSignedBlock);
}

/**
 * Encodes `blocks` blocks of {@linkcode Q8_BLOCK} values (≥ 0) of `x` with the unsigned code.
 *
 * @example
 * ```ts
 * import { decodeUnsignedBlocks, encodeUnsignedBlocks, Q8_BLOCK } from "./q8.ts";
 * import assert from "node:assert/strict";
 *
 * const x = new Float32Array(Q8_BLOCK).map((_, i) => 1 + i / Q8_BLOCK);
 * const codes = new Uint8Array(Q8_BLOCK);
 * const scales = new Float32Array(1);
 * encodeUnsignedBlocks(x, codes, scales, 1);
 * const back = new Float32Array(Q8_BLOCK);
 * decodeUnsignedBlocks(codes, scales, back, 1);
 * for (let i = 0; i < Q8_BLOCK; i++) assert.ok(Math.abs(back[i] / x[i] - 1) <= 1 / 16);
 * ```
 */
export function encodeUnsignedBlocks(
  x: Float32Array,
  codes: Uint8Array,
  scales: Float32Array,
  blocks: number,
): void {
  encodeBlocks(x, codes, scales, blocks, encodeUnsignedBlock);
}

/** Encodes `blocks` blocks of `x` into `codes` and `scales`, a block at a time by `encode`. */
function encodeBlocks<C extends Int8Array | Uint8Array>(
  x: Float32Array,
  codes: C,
  scales: Float32Array,
  blocks: number,
  encode: (x: Float32Array, offset: number, top: number, codes: C, at: number) => void,
): void {
  const xBits = bitsOf(x), scaleWords = bitsOf(scales);
  for (let b = 0, o = 0; b < blocks; b++, o += Q8_BLOCK) {
    const top = blockTop(xBits, o);
    scaleWords[b] = scaleBits(top);
    encode(x, o, top, codes, o);
  }
}

/** Decodes `blocks` blocks of signed codes with their scales into `out` (f32 · scale). */
export function decodeSignedBlocks(
  codes: Int8Array,
  scales: Float32Array,
  out: Float32Array,
  blocks: number,
): void {
  for (let b = 0, o = 0; b < blocks; b++, o += Q8_BLOCK) {
    const s = scales[b];
    for (let j = o, end = o + Q8_BLOCK; j < end; j++) out[j] = SIGNED_VALUES[codes[j] & 255] * s;
  }
}

/** Decodes `blocks` blocks of unsigned codes with their scales into `out` (f32 · scale). */
export function decodeUnsignedBlocks(
  codes: Uint8Array,
  scales: Float32Array,
  out: Float32Array,
  blocks: number,
): void {
  for (let b = 0, o = 0; b < blocks; b++, o += Q8_BLOCK) {
    const s = scales[b];
    for (let j = o, end = o + Q8_BLOCK; j < end; j++) out[j] = UNSIGNED_VALUES[codes[j]] * s;
  }
}
