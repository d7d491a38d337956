/**
 * Ranger (gradient centralization) on tfjs's webgpu backend given a kernel of no elements (a
 * layer of 0 inputs) beside others: tfjs's mean over no elements failed to dispatch there, so no
 * step ran. Without a WebGPU adapter this fails, unless RADAM_NO_GPU=1 says the machine has none.
 */
import "@tensorflow/tfjs-backend-webgpu";
import assert from "node:assert/strict";
import { ranger } from "../../mod.ts";
import { tfOptimizer } from "../../tfjs.ts";
import { tf, uniqueNames, useBackend, webgpuTestOptions } from "./helpers.ts";

const named = uniqueNames("emptykernel");
const sanitize = await webgpuTestOptions();

/** Three Ranger steps of a kernel of no elements and a [2, 3] kernel; the latter's values. */
async function rangerWithEmptyKernel(backend: string): Promise<Float32Array> {
  await useBackend(backend);
  const empty = tf.variable(tf.zeros([0, 3]), true, named("empty/kernel"));
  const kernel = tf.variable(tf.tensor2d([[1, 2, 3], [-1, 0, 4]]), true, named("dense/kernel"));
  const optimizer = tfOptimizer(ranger({ lr: 0.1 }));
  for (let i = 0; i < 3; i++) {
    const grads = {
      [empty.name]: tf.zeros([0, 3]),
      [kernel.name]: tf.tensor2d([[1, 0, 2], [3, 1, -1]]),
    };
    optimizer.applyGradients(grads);
    tf.dispose(Object.values(grads));
  }
  const values = (await kernel.data() as Float32Array).slice();
  optimizer.dispose();
  tf.dispose([empty, kernel]);
  return values;
}

Deno.test({
  name: "tfjs (webgpu): Ranger steps beside a kernel of no elements, as on cpu",
  ...sanitize,
  fn: async () => {
    const cpu = await rangerWithEmptyKernel("cpu");
    const gpu = await rangerWithEmptyKernel("webgpu");
    assert.notDeepEqual([...cpu], [1, 2, 3, -1, 0, 4]);
    for (let i = 0; i < cpu.length; i++) {
      assert.ok(Math.abs(gpu[i] - cpu[i]) <= 1e-6 * Math.max(1, Math.abs(cpu[i])), `element ${i}`);
    }
  },
});
