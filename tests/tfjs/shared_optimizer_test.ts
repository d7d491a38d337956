/**
 * One optimizer given to two models (the README's "State by variable name"): both train under
 * one step count, as with tfjs's own Adam (whose `iterations` counts the steps of both), so the
 * second model's variables start fresh at the count the first reached: its first step is that
 * of a fresh optimizer given that count (`setWeights` of `iter` alone), bit for bit, and its
 * update smaller than a fresh optimizer's step 1 (Adam's bias corrections start late).
 */
import assert from "node:assert/strict";
import { adam } from "../../mod.ts";
import { tfOptimizer } from "../../tfjs.ts";
import { CPU_BACKENDS, denseNet, disposeModels, tf, useBackend, weightValues } from "./helpers.ts";

/** How far `model`'s weights moved from `before`: the largest change of an element. */
async function moved(model: ReturnType<typeof denseNet>, before: Float32Array[]) {
  const after = await weightValues(model);
  return Math.max(...after.flatMap((w, i) => [...w].map((x, j) => Math.abs(x - before[i][j]))));
}

for (const backend of CPU_BACKENDS) {
  Deno.test(`tfjs ${backend}: one optimizer on two models counts the steps of both, as tfjs's Adam; the second starts fresh at that count`, async () => {
    await useBackend(backend);
    const x = tf.randomNormal([8, 6], 0, 1, "float32", 3);
    const y = tf.randomNormal([8, 3], 0, 1, "float32", 4);
    const fit = { epochs: 1, batchSize: 8, shuffle: false, verbose: 0 as const };
    const steps = 10;
    // Ours and tfjs's Adam, each shared by two models: A trains, then B.
    const counts: number[][] = [];
    const shared = tfOptimizer(adam({ lr: 0.01, eps: 1e-7 })), theirs = tf.train.adam(0.01);
    const models = [shared, theirs].map((optimizer) => {
      const a = denseNet(1), b = denseNet(2);
      for (const m of [a, b]) m.compile({ optimizer, loss: "meanSquaredError" });
      return { a, b, optimizer };
    });
    for (const { a, b, optimizer } of models) {
      await a.fit(x, y, { ...fit, epochs: steps });
      await b.fit(x, y, fit);
      counts.push([optimizer.iterations]);
    }
    assert.deepEqual(counts, [[steps + 1], [steps + 1]]);
    // B's step under the shared optimizer is that of a fresh one given A's count: bit for bit.
    const [late, fresh] = [denseNet(2), denseNet(2)];
    const before = await weightValues(late);
    const given = tfOptimizer(adam({ lr: 0.01, eps: 1e-7 }));
    const iter = tf.scalar(steps, "int32");
    await given.setWeights([{ name: "iter", tensor: iter }]);
    late.compile({ optimizer: given, loss: "meanSquaredError" });
    fresh.compile({
      optimizer: tfOptimizer(adam({ lr: 0.01, eps: 1e-7 })),
      loss: "meanSquaredError",
    });
    await late.fit(x, y, fit);
    await fresh.fit(x, y, fit);
    assert.deepEqual(await weightValues(models[0].b), await weightValues(late));
    // (Its bias corrections late: a smaller first update than a fresh optimizer's step 1.)
    assert.ok(await moved(late, before) < 0.75 * await moved(fresh, before));
    tf.dispose([x, y, iter]);
    for (const { a, b } of models) {
      a.dispose();
      b.dispose();
    }
    shared.dispose();
    theirs.dispose();
    disposeModels(late, fresh);
  });
}
