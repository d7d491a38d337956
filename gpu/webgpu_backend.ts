/**
 * The WebGPU backend: the arena lives in GPU buffers, one per section (params, grads, the rule's
 * moments, and LookAhead's slow weights), each tensor at the same 256-byte-aligned offset in
 * every section, so that every tensor slot is a `GPUBufferBinding` a forward or backward pass
 * can bind directly.
 *
 * The device keeps the step counts (a step with a non-finite gradient is skipped or halts the
 * state there, and must not advance t; device_counter.ts), so the host's float64 scalars
 * (rounded to f32) of each t are written ahead into a ring buffer, tagged with t, that the
 * kernels index by the device's count (scalar_ring.ts). The host writes the entries of 64 steps
 * at once (`scalarsAhead`), uploaded by one `queue.writeBuffer` at the next step, so most steps
 * write nothing. A step encodes any pending gradient copies, then one compute pass: the
 * gradient-norm passes (with `clipGradNorm` or the non-finite check), whose last one-workgroup
 * pass also decides the step on the device (counts it taken or skipped, or halts; a
 * one-invocation dispatch where no norm is computed), the centralization of every rank > 1
 * tensor (with `gc`: two dispatches for all, more only past the device's limits; centralize.ts),
 * then the step dispatches; it submits that, with a copy of the counters for an asynchronous
 * readback now and then. An arena of at most `SMALL_STEP_ELEMENTS` elements in one chunk (a
 * model bound by the host, not the GPU) takes the whole step, norm and decision included, in
 * one dispatch of one workgroup (`step_small`) when no tensor is centralized. No buffer or bind
 * group is created per step.
 *
 * The step dispatches (planned by `planChunks`, arena_plan.ts) cover the tensors whose params
 * the arena holds, one per binding-sized chunk of each run of consecutive such tensors, plus,
 * for each param updated in place in a caller's buffer, one per binding-sized chunk of it:
 * binding `p` is the caller's buffer range, the other sections are bound at the tensor's arena
 * offset (zero copy). An 8-bit state's compact tensors step in dispatches of their own, a
 * workgroup a block (`compactDispatches`, compact_plan.ts), in place too where they may be.
 *
 * @module
 */
import { type ArenaLayout, type CompactMoment, GRADS } from "../base/arena.ts";
import { DISPOSED_STATE_MESSAGE } from "../base/_state_errors.ts";
import type { DeviceBackend, HeldState, TensorState } from "../base/backend.ts";
import type { Rule } from "../base/rule.ts";
import { label } from "../base/tensors.ts";
import { backendSlots, type CallerOwned } from "./_backend_slots.ts";
import { encodeStepPass, type StepPass, stepPass } from "./_step_pass.ts";
import type { GpuPlanLimits } from "./arena_plan.ts";
import { encodeStateCopy } from "./state_copy.ts";
import { holdState } from "./state_hold.ts";
import { type TensorStateRead, tensorStateRead } from "./tensor_state_read.ts";
import { Centralizations } from "./centralize.ts";
import {
  compactOf,
  compactRanges,
  decodeCompact,
  encodeCompact,
  writeCompact,
} from "./compact_io.ts";
import { GpuStepCounter, type ReadMark } from "./device_counter.ts";
import { requireDeviceLost } from "./device_lost.ts";
import { type CheckedGpuGrad, checkGpuGrads, recordFreed, recordLost } from "./_gpu_grads.ts";
import { StepWatches } from "./_step_watch.ts";
import { type GpuTensor, unguarded } from "./gpu_tensors.ts";
import { GradLoads } from "./grad_loads.ts";
import { NonFiniteOrder } from "./nonfinite_order.ts";
import type { Pipelines } from "./pipelines.ts";
import {
  createSections,
  momentOf,
  type ReadRange,
  SectionIO,
  type Snapshot,
} from "./section_io.ts";
import {
  computesNorm,
  type GradTreatment,
  STEP_CONSTS_BYTES,
  stepConstsData,
  stepConstsOf,
} from "./step_consts.ts";

/**
 * How a backend's step treats the gradients, and the params the caller owns (see
 * `WebGpuBackendOptions`, webgpu_create.ts).
 */
export interface BackendSetup extends CallerOwned, GradTreatment {}

/** Ignores a rejection (a lost device's error scope: `checkUsable` says so). */
function ignore(): void {}

/** The WebGPU backend of one state. */
export class WebGpuBackend implements DeviceBackend<GpuTensor> {
  readonly kind = "device" as const;
  readonly name = "webgpu" as const;
  readonly params: Readonly<Record<string, GpuTensor>>;
  readonly grads: Readonly<Record<string, GpuTensor>>;
  /** The step counts the device keeps, and the ring of scalars. */
  readonly counter: GpuStepCounter;
  readonly #device: GPUDevice;
  readonly #pipelines: Pipelines;
  readonly #limits: GpuPlanLimits;
  readonly #sections: GPUBuffer[];
  readonly #io: SectionIO;
  /** The step's dispatches, made once (see the module doc). */
  readonly #pass: StepPass;
  /** The centralization dispatches (made once, at init), and the tensors a step requests. */
  readonly #centralizations: Centralizations;
  /** The gradients' loads into their slots (see grad_loads.ts). */
  readonly #loads: GradLoads;
  /** The watches of steps that read buffers of the caller's (see _step_watch.ts). */
  readonly #watches: StepWatches;
  /** Buffers other than the sections and the counter's. */
  readonly #extraBuffers: GPUBuffer[] = [];
  /** The one command buffer of a step's submission (a reused array). */
  readonly #submission: GPUCommandBuffer[] = [];
  #reads: Promise<unknown> = Promise.resolve();
  #lost: GPUDeviceLostInfo | undefined;
  /** Set by `destroy`: reads still pending then reject, and submit nothing to freed buffers. */
  #disposed = false;

  constructor(
    device: GPUDevice,
    readonly layout: ArenaLayout,
    rule: Rule,
    pipelines: Pipelines,
    limits: GpuPlanLimits,
    options: BackendSetup = {},
  ) {
    this.#device = device;
    this.#pipelines = pipelines;
    this.#limits = limits;
    requireDeviceLost(device); // (Deno before 2.6.4 has no device.lost)
    device.lost.then((info) => {
      this.#lost = info;
      recordLost(device); // (its error scopes pop clean unchecked now)
    });
    const sections = this.#sections = createSections(device, layout, limits);
    this.#centralizations = new Centralizations(device, pipelines, limits, sections[GRADS]);
    const order = new NonFiniteOrder(device, layout);
    this.#extraBuffers.push(order.segments);
    const counter = new GpuStepCounter(
      device,
      layout,
      rule.scalars,
      () => this.checkUsable(),
      order,
    );
    this.counter = counter;
    const normComputed = computesNorm(options);
    const consts = this.#buffer("constants", STEP_CONSTS_BYTES, GPUBufferUsage.UNIFORM);
    const constants = stepConstsOf(layout, options, counter.ring.stride, order.rows);
    device.queue.writeBuffer(consts, 0, stepConstsData(constants));
    const slots = backendSlots(layout, sections, options);
    this.params = slots.params;
    this.grads = slots.grads;
    const gradSlots = layout.names.map((n) => unguarded(this.grads[n])!); // (the plain ones)
    this.#loads = new GradLoads(device, sections[GRADS], gradSlots, sections);
    const callerParams = slots.callerParams;
    const paramBuffers = callerParams.map((i) => this.params[layout.names[i]].buffer);
    this.#watches = new StepWatches(device, layout.names, callerParams, paramBuffers);
    const { inPlace } = slots;
    const pass = this.#pass = stepPass(device, pipelines, {
      layout,
      limits,
      sections,
      consts,
      segments: order.segments,
      counter,
      inPlace,
      normComputed,
      buffer: (label, size, usage) => this.#buffer(label, size, usage),
      keep: (b) => this.#extraBuffers.push(b),
    });
    this.#io = new SectionIO(device, layout, sections, () => this.checkUsable(), {
      externals: slots.externals,
      inPlaceReads: pass.inPlaceReads,
      inPlaceWrites: pass.inPlaceWrites,
      copyTensor: pipelines.copyTensor.pipeline,
      labels: [...inPlace.keys()].map((i) => label(layout.names[i])).join(", "),
      inPlaceBuffers: [...inPlace.values()].map((t) => t.buffer),
    });
  }

  /** A buffer of the state's besides the sections (freed with it), writable by the queue. */
  #buffer(label: string, size: number, usage: number): GPUBuffer {
    const b = this.#device.createBuffer({
      label: `radam ${label}`,
      size,
      usage: usage | GPUBufferUsage.COPY_DST,
    });
    this.#extraBuffers.push(b);
    return b;
  }

  /**
   * The number of step dispatches (1 unless the arena exceeds one binding or params are updated
   * in place).
   */
  get dispatchCount(): number {
    return this.#pass.chunks.length;
  }

  /** The workgroup grid of each step dispatch. */
  get grids(): readonly (readonly [number, number])[] {
    return this.#pass.chunks.map((c) => c.grid);
  }

  /** Whether each step is one dispatch of `step_small` (a small arena, nothing centralized). */
  get smallStep(): boolean {
    return this.#pass.small;
  }

  checkUsable(): void {
    if (this.#disposed) throw new TypeError(DISPOSED_STATE_MESSAGE);
    if (this.#lost) {
      throw new Error(
        `The WebGPU device of this optimizer state was lost (${this.#lost.reason}: ${this.#lost.message}); ` +
          "the state can no longer step or be read. To resume, init a new state on a new device from " +
          "the last parameters you read back (readParams/readMoments) or from your last checkpoint",
      );
    }
  }

  checkGrads(grads: unknown, out: unknown[], visit?: readonly number[]): CheckedGpuGrad[] {
    return checkGpuGrads(grads, this.#device, this.layout.names, this.layout.lengths, out, visit);
  }

  loadGrads(grads: readonly (Float32Array | GpuTensor)[]): void {
    this.#loads.load(grads);
  }

  /**
   * Gradient centralization of the tensor at element `offset` of the grads section, planned at
   * init (`planCentralize`), by the next `update`, in the dispatches that centralize every
   * planned tensor: a step requests all of them or none (else `update` throws).
   */
  centralize(offset: number, _rows: number, _cols: number): void {
    this.#centralizations.request(offset);
  }

  /**
   * Makes the centralization dispatches of the tensors of `segments` (flat triples: offset,
   * rows, cols) at init, so that a tensor the device cannot centralize is refused there, not at
   * every step: a RangeError naming the tensor where one of its rows does not fit a storage
   * binding, or its rows are too many workgroups for a dispatch (the backend is disposed then).
   */
  planCentralize(segments: readonly number[]): void {
    try {
      const { names, offsets } = this.layout; // (the first tensor at an offset, as indexOf)
      const byOffset = new Map(offsets.map((o, i) => [o, names[i]] as const).reverse());
      const name = (_: unknown, k: number) => byOffset.get(segments[3 * k]);
      this.#centralizations.plan(segments, Array.from({ length: segments.length / 3 }, name));
    } catch (error) {
      this.destroy();
      throw error;
    }
  }

  /**
   * Encodes and submits one step: uploads the ring entries written since the last step, then
   * pending gradient copies, then one compute pass (`encodeStepPass`, _step_pass.ts), then the copies of params
   * back into caller's buffers. The kernels read their scalars from the ring entry of the
   * device's t (see `writeScalars`). A step that reads buffers of the caller's runs in an error
   * scope: if the GPU refuses it, the counter hears of it (`watch`) and the next call throws.
   */
  update(): void {
    this.checkUsable();
    const centralize = this.#centralizations.take();
    const counter = this.counter;
    counter.beforeSubmit();
    const device = this.#device;
    // Buffers the caller owns may have been destroyed, or be another device's: the GPU refuses
    // the step's command buffer then (nothing of it runs), and the error scope says so. (The
    // watch of a step that reads the same buffers as the last is that one's: none made.)
    const watch = this.#watches.of(this.#loads.foreign, this.#loads.foreignBuffers);
    if (watch) device.pushErrorScope("validation");
    const encoder = device.createCommandEncoder();
    this.#loads.encode(encoder);
    encodeStepPass(encoder, this.#pipelines, this.#pass, this.#centralizations, centralize);
    this.#io.encodeCopyOut(encoder);
    const report = counter.encodeReport(encoder);
    const submission = this.#submission;
    submission[0] = encoder.finish();
    device.queue.submit(submission);
    counter.submitted(report);
    if (watch) {
      const popped = device.popErrorScope();
      counter.watch(popped, watch.refusal);
      if (watch.record) popped.then(watch.record, ignore); // (until its buffers are recorded)
    }
  }

  readSection(section: number): Promise<Record<string, Float32Array<ArrayBuffer>>> {
    const k = momentOf(section);
    const codes = k >= 0 ? compactRanges(this.layout, k) : [];
    return this.#read([this.#io.sectionRange(section), ...codes], ([f32, ...held]) => {
      const values = this.#io.valuesOf(section, f32);
      if (codes.length > 0) {
        decodeCompact(compactOf(this.layout, k, held[0], held[1]), this.layout, values);
      }
      return values;
    });
  }

  /** Copies of the codes and scales of moment `k` of each compact tensor (8-bit states). */
  readCompact(k: number): Promise<Record<string, CompactMoment>> {
    const parse = ([codes, scales]: ArrayBuffer[]) => compactOf(this.layout, k, codes, scales);
    return this.#read(compactRanges(this.layout, k), parse);
  }

  /**
   * Copies of the state of the tensors `names` alone (their moments, as codes and scales where
   * held in 8 bits, and slow weights), read as `readSection` reads, copying back only their bytes
   * (tensor_state_read.ts): none for no tensor, which still rejects with the fault of a step
   * before the call, as every read does.
   */
  readTensorState(names: readonly string[]): Promise<Record<string, TensorState>> {
    let read: TensorStateRead;
    try {
      read = tensorStateRead(this.layout, names);
    } catch (error) {
      return Promise.reject(error);
    }
    return this.#read(read.ranges, (bytes) => read.parse(bytes));
  }

  /**
   * The state of the tensors `names` alone and the step counts, held on the GPU as they are at
   * the call (state_hold.ts): `settled` waits for the steps before it as reads do.
   */
  holdTensorState(names: readonly string[]): HeldState {
    return holdState({
      device: this.#device,
      buffers: { layout: this.layout, sections: this.#sections },
      counter: this.counter,
      checkUsable: () => this.checkUsable(),
      afterSteps: (mark, work) => this.#afterSteps(mark, work, () => {}),
      buffersOf: (target) => {
        if (!(target instanceof WebGpuBackend) || target.#device !== this.#device) {
          throw new TypeError("A held state is copied into a WebGPU state of its own device");
        }
        target.checkUsable();
        return { layout: target.layout, sections: target.#sections };
      },
    }, names);
  }

  /**
   * A read of `ranges` of the sections as they are at the call (after every step submitted so
   * far, and none later: they are copied now, in one submission), taken apart by `parse` once
   * every step submitted before it is reported (reads resolve in order).
   */
  #read<R>(ranges: ReadRange[], parse: (bytes: ArrayBuffer[]) => R): Promise<R> {
    let snapshot: Snapshot;
    try {
      this.checkUsable();
      snapshot = this.#io.snapshot(ranges);
    } catch (error) {
      return Promise.reject(error);
    }
    return this.#afterSteps(this.counter.mark(), async () => {
      const bytes = await snapshot.read();
      this.checkUsable();
      return parse(bytes);
    }, () => snapshot.discard());
  }

  /**
   * `work`, once the device has reported every step submitted before `mark` and the reads
   * begun before have settled, or the fault of one of those steps; then `end`, either way.
   */
  #afterSteps<R>(mark: ReadMark, work: () => Promise<R>, end: () => void): Promise<R> {
    const next = this.#reads.then(async () => {
      try {
        await this.counter.settle();
        // (A fault of a step submitted after the mark is the next call's.)
        const fault = this.counter.takeFault(mark);
        if (fault) throw fault;
        return await work();
      } finally {
        this.counter.unmark(mark);
        end();
      }
    });
    this.#reads = next.catch(() => {});
    return next;
  }

  writeSection(section: number, data: Readonly<Record<string, Float32Array>>): void {
    this.checkUsable();
    this.#io.write(section, data);
    const k = momentOf(section);
    if (k >= 0 && this.layout.compact.includes(true)) {
      this.writeCompact(k, encodeCompact(data, this.layout, k));
    }
  }

  /** Writes the codes and scales of moment `k` of the compact tensors in `data` as they are. */
  writeCompact(k: number, data: Readonly<Record<string, CompactMoment>>): void {
    this.checkUsable();
    writeCompact(this.#device, this.#sections, this.layout, k, data);
  }

  /** The GPUDevice it runs on. */
  get device(): GPUDevice {
    return this.#device;
  }

  /**
   * Copies, on the GPU, the state of the tensors `names` (moments, their codes and scales, slow
   * weights) from `source`, a state of the same rule on the same device holding each of them with
   * the same length (state_copy.ts): a state remade over another set of tensors keeps theirs.
   */
  copyStateFrom(source: WebGpuBackend, names: readonly string[]): void {
    this.checkUsable();
    source.checkUsable();
    const encoder = this.#device.createCommandEncoder();
    encodeStateCopy(
      encoder,
      { layout: source.layout, sections: source.#sections },
      { layout: this.layout, sections: this.#sections },
      names,
    );
    this.#device.queue.submit([encoder.finish()]);
  }

  /**
   * Copies the params into the slow weights (LookAhead's start: slow = params), those updated in
   * place from the caller's buffers.
   */
  copyParamsToSlow(): void {
    this.#io.copyParamsToSlow();
  }

  /** Copies params of some tensors from ranges of another state's buffers (at init). */
  copyParamsFrom(sources: ReadonlyMap<number, GpuTensor>): void {
    this.#io.copyParamsFrom(sources);
  }

  /** Uploads host params of some tensors (at init; the others come from caller buffers). */
  writeHostParams(data: Readonly<Record<string, Float32Array>>): void {
    this.#io.writeHostParams(data);
  }

  /** `dispose(state)`: frees the GPU buffers (the state can no longer be used). */
  dispose(): void {
    this.destroy();
  }

  /** Frees the GPU buffers: the state can no longer be used, and reads pending reject. */
  destroy(): void {
    this.#disposed = true;
    recordFreed(this.#sections); // (a slot of it given to another state's step is refused)
    for (const b of this.#sections) b.destroy();
    for (const b of this.#extraBuffers) b.destroy();
    this.#centralizations.destroy();
    this.counter.destroy();
    this.#io.destroy();
    this.#loads.destroy();
  }
}
