/**
 * The adapter on the tfjs webgpu backend: the library's WebGPU state on tfjs's own `GPUDevice`,
 * gradients taken with `dataToGPU()`, parameters kept in buffers of the adapter's that the step
 * kernel updates in place, and handed back to tfjs as GPU tensors: no CPU readback per step.
 *
 * Copies per variable and step, all on the GPU: `dataToGPU` (tfjs copies the gradient into a
 * buffer of its own), the library's copy of it into its arena, and `tf.tensor({ buffer })`
 * (tfjs copies the parameters into the variable's new buffer: the variable never aliases a
 * buffer that a later step writes).
 *
 * Gradient centralization (`gc`) runs as tfjs ops here (the gradient minus its mean over every
 * axis but the last), before the gradient is handed over; so `clipGradNorm` together with `gc`,
 * whose norm the library takes before centralization, is refused on this backend.
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs-core";
import { PARAMS } from "../core/arena.ts";
import type { Backend } from "../core/backend.ts";
import type { ResolvedConfig } from "../core/options.ts";
import { type OptimizerState, restoreState, stateInternals } from "../core/state.ts";
import type { GpuTensor } from "../gpu/gpu_tensors.ts";
import { initWebGpuState } from "../gpu/webgpu_state.ts";
import { dispose, step } from "../mod.ts";
import { type Entry, entryOf } from "./layout.ts";

/** A variable and its gradient of one step (checked by the optimizer). */
export interface GpuGradItem {
  readonly name: string;
  readonly tensor: tf.Tensor;
  readonly variable: tf.Variable;
}

/** What tfjs-backend-webgpu exposes that the adapter uses. */
interface TfWebGpuBackend {
  readonly device: GPUDevice;
  commandEncoder?: GPUCommandEncoder | null;
  submitQueue?(): void;
  endComputePassEncoder?(): void;
}

/** The WebGPU path of one optimizer over a fixed set of variables. */
export class GpuRunner {
  #state: OptimizerState<GpuTensor>;
  readonly #buffers: GPUBuffer[];
  readonly #tf: TfWebGpuBackend;
  readonly #config: ResolvedConfig;

  constructor(
    readonly entries: readonly Entry[],
    state: OptimizerState<GpuTensor>,
    buffers: GPUBuffer[],
    backend: TfWebGpuBackend,
    config: ResolvedConfig,
  ) {
    this.#state = state;
    this.#buffers = buffers;
    this.#tf = backend;
    this.#config = config;
  }

  /** The library state (WebGPU). */
  get state(): OptimizerState<GpuTensor> {
    return this.#state;
  }

  /**
   * Takes over from the CPU state: the parameters from the variables (read once, here), the
   * other sections (tfjs layout, by section) and the step counts.
   */
  adopt(
    variables: readonly tf.Variable[],
    sections: ReadonlyMap<number, Readonly<Record<string, Float32Array>>>,
    steps: number,
    skipped: number,
  ): void {
    const backend = stateInternals(this.#state).backend as Backend<GpuTensor>;
    const params: Record<string, Float32Array> = {};
    this.entries.forEach((e, i) => params[e.name] = variables[i].dataSync() as Float32Array);
    backend.writeSection(PARAMS, params);
    for (const [section, data] of sections) backend.writeSection(section, data);
    this.#state = restoreState<GpuTensor>(this.#config, backend, {
      steps,
      skipped,
      shapes: this.entries.map((e) => [e.size]),
    });
  }

  /** One step: gradients to the GPU, the fused dispatch, the parameters back to the variables. */
  step(items: readonly GpuGradItem[]): void {
    const backend = this.#tf;
    if (backend.commandEncoder && backend.submitQueue) {
      // Whatever tfjs recorded (the gradients) runs before the step.
      backend.endComputePassEncoder?.();
      backend.submitQueue();
    }
    const grads: Record<string, Float32Array | { buffer: GPUBuffer; length: number }> = {};
    const refs: tf.Tensor[] = [];
    try {
      for (let i = 0; i < items.length; i++) {
        const e = this.entries[i];
        let g = items[i].tensor;
        let centralized: tf.Tensor | undefined;
        if (this.#config.gc && g.rank > 1) {
          const axes = [...Array(g.rank - 1).keys()];
          centralized = g = tf.tidy(() =>
            tf.sub(items[i].tensor, tf.mean(items[i].tensor, axes, true))
          );
        }
        try {
          const { buffer, tensorRef } = g.dataToGPU();
          refs.push(tensorRef);
          grads[e.name] = { buffer: buffer!, length: e.size };
        } catch {
          // tfjs keeps small tensors on the CPU: their values are read without a GPU readback.
          grads[e.name] = g.dataSync() as Float32Array;
        }
        centralized?.dispose();
      }
      this.#state = step(this.#state, grads) as OptimizerState<GpuTensor>;
    } finally {
      for (const r of refs) r.dispose();
    }
    for (let i = 0; i < items.length; i++) {
      const t = tf.tensor(
        { buffer: this.#buffers[i], zeroCopy: false },
        this.entries[i].shape as number[],
        "float32",
      );
      items[i].variable.assign(t);
      t.dispose();
    }
  }

  /** Frees the state's GPU buffers and the parameter buffers. */
  destroy(): void {
    dispose(this.#state);
    for (const b of this.#buffers) b.destroy();
  }
}

/**
 * Makes the WebGPU state for `entries` on tfjs's device (asynchronously: pipelines), with one
 * parameter buffer per variable, updated in place by the step kernel.
 */
export async function startGpuRunner(
  config: ResolvedConfig,
  cpuEntries: readonly Entry[],
): Promise<GpuRunner> {
  if (config.gc && config.clipGradNorm !== undefined) {
    throw new TypeError(
      "Options gc and clipGradNorm together are not supported on the tfjs webgpu backend (the norm must be taken before centralization, which runs in tfjs there); drop clipGradNorm or train on a CPU backend",
    );
  }
  const backend = tf.backend() as unknown as TfWebGpuBackend;
  const device = backend.device;
  const entries = cpuEntries.map((e) => entryOf(e.name, e.shape, false));
  const buffers = entries.map((e) =>
    device.createBuffer({
      label: `radam tfjs param ${e.name}`,
      size: Math.max(16, Math.ceil(e.size / 4) * 16),
      usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST,
    })
  );
  const params: Record<string, { buffer: GPUBuffer; length: number }> = {};
  entries.forEach((e, i) => params[e.name] = { buffer: buffers[i], length: e.size });
  try {
    const state = await initWebGpuState(config, params, { device });
    return new GpuRunner(entries, state, buffers, backend, config);
  } catch (error) {
    for (const b of buffers) b.destroy();
    throw error;
  }
}
