/**
 * The adapter's checkpoints name their tensors in the model's variable order (`tensor_order`), as
 * the core library's do in the order given to `init`, whatever order its arena keeps: an 8-bit
 * arena holds small tensors first. And they resume bit for bit.
 */
import assert from "node:assert/strict";
import { radam, ranger, saveState } from "../../mod.ts";
import { tfOptimizer } from "../../tfjs.ts";
import type { TfOptimizer } from "../../tfjs.ts";
import { parseSafetensors } from "../../base/safetensors.ts";
import { stateInternals } from "../../core/state.ts";
import {
  CPU_BACKENDS,
  data,
  fitInOrder,
  setSeededWeights,
  tf,
  tfl,
  useBackend,
} from "./helpers.ts";

let made = 0;

/**
 * A dense net 70 → 64 → 3 whose layers are named `order<n>_*`: its kernel of 4480 elements is
 * held in 8 bits, the rest in f32, so an 8-bit arena puts the small tensors first. Models made
 * with the same `n` have variables of the same base names (tfjs adds `_1` to the second's).
 */
function namedNet(n: number): tfl.Sequential {
  const model = tfl.sequential({
    layers: [
      tfl.layers.dense({ units: 64, inputShape: [70], activation: "relu", name: `order${n}_a` }),
      tfl.layers.dense({ units: 3, name: `order${n}_b` }),
    ],
  });
  setSeededWeights(model, 13);
  return model;
}

/** The names of `model`'s trainable variables, in its order. */
function variableNames(model: tfl.LayersModel): string[] {
  return model.trainableWeights.map((w) => (w.read() as tf.Variable).name);
}

const RULES = {
  radam: () => radam({ lr: 1e-2, states: "8bit" }),
  ranger: () => ranger({ lr: 1e-2, states: "8bit", k: 3 }),
};

for (const backend of CPU_BACKENDS) {
  for (const [label, make] of Object.entries(RULES)) {
    Deno.test(`tfjs ${backend}: an 8-bit checkpoint's tensor_order is the model's variable order, and it resumes bit for bit (${label})`, async () => {
      await useBackend(backend);
      const n = ++made;
      const { x, y } = data([70], 16, 5);
      const compile = (model: tfl.LayersModel) => {
        const optimizer = tfOptimizer(make());
        model.compile({ optimizer, loss: "meanSquaredError" });
        return optimizer;
      };
      const whole = namedNet(n), first = namedNet(n);
      compile(whole);
      const optimizer = compile(first);
      await whole.fit(x, y, fitInOrder(4));
      await first.fit(x, y, fitInOrder(2));
      const names = variableNames(first);
      const arena = stateInternals(optimizer.state!).backend.layout.names;
      assert.notDeepEqual([...arena], names, "the 8-bit arena keeps another order");
      const bytes = await saveState(optimizer.state!);
      const { metadata } = parseSafetensors(bytes);
      assert.deepEqual(JSON.parse(metadata.tensor_order), names);

      // Resume in a model of the same layers (variables `<name>_1`), from the bytes.
      const resumed = namedNet(n);
      resumed.setWeights(first.getWeights());
      const other: TfOptimizer = compile(resumed);
      await other.loadState(bytes);
      await resumed.fit(x, y, fitInOrder(2));
      const got = resumed.getWeights().map((w) => w.dataSync());
      const want = whole.getWeights().map((w) => w.dataSync());
      got.forEach((values, i) => assert.deepEqual(values, want[i], `weight ${i}`));
      // Its own checkpoint keeps its variables' order too.
      const again = parseSafetensors(await saveState(other.state!)).metadata;
      assert.deepEqual(JSON.parse(again.tensor_order), variableNames(resumed));
      tf.dispose([x, y]);
      for (const model of [whole, first, resumed]) {
        model.optimizer.dispose();
        model.dispose();
      }
    });
  }
}
