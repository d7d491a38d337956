/**
 * A model saved with `includeOptimizer` from an optimizer on worker threads (`threads: 2`, in a
 * cross-origin isolated page) and loaded where threads cannot run (a page that is not: here
 * `crossOriginIsolated === false`, as such a page has it) trains on, on one thread, with the bits
 * of the uninterrupted run. Its first step threw the TypeError of `threads: 2` ("use threads: 1"),
 * which code loading a model cannot follow: the setting came from `model.json`. An optimizer the
 * code makes there with `threads: 2` is still refused so.
 */
import assert from "node:assert/strict";
import { radam } from "../../mod.ts";
import { tfOptimizer } from "../../tfjs.ts";
import {
  data,
  denseNet,
  disposeModels,
  fitInOrder,
  saveToMemory,
  tf,
  tfl,
  useBackend,
  weightValues,
} from "./helpers.ts";

/** Runs `body` as a page that is not cross-origin isolated sees the runtime. */
async function notIsolated<T>(body: () => Promise<T>): Promise<T> {
  const g = globalThis as { crossOriginIsolated?: boolean };
  const before = Object.getOwnPropertyDescriptor(g, "crossOriginIsolated");
  g.crossOriginIsolated = false;
  try {
    return await body();
  } finally {
    if (before === undefined) delete g.crossOriginIsolated;
    else Object.defineProperty(g, "crossOriginIsolated", before);
  }
}

Deno.test("tfjs: a model saved from threads: 2 loads where threads cannot run, and trains on one thread with the uninterrupted bits", async () => {
  await useBackend("cpu");
  const { x, y } = data([6], 8, 41);
  const make = () => {
    const model = denseNet(7);
    model.compile({
      optimizer: tfOptimizer(radam({ lr: 1e-2, threads: 2, threadThreshold: 0 })),
      loss: "meanSquaredError",
    });
    return model;
  };
  const saved = make();
  const uninterrupted = make();
  await saved.fit(x, y, fitInOrder(3));
  await (saved.optimizer as ReturnType<typeof tfOptimizer>).ready();
  const artifacts = await saveToMemory(saved);
  await uninterrupted.fit(x, y, fitInOrder(7));
  const loaded = await notIsolated(async () => {
    const loaded = await tfl.loadLayersModel(tf.io.fromMemory(artifacts));
    await loaded.fit(x, y, fitInOrder(4));
    return loaded;
  });
  const optimizer = loaded.optimizer as ReturnType<typeof tfOptimizer>;
  assert.equal(optimizer.iterations, 14); // 7 epochs of 2 batches
  assert.equal(optimizer.settings.run.threads, 1);
  assert.deepEqual(await weightValues(loaded), await weightValues(uninterrupted));
  // Made there by the code, threads: 2 is refused, saying what is missing.
  await notIsolated(async () => {
    const refused = denseNet(8);
    refused.compile({
      optimizer: tfOptimizer(radam({ threads: 2, threadThreshold: 0 })),
      loss: "meanSquaredError",
    });
    await assert.rejects(
      refused.fit(x, y, fitInOrder(1)),
      (e: Error) => e instanceof TypeError && /threads: 2 needs SharedArrayBuffer/.test(e.message),
    );
    disposeModels(refused);
  });
  tf.dispose([x, y]);
  disposeModels(saved, uninterrupted, loaded);
});
