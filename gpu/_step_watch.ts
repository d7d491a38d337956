/**
 * The watch of a WebGPU step that reads buffers of the caller's (gradients, params it owns):
 * the error of the step's refusal, naming them, and the record of the gradients' buffers as the
 * device's once the GPU has taken them. A step that reads the same buffers as the one before
 * (a training loop's steady state) reuses that step's watch: no array, closure or Promise is
 * made for it beyond the error scope's, and once its buffers are recorded, none to record them.
 *
 * @module
 */
import { label } from "../base/tensors.ts";
import { recordCallerBuffers } from "./_gpu_grads.ts";
import { refusalError } from "./buffer_probe.ts";

/** What a step that reads buffers of the caller's is watched with. */
export interface StepWatch {
  /** The error of the step where the GPU refused it (`GpuStepCounter.watch`). */
  readonly refusal: (error: GPUError) => Promise<Error>;
  /**
   * Records the gradients' buffers as the device's where the step's scope popped clean
   * (`error` null); undefined once it has, or where the step reads none.
   */
  record: ((error: GPUError | null) => void) | undefined;
}

/** Whether `a` and `b` hold the same items in the same order. */
function sameItems<T>(a: readonly T[], b: readonly T[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/**
 * The watches of one state's steps.
 *
 * @example
 * ```ts ignore
 * const watches = new StepWatches(device, layout.names, callerParams, paramBuffers);
 * const watch = watches.of(loads.foreign, loads.foreignBuffers); // undefined: nothing to watch
 * ```
 */
export class StepWatches {
  readonly #device: GPUDevice;
  readonly #names: readonly string[];
  readonly #callerParams: readonly number[];
  readonly #paramBuffers: readonly GPUBuffer[];
  /** The last watch made, with the gradients (layout indices) and buffers it is of. */
  #last: { grads: number[]; buffers: GPUBuffer[]; watch: StepWatch } | undefined;

  /**
   * The watches of a state on `device` of tensors `names`, whose params `callerParams` (layout
   * indices) are in the caller's `paramBuffers` (in the same order).
   */
  constructor(
    device: GPUDevice,
    names: readonly string[],
    callerParams: readonly number[],
    paramBuffers: readonly GPUBuffer[],
  ) {
    this.#device = device;
    this.#names = names;
    this.#callerParams = callerParams;
    this.#paramBuffers = paramBuffers;
  }

  /**
   * The watch of a step that loads the gradients of tensors `grads` (layout indices) from the
   * caller's `buffers` (arrays the caller reuses: copied where kept): undefined where the step
   * reads no buffer of the caller's; the last one where it reads the same as the last.
   */
  of(grads: readonly number[], buffers: readonly GPUBuffer[]): StepWatch | undefined {
    if (grads.length === 0 && this.#callerParams.length === 0) return undefined;
    const last = this.#last;
    if (last !== undefined && sameItems(last.grads, grads) && sameItems(last.buffers, buffers)) {
      return last.watch;
    }
    const kept = { grads: grads.slice(), buffers: buffers.slice() };
    const watch: StepWatch = {
      refusal: (error) => this.#refusal(error, kept.grads, kept.buffers),
      record: undefined,
    };
    if (kept.buffers.length > 0) {
      // Taken by the GPU: given to a state on another device, refused at that call.
      watch.record = (error) => {
        if (error !== null) return;
        recordCallerBuffers(this.#device, kept.buffers);
        watch.record = undefined;
      };
    }
    this.#last = { ...kept, watch };
    return watch;
  }

  /**
   * The error of a step whose command buffer the GPU refused (`error`), naming the buffers of
   * the caller's it used: the gradients of tensors `grads`, in `buffers`, and the params in
   * caller's buffers (`refusalError` asks the GPU whose fault it was).
   */
  async #refusal(
    error: GPUError,
    grads: readonly number[],
    buffers: readonly GPUBuffer[],
  ): Promise<Error> {
    const names = this.#names;
    const which = [
      ...grads.map((i) => `the gradient of ${label(names[i])}`),
      ...this.#callerParams.map((i) => label(names[i])),
    ].join(", ");
    return await refusalError(this.#device, error, which, [...buffers, ...this.#paramBuffers]);
  }
}
