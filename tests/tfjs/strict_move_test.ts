/**
 * Option `strict: true` refuses a change of the trained variables at the step where tfjs moved
 * onto or off its wasm backend too (the state then moves with it): the same RangeError as on the
 * backend the state is on, nothing changed; the state's own variables then move and step.
 */
import assert from "node:assert/strict";
import { radam } from "../../mod.ts";
import { tfOptimizer } from "../../tfjs.ts";
import "@tensorflow/tfjs-backend-webgpu";
import {
  optimizerSnapshot,
  rangeErrorMessage,
  seededVars,
  stepWith,
  tf,
  uniqueNames,
  useBackend,
  webgpuTestOptions,
} from "./helpers.ts";

const name = uniqueNames("strict-move");

for (const [from, to] of [["cpu", "wasm"], ["wasm", "cpu"]]) {
  Deno.test(`tfjs: strict refuses a change of the variables at the step where tfjs moved from ${from} to ${to}, nothing changed`, async () => {
    await useBackend(from);
    const vars = seededVars(name, 3, 4);
    const extra = tf.variable(tf.ones([2]), true, name("extra"));
    const opt = tfOptimizer(radam({ lr: 0.1 }), { strict: true });
    try {
      stepWith(opt, vars, 1);
      const changes = [[vars[0]], [...vars, extra], [vars[1], extra]];
      const plain = changes.map((change) => rangeErrorMessage(() => stepWith(opt, change, 2)));
      const state = opt.state, before = await optimizerSnapshot(opt);
      await useBackend(to);
      for (const [i, change] of changes.entries()) {
        assert.equal(rangeErrorMessage(() => stepWith(opt, change, 2)), plain[i]);
        assert.equal(opt.state, state, "the state was made again");
      }
      assert.deepEqual(await optimizerSnapshot(opt), before);
      stepWith(opt, vars, 3); // (its own variables: moved, stepped)
      assert.equal(opt.iterations, 2);
    } finally {
      opt.dispose();
      tf.dispose([...vars, extra]);
    }
  });
}

Deno.test(
  "tfjs: strict refuses a change of the variables at the step where tfjs moved from cpu to webgpu, nothing changed",
  await webgpuTestOptions(),
  async () => {
    await useBackend("cpu");
    const vars = seededVars(name, 5, 4);
    const extra = tf.variable(tf.ones([2]), true, name("extra"));
    const opt = tfOptimizer(radam({ lr: 0.1 }), { strict: true });
    try {
      stepWith(opt, vars, 1);
      const changes = [[vars[0]], [...vars, extra], [vars[1], extra]];
      const plain = changes.map((change) => rangeErrorMessage(() => stepWith(opt, change, 2)));
      const state = opt.state, before = await optimizerSnapshot(opt);
      await useBackend("webgpu");
      for (const [i, change] of changes.entries()) {
        assert.equal(rangeErrorMessage(() => stepWith(opt, change, 2)), plain[i]);
        assert.equal(opt.state, state, "the state was moved");
      }
      assert.equal(opt.backend, "wasm");
      await useBackend("cpu");
      assert.deepEqual(await optimizerSnapshot(opt), before);
      await useBackend("webgpu");
      stepWith(opt, vars, 3); // (its own variables: moved, stepped)
      assert.equal(opt.iterations, 2);
      assert.equal(opt.state!.backend, "webgpu");
    } finally {
      opt.dispose();
      tf.dispose([...vars, extra]);
      await useBackend("cpu");
    }
  },
);
