/**
 * Where a WebGPU state's tensors lie in its buffers, as pure functions of their lengths (no GPU
 * module loaded): the alignment every device supports, the arena's layout, and the bytes of its
 * largest buffer, which a device's `maxBufferSize` bounds (core/checkpoint_info.ts reports it
 * before a checkpoint is loaded).
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
 * Bytes of the largest buffer of a WebGPU state of tensors of these `lengths` (a section of its
 * arena: the params, grads or f32 moments, each tensor at a 256-byte boundary; with 8-bit
 * `states`, gpu/compact_plan.ts's layout, whose compact tensors are padded to whole blocks),
 * which the state's start refuses above the device's `maxBufferSize` (gpu/section_io.ts).
 *
 * @example
 * ```ts
 * import { gpuBufferBytes } from "./arena_layout.ts";
 * import assert from "node:assert/strict";
 *
 * assert.equal(gpuBufferBytes(["w", "b"], [100, 3], {}, "32bit"), 4 * 192);
 * assert.equal(gpuBufferBytes(["w", "b"], [5000, 10], {}, "8bit"), 4 * (256 + 5120));
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
  return 4 * (placed?.total ?? planGpuArena(names, lengths, options).sectionLength);
}
