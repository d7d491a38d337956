/**
 * The arena of a state with 8-bit moments (`states: "8bit"`; docs/SPEC.md "Compact states"):
 * the tensors of 4096 elements or more keep each moment as one byte an element and one f32 scale
 * per block of 256 elements (base/q8.ts), the others f32 moments as in a 32-bit arena.
 *
 * ```
 * | params | grads | (slow) | exp_avg codes | (exp_avg_sq codes) | (exp_avg f32) | (exp_avg_sq f32) | scales … |
 * ```
 *
 * Tensor order: those with f32 moments first (back to back, in the order given), then the
 * compact ones, each at a multiple of 256 elements and padded to one (`compactStart` is where
 * they start), so that every block belongs to one tensor and the threads of a threaded state
 * split the arena at block boundaries. The padding's parameters, gradients and moments are 0 and
 * stay 0 (the kernels zero the padding's parameters after each step of its block). The f32
 * moment sections hold the elements before `compactStart`, the codes those after it. Every
 * section starts at a multiple of 64 bytes, spread apart as {@linkcode spreadStart} says.
 *
 * @module
 */
import {
  type ArenaLayout,
  codesSection,
  type CompactMoment,
  EXP_AVG,
  EXP_AVG_SQ,
  GRADS,
  PARAMS,
  planArena,
  type PlanOptions,
  scalesSection,
  type Segment,
  SEGMENT_ROW_BYTES,
  segmentRuns,
  SLOW,
} from "./arena.ts";
import { SECTION_ALIGN_BYTES, spreadStart } from "./section_spread.ts";
import { compactLength, Q8_BLOCK } from "./q8.ts";
import { decodeTensor, encodeTensor } from "./q8_tensor.ts";

/**
 * The layout of an 8-bit state of tensors of the given `lengths` (`names` in the order given;
 * the layout's own order puts the compact ones last). Without a compact tensor (all below 4096
 * elements, or a rule that keeps no moment) it is the 32-bit layout.
 *
 * @example
 * ```ts
 * import { planCompactArena } from "./arena_compact.ts";
 * import assert from "node:assert/strict";
 *
 * const layout = planCompactArena(["w", "b"], [5000, 10], { moments: 2 });
 * assert.deepEqual(layout.names, ["b", "w"]);
 * assert.deepEqual(layout.offsets, [0, 256]);
 * assert.equal(layout.compactStart, 256);
 * assert.equal(layout.total, 256 + 5120);
 * ```
 */
export function planCompactArena(
  names: readonly string[],
  lengths: readonly number[],
  options: PlanOptions,
): ArenaLayout {
  const placed = placeCompactTensors(names, lengths, options, 1);
  if (!placed) return { ...planArena(names, lengths, options), states: "8bit" };
  const { total, compactStart, segments } = placed;
  const moments = placed.unsignedCodes.length;
  const wide = placed.compact.includes(false);
  const { sectionOffsets, end } = placeSections(total, compactStart, moments, !!options.slow, wide);
  const segmentTableOffset = Math.ceil(end / SECTION_ALIGN_BYTES) * SECTION_ALIGN_BYTES;
  return {
    ...placed,
    sectionLength: total,
    sectionCount: sectionOffsets.filter((o) => o >= 0).length,
    sectionOffsets,
    segmentTableOffset,
    byteLength: segmentTableOffset + segments.length * SEGMENT_ROW_BYTES,
    states: "8bit",
  };
}

/** The tensors of a compact layout as {@linkcode placeCompactTensors} places them. */
export interface CompactTensors {
  /** Names, lengths and whether each is compact, in the layout's order (compact ones last). */
  readonly names: readonly string[];
  readonly lengths: readonly number[];
  readonly compact: readonly boolean[];
  /** Element offsets. */
  readonly offsets: readonly number[];
  /** Elements, the last compact tensor's padding included. */
  readonly total: number;
  /** The first compact tensor's offset (a multiple of 256). */
  readonly compactStart: number;
  /** The segment rows (see `compactSegments`). */
  readonly segments: readonly Segment[];
  /** Whether each moment's codes are unsigned. */
  readonly unsignedCodes: readonly boolean[];
}

/**
 * The order, offsets and segment rows of the tensors of an 8-bit state, shared by the CPU's
 * plan (`align` 1: back to back) and the GPU's (each tensor at a multiple of `align` elements):
 * those with f32 moments first, then the compact ones, each in the order given, the first
 * compact one at a multiple of 256 and each padded to one. Undefined where none is compact.
 *
 * @example
 * ```ts
 * import { placeCompactTensors } from "./arena_compact.ts";
 * import assert from "node:assert/strict";
 *
 * const placed = placeCompactTensors(["w", "b", "c"], [5000, 10, 3], { moments: 2 }, 64)!;
 * assert.deepEqual(placed.names, ["b", "c", "w"]);
 * assert.deepEqual(placed.offsets, [0, 64, 256]);
 * assert.equal(placed.total, 256 + 5120);
 * assert.equal(placeCompactTensors(["b"], [10], {}, 1), undefined);
 * ```
 */
export function placeCompactTensors(
  names: readonly string[],
  lengths: readonly number[],
  options: PlanOptions,
  align: number,
): CompactTensors | undefined {
  const moments = options.moments ?? 2;
  const compact = lengths.map((n) => moments > 0 && compactLength(n));
  if (!compact.includes(true)) return undefined;
  // wide tensors first, then compact ones, each in the order given
  const order = [...lengths.keys()].sort((a, b) =>
    Number(compact[a]) - Number(compact[b]) || a - b
  );
  const sorted = {
    names: order.map((i) => names[i]),
    lengths: order.map((i) => lengths[i]),
    compact: order.map((i) => compact[i]),
    groups: order.map((i) => options.groups?.[i] ?? 0),
  };
  const offsets: number[] = [];
  let total = 0;
  let compactStart = -1;
  sorted.lengths.forEach((n, i) => {
    if (sorted.compact[i] && compactStart < 0) {
      compactStart = Math.ceil(total / Q8_BLOCK) * Q8_BLOCK;
      total = compactStart;
    }
    const offset = Math.ceil(total / align) * align;
    offsets.push(offset);
    total = offset + (sorted.compact[i] ? Math.ceil(n / Q8_BLOCK) * Q8_BLOCK : n);
  });
  return {
    // Frozen, as base/arena.ts `layoutArena`'s: the order of the slots for the life of the arena.
    names: Object.freeze(sorted.names),
    lengths: sorted.lengths,
    compact: sorted.compact,
    offsets,
    total,
    compactStart,
    segments: compactSegments(offsets, sorted.lengths, sorted.compact, sorted.groups),
    unsignedCodes: [...Array(moments).keys()].map((k) => !!options.nonNegative?.[k]),
  };
}

/**
 * The segment rows of a compact layout: the runs of the tensors with f32 moments (by group),
 * then a row per compact tensor with the end of its last block.
 */
function compactSegments(
  offsets: readonly number[],
  lengths: readonly number[],
  compact: readonly boolean[],
  groups: readonly number[],
): Segment[] {
  const wide = compact.indexOf(true);
  const rows: Segment[] = segmentRuns(
    offsets.slice(0, wide),
    lengths.slice(0, wide),
    groups.slice(0, wide),
  ).filter((row) => row.end > row.start);
  for (let i = wide; i < lengths.length; i++) {
    rows.push({
      start: offsets[i],
      end: offsets[i] + lengths[i],
      group: groups[i],
      padded: offsets[i] + Math.ceil(lengths[i] / Q8_BLOCK) * Q8_BLOCK,
    });
  }
  return rows;
}

/**
 * Where each section of a compact arena of `total` elements starts (by section index; -1 where
 * absent), in memory order: params, grads, slow weights, each moment's codes, each moment's f32
 * section (where some tensor keeps f32 moments: `wide`), each moment's scales; and the byte
 * after the last.
 */
function placeSections(
  total: number,
  compactStart: number,
  moments: number,
  slow: boolean,
  wide: boolean,
): { sectionOffsets: number[]; end: number } {
  const codes = total - compactStart;
  const sized: [number, number][] = [[PARAMS, 4 * total], [GRADS, 4 * total]];
  if (slow) sized.push([SLOW, 4 * total]);
  for (let k = 0; k < moments; k++) sized.push([codesSection(k), codes]);
  const f32 = Math.ceil(compactStart / 4) * 4 * 4;
  if (wide) { for (let k = 0; k < moments; k++) sized.push([EXP_AVG + k, f32]); }
  for (let k = 0; k < moments; k++) sized.push([scalesSection(k), (codes / Q8_BLOCK) * 4]);
  const sectionOffsets: number[] = new Array(scalesSection(1) + 1).fill(-1);
  let end = 0;
  for (const [section, bytes] of sized) {
    const start = section === PARAMS ? 0 : spreadStart(end, bytes);
    sectionOffsets[section] = start;
    end = start + bytes;
  }
  return { sectionOffsets, end };
}

/**
 * Whether `section` is a moment's and the state holds some moment in 8 bits: a host backend's
 * reads and writes of it then go through the codes ({@linkcode sectionValues}).
 *
 * @example
 * ```ts
 * import { holdsCodes, planCompactArena } from "./arena_compact.ts";
 * import { EXP_AVG, PARAMS } from "./arena.ts";
 * import assert from "node:assert/strict";
 *
 * const layout = planCompactArena(["w"], [5000], { moments: 2 });
 * assert.equal(holdsCodes(layout, EXP_AVG), true);
 * assert.equal(holdsCodes(layout, PARAMS), false);
 * ```
 */
export function holdsCodes(layout: ArenaLayout, section: number): boolean {
  return (section === EXP_AVG || section === EXP_AVG_SQ) && layout.compactStart < layout.total;
}

/**
 * What a host backend gives of its arena (a part of `HostBackend`): its layout, a section's f32
 * views by name, and a moment's codes by name (where {@linkcode holdsCodes}).
 */
export interface ArenaViews {
  readonly layout: ArenaLayout;
  viewSection(section: number): Readonly<Record<string, Float32Array>>;
  viewCompact(k: number): Readonly<Record<string, CompactMoment>>;
}

/** The codes of a moment's section of `arena`, where it holds some; else undefined. */
function compactOf(
  arena: ArenaViews,
  section: number,
): Readonly<Record<string, CompactMoment>> | undefined {
  return holdsCodes(arena.layout, section) ? arena.viewCompact(section - EXP_AVG) : undefined;
}

/**
 * Copies of a section's values by name (a host backend's `readSection`), from the f32 views of
 * `arena`, a compact tensor's moment decoded from its codes (where {@linkcode holdsCodes}).
 *
 * @example
 * ```ts
 * import { planCompactArena, sectionValues, writeSectionValues } from "./arena_compact.ts";
 * import { compactViews, EXP_AVG, sectionViews } from "./arena.ts";
 * import assert from "node:assert/strict";
 *
 * const layout = planCompactArena(["w", "b"], [4096, 3], { moments: 1 });
 * const buffer = new ArrayBuffer(layout.byteLength);
 * const arena = {
 *   layout,
 *   viewSection: (s: number) => sectionViews(buffer, 0, layout, s),
 *   viewCompact: (k: number) => compactViews(buffer, 0, layout, k),
 * };
 * const data = { w: new Float32Array(4096).fill(-1), b: new Float32Array([1, 2, 3]) };
 * writeSectionValues(arena, EXP_AVG, data);
 * assert.deepEqual(sectionValues(arena, EXP_AVG), data);
 * ```
 */
export function sectionValues(
  arena: ArenaViews,
  section: number,
): Record<string, Float32Array<ArrayBuffer>> {
  const { layout } = arena;
  const views = arena.viewSection(section), compact = compactOf(arena, section);
  const out: Record<string, Float32Array<ArrayBuffer>> = {};
  layout.names.forEach((name, i) => {
    if (compact === undefined || !layout.compact[i]) out[name] = views[name].slice();
    else {
      out[name] = new Float32Array(layout.lengths[i]);
      decodeTensor(compact[name].codes, compact[name].scales, out[name]);
    }
  });
  return out;
}

/**
 * Writes a section's values by name (a host backend's `writeSection`) into the f32 views of
 * `arena`, a compact tensor's moment encoded into its codes (lossy; where
 * {@linkcode holdsCodes}). A value that is its view already is left as it is.
 *
 * @example
 * ```ts
 * import { planCompactArena, writeSectionValues } from "./arena_compact.ts";
 * import { compactViews, PARAMS, sectionViews } from "./arena.ts";
 * import assert from "node:assert/strict";
 *
 * const layout = planCompactArena(["w"], [3], {});
 * const buffer = new ArrayBuffer(layout.byteLength);
 * const viewSection = (s: number) => sectionViews(buffer, 0, layout, s);
 * const viewCompact = (k: number) => compactViews(buffer, 0, layout, k);
 * const w = new Float32Array([1, 2, 3]);
 * writeSectionValues({ layout, viewSection, viewCompact }, PARAMS, { w });
 * assert.deepEqual(viewSection(PARAMS).w, new Float32Array([1, 2, 3]));
 * ```
 */
export function writeSectionValues(
  arena: ArenaViews,
  section: number,
  data: Readonly<Record<string, Float32Array>>,
): void {
  const { layout } = arena;
  const views = arena.viewSection(section), compact = compactOf(arena, section);
  layout.names.forEach((name, i) => {
    if (compact !== undefined && layout.compact[i]) {
      encodeTensor(data[name], compact[name].codes, compact[name].scales);
      return;
    }
    const to = views[name], from = data[name];
    if (to.buffer !== from.buffer || to.byteOffset !== from.byteOffset) to.set(from);
  });
}
