/**
 * The WebGPU backend: the arena lives in GPU buffers, one per section (params, grads, exp_avg,
 * exp_avg_sq), each tensor at the same 256-byte-aligned offset in every section, so that every
 * tensor slot is a `GPUBufferBinding` a forward or backward pass can bind directly.
 *
 * A step writes the host's float64 scalars (rounded to f32) into one uniform buffer with
 * `queue.writeBuffer`, encodes any pending gradient copies, one dispatch per binding-sized
 * chunk of the arena (one dispatch in all when the arena's sections fit one storage binding,
 * as every model below `maxStorageBufferBindingSize / 4` parameters does), and submits. No
 * buffer or bind group is created per step.
 *
 * @module
 */
import { type ArenaLayout, EXP_AVG, EXP_AVG_SQ, GRADS, PARAMS } from "../core/arena.ts";
import type { Backend } from "../core/backend.ts";
import type { StepScalars } from "../core/scalars.ts";
import { dispatchGrid, SCALARS_BYTES, STEP_KERNEL_WGSL, WORKGROUP_SIZE } from "./wgsl_kernel.ts";
import { checkGpuGrads, type GpuTensor } from "./gpu_tensors.ts";

/** Storage-binding offset alignment that every WebGPU device supports (and the default). */
const ALIGN_BYTES = 256;
const ALIGN_ELEMENTS = ALIGN_BYTES / 4;
/** Largest staging buffer used for readback. */
const STAGING_BYTES = 16 * 1024 * 1024;

/** Limits the backend plans with; tests lower them to exercise splitting at small sizes. */
export interface GpuPlanLimits {
  /** Bytes of one storage binding (a chunk of a section). */
  maxStorageBufferBindingSize: number;
  /** Bytes of one buffer (a section). */
  maxBufferSize: number;
  /** Workgroups per dispatch dimension. */
  maxComputeWorkgroupsPerDimension: number;
}

/** The GPU arena layout: tensors at 64-element (256-byte) aligned offsets. */
export function planGpuArena(names: readonly string[], lengths: readonly number[]): ArenaLayout {
  const offsets: number[] = [];
  let end = 0;
  for (const length of lengths) {
    const offset = Math.ceil(end / ALIGN_ELEMENTS) * ALIGN_ELEMENTS;
    offsets.push(offset);
    end = offset + length;
  }
  const sectionLength = Math.max(ALIGN_ELEMENTS, Math.ceil(end / ALIGN_ELEMENTS) * ALIGN_ELEMENTS);
  return {
    names,
    lengths,
    offsets,
    total: end,
    sectionLength,
    sectionCount: 4,
    segments: [],
    segmentTableOffset: sectionLength * 16,
    byteLength: sectionLength * 16,
  };
}

interface Pipeline {
  pipeline: GPUComputePipeline;
  layout: GPUBindGroupLayout;
}

const pipelines = new WeakMap<GPUDevice, Promise<Pipeline>>();

/** The step pipeline of a device, compiled once per device (a pipeline cache). */
function stepPipeline(device: GPUDevice): Promise<Pipeline> {
  let cached = pipelines.get(device);
  if (!cached) {
    cached = (async () => {
      const layout = device.createBindGroupLayout({
        entries: [
          { binding: 0, visibility: GPUShaderStage.COMPUTE, buffer: { type: "storage" } },
          {
            binding: 1,
            visibility: GPUShaderStage.COMPUTE,
            buffer: { type: "read-only-storage" },
          },
          { binding: 2, visibility: GPUShaderStage.COMPUTE, buffer: { type: "storage" } },
          { binding: 3, visibility: GPUShaderStage.COMPUTE, buffer: { type: "storage" } },
          { binding: 4, visibility: GPUShaderStage.COMPUTE, buffer: { type: "uniform" } },
          { binding: 5, visibility: GPUShaderStage.COMPUTE, buffer: { type: "uniform" } },
        ],
      });
      const module = device.createShaderModule({ code: STEP_KERNEL_WGSL });
      const pipeline = await device.createComputePipelineAsync({
        layout: device.createPipelineLayout({ bindGroupLayouts: [layout] }),
        compute: { module, entryPoint: "step" },
      });
      return { pipeline, layout };
    })();
    pipelines.set(device, cached);
    cached.catch(() => pipelines.delete(device));
  }
  return cached;
}

interface Chunk {
  bindGroup: GPUBindGroup;
  grid: [number, number];
}

/** A parameter tensor the caller owns: copied into the arena at init, back after each step. */
interface External {
  index: number;
  slot: GpuTensor;
}

/** The WebGPU backend of one state. */
export class WebGpuBackend implements Backend<GpuTensor> {
  readonly name = "webgpu" as const;
  readonly params: Readonly<Record<string, GpuTensor>>;
  readonly grads: Readonly<Record<string, GpuTensor>>;
  readonly #device: GPUDevice;
  readonly #sections: GPUBuffer[];
  readonly #gradSlots: GpuTensor[];
  readonly #scalarBuffer: GPUBuffer;
  readonly #scalarData = new ArrayBuffer(SCALARS_BYTES);
  readonly #scalarF32 = new Float32Array(this.#scalarData);
  readonly #scalarU32 = new Uint32Array(this.#scalarData);
  readonly #pipeline: GPUComputePipeline;
  readonly #chunks: Chunk[];
  readonly #externals: External[];
  /** GPU-side gradient copies waiting for the next `update` (reused array). */
  readonly #pendingCopies: GpuTensor[] = [];
  readonly #pendingTargets: number[] = [];
  #staging: GPUBuffer | undefined;
  #reads: Promise<unknown> = Promise.resolve();
  #lost: GPUDeviceLostInfo | undefined;

  constructor(
    device: GPUDevice,
    readonly layout: ArenaLayout,
    pipeline: Pipeline,
    limits: GpuPlanLimits,
    externalParams: ReadonlyMap<number, GpuTensor>,
  ) {
    this.#device = device;
    this.#pipeline = pipeline.pipeline;
    device.lost.then((info) => this.#lost = info);
    const sectionBytes = layout.sectionLength * 4;
    if (sectionBytes > limits.maxBufferSize) {
      throw new RangeError(
        `The model's ${layout.total} parameters need ${sectionBytes}-byte buffers; this device allows ${limits.maxBufferSize} (maxBufferSize)`,
      );
    }
    const usage = GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST;
    const labels = ["radam params", "radam grads", "radam exp_avg", "radam exp_avg_sq"];
    this.#sections = labels.map((label) =>
      device.createBuffer({ label, size: sectionBytes, usage })
    );
    const slots = (section: number) => {
      const out: Record<string, GpuTensor> = {};
      layout.names.forEach((name, i) => {
        out[name] = Object.freeze({
          buffer: this.#sections[section],
          offset: layout.offsets[i] * 4,
          size: layout.lengths[i] * 4,
          length: layout.lengths[i],
        });
      });
      return out;
    };
    const params = slots(PARAMS);
    this.#externals = [];
    for (const [index, slot] of externalParams) {
      this.#externals.push({ index, slot });
      params[layout.names[index]] = slot;
    }
    this.params = Object.freeze(params);
    this.grads = Object.freeze(slots(GRADS));
    this.#gradSlots = layout.names.map((n) => this.grads[n]);
    this.#scalarBuffer = device.createBuffer({
      label: "radam scalars",
      size: SCALARS_BYTES,
      usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST,
    });
    // Chunks: the largest 256-byte multiple a binding allows.
    const chunkElements = Math.floor(limits.maxStorageBufferBindingSize / ALIGN_BYTES) *
      ALIGN_ELEMENTS;
    const chunkCount = Math.max(1, Math.ceil(layout.total / chunkElements));
    const uniformStride = Math.max(ALIGN_BYTES, device.limits.minUniformBufferOffsetAlignment);
    const chunkInfo = device.createBuffer({
      label: "radam chunks",
      size: uniformStride * chunkCount,
      usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST,
    });
    const counts = new Uint32Array(chunkCount * uniformStride / 4);
    this.#chunks = [];
    for (let c = 0; c < chunkCount; c++) {
      const start = c * chunkElements;
      const count = Math.max(0, Math.min(chunkElements, layout.total - start));
      counts[c * uniformStride / 4] = count;
      const size = Math.max(16, Math.ceil(count / 4) * 16);
      const section = (k: number) => ({ buffer: this.#sections[k], offset: start * 4, size });
      const bindGroup = device.createBindGroup({
        layout: pipeline.layout,
        entries: [
          { binding: 0, resource: section(PARAMS) },
          { binding: 1, resource: section(GRADS) },
          { binding: 2, resource: section(EXP_AVG) },
          { binding: 3, resource: section(EXP_AVG_SQ) },
          { binding: 4, resource: { buffer: this.#scalarBuffer } },
          { binding: 5, resource: { buffer: chunkInfo, offset: c * uniformStride, size: 16 } },
        ],
      });
      const groups = Math.ceil(Math.ceil(count / 4) / WORKGROUP_SIZE);
      this.#chunks.push({
        bindGroup,
        grid: dispatchGrid(groups, limits.maxComputeWorkgroupsPerDimension),
      });
    }
    device.queue.writeBuffer(chunkInfo, 0, counts);
    if (this.#externals.length > 0) {
      const encoder = device.createCommandEncoder();
      for (const { index, slot } of this.#externals) {
        encoder.copyBufferToBuffer(
          slot.buffer,
          slot.offset,
          this.#sections[PARAMS],
          layout.offsets[index] * 4,
          layout.lengths[index] * 4,
        );
      }
      device.queue.submit([encoder.finish()]);
    }
  }

  /** The number of dispatches a step makes (1 unless the arena exceeds one binding). */
  get dispatchCount(): number {
    return this.#chunks.length;
  }

  /** The workgroup grid of each dispatch. */
  get grids(): readonly (readonly [number, number])[] {
    return this.#chunks.map((c) => c.grid);
  }

  checkUsable(): void {
    if (this.#lost) {
      throw new Error(
        `The WebGPU device of this optimizer state was lost (${this.#lost.reason}: ${this.#lost.message}); ` +
          "the state can no longer step or be read. To resume, init a new state on a new device from " +
          "the last parameters you read back (readParams/readMoments) or from your last checkpoint",
      );
    }
  }

  checkGrads(grads: unknown): void {
    checkGpuGrads(grads, this.layout.names, this.layout.lengths);
  }

  loadGrads(grads: Float32Array | GpuTensor | GPUBuffer | Readonly<Record<string, unknown>>): void {
    if (grads === this.grads) return;
    if (isSingle(grads)) {
      this.#loadOne(0, grads);
      return;
    }
    const record = grads as Readonly<Record<string, unknown>>;
    const names = this.layout.names;
    for (let i = 0; i < names.length; i++) this.#loadOne(i, record[names[i]]);
  }

  #loadOne(i: number, value: unknown): void {
    const slot = this.#gradSlots[i];
    if (value === slot) return;
    if (value instanceof Float32Array) {
      // (a zero-length writeBuffer panics Deno 2.9's WebGPU)
      if (value.length > 0) {
        this.#device.queue.writeBuffer(
          slot.buffer,
          slot.offset,
          value as Float32Array<ArrayBuffer>,
        );
      }
      return;
    }
    const source = value instanceof GPUBuffer
      ? {
        buffer: value,
        offset: 0,
        size: this.layout.lengths[i] * 4,
        length: this.layout.lengths[i],
      }
      : value as GpuTensor;
    if (this.layout.lengths[i] === 0) return;
    this.#pendingCopies.push(source);
    this.#pendingTargets.push(i);
  }

  update(scalars: StepScalars): void {
    this.checkUsable();
    const f = this.#scalarF32;
    f[0] = scalars.gradScale;
    f[1] = scalars.coupledDecay;
    f[2] = scalars.beta1;
    f[3] = scalars.oneMinusBeta1;
    f[4] = scalars.beta2;
    f[5] = scalars.oneMinusBeta2;
    f[6] = scalars.paramDecay;
    f[7] = scalars.stepSize;
    f[8] = scalars.eps;
    this.#scalarU32[9] = scalars.mode >>> 0;
    const device = this.#device;
    device.queue.writeBuffer(this.#scalarBuffer, 0, this.#scalarF32);
    const encoder = device.createCommandEncoder();
    const layout = this.layout;
    for (let k = 0; k < this.#pendingCopies.length; k++) {
      const src = this.#pendingCopies[k];
      const i = this.#pendingTargets[k];
      encoder.copyBufferToBuffer(
        src.buffer,
        src.offset ?? 0,
        this.#sections[GRADS],
        layout.offsets[i] * 4,
        layout.lengths[i] * 4,
      );
    }
    this.#pendingCopies.length = 0;
    this.#pendingTargets.length = 0;
    const pass = encoder.beginComputePass();
    pass.setPipeline(this.#pipeline);
    for (const chunk of this.#chunks) {
      pass.setBindGroup(0, chunk.bindGroup);
      pass.dispatchWorkgroups(chunk.grid[0], chunk.grid[1]);
    }
    pass.end();
    for (const { index, slot } of this.#externals) {
      encoder.copyBufferToBuffer(
        this.#sections[PARAMS],
        layout.offsets[index] * 4,
        slot.buffer,
        slot.offset,
        layout.lengths[index] * 4,
      );
    }
    device.queue.submit([encoder.finish()]);
  }

  readSection(section: number): Promise<Record<string, Float32Array>> {
    try {
      this.checkUsable();
    } catch (error) {
      return Promise.reject(error);
    }
    // One staging buffer, reused: reads run one after another.
    const read = this.#reads.then(() => this.#read(section));
    this.#reads = read.catch(() => {});
    return read;
  }

  async #read(section: number): Promise<Record<string, Float32Array>> {
    this.checkUsable();
    const device = this.#device;
    const bytes = Math.ceil(this.layout.total / 4) * 16;
    const all = new Float32Array(bytes / 4);
    const chunk = Math.min(STAGING_BYTES, bytes);
    this.#staging ??= device.createBuffer({
      label: "radam staging",
      size: Math.max(16, chunk),
      usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST,
    });
    const staging = this.#staging;
    for (let offset = 0; offset < bytes; offset += staging.size) {
      const size = Math.min(staging.size, bytes - offset);
      const encoder = device.createCommandEncoder();
      encoder.copyBufferToBuffer(this.#sections[section], offset, staging, 0, size);
      device.queue.submit([encoder.finish()]);
      await staging.mapAsync(GPUMapMode.READ, 0, size);
      all.set(new Float32Array(staging.getMappedRange(0, size)), offset / 4);
      staging.unmap();
    }
    this.checkUsable();
    const out: Record<string, Float32Array> = {};
    this.layout.names.forEach((name, i) => {
      const start = this.layout.offsets[i];
      out[name] = all.slice(start, start + this.layout.lengths[i]);
    });
    return out;
  }

  writeSection(section: number, data: Readonly<Record<string, Float32Array>>): void {
    this.checkUsable();
    const buffer = this.#sections[section];
    this.layout.names.forEach((name, i) => {
      if (data[name].length === 0) return;
      this.#device.queue.writeBuffer(
        buffer,
        this.layout.offsets[i] * 4,
        data[name] as Float32Array<ArrayBuffer>,
      );
    });
    if (section === PARAMS && this.#externals.length > 0) {
      const encoder = this.#device.createCommandEncoder();
      for (const { index, slot } of this.#externals) {
        encoder.copyBufferToBuffer(
          buffer,
          this.layout.offsets[index] * 4,
          slot.buffer,
          slot.offset,
          this.layout.lengths[index] * 4,
        );
      }
      this.#device.queue.submit([encoder.finish()]);
    }
  }

  /** Uploads host params of some tensors (at init; the others come from caller buffers). */
  writeHostParams(data: Readonly<Record<string, Float32Array>>): void {
    this.layout.names.forEach((name, i) => {
      const array = data[name];
      if (array?.length) {
        this.#device.queue.writeBuffer(
          this.#sections[PARAMS],
          this.layout.offsets[i] * 4,
          array as Float32Array<ArrayBuffer>,
        );
      }
    });
  }

  /** Frees the GPU buffers (the state can no longer be used). */
  destroy(): void {
    for (const b of this.#sections) b.destroy();
    this.#scalarBuffer.destroy();
    this.#staging?.destroy();
  }
}

function isSingle(x: unknown): boolean {
  return x instanceof Float32Array ||
    (typeof GPUBuffer !== "undefined" && x instanceof GPUBuffer) ||
    (typeof x === "object" && x !== null && "buffer" in x &&
      typeof GPUBuffer !== "undefined" && (x as GpuTensor).buffer instanceof GPUBuffer);
}

/** Makes the WebGPU backend of a layout on `device`. */
export async function createWebGpuBackend(
  device: GPUDevice,
  layout: ArenaLayout,
  options: { limits?: Partial<GpuPlanLimits>; externalParams?: ReadonlyMap<number, GpuTensor> } =
    {},
): Promise<WebGpuBackend> {
  const limits: GpuPlanLimits = {
    maxStorageBufferBindingSize: options.limits?.maxStorageBufferBindingSize ??
      device.limits.maxStorageBufferBindingSize,
    maxBufferSize: options.limits?.maxBufferSize ?? device.limits.maxBufferSize,
    maxComputeWorkgroupsPerDimension: options.limits?.maxComputeWorkgroupsPerDimension ??
      device.limits.maxComputeWorkgroupsPerDimension,
  };
  const pipeline = await stepPipeline(device);
  return new WebGpuBackend(device, layout, pipeline, limits, options.externalParams ?? new Map());
}

/**
 * A device with the adapter's largest buffer and binding limits, or a clear error when this
 * runtime has no WebGPU adapter (never a silent fallback).
 */
export async function requestLargeDevice(): Promise<GPUDevice> {
  const gpu = (globalThis.navigator as { gpu?: GPU } | undefined)?.gpu;
  if (!gpu) {
    throw new Error(
      'The webgpu backend was requested but this runtime has no WebGPU (navigator.gpu is missing); use backend "auto" or "wasm", or pass a device',
    );
  }
  const adapter = await gpu.requestAdapter();
  if (!adapter) {
    throw new Error(
      'The webgpu backend was requested but no WebGPU adapter was found; use backend "auto" or "wasm", or pass a device',
    );
  }
  return await adapter.requestDevice({
    requiredLimits: {
      maxStorageBufferBindingSize: adapter.limits.maxStorageBufferBindingSize,
      maxBufferSize: adapter.limits.maxBufferSize,
      maxComputeWorkgroupsPerDimension: adapter.limits.maxComputeWorkgroupsPerDimension,
    },
  });
}
