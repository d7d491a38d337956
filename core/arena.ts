/**
 * The arena: every tensor of a state packed into one block of f32 memory, in sections
 * (parameters, gradients, then the rule's moments: `exp_avg` and `exp_avg_sq` for RAdam/Adam,
 * `exp_avg` alone for Lion; then LookAhead's slow weights), each 16-byte aligned, so that one
 * kernel call updates every tensor.
 *
 * ```
 * | params (n, padded to 4) | grads | moment 0 (exp_avg) | moment 1 (exp_avg_sq) | slow |
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
  return layout.sectionOffsets[section] >= 0;
}

/**
 * The row of the segment table (parameter groups), one per run of tensors in one group: the
 * run's element range `[start, end)` and the group, whose scalar block (see core/scalars.ts)
 * the run is stepped with. Padded to {@linkcode SEGMENT_ROW_BYTES}.
 */
export const SEGMENT_FIELDS = ["start", "end", "group"] as const;

/**
 * The arena descriptor the wasm kernel reads (`step(arena, scalars, start, end)` in
 * assembly/index.ts): u32 byte addresses of the sections (an absent one: the params'), of the
 * segment table, and the number of segments. Written once, when the backend is made.
 */
export const ARENA_FIELDS = [
  "params",
  "grads",
  "exp_avg",
  "exp_avg_sq",
  "slow",
  "segments",
  "segmentCount",
] as const;
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
  /** Byte offset of the segment table (32 bytes a segment), after the sections. */
  readonly segmentTableOffset: number;
  /** Bytes of the whole arena: all sections, then the segment table. */
  readonly byteLength: number;
}

/** Bytes of one row of the segment table ({@linkcode SEGMENT_FIELDS}, then padding). */
export const SEGMENT_ROW_BYTES = 32;

/** Lays out tensors of the given lengths. */
export function planArena(
  names: readonly string[],
  lengths: readonly number[],
  options: { slow?: boolean; groups?: readonly number[]; moments?: number } = {},
): ArenaLayout {
  const moments = options.moments ?? 2;
  const present = presentSections(moments, options.slow ?? false);
  const sectionCount = present.length;
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
  const sectionOffsets: number[] = new Array(SLOW + 1).fill(-1);
  present.forEach((section, s) => sectionOffsets[section] = s * sectionLength * 4);
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

/** Words of one row of the segment table. */
export const SEGMENT_ROW_WORDS = SEGMENT_ROW_BYTES / 4;

/**
 * Writes the segment table of `layout` (rows of {@linkcode SEGMENT_FIELDS}) into `u32`, a view
 * of at least `segments.length` rows: the one place the rows are laid out.
 */
export function writeSegmentTable(layout: ArenaLayout, u32: Uint32Array): void {
  layout.segments.forEach((segment, k) => {
    SEGMENT_FIELDS.forEach((field, j) => u32[k * SEGMENT_ROW_WORDS + j] = segment[field]);
  });
}

/** The section byte addresses of `layout` at `base`, as the arena descriptor's words. */
export function writeArenaDescriptor(layout: ArenaLayout, base: number, u32: Uint32Array): void {
  const at = (section: number) =>
    base + layout.sectionOffsets[hasSection(layout, section) ? section : PARAMS];
  const words: Record<(typeof ARENA_FIELDS)[number], number> = {
    params: at(PARAMS),
    grads: at(GRADS),
    exp_avg: at(EXP_AVG),
    exp_avg_sq: at(EXP_AVG_SQ),
    slow: at(SLOW),
    segments: base + layout.segmentTableOffset,
    segmentCount: layout.segments.length,
  };
  ARENA_FIELDS.forEach((field, i) => u32[i] = words[field]);
}
