/**
 * A TensorFlow.js user who lowers the learning rate in an epoch's callback
 * (`model.optimizer.learningRate = x`, as with tfjs's own optimizers) on tfjs's webgpu backend:
 * after the first step that is a TypeError (the device holds the next steps' scalars), which
 * said only to save and load the model; it says too that a schedule given from the start, or one
 * reading a variable, changes it during training, and that way works there.
 *
 * Without a WebGPU adapter these tests fail, unless RADAM_NO_GPU=1 says the machine has none.
 */
import "@tensorflow/tfjs-backend-webgpu";
import assert from "node:assert/strict";
import { adam } from "../../mod.ts";
import { tfOptimizer } from "../../tfjs.ts";
import { tf, useBackend, webgpuTestOptions } from "./helpers.ts";

const sanitize = await webgpuTestOptions();

Deno.test({
  name:
    "tfjs webgpu: learningRate set after the first step says how to change it during training; a schedule reading a variable does",
  ...sanitize,
  async fn() {
    await useBackend("webgpu");
    const w = tf.variable(tf.tensor1d([1, -2, 3, 4, 5]), true, "lr_callback_webgpu/w");
    const g = tf.ones([5]);
    const fixed = tfOptimizer(adam({ lr: 0.01 }));
    fixed.applyGradients({ [w.name]: g });
    assert.throws(() => (fixed.learningRate = 0.001), {
      name: "TypeError",
      message:
        /to change it during training \(an epoch's callback\), give lr as a schedule from the start, tfOptimizer\(radam\(\{ lr: \(t\) => … \}\)\), or one reading a variable of yours, lr: \(\) => lr \(the GPU's steps read it up to 64 steps ahead\)$/,
    });
    fixed.dispose();
    // What it says: the variable set mid-run is read within 64 steps, and holds from then on.
    let lr = 0.01;
    const scheduled = tfOptimizer(adam({ lr: () => lr }));
    for (let t = 0; t < 3; t++) scheduled.applyGradients({ [w.name]: g });
    const early = await w.data();
    lr = 0;
    for (let t = 0; t < 65; t++) scheduled.applyGradients({ [w.name]: g });
    const settled = await w.data();
    assert.notDeepEqual(settled, early);
    for (let t = 0; t < 5; t++) scheduled.applyGradients({ [w.name]: g });
    assert.deepEqual(await w.data(), settled);
    assert.equal(scheduled.iterations, 73);
    scheduled.dispose();
    tf.dispose([w, g]);
  },
});
