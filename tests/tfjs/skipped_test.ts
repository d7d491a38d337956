/**
 * Steps skipped under `nonFinite: "skip"` (the default) in `model.fit` are seen: counted by
 * `optimizer.skippedSteps`, written per epoch into the logs by `skippedStepsCallback` (so into
 * the History), and told once by a warning that option `warnOnSkip: false` silences. A skipped
 * batch changes nothing: training with it gives the bits of training without it.
 */
import assert from "node:assert/strict";
import { radam, ranger, saveState } from "../../mod.ts";
import { skippedStepsCallback, tfOptimizer } from "../../tfjs.ts";
import {
  CPU_BACKENDS,
  denseNet,
  disposeModels,
  fitInOrder,
  randoms,
  tf,
  type tfl,
  useBackend,
  weightValues,
} from "./helpers.ts";

/** 12 samples in batches of 4; with `nan`, the second batch has a NaN input. */
function batches(nan: boolean): { x: tf.Tensor; y: tf.Tensor } {
  const x = randoms(12 * 6, 3), y = randoms(12 * 3, 4);
  if (nan) x[5 * 6 + 2] = NaN;
  return { x: tf.tensor(x, [12, 6]), y: tf.tensor(y, [12, 3]) };
}

/** The samples of `batches` without the second batch. */
function withoutSecond(): { x: tf.Tensor; y: tf.Tensor } {
  const { x, y } = batches(false);
  const keep = (t: tf.Tensor) => tf.concat([tf.slice(t, 0, 4), tf.slice(t, 8, 4)]);
  const out = { x: keep(x), y: keep(y) };
  tf.dispose([x, y]);
  return out;
}

/** Runs `f` with console.warn recorded; returns what it printed. */
async function warnings(f: () => Promise<void>): Promise<string[]> {
  const printed: string[] = [];
  const warn = console.warn;
  console.warn = (...args: unknown[]) => printed.push(args.join(" "));
  try {
    await f();
  } finally {
    console.warn = warn;
  }
  return printed;
}

const fit = fitInOrder(2);

for (const backend of CPU_BACKENDS) {
  Deno.test(`tfjs ${backend}: a NaN batch under model.fit is skipped, counted, logged per epoch, warned about once`, async () => {
    await useBackend(backend);
    const model = denseNet(7), clean = denseNet(7);
    const optimizer = tfOptimizer(ranger({ lr: 1e-2, k: 2 }));
    model.compile({ optimizer, loss: "meanSquaredError" });
    clean.compile({ optimizer: tfOptimizer(ranger({ lr: 1e-2, k: 2 })), loss: "meanSquaredError" });
    const nan = batches(true), other = withoutSecond();
    const seen: unknown[] = [];
    let history: { history: Record<string, unknown[]> } | undefined;
    const printed = await warnings(async () => {
      history = await model.fit(nan.x, nan.y, {
        ...fit,
        callbacks: [
          skippedStepsCallback(optimizer),
          { onEpochEnd: (_: number, logs?: tfl.Logs) => void seen.push(logs?.skipped_steps) },
        ],
      });
    });
    assert.deepEqual(history!.history.skipped_steps, [1, 1]);
    assert.deepEqual(seen, [1, 1]);
    assert.ok((history!.history.loss as number[]).every(Number.isNaN)); // all tfjs shows
    assert.equal(optimizer.skippedSteps, 2);
    assert.equal(optimizer.iterations, 4);
    assert.equal(printed.length, 1);
    assert.match(printed[0], /skipped a step/);
    assert.match(printed[0], /warnOnSkip: false/);
    // The skipped batches changed nothing: the bits of training without them.
    await clean.fit(other.x, other.y, fit);
    const a = await weightValues(model), b = await weightValues(clean);
    a.forEach((w, i) => assert.deepEqual(w, b[i], `weight ${i}`));
    tf.dispose([nan.x, nan.y, other.x, other.y]);
    disposeModels(model, clean);
  });
}

Deno.test("tfjs: warnOnSkip: false prints nothing; the count and the callback still work", async () => {
  await useBackend("cpu");
  const model = denseNet(9);
  const optimizer = tfOptimizer(radam(), { warnOnSkip: false });
  model.compile({ optimizer, loss: "meanSquaredError" });
  const { x, y } = batches(true);
  let history: { history: Record<string, unknown[]> } | undefined;
  const printed = await warnings(async () => {
    history = await model.fit(x, y, { ...fit, callbacks: [skippedStepsCallback(optimizer)] });
  });
  assert.deepEqual(printed, []);
  assert.deepEqual(history!.history.skipped_steps, [1, 1]);
  assert.equal(optimizer.skippedSteps, 2);
  assert.throws(() => skippedStepsCallback(3 as never), /expects an optimizer made by tfOptimizer/);
  tf.dispose([x, y]);
  optimizer.dispose();
  model.dispose();
});

Deno.test("tfjs: the warning is once per optimizer, also across model.fit calls", async () => {
  await useBackend("wasm");
  const model = denseNet(11);
  const optimizer = tfOptimizer(radam());
  model.compile({ optimizer, loss: "meanSquaredError" });
  const { x, y } = batches(true);
  const printed = await warnings(async () => {
    await model.fit(x, y, fit);
    await model.fit(x, y, fit);
  });
  assert.equal(printed.length, 1);
  assert.equal(optimizer.skippedSteps, 4);
  tf.dispose([x, y]);
  optimizer.dispose();
  model.dispose();
});

Deno.test("tfjs: setWeights keeps the count of skipped steps (the weights carry none); the callback counts on from it", async () => {
  await useBackend("cpu");
  const model = denseNet(13);
  const optimizer = tfOptimizer(radam(), { warnOnSkip: false });
  model.compile({ optimizer, loss: "meanSquaredError" });
  const { x, y } = batches(true);
  await model.fit(x, y, fit);
  assert.equal(optimizer.skippedSteps, 2);
  const iterations = optimizer.iterations;
  const weights = await optimizer.getWeights();
  assert.ok(!weights.some((w) => /skip/i.test(w.name)));
  await optimizer.setWeights(weights);
  assert.equal(optimizer.iterations, iterations);
  assert.equal(optimizer.skippedSteps, 2);
  // An epoch around a setWeights counts its own skipped step, not minus those before it.
  const callback = skippedStepsCallback(optimizer);
  const logs: Record<string, unknown> = {};
  await callback.onEpochBegin(0);
  await optimizer.setWeights(weights);
  await model.fit(x, y, { ...fitInOrder(1), callbacks: [] });
  await callback.onEpochEnd(0, logs);
  assert.equal(logs.skipped_steps, 1);
  assert.equal(optimizer.skippedSteps, 3);
  tf.dispose(weights.map((w) => w.tensor));
  tf.dispose([x, y]);
  optimizer.dispose();
  model.dispose();
});

Deno.test("tfjs: an epoch around a loadState logs the steps it skipped, never a negative count", async () => {
  // The count came from the checkpoint: loading one saved before a skipped step, in the middle
  // of an epoch, made the epoch's skipped_steps the difference of two runs' counts (here -1).
  await useBackend("cpu");
  const model = denseNet(15);
  const optimizer = tfOptimizer(radam(), { warnOnSkip: false });
  model.compile({ optimizer, loss: "meanSquaredError" });
  const { x, y } = batches(true);
  const first = tf.slice(x, 0, 4), firstY = tf.slice(y, 0, 4);
  await model.fit(first, firstY, fitInOrder(1));
  const checkpoint = await saveState(optimizer.state!); // no step skipped yet
  let loaded = false;
  const history = await model.fit(x, y, {
    ...fit,
    callbacks: [
      skippedStepsCallback(optimizer),
      {
        // After the second epoch's NaN batch: back to the checkpoint, which skipped none.
        onBatchEnd: async (batch: number) => {
          if (batch !== 1 || optimizer.skippedSteps !== 2) return;
          await optimizer.loadState(checkpoint);
          loaded = true;
        },
      },
    ],
  });
  assert.ok(loaded);
  assert.equal(optimizer.skippedSteps, 0); // the checkpoint's count
  assert.deepEqual(history.history.skipped_steps, [1, 1]);
  // An epoch that loads a checkpoint with more skipped steps counts only its own.
  const callback = skippedStepsCallback(optimizer);
  const logs: Record<string, unknown> = {};
  await model.fit(x, y, fitInOrder(1));
  const more = await saveState(optimizer.state!);
  await callback.onEpochBegin(0);
  await optimizer.loadState(checkpoint);
  await optimizer.loadState(more);
  await model.fit(x, y, fitInOrder(1));
  await callback.onEpochEnd(0, logs);
  assert.equal(logs.skipped_steps, 1);
  assert.equal(optimizer.skippedSteps, 2);
  tf.dispose([x, y, first, firstY]);
  optimizer.dispose();
  model.dispose();
});
