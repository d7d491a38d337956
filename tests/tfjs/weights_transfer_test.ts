/**
 * Moving an optimizer's state between optimizers and models. A loaded model compiled again goes
 * on with its moments when given its loaded optimizer (`model.optimizer`), or a new one that
 * took that optimizer's `getWeights()` by `setWeights`, bit for bit as the loaded model trained
 * on; a new optimizer alone starts fresh, as tfjs's own optimizers do. And the weights (or a
 * checkpoint) of one model given to the optimizer of a model whose variables of those names
 * have other shapes are refused with a RangeError naming the weight, its shape and the
 * variable's, the optimizer left exactly as it was (they loaded, where one of them fitted: the
 * others silently started fresh).
 */
import assert from "node:assert/strict";
import { ranger, saveState } from "../../mod.ts";
import { tfOptimizer } from "../../tfjs.ts";
import {
  data,
  disposeModels,
  fitInOrder,
  optimizerSnapshot,
  saveToMemory,
  setSeededWeights,
  tf,
  tfl,
  uniqueNames,
  useBackend,
  weightValues,
} from "./helpers.ts";

const name = uniqueNames("transfer_");

/** A dense layer named `layer` from `inputs` to 3 units, with seeded weights, compiled. */
function model(layer: string, inputs: number, optimizer = tfOptimizer(ranger({ lr: 0.05 }))) {
  const m = tfl.sequential({
    layers: [tfl.layers.dense({ units: 3, inputShape: [inputs], name: layer })],
  });
  setSeededWeights(m, 3);
  m.compile({ optimizer, loss: "meanSquaredError" });
  return m;
}

Deno.test("tfjs: a loaded model compiled again goes on with its loaded optimizer, or with its weights carried over", async () => {
  await useBackend("cpu");
  const layer = name("loaded").replace("/", "");
  const { x, y } = data([4], 8, 11);
  const trained = model(layer, 4);
  await trained.fit(x, y, fitInOrder(2));
  const saved = await saveToMemory(trained);
  disposeModels(trained);
  const load = () => tfl.loadLayersModel(tf.io.fromMemory(saved));

  // The reference: the loaded model trained on as it was loaded.
  const reference = await load();
  await reference.fit(x, y, fitInOrder(1));
  const want = await weightValues(reference);
  assert.equal(reference.optimizer.iterations, 6);
  disposeModels(reference);

  // Compiled again with its loaded optimizer: the same bits.
  const again = await load();
  again.compile({ optimizer: again.optimizer, loss: "meanSquaredError" });
  await again.fit(x, y, fitInOrder(1));
  assert.deepEqual(await weightValues(again), want);
  disposeModels(again);

  // With a new optimizer that took the loaded one's weights: the same bits.
  const carried = await load();
  const optimizer = tfOptimizer(ranger({ lr: 0.05 }));
  await optimizer.setWeights(await carried.optimizer.getWeights());
  carried.optimizer.dispose();
  carried.compile({ optimizer, loss: "meanSquaredError" });
  await carried.fit(x, y, fitInOrder(1));
  assert.equal(optimizer.iterations, 6);
  assert.deepEqual(await weightValues(carried), want);
  disposeModels(carried);

  // A new optimizer alone starts fresh (as tfjs's own do): not the same training.
  const fresh = await load();
  fresh.optimizer.dispose();
  fresh.compile({ optimizer: tfOptimizer(ranger({ lr: 0.05 })), loss: "meanSquaredError" });
  await fresh.fit(x, y, fitInOrder(1));
  assert.equal(fresh.optimizer.iterations, 2);
  assert.notDeepEqual(await weightValues(fresh), want);
  disposeModels(fresh);
  tf.dispose([x, y]);
});

Deno.test("tfjs: another model's weights or checkpoint, of other shapes under the same names, are refused naming the weight; nothing changes", async () => {
  await useBackend("cpu");
  const layer = name("shapes").replace("/", "");
  const a = model(layer, 2);
  const da = data([2], 4, 5);
  await a.fit(da.x, da.y, fitInOrder(1));
  const optA = a.optimizer as ReturnType<typeof tfOptimizer>;
  const weights = (await optA.getWeights()).map((w) => ({
    name: w.name,
    tensor: tf.clone(w.tensor),
  }));
  const bytes = await saveState(optA.state!);
  a.dispose(); // (tfjs-layers names b's variables `<layer>/kernel_1`, `<layer>/bias_1`)
  // b: the same layer from 5 inputs: its bias fits a's, its kernel does not.
  const b = model(layer, 5);
  const db = data([5], 4, 6);
  await b.fit(db.x, db.y, fitInOrder(1));
  const optB = b.optimizer as ReturnType<typeof tfOptimizer>;
  const before = await optimizerSnapshot(optB);
  const [kernel] = b.trainableWeights.map((w) => w.name);
  await assert.rejects(() => optB.setWeights(weights), (e: Error) => {
    assert.ok(e instanceof RangeError, e.message);
    assert.ok(e.message.includes(JSON.stringify(`${layer}/kernel/m`)), e.message);
    assert.ok(e.message.includes("[2, 3]") && e.message.includes("[5, 3]"), e.message);
    assert.ok(e.message.includes(JSON.stringify(kernel)), e.message);
    return true;
  });
  assert.deepEqual(await optimizerSnapshot(optB), before);
  await assert.rejects(() => optB.loadState(bytes), (e: Error) => {
    assert.ok(e instanceof RangeError, e.message);
    assert.ok(e.message.includes(JSON.stringify(`${layer}/kernel`)), e.message);
    assert.ok(e.message.includes(JSON.stringify(kernel)), e.message);
    return true;
  });
  assert.deepEqual(await optimizerSnapshot(optB), before);
  // The next step is as if nothing had been given.
  await b.fit(db.x, db.y, fitInOrder(1));
  assert.equal(optB.iterations, before.iterations + 1);
  optA.dispose();
  disposeModels(b);
  tf.dispose([da.x, da.y, db.x, db.y, ...weights.map((w) => w.tensor)]);
});
