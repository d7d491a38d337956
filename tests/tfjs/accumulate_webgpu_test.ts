/**
 * Option `gradientAccumulationSteps` on tfjs's webgpu backend: the sums are GPU tensors (no
 * readback at any call), N calls step as one call given their mean, bit for bit, and a resume by
 * `setWeights` mid-accumulation goes on as the uninterrupted run; `model.fit` holds the gradients
 * it disposes after each call, leaving no tensor behind; under `nonFinite: "throw"` a sum that
 * overflows is found on the device, by the step, and one held mid-accumulation by `getWeights`.
 *
 * Without a WebGPU adapter these tests fail, unless RADAM_NO_GPU=1 says the machine has none.
 */
import "@tensorflow/tfjs-backend-webgpu";
import assert from "node:assert/strict";
import { adam, ranger } from "../../mod.ts";
import { type SettingsHolder, type TfOptimizer, tfOptimizer } from "../../tfjs.ts";
import {
  countReadbacks,
  randoms,
  readValues,
  seededVars,
  tf,
  tfl,
  uniqueNames,
  useBackend,
  webgpuTestOptions,
} from "./helpers.ts";

const sanitize = await webgpuTestOptions();
const named = uniqueNames("accumulate_webgpu");

/** A kernel and a bias with seeded values, under new names. */
const makeVars = (seed: number, rows = 40) => seededVars(named, seed, rows);

/** A call of `opt` over `vars` with the gradients `grads`. */
function call(opt: TfOptimizer, vars: tf.Variable[], grads: tf.Tensor[]): void {
  opt.applyGradients(Object.fromEntries(vars.map((v, i) => [v.name, grads[i]])));
}

const RULES: [string, () => SettingsHolder][] = [
  ["adam", () => adam({ lr: 0.05 })],
  ["ranger", () => ranger({ lr: 0.05, k: 2 })],
];

for (const [label, make] of RULES) {
  Deno.test({
    name: `tfjs webgpu: ${label}: N = 2 calls are one call given their mean, with no readback`,
    ...sanitize,
    fn: async () => {
      await useBackend("webgpu");
      const a = makeVars(4), b = makeVars(4);
      const opt = tfOptimizer(make(), { gradientAccumulationSteps: 2 });
      const plain = tfOptimizer(make());
      for (let step = 0; step < 3; step++) {
        const grads = [0, 1].map((k) =>
          a.map((v, i) => tf.tensor(randoms(v.size, 40 * step + 2 * k + i), v.shape))
        );
        const readbacks = countReadbacks(() => {
          call(opt, a, grads[0]);
          call(opt, a, grads[1]);
        });
        if (step > 0) assert.equal(readbacks, 0); // (the first step reads the variables)
        const mean = tf.tidy(() => grads[0].map((g, i) => tf.div(tf.add(g, grads[1][i]), 2)));
        call(plain, b, mean);
        tf.dispose([...grads.flat(), ...mean]);
      }
      assert.equal(opt.iterations, 3);
      assert.deepEqual(await readValues(a), await readValues(b));
      opt.dispose();
      plain.dispose();
      tf.dispose([...a, ...b]);
    },
  });
}

Deno.test({
  name: "tfjs webgpu: setWeights resumes mid-accumulation bit for bit",
  ...sanitize,
  fn: async () => {
    await useBackend("webgpu");
    const a = makeVars(8), b = makeVars(8);
    const grads = [0, 1, 2, 3, 4].map((k) =>
      a.map((v, i) => tf.tensor(randoms(v.size, 90 + 2 * k + i), v.shape))
    );
    const opt = tfOptimizer(adam({ lr: 0.05 }), { gradientAccumulationSteps: 3 });
    for (let k = 0; k < 4; k++) call(opt, a, grads[k]);
    const saved = (await opt.getWeights()).map((w) => ({
      name: w.name.replace(a[0].name, b[0].name).replace(a[1].name, b[1].name),
      tensor: tf.clone(w.tensor),
    }));
    assert.ok(saved.some((w) => w.name === `${b[0].name}/accum`));
    a.forEach((v, i) => b[i].assign(v));
    const resumed = tfOptimizer(adam({ lr: 0.05 }), { gradientAccumulationSteps: 3 });
    await resumed.setWeights(saved);
    for (let k = 4; k < 5; k++) {
      call(opt, a, grads[k]);
      call(resumed, b, grads[k]);
    }
    assert.equal(resumed.accumulatedBatches, 2);
    const more = a.map((v) => tf.onesLike(v));
    call(opt, a, more);
    call(resumed, b, more);
    assert.equal(resumed.iterations, 2);
    assert.deepEqual(await readValues(a), await readValues(b));
    opt.dispose();
    resumed.dispose();
    tf.dispose([...grads.flat(), ...more, ...a, ...b, ...saved.map((w) => w.tensor)]);
  },
});

Deno.test({
  name: "tfjs webgpu: model.fit accumulating steps the held gradients, leaving no tensor behind",
  ...sanitize,
  fn: async () => {
    await useBackend("webgpu");
    // 3 batches of 4 an epoch, N = 2: the first batch's gradient, which fit disposes once
    // applyGradients returns, is held across the call (and an epoch's end) until the step.
    const x = tf.tensor(randoms(12 * 6, 61), [12, 6]), y = tf.tensor(randoms(12 * 3, 62), [12, 3]);
    const model = tfl.sequential({
      layers: [tfl.layers.dense({ units: 3, inputShape: [6], kernelInitializer: "ones" })],
    });
    const optimizer = tfOptimizer(adam({ lr: 0.01 }), { gradientAccumulationSteps: 2 });
    model.compile({ optimizer, loss: "meanSquaredError" });
    await model.fit(x, y, { epochs: 1, batchSize: 4, shuffle: false, verbose: 0 });
    const tensors = tf.memory().numTensors;
    await model.fit(x, y, { epochs: 2, batchSize: 4, shuffle: false, verbose: 0 });
    assert.equal(tf.memory().numTensors, tensors);
    assert.equal(optimizer.iterations, 4);
    assert.equal(optimizer.accumulatedBatches, 1);
    const values = await Promise.all(model.getWeights().map((w) => w.data()));
    assert.ok(values.every((v) => v.every(Number.isFinite)));
    model.dispose();
    optimizer.dispose();
    tf.dispose([x, y]);
  },
});

Deno.test({
  name: "tfjs webgpu: under nonFinite throw, a sum that overflows halts the step, with no readback",
  ...sanitize,
  fn: async () => {
    await useBackend("webgpu");
    const a = makeVars(12);
    const opt = tfOptimizer(adam({ lr: 0.05, nonFinite: "throw" }), {
      gradientAccumulationSteps: 2,
    });
    // Finite gradients whose sum overflows float32: checked on the device, at the step. (The
    // first call makes the state, reading the variables: a step of small gradients first.)
    const big = a.map((v) => tf.fill(v.shape, 3e38));
    const small = a.map((v) => tf.onesLike(v));
    call(opt, a, small), call(opt, a, small);
    assert.equal(countReadbacks(() => call(opt, a, big)), 0);
    call(opt, a, big); // (the step of the mean: no throw before the device reports)
    assert.equal(opt.accumulatedBatches, 0);
    const thrown: unknown[] = [];
    for (let k = 0; k < 3; k++) {
      try {
        call(opt, a, small);
        await opt.getWeights();
      } catch (error) {
        thrown.push(error);
      }
    }
    assert.ok(thrown.length > 0 && thrown[0] instanceof RangeError, String(thrown[0]));
    assert.ok(String(thrown[0]).includes(a[0].name), String(thrown[0]));
    opt.dispose();
    tf.dispose([...big, ...small, ...a]);
  },
});

Deno.test({
  name: "tfjs webgpu: under nonFinite throw, getWeights refuses a sum the device has not checked",
  ...sanitize,
  fn: async () => {
    await useBackend("webgpu");
    const a = makeVars(13);
    const opt = tfOptimizer(adam({ lr: 0.05, nonFinite: "throw" }), {
      gradientAccumulationSteps: 3,
    });
    const bad = a.map((v) => tf.fill(v.shape, Infinity));
    call(opt, a, bad); // (calls 1 to N − 1 are checked on the device at the step only)
    assert.equal(opt.accumulatedBatches, 1);
    const tensors = tf.memory().numTensors;
    await assert.rejects(opt.getWeights(), (e) =>
      e instanceof RangeError &&
      e.message.includes(`"${a[0].name}/accum"[0] to be a finite number, got Infinity`));
    assert.equal(tf.memory().numTensors, tensors);
    opt.dispose();
    tf.dispose([...bad, ...a]);
  },
});
