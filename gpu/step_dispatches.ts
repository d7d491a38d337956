/**
 * The bind groups of a WebGPU state's step, made once from its chunk plan (arena_plan.ts): the
 * norm's chunks, the decision, the step's chunks (each param updated in place bound from the
 * caller's buffer), and the masked copies of those params.
 *
 * @module
 */
import { EXP_AVG, EXP_AVG_SQ, GRADS, PARAMS, SLOW } from "../base/arena.ts";
import { CHUNK_BYTES, CHUNK_WORD } from "./_wgsl.ts";
import { ALIGN_BYTES, type ChunkPlan, type ChunkRange, type StepChunk } from "./arena_plan.ts";
import type { GpuTensor } from "./gpu_tensors.ts";
import { bindGroup, type Dispatch, type Pipelines } from "./pipelines.ts";
import { NORM_PARTIAL_BYTES } from "./wgsl_norm.ts";

/** The buffers a step binds besides the chunk uniforms and the norm's partials. */
export interface StepBuffers {
  sections: readonly GPUBuffer[];
  /** The constants uniform (step_consts.ts). */
  consts: GPUBuffer;
  /** The segment table, with its order rows (nonfinite_order.ts). */
  segments: GPUBuffer;
  /** A placeholder bound as the first moments where the rule keeps none. */
  m: GPUBuffer | undefined;
  /** A placeholder bound as the second moments where the rule keeps none. */
  v: GPUBuffer | undefined;
  /** A placeholder bound as the slow weights where there are none. */
  slow: GPUBuffer | undefined;
  /** The control buffer (control.ts). */
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

/** The chunk uniforms of a step's dispatches: one entry a chunk, written once. */
interface ChunkUniforms {
  readonly buffer: GPUBuffer;
  /** The next entry, holding a chunk's element count, start and first partial. */
  entry(start: number, count: number, partialBase: number): GPUBufferBinding;
  /** Uploads the entries made. */
  upload(): void;
}

/** A buffer of `count` chunk uniforms (count, start, first partial) at the offset alignment. */
function chunkUniforms(device: GPUDevice, count: number): ChunkUniforms {
  const stride = Math.max(ALIGN_BYTES, device.limits.minUniformBufferOffsetAlignment);
  const entries = Math.max(1, count);
  const buffer = device.createBuffer({
    label: "radam chunks",
    size: stride * entries,
    usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST,
  });
  const words = new Uint32Array(entries * stride / 4);
  let next = 0;
  return {
    buffer,
    entry(start, count, partialBase) {
      const at = next * stride / 4;
      words[at + CHUNK_WORD.count] = count;
      words[at + CHUNK_WORD.start] = start;
      words[at + CHUNK_WORD.partial_base] = partialBase;
      return { buffer, offset: stride * next++, size: CHUNK_BYTES };
    },
    upload: () => device.queue.writeBuffer(buffer, 0, words),
  };
}

/** What the norm's and the decision's dispatches bind. */
interface NormBindings {
  readonly chunks: ChunkUniforms;
  grads(chunk: ChunkRange): GPUBufferBinding;
  readonly partials: GPUBuffer;
  readonly control: GPUBufferBinding;
  readonly ring: GPUBufferBinding;
  readonly s: GPUBufferBinding;
  readonly segments: GPUBufferBinding;
}

/**
 * The norm's first pass, a dispatch a chunk of the gradients, and the dispatch that decides
 * the step: the norm's last pass, or (no norm computed) the decision alone.
 */
function normDispatches(
  device: GPUDevice,
  pipelines: Pipelines,
  plan: ChunkPlan,
  normComputed: boolean,
  b: NormBindings,
): { decision: Dispatch; norm: Dispatch[] } {
  const { control, ring, s } = b;
  const decision: Dispatch = {
    bindGroup: normComputed
      ? bindGroup(device, pipelines.normTotal, {
        all_partials: { buffer: b.partials },
        control,
        ring,
        s,
      })
      : bindGroup(device, pipelines.decide, { control, ring, s }),
    grid: [1, 1],
  };
  const norm = plan.norm.map((c): Dispatch => ({
    bindGroup: bindGroup(device, pipelines.normPartial, {
      g: b.grads(c),
      chunk: b.chunks.entry(c.start, c.count, c.partialBase),
      partials: { buffer: b.partials },
      segments: b.segments,
      s,
    }),
    grid: c.grid,
  }));
  return { decision, norm };
}

/** Bytes of a binding of `count` elements: whole vec4s, at least one. */
const sizeOf = (count: number) => Math.max(16, Math.ceil(count / 4) * 16);

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
  const chunks = chunkUniforms(device, plan.norm.length + plan.step.length);
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
  const control = { buffer: buffers.control };
  const ring = { buffer: buffers.ring };
  const s = { buffer: buffers.consts };
  const segments = { buffer: buffers.segments };
  const { decision, norm } = normDispatches(device, pipelines, plan, normComputed, {
    chunks,
    grads: (c) => section(GRADS, c.start, c.count),
    partials,
    control,
    ring,
    s,
    segments,
  });
  /** A section's binding for a chunk, or the placeholder of a section the state lacks. */
  const bound = (k: number, placeholder: GPUBuffer | undefined, c: StepChunk) =>
    placeholder ? { buffer: placeholder } : section(k, c.start, c.count);
  const step: Dispatch[] = [];
  const inPlaceReads: Dispatch[] = [];
  const inPlaceWrites: Dispatch[] = [];
  for (const c of plan.step) {
    const chunk = chunks.entry(c.start, c.count, 0);
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
        m: bound(EXP_AVG, buffers.m, c),
        v: bound(EXP_AVG_SQ, buffers.v, c),
        s,
        chunk,
        slow: bound(SLOW, buffers.slow, c),
        segments,
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
  chunks.upload();
  return { step, norm, decision, inPlaceReads, inPlaceWrites, buffers: [chunks.buffer, partials] };
}
