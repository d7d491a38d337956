/**
 * The arena's section buffers of the WebGPU backend and the reads and writes of whole sections
 * (readback through one reused staging buffer, checkpoint restores, LookAhead's start), with
 * the copies to and from the params the caller owns.
 *
 * @module
 */
import { type ArenaLayout, EXP_AVG, EXP_AVG_SQ, hasSection, PARAMS, SLOW } from "../base/arena.ts";
import type { GpuTensor } from "./gpu_tensors.ts";
import type { GpuPlanLimits } from "./arena_plan.ts";
import { sectionBytes } from "./compact_plan.ts";
import { type Dispatch, dispatchEach } from "./pipelines.ts";

/** Largest staging buffer used for readback. */
const STAGING_BYTES = 16 * 1024 * 1024;

const SECTION_LABELS = [
  "params",
  "grads",
  "exp_avg",
  "exp_avg_sq",
  "slow",
  "exp_avg codes",
  "exp_avg_sq codes",
  "exp_avg scales",
  "exp_avg_sq scales",
];

/**
 * The section buffers of `layout`, by section (params, grads, the rule's moments, and the slow
 * weights with LookAhead; a 16-byte placeholder, never read, for a moment the rule lacks), or a
 * RangeError, before anything is allocated, where one exceeds `maxBufferSize`.
 *
 * @example
 * ```ts ignore
 * const sections = createSections(device, planGpuArena(["w"], [1000]), limits);
 * ```
 */
export function createSections(
  device: GPUDevice,
  layout: ArenaLayout,
  limits: GpuPlanLimits,
): GPUBuffer[] {
  const size = layout.sectionLength * 4;
  if (size > limits.maxBufferSize) {
    throw new RangeError(
      `The model's ${layout.total} parameters need ${size}-byte buffers; this device allows ${limits.maxBufferSize} (maxBufferSize)`,
    );
  }
  const usage = GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST;
  return layout.sectionOffsets.map((_, section) =>
    hasSection(layout, section)
      ? device.createBuffer({
        label: `radam ${SECTION_LABELS[section]}`,
        size: sectionBytes(layout, section),
        usage,
      })
      : device.createBuffer({ label: `radam no ${SECTION_LABELS[section]}`, size: 16, usage })
  );
}

/**
 * A parameter tensor the caller owns that cannot be bound in place (see `placeGpuParams` in
 * gpu_tensors.ts): copied into the arena at init, back after each step.
 */
export interface External {
  index: number;
  slot: GpuTensor;
}

/** The params the caller owns: copied ones, and the masked copies of those updated in place. */
export interface CallerParams {
  externals: readonly External[];
  /** Masked copies of the params updated in place, caller's buffer → the arena's params slot. */
  inPlaceReads: readonly Dispatch[];
  /** Masked copies of the params updated in place, the arena's params slot → caller's buffer. */
  inPlaceWrites: readonly Dispatch[];
  /** The pipeline of those copies (`copy_tensor`). */
  copyTensor: GPUComputePipeline;
  /** How errors name the params in caller's buffers (`parameter "w", parameter "b"`). */
  labels: string;
}

/**
 * Reads and writes of whole sections of one state's arena.
 *
 * @example
 * ```ts ignore
 * const io = new SectionIO(device, layout, sections, () => backend.checkUsable(), callerParams);
 * const moments = await io.read(EXP_AVG);
 * ```
 */
export class SectionIO {
  readonly #device: GPUDevice;
  readonly #layout: ArenaLayout;
  readonly #sections: readonly GPUBuffer[];
  readonly #caller: CallerParams;
  /** Throws if the state can no longer be read (its device lost, or it was disposed). */
  readonly #checkUsable: () => void;
  #staging: GPUBuffer | undefined;

  constructor(
    device: GPUDevice,
    layout: ArenaLayout,
    sections: readonly GPUBuffer[],
    checkUsable: () => void,
    caller: CallerParams,
  ) {
    this.#device = device;
    this.#checkUsable = checkUsable;
    this.#layout = layout;
    this.#sections = sections;
    this.#caller = caller;
    if (caller.externals.length > 0) {
      const encoder = device.createCommandEncoder();
      for (const { index, slot } of caller.externals) {
        encoder.copyBufferToBuffer(
          slot.buffer,
          slot.offset,
          sections[PARAMS],
          layout.offsets[index] * 4,
          layout.lengths[index] * 4,
        );
      }
      device.queue.submit([encoder.finish()]);
    }
  }

  /**
   * Every tensor of a section, read back through one reused staging buffer (one read at a
   * time: the caller chains them); throws if the device was lost, or the state disposed,
   * meanwhile.
   */
  async read(section: number): Promise<Record<string, Float32Array>> {
    const layout = this.#layout;
    // A moment's f32 section of an 8-bit state holds the elements before the compact tensors.
    const moment = section === EXP_AVG || section === EXP_AVG_SQ;
    const elements = moment ? layout.compactStart : layout.total;
    const all = new Float32Array(await this.readBytes(section, Math.ceil(elements / 4) * 16));
    this.#checkUsable();
    const out: Record<string, Float32Array> = {};
    layout.names.forEach((name, i) => {
      if (moment && layout.compact[i]) return;
      const start = layout.offsets[i];
      out[name] = all.slice(start, start + layout.lengths[i]);
    });
    return out;
  }

  /**
   * The first `bytes` bytes (a multiple of 4) of a section's buffer, read back through one
   * reused staging buffer (one read at a time: the caller chains them). A state disposed
   * meanwhile (its buffers freed) makes it throw before it submits anything more.
   */
  async readBytes(section: number, bytes: number): Promise<ArrayBuffer> {
    const device = this.#device;
    const all = new Uint8Array(bytes);
    this.#staging ??= device.createBuffer({
      label: "radam staging",
      size: Math.max(16, Math.min(STAGING_BYTES, Math.ceil(this.#layout.total / 4) * 16)),
      usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST,
    });
    const staging = this.#staging;
    for (let offset = 0; offset < bytes; offset += staging.size) {
      this.#checkUsable();
      const size = Math.min(staging.size, bytes - offset);
      // Params updated in place: first their current values into the arena's params slots,
      // from buffers the GPU may refuse (destroyed, another device's): then nothing is read.
      const fromCaller = section === PARAMS && offset === 0 &&
        this.#caller.inPlaceReads.length > 0;
      if (fromCaller) device.pushErrorScope("validation");
      const encoder = device.createCommandEncoder();
      if (fromCaller) this.#encodeCopies(encoder, this.#caller.inPlaceReads);
      encoder.copyBufferToBuffer(this.#sections[section], offset, staging, 0, size);
      device.queue.submit([encoder.finish()]);
      const refused = fromCaller ? await device.popErrorScope() : null;
      this.#checkUsable();
      if (refused) {
        throw new TypeError(
          `The GPU refused to read the params from your buffers (${refused.message}): those of ${this.#caller.labels} must be live GPUBuffers (not destroyed) of the state's device`,
        );
      }
      try {
        await staging.mapAsync(GPUMapMode.READ, 0, size);
      } catch (error) {
        this.#checkUsable(); // (disposed meanwhile: the map was aborted)
        throw error;
      }
      all.set(new Uint8Array(staging.getMappedRange(0, size)), offset);
      staging.unmap();
    }
    return all.buffer;
  }

  /** Writes every tensor of a section (a restore); params reach the caller's buffers too. */
  write(section: number, data: Readonly<Record<string, Float32Array>>): void {
    const buffer = this.#sections[section];
    const moment = section === EXP_AVG || section === EXP_AVG_SQ;
    this.#layout.names.forEach((name, i) => {
      // (A compact tensor's moments are codes: see compact_io.ts.)
      if (!data[name]?.length || (moment && this.#layout.compact[i])) return;
      this.#device.queue.writeBuffer(
        buffer,
        this.#layout.offsets[i] * 4,
        data[name] as Float32Array<ArrayBuffer>,
      );
    });
    const caller = this.#caller;
    if (section === PARAMS && (caller.externals.length > 0 || caller.inPlaceWrites.length > 0)) {
      const encoder = this.#device.createCommandEncoder();
      this.#encodeCopies(encoder, caller.inPlaceWrites);
      this.encodeCopyOut(encoder);
      this.#device.queue.submit([encoder.finish()]);
    }
  }

  /** Uploads host params of some tensors (at init; the others come from caller buffers). */
  writeHostParams(data: Readonly<Record<string, Float32Array>>): void {
    this.#layout.names.forEach((name, i) => {
      const array = data[name];
      if (array?.length) {
        this.#device.queue.writeBuffer(
          this.#sections[PARAMS],
          this.#layout.offsets[i] * 4,
          array as Float32Array<ArrayBuffer>,
        );
      }
    });
  }

  /**
   * Copies the params into the slow weights (LookAhead's start: slow = params), those updated in
   * place from the caller's buffers.
   */
  copyParamsToSlow(): void {
    if (!hasSection(this.#layout, SLOW)) return;
    const encoder = this.#device.createCommandEncoder();
    this.#encodeCopies(encoder, this.#caller.inPlaceReads);
    encoder.copyBufferToBuffer(
      this.#sections[PARAMS],
      0,
      this.#sections[SLOW],
      0,
      this.#layout.sectionLength * 4,
    );
    this.#device.queue.submit([encoder.finish()]);
  }

  /** Encodes the copies of the params the arena keeps for a caller's buffer into that buffer. */
  encodeCopyOut(encoder: GPUCommandEncoder): void {
    for (const { index, slot } of this.#caller.externals) {
      encoder.copyBufferToBuffer(
        this.#sections[PARAMS],
        this.#layout.offsets[index] * 4,
        slot.buffer,
        slot.offset,
        this.#layout.lengths[index] * 4,
      );
    }
  }

  /** Frees the staging buffer. */
  destroy(): void {
    this.#staging?.destroy();
  }

  /** Encodes masked tensor copies (`inPlaceReads` or `inPlaceWrites`) in one compute pass. */
  #encodeCopies(encoder: GPUCommandEncoder, copies: readonly Dispatch[]): void {
    if (copies.length === 0) return;
    const pass = encoder.beginComputePass();
    dispatchEach(pass, this.#caller.copyTensor, copies);
    pass.end();
  }
}
