/**
 * `optimizer.backend` says where the update will run from construction on, and right after a
 * model is loaded, not only after the first step: the same answer the first step then gives.
 */
import assert from "node:assert/strict";
import { adam, type BackendChoice, ranger } from "../../mod.ts";
import { type TfOptimizer, tfOptimizer } from "../../tfjs.ts";
import {
  CPU_BACKENDS,
  data,
  denseNet,
  disposeModels,
  saveToMemory,
  tf,
  tfl,
  uniqueNames,
  useBackend,
} from "./helpers.ts";

const name = uniqueNames("backend_test");

/** One step of `optimizer` over a new variable. */
function oneStep(optimizer: TfOptimizer): void {
  const w = tf.variable(tf.tensor([1, 2, 3]), true, name("w"));
  const g = tf.tensor([0.1, -0.2, 0.3]);
  try {
    optimizer.applyGradients({ [w.name]: g });
  } finally {
    tf.dispose([w, g]);
  }
}

for (const tfBackend of CPU_BACKENDS) {
  for (const choice of ["auto", "wasm", "js"] as BackendChoice[]) {
    Deno.test(`tfjs ${tfBackend}: backend ${choice} is known before the first step, and it is the first step's`, async () => {
      await useBackend(tfBackend);
      const optimizer = tfOptimizer(adam({ backend: choice }));
      const before = optimizer.backend;
      assert.equal(before, choice === "js" ? "js" : "wasm");
      assert.equal(optimizer.state, undefined);
      oneStep(optimizer);
      assert.equal(optimizer.state!.backend, before);
      assert.equal(optimizer.backend, before);
      optimizer.dispose();
    });
  }
}

Deno.test("tfjs: backend webgpu while tfjs runs on cpu is undefined (no step can run), and the step says why", async () => {
  await useBackend("cpu");
  const optimizer = tfOptimizer(adam({ backend: "webgpu" }));
  assert.equal(optimizer.backend, undefined);
  assert.throws(() => oneStep(optimizer), /backend is "webgpu" but TensorFlow.js runs on "cpu"/);
  optimizer.dispose();
});

Deno.test("tfjs: a loaded model's optimizer knows its backend before it trains", async () => {
  for (const tfBackend of CPU_BACKENDS) {
    await useBackend(tfBackend);
    const model = denseNet(3);
    model.compile({ optimizer: tfOptimizer(ranger({ lr: 1e-2 })), loss: "meanSquaredError" });
    const { x, y } = data([6], 8, 2);
    await model.fit(x, y, { epochs: 1, batchSize: 4, verbose: 0 });
    const loaded = await tfl.loadLayersModel(tf.io.fromMemory(await saveToMemory(model)));
    const optimizer = loaded.optimizer as TfOptimizer;
    assert.equal(optimizer.state, undefined);
    assert.equal(optimizer.backend, "wasm", tfBackend);
    await loaded.fit(x, y, { epochs: 1, batchSize: 4, verbose: 0 });
    assert.equal(optimizer.state!.backend, "wasm");
    tf.dispose([x, y]);
    disposeModels(model, loaded);
  }
});
