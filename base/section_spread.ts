/**
 * Where the sections of an arena start (base/arena.ts): each 64-byte aligned, and spread apart
 * so that the streams of a step (one per section) do not share their address bits. Were the
 * sections exactly `4 × total` bytes apart, at power-of-two totals every stream would map onto
 * the same cache sets and the same 4 KiB offsets (issue #15: 10× slower on an AMD EPYC at 64M
 * parameters). {@linkcode sectionStride} spreads equal sections, {@linkcode spreadStart} one
 * section after another of any size (the 8-bit states' codes and scales).
 *
 * @module
 */

/** Alignment of every section start, in bytes: one cache line. */
export const SECTION_ALIGN_BYTES = 64;
/** Smallest scale (log2 of bytes) at which the section starts are spread: 4 KiB. */
const MIN_SPREAD_LOG2 = 12;
/**
 * Largest scale at which they are spread: 32 MiB. Above the 2 MiB of a huge page, a virtual
 * address says nothing of the physical one the caches are indexed by, and capping the scale caps
 * the padding of the largest arenas (at most 0.4 × 32 MiB a gap).
 */
const MAX_SPREAD_LOG2 = 25;

/**
 * The largest scale (log2 of bytes) at which the starts of sections of `sectionBytes` bytes are
 * spread: three octaves below the section (so a gap costs at most 5% of a section), within
 * 4 KiB to 32 MiB.
 */
export function spreadScaleLog2(sectionBytes: number): number {
  const below = Math.floor(Math.log2(Math.max(1, sectionBytes))) - 3;
  return Math.min(MAX_SPREAD_LOG2, Math.max(MIN_SPREAD_LOG2, below));
}

/**
 * Bytes from one section's start to the next: the smallest multiple of 64 at or above
 * `sectionBytes` whose residue modulo 2^K (K = {@linkcode spreadScaleLog2}) is c/5 of 2^K for
 * some c in 1–4, rounded to a multiple of 64 bytes.
 *
 * Why: with starts `s × stride` (s = 0…4), the difference of two starts is `j × stride` with j in
 * 1–4. Since 2^k × c/5 modulo 2^k' (k' ≤ k) is again (c × 2^(k−k') mod 5)/5 of 2^k' and 5 is
 * prime, `j × stride` modulo 2^k is about (c' / 5) × 2^k with c' in 1–4, for every k from 12 up
 * to K (to within four times the 32 bytes of rounding): at every scale from 4 KiB to K, the five starts
 * sit about a fifth of the circle apart, the most five points can. No two streams share a 4 KiB
 * offset, an L1 or L2 set, or (with 2 MiB pages) an L3 set. Above K the residues are small but
 * never zero.
 *
 * Memory: a gap is below 0.4 × 2^K + 64 bytes: at most 1.7 KiB for sections up to 32 KiB, 5% of
 * a section up to 256 MiB (64M parameters), 13.4 MiB above that.
 *
 * @example
 * ```ts
 * import { sectionStride } from "./section_spread.ts";
 * import assert from "node:assert/strict";
 * const stride = sectionStride(4 * 2 ** 24); // 16M parameters: 64 MiB sections
 * assert.notEqual(stride % 4096, 0);
 * assert.equal(stride - 4 * 2 ** 24, 1677696);
 * ```
 */
export function sectionStride(sectionBytes: number): number {
  const scale = 2 ** spreadScaleLog2(sectionBytes);
  const above = Math.floor(sectionBytes / scale) * scale;
  let best = Infinity;
  for (let c = 1; c <= 4; c++) {
    const residue = Math.round((c * scale) / 5 / SECTION_ALIGN_BYTES) * SECTION_ALIGN_BYTES;
    let stride = above + residue;
    if (stride < sectionBytes) stride += scale;
    best = Math.min(best, stride);
  }
  return best;
}

/**
 * Where a section of `sectionBytes` bytes starts when placed at or after byte `after`: the
 * smallest multiple of 64 at or above it whose residue modulo 2^K (K = {@linkcode
 * spreadScaleLog2} of the section) is c/5 of 2^K for some c in 1–4, as {@linkcode sectionStride}
 * spreads equal sections (for sections of unequal sizes: the 8-bit states' codes).
 *
 * @example
 * ```ts
 * import { sectionStride, spreadStart } from "./section_spread.ts";
 * import assert from "node:assert/strict";
 * const bytes = 4 * 2 ** 20;
 * assert.equal(spreadStart(bytes, bytes), sectionStride(bytes));
 * ```
 */
export function spreadStart(after: number, sectionBytes: number): number {
  const scale = 2 ** spreadScaleLog2(sectionBytes);
  const above = Math.floor(after / scale) * scale;
  let best = Infinity;
  for (let c = 1; c <= 4; c++) {
    const residue = Math.round((c * scale) / 5 / SECTION_ALIGN_BYTES) * SECTION_ALIGN_BYTES;
    let start = above + residue;
    if (start < after) start += scale;
    best = Math.min(best, start);
  }
  return best;
}
