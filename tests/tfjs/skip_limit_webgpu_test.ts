/**
 * A TensorFlow.js optimizer resumed from a checkpoint that has skipped 2⁵³ − 1 steps refuses the
 * next skip on webgpu as on the CPU (there at the call, on the GPU at the first call after the
 * device ran the step): the count stays one a checkpoint holds, and saved, it loads again.
 *
 * Without a WebGPU adapter these tests fail, unless RADAM_NO_GPU=1 says the machine has none.
 */
import "@tensorflow/tfjs-backend-webgpu";
import assert from "node:assert/strict";
import { adam, saveState } from "../../mod.ts";
import { tfOptimizer } from "../../tfjs.ts";
import { edit } from "../checkpoint_files.ts";
import { tf, uniqueNames, useBackend, webgpuTestOptions } from "./helpers.ts";

const sanitize = await webgpuTestOptions();
const name = uniqueNames("skip_limit");
const LIMIT = /cannot skip another step: it has skipped 2⁵³ − 1/;

/** A TensorFlow.js Adam that skips non-finite steps, its warning off. */
const make = () => tfOptimizer(adam({ lr: 1e-2, nonFinite: "skip" }), { warnOnSkip: false });

/**
 * An optimizer resumed, after one step of `w` by `good`, from that state's checkpoint edited to
 * say it has skipped `skipped` steps.
 */
async function resumedAt(w: tf.Variable, good: tf.Tensor, skipped: number) {
  const first = make();
  first.applyGradients({ [w.name]: good });
  const bytes = edit(
    await saveState(first.state!),
    (h) => (h.__metadata__.skipped_steps = String(skipped)),
  );
  first.dispose();
  const optimizer = make();
  await optimizer.loadState(bytes);
  return optimizer;
}

for (const backend of ["cpu", "webgpu"]) {
  Deno.test({
    name: `tfjs ${backend}: a state resumed at 2^53 − 1 skipped steps refuses the next skip`,
    ...(backend === "webgpu" ? sanitize : {}),
    async fn() {
      await useBackend(backend);
      const w = tf.variable(tf.tensor1d([1, -2, 3]), true, name("w"));
      const [bad, good] = [tf.tensor1d([1, NaN, 1]), tf.ones([3])];
      const optimizer = await resumedAt(w, good, 2 ** 53 - 2);
      optimizer.applyGradients({ [w.name]: bad }); // the last one a count holds
      const values = await w.data();
      const refused = (e: unknown) => e instanceof RangeError && LIMIT.test(e.message);
      if (backend === "cpu") {
        assert.throws(() => optimizer.applyGradients({ [w.name]: bad }), refused);
      } else {
        optimizer.applyGradients({ [w.name]: bad }); // (the device decides: said at the next call)
        await assert.rejects(optimizer.getWeights(), refused);
      }
      assert.deepEqual(await w.data(), values);
      await optimizer.getWeights();
      assert.equal(optimizer.skippedSteps, Number.MAX_SAFE_INTEGER);
      const again = make();
      await again.loadState(await saveState(optimizer.state!));
      assert.equal(again.skippedSteps, Number.MAX_SAFE_INTEGER);
      optimizer.applyGradients({ [w.name]: good });
      assert.equal(optimizer.iterations, 2);
      await optimizer.getWeights();
      assert.equal(optimizer.skippedSteps, Number.MAX_SAFE_INTEGER);
      for (const o of [optimizer, again]) o.dispose();
      tf.dispose([w, bad, good]);
    },
  });
}

Deno.test({
  name:
    "tfjs webgpu: a state at 2^53 − 2 skipped steps goes on with the limit after a change of the variables trained",
  ...sanitize,
  async fn() {
    await useBackend("webgpu");
    const [w, b] = [
      tf.variable(tf.ones([3]), true, name("w")),
      tf.variable(tf.ones([2]), true, name("b")),
    ];
    const [bad, good, gb] = [tf.tensor1d([1, NaN, 1]), tf.ones([3]), tf.ones([2])];
    const optimizer = await resumedAt(w, good, 2 ** 53 - 3);
    optimizer.applyGradients({ [w.name]: bad }); // (2⁵³ − 2, on the GPU)
    optimizer.applyGradients({ [w.name]: bad, [b.name]: gb }); // a change: the last one held
    optimizer.applyGradients({ [w.name]: bad, [b.name]: gb });
    await assert.rejects(
      optimizer.getWeights(),
      (e) => e instanceof RangeError && LIMIT.test(e.message),
    );
    await optimizer.getWeights();
    assert.equal(optimizer.skippedSteps, Number.MAX_SAFE_INTEGER);
    assert.equal(optimizer.iterations, 1);
    optimizer.dispose();
    tf.dispose([w, b, bad, good, gb]);
  },
});
