/**
 * The bind groups of a WebGPU state's step, made once from its chunk plan (arena_plan.ts): the
 * norm's chunks, the decision, the step's chunks (each param updated in place bound from the
 * caller's buffer), the masked copies of those params, and the segment table of parameter
 * groups.
 *
 * @module
 */
import {
  type ArenaLayout,
  EXP_AVG,
  EXP_AVG_SQ,
  GRADS,
  PARAMS,
  SEGMENT_ROW_BYTES,
  SEGMENT_ROW_WORDS,
  SLOW,
  writeSegmentTable,
} from "../core/arena.ts";
import { CHUNK_BYTES, CHUNK_WORD } from "./_wgsl.ts";
import { ALIGN_BYTES, type ChunkPlan } from "./arena_plan.ts";
import type { GpuTensor } from "./gpu_tensors.ts";
import { bindGroup, type Dispatch, type Pipelines } from "./pipelines.ts";
import { NORM_PARTIAL_BYTES } from "./wgsl_norm.ts";

/** The buffers a step binds besides the chunk uniforms and the norm's partials. */
export interface StepBuffers {
  sections: readonly GPUBuffer[];
  /** The constants uniform (step_consts.ts). */
  consts: GPUBuffer;
  /** The segment table. */
  segments: GPUBuffer;
  /** A placeholder bound as the slow weights where there are none. */
  slow: GPUBuffer | undefined;
  /** A placeholder bound as the second moments where the rule keeps none. */
  v: GPUBuffer | undefined;
  /** The control buffer (device_counter.ts). */
  control: GPUBuffer;
  /** The ring of scalars (scalar_ring.ts). */
  ring: GPUBuffer;
}

/** The dispatches of a step, and the buffers made for them. */
export interface StepDispatches {
  /** The update, a dispatch a chunk (also the bind group of `step_small`: the same bindings). */
  step: Dispatch[];
  /** The first pass of the norm, a dispatch a chunk of the grads section. */
  norm: Dispatch[];
  /** The norm's last pass, which decides the step; or the decision alone. */
  decision: Dispatch;
  /** Masked copies of the params updated in place, caller's buffer → the arena's params slot. */
  inPlaceReads: Dispatch[];
  /** Masked copies of the params updated in place, the arena's params slot → caller's buffer. */
  inPlaceWrites: Dispatch[];
  /** The chunk uniforms and the partials (freed with the state). */
  buffers: GPUBuffer[];
}

/**
 * The segment table of `layout` (rows of core/arena.ts `SEGMENT_ROW`: start, end and group
 * of each parameter-group run; one row, not read, without groups).
 *
 * @example
 * ```ts ignore
 * const segments = createSegmentTable(device, layout);
 * ```
 */
export function createSegmentTable(device: GPUDevice, layout: ArenaLayout): GPUBuffer {
  const count = layout.segments.length;
  const words = new Uint32Array(count * SEGMENT_ROW_WORDS);
  writeSegmentTable(layout, words);
  const buffer = device.createBuffer({
    label: "radam segments",
    size: Math.max(1, count) * SEGMENT_ROW_BYTES,
    usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST,
  });
  if (count > 0) device.queue.writeBuffer(buffer, 0, words);
  return buffer;
}

/**
 * The dispatches of `plan`, bound to `buffers` (and to the caller's buffers of the params at
 * `inPlace`); `normComputed`: whether the norm passes run (else the decision runs alone).
 *
 * @example
 * ```ts ignore
 * const d = buildStepDispatches(device, pipelines, planChunks(layout, limits), new Map(), buffers, true);
 * ```
 */
export function buildStepDispatches(
  device: GPUDevice,
  pipelines: Pipelines,
  plan: ChunkPlan,
  inPlace: ReadonlyMap<number, GpuTensor>,
  buffers: StepBuffers,
  normComputed: boolean,
): StepDispatches {
  const made: GPUBuffer[] = [];
  // One uniform entry a chunk (count, start, first partial), at the uniform offset alignment.
  const stride = Math.max(ALIGN_BYTES, device.limits.minUniformBufferOffsetAlignment);
  const entryCount = Math.max(1, plan.norm.length + plan.step.length);
  const chunkInfo = device.createBuffer({
    label: "radam chunks",
    size: stride * entryCount,
    usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST,
  });
  made.push(chunkInfo);
  const chunkWords = new Uint32Array(entryCount * stride / 4);
  let entry = 0;
  const chunkUniform = (start: number, count: number, partialBase: number) => {
    const at = entry * stride / 4;
    chunkWords[at + CHUNK_WORD.count] = count;
    chunkWords[at + CHUNK_WORD.start] = start;
    chunkWords[at + CHUNK_WORD.partial_base] = partialBase;
    return { buffer: chunkInfo, offset: stride * entry++, size: CHUNK_BYTES };
  };
  const sizeOf = (count: number) => Math.max(16, Math.ceil(count / 4) * 16);
  const section = (k: number, start: number, count: number) => ({
    buffer: buffers.sections[k],
    offset: start * 4,
    size: sizeOf(count),
  });
  const partials = device.createBuffer({
    label: "radam grad norm partials",
    size: Math.max(1, plan.partialCount) * NORM_PARTIAL_BYTES,
    usage: GPUBufferUsage.STORAGE,
  });
  made.push(partials);
  const control = { buffer: buffers.control };
  const ring = { buffer: buffers.ring };
  const s = { buffer: buffers.consts };
  const decision: Dispatch = {
    bindGroup: normComputed
      ? bindGroup(device, pipelines.normTotal, {
        all_partials: { buffer: partials },
        control,
        ring,
        s,
      })
      : bindGroup(device, pipelines.decide, { control, ring, s }),
    grid: [1, 1],
  };
  const norm = plan.norm.map((c): Dispatch => ({
    bindGroup: bindGroup(device, pipelines.normPartial, {
      g: section(GRADS, c.start, c.count),
      chunk: chunkUniform(c.start, c.count, c.partialBase),
      partials: { buffer: partials },
    }),
    grid: c.grid,
  }));
  const step: Dispatch[] = [];
  const inPlaceReads: Dispatch[] = [];
  const inPlaceWrites: Dispatch[] = [];
  for (const c of plan.step) {
    const chunk = chunkUniform(c.start, c.count, 0);
    const param = c.inPlace === undefined ? undefined : inPlace.get(c.inPlace)!;
    // A param updated in place: its caller's buffer range, at the chunk's place in the tensor
    // (a 256-byte multiple past the tensor's aligned offset, so aligned too).
    const p = param
      ? {
        buffer: param.buffer,
        offset: param.offset + (c.start - c.first) * 4,
        size: sizeOf(c.count),
      }
      : section(PARAMS, c.start, c.count);
    step.push({
      bindGroup: bindGroup(device, pipelines.step, {
        p,
        g: section(GRADS, c.start, c.count),
        m: section(EXP_AVG, c.start, c.count),
        v: buffers.v ? { buffer: buffers.v } : section(EXP_AVG_SQ, c.start, c.count),
        s,
        chunk,
        slow: buffers.slow ? { buffer: buffers.slow } : section(SLOW, c.start, c.count),
        segments: { buffer: buffers.segments },
        control,
        ring,
      }),
      grid: c.grid,
    });
    if (param) {
      const copy = (src: GPUBufferBinding, dst: GPUBufferBinding): Dispatch => ({
        bindGroup: bindGroup(device, pipelines.copyTensor, { src, dst, chunk }),
        grid: c.grid,
      });
      inPlaceReads.push(copy(p, section(PARAMS, c.start, c.count)));
      inPlaceWrites.push(copy(section(PARAMS, c.start, c.count), p));
    }
  }
  device.queue.writeBuffer(chunkInfo, 0, chunkWords);
  return { step, norm, decision, inPlaceReads, inPlaceWrites, buffers: made };
}
