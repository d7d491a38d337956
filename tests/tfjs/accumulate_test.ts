/**
 * Option `gradientAccumulationSteps` on tfjs's CPU backends: N calls step as one call given the
 * mean of their gradients, bit for bit, for several rules; the variables changing meanwhile,
 * non-finite gradients, schedules, and resumes mid-accumulation by `setWeights` and `model.save`.
 */
import assert from "node:assert/strict";
import { adam, adamw, lion, radam, ranger, sgd } from "../../mod.ts";
import {
  type SettingsHolder,
  skippedStepsCallback,
  type TfOptimizer,
  tfOptimizer,
} from "../../tfjs.ts";
import {
  clonedWeights,
  CPU_BACKENDS,
  data,
  denseNet,
  disposeModels,
  fitInOrder,
  randoms,
  saveToMemory,
  seededVars,
  tf,
  tfl,
  uniqueNames,
  useBackend,
  weightValues,
} from "./helpers.ts";

const named = uniqueNames("accumulate");

/** A kernel and a bias with seeded values, under new names. */
const makeVars = (seed: number, rows = 24) => seededVars(named, seed, rows);

/** Gradients for `vars` from a seed. */
function gradsOf(vars: tf.Variable[], seed: number): tf.Tensor[] {
  return vars.map((v, i) => tf.tensor(randoms(v.size, seed * 7 + i), v.shape));
}

/** Copies of the values of tensors. */
function valuesOf(tensors: tf.Tensor[]): Float32Array[] {
  return tensors.map((t) => (t.dataSync() as Float32Array).slice());
}

/** The optimizer's weights, values copied, the accumulator's left out. */
async function momentsOf(opt: TfOptimizer): Promise<[string, Float32Array | Int32Array][]> {
  return (await opt.getWeights())
    .filter((w) => !w.name.endsWith("/accum") && w.name !== "accum_count")
    .map((w) => [w.name.replace(/^accumulate\d+\//, ""), w.tensor.dataSync().slice()] as never);
}

/** The mean of `grads` per variable as the accumulator computes it: tf.add in order, tf.div. */
function meanOf(grads: tf.Tensor[][], n: number): tf.Tensor[] {
  return tf.tidy(() =>
    grads[0].map((_, i) => {
      let sum = grads[0][i];
      for (let k = 1; k < grads.length; k++) sum = tf.add(sum, grads[k][i]);
      return tf.div(sum, n);
    })
  );
}

const RULES: [string, () => SettingsHolder, number][] = [
  ["radam", () => radam({ lr: 0.05 }), 24],
  ["ranger (LookAhead)", () => ranger({ lr: 0.05, k: 2 }), 24],
  ["lion", () => lion({ lr: 0.01 }), 24],
  ["adam 8-bit states", () => adam({ lr: 0.05, states: "8bit" }), 2048],
  ["sgd momentum", () => sgd({ lr: 0.05, momentum: 0.9 }), 24],
  ["adamw, clipGradNorm", () => adamw({ lr: 0.05, clipGradNorm: 0.5 }), 24],
];

for (const backend of CPU_BACKENDS) {
  for (const [label, make, size] of RULES) {
    Deno.test(`tfjs ${backend}: ${label}: N = 3 calls are one call given their mean, bit for bit`, async () => {
      await useBackend(backend);
      const tensors = tf.memory().numTensors;
      const n = 3;
      const a = makeVars(11, size), b = makeVars(11, size);
      const accumulated = tfOptimizer(make(), { gradientAccumulationSteps: n });
      const plain = tfOptimizer(make());
      for (let step = 0; step < 3; step++) {
        const grads = [0, 1, 2].map((k) => gradsOf(a, 100 * step + k));
        const before = valuesOf(a);
        for (let k = 0; k < n; k++) {
          accumulated.applyGradients(Object.fromEntries(a.map((v, i) => [v.name, grads[k][i]])));
          if (k < n - 1) {
            // Nothing changes before the N-th call.
            assert.deepEqual(valuesOf(a), before);
            assert.equal(accumulated.iterations, step);
            assert.equal(accumulated.accumulatedBatches, k + 1);
          }
        }
        const mean = meanOf(grads, n);
        plain.applyGradients(Object.fromEntries(b.map((v, i) => [v.name, mean[i]])));
        tf.dispose([...grads.flat(), ...mean]);
        assert.equal(accumulated.iterations, step + 1);
        assert.equal(accumulated.accumulatedBatches, 0);
        assert.deepEqual(valuesOf(a), valuesOf(b));
        assert.deepEqual(await momentsOf(accumulated), await momentsOf(plain));
      }
      accumulated.dispose();
      plain.dispose();
      tf.dispose([...a, ...b]);
      assert.equal(tf.memory().numTensors, tensors); // the sums and means freed
    });
  }
}

Deno.test("tfjs: option gradientAccumulationSteps is checked, and kept in the config", () => {
  for (const bad of [0, -1, 1.5, NaN, Infinity, 2 ** 31]) {
    assert.throws(
      () => tfOptimizer(adam(), { gradientAccumulationSteps: bad }),
      (e: Error) =>
        e instanceof RangeError && /Option gradientAccumulationSteps must be/.test(e.message),
    );
  }
  assert.throws(
    () => tfOptimizer(adam(), { gradientAccumulationSteps: "4" as unknown as number }),
    (e: Error) => e instanceof TypeError && /a number as text/.test(e.message),
  );
  const opt = tfOptimizer(adam(), { gradientAccumulationSteps: 4 });
  const config = opt.getConfig();
  assert.equal(config.settings.gradientAccumulationSteps, 4);
  const again = (opt.constructor as typeof TfOptimizer).fromConfig(
    opt.constructor as never,
    config as never,
  ) as TfOptimizer;
  assert.equal(again.getConfig().settings.gradientAccumulationSteps, 4);
  // N = 1 writes the config of before (no key).
  assert.ok(!("gradientAccumulationSteps" in tfOptimizer(adam()).getConfig().settings));
  opt.dispose();
  again.dispose();
});

Deno.test("tfjs: a variable absent from some calls steps with its sum over N; strict refuses the change", async () => {
  await useBackend("cpu");
  const a = makeVars(3), b = makeVars(3);
  const opt = tfOptimizer(adam({ lr: 0.1 }), { gradientAccumulationSteps: 2 });
  const plain = tfOptimizer(adam({ lr: 0.1 }));
  const g1 = gradsOf(a, 1), g2 = gradsOf(a, 2);
  opt.applyGradients({ [a[0].name]: g1[0], [a[1].name]: g1[1] });
  opt.applyGradients({ [a[0].name]: g2[0] }); // the bias has no gradient in the second batch
  const kernel = tf.div(tf.add(g1[0], g2[0]), 2), bias = tf.div(g1[1], 2);
  plain.applyGradients({ [b[0].name]: kernel, [b[1].name]: bias });
  assert.deepEqual(valuesOf(a), valuesOf(b));

  const strict = tfOptimizer(adam({ lr: 0.1 }), { gradientAccumulationSteps: 2, strict: true });
  const before = valuesOf(a);
  strict.applyGradients({ [a[0].name]: g1[0], [a[1].name]: g1[1] });
  assert.throws(() => strict.applyGradients({ [a[0].name]: g2[0] }), RangeError);
  assert.equal(strict.accumulatedBatches, 1);
  assert.deepEqual(valuesOf(a), before);
  strict.applyGradients({ [a[0].name]: g2[0], [a[1].name]: g1[1] });
  assert.equal(strict.iterations, 1);
  // Once there is a state, a call over other variables is refused at once.
  assert.throws(() => strict.applyGradients({ [a[0].name]: g2[0] }), RangeError);
  assert.equal(strict.accumulatedBatches, 0);
  // A variable disposed mid-accumulation is left out of the step.
  const c = makeVars(4), d = makeVars(4);
  opt.applyGradients({ [c[0].name]: g1[0], [c[1].name]: g1[1] });
  c[1].dispose();
  opt.applyGradients({ [c[0].name]: g2[0] });
  plain.applyGradients({ [d[0].name]: kernel });
  assert.deepEqual(valuesOf([c[0]]), valuesOf([d[0]]));
  assert.deepEqual(
    (await opt.getWeights()).map((w) => w.name).filter((n) => n.includes(c[1].name)),
    [],
  );
  tf.dispose([...g1, ...g2, kernel, bias, ...a, ...b, c[0], ...d]);
  for (const o of [opt, plain, strict]) o.dispose();
});

Deno.test("tfjs: a non-finite gradient in one micro-batch skips (or throws at) the whole step", async () => {
  await useBackend("cpu");
  const a = makeVars(5), b = makeVars(5);
  const opt = tfOptimizer(radam({ lr: 0.1 }), { gradientAccumulationSteps: 2, warnOnSkip: false });
  const plain = tfOptimizer(radam({ lr: 0.1 }), { warnOnSkip: false });
  const nan = a.map((v) => tf.fill(v.shape, NaN));
  const g = gradsOf(a, 9);
  const before = valuesOf(a);
  opt.applyGradients(Object.fromEntries(a.map((v, i) => [v.name, nan[i]])));
  opt.applyGradients(Object.fromEntries(a.map((v, i) => [v.name, g[i]])));
  assert.deepEqual(valuesOf(a), before);
  assert.equal(opt.skippedSteps, 1);
  assert.equal(opt.iterations, 0);
  assert.equal(opt.accumulatedBatches, 0); // the sums dropped with the step
  plain.applyGradients(Object.fromEntries(b.map((v, i) => [v.name, nan[i]])));
  // The next N calls step as usual (moments untouched by the skipped step).
  const g2 = gradsOf(a, 10);
  opt.applyGradients(Object.fromEntries(a.map((v, i) => [v.name, g[i]])));
  opt.applyGradients(Object.fromEntries(a.map((v, i) => [v.name, g2[i]])));
  const mean = meanOf([g, g2], 2);
  plain.applyGradients(Object.fromEntries(b.map((v, i) => [v.name, mean[i]])));
  assert.deepEqual(valuesOf(a), valuesOf(b));
  assert.deepEqual(await momentsOf(opt), await momentsOf(plain));

  // Under "throw", the call giving it is refused, adding nothing: the next calls step as if it
  // had not been made.
  const throwing = tfOptimizer(radam({ lr: 0.1, nonFinite: "throw" }), {
    gradientAccumulationSteps: 2,
  });
  const c = makeVars(5);
  const at = valuesOf(a);
  const call = (o: TfOptimizer, vars: tf.Variable[], gs: tf.Tensor[]) =>
    o.applyGradients(Object.fromEntries(vars.map((v, i) => [v.name, gs[i]])));
  assert.throws(() => call(throwing, a, nan), /"accumulate\d+\/kernel" holds NaN at index 0/);
  assert.equal(throwing.accumulatedBatches, 0);
  call(throwing, a, g);
  assert.equal(throwing.accumulatedBatches, 1);
  // An N-th call's own non-finite gradient: refused, the sums of the calls before kept.
  assert.throws(() => call(throwing, a, nan), RangeError);
  assert.deepEqual(valuesOf(a), at);
  assert.equal(throwing.accumulatedBatches, 1);
  assert.equal(throwing.iterations, 0);
  call(throwing, a, g2);
  const reference = tfOptimizer(radam({ lr: 0.1, nonFinite: "throw" }));
  tf.tidy(() => a.forEach((v, i) => c[i].assign(tf.tensor(at[i], v.shape))));
  call(reference, c, mean);
  assert.equal(throwing.iterations, 1);
  assert.deepEqual(valuesOf(a), valuesOf(c));
  assert.deepEqual(await momentsOf(throwing), await momentsOf(reference));
  reference.dispose();
  tf.dispose(c);
  tf.dispose([...nan, ...g, ...g2, ...mean, ...a, ...b]);
  for (const o of [opt, plain, throwing]) o.dispose();
});

Deno.test("tfjs: a schedule sees the steps, not the calls", async () => {
  await useBackend("cpu");
  const [v] = makeVars(7);
  const seen: number[] = [];
  const opt = tfOptimizer(adam({ lr: (t) => (seen.push(t), 0.01) }), {
    gradientAccumulationSteps: 4,
  });
  for (let call = 0; call < 8; call++) {
    const g = tf.onesLike(v);
    opt.applyGradients({ [v.name]: g });
    g.dispose();
  }
  assert.equal(opt.iterations, 2);
  assert.deepEqual([...new Set(seen)], [1, 2]);
  opt.dispose();
  v.dispose();
});

for (const backend of CPU_BACKENDS) {
  Deno.test(`tfjs ${backend}: getWeights/setWeights resume mid-accumulation bit for bit`, async () => {
    await useBackend(backend);
    const a = makeVars(21), b = makeVars(21);
    const opt = tfOptimizer(ranger({ lr: 0.05, k: 2 }), { gradientAccumulationSteps: 3 });
    const grads = [0, 1, 2, 3, 4, 5].map((k) => gradsOf(a, 50 + k));
    const call = (o: TfOptimizer, vars: tf.Variable[], k: number) =>
      o.applyGradients(Object.fromEntries(vars.map((v, i) => [v.name, grads[k][i]])));
    for (let k = 0; k < 4; k++) call(opt, a, k); // one step, then one call summed
    const saved = (await clonedWeights(opt)).map((w) => ({
      name: w.name.replace(a[0].name, b[0].name).replace(a[1].name, b[1].name),
      tensor: w.tensor,
    }));
    assert.deepEqual(saved.map((w) => w.name).slice(-3), [
      "accum_count",
      `${b[0].name}/accum`,
      `${b[1].name}/accum`,
    ]);
    a.forEach((v, i) => b[i].assign(v));
    const resumed = tfOptimizer(ranger({ lr: 0.05, k: 2 }), {
      gradientAccumulationSteps: 3,
      strict: true, // (the loaded sums are those of the variables of the next calls)
    });
    await resumed.setWeights(saved);
    assert.equal(resumed.accumulatedBatches, 1);
    for (let k = 4; k < 6; k++) {
      call(opt, a, k);
      call(resumed, b, k);
    }
    assert.equal(resumed.iterations, 2);
    assert.deepEqual(valuesOf(a), valuesOf(b));

    // A count out of range is refused, nothing changed; weights without sums (of before) load.
    const count = saved.find((w) => w.name === "accum_count")!;
    const bad = saved.map((w) => w === count ? { name: w.name, tensor: tf.scalar(3, "int32") } : w);
    await assert.rejects(resumed.setWeights(bad), RangeError);
    assert.equal(resumed.iterations, 2);
    const old = saved.filter((w) => w.name !== "accum_count" && !w.name.endsWith("/accum"));
    await resumed.setWeights(old);
    assert.equal(resumed.accumulatedBatches, 0);
    assert.equal(resumed.iterations, 1);
    await assert.rejects(resumed.setWeights(saved.filter((w) => w !== count)), TypeError);
    tf.dispose([
      ...grads.flat(),
      ...a,
      ...b,
      ...saved.map((w) => w.tensor),
      ...bad.map((w) => w.tensor),
    ]);
    opt.dispose();
    resumed.dispose();
  });
}

Deno.test("tfjs: model.save with includeOptimizer mid-accumulation, loaded, goes on bit for bit", async () => {
  await useBackend("cpu");
  const { x, y } = data([6], 12, 31); // 3 batches of 4: an epoch ends mid-accumulation (N = 2)
  const model = denseNet(3);
  model.compile({
    optimizer: tfOptimizer(adam({ lr: 0.01 }), { gradientAccumulationSteps: 2 }),
    loss: "meanSquaredError",
  });
  await model.fit(x, y, fitInOrder(1));
  assert.equal((model.optimizer as TfOptimizer).accumulatedBatches, 1);
  const loaded = await tfl.loadLayersModel(tf.io.fromMemory(await saveToMemory(model)));
  assert.equal((loaded.optimizer as TfOptimizer).accumulatedBatches, 1);
  await model.fit(x, y, fitInOrder(2));
  await loaded.fit(x, y, fitInOrder(2));
  assert.equal((loaded.optimizer as TfOptimizer).iterations, 4);
  assert.deepEqual(await weightValues(loaded), await weightValues(model));
  disposeModels(model, loaded);
  tf.dispose([x, y]);
});

Deno.test("tfjs: skippedStepsCallback counts a skipped accumulated step once", async () => {
  await useBackend("cpu");
  // 16 samples in batches of 4, N = 2: two steps an epoch; a NaN input in the third batch.
  const xs = randoms(16 * 6, 5);
  xs[9 * 6 + 1] = NaN;
  const x = tf.tensor(xs, [16, 6]), y = tf.tensor(randoms(16 * 3, 6), [16, 3]);
  const model = denseNet(5);
  const optimizer = tfOptimizer(radam({ lr: 0.01 }), {
    gradientAccumulationSteps: 2,
    warnOnSkip: false,
  });
  model.compile({ optimizer, loss: "meanSquaredError" });
  const history = await model.fit(x, y, {
    ...fitInOrder(2),
    callbacks: [skippedStepsCallback(optimizer)],
  });
  assert.deepEqual(history.history.skipped_steps, [1, 1]);
  assert.equal(optimizer.iterations, 2); // of 4 accumulated steps, 2 skipped
  assert.equal(optimizer.accumulatedBatches, 0);
  disposeModels(model);
  tf.dispose([x, y]);
});
