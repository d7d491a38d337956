/**
 * Option `ema` on tfjs's CPU backends: the averages against a float64 reference of Keras's rule,
 * the first step, overwriteFrequency, swap and finalize, skipped steps, gradient accumulation,
 * frozen and disposed variables, resumes by setWeights and model.save, the config, and no
 * tensor left behind.
 */
import assert from "node:assert/strict";
import { adam, radam, sgd } from "../../mod.ts";
import { emaCallback, type TfOptimizer, tfOptimizer } from "../../tfjs.ts";
import {
  CPU_BACKENDS,
  data,
  denseNet,
  disposeModels,
  fitInOrder,
  saveToMemory,
  seededVars,
  stepWith,
  tf,
  tfl,
  uniqueNames,
  useBackend,
  weightValues,
} from "./helpers.ts";

const named = uniqueNames("ema");

/** A kernel and a bias with seeded values, under new names. */
const makeVars = (seed: number, rows = 20) => seededVars(named, seed, rows);

/** Copies of the values of tensors. */
function valuesOf(tensors: tf.Tensor[]): Float32Array[] {
  return tensors.map((t) => (t.dataSync() as Float32Array).slice());
}

/** The averages the optimizer gives, by variable name, copied. */
async function averagesOf(opt: TfOptimizer): Promise<Map<string, Float32Array>> {
  const weights = await opt.getWeights();
  return new Map(
    weights.filter((w) => w.name.endsWith("/average"))
      .map((w) => [w.name.slice(0, -8), (w.tensor.dataSync() as Float32Array).slice()]),
  );
}

for (const backend of CPU_BACKENDS) {
  Deno.test(`tfjs ${backend}: ema follows Keras's rule (float64 reference, 1e-6 relative)`, async () => {
    await useBackend(backend);
    const tensors = tf.memory().numTensors;
    const m = 0.9;
    const vars = makeVars(3);
    const opt = tfOptimizer(adam({ lr: 0.05 }), { ema: { momentum: m } });
    let reference: Float64Array[] = [];
    for (let step = 1; step <= 30; step++) {
      stepWith(opt, vars, step);
      const values = valuesOf(vars);
      // Keras: momentum 0 at the first step (the average is the variable), then m.
      reference = step === 1
        ? values.map((v) => Float64Array.from(v))
        : reference.map((r, i) => r.map((a, k) => m * a + (1 - m) * values[i][k]));
      const averages = await averagesOf(opt);
      vars.forEach((v, i) => {
        const got = averages.get(v.name)!;
        if (step === 1) assert.deepEqual(got, values[i]); // bit for bit
        // float32 ops (m, 1 − m rounded to float32) against float64: a few ulps, damped by m.
        got.forEach((g, k) => {
          const want = reference[i][k];
          assert.ok(Math.abs(g - want) <= 1e-6 * (1 + Math.abs(want)), `${v.name}[${k}]`);
        });
      });
    }
    opt.dispose();
    tf.dispose(vars);
    assert.equal(tf.memory().numTensors, tensors); // the averages freed
  });

  Deno.test(`tfjs ${backend}: swap twice is the identity, bit for bit; a step while swapped, or a swap once disposed, is refused`, async () => {
    await useBackend(backend);
    const vars = makeVars(5);
    const opt = tfOptimizer(radam({ lr: 0.05 }), { ema: true });
    for (let step = 1; step <= 4; step++) stepWith(opt, vars, step);
    const values = valuesOf(vars);
    const averages = await averagesOf(opt);
    opt.averages!.swap();
    assert.ok(opt.averages!.swapped);
    assert.deepEqual(valuesOf(vars), vars.map((v) => averages.get(v.name)));
    assert.deepEqual(await averagesOf(opt), averages); // the weights give the averages still
    const tensors = tf.memory().numTensors;
    assert.throws(
      () => stepWith(opt, vars, 9),
      (e: Error) => e instanceof TypeError && /swap/.test(e.message),
    );
    assert.equal(opt.iterations, 4);
    assert.equal(tf.memory().numTensors, tensors);
    opt.averages!.swap();
    assert.deepEqual(valuesOf(vars), values);
    assert.deepEqual(await averagesOf(opt), averages);
    // The steps go on from the training weights, as without the swaps.
    const other = makeVars(5);
    const plain = tfOptimizer(radam({ lr: 0.05 }), { ema: true });
    for (let step = 1; step <= 6; step++) {
      stepWith(plain, other, step);
      if (step > 4) stepWith(opt, vars, step);
    }
    assert.deepEqual(valuesOf(vars), valuesOf(other));
    opt.dispose();
    // A disposed optimizer's averages are gone: swap and finalize say so, nothing changed.
    for (const call of [() => opt.averages!.swap(), () => opt.averages!.finalize()]) {
      assert.throws(call, (e: Error) => e instanceof TypeError && /disposed/.test(e.message));
    }
    assert.equal(opt.averages!.swapped, false);
    assert.deepEqual(valuesOf(vars), valuesOf(other));
    plain.dispose();
    tf.dispose([...vars, ...other]);
  });
}

Deno.test("tfjs: overwriteFrequency overwrites the variables every f steps; finalize at the end", async () => {
  await useBackend("cpu");
  const vars = makeVars(7);
  const opt = tfOptimizer(sgd({ lr: 0.1 }), { ema: { momentum: 0.5, overwriteFrequency: 3 } });
  for (let step = 1; step <= 6; step++) {
    stepWith(opt, vars, step);
    const averages = await averagesOf(opt);
    const same = vars.every((v, i) => String(valuesOf(vars)[i]) === String(averages.get(v.name)));
    assert.equal(same, step === 1 || step % 3 === 0, `step ${step}`);
  }
  stepWith(opt, vars, 7);
  const averages = await averagesOf(opt);
  opt.averages!.finalize();
  assert.deepEqual(valuesOf(vars), vars.map((v) => averages.get(v.name)));
  assert.deepEqual(await averagesOf(opt), averages); // kept
  opt.dispose();
  tf.dispose(vars);
});

Deno.test("tfjs: a skipped step leaves the averages as they were; accumulation updates once a step", async () => {
  await useBackend("cpu");
  const vars = makeVars(9);
  const opt = tfOptimizer(adam({ lr: 0.05 }), { ema: true, warnOnSkip: false });
  stepWith(opt, vars, 1);
  stepWith(opt, vars, 2);
  const before = await averagesOf(opt);
  stepWith(opt, vars, 3, true);
  assert.equal(opt.skippedSteps, 1);
  assert.deepEqual(await averagesOf(opt), before);
  opt.dispose();

  const accumulated = tfOptimizer(adam({ lr: 0.05 }), { ema: true, gradientAccumulationSteps: 3 });
  const fresh = makeVars(9);
  stepWith(accumulated, fresh, 1);
  stepWith(accumulated, fresh, 2);
  assert.equal((await averagesOf(accumulated)).size, 0); // no step yet: no average
  stepWith(accumulated, fresh, 3);
  const first = await averagesOf(accumulated);
  assert.deepEqual([...first.values()], valuesOf(fresh)); // the variables after the first step
  stepWith(accumulated, fresh, 4);
  stepWith(accumulated, fresh, 5);
  assert.deepEqual(await averagesOf(accumulated), first); // calls that only accumulate
  stepWith(accumulated, fresh, 6);
  assert.notDeepEqual(await averagesOf(accumulated), first);
  accumulated.dispose();
  tf.dispose([...vars, ...fresh]);
});

Deno.test("tfjs: a swap back swaps only what the swap put in", async () => {
  await useBackend("cpu");
  const name = named("late");
  const opt = tfOptimizer(sgd({ lr: 0.5 }), { ema: true });
  const loaded = [{ name: "iter", tensor: tf.scalar(3, "int32") }, {
    name: name + "/average",
    tensor: tf.tensor1d([7, 7]),
  }];
  await opt.setWeights(loaded);
  tf.dispose(loaded.map((w) => w.tensor));
  opt.averages!.swap(); // no variable of that name yet: nothing swapped in
  const late = tf.variable(tf.tensor1d([1, 2]), true, name);
  opt.averages!.swap();
  assert.deepEqual([...late.dataSync()], [1, 2]);
  opt.dispose();
  late.dispose();
});

Deno.test("tfjs: a frozen variable keeps its average; a disposed one's is dropped", async () => {
  await useBackend("cpu");
  const [kernel, bias] = makeVars(13);
  const opt = tfOptimizer(adam({ lr: 0.05 }), { ema: true });
  stepWith(opt, [kernel, bias], 1);
  stepWith(opt, [kernel, bias], 2);
  const held = (await averagesOf(opt)).get(bias.name);
  stepWith(opt, [kernel], 3); // bias frozen
  assert.deepEqual((await averagesOf(opt)).get(bias.name), held);
  const tensors = tf.memory().numTensors;
  bias.dispose();
  stepWith(opt, [kernel], 4);
  assert.deepEqual([...(await averagesOf(opt)).keys()], [kernel.name]);
  assert.ok(tf.memory().numTensors < tensors); // the bias and its average freed
  opt.dispose();
  kernel.dispose();
});

Deno.test("tfjs: model.save with includeOptimizer carries the averages: a resume is bit for bit", async () => {
  await useBackend("cpu");
  const { x, y } = data([6], 12, 31);
  const model = denseNet(3);
  model.compile({
    optimizer: tfOptimizer(adam({ lr: 0.01 }), { ema: { momentum: 0.8, overwriteFrequency: 4 } }),
    loss: "meanSquaredError",
  });
  await model.fit(x, y, fitInOrder(1));
  const saved = await saveToMemory(model);
  assert.ok(saved.weightSpecs!.some((s) => s.name.endsWith("/average")));
  const loaded = await tfl.loadLayersModel(tf.io.fromMemory(saved));
  assert.deepEqual(
    (loaded.optimizer as TfOptimizer).getConfig().settings.ema,
    { momentum: 0.8, overwriteFrequency: 4 },
  );
  // Before a step, the loaded averages could be either model's (kernel and kernel_1): refused.
  const values = [await weightValues(model), await weightValues(loaded)];
  const averages = (loaded.optimizer as TfOptimizer).averages!;
  for (const call of [() => averages.swap(), () => averages.finalize()]) {
    assert.throws(call, (e: Error) => e instanceof TypeError && /could be that of/.test(e.message));
  }
  assert.equal(averages.swapped, false);
  assert.deepEqual([await weightValues(model), await weightValues(loaded)], values);
  await model.fit(x, y, fitInOrder(2));
  await loaded.fit(x, y, fitInOrder(2));
  assert.deepEqual(await weightValues(loaded), await weightValues(model));
  const a = await averagesOf(model.optimizer as TfOptimizer);
  const b = await averagesOf(loaded.optimizer as TfOptimizer);
  assert.deepEqual([...b.values()], [...a.values()]);
  disposeModels(model, loaded);
  // Loaded alone (the other model disposed), the averages are bound to it at the swap.
  const again = await tfl.loadLayersModel(tf.io.fromMemory(saved));
  const want = [...(await averagesOf(again.optimizer as TfOptimizer)).values()];
  assert.equal(want.length, again.trainableWeights.length);
  (again.optimizer as TfOptimizer).averages!.swap();
  assert.deepEqual(await weightValues(again), want);
  disposeModels(again);
  tf.dispose([x, y]);
});

Deno.test("tfjs: weights without averages (an older save) start them from the variables", async () => {
  await useBackend("cpu");
  const vars = makeVars(17);
  const opt = tfOptimizer(adam({ lr: 0.05 }), { ema: true });
  stepWith(opt, vars, 1);
  stepWith(opt, vars, 2);
  const old = (await opt.getWeights()).filter((w) => !w.name.endsWith("/average"));
  const resumed = tfOptimizer(adam({ lr: 0.05 }), { ema: true });
  await resumed.setWeights(old);
  assert.equal((await averagesOf(resumed)).size, 0);
  stepWith(resumed, vars, 3);
  assert.deepEqual([...(await averagesOf(resumed)).values()], valuesOf(vars));
  // An optimizer without option ema ignores averages given.
  const plain = tfOptimizer(adam({ lr: 0.05 }));
  await plain.setWeights(await opt.getWeights());
  assert.equal(plain.iterations, 2);
  // An average of another shape is refused, nothing changed.
  const bad = [{ name: "iter", tensor: tf.scalar(2, "int32") }, {
    name: vars[1].name + "/average",
    tensor: tf.zeros([4]),
  }];
  await assert.rejects(() => resumed.setWeights(bad), RangeError);
  assert.equal(resumed.iterations, 3);
  // An average given twice is refused, as a moment given twice is, nothing changed.
  const before = [...(await averagesOf(resumed)).values()];
  const tensors = tf.memory().numTensors;
  const twice = (await resumed.getWeights()).map(({ name, tensor }) => ({
    name,
    tensor: tf.clone(tensor),
  }));
  const extra = { name: vars[1].name + "/average", tensor: tf.zerosLike(vars[1]) };
  await assert.rejects(() => resumed.setWeights([...twice, extra]), /average" is given twice/);
  tf.dispose([extra.tensor, ...twice.map((w) => w.tensor)]);
  assert.equal(tf.memory().numTensors, tensors);
  assert.deepEqual([...(await averagesOf(resumed)).values()], before);
  tf.dispose(bad.map((w) => w.tensor));
  tf.dispose([...vars]);
  for (const o of [opt, resumed, plain]) o.dispose();
});

Deno.test("tfjs: option ema is checked, and in the config only where set", () => {
  for (const bad of [-0.1, 1.5, NaN]) {
    assert.throws(() => tfOptimizer(adam(), { ema: { momentum: bad } }), RangeError);
  }
  for (const bad of [0, 1.5, 2 ** 31]) {
    assert.throws(() => tfOptimizer(adam(), { ema: { overwriteFrequency: bad } }), RangeError);
  }
  assert.throws(() => tfOptimizer(adam(), { ema: { momentun: 0.9 } as never }), TypeError);
  assert.throws(() => tfOptimizer(adam(), { ema: 0.99 as never }), TypeError);
  assert.ok(!("ema" in tfOptimizer(adam()).getConfig().settings));
  assert.ok(!("ema" in tfOptimizer(adam(), { ema: false }).getConfig().settings));
  assert.deepEqual(tfOptimizer(adam(), { ema: true }).getConfig().settings.ema, { momentum: 0.99 });
  assert.equal(tfOptimizer(adam()).averages, undefined);
  assert.throws(() => emaCallback(tfOptimizer(adam())), TypeError);
  for (const averages of [1, {}, { swap() {} }, null]) {
    assert.throws(
      () => emaCallback({ averages } as never),
      (e: Error) => e instanceof TypeError && /made by tfOptimizer\(\)/.test(e.message),
    );
  }
});

Deno.test("tfjs: emaCallback swaps the averages in at each epoch's end and finalizes", async () => {
  await useBackend("cpu");
  const tensors = tf.memory().numTensors;
  const { x, y } = data([6], 12, 41);
  const model = denseNet(4);
  const optimizer = tfOptimizer(adam({ lr: 0.01 }), { ema: true });
  model.compile({ optimizer, loss: "meanSquaredError" });
  const seen: boolean[] = [];
  await model.fit(x, y, {
    ...fitInOrder(2),
    callbacks: [emaCallback(optimizer), {
      onEpochEnd: async () => {
        const averages = await averagesOf(optimizer);
        seen.push(
          model.trainableWeights.every((w) =>
            String(w.read().dataSync()) === String(averages.get(w.name))
          ),
        );
      },
    }],
  });
  assert.deepEqual(seen, [true, true]);
  const averages = await averagesOf(optimizer);
  assert.deepEqual(await weightValues(model), [...averages.values()]); // finalized
  disposeModels(model);
  tf.dispose([x, y]);
  assert.equal(tf.memory().numTensors, tensors);
});
