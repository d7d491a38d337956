/**
 * Edges of the gradients accumulated and the moving averages on tfjs's CPU backends: a read of
 * the averages that fails leaves no copy of the sums behind (getWeights, saveState).
 */
import assert from "node:assert/strict";
import { adam, saveState } from "../../mod.ts";
import { tfOptimizer } from "../../tfjs.ts";
import { seededVars, stepWith, tf, uniqueNames, useBackend } from "./helpers.ts";

const named = uniqueNames("extras_edges");

Deno.test("tfjs: a failed read of the averages frees the copies of the sums made before it", async () => {
  await useBackend("cpu");
  const vars = seededVars(named, 1, 4);
  const opt = tfOptimizer(adam(), { gradientAccumulationSteps: 3, ema: true });
  for (let k = 0; k < 4; k++) stepWith(opt, vars, k); // (a step, then one call summed)
  assert.equal(opt.accumulatedBatches, 1);
  const failure = new Error("out of memory");
  Object.defineProperty(opt.averages, "weights", {
    value: () => {
      throw failure;
    },
  });
  const before = tf.memory().numTensors;
  await assert.rejects(opt.getWeights(), (error) => error === failure);
  assert.equal(tf.memory().numTensors, before);
  await assert.rejects(saveState(opt.state!), (error) => error === failure);
  assert.equal(tf.memory().numTensors, before);
  opt.dispose();
  tf.dispose(vars);
});
