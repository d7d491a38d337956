/**
 * The WebGPU arena of an 8-bit state (docs/SPEC.md "Compact states") and its 8-bit step
 * dispatches: the tensors with f32 moments first, at 64-element offsets as in a 32-bit GPU arena,
 * then the compact ones (4096 elements or more), each at a multiple of 256 elements and padded
 * to one, so that a block of 256 is one workgroup of `step_compact` (wgsl_compact.ts). A buffer
 * per section: params, grads and slow weights of every element; each moment's f32 section of the
 * elements before `compactStart`; each moment's codes (a byte an element from `compactStart` on);
 * and the scales (an f32 a block), the first moment's then the second's, in the section of the
 * first moment's scales.
 *
 * @module
 */
import {
  type ArenaLayout,
  codesSection,
  EXP_AVG,
  GRADS,
  PARAMS,
  scalesSection,
  SLOW,
} from "../base/arena.ts";
import { Q8_BLOCK } from "../base/q8.ts";
import { CHUNK_BYTES, CHUNK_WORD, dispatchGrid } from "./_wgsl.ts";
import type { GpuPlanLimits } from "./arena_plan.ts";
import type { GpuTensor } from "./gpu_tensors.ts";
import { bindGroup, type Compiled, type Dispatch } from "./pipelines.ts";
import { COMPACT_CHUNK_BYTES, COMPACT_CHUNK_WORD } from "./wgsl_compact.ts";

/**
 * The GPU arena of an 8-bit state (gpu/arena_layout.ts, where a checkpoint's `memory` plans it
 * too, with no GPU module loaded).
 */
export { planGpuCompactArena } from "./arena_layout.ts";

/**
 * Bytes of section `section`'s buffer in a GPU layout (at least 16): a moment's f32 section
 * holds the elements before `compactStart`, its codes a byte an element after it, the scales
 * section an f32 a block of every moment.
 *
 * @example
 * ```ts
 * import { planGpuCompactArena, sectionBytes } from "./compact_plan.ts";
 * import { codesSection, EXP_AVG, PARAMS, scalesSection } from "../base/arena.ts";
 * import assert from "node:assert/strict";
 *
 * const layout = planGpuCompactArena(["w", "b"], [5000, 10], { moments: 2 });
 * assert.equal(sectionBytes(layout, PARAMS), 4 * (256 + 5120));
 * assert.equal(sectionBytes(layout, EXP_AVG), 4 * 256);
 * assert.equal(sectionBytes(layout, codesSection(0)), 5120);
 * assert.equal(sectionBytes(layout, scalesSection(0)), 2 * 20 * 4);
 * ```
 */
export function sectionBytes(layout: ArenaLayout, section: number): number {
  const codes = layout.total - layout.compactStart;
  const bytes = section === EXP_AVG || section === EXP_AVG + 1
    ? Math.ceil(layout.compactStart / 4) * 16
    : section === codesSection(0) || section === codesSection(1)
    ? codes
    : section === scalesSection(0)
    ? (codes / Q8_BLOCK) * 4 * layout.unsignedCodes.length
    : layout.sectionLength * 4;
  return Math.max(16, bytes);
}

/** A run of blocks of one tensor stepped by one dispatch of `step_compact`. */
export interface CompactChunk {
  /** The arena element of its first block. */
  start: number;
  /** Its blocks. */
  blocks: number;
  /** The element after its tensor's last. */
  end: number;
  /** Its tensor's parameter group. */
  group: number;
  /** Its workgroup grid (a workgroup a block). */
  grid: [number, number];
}

/**
 * The dispatches of the compact tensors' step: the blocks of each, in chunks of as many blocks
 * as one binding of the params allows.
 *
 * @example
 * ```ts
 * import { planCompactChunks, planGpuCompactArena } from "./compact_plan.ts";
 * import assert from "node:assert/strict";
 *
 * const limits = {
 *   maxStorageBufferBindingSize: 4096, maxBufferSize: 1 << 20,
 *   maxComputeWorkgroupsPerDimension: 65535, smallStepElements: 0,
 * };
 * const layout = planGpuCompactArena(["w", "x"], [5000, 4096], {});
 * assert.deepEqual(planCompactChunks(layout, limits).map((c) => c.blocks), [4, 4, 4, 4, 4, 4, 4, 4, 4]);
 * ```
 */
export function planCompactChunks(layout: ArenaLayout, limits: GpuPlanLimits): CompactChunk[] {
  const chunkBlocks = Math.max(1, Math.floor(limits.maxStorageBufferBindingSize / (Q8_BLOCK * 4)));
  const chunks: CompactChunk[] = [];
  for (const row of layout.segments) {
    if (row.padded === undefined) continue;
    const blocks = (row.padded - row.start) / Q8_BLOCK;
    for (let b = 0; b < blocks; b += chunkBlocks) {
      const n = Math.min(chunkBlocks, blocks - b);
      chunks.push({
        start: row.start + b * Q8_BLOCK,
        blocks: n,
        end: row.end,
        group: row.group,
        grid: dispatchGrid(n, limits.maxComputeWorkgroupsPerDimension),
      });
    }
  }
  return chunks;
}

/** The buffers the compact dispatches bind besides the sections. */
export interface CompactBuffers {
  sections: readonly GPUBuffer[];
  consts: GPUBuffer;
  control: GPUBuffer;
  ring: GPUBuffer;
  /**
   * A new placeholder for a section the state lacks (slow weights, a second moment): called once
   * a section, as no two writable bindings may share a buffer.
   */
  placeholder(section: number): GPUBuffer;
  /** The params updated in place in a caller's buffer, by tensor index. */
  inPlace: ReadonlyMap<number, GpuTensor>;
}

/** The dispatches of the compact tensors' step and the buffer of their uniforms. */
export interface CompactDispatches {
  /** One a chunk. */
  dispatches: Dispatch[];
  /** Copies of the params updated in place into the arena's params section, and back. */
  inPlaceReads: Dispatch[];
  inPlaceWrites: Dispatch[];
  /** The chunks' uniforms (freed with the state), where there is a chunk. */
  buffer: GPUBuffer | undefined;
}

/**
 * The bind groups of the compact chunks, and the buffer of their uniforms (freed with the
 * state). Made once, with the state: a step binds them as they are. A chunk of a param updated
 * in place binds its caller's buffer range (zero copy), with a copy each way for reads and
 * restores (`copy_tensor`, as the 32-bit step's in-place params).
 *
 * @example
 * ```ts ignore
 * const chunks = planCompactChunks(layout, limits);
 * const { dispatches } = compactDispatches(device, pipelines, layout, chunks, {
 *   sections, consts, control, ring, inPlace: new Map(),
 *   placeholder: () => device.createBuffer({ size: 16, usage }),
 * });
 * ```
 */
export function compactDispatches(
  device: GPUDevice,
  pipelines: { readonly stepCompact: Compiled; readonly copyTensor: Compiled },
  layout: ArenaLayout,
  chunks: readonly CompactChunk[],
  b: CompactBuffers,
): CompactDispatches {
  const out: CompactDispatches = {
    dispatches: [],
    inPlaceReads: [],
    inPlaceWrites: [],
    buffer: undefined,
  };
  if (chunks.length === 0) return out;
  // By the element after its last: the tensor of each chunk updated in place.
  const inPlaceAt = new Map<number, number>();
  for (const i of b.inPlace.keys()) inPlaceAt.set(layout.offsets[i] + layout.lengths[i], i);
  const copies = chunks.filter((c) => inPlaceAt.has(c.end)).length;
  const stride = Math.max(256, device.limits.minUniformBufferOffsetAlignment);
  const uniforms = out.buffer = device.createBuffer({
    label: "radam compact chunks",
    size: stride * (chunks.length + copies),
    usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST,
  });
  const words = new Uint32Array(stride * (chunks.length + copies) / 4);
  const has = (k: number) => layout.sectionOffsets[k] >= 0;
  const placeholder = placeholders(b);
  let copySlot = chunks.length;
  chunks.forEach((c, j) => {
    const block0 = writeChunkWords(words, j * stride / 4, c, layout);
    const elements = (k: number) =>
      has(k)
        ? { buffer: b.sections[k], offset: c.start * 4, size: c.blocks * Q8_BLOCK * 4 }
        : placeholder(k);
    const codes = (k: number) =>
      has(codesSection(k))
        ? {
          buffer: b.sections[codesSection(k)],
          offset: block0 * Q8_BLOCK,
          size: c.blocks * Q8_BLOCK,
        }
        : placeholder(codesSection(k));
    const tensor = inPlaceAt.get(c.end);
    const param = tensor === undefined ? undefined : b.inPlace.get(tensor)!;
    // A param updated in place: its caller's buffer range, at the chunk's place in the tensor
    // (a multiple of 1024 bytes past the tensor's aligned offset, so aligned too), up to the vec4
    // of its last element (the padding of a last block lies past it: the kernel leaves it).
    const count = Math.min(c.blocks * Q8_BLOCK, c.end - c.start);
    const p = param === undefined ? elements(PARAMS) : {
      buffer: param.buffer,
      offset: (param.offset ?? 0) + (c.start - layout.offsets[tensor!]) * 4,
      size: Math.ceil(count / 4) * 16,
    };
    out.dispatches.push({
      bindGroup: bindGroup(device, pipelines.stepCompact, {
        p,
        g: elements(GRADS),
        slow: elements(SLOW),
        m_codes: codes(0),
        v_codes: codes(1),
        scales: { buffer: b.sections[scalesSection(0)] },
        s: { buffer: b.consts },
        chunk: { buffer: uniforms, offset: j * stride, size: COMPACT_CHUNK_BYTES },
        control: { buffer: b.control },
        ring: { buffer: b.ring },
      }),
      grid: c.grid,
    });
    if (param === undefined) return;
    // (copy_tensor reads the count of a chunk's uniform: a workgroup a block, as the step.)
    words[copySlot * stride / 4 + CHUNK_WORD.count] = count;
    const chunk = { buffer: uniforms, offset: copySlot++ * stride, size: CHUNK_BYTES };
    const copy = (src: GPUBufferBinding, dst: GPUBufferBinding): Dispatch => ({
      bindGroup: bindGroup(device, pipelines.copyTensor, { src, dst, chunk }),
      grid: c.grid,
    });
    out.inPlaceReads.push(copy(p, elements(PARAMS)));
    out.inPlaceWrites.push(copy(elements(PARAMS), p));
  });
  device.queue.writeBuffer(uniforms, 0, words);
  return out;
}

/** Writes chunk `c`'s uniform at word `at`; returns the index of its first block's scales. */
function writeChunkWords(
  words: Uint32Array,
  at: number,
  c: CompactChunk,
  layout: ArenaLayout,
): number {
  const block0 = (c.start - layout.compactStart) / Q8_BLOCK;
  words[at + COMPACT_CHUNK_WORD.blocks] = c.blocks;
  words[at + COMPACT_CHUNK_WORD.start] = c.start;
  words[at + COMPACT_CHUNK_WORD.block0] = block0;
  words[at + COMPACT_CHUNK_WORD.end] = c.end;
  words[at + COMPACT_CHUNK_WORD.group] = c.group;
  words[at + COMPACT_CHUNK_WORD.all_blocks] = (layout.total - layout.compactStart) / Q8_BLOCK;
  return block0;
}

/** The binding of each section the state lacks: one placeholder a section, for every chunk. */
function placeholders(b: CompactBuffers): (section: number) => GPUBufferBinding {
  const made = new Map<number, GPUBuffer>();
  return (k) => {
    let buffer = made.get(k);
    if (buffer === undefined) made.set(k, buffer = b.placeholder(k));
    return { buffer };
  };
}
