/**
 * Where a WebGPU state's tensors lie in its buffers, as pure functions of their lengths (no GPU
 * module loaded): the alignment every device supports, the arena's layout (of 32-bit or 8-bit
 * moments), the size of the ring of step scalars (gpu/scalar_ring.ts), the bytes of its largest
 * buffer, which a device's `maxBufferSize` bounds, and of the largest binding its gradient
 * centralization needs, which `maxStorageBufferBindingSize` bounds (core/checkpoint_info.ts
 * reports both before a checkpoint is loaded).
 *
 * @module
 */
import {
  type ArenaAlignment,
  type ArenaLayout,
  codesSection,
  EXP_AVG,
  GRADS,
  layoutArena,
  PARAMS,
  type PlanOptions,
  scalesSection,
  SEGMENT_ROW_BYTES,
  SLOW,
} from "../base/arena.ts";
import { placeCompactTensors } from "../base/arena_compact.ts";
import type { StatesFormat } from "../base/options.ts";
import { BLOCK_WORDS, blockCount } from "../base/scalars.ts";

/** Storage-binding offset alignment that every WebGPU device supports (and the default). */
export const ALIGN_BYTES = 256;
/** {@linkcode ALIGN_BYTES} in elements: tensors start at multiples of it. */
export const ALIGN_ELEMENTS = ALIGN_BYTES / 4;

/**
 * The GPU arena layout: tensors at 64-element (256-byte) aligned offsets, in a buffer per
 * section (every section offset 0): params, grads, the rule's `moments` (default 2), the slow
 * weights with `slow`; and with `groups` (each tensor's group, as `groupsOf` in core/state.ts
 * gives it) the parameter-group runs, as `planArena` in base/arena.ts makes them.
 *
 * @example
 * ```ts
 * import { planGpuArena } from "./arena_layout.ts";
 * import assert from "node:assert/strict";
 *
 * const layout = planGpuArena(["w", "b"], [100, 3]);
 * assert.deepEqual(layout.offsets, [0, 128]);
 * assert.equal(layout.sectionLength, 192);
 * // Lion keeps one moment: params, grads, exp_avg
 * assert.equal(planGpuArena(["w"], [100], { moments: 1 }).sectionCount, 3);
 * ```
 */
export function planGpuArena(
  names: readonly string[],
  lengths: readonly number[],
  options: PlanOptions = {},
): ArenaLayout {
  return layoutArena(names, lengths, options, GPU_ALIGNMENT);
}

/**
 * The GPU arena of an 8-bit state of tensors of the given `lengths` (the layout's order puts the
 * compact ones last); without a compact tensor, the 32-bit GPU layout.
 *
 * @example
 * ```ts
 * import { planGpuCompactArena } from "./arena_layout.ts";
 * import assert from "node:assert/strict";
 *
 * const layout = planGpuCompactArena(["w", "b"], [5000, 10], { moments: 2 });
 * assert.deepEqual(layout.names, ["b", "w"]);
 * assert.deepEqual(layout.offsets, [0, 256]);
 * assert.equal(layout.total, 256 + 5120);
 * ```
 */
export function planGpuCompactArena(
  names: readonly string[],
  lengths: readonly number[],
  options: PlanOptions,
): ArenaLayout {
  const placed = placeCompactTensors(names, lengths, options, ALIGN_ELEMENTS);
  if (!placed) return { ...planGpuArena(names, lengths, options), states: "8bit" };
  const sectionOffsets = new Array(scalesSection(1) + 1).fill(-1);
  for (const k of [PARAMS, GRADS, ...(options.slow ? [SLOW] : [])]) sectionOffsets[k] = 0;
  // The scales of every moment in one section (the first moment's, then the second's).
  sectionOffsets[scalesSection(0)] = 0;
  for (let k = 0; k < placed.unsignedCodes.length; k++) {
    sectionOffsets[EXP_AVG + k] = sectionOffsets[codesSection(k)] = 0;
  }
  return {
    ...placed,
    sectionLength: placed.total,
    sectionCount: sectionOffsets.filter((o) => o >= 0).length,
    sectionOffsets,
    segmentTableOffset: 0,
    byteLength: placed.segments.length * SEGMENT_ROW_BYTES,
    states: "8bit",
  };
}

/**
 * The GPU arena of a state whose moments are held in `states` ({@linkcode planGpuCompactArena}
 * for 8-bit ones, else {@linkcode planGpuArena}): the layout a WebGPU state is started on
 * (core/webgpu_state.ts), and that {@linkcode gpuBufferBytes} measures.
 *
 * @example
 * ```ts
 * import { planGpuLayout } from "./arena_layout.ts";
 * import assert from "node:assert/strict";
 *
 * assert.equal(planGpuLayout(["w", "b"], [5000, 10], { moments: 2 }, "8bit").states, "8bit");
 * assert.deepEqual(planGpuLayout(["w", "b"], [100, 3], {}, "32bit").offsets, [0, 128]);
 * ```
 */
export function planGpuLayout(
  names: readonly string[],
  lengths: readonly number[],
  options: PlanOptions,
  states: StatesFormat,
): ArenaLayout {
  return states === "8bit"
    ? planGpuCompactArena(names, lengths, options)
    : planGpuArena(names, lengths, options);
}

/**
 * Words of an entry of the centralization kernel's table (a `vec4<u32>`, gpu/wgsl_kernel.ts):
 * the first entry holds the dispatch's wide rows and runs, narrow rows and runs; each other one
 * a run's first row, first element and cols (gpu/centralize.ts).
 */
export const CENTRALIZE_ENTRY_WORDS = 4;

/**
 * Bytes of the smallest table of the runs of rows gradient centralization binds beside a window
 * of the grads (gpu/centralize.ts): its first entry (the dispatch's counts) and one run.
 */
export const CENTRALIZE_TABLE_BYTES: number = 2 * 4 * CENTRALIZE_ENTRY_WORDS;

/** Tensors at bindable offsets, in a buffer per section (every section at offset 0). */
const GPU_ALIGNMENT: ArenaAlignment = {
  tensorAlign: ALIGN_ELEMENTS,
  sectionAlign: ALIGN_ELEMENTS,
  stride: () => 0,
};

/**
 * Steps' scalars the ring keeps before t (the device may lag the host by this many unreported
 * steps; see `HALT.noScalars` in device_counter.ts).
 */
export const RING_KEPT = 1024;

/** Steps' scalars the host writes at once, from t on, uploaded together (`scalarsAhead`). */
export const RING_AHEAD = 64;

/** Entries of the ring. */
export const RING_SIZE = RING_KEPT + RING_AHEAD;

/**
 * u32 words of one ring entry of `blocks` scalar blocks (one per parameter group, at least 1):
 * the head padded to a block, then the blocks.
 *
 * @example
 * ```ts
 * import { ringStride } from "./arena_layout.ts";
 * import assert from "node:assert/strict";
 *
 * assert.equal(ringStride(2), 48);
 * ```
 */
export function ringStride(blocks: number): number {
  return BLOCK_WORDS * (1 + blocks);
}

/**
 * Bytes of the largest buffer of a WebGPU state on the GPU arena `layout`
 * ({@linkcode planGpuLayout}), which the state's start refuses above the device's
 * `maxBufferSize` (gpu/section_io.ts, gpu/scalar_ring.ts): a section of its arena (the params,
 * grads or f32 moments, each tensor at a 256-byte boundary; with 8-bit `states`, the compact
 * tensors padded to whole blocks), or, where that is smaller (a small model, or many parameter
 * groups), the ring of step scalars ({@linkcode RING_SIZE} entries of a block per group and one
 * more).
 *
 * @example
 * ```ts
 * import { gpuBufferBytes, planGpuLayout } from "./arena_layout.ts";
 * import assert from "node:assert/strict";
 *
 * const bytes = (lengths: number[], states: "32bit" | "8bit") =>
 *   gpuBufferBytes(planGpuLayout(["w", "b"], lengths, {}, states));
 * assert.equal(bytes([100_000, 3], "32bit"), 4 * (100_032 + 64));
 * assert.equal(bytes([50_000, 10], "8bit"), 4 * (256 + 50_176));
 * assert.equal(bytes([100, 3], "32bit"), 1088 * 32 * 4); // (the ring)
 * ```
 */
export function gpuBufferBytes(layout: ArenaLayout): number {
  const section = 4 * layout.sectionLength;
  return Math.max(section, RING_SIZE * ringStride(blockCount(layout.segments)) * 4);
}

/**
 * Bytes of the largest storage binding that gradient centralization binds whole on the GPU arena
 * `layout` (`shapes` in its order; option `gc`): each tensor of rank > 1 is centralized per row
 * (`shape[0]` rows of the rest), a row bound whole from the {@linkcode ALIGN_BYTES}-aligned
 * offset at or before its start (gpu/centralize.ts), so up to 252 bytes more than the row;
 * or, where that is less (rows of a few elements), the table of the runs of rows a window binds
 * with it, {@linkcode CENTRALIZE_TABLE_BYTES} at least. A device whose binding
 * (`limits.maxStorageBufferBindingSize`, or `maxBufferSize` if smaller) is below it refuses the
 * state when it starts, naming the tensor; on a device of a smaller
 * `minStorageBufferOffsetAlignment`, a few bytes less may do. 0 where no tensor is of rank > 1.
 *
 * @example
 * ```ts
 * import { centralizedBindingBytes, planGpuLayout } from "./arena_layout.ts";
 * import assert from "node:assert/strict";
 *
 * const layout = planGpuLayout(["w", "b"], [3 * 1000, 1000], {}, "32bit");
 * // Rows of 1000 elements: the second starts 1000 elements in, 40 past a 64-element boundary.
 * assert.equal(centralizedBindingBytes(layout, [[3, 1000], [1000]]), 4 * (40 + 1000));
 * assert.equal(centralizedBindingBytes(layout, [[3000], [1000]]), 0);
 * // Rows of 2 elements: the table of one run (32 bytes) is larger than the window (8 bytes).
 * const small = planGpuLayout(["w"], [4], {}, "32bit");
 * assert.equal(centralizedBindingBytes(small, [[2, 2]]), 32);
 * ```
 */
export function centralizedBindingBytes(
  layout: ArenaLayout,
  shapes: readonly (readonly number[])[],
): number {
  let largest = 0;
  layout.lengths.forEach((length, i) => {
    if (shapes[i].length < 2 || length === 0) return;
    const rows = shapes[i][0], cols = length / rows;
    largest = Math.max(largest, CENTRALIZE_TABLE_BYTES);
    // (Where a row starts past a boundary repeats every 64 rows at most.)
    for (let row = 0; row < Math.min(rows, ALIGN_ELEMENTS); row++) {
      const past = (layout.offsets[i] + row * cols) % ALIGN_ELEMENTS;
      largest = Math.max(largest, 4 * (past + cols));
    }
  });
  return largest;
}
