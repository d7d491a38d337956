/**
 * Where a WebGPU state's tensors lie in its buffers, as pure functions of their lengths (no GPU
 * module loaded): the alignment every device supports, the arena's layout, the size of the ring
 * of step scalars (gpu/scalar_ring.ts), and the bytes of its largest buffer, which a device's
 * `maxBufferSize` bounds (core/checkpoint_info.ts reports it before a checkpoint is loaded).
 *
 * @module
 */
import {
  type ArenaAlignment,
  type ArenaLayout,
  layoutArena,
  type PlanOptions,
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
 * Bytes of the largest buffer of a WebGPU state of tensors of these `lengths`, which the state's
 * start refuses above the device's `maxBufferSize` (gpu/section_io.ts, gpu/scalar_ring.ts): a
 * section of its arena (the params, grads or f32 moments, each tensor at a 256-byte boundary;
 * with 8-bit `states`, gpu/compact_plan.ts's layout, whose compact tensors are padded to whole
 * blocks), or, where that is smaller (a small model, or many parameter groups), the ring of
 * step scalars ({@linkcode RING_SIZE} entries of a block per group and one more).
 *
 * @example
 * ```ts
 * import { gpuBufferBytes } from "./arena_layout.ts";
 * import assert from "node:assert/strict";
 *
 * assert.equal(gpuBufferBytes(["w", "b"], [100_000, 3], {}, "32bit"), 4 * (100_032 + 64));
 * assert.equal(gpuBufferBytes(["w", "b"], [50_000, 10], {}, "8bit"), 4 * (256 + 50_176));
 * assert.equal(gpuBufferBytes(["w", "b"], [100, 3], {}, "32bit"), 1088 * 32 * 4); // (the ring)
 * ```
 */
export function gpuBufferBytes(
  names: readonly string[],
  lengths: readonly number[],
  options: PlanOptions,
  states: StatesFormat,
): number {
  const placed = states === "8bit"
    ? placeCompactTensors(names, lengths, options, ALIGN_ELEMENTS)
    : undefined;
  const layout = placed === undefined ? planGpuArena(names, lengths, options) : undefined;
  const section = 4 * (placed?.total ?? layout!.sectionLength);
  const blocks = blockCount((placed ?? layout!).segments);
  return Math.max(section, RING_SIZE * ringStride(blocks) * 4);
}
