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
  /** Bytes of the whole arena: all sections. */
  readonly byteLength: number;
}

/** Lays out tensors of the given lengths. */
export function planArena(
  names: readonly string[],
  lengths: readonly number[],
  options: { slow?: boolean } = {},
): ArenaLayout {
  const sectionCount = options.slow ? SECTION_COUNT + 1 : SECTION_COUNT;
  const offsets: number[] = [];
  let total = 0;
  for (const length of lengths) {
    offsets.push(total);
    total += length;
  }
  const sectionLength = Math.ceil(total / 4) * 4;
  return {
    names,
    lengths,
    offsets,
    total,
    sectionLength,
    sectionCount,
    byteLength: sectionLength * 4 * sectionCount,
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
  const start = base + section * layout.sectionLength * 4;
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
  return new Float32Array(buffer, base + section * layout.sectionLength * 4, layout.total);
}
