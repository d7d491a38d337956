/**
 * Option `ema` on tfjs's webgpu backend: the averages are GPU tensors updated with no readback,
 * against a float64 reference of Keras's rule; a step skipped for a NaN gradient (decided on the
 * device) leaves them as they were; swap twice is the identity; dispose frees them.
 *
 * Without a WebGPU adapter these tests fail, unless RADAM_NO_GPU=1 says the machine has none.
 */
import "@tensorflow/tfjs-backend-webgpu";
import assert from "node:assert/strict";
import { adam } from "../../mod.ts";
import { tfOptimizer } from "../../tfjs.ts";
import {
  countReadbacks,
  onWebgpu,
  readAverages,
  readValues,
  seededVars,
  stepWith,
  tf,
  uniqueNames,
  webgpuTestOptions,
} from "./helpers.ts";

const sanitize = await webgpuTestOptions();
const named = uniqueNames("ema_webgpu");

/** A kernel and a bias with seeded values, under new names. */
const makeVars = (seed: number, rows = 40) => seededVars(named, seed, rows);

Deno.test({
  name: "tfjs webgpu: ema follows Keras's rule with no readback; a skipped step leaves it",
  ...sanitize,
  fn: onWebgpu(async () => {
    const m = 0.9;
    const vars = makeVars(3);
    const opt = tfOptimizer(adam({ lr: 0.05 }), { ema: { momentum: m }, warnOnSkip: false });
    let reference: Float64Array[] = [];
    for (let step = 1; step <= 12; step++) {
      const readbacks = countReadbacks(() => stepWith(opt, vars, step));
      if (step > 1) assert.equal(readbacks, 0); // (the first step reads the variables)
      const values = await readValues(vars);
      reference = step === 1
        ? values.map((v) => Float64Array.from(v))
        : reference.map((r, i) => r.map((a, k) => m * a + (1 - m) * values[i][k]));
    }
    const averages = await readAverages(opt);
    averages.forEach((got, i) =>
      got.forEach((g, k) => {
        const want = reference[i][k];
        assert.ok(Math.abs(g - want) <= 1e-6 * (1 + Math.abs(want)), `[${i}][${k}]`);
      })
    );
    assert.equal(countReadbacks(() => stepWith(opt, vars, 99, true)), 0);
    assert.deepEqual(await readAverages(opt), averages); // skipped on the device: unchanged
    const values = await readValues(vars);
    opt.averages!.swap();
    assert.deepEqual(await readValues(vars), averages);
    opt.averages!.swap();
    assert.deepEqual(await readValues(vars), values);
    opt.dispose();
    tf.dispose(vars);
  }),
});

Deno.test({
  name: "tfjs webgpu: a first step skipped on the device does not start the averages",
  ...sanitize,
  fn: onWebgpu(async () => {
    const m = 0.5;
    const vars = makeVars(5);
    const opt = tfOptimizer(adam({ lr: 0.05 }), { ema: { momentum: m }, warnOnSkip: false });
    stepWith(opt, vars, 1, true); // skipped on the device: as on cpu, no average yet
    stepWith(opt, vars, 2); // the first step taken: each average is its variable
    assert.deepEqual(await readAverages(opt), await readValues(vars));
    stepWith(opt, vars, 3, true); // skipped again: unchanged
    const started = await readValues(vars);
    assert.deepEqual(await readAverages(opt), started);
    stepWith(opt, vars, 4);
    const values = await readValues(vars);
    const averages = await readAverages(opt);
    averages.forEach((got, i) =>
      got.forEach((g, k) => {
        const want = m * started[i][k] + (1 - m) * values[i][k];
        assert.ok(Math.abs(g - want) <= 1e-6 * (1 + Math.abs(want)), `[${i}][${k}]`);
      })
    );
    opt.dispose();
    tf.dispose(vars);
  }),
});
