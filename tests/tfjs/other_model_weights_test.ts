/**
 * Model A's optimizer weights (or checkpoint) given to model B's optimizer while A lives: every
 * weight fits a trainable variable registered with TensorFlow.js (A's), so `setWeights` and
 * `loadState` took them; but the moments go to the variable of their name, and tfjs-layers names
 * B's layers otherwise (`dense_Dense3` for A's `dense_Dense1`), so B's first step started every
 * variable from zero moments at A's step count (its bias corrections late), A's moments kept
 * aside and saved with B, silently. That step is now a RangeError naming both sides and what to
 * do, nothing changed; the weights named for B's variables then resume B as A goes on. A load
 * whose moments are a frozen layer's (not trainable) still lets the step train the others.
 */
import assert from "node:assert/strict";
import { adam, saveState } from "../../mod.ts";
import { type TfOptimizer, tfOptimizer } from "../../tfjs.ts";
import {
  CPU_BACKENDS,
  denseNet,
  disposeModels,
  tf,
  type tfl,
  uniqueNames,
  useBackend,
  weightValues,
} from "./helpers.ts";

const named = uniqueNames("other-model");

/** A model of `seed` compiled with a new Adam optimizer. */
function compiled(seed: number): [tfl.Sequential, TfOptimizer] {
  const model = denseNet(seed), optimizer = tfOptimizer(adam({ lr: 0.05 }));
  model.compile({ optimizer, loss: "meanSquaredError" });
  return [model, optimizer];
}

/** B's first `fit` is refused with the RangeError naming A's and B's variables; B unchanged. */
async function refusedFit(a: tfl.Sequential, b: tfl.Sequential, x: tf.Tensor, y: tf.Tensor) {
  const before = await weightValues(b);
  const optimizer = b.optimizer as unknown as TfOptimizer;
  const iterations = optimizer.iterations, state = optimizer.state;
  const [aName, bName] = [a, b].map((m) => JSON.stringify(m.trainableWeights[0].name));
  await assert.rejects(
    b.fit(x, y, { epochs: 1, verbose: 0 }),
    (e) =>
      e instanceof RangeError &&
      e.message.startsWith(
        "The optimizer's weights (given to setWeights or loadState) are those of other " +
          `variables, ${aName}`,
      ) && e.message.includes(`none of this step's, ${bName}`) &&
      e.message.includes(`weights' step count, ${iterations}`),
  );
  assert.deepEqual(await weightValues(b), before);
  assert.equal(optimizer.iterations, iterations);
  assert.equal(optimizer.state, state); // (none after setWeights; the loaded one's after loadState)
}

for (const backend of CPU_BACKENDS) {
  Deno.test(`tfjs ${backend}: model A's optimizer weights given to B's optimizer: B's step is a RangeError; named for B's variables, they resume B as A`, async () => {
    await useBackend(backend);
    const [a, oa] = compiled(5), [b, ob] = compiled(5);
    const x = tf.randomNormal([8, 6], 0, 1, "float32", 1),
      y = tf.randomNormal([8, 3], 0, 1, "float32", 2);
    await a.fit(x, y, { epochs: 3, verbose: 0 });
    const weights = await oa.getWeights();
    await ob.setWeights(weights); // (they fit A's variables, registered: taken)
    await refusedFit(a, b, x, y);
    // What the error says to do: each weight named for B's variable of the same place.
    const names = new Map(
      a.trainableWeights.map((w, i) => [w.name, b.trainableWeights[i].name]),
    );
    const renamed = weights.map(({ name, tensor }) => {
      const at = name.lastIndexOf("/");
      return { name: (names.get(name.slice(0, at)) ?? name.slice(0, at)) + name.slice(at), tensor };
    });
    await ob.setWeights(renamed);
    b.setWeights(a.getWeights());
    await a.fit(x, y, { epochs: 2, verbose: 0, shuffle: false });
    await b.fit(x, y, { epochs: 2, verbose: 0, shuffle: false });
    assert.equal(ob.iterations, oa.iterations);
    assert.deepEqual(await weightValues(b), await weightValues(a));
    tf.dispose([x, y]);
    disposeModels(a, b);
  });

  Deno.test(`tfjs ${backend}: model A's checkpoint loaded by B's optimizer: B's step is a RangeError, nothing changed`, async () => {
    await useBackend(backend);
    const [a, oa] = compiled(6), [b, ob] = compiled(6);
    const x = tf.ones([4, 6]), y = tf.zeros([4, 3]);
    await a.fit(x, y, { epochs: 2, verbose: 0 });
    await ob.loadState(await saveState(oa.state!));
    await refusedFit(a, b, x, y);
    tf.dispose([x, y]);
    disposeModels(a, b);
  });
}

Deno.test("tfjs: weights whose moments are a frozen variable's (not trainable) let a step train the others", async () => {
  await useBackend("cpu");
  const v = tf.variable(tf.tensor1d([1, 2]), true, named("frozen"));
  const w = tf.variable(tf.tensor1d([3, 4]), true, named("trained"));
  const first = tfOptimizer(adam({ lr: 0.1 }));
  const g = tf.tensor1d([0.5, -0.5]);
  first.applyGradients({ [v.name]: g });
  const next = tfOptimizer(adam({ lr: 0.1 }));
  await next.setWeights(await first.getWeights());
  v.trainable = false;
  next.applyGradients({ [w.name]: g }); // (w starts fresh; v's moments stay aside)
  assert.equal(next.iterations, 2);
  assert.deepEqual((await next.getWeights()).map((x) => x.name), [
    "iter",
    `${w.name}/m`,
    `${v.name}/m`,
    `${w.name}/v`,
    `${v.name}/v`,
  ]);
  first.dispose();
  next.dispose();
  tf.dispose([v, w, g]);
});
