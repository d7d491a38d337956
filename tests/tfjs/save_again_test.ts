/**
 * A model loaded with its 8-bit optimizer (`tf.loadLayersModel`, includeOptimizer) and saved
 * again before any step gives the weights it was loaded from, byte for byte: the same names (a
 * kernel's codes marked `.transposed` or not as loaded), dtypes, shapes and values, codes staying
 * codes, whichever order they came in: that of the loading optimizer (Ranger's kernels held
 * transposed on a CPU backend) or the other (codes of a kernel in the tfjs order given to Ranger:
 * saved by an optimizer without `gc`, or on webgpu, which holds every variable in the tfjs order;
 * marked codes given to one without `gc`), which the step that takes the variable reorders. On
 * cpu and wasm, and between cpu and webgpu. And codes given to a 32-bit optimizer, or f32 moments
 * to an 8-bit one: given back as they are, converted by the step. On webgpu, as on cpu and wasm
 * (resume_test.ts, compact_weights_test.ts): N steps, save, load and M steps give the bits of
 * N + M, in 32 and 8 bits, Ranger's kernels (codes in the tfjs order there) included.
 */
import "@tensorflow/tfjs-backend-webgpu";
import assert from "node:assert/strict";
import { adam, lookahead, type Optimizer, radam, ranger } from "../../mod.ts";
import { type TfOptimizer, tfOptimizer } from "../../tfjs.ts";
import {
  bigNet,
  CPU_BACKENDS,
  data,
  disposeModels,
  fitInOrder,
  saveToMemory,
  setSeededWeights,
  tf,
  tfl,
  useBackend,
  webgpuTestOptions,
  weightValues,
} from "./helpers.ts";

const MAKERS: Record<string, () => Optimizer> = {
  ranger: () => ranger({ lr: 1e-2, states: "8bit" }),
  "lookahead(radam)": () => lookahead(radam({ lr: 1e-2, states: "8bit" })),
  "radam gc": () => radam({ lr: 1e-2, gc: true, states: "8bit" }),
  radam: () => radam({ lr: 1e-2, states: "8bit" }),
  "ranger 32bit": () => ranger({ lr: 1e-2 }),
};

/** [saved with, loaded with]: the same gc, and across gc (codes of the other order). */
const PAIRS: [string, string][] = [
  ["ranger", "ranger"],
  ["lookahead(radam)", "ranger"],
  ["ranger", "lookahead(radam)"],
  ["radam", "radam gc"],
  ["radam gc", "radam"],
  ["ranger", "ranger 32bit"], // codes to a 32-bit optimizer: decoded at the step
  ["ranger 32bit", "lookahead(radam)"], // f32 moments to an 8-bit one: encoded at the step
];

/**
 * A net 1 → 4096 (relu) → 3: a kernel of one row ([1, 4096], whose order under gc is the tfjs
 * order, though held "transposed") and one of 4096 rows ([4096, 3]), both in 8 bits.
 */
function rowNet(seed: number): tfl.Sequential {
  const model = tfl.sequential({
    layers: [
      tfl.layers.dense({ units: 4096, inputShape: [1], activation: "relu" }),
      tfl.layers.dense({ units: 3 }),
    ],
  });
  setSeededWeights(model, seed);
  return model;
}

const NETS = [
  { make: bigNet, input: [70] },
  { make: rowNet, input: [1] },
];

/** Checks that `again` holds the weights of `saved`, byte for byte. */
function assertSameWeights(
  again: tf.io.ModelArtifacts,
  saved: tf.io.ModelArtifacts,
  label: string,
) {
  assert.deepEqual(again.weightSpecs, saved.weightSpecs, label);
  const bytes = (a: tf.io.ModelArtifacts) => new Uint8Array(a.weightData as ArrayBuffer);
  assert.deepEqual(bytes(again), bytes(saved), label);
}

/**
 * A model of `net` trained 2 epochs with `from` on `saveOn`, saved; loaded with `to`'s config on
 * `loadOn` and saved again at once: the same weights.
 */
async function saveAgain(
  net: (typeof NETS)[number],
  [from, to]: [string, string],
  saveOn: string,
  loadOn: string,
): Promise<void> {
  const label = `${net.make.name}: ${from} on ${saveOn} → ${to} on ${loadOn}`;
  await useBackend(saveOn);
  const model = net.make(5);
  model.compile({ optimizer: tfOptimizer(MAKERS[from]()), loss: "meanSquaredError" });
  const { x, y } = data(net.input, 16, 3);
  await model.fit(x, y, fitInOrder(2));
  const saved = await saveToMemory(model);
  const codes = saved.weightSpecs!.some((s) => s.name.endsWith(".codes"));
  assert.equal(codes, !from.endsWith("32bit"), `${label}: codes saved`);
  const other = tfOptimizer(MAKERS[to]());
  (saved.trainingConfig!.optimizer_config as { config: unknown }).config = other.getConfig();
  other.dispose();
  await useBackend(loadOn);
  const loaded = await tfl.loadLayersModel(tf.io.fromMemory(saved));
  assertSameWeights(await saveToMemory(loaded), saved, label);
  // (And again, from the weights the first save gave.)
  assertSameWeights(await saveToMemory(loaded), saved, `${label}, twice`);
  tf.dispose([x, y]);
  disposeModels(model, loaded);
}

for (const backend of CPU_BACKENDS) {
  Deno.test(`tfjs ${backend}: a model loaded with its 8-bit optimizer and saved again before a step gives the weights it was loaded from, byte for byte (codes of either order)`, async () => {
    for (const net of NETS) {
      for (const pair of PAIRS) await saveAgain(net, pair, backend, backend);
    }
  });
}

const sanitize = await webgpuTestOptions();

Deno.test({
  name:
    "tfjs webgpu: a model loaded with its 8-bit optimizer and saved again before a step gives the weights it was loaded from, byte for byte (a gc kernel's codes unmarked from the GPU)",
  ...sanitize,
  ignore: sanitize.ignore,
  async fn() {
    for (const [saveOn, loadOn] of [["webgpu", "webgpu"], ["webgpu", "cpu"], ["cpu", "webgpu"]]) {
      for (const pair of PAIRS) await saveAgain(NETS[0], pair, saveOn, loadOn);
    }
  },
});

Deno.test({
  name:
    "tfjs webgpu: model.save with includeOptimizer, loadLayersModel, train on: N + M steps bit for bit, in 32 and 8 bits, gc kernels included",
  ...sanitize,
  ignore: sanitize.ignore,
  async fn() {
    await useBackend("webgpu");
    const makers = [
      () => ranger({ lr: 1e-2 }),
      () => lookahead(adam({ lr: 1e-2 }), { k: 3 }),
      MAKERS.ranger,
      MAKERS["lookahead(radam)"],
      MAKERS["radam gc"],
    ];
    for (const [n, make] of makers.entries()) {
      const whole = bigNet(21), first = bigNet(21);
      whole.compile({ optimizer: tfOptimizer(make()), loss: "meanSquaredError" });
      first.compile({ optimizer: tfOptimizer(make()), loss: "meanSquaredError" });
      const { x, y } = data([70], 16, 13);
      await whole.fit(x, y, fitInOrder(5)); // 20 steps
      await first.fit(x, y, fitInOrder(3)); // 12 steps, save, load, 8 more
      const saved = await saveToMemory(first);
      const codes = saved.weightSpecs!.filter((s) => s.name.endsWith(".codes"));
      assert.equal(codes.length > 0, make().settings.run.states === "8bit", `optimizer ${n}`);
      const loaded = await tfl.loadLayersModel(tf.io.fromMemory(saved));
      await loaded.fit(x, y, fitInOrder(2));
      assert.equal((loaded.optimizer as TfOptimizer).backend, "webgpu");
      assert.deepEqual(await weightValues(loaded), await weightValues(whole), `optimizer ${n}`);
      const [a, b] = await Promise.all([whole, loaded].map(async (m) => {
        const weights = await m.optimizer.getWeights();
        return Promise.all(weights.map(async (w) => [w.tensor.dtype, await w.tensor.data()]));
      }));
      assert.deepEqual(b, a, `optimizer ${n}`);
      tf.dispose([x, y]);
      disposeModels(whole, first, loaded);
    }
  },
});
