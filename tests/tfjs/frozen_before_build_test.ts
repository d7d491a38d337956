/**
 * A layer made with `trainable: false` (before it is built) keeps its variables marked trainable
 * in tfjs 4.22 (a `LayerVariable`'s `tf.Variable` is made trainable; only freezing a built layer
 * marks them not), which `model.fit` does not train: it gives the optimizer the model's trainable
 * weights. With option `gradientAccumulationSteps`, the sums of a resumed run (`setWeights`) of
 * such a layer's variables, given no gradient since, were stepped into them at the N-th call;
 * they are dropped, as for a layer frozen after it was built: the two runs are the same.
 */
import assert from "node:assert/strict";
import { adam } from "../../mod.ts";
import { tfOptimizer } from "../../tfjs.ts";
import { tf, tfl, useBackend } from "./helpers.ts";

/** A weight as getWeights gives it. */
type NamedTensor = { name: string; tensor: tf.Tensor };

/** A dense 3 → 2 → 1 net, its first layer ("base") frozen `before` or `after` it is built, or not. */
function model(frozen: "before" | "after" | "none"): tfl.Sequential {
  const m = tfl.sequential();
  m.add(tfl.layers.dense({
    units: 2,
    inputShape: [3],
    name: "frozen-before-build-base",
    trainable: frozen !== "before",
    kernelInitializer: "ones",
  }));
  m.add(
    tfl.layers.dense({ units: 1, name: "frozen-before-build-head", kernelInitializer: "ones" }),
  );
  if (frozen === "after") m.getLayer("frozen-before-build-base").trainable = false;
  return m;
}

/** The weights of a run over every layer stopped mid-accumulation, its model and optimizer gone. */
async function resumedWeights(x: tf.Tensor, y: tf.Tensor): Promise<NamedTensor[]> {
  const m = model("none");
  m.compile({
    optimizer: tfOptimizer(adam({ lr: 0.1 }), { gradientAccumulationSteps: 2 }),
    loss: "meanSquaredError",
  });
  await m.fit(x, y, { epochs: 3, batchSize: 4, verbose: 0 }); // (a step, then a call summed)
  const weights = (await m.optimizer.getWeights()).map((w) => ({
    name: w.name,
    tensor: tf.clone(w.tensor),
  }));
  assert.ok(weights.some((w) => w.name === "frozen-before-build-base/kernel/accum"));
  m.optimizer.dispose();
  m.dispose();
  return weights;
}

Deno.test("tfjs: model.fit with gradient accumulation does not step a layer made with trainable: false by the sums resumed", async () => {
  await useBackend("cpu");
  const x = tf.ones([4, 3]), y = tf.zeros([4, 1]);
  const weights = await resumedWeights(x, y);
  const runs: Float32Array[][] = [];
  for (const frozen of ["before", "after"] as const) {
    const m = model(frozen);
    const base = m.getLayer("frozen-before-build-base");
    assert.equal(base.trainable, false);
    const opt = tfOptimizer(adam({ lr: 0.1 }), { gradientAccumulationSteps: 2 });
    m.compile({ optimizer: opt, loss: "meanSquaredError" });
    await opt.setWeights(weights);
    const before = base.getWeights().map((w) => w.dataSync().slice() as Float32Array);
    await m.fit(x, y, { epochs: 1, batchSize: 4, verbose: 0 }); // (the N-th call: a step)
    assert.equal(opt.iterations, 2);
    const after = base.getWeights().map((w) => w.dataSync().slice() as Float32Array);
    assert.deepEqual(after, before, `frozen ${frozen} it was built: stepped`);
    runs.push(m.getWeights().map((w) => w.dataSync().slice() as Float32Array));
    opt.dispose();
    m.dispose();
  }
  assert.deepEqual(runs[0], runs[1]);
  tf.dispose([x, y, ...weights.map((w) => w.tensor)]);
});
