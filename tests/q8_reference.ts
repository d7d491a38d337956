/**
 * A float64 reference of the 8-bit codes of compact states (docs/SPEC.md, "Compact states"),
 * written from their definition (grids of numbers and nearest rounding), not from the bit
 * arithmetic of base/q8.ts and assembly/q8.ts, which the tests compare with it.
 *
 * @module
 */

/**
 * The positive numbers `(1 + f / 2^q) · 2^e` for `e` from `lowest` to −1 and `f` from 0 to
 * 2^q − 1, and 1.0, in increasing order.
 */
function grid(q: number, lowest: number): number[] {
  const out: number[] = [];
  for (let e = lowest; e <= -1; e++) {
    for (let f = 0; f < 2 ** q; f++) out.push((1 + f / 2 ** q) * 2 ** e);
  }
  out.push(1);
  return out;
}

/**
 * The signed code's magnitudes: `MAGNITUDES[k]` for k = 1…127 is the k-th smallest of the 127
 * largest numbers ≤ 1 with 3 mantissa bits and exponent ≥ −16 (from 2^-16 · 1.25 to 1.0);
 * `MAGNITUDES[0]` is 0.
 */
export const SIGNED_MAGNITUDES: readonly number[] = [0, ...grid(3, -16).slice(-127)];

/**
 * The value below the smallest signed magnitude on its grid (2^-16 · 1.125): values under the
 * midpoint between it and the smallest magnitude encode to 0.
 */
const SIGNED_FLOOR = grid(3, -16).at(-128)!;

/**
 * The unsigned code's values: `UNSIGNED_VALUES[k]` for k = 0…255 is the k-th smallest of the 256
 * largest numbers ≤ 1 with 3 mantissa bits and exponent ≥ −32 (from 2^-32 · 1.125 to 1.0).
 */
export const UNSIGNED_VALUES: readonly number[] = grid(3, -32).slice(-256);

/** The decoded value of signed code `c` (−127…127) with scale `s`, exact. */
export function refDecodeSigned(c: number, s: number): number {
  return Math.sign(c) * SIGNED_MAGNITUDES[Math.abs(c)] * s;
}

/** The decoded value of unsigned code `k` (0…255) with scale `s`, exact. */
export function refDecodeUnsigned(k: number, s: number): number {
  return UNSIGNED_VALUES[k] * s;
}

/** Index of the nearest value of the increasing `values` to `t`, ties to the larger. */
function nearest(values: readonly number[], t: number): number {
  let lo = 0, hi = values.length - 1;
  if (t <= values[0]) return 0;
  if (t >= values[hi]) return hi;
  while (hi - lo > 1) {
    const mid = (lo + hi) >> 1;
    if (values[mid] <= t) lo = mid;
    else hi = mid;
  }
  return t - values[lo] < values[hi] - t ? lo : hi;
}

/**
 * The signed code of `x` in a block of scale `s` (> 0, finite): the magnitude nearest to
 * |x| / s (ties to the larger), 0 below the midpoint between 2^-16 · 1.125 and the smallest
 * magnitude, 127 above 1 (an infinity in a block of scale FLT_MAX), with x's sign.
 */
export function refEncodeSigned(x: number, s: number): number {
  const t = Math.abs(x) / s;
  if (t < (SIGNED_FLOOR + SIGNED_MAGNITUDES[1]) / 2) return 0;
  const k = nearest(SIGNED_MAGNITUDES.slice(1), t) + 1;
  return x < 0 ? -k : k;
}

/**
 * The unsigned code of `x` (≥ 0) in a block of scale `s` (> 0, finite): the nearest value (255
 * above 1: an infinity in a block of scale FLT_MAX).
 */
export function refEncodeUnsigned(x: number, s: number): number {
  return nearest(UNSIGNED_VALUES, Math.max(0, x) / s);
}

/** The largest finite f32, FLT_MAX: (2 − 2^-23) · 2^127. */
export const F32_MAX = (2 - 2 ** -23) * 2 ** 127;

/**
 * The scale a block of `values` is stored with: its largest |x| where that is a normal f32; the
 * smallest normal f32, 2^-126, where it is a subnormal; 0 for a block of zeros; NaN where it
 * holds a NaN; FLT_MAX where its largest |x| is above it (an infinity, as an f32 step makes
 * `g · g` of a finite gradient above √FLT_MAX; the infinity then takes the top code, and decodes
 * to ±FLT_MAX).
 */
export function refScale(values: ArrayLike<number>): number {
  let top = 0;
  for (let i = 0; i < values.length; i++) {
    const a = Math.abs(values[i]);
    if (Number.isNaN(a)) return NaN;
    top = Math.max(top, a);
  }
  return top === 0 ? 0 : Math.min(Math.max(top, 2 ** -126), F32_MAX);
}

/**
 * One code step at `x` in a block of scale `s` (> 0): the gap between the two codes around
 * |x| / s, times s (the first code's value below the smallest, where |x| may flush to 0 or to the
 * floor). Nearest rounding is within half of it; a value within rounding of a midpoint may take
 * either neighbour, within one.
 */
export function refCodeStep(x: number, s: number, signed: boolean): number {
  const t = Math.abs(x) / s;
  const smallest = signed ? SIGNED_MAGNITUDES[1] : UNSIGNED_VALUES[0];
  if (t < smallest) return smallest * s;
  return 2 ** (Math.floor(Math.log2(Math.min(t, 1))) - 3) * s;
}

/**
 * The tolerance of decoded 8-bit moments against their float64 reference values `ref` (one
 * tensor, blocks of 256 from its start): per element, one code step at it in its block, whose
 * scale is the block's largest |ref|, plus `tol` (the f32 step's own error, which moves the
 * scale too). A block whose reference is all 0 allows only `tol`.
 */
export function codeTolerance(
  ref: ArrayLike<number>,
  tol: ArrayLike<number>,
  signed: boolean,
): Float64Array {
  const out = new Float64Array(ref.length);
  for (let b = 0; b < ref.length; b += 256) {
    const end = Math.min(ref.length, b + 256);
    let s = 0, e = 0;
    for (let i = b; i < end; i++) {
      s = Math.max(s, Math.abs(ref[i]));
      e = Math.max(e, tol[i]);
    }
    if (!Number.isFinite(s)) {
      out.fill(Infinity, b, end);
      continue;
    }
    for (let i = b; i < end; i++) {
      // the backend's scale is within e of s: one step of either grid
      const step = Math.max(
        refCodeStep(ref[i], s + e, signed),
        refCodeStep(ref[i], Math.max(s - e, s / 2), signed),
      );
      out[i] = tol[i] + (s + e < 2 ** -126 ? s : s > 0 ? step * (1 + 2 ** -20) + e : 0);
    }
  }
  return out;
}
