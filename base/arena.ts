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
 * With 8-bit states (`states: "8bit"`, base/arena_compact.ts) the moments of the tensors of 4096
 * elements or more are held as codes and scales, in sections of their own
 * ({@linkcode EXP_AVG_CODES} …): the tensors with f32 moments come first, then the compact ones,
 * each at a multiple of 256 elements.
 *
 * The gaps keep the streams of the step (one per section) from sharing their address bits: were
 * the sections exactly `4 × total` bytes apart, at power-of-two totals every stream would map
 * onto the same cache sets and the same 4 KiB offsets (issue #15: 10× slower on an AMD EPYC at
 * 64M parameters). See {@linkcode sectionStride} for the rule.
 *
 * @module
 */
import type { StatesFormat } from "./options.ts";
import { sectionStride } from "./section_spread.ts";
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
 * Section index of the codes of the first moment of the compact tensors (8-bit states): one byte
 * an element, from element `compactStart` on (an i8 signed code, or a u8 unsigned one for a
 * non-negative moment; docs/SPEC.md "Compact states").
 */
export const EXP_AVG_CODES = 5;
/** Section index of the codes of the second moment of the compact tensors. */
export const EXP_AVG_SQ_CODES = 6;
/** Section index of the f32 scales of the first moment's blocks (one per 256 elements). */
export const EXP_AVG_SCALES = 7;
/** Section index of the f32 scales of the second moment's blocks. */
export const EXP_AVG_SQ_SCALES = 8;

/** The section of the codes of moment `k` (0 or 1). */
export function codesSection(k: number): number {
  return EXP_AVG_CODES + k;
}

/** The section of the scales of moment `k` (0 or 1). */
export function scalesSection(k: number): number {
  return EXP_AVG_SCALES + k;
}

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
 * The row of the segment table (parameter groups, and the compact tensors of 8-bit states), one
 * per run of tensors in one group: the run's element range `[start, end)` and the group, whose
 * scalar block (see base/scalars.ts) the run is stepped with; for a compact tensor (one row
 * each), `padded`: the end of its last block (else 0); padded to 32 bytes.
 */
export const SEGMENT_ROW = {
  start: "u32",
  end: "u32",
  group: "u32",
  padded: "u32",
  pad1: "u32",
  pad2: "u32",
  pad3: "u32",
  pad4: "u32",
} as const satisfies WordTable;

/** The word of each field of a segment row. */
export const SEGMENT_WORD = wordsOf(SEGMENT_ROW);

/**
 * The arena descriptor the wasm kernel reads (`step(arena, scalars, start, end, scratch)` in
 * assembly/index.ts), u32 words: the byte addresses of the sections (params, grads, exp_avg,
 * exp_avg_sq, slow; an absent one: the params'), of the segment table, and the number of
 * segments; with 8-bit states, the element where the compact tensors start, and the addresses of
 * their codes and scales (each section's element `compactStart`, block 0). Written once, when
 * the backend is made.
 */
export const ARENA_DESCRIPTOR = {
  p: "u32",
  g: "u32",
  m: "u32",
  v: "u32",
  slow: "u32",
  table: "u32",
  segmentCount: "u32",
  compactStart: "u32",
  mCodes: "u32",
  vCodes: "u32",
  mScales: "u32",
  vScales: "u32",
} as const satisfies WordTable;
/** Bytes of the arena descriptor (one cache line). */
export const ARENA_DESCRIPTOR_BYTES = 64;

/** A row of the segment table: see {@linkcode ArenaLayout.segments}. */
export interface Segment {
  readonly start: number;
  readonly end: number;
  readonly group: number;
  /** A compact tensor's row: the end of its last block. */
  readonly padded?: number;
}

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
  /**
   * Number of sections present: 2 + the rule's moments, + 1 with LookAhead's slow weights (with
   * 8-bit states, the codes and scales of each moment too, and its f32 section only where some
   * tensor keeps f32 moments).
   */
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
   * i). Empty when the optimizer has no groups: the kernel then uses the global scalars. With
   * compact tensors (8-bit states) never empty: those tensors have a row each, with `padded`
   * the end of their last block, and the others their runs (one, of group 0, without groups).
   */
  readonly segments: readonly Segment[];
  /** Byte offset of the segment table (32 bytes a segment), right after the last section. */
  readonly segmentTableOffset: number;
  /** Bytes of the whole arena: all sections and the gaps between them, then the segment table. */
  readonly byteLength: number;
  /** How the moments are held (`"8bit"`: the compact tensors' as codes). */
  readonly states: StatesFormat;
  /** Whether each tensor's moments are codes (8-bit states, 4096 elements or more). */
  readonly compact: readonly boolean[];
  /**
   * The element where the compact tensors start (a multiple of 256), `total` when there is
   * none: the f32 moment sections hold the elements before it, the codes those from it on.
   */
  readonly compactStart: number;
  /** Whether moment k's codes are unsigned (a non-negative moment), by moment (8-bit states). */
  readonly unsignedCodes: readonly boolean[];
}

/** Bytes of one row of the segment table ({@linkcode SEGMENT_ROW}). */
export const SEGMENT_ROW_BYTES = 4 * Object.keys(SEGMENT_ROW).length;

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

/**
 * Options of an arena plan: LookAhead's slow weights, each tensor's group, the rule's moments
 * (and which of them are non-negative: their codes are unsigned), the format of the moments.
 */
export interface PlanOptions {
  slow?: boolean;
  groups?: readonly number[];
  moments?: number;
  /** Whether moment k is non-negative (a second moment), for k below `moments`. */
  nonNegative?: readonly boolean[];
  /** `"8bit"`: see base/arena_compact.ts (planArena plans `"32bit"` only). */
  states?: StatesFormat;
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
    // A frozen copy: a state gives it out as `state.names`, and the order of the slots is this
    // order for the life of the arena (`state.names.sort()` put gradients in other slots).
    names: Object.freeze([...names]),
    lengths,
    offsets,
    total,
    sectionLength,
    sectionCount,
    sectionOffsets,
    segments,
    segmentTableOffset,
    byteLength: segmentTableOffset + segments.length * SEGMENT_ROW_BYTES,
    states: "32bit",
    compact: lengths.map(() => false),
    compactStart: total,
    unsignedCodes: [],
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

/**
 * Per-tensor Float32Array views of one f32 section, keyed by name (frozen). With 8-bit states,
 * a moment's section holds only the tensors that are not compact (see {@linkcode compactViews}).
 */
export function sectionViews(
  buffer: ArrayBufferLike,
  base: number,
  layout: ArenaLayout,
  section: number,
): Readonly<Record<string, Float32Array>> {
  const views: Record<string, Float32Array> = {};
  const start = base + layout.sectionOffsets[section];
  const moment = section === EXP_AVG || section === EXP_AVG_SQ;
  for (let i = 0; i < layout.names.length; i++) {
    if (moment && layout.compact[i]) continue;
    views[layout.names[i]] = new Float32Array(
      buffer,
      start + layout.offsets[i] * 4,
      layout.lengths[i],
    );
  }
  return Object.freeze(views);
}

/**
 * A Float32Array view of a whole f32 section (all tensors, without padding; a moment's section
 * of an 8-bit state: the elements before `compactStart`).
 */
export function sectionView(
  buffer: ArrayBufferLike,
  base: number,
  layout: ArenaLayout,
  section: number,
): Float32Array {
  const moment = section === EXP_AVG || section === EXP_AVG_SQ;
  const length = moment ? layout.compactStart : layout.total;
  return new Float32Array(buffer, base + layout.sectionOffsets[section], length);
}

/** The codes and block scales of one moment of one compact tensor. */
export interface CompactMoment {
  /** One code an element (the tensor's length; i8 for a signed moment, u8 for a non-negative). */
  readonly codes: Int8Array | Uint8Array;
  /** One scale a block: `ceil(length / 256)`. */
  readonly scales: Float32Array;
}

/**
 * Views of the codes and scales of moment `k` of each compact tensor of an 8-bit state, keyed by
 * name (frozen; the codes of the padding after each tensor are left out): Int8Arrays of signed
 * codes, or Uint8Arrays for a non-negative moment.
 */
export function compactViews(
  buffer: ArrayBufferLike,
  base: number,
  layout: ArenaLayout,
  k: number,
): Readonly<Record<string, CompactMoment>> {
  const signed = !layout.unsignedCodes[k];
  const views: Record<string, CompactMoment> = {};
  const codes = base + layout.sectionOffsets[codesSection(k)];
  const scales = base + layout.sectionOffsets[scalesSection(k)];
  for (let i = 0; i < layout.names.length; i++) {
    if (!layout.compact[i]) continue;
    const at = layout.offsets[i] - layout.compactStart;
    const n = layout.lengths[i];
    views[layout.names[i]] = Object.freeze({
      codes: signed ? new Int8Array(buffer, codes + at, n) : new Uint8Array(buffer, codes + at, n),
      scales: new Float32Array(buffer, scales + (at / 256) * 4, Math.ceil(n / 256)),
    });
  }
  return Object.freeze(views);
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
    u32[row + SEGMENT_WORD.padded] = segment.padded ?? 0;
  });
}
