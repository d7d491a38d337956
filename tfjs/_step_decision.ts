/**
 * The device's own decision of a WebGPU step, for option `ema` (ema_step.ts): whether the step
 * was taken, and, with `overwriteFrequency`, whether its averages overwrite the variables, as
 * boolean tfjs scalars on the same device, with no readback. The step kernel's `decide`
 * (gpu/control.ts) writes the t' its update runs at into the control buffer's `step_t` (the
 * steps taken since the state's start, this one included), or 0 where it does not run (a
 * non-finite gradient under `nonFinite: "skip"`, a halted state); after the step, that word is
 * copied into a buffer of the adapter's, which tfjs copies into a tensor of its own. Where an
 * overwrite may come, a one-invocation kernel reads the word instead and writes both decisions:
 * taken, and whether the step count it was taken at, the steps at the state's start plus t', is
 * a multiple of the frequency, as the CPU backends count the steps taken (u32 arithmetic: exact
 * at any count, which float32 tfjs ops are not past 2²⁴).
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs-core";
import { CONTROL_WORD } from "../gpu/control.ts";
import type { GpuStepCounter } from "../gpu/device_counter.ts";

/** The byte of `step_t` in the control buffer. */
const STEP_T_BYTE = CONTROL_WORD.step_t * 4;
/** The word `clear` writes (0: not taken), made once. */
const NOT_TAKEN = new Uint32Array(1);

/**
 * The kernel of both decisions: `every` holds the frequency and the steps at the state's start
 * modulo it; `out` gets t' (0: not taken) and 1 where the step overwrites, else 0.
 */
const DECIDE_OVERWRITE = /* wgsl */ `
@group(0) @binding(0) var<storage, read> control: array<u32>;
@group(0) @binding(1) var<storage, read_write> taken: array<u32>;
@group(0) @binding(2) var<storage, read_write> overwrite: array<u32>;
@group(0) @binding(3) var<storage, read> every: vec4<u32>;

@compute @workgroup_size(1)
fn main() {
  let t = control[${CONTROL_WORD.step_t}u];
  taken[0] = t;
  // (t % f < f < 2³¹ and the start's remainder < f: the sum fits a u32.)
  overwrite[0] = select(0u, 1u, t != 0u && (t % every.x + every.y) % every.x == 0u);
}
`;

/**
 * Whether a step taken now could be taken at a multiple of `every`, as `counter` knows it with
 * no readback: taken, its count is above the steps the device last reported and at most the
 * steps submitted counted as taken. (Else the overwrite's ops are left out: no dispatch.)
 */
function mayOverwrite(counter: GpuStepCounter, every: number): boolean {
  // (From the reported count itself, not one above it: a looser bound, never a missed one.)
  return Math.floor(counter.steps / every) * every >= Math.max(1, counter.reportedSteps);
}

/** The pipeline of the overwrite decision on one device, and its buffers. */
interface OverwriteKernel {
  readonly pipeline: GPUComputePipeline;
  readonly overwrite: GPUBuffer;
  readonly every: GPUBuffer;
  /** The frequency and remainder `every` holds, and the control buffer bound. */
  last?: { f: number; offset: number; control: GPUBuffer; group: GPUBindGroup };
}

/**
 * The device's decision of a step: whether it was taken, and whether it was taken at a multiple
 * of option `ema`'s `overwriteFrequency` steps taken (absent: it was not); boolean scalars on the
 * device, which the caller disposes.
 */
export interface DeviceDecision {
  /** Whether the step was taken. */
  readonly taken: tf.Tensor;
  /** Whether its averages overwrite the variables; absent: they do not. */
  readonly overwrite?: tf.Tensor;
}

/**
 * The decisions of the steps of the states of one runner's device (gpu_path.ts).
 *
 * @example
 * ```ts ignore
 * const decision = new StepDecision(device);
 * decision.clear(counter.control); // before the step is submitted
 * // … the step …
 * const { taken, overwrite } = decision.decided(counter, 100); // bool scalars on the device
 * ```
 */
export class StepDecision {
  readonly #device: GPUDevice;
  #buffer: GPUBuffer | undefined;
  #kernel: OverwriteKernel | undefined;
  /** Whether a decision was asked for: until then (no `ema`) a step writes nothing more. */
  #asked = false;

  /** The decisions of steps on `device`. */
  constructor(device: GPUDevice) {
    this.#device = device;
  }

  /**
   * Before a step over the control buffer `control`: its `step_t` cleared, ordered before the
   * step on the queue, so that a step whose commands the GPU refuses (nothing of it runs) reads
   * as not taken. (`decide` writes the word at every step before anything reads it; the word
   * starts at 0, so before the first decision asked for there is nothing to clear.)
   */
  clear(control: GPUBuffer): void {
    if (this.#asked) this.#device.queue.writeBuffer(control, STEP_T_BYTE, NOT_TAKEN);
  }

  /**
   * After a step submitted over the state of `counter`: whether the device took it (`taken`),
   * and with `every` (option `ema`'s `overwriteFrequency`), whether it was taken at a multiple
   * of `every` steps taken (`overwrite`; absent where no multiple lies between the steps the
   * device last reported and those submitted: then it was not). Boolean scalars on the device,
   * which the caller disposes. (tfjs submits its copies of the buffers at once: they are free
   * again by the next step.)
   */
  decided(counter: GpuStepCounter, every?: number): DeviceDecision {
    const device = this.#device;
    this.#asked = true;
    const buffer = this.#buffer ??= device.createBuffer({
      label: "radam tfjs step taken",
      size: 4,
      usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST,
    });
    const encoder = device.createCommandEncoder();
    const kernel = every !== undefined && mayOverwrite(counter, every)
      ? this.#encodeOverwrite(encoder, counter, every)
      : undefined;
    if (kernel === undefined) {
      encoder.copyBufferToBuffer(counter.control, STEP_T_BYTE, buffer, 0, 4);
    }
    device.queue.submit([encoder.finish()]);
    return tf.tidy(() => {
      const flag = (b: GPUBuffer) =>
        tf.notEqual(tf.tensor({ buffer: b, zeroCopy: false }, [], "int32"), 0);
      return { taken: flag(buffer), overwrite: kernel && flag(kernel.overwrite) };
    });
  }

  /** Encodes the kernel of both decisions (see `DECIDE_OVERWRITE`); its pipeline and buffers. */
  #encodeOverwrite(
    encoder: GPUCommandEncoder,
    counter: GpuStepCounter,
    every: number,
  ): OverwriteKernel {
    const device = this.#device;
    const kernel = this.#kernel ??= {
      pipeline: device.createComputePipeline({
        label: "radam tfjs ema overwrite",
        layout: "auto",
        compute: { module: device.createShaderModule({ code: DECIDE_OVERWRITE }) },
      }),
      overwrite: device.createBuffer({
        label: "radam tfjs ema overwrite",
        size: 4,
        // (COPY_DST too: tfjs copies the buffer into one of the same usage.)
        usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST,
      }),
      every: device.createBuffer({
        label: "radam tfjs ema overwrite frequency",
        size: 16,
        usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST,
      }),
    };
    const control = counter.control;
    const offset = counter.startSteps % every;
    let last = kernel.last;
    if (last?.f !== every || last.offset !== offset || last.control !== control) {
      device.queue.writeBuffer(kernel.every, 0, new Uint32Array([every, offset, 0, 0]));
      const group = last?.control === control ? last.group : device.createBindGroup({
        layout: kernel.pipeline.getBindGroupLayout(0),
        entries: [control, this.#buffer!, kernel.overwrite, kernel.every]
          .map((buffer, binding) => ({ binding, resource: { buffer } })),
      });
      last = kernel.last = { f: every, offset, control, group };
    }
    const pass = encoder.beginComputePass();
    pass.setPipeline(kernel.pipeline);
    pass.setBindGroup(0, last.group);
    pass.dispatchWorkgroups(1);
    pass.end();
    return kernel;
  }

  /** Frees the buffers. */
  destroy(): void {
    this.#buffer?.destroy();
    this.#buffer = undefined;
    this.#kernel?.overwrite.destroy();
    this.#kernel?.every.destroy();
    this.#kernel = undefined;
  }
}
