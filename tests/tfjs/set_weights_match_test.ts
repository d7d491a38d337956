/**
 * `optimizer.setWeights(weights)` of weights none of which fits a variable of the model (another
 * model's, or a model not built yet) is refused with a RangeError naming a few of the weights and
 * of the model's variables, and the optimizer is left exactly as it was; weights of which some fit
 * (by name, or by base name) load as before, the others starting fresh; `iter` alone (what tfjs
 * saves of an optimizer that has not stepped) sets the step count, and such a model saved with its
 * optimizer loads.
 */
import assert from "node:assert/strict";
import { adam, saveState } from "../../mod.ts";
import { type TfOptimizer, tfOptimizer } from "../../tfjs.ts";
import {
  clonedWeights,
  denseNet,
  disposeModels,
  ofTrainedAdam,
  saveToMemory,
  stepAll,
  tf,
  tfl,
  uniqueNames,
  useBackend,
} from "./helpers.ts";
import { matchingTests } from "./match_cases.ts";

const name = uniqueNames("wmatch");

type Weights = { name: string; tensor: tf.Tensor }[];

/** The weights of an Adam optimizer over variables `names` (of `shapes`), 7 steps in. */
function weightsOf(names: string[], shapes: number[][]): Promise<Weights> {
  return ofTrainedAdam(names, shapes, clonedWeights);
}

matchingTests<Weights>({
  method: "setWeights",
  of: weightsOf,
  load: (opt, weights) => opt.setWeights(weights),
  listed: (weights) => weights.map((w) => w.name).filter((n) => n !== "iter"),
  refusal: /^No optimizer weight given to setWeights fits/,
  free: (weights) => tf.dispose(weights.map((w) => w.tensor)),
});

Deno.test("tfjs: setWeights and loadState of a model loaded twice (variables `<name>_1`, `<name>_2`) load", async () => {
  await useBackend("cpu");
  const base = name("twice/w");
  const weights = await weightsOf([base], [[2, 2]]);
  const bytes = await (async () => {
    const v = tf.variable(tf.ones([2, 2]), true, base);
    const opt = tfOptimizer(adam({ lr: 0.1 }));
    stepAll(opt, [v]);
    const out = await saveState(opt.state!);
    opt.dispose();
    v.dispose();
    return out;
  })();
  // Both copies alive: the base name is two variables, and the step takes its own.
  const copies = [1, 2].map((n) => tf.variable(tf.ones([2, 2]), true, `${base}_${n}`));
  const opt = tfOptimizer(adam({ lr: 0.1 }));
  await opt.setWeights(weights);
  assert.equal(opt.iterations, 7);
  stepAll(opt, [copies[1]]);
  const after = await opt.getWeights();
  const m = after.find((w) => w.name === `${copies[1].name}/m`)!.tensor.dataSync();
  assert.notDeepEqual(m, new Float32Array(4).fill(Math.fround(0.1 * 0.25))); // not fresh
  await opt.loadState(bytes);
  assert.equal(opt.iterations, 1);
  opt.dispose();
  tf.dispose([...copies, ...[...weights, ...after].map((w) => w.tensor)]);
});

Deno.test("tfjs: setWeights before the model is built is refused; iter alone sets the step count", async () => {
  await useBackend("cpu");
  const weights = await weightsOf([name("early/w")], [[2]]);
  const opt = tfOptimizer(adam({ lr: 0.1 }));
  await assert.rejects(() => opt.setWeights(weights), (e: Error) => {
    assert.ok(e instanceof RangeError, e.message);
    assert.match(e.message, /none is registered: build or load the model first/);
    return true;
  });
  assert.equal(opt.iterations, 0);
  assert.equal(opt.state, undefined);
  // `iter` alone, with no variable registered or one: nothing to match, the step count is taken.
  const iter = weights.filter((w) => w.name === "iter");
  await opt.setWeights(iter);
  assert.equal(opt.iterations, 7);
  const w = tf.variable(tf.ones([2]), true, name("late/w"));
  await opt.setWeights(iter);
  stepAll(opt, [w]);
  assert.equal(opt.iterations, 8);
  opt.dispose();
  tf.dispose([w, ...weights.map((x) => x.tensor)]);
});

Deno.test("tfjs: a model saved with an optimizer that has not stepped loads (its weights are iter alone)", async () => {
  await useBackend("cpu");
  const model = denseNet(3);
  model.compile({ optimizer: tfOptimizer(adam({ lr: 0.1 })), loss: "meanSquaredError" });
  const saved = await saveToMemory(model);
  const optimizerWeights = saved.weightSpecs!.filter((s) => s.group === "optimizer");
  assert.deepEqual(optimizerWeights.map((s) => s.name), ["iter"]);
  const loaded = await tfl.loadLayersModel(tf.io.fromMemory(saved));
  assert.equal((loaded.optimizer as TfOptimizer).iterations, 0);
  disposeModels(model, loaded);
});
