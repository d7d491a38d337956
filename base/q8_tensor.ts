/**
 * Whole tensors through the 8-bit codes (base/q8.ts): a tensor of `n` elements is
 * `ceil(n / 256)` blocks, the last one padded with zeros, which are never the largest of their
 * block and encode to code 0. For the host's reads and writes of compact moments (`readMoments`,
 * checkpoints, conversions between formats), not for the step.
 *
 * @module
 */
import {
  blocksOf,
  blockTop,
  decodeSignedBlocks,
  decodeUnsignedBlocks,
  encodeSignedBlock,
  encodeUnsignedBlock,
  Q8_BLOCK,
  scaleBits,
  SIGNED_VALUES,
  UNSIGNED_VALUES,
} from "./q8.ts";

/** The codes of one moment of a tensor: i8 for a signed moment, u8 for a non-negative one. */
export type Codes = Int8Array | Uint8Array;

/** A block of zeros for the last, partial block of a tensor (and its bits). */
const PADDED = new Float32Array(Q8_BLOCK);
const PADDED_BITS = new Int32Array(PADDED.buffer);

/**
 * Encodes the `values` of a tensor into its `codes` (at least `values.length`; the codes of the
 * padding are written 0 where `codes` holds them) and one scale a block into `scales`
 * (`ceil(n / 256)`): signed codes into an Int8Array, unsigned ones (values ≥ 0) into a
 * Uint8Array.
 *
 * @example
 * ```ts
 * import { decodeTensor, encodeTensor } from "./q8_tensor.ts";
 * import assert from "node:assert/strict";
 *
 * const values = Float32Array.from({ length: 300 }, (_, i) => Math.cos(i));
 * const codes = new Int8Array(300);
 * const scales = new Float32Array(2);
 * encodeTensor(values, codes, scales);
 * const back = new Float32Array(300);
 * decodeTensor(codes, scales, back);
 * assert.ok(back.every((x, i) => Math.abs(x - values[i]) <= scales[i >> 8] / 16));
 * ```
 */
export function encodeTensor(values: Float32Array, codes: Codes, scales: Float32Array): void {
  const n = values.length;
  const bits = new Int32Array(values.buffer, values.byteOffset, n);
  const scaleWords = new Int32Array(scales.buffer, scales.byteOffset, scales.length);
  const full = Math.floor(n / Q8_BLOCK);
  for (let b = 0; b < blocksOf(n); b++) {
    const o = b * Q8_BLOCK;
    let x = values, xBits = bits, at = o;
    if (b === full) {
      PADDED.fill(0);
      PADDED.set(values.subarray(o));
      x = PADDED, xBits = PADDED_BITS, at = 0;
    }
    const top = blockTop(xBits, at);
    scaleWords[b] = scaleBits(top);
    if (b === full && codes.length < o + Q8_BLOCK) {
      // codes of exactly n elements: encode the block aside, keep its first n - o codes
      const aside = codes instanceof Int8Array ? new Int8Array(Q8_BLOCK) : new Uint8Array(Q8_BLOCK);
      encodeBlock(x, at, top, aside, 0);
      codes.set(aside.subarray(0, n - o), o);
    } else {
      encodeBlock(x, at, top, codes, o);
    }
  }
}

function encodeBlock(x: Float32Array, at: number, top: number, codes: Codes, o: number): void {
  if (codes instanceof Int8Array) encodeSignedBlock(x, at, top, codes, o);
  else encodeUnsignedBlock(x, at, top, codes, o);
}

/**
 * Decodes the first `out.length` values of a tensor from its `codes` and `scales`: signed codes
 * from an Int8Array, unsigned ones from a Uint8Array.
 */
export function decodeTensor(codes: Codes, scales: Float32Array, out: Float32Array): void {
  const n = out.length;
  const full = Math.floor(n / Q8_BLOCK);
  if (codes instanceof Int8Array) decodeSignedBlocks(codes, scales, out, full);
  else decodeUnsignedBlocks(codes, scales, out, full);
  const values = codes instanceof Int8Array ? SIGNED_VALUES : UNSIGNED_VALUES;
  const s = scales[full];
  for (let i = full * Q8_BLOCK; i < n; i++) out[i] = values[codes[i] & 255] * s;
}

/** The smallest positive normal f32: a block's scale is 0 or at least this. */
const SMALLEST_NORMAL = 2 ** -126;

/**
 * A fault of a tensor's 8-bit codes and scales, which the encoder never writes: a scale that is
 * not +0 or a positive normal finite number (`scale`, of `block`; −0 too: a scale is the largest
 * magnitude of its block, whose sign bit is never set, and a block of −0 scale would decode to
 * −0 moments), or a code that is −128, or not 0 in a block whose scale is 0 (`code`, at
 * `element` of `block`, and `why` in words).
 */
export type CodesFault =
  | { readonly block: number; readonly scale: number; readonly element?: undefined }
  | {
    readonly block: number;
    readonly element: number;
    readonly code: number;
    readonly why: string;
  };

/**
 * The first fault of `codes` and their `scales` (one a block of 256), block by block, or
 * undefined where there is none ({@linkcode CodesFault}).
 *
 * @example
 * ```ts
 * import { codesFault } from "./q8_tensor.ts";
 * import assert from "node:assert/strict";
 *
 * const codes = new Int8Array(300), scales = new Float32Array([1, 0]);
 * assert.equal(codesFault(codes, scales), undefined);
 * codes[280] = 3; // in the second block, whose scale is 0
 * assert.equal(codesFault(codes, scales)?.element, 280);
 * assert.deepEqual(codesFault(codes, new Float32Array([1, NaN])), { block: 1, scale: NaN });
 * const zeros = new Int8Array(300);
 * assert.deepEqual(codesFault(zeros, new Float32Array([-0, 0])), { block: 0, scale: -0 });
 * ```
 */
export function codesFault(codes: Codes, scales: Float32Array): CodesFault | undefined {
  for (let b = 0; b < scales.length; b++) {
    const s = scales[b];
    if (!(Object.is(s, 0) || (s >= SMALLEST_NORMAL && s < Infinity))) return { block: b, scale: s };
    const end = Math.min(codes.length, (b + 1) * Q8_BLOCK);
    for (let i = b * Q8_BLOCK; i < end; i++) {
      const c = codes[i];
      if (c !== -128 && (s !== 0 || c === 0)) continue;
      const why = c === -128
        ? "the signed code -128 is never written"
        : `block ${b}'s scale is 0 (a block of zeros), so its codes must be 0`;
      return { block: b, element: i, code: c, why };
    }
  }
  return undefined;
}
