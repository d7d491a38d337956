// Type-checked by the packed-package test with `tsc --strict`, library files checked too (no
// skipLibCheck): both entry points beside tfjs-core 4.22, whose @webgpu/types 0.1.38 declare the
// WebGPU globals. Each @ts-expect-error must be an error, so the types are not `any`.
import * as tf from "@tensorflow/tfjs-core";
import {
  type GpuTensor,
  loadState,
  type OptimizerState,
  radam,
  ranger,
  readParams,
  saveState,
  step,
} from "@optim/radam";
import { type TfOptimizer, tfOptimizer } from "@optim/radam/tfjs";

export async function core(): Promise<Float32Array> {
  let state: OptimizerState = await radam({ lr: 1e-3 }).init({
    w: new Float32Array(4),
  });
  state = step(state, { w: new Float32Array([0.1, 0.2, 0.3, 0.4]) });
  const bytes: Uint8Array = await saveState(state);
  const params: Record<string, Float32Array> = await readParams(
    await loadState(bytes),
  );
  // @ts-expect-error: a learning rate is a number or a schedule, not a string
  radam({ lr: "1e-3" });
  return params.w;
}

export function adapter(): tf.Optimizer {
  const optimizer: TfOptimizer = tfOptimizer(ranger({ lr: 3e-2 }));
  // @ts-expect-error: the adapter takes an optimizer of this library
  tfOptimizer(tf.train.adam(1e-3));
  return optimizer;
}

/** The app's WebGPU types (@webgpu/types, from tfjs-core) go in and come out unchanged. */
export async function gpu(
  device: GPUDevice,
  buffer: GPUBuffer,
): Promise<GPUBuffer> {
  const state = await radam().init({ w: buffer }, { device });
  const slot: GpuTensor = state.grads.w;
  device.queue.writeBuffer(
    slot.buffer,
    slot.offset,
    new Float32Array(slot.length),
  );
  step(state, { w: buffer }); // the app's GPUBuffer is a gradient, merged with the package's
  // @ts-expect-error: an Array is not
  step(state, { w: [1, 2] });
  return slot.buffer;
}
