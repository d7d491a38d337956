/**
 * `registerTfOptimizer()`: what code that only loads a saved model calls (a bundler may drop an
 * import kept for its side effects): without the registration `tf.loadLayersModel` fails with
 * `Unknown layer: RadamTfOptimizer`, with it the model and its optimizer load; calling it again
 * changes nothing. (The bundled app itself is tested under Node in tests/node/.)
 */
import assert from "node:assert/strict";
import { radam } from "../../mod.ts";
import { registerTfOptimizer, TfOptimizer, tfOptimizer } from "../../tfjs.ts";
import { data, denseNet, saveToMemory, tf, tfl, useBackend } from "./helpers.ts";

const classNameMap = tf.serialization.SerializationMap.getMap().classNameMap;

Deno.test("tfjs register: importing the adapter registers RadamTfOptimizer, as saved models name it", async () => {
  await useBackend("cpu");
  assert.equal(TfOptimizer.className, "RadamTfOptimizer");
  assert.equal(classNameMap.RadamTfOptimizer[0], TfOptimizer);
  const model = denseNet(1);
  model.compile({ optimizer: tfOptimizer(radam()), loss: "meanSquaredError" });
  const saved = await saveToMemory(model);
  const config = saved.trainingConfig!.optimizer_config as { class_name: string };
  assert.equal(config.class_name, "RadamTfOptimizer");
  model.optimizer.dispose();
  model.dispose();
});

Deno.test("tfjs register: without it loadLayersModel fails (Unknown layer); registerTfOptimizer() fixes that, idempotently", async () => {
  await useBackend("cpu");
  const model = denseNet(2);
  model.compile({ optimizer: tfOptimizer(radam({ lr: 1e-2 })), loss: "meanSquaredError" });
  const { x, y } = data([6], 8, 1);
  await model.fit(x, y, { epochs: 1, batchSize: 4, verbose: 0 });
  const saved = await saveToMemory(model);
  // As in an app whose bundler dropped `import "@optim/radam/tfjs"`: not registered.
  const entry = classNameMap.RadamTfOptimizer;
  delete classNameMap.RadamTfOptimizer;
  try {
    await assert.rejects(
      () => tfl.loadLayersModel(tf.io.fromMemory(saved)),
      /Unknown layer: RadamTfOptimizer/,
    );
    registerTfOptimizer();
    registerTfOptimizer(); // again: nothing changes
    assert.deepEqual(classNameMap.RadamTfOptimizer, entry);
    const loaded = await tfl.loadLayersModel(tf.io.fromMemory(saved));
    assert.ok(loaded.optimizer instanceof TfOptimizer);
    assert.equal(loaded.optimizer.iterations, 2);
    loaded.optimizer.dispose();
    loaded.dispose();
  } finally {
    classNameMap.RadamTfOptimizer = entry;
  }
  tf.dispose([x, y]);
  model.optimizer.dispose();
  model.dispose();
});

/**
 * A second TensorFlow.js's registry, as a page has beside the adapter's tfjs-core when it loads
 * `@tensorflow/tfjs`'s own bundle (tf.fesm.js, tf.min.js) too: a registry of its own, which the
 * import does not reach. (The real one, in Chromium: tests/node/cdn.test.mjs.)
 */
function secondTfjs() {
  const classNameMap: Record<string, unknown> = {};
  const calls: string[] = [];
  const serialization = {
    SerializationMap: { getMap: () => ({ classNameMap }) },
    registerClass: (cls: { className: string }) => {
      calls.push(cls.className);
      classNameMap[cls.className] = [cls, (cls as unknown as { fromConfig: unknown }).fromConfig];
    },
  };
  return { tfjs: { serialization } as unknown as Pick<typeof tf, "serialization">, calls };
}

Deno.test("tfjs register: registerTfOptimizer(tf) registers with the TensorFlow.js given (a page's second tfjs-core), idempotently", () => {
  const entry = classNameMap.RadamTfOptimizer;
  const { tfjs, calls } = secondTfjs();
  registerTfOptimizer(tfjs);
  registerTfOptimizer(tfjs); // again: nothing changes
  assert.deepEqual(calls, ["RadamTfOptimizer"]);
  const registered = tfjs.serialization.SerializationMap.getMap().classNameMap.RadamTfOptimizer;
  assert.equal(registered[0], TfOptimizer);
  assert.equal(classNameMap.RadamTfOptimizer, entry); // the adapter's own: as it was
  registerTfOptimizer(tf); // the adapter's own tfjs, given: already there
  assert.equal(classNameMap.RadamTfOptimizer, entry);
});

Deno.test("tfjs register: registerTfOptimizer given no TensorFlow.js namespace is a TypeError that says what it expects", () => {
  const entry = classNameMap.RadamTfOptimizer;
  for (const [given, got] of [[null, "null"], ["tf", 'a string "tf"'], [{}, "Object"]] as const) {
    assert.throws(
      () => registerTfOptimizer(given as unknown as typeof tf),
      (e: Error) =>
        e instanceof TypeError &&
        e.message.startsWith("registerTfOptimizer expects a TensorFlow.js namespace") &&
        e.message.endsWith(`, got ${got}`),
    );
  }
  assert.equal(classNameMap.RadamTfOptimizer, entry);
});
