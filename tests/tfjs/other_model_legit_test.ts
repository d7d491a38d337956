/**
 * What the refusal of another model's optimizer weights (other_model_weights_test.ts) must let
 * through: weights of the variables a model shares with the model they were saved from (a
 * `tf.sequential` or functional model built on its layers), of a clone of that model
 * (`tf.models.modelFromJSON`, whose variables tfjs names `<name>_1`), of the model itself
 * trained with its base frozen (`layer.trainable = false`) and then unfrozen, and of variables
 * stepped a subset at a time (`minimize` with a `varList`, `applyGradients` on part then the
 * rest). Each steps as the run not resumed does, bit for bit.
 */
import assert from "node:assert/strict";
import { adam } from "../../mod.ts";
import { type TfOptimizer, tfOptimizer } from "../../tfjs.ts";
import {
  denseNet,
  disposeModels,
  fitInOrder,
  tf,
  tfl,
  uniqueNames,
  useBackend,
  weightValues,
} from "./helpers.ts";

const named = uniqueNames("other-model-legit");
const optimizer = () => tfOptimizer(adam({ lr: 0.05 }));

/** Model A of `seed`, trained two epochs by its own optimizer on `x`, `y`. */
async function trained(seed: number, x: tf.Tensor, y: tf.Tensor): Promise<tfl.Sequential> {
  const a = denseNet(seed);
  a.compile({ optimizer: optimizer(), loss: "meanSquaredError" });
  await a.fit(x, y, fitInOrder(2));
  return a;
}

/** A new optimizer given `from`'s weights. */
async function resumed(from: tf.Optimizer): Promise<TfOptimizer> {
  const next = optimizer();
  const weights = await from.getWeights();
  await next.setWeights(weights);
  tf.dispose(weights.map((w) => w.tensor));
  return next;
}

Deno.test("tfjs: A's optimizer weights given to a model on A's layers (tf.sequential, functional with the base frozen, then unfrozen) step it, A's moments taken", async () => {
  await useBackend("cpu");
  const x = tf.randomNormal([8, 6], 0, 1, "float32", 1);
  const y = tf.randomNormal([8, 3], 0, 1, "float32", 2);
  const a = await trained(3, x, y);
  const steps = a.optimizer.iterations;
  // A's layers wrapped with a head of A's last layer's shape.
  const wrapped = tfl.sequential({ layers: [...a.layers, tfl.layers.dense({ units: 3 })] });
  const ow = await resumed(a.optimizer);
  wrapped.compile({ optimizer: ow, loss: "meanSquaredError" });
  await wrapped.fit(x, y, fitInOrder(1));
  assert.equal(ow.iterations, steps + 2);
  // A functional model on A's first layer, frozen, and a new head of the shapes of A's last.
  const input = tfl.input({ shape: [6] });
  const base = a.layers[0];
  const head = tfl.layers.dense({ units: 3 });
  const b = tfl.model({
    inputs: input,
    outputs: head.apply(base.apply(input)) as tfl.SymbolicTensor,
  });
  base.trainable = false;
  const ob = await resumed(a.optimizer);
  b.compile({ optimizer: ob, loss: "meanSquaredError" });
  await b.fit(x, y, fitInOrder(1));
  assert.equal(ob.iterations, steps + 2);
  // Unfrozen, the base takes A's moments of it: its step is that of A's optimizer on it.
  base.trainable = true;
  const kernel = base.trainableWeights[0];
  const moments = (await ob.getWeights()).filter((w) => w.name.startsWith(kernel.name + "/"));
  const fromA = (await a.optimizer.getWeights()).filter((w) =>
    w.name.startsWith(kernel.name + "/")
  );
  assert.deepEqual(
    await Promise.all(moments.map((w) => w.tensor.data())),
    await Promise.all(fromA.map((w) => w.tensor.data())),
  );
  b.compile({ optimizer: ob, loss: "meanSquaredError" });
  await b.fit(x, y, fitInOrder(1));
  assert.equal(ob.iterations, steps + 4);
  tf.dispose([x, y]);
  wrapped.dispose(); // (A's layers with it)
  head.dispose();
  for (const o of [a.optimizer, ow, ob]) o.dispose();
});

Deno.test("tfjs: A's optimizer weights given to A's clone (modelFromJSON, setWeights) resume it as A goes on", async () => {
  await useBackend("cpu");
  const x = tf.randomNormal([8, 6], 0, 1, "float32", 3);
  const y = tf.randomNormal([8, 3], 0, 1, "float32", 4);
  const a = await trained(4, x, y);
  const clone = await tfl.models.modelFromJSON(
    JSON.parse(JSON.stringify(a.toJSON(null, false))),
  ) as tfl.LayersModel;
  clone.setWeights(a.getWeights());
  assert.notDeepEqual(
    clone.trainableWeights.map((w) => w.name),
    a.trainableWeights.map((w) => w.name),
  );
  clone.compile({ optimizer: await resumed(a.optimizer), loss: "meanSquaredError" });
  await a.fit(x, y, fitInOrder(2));
  await clone.fit(x, y, fitInOrder(2));
  assert.equal(clone.optimizer.iterations, a.optimizer.iterations);
  assert.deepEqual(await weightValues(clone), await weightValues(a));
  tf.dispose([x, y]);
  disposeModels(a, clone);
});

Deno.test("tfjs: weights of variables stepped a subset at a time resume minimize(varList) and applyGradients on part then the rest, as the run not resumed", async () => {
  await useBackend("cpu");
  const make = (tag: string) =>
    [1, 2, 3].map((i) => tf.variable(tf.fill([4], i / 4), true, named(`${tag}${i}`)));
  const [run, twin] = [make("run"), make("twin")];
  const grad = (k: number) => tf.tensor1d([0.5, -1, 0.25, k]);
  const on = (vars: tf.Variable[], k: number) =>
    Object.fromEntries(vars.map((v) => [v.name, grad(k)]));
  const first = optimizer(), second = optimizer();
  first.applyGradients(on(run, 1));
  second.applyGradients(on(twin, 1));
  // The twin's optimizer is replaced by one given its weights, renamed for nothing: its own.
  const resumedTwin = await resumed(second);
  for (const [opt, vars] of [[first, run], [resumedTwin, twin]] as const) {
    // minimize over the first variable alone, then applyGradients on it, then the rest.
    opt.minimize(() => tf.sum(tf.mul(vars[0], tf.tensor1d([1, -2, 3, -4]))), false, [vars[0]]);
    opt.applyGradients(on([vars[0]], 2));
    opt.applyGradients(on(vars.slice(1), 3));
  }
  assert.equal(resumedTwin.iterations, first.iterations);
  for (let i = 0; i < run.length; i++) {
    assert.deepEqual(await twin[i].data(), await run[i].data());
  }
  tf.dispose([...run, ...twin]);
  for (const o of [first, second, resumedTwin]) o.dispose();
});

Deno.test("tfjs: weights of a model's variables given to its resume whose first step trains its others, named otherwise than by tfjs's layer numbers, step them", async () => {
  await useBackend("cpu");
  // A custom loop trains the encoder, then the decoder (of the same shapes), then both.
  const make = () =>
    ["encoder/kernel", "decoder/kernel"].map((base, i) =>
      tf.variable(tf.fill([3, 2], i + 1), true, named(base))
    );
  const [run, twin] = [make(), make()];
  const grad = (k: number) => tf.tensor2d([[0.5, -1], [0.25, k], [2, -0.5]]);
  const step = (opt: TfOptimizer, vars: tf.Variable[], k: number) =>
    opt.applyGradients(Object.fromEntries(vars.map((v) => [v.name, grad(k)])));
  const first = optimizer(), second = optimizer();
  for (const [opt, vars] of [[first, run], [second, twin]] as const) {
    step(opt, [vars[0]], 1);
    step(opt, [vars[0]], 2);
  }
  // The twin resumes from the weights saved after the encoder's phase: the encoder's alone.
  const next = await resumed(second);
  for (const [opt, vars] of [[first, run], [next, twin]] as const) {
    step(opt, [vars[1]], 3); // (refused before, as if the encoder were another model's)
    step(opt, vars, 4);
  }
  assert.equal(next.iterations, first.iterations);
  for (let i = 0; i < run.length; i++) {
    assert.deepEqual(await twin[i].data(), await run[i].data());
  }
  tf.dispose([...run, ...twin]);
  for (const o of [first, second, next]) o.dispose();
});

Deno.test("tfjs: weights of a model's layer given to its resume whose first step trains only its next layer, numbered alike: the error says to freeze the first for it, which then resumes as the run not resumed", async () => {
  await useBackend("cpu");
  // Trained a layer at a time (the same shapes, numbered as tfjs-layers numbers layers).
  const make = () =>
    ["layer1", "layer2"].map((base, i) => tf.variable(tf.fill([2, 2], i + 1), true, named(base)));
  const [run, twin] = [make(), make()];
  const grad = (k: number) => tf.tensor2d([[0.5, -1], [0.25, k]]);
  const step = (opt: TfOptimizer, vars: tf.Variable[], k: number) =>
    opt.applyGradients(Object.fromEntries(vars.map((v) => [v.name, grad(k)])));
  const first = optimizer(), second = optimizer();
  step(first, [run[0]], 1);
  step(second, [twin[0]], 1);
  const next = await resumed(second); // (the first layer's weights alone)
  const before = await twin[1].data();
  assert.throws(
    () => step(next, [twin[1]], 2),
    (e) =>
      e instanceof RangeError && e.message.includes(JSON.stringify(twin[0].name)) &&
      e.message.includes("freeze those for it (variable.trainable = false)"),
  );
  assert.deepEqual(await twin[1].data(), before);
  // What it says: the first layer frozen for the step, its moments wait for it.
  twin[0].trainable = false;
  step(next, [twin[1]], 2);
  twin[0].trainable = true;
  step(first, [run[1]], 2);
  step(next, twin, 3);
  step(first, run, 3);
  assert.equal(next.iterations, first.iterations);
  for (let i = 0; i < run.length; i++) {
    assert.deepEqual(await twin[i].data(), await run[i].data());
  }
  tf.dispose([...run, ...twin]);
  for (const o of [first, second, next]) o.dispose();
});
