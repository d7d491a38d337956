/**
 * The WebGPU backend: the arena lives in GPU buffers, one per section (params, grads, exp_avg,
 * exp_avg_sq, and LookAhead's slow weights), each tensor at the same 256-byte-aligned offset in
 * every section, so that every tensor slot is a `GPUBufferBinding` a forward or backward pass
 * can bind directly.
 *
 * The device keeps the step counts (a step with a non-finite gradient is skipped or halts the
 * state there, and must not advance t), so the host's float64 scalars (rounded to f32) of each
 * t are written ahead into a ring buffer, tagged with t, that the kernels index by the device's
 * count. A step writes at most one ring entry with `queue.writeBuffer`, encodes any pending
 * gradient copies, then one compute pass: the gradient-norm passes (with `clipGradNorm` or the
 * non-finite check), one centralization dispatch per rank > 1 tensor (with `gc`), the step
 * dispatches, and a one-invocation dispatch that counts the step; then it submits, with a copy of the counters
 * for an asynchronous readback when none is in flight. No buffer or bind group is created per
 * step (a tensor's centralization bind group is made at its first step).
 *
 * The step dispatches cover the tensors whose params the arena holds, one per binding-sized
 * chunk of each run of consecutive such tensors (one in all when every param is in the arena
 * and the sections fit one storage binding, as every model below
 * `maxStorageBufferBindingSize / 4` parameters does), plus, for each param updated in place in
 * a caller's buffer, one per binding-sized chunk of it: binding 0 is the caller's buffer range,
 * the other sections are bound at the tensor's arena offset (zero copy).
 *
 * @module
 */
import {
  type ArenaLayout,
  EXP_AVG,
  EXP_AVG_SQ,
  GRADS,
  PARAMS,
  SECTION_COUNT,
  SEGMENT_ROW_BYTES,
  SLOW,
} from "../core/arena.ts";
import type { Backend, DeviceCounter } from "../core/backend.ts";
import type { NonFinitePolicy } from "../core/options.ts";
import type { StepScalars } from "../core/scalars.ts";
import { label } from "../core/tensors.ts";
import {
  CENTRALIZE_KERNEL_WGSL,
  CENTRALIZE_UNIFORM_BYTES,
  CONSTS_BYTES,
  CONTROL_BYTES,
  COPY_TENSOR_WGSL,
  COUNTER_WORDS,
  COUNTERS_OFFSET,
  dispatchGrid,
  FINALIZE_KERNEL_WGSL,
  GRAD_NORM_PARTIAL_WGSL,
  GRAD_NORM_TOTAL_WGSL,
  NORM_ELEMENTS_PER_WORKGROUP,
  RING_SIZE,
  RING_TAG_WORD,
  ringStride,
  STEP_KERNEL_WGSL,
  WORKGROUP_SIZE,
} from "./wgsl_kernel.ts";
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

/**
 * The GPU arena layout: tensors at 64-element (256-byte) aligned offsets; a fifth (slow
 * weights) section with `slow`, and with `groups` (each tensor's group, as `groupsOf` in
 * core/state.ts gives it) the parameter-group runs, as `planArena` in core/arena.ts makes them.
 */
export function planGpuArena(
  names: readonly string[],
  lengths: readonly number[],
  options: { slow?: boolean; groups?: readonly number[] } = {},
): ArenaLayout {
  const offsets: number[] = [];
  let end = 0;
  for (const length of lengths) {
    const offset = Math.ceil(end / ALIGN_ELEMENTS) * ALIGN_ELEMENTS;
    offsets.push(offset);
    end = offset + length;
  }
  const sectionLength = Math.max(ALIGN_ELEMENTS, Math.ceil(end / ALIGN_ELEMENTS) * ALIGN_ELEMENTS);
  const segments: { start: number; end: number; group: number }[] = [];
  const groups = options.groups;
  if (groups) {
    for (let i = 0; i < lengths.length; i++) {
      const last = segments[segments.length - 1];
      if (last && last.group === groups[i]) last.end = offsets[i] + lengths[i];
      else segments.push({ start: offsets[i], end: offsets[i] + lengths[i], group: groups[i] });
    }
  }
  const sectionCount = options.slow ? SECTION_COUNT + 1 : SECTION_COUNT;
  const segmentTableOffset = sectionLength * 4 * sectionCount;
  return {
    names,
    lengths,
    offsets,
    total: end,
    sectionLength,
    sectionCount,
    sectionOffsets: new Array<number>(sectionCount).fill(0),
    segments,
    segmentTableOffset,
    byteLength: segmentTableOffset + segments.length * SEGMENT_ROW_BYTES,
  };
}

interface Pipeline {
  pipeline: GPUComputePipeline;
  layout: GPUBindGroupLayout;
  centralize: GPUComputePipeline;
  centralizeLayout: GPUBindGroupLayout;
  normPartial: GPUComputePipeline;
  normPartialLayout: GPUBindGroupLayout;
  normTotal: GPUComputePipeline;
  normTotalLayout: GPUBindGroupLayout;
  finalize: GPUComputePipeline;
  finalizeLayout: GPUBindGroupLayout;
  copyTensor: GPUComputePipeline;
  copyTensorLayout: GPUBindGroupLayout;
}

const pipelines = new WeakMap<GPUDevice, Promise<Pipeline>>();
/** The pipelines of a device once compiled (by either path). */
const compiledPipelines = new WeakMap<GPUDevice, Pipeline>();

/** Compiles one compute pipeline: asynchronously, or synchronously (a state made in a sync call). */
type Compile = (
  descriptor: GPUComputePipelineDescriptor,
) => GPUComputePipeline | Promise<GPUComputePipeline>;

/** The bind group layouts and pipeline descriptors of the step (the same for both paths). */
function pipelineParts(device: GPUDevice) {
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
      { binding: 6, visibility: GPUShaderStage.COMPUTE, buffer: { type: "storage" } },
      {
        binding: 7,
        visibility: GPUShaderStage.COMPUTE,
        buffer: { type: "read-only-storage" },
      },
      {
        binding: 8,
        visibility: GPUShaderStage.COMPUTE,
        buffer: { type: "read-only-storage" },
      },
      {
        binding: 9,
        visibility: GPUShaderStage.COMPUTE,
        buffer: { type: "read-only-storage" },
      },
    ],
  });
  const module = device.createShaderModule({ code: STEP_KERNEL_WGSL });
  const centralizeLayout = device.createBindGroupLayout({
    entries: [
      { binding: 0, visibility: GPUShaderStage.COMPUTE, buffer: { type: "storage" } },
      { binding: 1, visibility: GPUShaderStage.COMPUTE, buffer: { type: "uniform" } },
    ],
  });
  const readOnly = { type: "read-only-storage" } as const;
  const normPartialLayout = device.createBindGroupLayout({
    entries: [
      { binding: 0, visibility: GPUShaderStage.COMPUTE, buffer: readOnly },
      { binding: 1, visibility: GPUShaderStage.COMPUTE, buffer: { type: "uniform" } },
      { binding: 2, visibility: GPUShaderStage.COMPUTE, buffer: { type: "storage" } },
    ],
  });
  const normTotalLayout = device.createBindGroupLayout({
    entries: [
      { binding: 0, visibility: GPUShaderStage.COMPUTE, buffer: readOnly },
      { binding: 1, visibility: GPUShaderStage.COMPUTE, buffer: { type: "storage" } },
    ],
  });
  const finalizeLayout = device.createBindGroupLayout({
    entries: [
      { binding: 0, visibility: GPUShaderStage.COMPUTE, buffer: { type: "storage" } },
      { binding: 1, visibility: GPUShaderStage.COMPUTE, buffer: readOnly },
      { binding: 2, visibility: GPUShaderStage.COMPUTE, buffer: { type: "uniform" } },
    ],
  });
  const copyTensorLayout = device.createBindGroupLayout({
    entries: [
      { binding: 0, visibility: GPUShaderStage.COMPUTE, buffer: readOnly },
      { binding: 1, visibility: GPUShaderStage.COMPUTE, buffer: { type: "storage" } },
      { binding: 2, visibility: GPUShaderStage.COMPUTE, buffer: { type: "uniform" } },
    ],
  });
  const descriptor = (
    code: string | GPUShaderModule,
    entryPoint: string,
    layout: GPUBindGroupLayout,
  ) => ({
    layout: device.createPipelineLayout({ bindGroupLayouts: [layout] }),
    compute: {
      module: typeof code === "string" ? device.createShaderModule({ code }) : code,
      entryPoint,
    },
  });
  const layouts = {
    layout,
    centralizeLayout,
    normPartialLayout,
    normTotalLayout,
    finalizeLayout,
    copyTensorLayout,
  };
  const descriptors = [
    descriptor(module, "step", layout),
    descriptor(CENTRALIZE_KERNEL_WGSL, "centralize", centralizeLayout),
    descriptor(GRAD_NORM_PARTIAL_WGSL, "partial", normPartialLayout),
    descriptor(GRAD_NORM_TOTAL_WGSL, "total", normTotalLayout),
    descriptor(FINALIZE_KERNEL_WGSL, "finalize", finalizeLayout),
    descriptor(COPY_TENSOR_WGSL, "copy_tensor", copyTensorLayout),
  ];
  return { layouts, descriptors };
}

function assemble(
  layouts: ReturnType<typeof pipelineParts>["layouts"],
  compiled: GPUComputePipeline[],
): Pipeline {
  const [pipeline, centralize, normPartial, normTotal, finalize, copyTensor] = compiled;
  return { ...layouts, pipeline, centralize, normPartial, normTotal, finalize, copyTensor };
}

/** The step pipeline of a device, compiled once per device (a pipeline cache). */
function stepPipeline(device: GPUDevice): Promise<Pipeline> {
  const ready = compiledPipelines.get(device);
  if (ready) return Promise.resolve(ready);
  let cached = pipelines.get(device);
  if (!cached) {
    cached = (async () => {
      const { layouts, descriptors } = pipelineParts(device);
      const compile: Compile = (d) => device.createComputePipelineAsync(d);
      const done = assemble(layouts, await Promise.all(descriptors.map(compile)));
      compiledPipelines.set(device, done);
      return done;
    })();
    pipelines.set(device, cached);
    cached.catch(() => pipelines.delete(device));
  }
  return cached;
}

/** Compiles the device's pipelines (asynchronously), once per device. */
export async function prepareWebGpu(device: GPUDevice): Promise<void> {
  await stepPipeline(device);
}

/** {@linkcode stepPipeline}, synchronously: the cached pipelines, or compiled now (blocking). */
function stepPipelineSync(device: GPUDevice): Pipeline {
  let ready = compiledPipelines.get(device);
  if (!ready) {
    const { layouts, descriptors } = pipelineParts(device);
    ready = assemble(layouts, descriptors.map((d) => device.createComputePipeline(d)));
    compiledPipelines.set(device, ready);
  }
  return ready;
}

/** One dispatch: its bind group and workgroup grid. */
interface Chunk {
  bindGroup: GPUBindGroup;
  grid: [number, number];
}

/** An element range `[start, start + count)` of the sections, bound as one chunk. */
interface ChunkRange {
  start: number;
  count: number;
}

/** The centralization dispatch of one tensor, made at its first step. */
interface Centralization {
  offset: number;
  bindGroup: GPUBindGroup;
  grid: [number, number];
  uniform: GPUBuffer;
}

/**
 * A parameter tensor the caller owns that cannot be bound in place (see `placeGpuParams` in
 * gpu_tensors.ts): copied into the arena at init, back after each step.
 */
interface External {
  index: number;
  slot: GpuTensor;
}

/** What the device last reported of its step counters (see `Control` in the WGSL). */
interface Reported {
  submitted: number;
  taken: number;
  skipped: number;
  norm: number;
}

/** The WebGPU backend of one state. */
export class WebGpuBackend implements Backend<GpuTensor>, DeviceCounter {
  readonly name = "webgpu" as const;
  readonly params: Readonly<Record<string, GpuTensor>>;
  readonly grads: Readonly<Record<string, GpuTensor>>;
  readonly #device: GPUDevice;
  readonly #sections: GPUBuffer[];
  readonly #gradSlots: GpuTensor[];
  readonly #constsBuffer: GPUBuffer;
  /** The ring of per-step scalars (see `ringStride` in wgsl_kernel.ts), and its host mirror. */
  readonly #ring: GPUBuffer;
  readonly #ringStride: number;
  readonly #ringTags = new Float64Array(RING_SIZE).fill(-1);
  readonly #entryF32: Float32Array<ArrayBuffer>;
  readonly #entryU32: Uint32Array<ArrayBuffer>;
  /**
   * The gradient norm and the device-side counters (`Control` in the WGSL), the staging buffer
   * the counters are read back through, and the readback in flight.
   */
  readonly #control: GPUBuffer;
  readonly #countersStaging: GPUBuffer;
  #readback: Promise<void> | undefined;
  /** Why the last readback failed, if the device was not lost (settle reports it). */
  #readbackError: unknown;
  readonly #reported: Reported = { submitted: 0, taken: 0, skipped: 0, norm: NaN };
  /** Steps submitted since `start`. */
  #submitted = 0;
  /** Submissions up to this one are known not to count (a halt was reported and cleared). */
  #countedFrom = 0;
  /** The halt last reported, until `takeFault` hands it out. */
  #fault: Error | undefined;
  readonly #finalizePipeline: GPUComputePipeline;
  readonly #finalizeBindGroup: GPUBindGroup;
  /** Whether the gradient-norm passes run (clipping, or the non-finite check). */
  readonly #normComputed: boolean;
  readonly #pipeline: GPUComputePipeline;
  readonly #normPartialPipeline: GPUComputePipeline;
  readonly #normTotalPipeline: GPUComputePipeline;
  readonly #normTotalBindGroup: GPUBindGroup;
  readonly #centralizePipeline: GPUComputePipeline;
  readonly #centralizeLayout: GPUBindGroupLayout;
  readonly #limits: GpuPlanLimits;
  /** The step dispatches (see the module doc). */
  readonly #chunks: Chunk[];
  /** The first pass of the gradient norm: binding-sized chunks of the whole grads section. */
  readonly #normChunks: Chunk[];
  /** Per-tensor centralization dispatches, by element offset (made once, at the first step). */
  readonly #centralizations = new Map<number, Centralization>();
  /** Centralizations requested for the next `update` (reused array). */
  readonly #pendingCentralize: Centralization[] = [];
  /** Buffers bound in place of absent sections (slow weights, segment table). */
  readonly #extraBuffers: GPUBuffer[] = [];
  readonly #segmentBuffer: GPUBuffer;
  readonly #externals: External[];
  readonly #copyTensorPipeline: GPUComputePipeline;
  /** Masked copies of the params updated in place, caller's buffer → the arena's params slot. */
  readonly #inPlaceReads: Chunk[] = [];
  /** Masked copies of the params updated in place, the arena's params slot → caller's buffer. */
  readonly #inPlaceWrites: Chunk[] = [];
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
    clipGradNorm?: number,
    nonFinite: NonFinitePolicy = "propagate",
    inPlaceParams: ReadonlyMap<number, GpuTensor> = new Map(),
  ) {
    this.#device = device;
    this.#finalizePipeline = pipeline.finalize;
    this.#pipeline = pipeline.pipeline;
    this.#normPartialPipeline = pipeline.normPartial;
    this.#normTotalPipeline = pipeline.normTotal;
    this.#centralizePipeline = pipeline.centralize;
    this.#centralizeLayout = pipeline.centralizeLayout;
    this.#copyTensorPipeline = pipeline.copyTensor;
    this.#limits = limits;
    device.lost.then((info) => this.#lost = info);
    const sectionBytes = layout.sectionLength * 4;
    if (sectionBytes > limits.maxBufferSize) {
      throw new RangeError(
        `The model's ${layout.total} parameters need ${sectionBytes}-byte buffers; this device allows ${limits.maxBufferSize} (maxBufferSize)`,
      );
    }
    const usage = GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST;
    const labels = [
      "radam params",
      "radam grads",
      "radam exp_avg",
      "radam exp_avg_sq",
      "radam slow",
    ]
      .slice(0, layout.sectionCount);
    this.#sections = labels.map((label) =>
      device.createBuffer({ label, size: sectionBytes, usage })
    );
    const storage = GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST;
    const slowBuffer = layout.sectionCount > SLOW
      ? undefined
      : device.createBuffer({ label: "radam no slow weights", size: 16, usage: storage });
    if (slowBuffer) this.#extraBuffers.push(slowBuffer);
    // The segment table (parameter groups): start, end and group of each run, 8 words a row.
    const segmentCount = layout.segments.length;
    const segmentInts = new Uint32Array(segmentCount * (SEGMENT_ROW_BYTES / 4));
    let groupCount = 0;
    layout.segments.forEach((seg, k) => {
      segmentInts[k * 8] = seg.start;
      segmentInts[k * 8 + 1] = seg.end;
      segmentInts[k * 8 + 2] = seg.group;
      groupCount = Math.max(groupCount, seg.group + 1);
    });
    this.#segmentBuffer = device.createBuffer({
      label: "radam segments",
      size: Math.max(1, segmentCount) * SEGMENT_ROW_BYTES,
      usage: storage,
    });
    this.#extraBuffers.push(this.#segmentBuffer);
    if (segmentCount > 0) device.queue.writeBuffer(this.#segmentBuffer, 0, segmentInts);
    // The ring of per-step scalars, and the counters the device keeps.
    this.#ringStride = ringStride(groupCount);
    const ringEntry = new ArrayBuffer(this.#ringStride * 4);
    this.#entryF32 = new Float32Array(ringEntry);
    this.#entryU32 = new Uint32Array(ringEntry);
    this.#ring = device.createBuffer({
      label: "radam step scalars",
      size: RING_SIZE * this.#ringStride * 4,
      usage: storage,
    });
    this.#extraBuffers.push(this.#ring);
    this.#control = device.createBuffer({
      label: "radam grad norm and step counters",
      size: CONTROL_BYTES,
      usage: storage | GPUBufferUsage.COPY_SRC,
    });
    this.#extraBuffers.push(this.#control);
    this.#countersStaging = device.createBuffer({
      label: "radam step counters readback",
      size: COUNTER_WORDS * 4,
      usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST,
    });
    this.#extraBuffers.push(this.#countersStaging);
    const check = nonFinite !== "propagate";
    this.#normComputed = check || clipGradNorm !== undefined;
    const constsData = new ArrayBuffer(CONSTS_BYTES);
    const constsU32 = new Uint32Array(constsData);
    constsU32[0] = segmentCount;
    constsU32[1] = clipGradNorm === undefined ? 0 : 1;
    new Float32Array(constsData)[2] = clipGradNorm ?? 0;
    constsU32[3] = check ? 1 : 0;
    constsU32[4] = nonFinite === "throw" ? 1 : 0;
    constsU32[5] = RING_SIZE;
    constsU32[6] = this.#ringStride;
    constsU32[7] = this.#normComputed ? 1 : 0;
    this.#constsBuffer = device.createBuffer({
      label: "radam constants",
      size: CONSTS_BYTES,
      usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST,
    });
    this.#extraBuffers.push(this.#constsBuffer);
    device.queue.writeBuffer(this.#constsBuffer, 0, constsData);
    this.#finalizeBindGroup = device.createBindGroup({
      layout: pipeline.finalizeLayout,
      entries: [
        { binding: 0, resource: { buffer: this.#control } },
        { binding: 1, resource: { buffer: this.#ring } },
        { binding: 2, resource: { buffer: this.#constsBuffer } },
      ],
    });
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
    for (const [index, slot] of inPlaceParams) params[layout.names[index]] = slot;
    this.params = Object.freeze(params);
    this.grads = Object.freeze(slots(GRADS));
    this.#gradSlots = layout.names.map((n) => this.grads[n]);
    // Chunks: the largest 256-byte multiple a binding allows.
    const chunkElements = Math.floor(limits.maxStorageBufferBindingSize / ALIGN_BYTES) *
      ALIGN_ELEMENTS;
    const split = (start: number, end: number): ChunkRange[] => {
      const out: ChunkRange[] = [];
      for (let at = start; at < end; at += chunkElements) {
        out.push({ start: at, count: Math.min(chunkElements, end - at) });
      }
      return out;
    };
    // The norm covers every gradient, the arena's own and those of params updated in place.
    const normRanges = split(0, layout.total);
    // The step covers each run of consecutive tensors whose params the arena holds, and each
    // param updated in place on its own (binding 0: the caller's buffer): every element of
    // every tensor in exactly one dispatch (the arena's params slots of the in-place tensors
    // are never stepped; they only stage readback and restore). Runs need the offsets to grow
    // with the index, as planGpuArena lays tensors out.
    const stepRanges: (ChunkRange & { param?: GpuTensor; first: number })[] = [];
    let run: { start: number; end: number } | undefined;
    const runs: { start: number; end: number; param?: GpuTensor }[] = [];
    for (let i = 0; i < layout.names.length; i++) {
      if (layout.lengths[i] === 0) continue;
      const start = layout.offsets[i], end = start + layout.lengths[i];
      const param = inPlaceParams.get(i);
      if (param) {
        runs.push({ start, end, param });
        run = undefined;
      } else if (run) run.end = end;
      else runs.push(run = { start, end });
    }
    for (const r of runs) {
      for (const c of split(r.start, r.end)) {
        stepRanges.push({ ...c, param: r.param, first: r.start });
      }
    }
    const uniformStride = Math.max(ALIGN_BYTES, device.limits.minUniformBufferOffsetAlignment);
    const entryCount = Math.max(1, normRanges.length + stepRanges.length);
    const chunkInfo = device.createBuffer({
      label: "radam chunks",
      size: uniformStride * entryCount,
      usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST,
    });
    const counts = new Uint32Array(entryCount * uniformStride / 4);
    this.#extraBuffers.push(chunkInfo);
    const groupsOf = (count: number) => Math.ceil(Math.ceil(count / 4) / WORKGROUP_SIZE);
    const gridOf = (count: number) =>
      dispatchGrid(groupsOf(count), limits.maxComputeWorkgroupsPerDimension);
    // The first norm pass: one workgroup a NORM_ELEMENTS_PER_WORKGROUP gradients.
    const normGroupsOf = (count: number) => Math.ceil(count / NORM_ELEMENTS_PER_WORKGROUP);
    const normGridOf = (count: number) =>
      dispatchGrid(normGroupsOf(count), limits.maxComputeWorkgroupsPerDimension);
    let partialCount = 0;
    for (const c of normRanges) partialCount += normGroupsOf(c.count);
    const partials = device.createBuffer({
      label: "radam grad norm partials",
      size: Math.max(1, partialCount) * 16,
      usage: GPUBufferUsage.STORAGE,
    });
    this.#extraBuffers.push(partials);
    this.#normTotalBindGroup = device.createBindGroup({
      layout: pipeline.normTotalLayout,
      entries: [
        { binding: 0, resource: { buffer: partials } },
        { binding: 1, resource: { buffer: this.#control, offset: 0, size: 16 } },
      ],
    });
    const sizeOf = (count: number) => Math.max(16, Math.ceil(count / 4) * 16);
    const section = (k: number, c: ChunkRange) => ({
      buffer: this.#sections[k],
      offset: c.start * 4,
      size: sizeOf(c.count),
    });
    let entry = 0;
    /** Writes a chunk's uniform entry (count, start, first partial); its binding. */
    const uniformOf = (c: ChunkRange, partialBase: number) => {
      counts[entry * uniformStride / 4] = c.count;
      counts[entry * uniformStride / 4 + 1] = c.start;
      counts[entry * uniformStride / 4 + 2] = partialBase;
      return { buffer: chunkInfo, offset: uniformStride * entry++, size: 16 };
    };
    this.#normChunks = [];
    let partialBase = 0;
    for (const c of normRanges) {
      const bindGroup = device.createBindGroup({
        layout: pipeline.normPartialLayout,
        entries: [
          { binding: 0, resource: section(GRADS, c) },
          { binding: 1, resource: uniformOf(c, partialBase) },
          { binding: 2, resource: { buffer: partials } },
        ],
      });
      partialBase += normGroupsOf(c.count);
      this.#normChunks.push({ bindGroup, grid: normGridOf(c.count) });
    }
    this.#chunks = [];
    for (const c of stepRanges) {
      const chunk = uniformOf(c, 0);
      // A param updated in place: its caller's buffer range, at the chunk's place in the tensor
      // (a 256-byte multiple past the tensor's aligned offset, so aligned too).
      const p = c.param
        ? {
          buffer: c.param.buffer,
          offset: c.param.offset + (c.start - c.first) * 4,
          size: sizeOf(c.count),
        }
        : section(PARAMS, c);
      const bindGroup = device.createBindGroup({
        layout: pipeline.layout,
        entries: [
          { binding: 0, resource: p },
          { binding: 1, resource: section(GRADS, c) },
          { binding: 2, resource: section(EXP_AVG, c) },
          { binding: 3, resource: section(EXP_AVG_SQ, c) },
          { binding: 4, resource: { buffer: this.#constsBuffer } },
          { binding: 5, resource: chunk },
          { binding: 6, resource: slowBuffer ? { buffer: slowBuffer } : section(SLOW, c) },
          { binding: 7, resource: { buffer: this.#segmentBuffer } },
          { binding: 8, resource: { buffer: this.#control } },
          { binding: 9, resource: { buffer: this.#ring } },
        ],
      });
      const grid = gridOf(c.count);
      this.#chunks.push({ bindGroup, grid });
      if (c.param) {
        const copy = (src: GPUBufferBinding, dst: GPUBufferBinding) => ({
          bindGroup: device.createBindGroup({
            layout: pipeline.copyTensorLayout,
            entries: [
              { binding: 0, resource: src },
              { binding: 1, resource: dst },
              { binding: 2, resource: chunk },
            ],
          }),
          grid,
        });
        this.#inPlaceReads.push(copy(p, section(PARAMS, c)));
        this.#inPlaceWrites.push(copy(section(PARAMS, c), p));
      }
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

  /**
   * The number of step dispatches (1 unless the arena exceeds one binding or params are updated
   * in place).
   */
  get dispatchCount(): number {
    return this.#chunks.length;
  }

  /** The workgroup grid of each step dispatch. */
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

  /**
   * Gradient centralization of one tensor (`rows × cols` elements at element `offset` of the
   * grads section): encoded by the next `update`, before its step, in the same compute pass.
   */
  centralize(offset: number, rows: number, cols: number): void {
    let c = this.#centralizations.get(offset);
    if (!c) {
      const bytes = rows * cols * 4;
      if (bytes > this.#limits.maxStorageBufferBindingSize) {
        throw new RangeError(
          `Gradient centralization of a ${rows} × ${cols} tensor needs a ${bytes}-byte binding; this device allows ${this.#limits.maxStorageBufferBindingSize} (maxStorageBufferBindingSize)`,
        );
      }
      const device = this.#device;
      const uniform = device.createBuffer({
        label: "radam centralize shape",
        size: CENTRALIZE_UNIFORM_BYTES,
        usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST,
      });
      device.queue.writeBuffer(uniform, 0, new Uint32Array([rows, cols, 0, 0]));
      const bindGroup = device.createBindGroup({
        layout: this.#centralizeLayout,
        entries: [
          {
            binding: 0,
            resource: { buffer: this.#sections[GRADS], offset: offset * 4, size: bytes },
          },
          { binding: 1, resource: { buffer: uniform } },
        ],
      });
      c = {
        offset,
        bindGroup,
        grid: dispatchGrid(rows, this.#limits.maxComputeWorkgroupsPerDimension),
        uniform,
      };
      this.#centralizations.set(offset, c);
    }
    this.#pendingCentralize.push(c);
  }

  /**
   * Encodes and submits one step: pending gradient copies, then one compute pass (the
   * gradient-norm passes with clipping or the non-finite check, centralizations, the step
   * dispatches, and the finalize dispatch that counts the step on the device). The kernels read
   * their scalars from the ring entry of the device's t (see `writeScalars`); the argument is
   * not used.
   */
  update(_scalars?: StepScalars): void {
    this.checkUsable();
    const device = this.#device;
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
    if (this.#normComputed) {
      // The global norm of the gradients as given (before centralization), and the first
      // non-finite one, on the GPU.
      dispatchEach(pass, this.#normPartialPipeline, this.#normChunks);
      pass.setPipeline(this.#normTotalPipeline);
      pass.setBindGroup(0, this.#normTotalBindGroup);
      pass.dispatchWorkgroups(1);
    }
    if (this.#pendingCentralize.length > 0) {
      dispatchEach(pass, this.#centralizePipeline, this.#pendingCentralize);
      this.#pendingCentralize.length = 0;
    }
    dispatchEach(pass, this.#pipeline, this.#chunks);
    pass.setPipeline(this.#finalizePipeline);
    pass.setBindGroup(0, this.#finalizeBindGroup);
    pass.dispatchWorkgroups(1);
    pass.end();
    this.#encodeCopyOut(encoder);
    const report = this.#readback === undefined;
    if (report) this.#encodeReadback(encoder);
    device.queue.submit([encoder.finish()]);
    this.#submitted++;
    if (report) this.#startReadback();
  }

  // --- Step counts on the device (DeviceCounter) ---

  /** This backend counts the steps on the device. */
  get counter(): DeviceCounter {
    return this;
  }

  get steps(): number {
    const r = this.#reported;
    return r.taken + this.#submitted - Math.max(r.submitted, this.#countedFrom);
  }

  get skipped(): number {
    return this.#reported.skipped;
  }

  get lastNorm(): number {
    return this.#reported.norm;
  }

  start(steps: number, skipped: number): void {
    const r = this.#reported;
    Object.assign(r, { submitted: 0, taken: steps, skipped, norm: NaN });
    this.#submitted = 0;
    this.#countedFrom = 0;
    this.#fault = undefined;
    this.#ringTags.fill(-1);
    const words = new Uint32Array(COUNTER_WORDS);
    words[1] = steps;
    words[2] = skipped;
    words[5] = 0x7fc00000; // NaN: no norm yet
    this.#device.queue.writeBuffer(this.#control, COUNTERS_OFFSET, words);
  }

  hasScalars(t: number): boolean {
    return this.#ringTags[t % RING_SIZE] === t;
  }

  writeScalars(t: number, s: StepScalars, groups: readonly StepScalars[]): void {
    if (t > 0xffffffff) throw new RangeError("The WebGPU backend counts at most 2³² − 1 steps");
    const f = this.#entryF32;
    const u = this.#entryU32;
    f[0] = s.gradScale;
    f[1] = s.coupledDecay;
    f[2] = s.beta1;
    f[3] = s.oneMinusBeta1;
    f[4] = s.beta2;
    f[5] = s.oneMinusBeta2;
    f[6] = s.paramDecay;
    f[7] = s.stepSize;
    f[8] = s.eps;
    u[9] = s.mode >>> 0;
    u[RING_TAG_WORD] = t;
    u[11] = s.sync !== 0 ? 1 : 0;
    f[12] = s.alpha;
    f[13] = s.gradMix;
    for (let g = 0; 16 + 4 * g < this.#ringStride; g++) {
      f[16 + 4 * g] = groups[g].stepSize;
      f[17 + 4 * g] = groups[g].paramDecay;
      f[18 + 4 * g] = groups[g].coupledDecay;
    }
    const slot = t % RING_SIZE;
    this.#device.queue.writeBuffer(this.#ring, slot * this.#ringStride * 4, this.#entryU32);
    this.#ringTags[slot] = t;
  }

  takeFault(): Error | undefined {
    const fault = this.#fault;
    if (fault) {
      this.#fault = undefined;
      // Steps submitted before this point find the state halted and are not taken; the halt is
      // lifted for the ones after (the write is ordered after them on the queue).
      this.#countedFrom = this.#submitted;
      this.#device.queue.writeBuffer(this.#control, COUNTERS_OFFSET + 12, new Uint32Array([0]));
    }
    return fault;
  }

  async settle(): Promise<void> {
    while (true) {
      this.checkUsable();
      const failed = this.#readbackError;
      if (failed) {
        this.#readbackError = undefined;
        throw new Error("Reading the step counters back from the GPU failed", { cause: failed });
      }
      if (this.#reported.submitted >= this.#submitted) return;
      if (this.#readback === undefined) {
        const encoder = this.#device.createCommandEncoder();
        this.#encodeReadback(encoder);
        this.#device.queue.submit([encoder.finish()]);
        this.#startReadback();
      }
      await this.#readback;
    }
  }

  #encodeReadback(encoder: GPUCommandEncoder): void {
    encoder.copyBufferToBuffer(
      this.#control,
      COUNTERS_OFFSET,
      this.#countersStaging,
      0,
      COUNTER_WORDS * 4,
    );
  }

  #startReadback(): void {
    const staging = this.#countersStaging;
    this.#readback = staging.mapAsync(GPUMapMode.READ).then(
      () => {
        const words = new Uint32Array(staging.getMappedRange().slice(0));
        staging.unmap();
        this.#readback = undefined;
        this.#report(words);
      },
      (error) => {
        // A lost device: checkUsable says so at the next call; anything else, settle rethrows.
        this.#readback = undefined;
        this.#readbackError = error;
      },
    );
  }

  #report(words: Uint32Array): void {
    const r = this.#reported;
    r.submitted = words[0];
    r.taken = words[1];
    r.skipped = words[2];
    r.norm = new Float32Array(words.buffer, 20, 1)[0];
    // A halt not yet handed out, and not one that takeFault already lifted.
    if (words[3] !== 0 && !this.#fault && words[6] > this.#countedFrom) {
      this.#fault = this.#haltError(words[3], words[4], words[6]);
    }
  }

  /**
   * The error of a halt the device reported: `halted` 1 (a non-finite gradient, the first at
   * element `firstBad` of the grads section) or 2 (no scalars for t), at submission `haltedAt`.
   */
  #haltError(halted: number, firstBad: number, haltedAt: number): Error {
    const r = this.#reported;
    const later = this.#submitted - haltedAt;
    const after = later > 0
      ? `, nor ${
        later === 1 ? "the step" : `the ${later} steps`
      } submitted after it before the GPU reported it`
      : "";
    if (halted === 2) {
      return new Error(
        `The WebGPU state stopped at step ${
          r.taken + 1
        }: more than ${RING_SIZE} steps were submitted without a report from the GPU, and some were skipped, so the step's scalars were no longer kept; that step was not taken${after}. Await readParams(state) now and then in long loops`,
      );
    }
    const layout = this.layout;
    let k = layout.names.length - 1;
    while (k > 0 && (layout.offsets[k] > firstBad || layout.lengths[k] === 0)) k--;
    return new RangeError(
      `The gradient of ${label(layout.names[k])} holds NaN or ±Infinity at index ${
        firstBad - layout.offsets[k]
      } (step ${
        r.taken + 1
      }); the step was not taken${after}. WebGPU reports it at the first call after the GPU ran that step`,
    );
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
    await this.settle();
    const fault = this.takeFault();
    if (fault) throw fault;
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
      // Params updated in place: first their current values into the arena's params slots.
      if (section === PARAMS && offset === 0) this.#encodeCopies(encoder, this.#inPlaceReads);
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
    if (section === PARAMS && (this.#externals.length > 0 || this.#inPlaceWrites.length > 0)) {
      const encoder = this.#device.createCommandEncoder();
      this.#encodeCopies(encoder, this.#inPlaceWrites);
      this.#encodeCopyOut(encoder);
      this.#device.queue.submit([encoder.finish()]);
    }
  }

  /**
   * Copies the params into the slow weights (LookAhead's start: slow = params), those updated in
   * place from the caller's buffers.
   */
  copyParamsToSlow(): void {
    if (this.layout.sectionCount <= SLOW) return;
    const encoder = this.#device.createCommandEncoder();
    this.#encodeCopies(encoder, this.#inPlaceReads);
    encoder.copyBufferToBuffer(
      this.#sections[PARAMS],
      0,
      this.#sections[SLOW],
      0,
      this.layout.sectionLength * 4,
    );
    this.#device.queue.submit([encoder.finish()]);
  }

  /** Encodes masked tensor copies (`#inPlaceReads` or `#inPlaceWrites`) in one compute pass. */
  #encodeCopies(encoder: GPUCommandEncoder, copies: readonly Chunk[]): void {
    if (copies.length === 0) return;
    const pass = encoder.beginComputePass();
    dispatchEach(pass, this.#copyTensorPipeline, copies);
    pass.end();
  }

  /** Encodes the copies of the params the arena keeps for a caller's buffer into that buffer. */
  #encodeCopyOut(encoder: GPUCommandEncoder): void {
    for (const { index, slot } of this.#externals) {
      encoder.copyBufferToBuffer(
        this.#sections[PARAMS],
        this.layout.offsets[index] * 4,
        slot.buffer,
        slot.offset,
        this.layout.lengths[index] * 4,
      );
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

  /** `dispose(state)`: frees the GPU buffers (the state can no longer be used). */
  dispose(): void {
    this.destroy();
  }

  /** Frees the GPU buffers (the state can no longer be used). */
  destroy(): void {
    for (const b of this.#sections) b.destroy();
    for (const b of this.#extraBuffers) b.destroy();
    for (const c of this.#centralizations.values()) c.uniform.destroy();
    this.#staging?.destroy();
  }
}

/** Sets `pipeline`, then one dispatch per bind group and grid. */
function dispatchEach(
  pass: GPUComputePassEncoder,
  pipeline: GPUComputePipeline,
  dispatches: readonly { bindGroup: GPUBindGroup; grid: readonly [number, number] }[],
): void {
  pass.setPipeline(pipeline);
  for (const d of dispatches) {
    pass.setBindGroup(0, d.bindGroup);
    pass.dispatchWorkgroups(d.grid[0], d.grid[1]);
  }
}

function isSingle(x: unknown): boolean {
  return x instanceof Float32Array ||
    (typeof GPUBuffer !== "undefined" && x instanceof GPUBuffer) ||
    (typeof x === "object" && x !== null && "buffer" in x &&
      typeof GPUBuffer !== "undefined" && (x as GpuTensor).buffer instanceof GPUBuffer);
}

/** Options of {@linkcode createWebGpuBackend}. */
export interface WebGpuBackendOptions {
  /** Lower planning limits than the device's (for tests). */
  limits?: Partial<GpuPlanLimits>;
  /** Caller-owned params copied into the arena at init and back after each step. */
  externalParams?: ReadonlyMap<number, GpuTensor>;
  /**
   * Caller-owned params updated in place (zero copy), as `placeGpuParams` in gpu_tensors.ts
   * admits them: STORAGE usage, offset a multiple of `minStorageBufferOffsetAlignment`, and
   * the buffer extends to the 16-byte boundary after the last element.
   */
  inPlaceParams?: ReadonlyMap<number, GpuTensor>;
  /** Clip the gradients to this global L2 norm, computed on the GPU each step. */
  clipGradNorm?: number;
  /** What a step with a NaN or ±Infinity gradient does (checked on the GPU each step). */
  nonFinite?: NonFinitePolicy;
}

/** Makes the WebGPU backend of a layout on `device`. */
export async function createWebGpuBackend(
  device: GPUDevice,
  layout: ArenaLayout,
  options: WebGpuBackendOptions = {},
): Promise<WebGpuBackend> {
  await stepPipeline(device);
  return createWebGpuBackendSync(device, layout, options);
}

/**
 * {@linkcode createWebGpuBackend}, synchronously: the device's pipelines are compiled now
 * (blocking) unless an earlier state compiled them. For callers that must start a state inside a
 * synchronous call (the TensorFlow.js adapter's first `applyGradients`).
 */
export function createWebGpuBackendSync(
  device: GPUDevice,
  layout: ArenaLayout,
  options: WebGpuBackendOptions = {},
): WebGpuBackend {
  const limits: GpuPlanLimits = {
    maxStorageBufferBindingSize: options.limits?.maxStorageBufferBindingSize ??
      device.limits.maxStorageBufferBindingSize,
    maxBufferSize: options.limits?.maxBufferSize ?? device.limits.maxBufferSize,
    maxComputeWorkgroupsPerDimension: options.limits?.maxComputeWorkgroupsPerDimension ??
      device.limits.maxComputeWorkgroupsPerDimension,
  };
  const pipeline = stepPipelineSync(device);
  return new WebGpuBackend(
    device,
    layout,
    pipeline,
    limits,
    options.externalParams ?? new Map(),
    options.clipGradNorm,
    options.nonFinite,
    options.inPlaceParams,
  );
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
