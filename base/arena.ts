/**
 * The arena: every tensor of a state packed into one block of f32 memory, in sections
 * (parameters, gradients, then the rule's moments: `exp_avg` and `exp_avg_sq` for RAdam/Adam,
 * `exp_avg` alone for Lion; then LookAhead's slow weights), each 64-byte aligned and spread
 * apart, so that one kernel call updates every tensor.
 *
 * ```
 * | params (n, padded to 4) | gap | grads | gap | moment 0 (exp_avg) | (gap | moment 1 (exp_avg_sq)) | (gap | slow) |
 * ```
 *
 * Within a section the tensors lie back to back in the order of their names; a tensor's
 * elements sit at the same offset in every section.
 *
 * The gaps keep the streams of the step (one per section) from sharing their address bits: were
 * the sections exactly `4 × total` bytes apart, at power-of-two totals every stream would map
 * onto the same cache sets and the same 4 KiB offsets (issue #15: 10× slower on an AMD EPYC at
 * 64M parameters). See {@linkcode sectionStride} for the rule.
 *
 * @module
 */
import { wgslStruct, wordsOf, type WordTable } from "./words.ts";

/** Section index of the parameters. */
export const PARAMS = 0;
/** Section index of the gradients. */
export const GRADS = 1;
/** Section index of a rule's first moment (`exp_avg` of RAdam/Adam and Lion). */
export const EXP_AVG = 2;
/** Section index of a rule's second moment (`exp_avg_sq` of RAdam/Adam; absent for Lion). */
export const EXP_AVG_SQ = 3;
/** Most moments a rule may keep (sections `EXP_AVG` and `EXP_AVG_SQ`). */
export const MAX_MOMENTS = 2;
/** Number of sections of an RAdam/Adam arena. */
export const SECTION_COUNT = 4;
/** Section index of LookAhead's slow weights (only in arenas planned with `slow: true`). */
export const SLOW = 4;

/**
 * The sections present in an arena, in memory order: params, grads, the first `moments`
 * moments, and the slow weights with `slow`.
 */
export function presentSections(moments: number, slow: boolean): number[] {
  const out = [PARAMS, GRADS];
  for (let k = 0; k < moments; k++) out.push(EXP_AVG + k);
  if (slow) out.push(SLOW);
  return out;
}

/** Whether `layout` has section `section` (absent: a moment its rule lacks, or no LookAhead). */
export function hasSection(layout: ArenaLayout, section: number): boolean {
  return section < layout.sectionOffsets.length && layout.sectionOffsets[section] >= 0;
}

/**
 * The row of the segment table (parameter groups), one per run of tensors in one group: the
 * run's element range `[start, end)` and the group, whose scalar block (see base/scalars.ts)
 * the run is stepped with; padded to 32 bytes.
 */
export const SEGMENT_ROW = {
  start: "u32",
  end: "u32",
  group: "u32",
  pad0: "u32",
  pad1: "u32",
  pad2: "u32",
  pad3: "u32",
  pad4: "u32",
} as const satisfies WordTable;

/** The word of each field of a segment row. */
export const SEGMENT_WORD = wordsOf(SEGMENT_ROW);

/**
 * The arena descriptor the wasm kernel reads (`step(arena, scalars, start, end)` in
 * assembly/index.ts), u32 words: the byte addresses of the sections (params, grads, exp_avg,
 * exp_avg_sq, slow; an absent one: the params'), of the segment table, and the number of
 * segments. Written once, when the backend is made.
 */
export const ARENA_DESCRIPTOR = {
  p: "u32",
  g: "u32",
  m: "u32",
  v: "u32",
  slow: "u32",
  table: "u32",
  segmentCount: "u32",
} as const satisfies WordTable;
/** Bytes of the arena descriptor. */
export const ARENA_DESCRIPTOR_BYTES = 32;

/** Where each tensor sits in a section, and how large the sections are. */
export interface ArenaLayout {
  readonly names: readonly string[];
  readonly lengths: readonly number[];
  /** Element offset of each tensor within a section. */
  readonly offsets: readonly number[];
  /** Number of parameters in all (the elements a step updates). */
  readonly total: number;
  /** Elements per section: `total` rounded up to a multiple of 4 (16 bytes). */
  readonly sectionLength: number;
  /** Number of sections present: 2 + the rule's moments, + 1 with LookAhead's slow weights. */
  readonly sectionCount: number;
  /**
   * Byte offset of each section, by section index, from the start of the arena (WebGPU, which
   * keeps each section in a buffer of its own: 0 for all); -1 for an absent section. Always use
   * these, never `section * sectionLength * 4`: the gaps between sections are a layout decision
   * of `planArena`.
   */
  readonly sectionOffsets: readonly number[];
  /**
   * Parameter-group runs: maximal runs of consecutive tensors in the same group, as element
   * ranges `[start, end)` with the group index (0: the optimizer's own settings, i + 1: group
   * i). Empty when the optimizer has no groups: the kernel then uses the global scalars.
   */
  readonly segments: readonly { start: number; end: number; group: number }[];
  /** Byte offset of the segment table (32 bytes a segment), right after the last section. */
  readonly segmentTableOffset: number;
  /** Bytes of the whole arena: all sections and the gaps between them, then the segment table. */
  readonly byteLength: number;
}

/** Bytes of one row of the segment table ({@linkcode SEGMENT_ROW}). */
export const SEGMENT_ROW_BYTES = 4 * Object.keys(SEGMENT_ROW).length;

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
 * import { sectionStride } from "./arena.ts";
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
 * The parameter-group runs of tensors at `offsets` (elements) of `lengths`, each in group
 * `groups[i]`: maximal runs of consecutive tensors in one group, from the first one's start to
 * the last one's end. Empty without groups.
 */
export function segmentRuns(
  offsets: readonly number[],
  lengths: readonly number[],
  groups: readonly number[] | undefined,
): { start: number; end: number; group: number }[] {
  const segments: { start: number; end: number; group: number }[] = [];
  if (!groups) return segments;
  for (let i = 0; i < lengths.length; i++) {
    const last = segments[segments.length - 1];
    if (last && last.group === groups[i]) last.end = offsets[i] + lengths[i];
    else segments.push({ start: offsets[i], end: offsets[i] + lengths[i], group: groups[i] });
  }
  return segments;
}

/** Options of an arena plan: LookAhead's slow weights, each tensor's group, the rule's moments. */
export interface PlanOptions {
  slow?: boolean;
  groups?: readonly number[];
  moments?: number;
}

/** How a backend places tensors and sections (the one difference between the arena plans). */
export interface ArenaAlignment {
  /** Elements a tensor's offset is a multiple of. */
  tensorAlign: number;
  /** Elements a section's length is a multiple of, and at least. */
  sectionAlign: number;
  /** Bytes from one section's start to the next's in one buffer (0: a buffer per section). */
  stride(sectionBytes: number): number;
}

/**
 * The layout of tensors of the given lengths under a backend's alignment: tensor offsets,
 * section length, the parameter-group runs, the sections the rule keeps and where they start;
 * the segment table follows the last section. Shared by `planArena` and the GPU's plan.
 *
 * @example
 * ```ts
 * import { layoutArena } from "./arena.ts";
 * import assert from "node:assert/strict";
 *
 * const layout = layoutArena(["w", "b"], [5, 3], {}, {
 *   tensorAlign: 4,
 *   sectionAlign: 4,
 *   stride: (bytes) => bytes,
 * });
 * assert.deepEqual(layout.offsets, [0, 8]);
 * assert.deepEqual(layout.sectionOffsets, [0, 48, 96, 144]);
 * ```
 */
export function layoutArena(
  names: readonly string[],
  lengths: readonly number[],
  options: PlanOptions,
  alignment: ArenaAlignment,
): ArenaLayout {
  const present = presentSections(options.moments ?? 2, options.slow ?? false);
  const sectionCount = present.length;
  const align = alignment.tensorAlign;
  const offsets: number[] = [];
  let total = 0;
  for (const length of lengths) {
    const offset = Math.ceil(total / align) * align;
    offsets.push(offset);
    total = offset + length;
  }
  const unit = alignment.sectionAlign;
  const sectionLength = Math.max(unit, Math.ceil(total / unit) * unit);
  const segments = segmentRuns(offsets, lengths, options.groups);
  const sectionBytes = sectionLength * 4;
  const stride = alignment.stride(sectionBytes);
  // Indexed by section; -1 where absent (a moment the rule lacks, before the slow weights).
  const sectionOffsets: number[] = new Array(present[present.length - 1] + 1).fill(-1);
  present.forEach((section, s) => sectionOffsets[section] = s * stride);
  const segmentTableOffset = (sectionCount - 1) * (stride || sectionBytes) + sectionBytes;
  return {
    names,
    lengths,
    offsets,
    total,
    sectionLength,
    sectionCount,
    sectionOffsets,
    segments,
    segmentTableOffset,
    byteLength: segmentTableOffset + segments.length * SEGMENT_ROW_BYTES,
  };
}

/** Lays out tensors of the given lengths in one buffer (the CPU backends' arena). */
export function planArena(
  names: readonly string[],
  lengths: readonly number[],
  options: PlanOptions = {},
): ArenaLayout {
  return layoutArena(names, lengths, options, CPU_ALIGNMENT);
}

/** Tensors back to back, sections 16-byte aligned and spread apart by `sectionStride`. */
const CPU_ALIGNMENT: ArenaAlignment = { tensorAlign: 1, sectionAlign: 4, stride: sectionStride };

/** Per-tensor Float32Array views of one section, keyed by name (frozen). */
export function sectionViews(
  buffer: ArrayBufferLike,
  base: number,
  layout: ArenaLayout,
  section: number,
): Readonly<Record<string, Float32Array>> {
  const views: Record<string, Float32Array> = {};
  const start = base + layout.sectionOffsets[section];
  for (let i = 0; i < layout.names.length; i++) {
    views[layout.names[i]] = new Float32Array(
      buffer,
      start + layout.offsets[i] * 4,
      layout.lengths[i],
    );
  }
  return Object.freeze(views);
}

/** A Float32Array view of a whole section (all tensors, without padding). */
export function sectionView(
  buffer: ArrayBufferLike,
  base: number,
  layout: ArenaLayout,
  section: number,
): Float32Array {
  return new Float32Array(buffer, base + layout.sectionOffsets[section], layout.total);
}

/** Words of one row of the segment table. */
export const SEGMENT_ROW_WORDS = SEGMENT_ROW_BYTES / 4;

/** WGSL of a row of the segment table: `struct Segment`, generated from its table. */
export const SEGMENT_WGSL: string = wgslStruct("Segment", SEGMENT_ROW);

/**
 * Writes the segment table of `layout` (rows of {@linkcode SEGMENT_ROW}) into `u32`, a view of
 * at least `segments.length` rows: the one place the rows are written.
 */
export function writeSegmentTable(layout: ArenaLayout, u32: Uint32Array): void {
  layout.segments.forEach((segment, k) => {
    const row = k * SEGMENT_ROW_WORDS;
    u32[row + SEGMENT_WORD.start] = segment.start;
    u32[row + SEGMENT_WORD.end] = segment.end;
    u32[row + SEGMENT_WORD.group] = segment.group;
  });
}
