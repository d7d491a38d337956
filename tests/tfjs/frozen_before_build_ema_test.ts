/**
 * A layer made with `trainable: false` (before it is built) keeps its variables marked trainable
 * in tfjs 4.22, which `model.fit` does not train (it gives the optimizer the model's trainable
 * weights). With option `ema`, the averages of a resumed run (`setWeights`) of such a layer's
 * variables were swapped into them by `averages.swap()` (and written by `finalize()`) after a
 * `model.fit` step, where a layer frozen after it was built kept its weights: the two runs are
 * the same now. (Before any step, nothing tells such a layer's variables from trained ones.)
 */
import assert from "node:assert/strict";
import { adam } from "../../mod.ts";
import { type TfOptimizer, tfOptimizer } from "../../tfjs.ts";
import { tf, tfl, useBackend } from "./helpers.ts";

/** A weight as getWeights gives it. */
type NamedTensor = { name: string; tensor: tf.Tensor };

let made = 0;

/**
 * A dense 3 → 2 → 1 net, its first layer (`base`) frozen `before` or `after` it is built, or not;
 * each the `run`-th of its names (runs of other names: the names of a test's models must differ).
 */
function model(frozen: "before" | "after" | "none", run: number): tfl.Sequential {
  const BASE = base(run);
  const m = tfl.sequential();
  m.add(tfl.layers.dense({
    units: 2,
    inputShape: [3],
    name: BASE,
    trainable: frozen !== "before",
    kernelInitializer: "ones",
  }));
  m.add(tfl.layers.dense({
    units: 1,
    name: `frozen-before-build-ema-head${run}`,
    kernelInitializer: "ones",
  }));
  if (frozen === "after") m.getLayer(BASE).trainable = false;
  return m;
}

/** The name of the first layer of the `run`-th models. */
function base(run: number): string {
  return `frozen-before-build-ema-base${run}`;
}

/** The weights of a run over every layer with averages, its model and optimizer gone. */
async function resumedWeights(x: tf.Tensor, y: tf.Tensor, run: number): Promise<NamedTensor[]> {
  const m = model("none", run);
  m.compile({ optimizer: tfOptimizer(adam({ lr: 0.1 }), { ema: true }), loss: "meanSquaredError" });
  await m.fit(x, y, { epochs: 3, batchSize: 4, verbose: 0 });
  const weights = (await m.optimizer.getWeights()).map((w) => ({
    name: w.name,
    tensor: tf.clone(w.tensor),
  }));
  assert.ok(weights.some((w) => w.name === `${base(run)}/kernel/average`));
  m.optimizer.dispose();
  m.dispose();
  return weights;
}

/** The values of the layer `name` of `m`. */
function values(m: tfl.LayersModel, name: string): Float32Array[] {
  return m.getLayer(name).getWeights().map((w) => w.dataSync().slice() as Float32Array);
}

/** A model frozen `frozen`, given `weights`; `use` then runs with it and its optimizer. */
async function withResumed(
  frozen: "before" | "after",
  weights: NamedTensor[],
  run: number,
  use: (m: tfl.Sequential, opt: TfOptimizer) => Promise<void>,
): Promise<void> {
  const m = model(frozen, run);
  assert.equal(m.getLayer(base(run)).trainable, false);
  const opt = tfOptimizer(adam({ lr: 0.1 }), { ema: true });
  m.compile({ optimizer: opt, loss: "meanSquaredError" });
  try {
    await opt.setWeights(weights);
    await use(m, opt);
  } finally {
    opt.dispose();
    m.dispose();
  }
}

Deno.test("tfjs: after a model.fit step, averages.swap() and finalize() leave a layer made with trainable: false as a layer frozen after it was built", async () => {
  await useBackend("cpu");
  const run = made++;
  const x = tf.ones([4, 3]), y = tf.zeros([4, 1]);
  const weights = await resumedWeights(x, y, run);
  const runs: Float32Array[][] = [];
  const head = `frozen-before-build-ema-head${run}`;
  try {
    for (const frozen of ["before", "after"] as const) {
      await withResumed(frozen, weights, run, async (m, opt) => {
        await m.fit(x, y, { epochs: 1, batchSize: 4, verbose: 0 }); // (a step: the head's)
        const before = values(m, base(run)), trained = values(m, head);
        opt.averages!.swap();
        const swapped = values(m, base(run));
        assert.notDeepEqual(values(m, head), trained); // (the head's averages swapped in)
        opt.averages!.swap();
        opt.averages!.finalize();
        const finalized = values(m, base(run));
        assert.deepEqual(swapped, before, `frozen ${frozen} it was built: swapped in`);
        assert.deepEqual(finalized, before, `frozen ${frozen} it was built: finalized`);
        runs.push(m.getWeights().map((w) => w.dataSync().slice() as Float32Array));
      });
    }
    assert.deepEqual(runs[0], runs[1]);
  } finally {
    tf.dispose([x, y, ...weights.map((w) => w.tensor)]);
  }
});
