/**
 * The arena: every tensor of a state packed into one block of f32 memory, in sections
 * (parameters, gradients, first moments, second moments), each 16-byte aligned, so that one
 * kernel call updates every tensor.
 *
 * ```
 * | params (n, padded to 4) | grads | exp_avg (m) | exp_avg_sq (v) |
 * ```
 *
 * Within a section the tensors lie back to back in the order of their names; a tensor's
 * elements sit at the same offset in every section.
 *
 * @module
 */

/** Section index of the parameters. */
export const PARAMS = 0;
/** Section index of the gradients. */
export const GRADS = 1;
/** Section index of the first moments (`exp_avg`). */
export const EXP_AVG = 2;
/** Section index of the second moments (`exp_avg_sq`). */
export const EXP_AVG_SQ = 3;
/** Number of sections of an RAdam/Adam arena. */
export const SECTION_COUNT = 4;
/** Section index of LookAhead's slow weights (only in arenas planned with `slow: true`). */
export const SLOW = 4;

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
  /** Number of sections: 4, or 5 with LookAhead's slow weights. */
  readonly sectionCount: number;
  /**
   * Byte offset of each section from the start of the arena (WebGPU, which keeps each section in
   * a buffer of its own: 0 for all). Always use these, never `section * sectionLength * 4`: the
   * gaps between sections are a layout decision of `planArena`.
   */
  readonly sectionOffsets: readonly number[];
  /**
   * Parameter-group runs: maximal runs of consecutive tensors in the same group, as element
   * ranges `[start, end)` with the group index (0: the optimizer's own settings, i + 1: group
   * i). Empty when the optimizer has no groups: the kernel then uses the global scalars.
   */
  readonly segments: readonly { start: number; end: number; group: number }[];
  /** Byte offset of the segment table (32 bytes a segment), after the sections. */
  readonly segmentTableOffset: number;
  /** Bytes of the whole arena: all sections, then the segment table. */
  readonly byteLength: number;
}

/** Bytes of one row of the segment table (see assembly/index.ts `step`). */
export const SEGMENT_ROW_BYTES = 32;

/** Lays out tensors of the given lengths. */
export function planArena(
  names: readonly string[],
  lengths: readonly number[],
  options: { slow?: boolean; groups?: readonly number[] } = {},
): ArenaLayout {
  const sectionCount = options.slow ? SECTION_COUNT + 1 : SECTION_COUNT;
  const offsets: number[] = [];
  let total = 0;
  for (const length of lengths) {
    offsets.push(total);
    total += length;
  }
  const sectionLength = Math.ceil(total / 4) * 4;
  const segments: { start: number; end: number; group: number }[] = [];
  const groups = options.groups;
  if (groups) {
    for (let i = 0; i < lengths.length; i++) {
      const last = segments[segments.length - 1];
      if (last && last.group === groups[i]) last.end += lengths[i];
      else segments.push({ start: offsets[i], end: offsets[i] + lengths[i], group: groups[i] });
    }
  }
  const sectionOffsets: number[] = [];
  for (let s = 0; s < sectionCount; s++) sectionOffsets.push(s * sectionLength * 4);
  const segmentTableOffset = sectionLength * 4 * sectionCount;
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
