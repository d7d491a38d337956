/**
 * Planning the WebGPU arena and its dispatches, as pure functions of the tensor lengths and the
 * device limits (testable without a GPU): where each tensor lies in the sections, which element
 * ranges each dispatch binds (binding-sized chunks), their workgroup grids, and whether a step
 * is one dispatch.
 *
 * @module
 */
import type { ArenaLayout } from "../base/arena.ts";
import { ALIGN_BYTES, ALIGN_ELEMENTS, planGpuArena } from "./arena_layout.ts";
import { dispatchGrid, WORKGROUP_SIZE } from "./_wgsl.ts";
import { NORM_ELEMENTS_PER_WORKGROUP } from "./wgsl_norm.ts";

export { ALIGN_BYTES, ALIGN_ELEMENTS, planGpuArena };

/** Limits the backend plans with; tests lower them to exercise splitting at small sizes. */
export interface GpuPlanLimits {
  /** Bytes of one storage binding (a chunk of a section). */
  maxStorageBufferBindingSize: number;
  /** Bytes of one buffer (a section). */
  maxBufferSize: number;
  /** Workgroups per dispatch dimension. */
  maxComputeWorkgroupsPerDimension: number;
  /** Largest arena (elements) stepped in one dispatch (`step_small`); 0 turns that off. */
  smallStepElements: number;
}

/** An element range `[start, start + count)` of the sections, bound as one chunk. */
export interface ChunkRange {
  start: number;
  count: number;
  /** Its workgroup grid. */
  grid: [number, number];
}

/** A chunk of the step: where the tensor updated in place (if any) starts. */
export interface StepChunk extends ChunkRange {
  /** The index of the param updated in place in a caller's buffer that this chunk steps. */
  inPlace?: number;
  /** The element where that tensor (or the run of arena tensors) starts. */
  first: number;
}

/** A chunk of the first norm pass: its first partial. */
export interface NormChunk extends ChunkRange {
  partialBase: number;
}

/** The dispatches of a step. */
export interface ChunkPlan {
  /** The first norm pass: binding-sized chunks of the whole grads section. */
  norm: NormChunk[];
  /** Partials the first norm pass writes (one a workgroup). */
  partialCount: number;
  /**
   * The step dispatches: each run of consecutive tensors whose params the arena holds, and each
   * param updated in place on its own, in binding-sized chunks.
   */
  step: StepChunk[];
  /** Whether the whole step is one dispatch of `step_small` (when nothing is centralized). */
  small: boolean;
}

/**
 * The dispatches of `layout`'s steps under `limits`, the params at `inPlace` updated in place in
 * a caller's buffer. The norm covers every gradient (the arena's own and those of params updated
 * in place); the step covers every element of every tensor in exactly one dispatch (the arena's
 * params slots of in-place tensors are never stepped; they only stage readback and restore).
 * Runs need the offsets to grow with the index, as {@linkcode planGpuArena} lays tensors out.
 *
 * @example
 * ```ts
 * import { planChunks, planGpuArena } from "./arena_plan.ts";
 * import assert from "node:assert/strict";
 *
 * const limits = {
 *   maxStorageBufferBindingSize: 4096, maxBufferSize: 1 << 20,
 *   maxComputeWorkgroupsPerDimension: 2, smallStepElements: 4096,
 * };
 * const plan = planChunks(planGpuArena(["a"], [5000]), limits);
 * assert.deepEqual(plan.step.map((c) => c.count), [1024, 1024, 1024, 1024, 904]);
 * ```
 */
export function planChunks(
  layout: ArenaLayout,
  limits: GpuPlanLimits,
  inPlace: ReadonlySet<number> = new Set(),
): ChunkPlan {
  // Chunks: the largest 256-byte multiple a binding allows.
  const chunkElements = Math.floor(limits.maxStorageBufferBindingSize / ALIGN_BYTES) *
    ALIGN_ELEMENTS;
  const grid = (groups: number) => dispatchGrid(groups, limits.maxComputeWorkgroupsPerDimension);
  const split = (start: number, end: number, out: (start: number, count: number) => void) => {
    for (let at = start; at < end; at += chunkElements) out(at, Math.min(chunkElements, end - at));
  };
  const norm: NormChunk[] = [];
  let partialCount = 0;
  split(0, layout.total, (start, count) => {
    const groups = Math.ceil(count / NORM_ELEMENTS_PER_WORKGROUP);
    norm.push({ start, count, grid: grid(groups), partialBase: partialCount });
    partialCount += groups;
  });
  const runs: { start: number; end: number; inPlace?: number }[] = [];
  let run: { start: number; end: number } | undefined;
  for (let i = 0; i < layout.names.length; i++) {
    // (8-bit states: the compact tensors, last in the layout, have dispatches of their own.)
    if (layout.lengths[i] === 0 || layout.compact[i]) continue;
    const start = layout.offsets[i], end = start + layout.lengths[i];
    if (inPlace.has(i)) {
      runs.push({ start, end, inPlace: i });
      run = undefined;
    } else if (run) run.end = end;
    else runs.push(run = { start, end });
  }
  const step: StepChunk[] = [];
  for (const r of runs) {
    split(r.start, r.end, (start, count) => {
      const groups = Math.ceil(Math.ceil(count / 4) / WORKGROUP_SIZE);
      const chunk: StepChunk = { start, count, grid: grid(groups), first: r.start };
      if (r.inPlace !== undefined) chunk.inPlace = r.inPlace;
      step.push(chunk);
    });
  }
  const small = step.length === 1 && step[0].start === 0 && step[0].count === layout.total &&
    layout.total <= limits.smallStepElements;
  return { norm, partialCount, step, small };
}
