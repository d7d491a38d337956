/**
 * The arena's section buffers of the WebGPU backend and the reads and writes of whole sections
 * (readbacks, each copied at its call in one submission into a buffer of its own; checkpoint
 * restores; LookAhead's start), with the copies to and from the params the caller owns.
 *
 * @module
 */
import { type ArenaLayout, EXP_AVG, EXP_AVG_SQ, hasSection, PARAMS, SLOW } from "../base/arena.ts";
import { buffersRefused } from "./buffer_probe.ts";
import { explainMapFailure } from "./map_failure.ts";
import { arenaSlot, recordSections } from "./_gpu_grads.ts";
import type { GpuTensor } from "./gpu_tensors.ts";
import type { GpuPlanLimits } from "./arena_plan.ts";
import { sectionBytes } from "./compact_plan.ts";
import { type Dispatch, dispatchEach } from "./pipelines.ts";

/** The most bytes one upload of host params gathers of tensors one after another (1 MiB). */
const GATHER_BYTES = 1 << 20;

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
    // The parameters the caller gave (the layout's total counts the alignment padding too).
    const given = layout.lengths.reduce((a, b) => a + b, 0);
    throw new RangeError(
      `The model's ${given} parameters need ${size}-byte buffers (each tensor at a 256-byte boundary); this device allows ${limits.maxBufferSize} (maxBufferSize)`,
    );
  }
  const usage = GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST;
  const sections = layout.sectionOffsets.map((_, section) =>
    hasSection(layout, section)
      ? device.createBuffer({
        label: `radam ${SECTION_LABELS[section]}`,
        size: sectionBytes(layout, section),
        usage,
      })
      : device.createBuffer({ label: `radam no ${SECTION_LABELS[section]}`, size: 16, usage })
  );
  recordSections(device, sections);
  return sections;
}

/**
 * A parameter tensor the caller owns that cannot be bound in place (see `placeGpuParams` in
 * _gpu_params.ts): copied into the arena at init, back after each step.
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
  /** The buffers of the params updated in place (the caller's). */
  inPlaceBuffers: readonly GPUBuffer[];
}

/**
 * Bytes of a section to read back: its first `bytes` bytes (a multiple of 4), or, with `pieces`,
 * those byte ranges of it (`[offset, length]`, multiples of 4), back to back (`bytes`: the sum
 * of their lengths).
 */
export interface ReadRange {
  section: number;
  bytes: number;
  pieces?: readonly (readonly [offset: number, length: number])[];
}

/** Sections copied at one point of the queue (`SectionIO.snapshot`), to read back. */
export interface Snapshot {
  /**
   * The bytes of each range, once the GPU has copied them (call once): the readback buffers'
   * mapped ranges themselves, valid until `discard` (copy what is kept).
   */
  read(): Promise<ArrayBuffer[]>;
  /** Frees the readback buffers (after `read`, or instead of it). */
  discard(): void;
}

/** The moment a section holds (0 or 1), or -1. */
export function momentOf(section: number): number {
  return section === EXP_AVG ? 0 : section === EXP_AVG_SQ ? 1 : -1;
}

/**
 * Slots of every tensor of `layout` in one section buffer (of `createSections`), each recorded
 * as sound (`arenaSlot`): given as a gradient, one is taken as it is.
 */
export function slotsOf(layout: ArenaLayout, section: GPUBuffer): Record<string, GpuTensor> {
  const out: Record<string, GpuTensor> = {};
  layout.names.forEach((name, i) => {
    out[name] = arenaSlot(Object.freeze({
      buffer: section,
      offset: layout.offsets[i] * 4,
      size: layout.lengths[i] * 4,
      length: layout.lengths[i],
    }));
  });
  return out;
}

/**
 * Reads and writes of whole sections of one state's arena.
 *
 * @example
 * ```ts ignore
 * const io = new SectionIO(device, layout, sections, () => backend.checkUsable(), callerParams);
 * const snapshot = io.snapshot([io.sectionRange(EXP_AVG)]); // the state now
 * const moments = io.valuesOf(EXP_AVG, (await snapshot.read())[0]);
 * snapshot.discard();
 * ```
 */
export class SectionIO {
  readonly #device: GPUDevice;
  readonly #layout: ArenaLayout;
  readonly #sections: readonly GPUBuffer[];
  readonly #caller: CallerParams;
  /** Throws if the state can no longer be read (its device lost, or it was disposed). */
  readonly #checkUsable: () => void;
  /** The readback buffers of the snapshots not yet discarded. */
  readonly #readbacks = new Set<GPUBuffer>();

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

  /** The bytes of a section that a read of it copies (`valuesOf` takes them apart). */
  sectionRange(section: number): ReadRange {
    const layout = this.#layout;
    // A moment's f32 section of an 8-bit state holds the elements before the compact tensors.
    const elements = momentOf(section) >= 0 ? layout.compactStart : layout.total;
    return { section, bytes: Math.ceil(elements / 4) * 16 };
  }

  /** Every tensor of a section, from the bytes of its `sectionRange` a snapshot read. */
  valuesOf(section: number, bytes: ArrayBuffer): Record<string, Float32Array<ArrayBuffer>> {
    const layout = this.#layout;
    const moment = momentOf(section) >= 0;
    const all = new Float32Array(bytes);
    const out: Record<string, Float32Array<ArrayBuffer>> = {};
    layout.names.forEach((name, i) => {
      if (moment && layout.compact[i]) return;
      const start = layout.offsets[i];
      out[name] = all.slice(start, start + layout.lengths[i]);
    });
    return out;
  }

  /**
   * Copies the bytes of each range of `ranges` (of one section each) into a readback buffer of
   * its own (no larger than the section, so within `maxBufferSize`), in one submission, now:
   * they hold the state after every step submitted so far and none submitted later, one step in
   * all (a step may come before they are mapped). Reading the params copies those updated in
   * place from the caller's buffers first, in the same submission (which the GPU may refuse:
   * destroyed buffers, another device's). Throws if the state can no longer be read.
   */
  snapshot(ranges: readonly ReadRange[]): Snapshot {
    this.#checkUsable();
    const device = this.#device;
    const buffers = ranges.map((r) => {
      const buffer = device.createBuffer({
        label: "radam readback",
        size: Math.max(16, r.bytes),
        usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST,
      });
      this.#readbacks.add(buffer);
      return buffer;
    });
    const fromCaller = ranges.some((r) => r.section === PARAMS) &&
      this.#caller.inPlaceReads.length > 0;
    if (fromCaller) device.pushErrorScope("validation");
    const encoder = device.createCommandEncoder();
    if (fromCaller) this.#encodeCopies(encoder, this.#caller.inPlaceReads);
    ranges.forEach((r, k) => {
      let at = 0;
      for (const [offset, length] of r.pieces ?? [[0, r.bytes]]) {
        if (length > 0) {
          encoder.copyBufferToBuffer(this.#sections[r.section], offset, buffers[k], at, length);
        }
        at += length;
      }
    });
    device.queue.submit([encoder.finish()]);
    const refused = fromCaller ? device.popErrorScope() : Promise.resolve(null);
    refused.catch(() => {}); // (a lost device: checkUsable says so)
    return {
      read: async () => {
        const error = await refused;
        this.#checkUsable();
        if (error) {
          const { labels, inPlaceBuffers } = this.#caller;
          if (await buffersRefused(device, inPlaceBuffers) === false) {
            throw new Error(
              `The GPU refused the library's own commands of a read of the params (${error.message}): your buffers of ${labels} are live GPUBuffers of the state's device, so the fault is not theirs but of this library or of the GPU's driver`,
            );
          }
          throw new TypeError(
            `The GPU refused to read the params from your buffers (${error.message}): those of ${labels} must be live GPUBuffers (not destroyed) of the state's device`,
          );
        }
        try {
          await Promise.all(buffers.map((b) => b.mapAsync(GPUMapMode.READ)));
        } catch (error) {
          // (disposed meanwhile, or the device lost: the map was aborted)
          await explainMapFailure(device, error, this.#checkUsable);
          throw error;
        }
        this.#checkUsable(); // (disposed once mapped: the buffers are destroyed)
        return ranges.map((r, k) => buffers[k].getMappedRange(0, Math.max(16, r.bytes)));
      },
      discard: () => {
        for (const buffer of buffers) {
          this.#readbacks.delete(buffer);
          buffer.destroy();
        }
      },
    };
  }

  /**
   * Writes every tensor of a section (a restore), those one after another in the arena together
   * (`#writeGathered`); params reach the caller's buffers too.
   */
  write(section: number, data: Readonly<Record<string, Float32Array>>): void {
    const moment = momentOf(section) >= 0;
    // (A compact tensor's moments are codes: see compact_io.ts.)
    this.#writeGathered(section, this.#arraysOf(data, (i) => moment && this.#layout.compact[i]));
    const caller = this.#caller;
    if (section === PARAMS && (caller.externals.length > 0 || caller.inPlaceWrites.length > 0)) {
      const encoder = this.#device.createCommandEncoder();
      this.#encodeCopies(encoder, caller.inPlaceWrites);
      this.encodeCopyOut(encoder);
      this.#device.queue.submit([encoder.finish()]);
    }
  }

  /**
   * Uploads host params of some tensors (at init; the others come from caller buffers), those
   * one after another in the arena together (`#writeGathered`).
   */
  writeHostParams(data: Readonly<Record<string, Float32Array>>): void {
    this.#writeGathered(PARAMS, this.#arraysOf(data, () => false));
  }

  /**
   * The arrays of `data` by the layout's tensors: undefined for a tensor it lacks (own keys
   * only: a tensor the record lacks may be named "constructor"), holds empty, or is `skipped`.
   */
  #arraysOf(
    data: Readonly<Record<string, Float32Array>>,
    skipped: (i: number) => boolean,
  ): (Float32Array<ArrayBuffer> | undefined)[] {
    return this.#layout.names.map((name, i) => {
      const array = Object.hasOwn(data, name) && !skipped(i) ? data[name] : undefined;
      return array?.length ? array as Float32Array<ArrayBuffer> : undefined;
    });
  }

  /**
   * Uploads `arrays` (by the layout's tensors; undefined: left as it is) into a section: those
   * one after another in the arena in one upload of up to {@linkcode GATHER_BYTES}, the bytes
   * between them zeros, as a section's are (an upload each was most of the init, or load, of a
   * model of many small tensors).
   */
  #writeGathered(
    section: number,
    arrays: readonly (Float32Array<ArrayBuffer> | undefined)[],
  ): void {
    const { offsets, lengths } = this.#layout;
    for (let i = 0; i < arrays.length;) {
      if (arrays[i] === undefined) {
        i++;
        continue;
      }
      let j = i + 1;
      while (
        j < arrays.length && arrays[j] !== undefined &&
        offsets[j] >= offsets[j - 1] + lengths[j - 1] &&
        (offsets[j] + lengths[j] - offsets[i]) * 4 <= GATHER_BYTES
      ) j++;
      let upload = arrays[i]!;
      if (j > i + 1) {
        upload = new Float32Array(offsets[j - 1] + arrays[j - 1]!.length - offsets[i]);
        for (let k = i; k < j; k++) upload.set(arrays[k]!, offsets[k] - offsets[i]);
      }
      this.#device.queue.writeBuffer(this.#sections[section], offsets[i] * 4, upload);
      i = j;
    }
  }

  /**
   * Copies, on the GPU, the params of tensors `sources` (layout index → a range of another
   * state's buffers on this device) into their slots (at init: they are this state's own after).
   */
  copyParamsFrom(sources: ReadonlyMap<number, GpuTensor>): void {
    const encoder = this.#device.createCommandEncoder();
    for (const [i, t] of sources) {
      if (t.length === 0) continue;
      const at = this.#layout.offsets[i] * 4;
      encoder.copyBufferToBuffer(t.buffer, t.offset, this.#sections[PARAMS], at, t.size);
    }
    this.#device.queue.submit([encoder.finish()]);
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

  /** Frees the readback buffers of the snapshots not yet read (they then fail). */
  destroy(): void {
    for (const b of this.#readbacks) b.destroy();
    this.#readbacks.clear();
  }

  /** Encodes masked tensor copies (`inPlaceReads` or `inPlaceWrites`) in one compute pass. */
  #encodeCopies(encoder: GPUCommandEncoder, copies: readonly Dispatch[]): void {
    if (copies.length === 0) return;
    const pass = encoder.beginComputePass();
    dispatchEach(pass, this.#caller.copyTensor, copies);
    pass.end();
  }
}
