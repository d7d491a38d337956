/**
 * Edges of the gradients accumulated and the moving averages on tfjs's CPU backends: a read of
 * the averages that fails leaves no copy of the sums behind (getWeights, saveState); the header
 * cap counts what a checkpoint holds beside the state; setWeights and loadState while swapped are
 * refused; averages loaded that no variable can take are dropped at the step; a hostile
 * tensor_order is refused before it is parsed; a variable named as another's sum or average.
 */
import assert from "node:assert/strict";
import { adam, CheckpointError, saveState } from "../../mod.ts";
import { readCheckpointExtras } from "../../tfjs/checkpoint_extras.ts";
import { setHeaderCap } from "../../base/_json_bounds.ts";
import { edit } from "../checkpoint_files.ts";
import { saying } from "../util.ts";
import { tfOptimizer } from "../../tfjs.ts";
import { seededVars, stepWith, tf, uniqueNames, useBackend } from "./helpers.ts";

const named = uniqueNames("extras_edges");

Deno.test("tfjs: a failed read of the averages frees the copies of the sums made before it", async () => {
  await useBackend("cpu");
  const vars = seededVars(named, 1, 4);
  const opt = tfOptimizer(adam(), { gradientAccumulationSteps: 3, ema: true });
  for (let k = 0; k < 4; k++) stepWith(opt, vars, k); // (a step, then one call summed)
  assert.equal(opt.accumulatedBatches, 1);
  const failure = new Error("out of memory");
  Object.defineProperty(opt.averages, "weights", {
    value: () => {
      throw failure;
    },
  });
  const before = tf.memory().numTensors;
  await assert.rejects(opt.getWeights(), (error) => error === failure);
  assert.equal(tf.memory().numTensors, before);
  await assert.rejects(saveState(opt.state!), (error) => error === failure);
  assert.equal(tf.memory().numTensors, before);
  opt.dispose();
  tf.dispose(vars);
});

Deno.test("tfjs: the header cap counts the sums and averages a checkpoint would hold", async () => {
  await useBackend("cpu");
  setHeaderCap(CAP);
  try {
    await capCountsBeside();
  } finally {
    setHeaderCap();
  }
});

/** The cap on a header's length in the test of what is saved beside (`setHeaderCap`). */
const CAP = 40_000;

/** That test, with the cap lowered to {@linkcode CAP}. */
async function capCountsBeside(): Promise<void> {
  // Names (each within a tensor's limit) whose state alone fits the cap (each name ~4 times in
  // the header), and not with their `.average` or `.accum` beside them (a fifth time).
  const vars = Array.from(
    { length: 14 },
    (_, i) => tf.variable(tf.zeros([1]), true, `${named("w")}.${i}.${"w".repeat(600)}`),
  );
  const grads = Object.fromEntries(vars.map((v) => [v.name, tf.ones([1])]));
  const plain = tfOptimizer(adam());
  plain.applyGradients(grads); // (trains, and saves)
  assert.ok((await saveState(plain.state!)).length > 0.84 * CAP);
  for (
    const [options, calls] of [[{ ema: true }, 1], [{ gradientAccumulationSteps: 2 }, 2]] as const
  ) {
    const opt = tfOptimizer(adam(), options);
    if (calls === 2) opt.applyGradients(grads); // (summed; the state, which cannot be, not made)
    assert.throws(() => opt.applyGradients(grads), (error: Error) => {
      assert.ok(error instanceof RangeError, String(error));
      assert.match(error.message, /above the cap of 40000 \(14 tensors, and 14 saved beside/);
      return true;
    });
    assert.equal(opt.state, undefined);
    assert.equal(opt.iterations, 0);
    assert.equal(opt.accumulatedBatches, calls - 1);
    opt.dispose();
  }
  plain.dispose();
  tf.dispose([...vars, ...Object.values(grads)]);
}

Deno.test("tfjs: setWeights and loadState while the averages are swapped in are refused, nothing changed", async () => {
  await useBackend("cpu");
  const vars = seededVars(named, 5, 4);
  const opt = tfOptimizer(adam({ lr: 0.1 }), { ema: { momentum: 0.5 } });
  for (let k = 0; k < 3; k++) stepWith(opt, vars, k);
  const training = vars.map((v) => v.dataSync().slice());
  const weights = (await opt.getWeights()).map((w) => ({
    name: w.name,
    tensor: tf.clone(w.tensor),
  }));
  const bytes = await saveState(opt.state!);
  opt.averages!.swap();
  const averaged = vars.map((v) => v.dataSync().slice());
  assert.notDeepEqual(averaged, training);
  const refused = (error: Error) =>
    error instanceof TypeError && /swapped into the variables/.test(error.message) &&
    /call averages\.swap\(\) again first/.test(error.message);
  await assert.rejects(opt.setWeights(weights), refused);
  await assert.rejects(opt.loadState(bytes), refused);
  assert.equal(opt.averages!.swapped, true);
  assert.deepEqual(vars.map((v) => v.dataSync().slice()), averaged);
  opt.averages!.swap(); // back: the training weights, as they were
  assert.deepEqual(vars.map((v) => v.dataSync().slice()), training);
  await opt.setWeights(weights);
  await opt.loadState(bytes);
  opt.dispose();
  tf.dispose([...vars, ...weights.map((w) => w.tensor)]);
});

Deno.test("tfjs: averages loaded that no variable can take any more are dropped at the step, not saved again", async () => {
  await useBackend("cpu");
  const base = named("w");
  const make = (names: string[]) =>
    names.map((n, i) => tf.variable(tf.fill([2], i + 1), true, base + n));
  const first = make(["", "_1"]); // (two variables of one base name: their averages are ambiguous)
  const a = tfOptimizer(adam({ lr: 0.1 }), { ema: true });
  stepWith(a, first, 1);
  const weights = await a.getWeights();
  const saved = weights.map((w) => ({ name: w.name, tensor: tf.clone(w.tensor) }));
  a.dispose();
  tf.dispose(first);
  const again = make(["_2", "_3"]); // (the model loaded again: new names)
  const b = tfOptimizer(adam({ lr: 0.1 }), { ema: true });
  await b.setWeights(saved);
  stepWith(b, again, 2);
  const averages = (await b.getWeights()).filter((w) => w.name.endsWith("/average"));
  assert.deepEqual(averages.map((w) => w.name).sort(), [
    base + "_2/average",
    base + "_3/average",
  ]);
  b.dispose();
  tf.dispose([...again, ...saved.map((w) => w.tensor)]);
});

Deno.test("tfjs: an average loaded for a frozen variable is kept for when it trains again", async () => {
  await useBackend("cpu");
  const [w, f] = ["w", "f"].map((n, i) => tf.variable(tf.fill([2], i + 1), true, named(n)));
  const a = tfOptimizer(adam({ lr: 0.1 }), { ema: true });
  stepWith(a, [w, f], 1);
  const saved = (await a.getWeights()).map((x) => ({ name: x.name, tensor: tf.clone(x.tensor) }));
  a.dispose();
  f.trainable = false; // (frozen for a while, as a layer whose trainable is set false)
  const b = tfOptimizer(adam({ lr: 0.1 }), { ema: true });
  await b.setWeights(saved);
  stepWith(b, [w], 2);
  const averages = (await b.getWeights()).filter((x) => x.name.endsWith("/average"));
  assert.deepEqual(
    averages.map((x) => x.name).sort(),
    [f.name + "/average", w.name + "/average"].sort(),
  );
  const loaded = saved.find((x) => x.name === f.name + "/average")!.tensor.dataSync()[0];
  f.trainable = true;
  stepWith(b, [w, f], 3); // (trained again: it goes on from the average loaded)
  const [average] = (await b.getWeights()).filter((x) => x.name === f.name + "/average");
  assert.notEqual(average.tensor.dataSync()[0], f.dataSync()[0]);
  assert.ok(Math.abs(average.tensor.dataSync()[0] - loaded) < 0.1);
  b.dispose();
  tf.dispose([w, f, ...saved.map((x) => x.tensor)]);
});

Deno.test("tfjs: the read of the sums and averages refuses a tensor_order nested deeper than a checkpoint's before it is parsed", async () => {
  const good = await saveState(await adam().init({ w: new Float32Array(2) }));
  assert.equal(readCheckpointExtras(good, 2, false).averages.size, 0);
  const deep = edit(good, (h) => h.__metadata__.tensor_order = JSON.stringify([[[["w"]]]]));
  assert.throws(
    () => readCheckpointExtras(deep, 2, false),
    (e: Error) =>
      e instanceof CheckpointError &&
      /^Checkpoint metadata tensor_order nests deeper/.test(e.message),
  );
});

Deno.test("tfjs: a variable named as another's sum or average (w and w.accum) is refused at the step, naming both, nothing changed: the checkpoint would hold the name twice", async () => {
  await useBackend("cpu");
  for (
    const [options, suffix, calls] of [[{ gradientAccumulationSteps: 3 }, ".accum", 2], [
      { ema: true },
      ".average",
      0,
    ]] as const
  ) {
    const w = tf.variable(tf.ones([2]), true, named("w"));
    const twin = tf.variable(tf.ones([2]), true, w.name + suffix);
    const opt = tfOptimizer(adam({ lr: 0.1 }), options);
    const grads = { [w.name]: tf.ones([2]), [twin.name]: tf.ones([2]) };
    for (let k = 0; k < calls; k++) opt.applyGradients(grads); // (summed, no step)
    assert.throws(
      () => opt.applyGradients(grads),
      saying(TypeError, `would hold ${JSON.stringify(twin.name)} twice, as a variable and as`),
    );
    assert.equal(opt.iterations, 0, suffix);
    assert.equal(opt.accumulatedBatches, calls, suffix);
    assert.deepEqual([...w.dataSync(), ...twin.dataSync()], [1, 1, 1, 1], suffix);
    opt.dispose();
    tf.dispose([w, twin, ...Object.values(grads)]);
  }
});

Deno.test("tfjs: a variable named as the average of a frozen variable (w.average, w's average held) is refused at the step, nothing changed; that of a disposed one is not", async () => {
  await useBackend("cpu");
  const w = tf.variable(tf.ones([2]), true, named("w"));
  const twin = tf.variable(tf.ones([2]), true, w.name + ".average");
  const opt = tfOptimizer(adam({ lr: 0.1 }), { ema: true });
  const g = { [w.name]: tf.ones([2]) }, h = { [twin.name]: tf.ones([2]) };
  opt.applyGradients(g); // (w's average held from here, kept while w is frozen)
  assert.throws(
    () => opt.applyGradients(h),
    saying(TypeError, `would hold ${JSON.stringify(twin.name)} twice, as a variable and as`),
  );
  assert.equal(opt.iterations, 1);
  assert.deepEqual(opt.averages!.names(), [w.name]);
  assert.deepEqual([...twin.dataSync()], [1, 1]);
  await saveState(opt.state!); // (the state of w still, which saves)
  w.dispose(); // (its average is dropped at the next step: no clash)
  opt.applyGradients(h);
  assert.deepEqual(opt.averages!.names(), [twin.name]);
  await saveState(opt.state!);
  opt.dispose();
  tf.dispose([twin, ...Object.values(g), ...Object.values(h)]);
});

Deno.test("tfjs: loadState parses the checkpoint's header once, for the state and for the sums and averages", async () => {
  await useBackend("cpu");
  const vars = seededVars(named, 2, 3);
  const opt = tfOptimizer(adam(), { gradientAccumulationSteps: 3, ema: true });
  for (let k = 0; k < 4; k++) stepWith(opt, vars, k); // (a step, then one call summed)
  const bytes = await saveState(opt.state!);
  const length = Number(new DataView(bytes.buffer).getBigUint64(0, true));
  const text = new TextDecoder().decode(bytes.subarray(8, 8 + length));
  const parse = JSON.parse;
  let parses = 0;
  JSON.parse = function (this: unknown, source: string, ...rest: unknown[]) {
    if (source === text) parses++;
    return Reflect.apply(parse, this, [source, ...rest]);
  } as typeof JSON.parse;
  const loaded = tfOptimizer(adam(), { gradientAccumulationSteps: 3, ema: true });
  try {
    await loaded.loadState(bytes);
  } finally {
    JSON.parse = parse;
  }
  assert.equal(parses, 1);
  assert.equal(loaded.accumulatedBatches, 1); // (the sums read from that parse)
  assert.deepEqual(await saveState(loaded.state!), bytes);
  loaded.dispose();
  opt.dispose();
  tf.dispose(vars);
});
