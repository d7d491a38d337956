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

Deno.test({
  name:
    "tfjs webgpu: the first step after the variables trained change asks a schedule only for the steps whose scalars were not computed yet",
  ...sanitize,
  async fn() {
    await useBackend("webgpu");
    const a = tf.variable(tf.ones([64]), true, "lr_callback_webgpu/a");
    const b = tf.variable(tf.ones([3]), true, "lr_callback_webgpu/b");
    const [ga, gb] = [tf.onesLike(a), tf.onesLike(b)];
    const asked: number[] = [];
    const optimizer = tfOptimizer(adam({ lr: (t) => (asked.push(t), 1e-3) }));
    // Far more steps than the device reports on before the host goes on: every step since its
    // last report is one the device may be at when the next starts (some may be skipped).
    for (let t = 0; t < 1200; t++) optimizer.applyGradients({ [a.name]: ga });
    const before = asked.length;
    assert.deepEqual(new Set(asked).size, before, "each step's asked once");
    asked.length = 0;
    optimizer.applyGradients({ [a.name]: ga, [b.name]: gb }); // (b joins: a new state)
    // Only t = 1201 (its own, written again) and those ahead not yet written: never 1088.
    assert.ok(asked.length <= 64, `asked ${asked.length} times`);
    assert.ok(asked.every((t) => t >= 1201 && t < 1201 + 64), `asked for ${asked}`);
    await optimizer.getWeights();
    assert.equal(optimizer.iterations, 1201);
    optimizer.dispose();
    tf.dispose([a, b, ga, gb]);
  },
});

Deno.test({
  name:
    "tfjs webgpu: a change that drops the last parameter group takes the scalars of the steps the device may be at, with the results of a run that awaited before it",
  ...sanitize,
  async fn() {
    await useBackend("webgpu");
    const [ga, gb] = [tf.ones([16]), tf.ones([3])];
    /** The kernel after 1200 steps over both, a change leaving the bias out, and 30 more. */
    const run = async (awaited: boolean) => {
      const a = tf.variable(tf.ones([16]), true, `lr_callback_webgpu/k${awaited}`);
      const b = tf.variable(tf.ones([3]), true, `lr_callback_webgpu/k${awaited}_bias`);
      const asked: number[] = [];
      const optimizer = tfOptimizer(adam({
        lr: (t) => (asked.push(t), 1e-3 * (1 + (t % 7))),
        groups: [{ match: /bias$/, lrScale: 0.5 }],
      }));
      for (let t = 0; t < 1200; t++) optimizer.applyGradients({ [a.name]: ga, [b.name]: gb });
      if (awaited) await optimizer.getWeights();
      asked.length = 0;
      optimizer.applyGradients({ [a.name]: ga }); // (one group fewer: a smaller ring entry)
      assert.ok(asked.length <= 64, `asked ${asked.length} times`);
      for (let t = 0; t < 29; t++) optimizer.applyGradients({ [a.name]: ga });
      const values = await a.data();
      optimizer.dispose();
      tf.dispose([a, b]);
      return values;
    };
    assert.deepEqual(await run(false), await run(true));
    tf.dispose([ga, gb]);
  },
});
