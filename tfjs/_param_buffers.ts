/**
 * The parameter buffers of the adapter on the tfjs webgpu backend (gpu_path.ts): the master copy
 * of each variable's parameters on the GPU, filled from the variables and handed back to tfjs
 * after each step; and the reach of a tfjs tensor's data on the GPU.
 *
 * @module
 */
import type * as tf from "@tensorflow/tfjs-core";
import type { Entry } from "./layout.ts";

/**
 * The adapter's parameter buffers, one per variable: the step kernel updates each in place
 * (`params`), so it is the master copy of the parameters. The kernel moves whole vec4s, so a
 * buffer extends to the next 16 bytes; and tfjs reads a tensor's whole buffer back, so where a
 * length is not a multiple of 4 the parameters are copied, after each step, into a buffer of
 * exactly their bytes for `tf.tensor({ buffer })` (`out`).
 */
export class ParamBuffers {
  readonly #device: GPUDevice;
  readonly params: GPUBuffer[];
  readonly #outs: GPUBuffer[];

  constructor(device: GPUDevice, entries: readonly Entry[]) {
    this.#device = device;
    const usage = GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST;
    this.params = [];
    this.#outs = [];
    try {
      for (const e of entries) {
        const label = `radam tfjs param ${e.name}`;
        const exact = Math.max(4, e.size * 4);
        const padded = Math.max(4, Math.ceil(e.size / 4) * 16);
        const params = device.createBuffer({ label, size: padded, usage });
        this.params.push(params);
        this.#outs.push(
          padded === exact
            ? params
            : device.createBuffer({ label: `${label} out`, size: exact, usage }),
        );
      }
    } catch (error) {
      this.destroy();
      throw error;
    }
  }

  /**
   * Copies the values of `variables[i]` (where given) into the parameter buffer of entry i, on
   * the GPU (from host values where tfjs keeps them on the CPU).
   */
  fill(entries: readonly Entry[], variables: readonly (tf.Variable | undefined)[]): void {
    const device = this.#device;
    const encoder = device.createCommandEncoder();
    const refs: tf.Tensor[] = [];
    entries.forEach((e, i) => {
      const variable = variables[i];
      if (variable === undefined || e.size === 0) return;
      const gpu = onGpu(variable);
      if (gpu) {
        refs.push(gpu.tensorRef);
        encoder.copyBufferToBuffer(gpu.buffer, 0, this.params[i], 0, e.size * 4);
      } else {
        const values = variable.dataSync() as Float32Array<ArrayBuffer>;
        device.queue.writeBuffer(this.params[i], 0, values);
      }
    });
    device.queue.submit([encoder.finish()]);
    for (const r of refs) r.dispose();
  }

  /** After a step: the buffers of exactly each variable's bytes, filled from its parameters. */
  out(entries: readonly Entry[]): readonly GPUBuffer[] {
    const outs = this.#outs;
    let encoder: GPUCommandEncoder | undefined;
    for (let i = 0; i < outs.length; i++) {
      if (outs[i] === this.params[i]) continue;
      encoder ??= this.#device.createCommandEncoder();
      encoder.copyBufferToBuffer(this.params[i], 0, outs[i], 0, entries[i].size * 4);
    }
    if (encoder !== undefined) this.#device.queue.submit([encoder.finish()]);
    return outs;
  }

  destroy(): void {
    this.params.forEach((b, i) => {
      b.destroy();
      if (this.#outs[i] !== b) this.#outs[i]?.destroy();
    });
  }
}

/** A tensor's data as a GPU buffer (tfjs's copy), or undefined where tfjs holds it on the CPU. */
export function onGpu(t: tf.Tensor): { buffer: GPUBuffer; tensorRef: tf.Tensor } | undefined {
  try {
    const { buffer, tensorRef } = t.dataToGPU();
    return { buffer: buffer!, tensorRef };
  } catch {
    // tfjs keeps small tensors it made from host values on the CPU until a kernel needs them.
    return undefined;
  }
}
