// The TensorFlow.js adapter of the built npm package (`@optim/radam/tfjs`) under Node, with
// tfjs-core as the peer dependency it is: bits equal to the library's own step, model.fit, and
// the state recognised by the main entry (one copy of the library behind both); and the README's
// save-and-load flow with the union package, `@tensorflow/tfjs`, as its example imports it.
import assert from "node:assert/strict";
import { test } from "node:test";
import * as tf from "@tensorflow/tfjs-core";
import "@tensorflow/tfjs-backend-cpu";
import "@tensorflow/tfjs-backend-wasm";
import * as tfl from "@tensorflow/tfjs-layers";
import { radam, ranger, readParams, saveState, step } from "@optim/radam";
import { tfOptimizer } from "@optim/radam/tfjs";
import { tfjsCase } from "./shared_case.mjs";

tf.env().set("PROD", true);

test("@optim/radam/tfjs: radam through applyGradients gives the library's bits", async () => {
  await tf.setBackend("cpu");
  const { adapter, core } = await tfjsCase(
    tf,
    { radam, readParams, step },
    tfOptimizer,
    "node",
  );
  assert.deepEqual(adapter, core);
});

test("@optim/radam/tfjs on tfjs-backend-wasm: the state on tfjs's heap, the library's bits", async () => {
  await tf.setBackend("wasm");
  await tf.ready();
  const { adapter, core } = await tfjsCase(
    tf,
    { radam, readParams, step },
    tfOptimizer,
    "node-wasm",
  );
  assert.deepEqual(adapter, core);
  // A dense model trains under model.fit, its predictions following its weights.
  const model = tfl.sequential({
    layers: [tfl.layers.dense({ units: 2, inputShape: [3] })],
  });
  const optimizer = tfOptimizer(radam({ lr: 5e-2 }));
  model.compile({ optimizer, loss: "meanSquaredError" });
  const x = tf.tensor2d([[0, 1, 2], [1, 0, 1], [2, 2, 0], [1, 1, 1]]);
  const y = tf.tensor2d([[1, 0], [0, 1], [2, 1], [1, 1]]);
  await model.fit(x, y, { epochs: 1, batchSize: 4, verbose: 0 });
  const kernel = model.trainableWeights[0].read();
  const data = kernel.dataId;
  const h = await model.fit(x, y, { epochs: 30, batchSize: 4, verbose: 0 });
  assert.ok(h.history.loss.at(-1) < h.history.loss[0]);
  // Updated in its own data (no new tensor per step): the adapter's state is on tfjs's heap.
  assert.equal(model.trainableWeights[0].read().dataId, data);
  const [w, b] = model.getWeights().map((t) => tf.tensor(t.dataSync().slice(), t.shape));
  const want = tf.add(tf.matMul(x, w), b).dataSync();
  const got = model.predict(x).dataSync();
  for (let i = 0; i < got.length; i++) {
    assert.ok(Math.abs(got[i] - want[i]) < 1e-5);
  }
  tf.dispose([x, y, w, b]);
  model.dispose();
  optimizer.dispose();
  await tf.setBackend("cpu");
});

test("@optim/radam/tfjs: model.fit with ranger; the state works with the main entry", async () => {
  await tf.setBackend("cpu");
  const model = tfl.sequential({
    layers: [
      tfl.layers.dense({ units: 4, inputShape: [3], activation: "relu" }),
      tfl.layers.dense({ units: 1 }),
    ],
  });
  const optimizer = tfOptimizer(ranger({ lr: 3e-2 }));
  model.compile({ optimizer, loss: "meanSquaredError" });
  const x = tf.tensor2d([[0, 1, 2], [1, 0, 1], [2, 2, 0], [1, 1, 1]]);
  const y = tf.tensor2d([[1], [0], [2], [1]]);
  const h = await model.fit(x, y, { epochs: 40, batchSize: 4, verbose: 0 });
  assert.ok(h.history.loss.at(-1) < h.history.loss[0]);
  assert.equal(optimizer.iterations, 40);
  const bytes = await saveState(optimizer.state);
  assert.ok(bytes.length > 100);
  tf.dispose([x, y]);
  model.dispose();
  optimizer.dispose();
});

test("the README's flow with @tensorflow/tfjs: model.save with includeOptimizer, tf.loadLayersModel, training on gives the bits of training on unsaved", async () => {
  const tfjs = await import("@tensorflow/tfjs");
  await tfjs.setBackend("cpu");
  const model = tfjs.sequential({
    layers: [
      tfjs.layers.dense({ units: 4, inputShape: [3], activation: "relu" }),
      tfjs.layers.dense({ units: 1 }),
    ],
  });
  model.compile({ optimizer: tfOptimizer(ranger({ lr: 3e-2 })), loss: "meanSquaredError" });
  const x = tfjs.tensor2d([[0, 1, 2], [1, 0, 1], [2, 2, 0], [1, 1, 1]]);
  const y = tfjs.tensor2d([[1], [0], [2], [1]]);
  const fit = (m) => m.fit(x, y, { epochs: 3, batchSize: 4, shuffle: false, verbose: 0 });
  await fit(model);
  let saved;
  await model.save(
    tfjs.io.withSaveHandler((artifacts) => {
      saved = artifacts;
      return { modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: "JSON" } };
    }),
    { includeOptimizer: true },
  );
  const loaded = await tfjs.loadLayersModel(tfjs.io.fromMemory(saved));
  assert.equal(loaded.optimizer.getClassName(), "RadamTfOptimizer");
  assert.equal(loaded.optimizer.iterations, 3);
  await fit(model);
  await fit(loaded);
  assert.equal(loaded.optimizer.iterations, 6);
  const values = (m) => m.getWeights().map((w) => [...w.dataSync()]);
  assert.deepEqual(values(loaded), values(model));
  tfjs.dispose([x, y]);
  for (const m of [model, loaded]) {
    m.optimizer.dispose();
    m.dispose();
  }
});
