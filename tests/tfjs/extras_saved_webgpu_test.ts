/**
 * Under `nonFinite: "throw"` on tfjs's webgpu backend, calls 1 to N − 1 of an accumulation are
 * checked on the device only (at the step of their mean, which halts): a save between them of a
 * non-finite sum, which `setWeights` and `optimizer.loadState` would refuse, is refused instead,
 * naming the variable, and leaves no tensor behind.
 *
 * Without a WebGPU adapter these tests fail, unless RADAM_NO_GPU=1 says the machine has none.
 */
import "@tensorflow/tfjs-backend-webgpu";
import assert from "node:assert/strict";
import { adam, saveState } from "../../mod.ts";
import { tfOptimizer } from "../../tfjs.ts";
import { seededVars, tf, uniqueNames, useBackend, webgpuTestOptions } from "./helpers.ts";

const sanitize = await webgpuTestOptions();
const named = uniqueNames("extras_saved_webgpu");

Deno.test({
  name: "tfjs webgpu: under nonFinite throw, a non-finite sum is refused by the save, not the load",
  ...sanitize,
  fn: async () => {
    await useBackend("webgpu");
    const vars = seededVars(named, 3, 4);
    const opt = tfOptimizer(adam({ lr: 0.05, nonFinite: "throw" }), {
      gradientAccumulationSteps: 3,
    });
    const grads = vars.map((v, i) => i === 0 ? tf.fill(v.shape, Infinity) : tf.onesLike(v));
    opt.applyGradients(Object.fromEntries(vars.map((v, i) => [v.name, grads[i]])));
    assert.equal(opt.accumulatedBatches, 1); // (not checked on the host: the device's step will)
    const before = tf.memory().numTensors;
    await assert.rejects(opt.getWeights(), (error: Error) => {
      assert.ok(error instanceof RangeError, String(error));
      assert.match(error.message, new RegExp(`"${vars[0].name}/accum"\\[0\\]`));
      assert.match(error.message, /nonFinite: "throw"/);
      return true;
    });
    assert.equal(tf.memory().numTensors, before); // (the copies made for the call disposed)
    await assert.rejects(saveState(opt.state!), (error: Error) => {
      assert.ok(error instanceof RangeError, String(error));
      assert.match(error.message, new RegExp(`"${vars[0].name}.accum"\\[0\\]`));
      return true;
    });
    assert.equal(tf.memory().numTensors, before);
    opt.dispose();
    tf.dispose([...grads, ...vars]);
  },
});
