/**
 * The first-use features on tfjs's webgpu backend (Mesa's llvmpipe in CI): `backend` known
 * before the first step, skipped steps counted and logged under model.fit (the device decides,
 * the callback waits for its report), the config of an optimizer with groups written and loaded
 * there, and a schedule given again after loading; the state's slots, GPU buffer ranges, refuse
 * an element read with a TypeError saying so.
 *
 * Without a WebGPU adapter these tests fail, unless RADAM_NO_GPU=1 says the machine has none.
 */
import "@tensorflow/tfjs-backend-webgpu";
import assert from "node:assert/strict";
import { adam, adamw, radam, saveState } from "../../mod.ts";
import { skippedStepsCallback, TfOptimizer, tfOptimizer } from "../../tfjs.ts";
import {
  data,
  denseNet,
  disposeModels,
  fitInOrder,
  randoms,
  saveToMemory,
  tf,
  tfl,
  useBackend,
  webgpuTestOptions,
  weightValues,
} from "./helpers.ts";

const sanitize = await webgpuTestOptions();

Deno.test({
  name: "tfjs webgpu: backend is webgpu before the first step, and after it",
  ...sanitize,
  async fn() {
    await useBackend("webgpu");
    const optimizer = tfOptimizer(adam());
    const wasm = tfOptimizer(adam({ backend: "wasm" })); // the CPU path, by choice
    assert.equal(optimizer.backend, "webgpu");
    assert.equal(wasm.backend, "wasm");
    const w = tf.variable(tf.tensor(randoms(8, 1)), true, "first_use_webgpu/w");
    const v = tf.variable(tf.tensor(randoms(8, 2)), true, "first_use_webgpu/v");
    const g = tf.tensor(randoms(8, 3));
    optimizer.applyGradients({ [w.name]: g });
    wasm.applyGradients({ [v.name]: g });
    assert.equal(optimizer.state!.backend, "webgpu");
    assert.equal(wasm.state!.backend, "wasm");
    // Its state's slots are GPU buffer ranges: indexing one says so, as the core state's does.
    const slots = optimizer.state!.params as unknown as Record<string, number[]>;
    assert.throws(
      () => slots[w.name][0],
      /^TypeError: Cannot use state\.params\["first_use_webgpu\/w"\]\[0\]: on the webgpu backend/,
    );
    tf.dispose([w, v, g]);
    optimizer.dispose();
    wasm.dispose();
  },
});

Deno.test({
  name:
    "tfjs webgpu: a NaN batch under model.fit is skipped on the device, counted, logged, warned",
  ...sanitize,
  async fn() {
    await useBackend("webgpu");
    const model = denseNet(13);
    const optimizer = tfOptimizer(radam({ lr: 1e-2 }));
    model.compile({ optimizer, loss: "meanSquaredError" });
    const xs = randoms(12 * 6, 3);
    xs[5 * 6 + 1] = NaN; // in the second batch of 4
    const x = tf.tensor(xs, [12, 6]), y = tf.tensor(randoms(12 * 3, 4), [12, 3]);
    const printed: string[] = [];
    const warn = console.warn;
    console.warn = (...args: unknown[]) => printed.push(args.join(" "));
    let history;
    try {
      history = await model.fit(x, y, {
        epochs: 2,
        batchSize: 4,
        shuffle: false,
        verbose: 0,
        callbacks: [skippedStepsCallback(optimizer)],
      });
    } finally {
      console.warn = warn;
    }
    assert.equal(optimizer.backend, "webgpu");
    assert.deepEqual(history.history.skipped_steps, [1, 1]);
    assert.equal(optimizer.skippedSteps, 2);
    assert.equal(optimizer.iterations, 4);
    // Told once: at the first step after the device reported the first skip.
    assert.equal(printed.length, 1);
    for (const w of await weightValues(model)) assert.ok(w.every(Number.isFinite));
    tf.dispose([x, y]);
    optimizer.dispose();
    model.dispose();
  },
});

Deno.test({
  name:
    "tfjs webgpu: an epoch around a loadState logs the steps it skipped, never a negative count",
  ...sanitize,
  async fn() {
    // The count came from the checkpoint: loading one saved before a skipped step, in the
    // middle of an epoch, logged the difference of two runs' counts (here -1).
    await useBackend("webgpu");
    const model = denseNet(19);
    const optimizer = tfOptimizer(radam({ lr: 1e-2 }), { warnOnSkip: false });
    model.compile({ optimizer, loss: "meanSquaredError" });
    const xs = randoms(12 * 6, 5);
    xs[5 * 6 + 1] = NaN; // in the second batch of 4
    const x = tf.tensor(xs, [12, 6]), y = tf.tensor(randoms(12 * 3, 6), [12, 3]);
    const first = tf.slice(x, 0, 4), firstY = tf.slice(y, 0, 4);
    await model.fit(first, firstY, fitInOrder(1));
    const checkpoint = await saveState(optimizer.state!); // no step skipped yet
    let epoch = -1;
    const history = await model.fit(x, y, {
      ...fitInOrder(2),
      callbacks: [
        skippedStepsCallback(optimizer),
        {
          onEpochBegin: (e: number) => void (epoch = e),
          // After the second epoch's NaN batch: back to the checkpoint, which skipped none.
          onBatchEnd: async (batch: number) => {
            if (epoch === 1 && batch === 1) await optimizer.loadState(checkpoint);
          },
        },
      ],
    });
    assert.equal(optimizer.backend, "webgpu");
    assert.equal(optimizer.skippedSteps, 0); // the checkpoint's count
    assert.deepEqual(history.history.skipped_steps, [1, 1]);
    tf.dispose([x, y, first, firstY]);
    optimizer.dispose();
    model.dispose();
  },
});

Deno.test({
  name: "tfjs webgpu: groups are stored with the variables of the GPU state, and load there",
  ...sanitize,
  async fn() {
    await useBackend("webgpu");
    const model = denseNet(17);
    const optimizer = tfOptimizer(
      adamw({ lr: 1e-2, groups: [{ match: /bias$/, weightDecay: 0, lrScale: 0.5 }] }),
    );
    model.compile({ optimizer, loss: "meanSquaredError" });
    const { x, y } = data([6], 8, 7);
    await model.fit(x, y, fitInOrder(1));
    const config = optimizer.getConfig();
    assert.deepEqual(config.settings.tensors!.map((t) => t.group), [0, 1, 0, 1]);
    const loaded = await tfl.loadLayersModel(tf.io.fromMemory(await saveToMemory(model)));
    const back = loaded.optimizer as TfOptimizer;
    assert.deepEqual(back.getConfig(), config);
    await loaded.fit(x, y, fitInOrder(1));
    assert.equal(back.backend, "webgpu");
    assert.equal(back.iterations, 4);
    tf.dispose([x, y]);
    disposeModels(model, loaded);
  },
});

Deno.test({
  name: "tfjs webgpu: a schedule given again after loading runs every step",
  ...sanitize,
  async fn() {
    await useBackend("webgpu");
    const scheduled = tfOptimizer(adam({ lr: (t) => 1e-2 / t }));
    const restored = TfOptimizer.fromConfig(TfOptimizer, scheduled.getConfig()) as TfOptimizer;
    restored.setLearningRate((t) => 1e-2 / t);
    const w = tf.variable(tf.tensor(randoms(8, 5)), true, "first_use_webgpu/scheduled");
    const g = tf.tensor(randoms(8, 6));
    for (let t = 0; t < 3; t++) restored.applyGradients({ [w.name]: g });
    assert.equal(restored.iterations, 3);
    assert.equal(restored.backend, "webgpu");
    tf.dispose([w, g]);
    scheduled.dispose();
    restored.dispose();
  },
});
