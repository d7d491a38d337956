/**
 * The device's own decision of a WebGPU step, for option `ema` (ema_step.ts): whether the step
 * was taken, as a boolean tfjs scalar on the same device, with no readback. The step kernel's
 * `decide` (gpu/control.ts) writes the t its update runs at into the control buffer's `step_t`,
 * or 0 where it does not run (a non-finite gradient under `nonFinite: "skip"`, a halted state);
 * after the step, that word is copied into a buffer of the adapter's, which tfjs copies into a
 * tensor of its own.
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs-core";
import { CONTROL_WORD } from "../gpu/control.ts";

/** The byte of `step_t` in the control buffer. */
const STEP_T_BYTE = CONTROL_WORD.step_t * 4;
/** The word `clear` writes (0: not taken), made once. */
const NOT_TAKEN = new Uint32Array(1);

/**
 * The decisions of the steps of the states of one runner's device (gpu_path.ts).
 *
 * @example
 * ```ts ignore
 * const decision = new StepDecision(device);
 * decision.clear(control); // before the step is submitted
 * // … the step …
 * const taken = decision.taken(control); // a bool scalar on the device
 * ```
 */
export class StepDecision {
  readonly #device: GPUDevice;
  #buffer: GPUBuffer | undefined;
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
   * After a step submitted over the control buffer `control`: whether the device took it, a
   * boolean scalar on the device the caller disposes. (tfjs submits its copy of the buffer at
   * once: the buffer is free again by the next step.)
   */
  taken(control: GPUBuffer): tf.Tensor {
    const device = this.#device;
    this.#asked = true;
    const buffer = this.#buffer ??= device.createBuffer({
      label: "radam tfjs step taken",
      size: 4,
      usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST,
    });
    const encoder = device.createCommandEncoder();
    encoder.copyBufferToBuffer(control, STEP_T_BYTE, buffer, 0, 4);
    device.queue.submit([encoder.finish()]);
    return tf.tidy(() => tf.notEqual(tf.tensor({ buffer, zeroCopy: false }, [], "int32"), 0));
  }

  /** Frees the buffer. */
  destroy(): void {
    this.#buffer?.destroy();
    this.#buffer = undefined;
  }
}
