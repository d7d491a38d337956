/**
 * tfjs's device lost while a change of the set of variables on its webgpu backend reads back the
 * state of those left out: the state kept aside cannot be read, and getWeights, the next step and
 * dispose say so (the device was lost, how to resume) rather than wait for it or fail otherwise.
 * (A file of its own: tfjs's device stays lost for the tests after.)
 */
import "@tensorflow/tfjs-backend-webgpu";
import assert from "node:assert/strict";
import { radam } from "../../mod.ts";
import { tfOptimizer } from "../../tfjs.ts";
import { shapedVars, tf, useBackend, webgpuTestOptions } from "./helpers.ts";
import { gpuBackendOf, readKeptAside } from "../../tfjs/gpu_change.ts";
import { entryOf } from "../../tfjs/layout.ts";

const sanitize = await webgpuTestOptions();

const LOST = /device of this optimizer state was lost.*resume/is;

Deno.test({
  name:
    "tfjs webgpu: the read back of the state left out at a change, begun as the device is lost, rejects saying so; the halt hook is not called",
  ...sanitize,
  async fn() {
    const own = await (await navigator.gpu.requestAdapter())!.requestDevice();
    const params = { a: new Float32Array(300), b: new Float32Array(64) };
    const state = await radam({ lr: 1e-2 }).init(params, { device: own });
    const leaving = [entryOf("b", [64], false)];
    const faults: unknown[] = [];
    const { kept, done } = readKeptAside(gpuBackendOf(state), leaving, (e) => faults.push(e));
    own.destroy();
    await assert.rejects(() => kept[0].ready!, LOST);
    assert.equal(await done, undefined);
    assert.deepEqual(faults, []);
  },
});

Deno.test({
  name:
    "tfjs webgpu: tfjs's device lost while a change reads back the state left out: getWeights and the next step say the device was lost",
  ...sanitize,
  async fn() {
    await useBackend("webgpu");
    const shapes = [[70, 64], [64], [64, 64], [3]];
    const vars = shapedVars("lost", shapes);
    const opt = tfOptimizer(radam({ lr: 1e-2 }));
    const stepOver = (set: number[]) => {
      const grads = set.map((i) => tf.onesLike(vars[i]));
      opt.applyGradients(Object.fromEntries(set.map((i, k) => [vars[i].name, grads[k]])));
      tf.dispose(grads);
    };
    stepOver([0, 1, 2, 3]);
    await opt.getWeights(); // (the step reported)
    stepOver([2, 3]); // 0 and 1 left out: their state read back
    (tf.backend() as unknown as { device: GPUDevice }).device.destroy();
    await assert.rejects(() => opt.getWeights(), LOST);
    assert.throws(() => stepOver([0, 1, 2, 3]), LOST);
    opt.dispose();
  },
});
