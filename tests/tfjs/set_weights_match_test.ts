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
  denseNet,
  disposeModels,
  ofTrainedAdam,
  optimizerSnapshot,
  saveToMemory,
  stepAll,
  tf,
  tfl,
  uniqueNames,
  useBackend,
} from "./helpers.ts";

const name = uniqueNames("wmatch");

type Weights = { name: string; tensor: tf.Tensor }[];

/** The weights of an Adam optimizer over variables `names` (of `shapes`), 7 steps in. */
function weightsOf(names: string[], shapes: number[][]): Promise<Weights> {
  return ofTrainedAdam(names, shapes, (opt) => opt.getWeights());
}

Deno.test("tfjs: setWeights of weights that fit no variable is refused, naming both sides; nothing changes", async () => {
  await useBackend("cpu");
  const otherNames = ["a", "b", "c"].map((n) => name(`other/${n}`));
  const other = await weightsOf(otherNames, otherNames.map(() => [3]));
  const modelNames = ["k", "q", "r", "s"].map((n) => name(`model/${n}`));
  // Weights of variables of the model's names, but other shapes.
  const sameNamed = await weightsOf(modelNames.slice(0, 2), [[3, 2], [4]]);
  const vars = modelNames.map((n) => tf.variable(tf.ones([2, 3]), true, n));
  const twinVars = modelNames.map((n) => tf.variable(tf.ones([2, 3]), true, `${n}-twin`));
  const [opt, twin] = [tfOptimizer(adam({ lr: 0.1 })), tfOptimizer(adam({ lr: 0.1 }))];
  for (let t = 0; t < 2; t++) {
    stepAll(opt, vars);
    stepAll(twin, twinVars);
  }
  const before = await optimizerSnapshot(opt);
  await assert.rejects(() => opt.setWeights(other), (e: Error) => {
    assert.ok(e instanceof RangeError, e.message);
    assert.match(e.message, /^No optimizer weight given to setWeights fits/);
    // A few of the given weights (6: `/m` and `/v` of 3 variables), and of the model's variables.
    const given = other.map((w) => w.name).filter((n) => n !== "iter");
    for (const n of given.slice(0, 3)) assert.ok(e.message.includes(JSON.stringify(n)), e.message);
    assert.ok(!e.message.includes(JSON.stringify(given[3])), e.message);
    assert.match(e.message, /and 3 more/);
    assert.ok(e.message.includes(JSON.stringify(modelNames[0])), e.message);
    assert.match(e.message, /base name .*_<n>/);
    assert.match(e.message, /zero moments at step 7/);
    return true;
  });
  assert.deepEqual(await optimizerSnapshot(opt), before);
  await assert.rejects(() => opt.setWeights(sameNamed), /No optimizer weight given to setWeights/);
  assert.deepEqual(await optimizerSnapshot(opt), before);
  // And the next step is the twin's, bit for bit.
  stepAll(opt, vars);
  stepAll(twin, twinVars);
  const after = await optimizerSnapshot(opt), twinAfter = await optimizerSnapshot(twin);
  assert.equal(after.iterations, 3);
  assert.deepEqual(after.weights.map((w) => w[1]), twinAfter.weights.map((w) => w[1]));
  vars.forEach((v, i) => assert.deepEqual(v.dataSync(), twinVars[i].dataSync()));
  opt.dispose();
  twin.dispose();
  tf.dispose([...vars, ...twinVars, ...[...other, ...sameNamed].map((w) => w.tensor)]);
});

Deno.test("tfjs: setWeights of weights of which some fit loads them; the others start fresh", async () => {
  await useBackend("cpu");
  const [kept, gone, renamed] = [name("part/a"), name("part/b"), name("base/w")];
  const partial = await weightsOf([kept, gone], [[3], [3]]);
  const suffixed = await weightsOf([renamed], [[2, 2]]);
  const vars = [
    tf.variable(tf.ones([3]), true, kept),
    tf.variable(tf.ones([3]), true, name("new")),
  ];
  const opt = tfOptimizer(adam({ lr: 0.1 }));
  await opt.setWeights(partial);
  assert.equal(opt.iterations, 7);
  stepAll(opt, vars);
  assert.equal(opt.iterations, 8);
  const weights = await opt.getWeights();
  const m = (v: tf.Variable) => weights.find((w) => w.name === `${v.name}/m`)!.tensor.dataSync();
  // The first moment after one step from zero is (1 - β₁)·g; the loaded one carries its history.
  assert.deepEqual(m(vars[1]), new Float32Array(3).fill(Math.fround(0.1 * 0.25)));
  assert.notDeepEqual(m(vars[0]), m(vars[1]));
  tf.dispose(weights.map((w) => w.tensor));
  opt.dispose();
  // By base name: a variable that tfjs named `<name>_1`.
  const w1 = tf.variable(tf.ones([2, 2]), true, `${renamed}_1`);
  const other = tfOptimizer(adam({ lr: 0.1 }));
  await other.setWeights(suffixed);
  assert.equal(other.iterations, 7);
  other.dispose();
  tf.dispose([...vars, w1, ...[...partial, ...suffixed].map((w) => w.tensor)]);
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
