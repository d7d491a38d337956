/**
 * The adapter's state belongs to a `tf.Variable`, not only to its name: a variable disposed and
 * made again under the same name (a model rebuilt with the same names, `tf.variable(..., name)`
 * again) starts fresh (zero moments, slow weights at its own value), whatever its shape, as any
 * variable new to the optimizer does; the state of a gone variable is dropped at the next step
 * that makes the state, so that `getWeights` (and `model.save`) no longer lists it. A variable
 * left out of steps and alive keeps its state, as before.
 */
import "@tensorflow/tfjs-backend-webgpu";
import assert from "node:assert/strict";
import { adam, ranger } from "../../mod.ts";
import { tfOptimizer } from "../../tfjs.ts";
import {
  CPU_BACKENDS,
  optimizerSnapshot,
  saveToMemory,
  stepAll,
  tf,
  tfl,
  uniqueNames,
  useBackend,
  webgpuTestOptions,
} from "./helpers.ts";

const name = uniqueNames("identity");

/** The weights of `opt` by name: their values. */
async function weightsByName(opt: ReturnType<typeof tfOptimizer>): Promise<Map<string, number[]>> {
  const { weights } = await optimizerSnapshot(opt);
  return new Map(weights.map(([n, values]) => [n, [...values]]));
}

/**
 * Checks that `n`'s state is one step of Ranger (β₁ 0.95, β₂ 0.999) from fresh: gradient 0.25
 * once from zero moments, its slow weights `start` (its value when made).
 */
function assertFresh(weights: Map<string, number[]>, n: string, start: number[]): void {
  const near = (got: number[] | undefined, want: number) =>
    assert.ok(
      got?.length === start.length && got.every((x) => Math.abs(x / want - 1) < 1e-5),
      `${n}: ${got} vs ${want}`,
    );
  near(weights.get(`${n}/m`), 0.05 * 0.25);
  near(weights.get(`${n}/v`), 0.001 * 0.0625);
  assert.deepEqual(weights.get(`${n}/slow`), start);
}

/** A variable made again under `n`, and one step with gradient 0.25 of `opt` over `others` too. */
function stepNew(
  opt: ReturnType<typeof tfOptimizer>,
  n: string,
  values: number[],
  others: tf.Variable[] = [],
): tf.Variable {
  const v = tf.variable(tf.tensor1d(values), true, n);
  stepAll(opt, [v, ...others]);
  return v;
}

async function madeAgainStartsFresh(backend: string): Promise<void> {
  await useBackend(backend);
  const n = name(`${backend}/w`), other = name(`${backend}/u`);
  const u = tf.variable(tf.tensor1d([1, 1]), true, other);
  const opt = tfOptimizer(ranger({ lr: 0.1 }));
  let w: tf.Variable = tf.variable(tf.tensor1d([1, 2]), true, n);
  for (let t = 0; t < 3; t++) stepAll(opt, [w, u]);
  const uBefore = (await weightsByName(opt)).get(`${other}/m`)!;
  // In the live state: disposed and made again, same shape. (tfjs's own Adam, keyed by
  // position, would hand it the moments of the one before; its slow weights would pull it
  // toward the values of a variable that is gone.)
  w.dispose();
  w = stepNew(opt, n, [10, 20], [u]);
  let weights = await weightsByName(opt);
  assertFresh(weights, n, [10, 20]);
  assert.notDeepEqual(weights.get(`${other}/m`), uBefore); // u kept its state and stepped
  assert.equal(opt.iterations, 4);
  // Kept aside (left out of a step, then disposed): made again, fresh too.
  stepAll(opt, [w, u]);
  stepAll(opt, [u]);
  w.dispose();
  w = stepNew(opt, n, [5, 6], [u]);
  assertFresh(await weightsByName(opt), n, [5, 6]);
  // Another shape: fresh as well (never moments of the wrong shape).
  w.dispose();
  w = stepNew(opt, n, [7, 8, 9], [u]);
  assertFresh(await weightsByName(opt), n, [7, 8, 9]);
  // A gone variable's state is dropped at the next change of the state: not in getWeights.
  w.dispose();
  const fresh = tf.variable(tf.tensor1d([3]), true, name(`${backend}/x`));
  stepAll(opt, [fresh, u]);
  weights = await weightsByName(opt);
  assert.ok(![...weights.keys()].some((k) => k.startsWith(`${n}/`)), [...weights.keys()].join());
  // An alive variable left out keeps its state aside, and takes it back.
  const kept = weights.get(`${other}/m`)!;
  stepAll(opt, [fresh]);
  stepAll(opt, [fresh, u]);
  assert.notDeepEqual(
    (await weightsByName(opt)).get(`${other}/m`),
    new Array(2).fill(Math.fround(0.05 * 0.25)),
  );
  assert.notDeepEqual(kept, new Array(2).fill(Math.fround(0.05 * 0.25)));
  opt.dispose();
  tf.dispose([fresh, u]);
}

for (const backend of CPU_BACKENDS) {
  Deno.test(`tfjs (${backend}): a variable made again under a name starts fresh; a gone one's state is dropped`, async () => {
    await madeAgainStartsFresh(backend);
  });
}

Deno.test({
  name:
    "tfjs (webgpu): a variable made again under a name starts fresh; a gone one's state is dropped",
  ...await webgpuTestOptions(),
  fn: async () => {
    await madeAgainStartsFresh("webgpu");
    await useBackend("cpu");
  },
});

Deno.test("tfjs: strict refuses a variable made again under a name, naming it; nothing changes", async () => {
  await useBackend("cpu");
  const n = name("strict/w");
  let w = tf.variable(tf.tensor1d([1, 2]), true, n);
  const opt = tfOptimizer(adam({ lr: 0.1 }), { strict: true });
  stepAll(opt, [w]);
  const before = await optimizerSnapshot(opt);
  w.dispose();
  w = tf.variable(tf.tensor1d([1, 2]), true, n);
  assert.throws(() => stepAll(opt, [w]), (e: Error) => {
    assert.ok(e instanceof RangeError, e.message);
    assert.ok(e.message.includes(JSON.stringify(n)), e.message);
    assert.match(e.message, /new tf\.Variable under the name/);
    return true;
  });
  assert.deepEqual(await optimizerSnapshot(opt), before);
  assert.deepEqual([...w.dataSync()], [1, 2]);
  opt.dispose();
  w.dispose();
});

Deno.test("tfjs: a model rebuilt under the same optimizer saves only its own state", async () => {
  await useBackend("cpu");
  const layer = name("rebuilt").replace("/", "_");
  const build = () =>
    tfl.sequential({ layers: [tfl.layers.dense({ units: 1, inputShape: [2], name: layer })] });
  const optimizer = tfOptimizer(ranger({ lr: 0.1 }));
  const x = tf.ones([4, 2]), y = tf.ones([4, 1]);
  const first = build();
  first.compile({ optimizer, loss: "meanSquaredError" });
  await first.fit(x, y, { epochs: 2, verbose: 0 });
  first.dispose();
  const second = build(); // tfjs-layers names its variables `<layer>/kernel_1`
  second.compile({ optimizer, loss: "meanSquaredError" });
  await second.fit(x, y, { epochs: 1, verbose: 0 });
  const saved = await saveToMemory(second);
  const names = saved.weightSpecs!.map((s) => s.name);
  const own = second.trainableWeights.map((w) => w.name);
  // Its own state, not that of the disposed model (which a load in a fresh process, where the
  // variables are named `<layer>/kernel` again, would have taken by name).
  assert.ok(names.includes(`${own[0]}/m`), names.join());
  assert.ok(!names.includes(`${layer}/kernel/m`), names.join());
  second.dispose();
  optimizer.dispose();
  tf.dispose([x, y]);
});

/**
 * A step over new variables whose state cannot be made (`x`'s values cannot be read, as where
 * tfjs fails to read them) throws, and leaves what the optimizer holds as it was, the state of
 * a variable disposed since the last step included: it is forgotten only once a state is made
 * (there `getWeights` lists it, as it did before the failed step).
 */
async function failedChangeKeepsGone(backend: string): Promise<void> {
  await useBackend(backend);
  const gone = tf.variable(tf.tensor1d([1, 2]), true, name(`${backend}/gone`));
  const u = tf.variable(tf.tensor1d([3, 4]), true, name(`${backend}/stays`));
  const opt = tfOptimizer(ranger({ lr: 0.1 }));
  for (let t = 0; t < 3; t++) stepAll(opt, [gone, u]);
  const before = await optimizerSnapshot(opt);
  assert.ok(before.weights.some(([n]) => n === `${gone.name}/m`));
  gone.dispose();
  const x = tf.variable(tf.tensor1d([5, 6]), true, name(`${backend}/new`));
  const refused = () => {
    throw new Error("unreadable");
  };
  Object.assign(x, { dataSync: refused, dataToGPU: refused });
  const grads = [tf.fill([2], 0.25), tf.fill([2], 0.25)];
  assert.throws(() => opt.applyGradients({ [u.name]: grads[0], [x.name]: grads[1] }), /unreadable/);
  assert.deepEqual(await optimizerSnapshot(opt), before);
  // Readable again: the step makes the state, and the gone variable's state is forgotten.
  Object.assign(x, {
    dataSync: tf.Variable.prototype.dataSync,
    dataToGPU: tf.Variable.prototype.dataToGPU,
  });
  opt.applyGradients({ [u.name]: grads[0], [x.name]: grads[1] });
  const names = (await optimizerSnapshot(opt)).weights.map(([n]) => n);
  assert.ok(!names.some((n) => n.startsWith(`${gone.name}/`)), names.join());
  assert.ok(names.includes(`${x.name}/m`), names.join());
  opt.dispose();
  tf.dispose([x, u, ...grads]);
}

Deno.test("tfjs (cpu): a failed change of the variables keeps a gone variable's state until one is made", async () => {
  await failedChangeKeepsGone("cpu");
});

Deno.test({
  name:
    "tfjs (webgpu): a failed change of the variables keeps a gone variable's state until one is made",
  ...await webgpuTestOptions(),
  fn: async () => {
    await failedChangeKeepsGone("webgpu");
    await useBackend("cpu");
  },
});
