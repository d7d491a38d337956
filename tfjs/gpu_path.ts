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
import { SLOW } from "../base/arena.ts";
import type { DeviceBackend } from "../base/backend.ts";
import type { Settings } from "../base/settings.ts";
import { type OptimizerState, restoreState, stateInternals } from "../core/state.ts";
import type { GpuTensor } from "../gpu/gpu_tensors.ts";
import { initWebGpuStateSync } from "../core/webgpu_state.ts";
import { dispose, step } from "../core/operations.ts";
import type { Entry } from "./layout.ts";

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
  readonly #config: Settings;

  constructor(
    readonly entries: readonly Entry[],
    state: OptimizerState<GpuTensor>,
    buffers: GPUBuffer[],
    backend: TfWebGpuBackend,
    config: Settings,
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
        if (this.#config.loop.gc && g.rank > 1) {
          const axes = [...Array(g.rank - 1).keys()];
          centralized = g = tf.tidy(() =>
            tf.sub(items[i].tensor, tf.mean(items[i].tensor, axes, true))
          );
        }
        const gpu = onGpu(g);
        if (gpu) {
          refs.push(gpu.tensorRef);
          grads[e.name] = { buffer: gpu.buffer, length: e.size };
        } else {
          // Held on the CPU by tfjs: its values are read without a GPU readback.
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
 * Makes the WebGPU state for `entries` on tfjs's device, synchronously: one parameter buffer per
 * variable (filled from the variable on the GPU, then updated in place by the step kernel), the
 * sections in `kept` (tfjs layout, by section; zeros or the parameters where absent) and the
 * step counts.
 */
export function createGpuRunner(
  config: Settings,
  entries: readonly Entry[],
  variables: readonly tf.Variable[],
  kept: ReadonlyMap<string, readonly (Float32Array | undefined)[]>,
  counts: { steps: number; skipped: number },
): GpuRunner {
  if (config.loop.gc && config.loop.clipGradNorm !== undefined) {
    throw new TypeError(
      "Options gc and clipGradNorm together are not supported on the tfjs webgpu backend (the norm must be taken before centralization, which runs in tfjs there); drop clipGradNorm or train on a CPU backend",
    );
  }
  const backend = tf.backend() as unknown as TfWebGpuBackend;
  const device = backend.device;
  const buffers = entries.map((e) =>
    device.createBuffer({
      label: `radam tfjs param ${e.name}`,
      // Exactly the tensor's bytes: tfjs reads a tensor's whole buffer back. The step kernel
      // updates it in place where its length is a multiple of 4 (it moves whole vec4s); else the
      // library steps its own copy and copies it into this buffer after the step.
      size: Math.max(4, e.size * 4),
      usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST,
    })
  );
  try {
    // The parameters: copied on the GPU from the variables (before init: LookAhead's slow
    // weights start as a copy of them).
    const encoder = device.createCommandEncoder();
    const refs: tf.Tensor[] = [];
    entries.forEach((e, i) => {
      if (e.size === 0) return;
      const gpu = onGpu(variables[i]);
      if (gpu) {
        refs.push(gpu.tensorRef);
        encoder.copyBufferToBuffer(gpu.buffer, 0, buffers[i], 0, e.size * 4);
      } else {
        device.queue.writeBuffer(
          buffers[i],
          0,
          variables[i].dataSync() as Float32Array<ArrayBuffer>,
        );
      }
    });
    device.queue.submit([encoder.finish()]);
    for (const r of refs) r.dispose();
    const params: Record<string, { buffer: GPUBuffer; length: number }> = {};
    entries.forEach((e, i) => params[e.name] = { buffer: buffers[i], length: e.size });
    const first = initWebGpuStateSync(config, params, device);
    const stateBackend = stateInternals(first).backend as DeviceBackend<GpuTensor>;
    const sections = new Set<number>();
    for (const k of kept.values()) k.forEach((d, s) => d && sections.add(s));
    for (const section of sections) {
      const data: Record<string, Float32Array> = {};
      entries.forEach((e, i) => {
        data[e.name] = kept.get(e.name)?.[section] ??
          (section === SLOW ? variables[i].dataSync() as Float32Array : new Float32Array(e.size));
      });
      stateBackend.writeSection(section, data);
    }
    const state = counts.steps === 0 && counts.skipped === 0 ? first : restoreState<GpuTensor>(
      config,
      stateBackend,
      { ...counts, shapes: entries.map((e) => [e.size]) },
    );
    return new GpuRunner(entries, state, buffers, backend, config);
  } catch (error) {
    for (const b of buffers) b.destroy();
    throw error;
  }
}

/** A tensor's data as a GPU buffer (tfjs's copy), or undefined where tfjs holds it on the CPU. */
function onGpu(t: tf.Tensor): { buffer: GPUBuffer; tensorRef: tf.Tensor } | undefined {
  try {
    const { buffer, tensorRef } = t.dataToGPU();
    return { buffer: buffer!, tensorRef };
  } catch {
    // tfjs keeps small tensors it made from host values on the CPU until a kernel needs them.
    return undefined;
  }
}
