/**
 * Training resumes bit for bit across the ways the TensorFlow.js adapter's state is saved:
 * model.save with includeOptimizer and loadLayersModel, the library's saveState/loadState on
 * `optimizer.state`, and `optimizer.loadState(bytes)` (the gc layout included).
 */
import assert from "node:assert/strict";
import {
  adam,
  dispose,
  loadState,
  lookahead,
  radam,
  ranger,
  readMoments,
  readParams,
  saveState,
  step,
} from "../../mod.ts";
import { TfOptimizer, tfOptimizer } from "../../tfjs.ts";
import { edit } from "../checkpoint_files.ts";
import { decodeTensor } from "../../base/q8_tensor.ts";
import {
  convNet,
  CPU_BACKENDS,
  data,
  denseNet,
  disposeModels,
  fitInOrder,
  randoms,
  saveToMemory,
  tf,
  tfl,
  transpose,
  uniqueNames,
  unpackCodes,
  useBackend,
  weightValues,
} from "./helpers.ts";

const name = uniqueNames("resume");

Deno.test("tfjs: model.save with includeOptimizer, loadLayersModel, train on: N + M steps bit for bit", async () => {
  for (const backend of CPU_BACKENDS) {
    await useBackend(backend);
    for (
      const make of [() => ranger({ lr: 1e-2 }), () => lookahead(adam({ lr: 1e-2 }), { k: 4 })]
    ) {
      // A conv net on cpu; tfjs-backend-wasm cannot train one (no Conv2DBackpropFilter).
      const net = backend === "cpu" ? convNet : denseNet;
      const shape = backend === "cpu" ? [6, 6, 2] : [6];
      const whole = net(21), first = net(21);
      whole.compile({ optimizer: tfOptimizer(make()), loss: "meanSquaredError" });
      first.compile({ optimizer: tfOptimizer(make()), loss: "meanSquaredError" });
      const { x, y } = data(shape, 16, 13);
      await whole.fit(x, y, fitInOrder(5)); // 20 steps
      await first.fit(x, y, fitInOrder(3)); // 12 steps, save, load, 8 more
      const saved = await saveToMemory(first);
      assert.equal(
        (saved.trainingConfig!.optimizer_config as { class_name: string }).class_name,
        TfOptimizer.className,
      );
      const loaded = await tfl.loadLayersModel(tf.io.fromMemory(saved));
      assert.ok(loaded.optimizer instanceof TfOptimizer);
      assert.equal(loaded.optimizer.iterations, 12);
      await loaded.fit(x, y, fitInOrder(2));
      const a = await weightValues(whole), b = await weightValues(loaded);
      a.forEach((w, i) => assert.deepEqual(b[i], w, `${backend}: weight ${i}`));
      // The optimizers' states agree too (by name: the loaded variables may carry a suffix).
      const wa = await whole.optimizer.getWeights(), wb = await loaded.optimizer.getWeights();
      assert.deepEqual(wb.map((w) => w.tensor.dataSync()), wa.map((w) => w.tensor.dataSync()));
      tf.dispose([x, y, ...wa.map((w) => w.tensor), ...wb.map((w) => w.tensor)]);
      disposeModels(whole, first, loaded);
    }
  }
});

Deno.test("tfjs: the library state interoperates with saveState/loadState", async () => {
  await useBackend("cpu");
  const w = tf.variable(tf.tensor([1, 2, 3]), true, name("w"));
  const opt = tfOptimizer(radam({ lr: 0.1 }));
  const g = tf.tensor([0.1, -0.2, 0.3]);
  for (let i = 0; i < 3; i++) opt.applyGradients({ [w.name]: g });
  const bytes = await saveState(opt.state!);
  let resumed = await loadState(bytes);
  assert.equal(resumed.step, 3);
  assert.deepEqual((await readParams(resumed))[w.name], w.dataSync());
  resumed = step(resumed, { [w.name]: new Float32Array([0.1, -0.2, 0.3]) });
  opt.applyGradients({ [w.name]: g });
  assert.deepEqual((await readParams(resumed))[w.name], w.dataSync());
  tf.dispose([w, g]);
  opt.dispose();
});

Deno.test("tfjs: saveState(optimizer.state) → optimizer.loadState(bytes) resumes bit for bit (gc layout included)", async () => {
  await useBackend("cpu");
  const shapes = [[5, 3], [3]];
  const init = shapes.map((s, i) => randoms(s[0] * (s[1] ?? 1), 60 + i));
  const grads = (t: number) =>
    shapes.map((s, i) => tf.tensor(randoms(init[i].length, 70 + 10 * t + i), s));
  const make = (tag: string) =>
    shapes.map((s, i) => tf.variable(tf.tensor(init[i], s), true, name(`${tag}${i}`)));
  const run = (opt: TfOptimizer, vars: tf.Variable[], from: number, to: number) => {
    for (let t = from; t < to; t++) {
      const g = grads(t);
      opt.applyGradients(Object.fromEntries(vars.map((v, i) => [v.name, g[i]])));
      tf.dispose(g);
    }
  };
  const whole = make("whole"), first = make("first");
  const a = tfOptimizer(ranger({ lr: 1e-2, k: 4 })), b = tfOptimizer(ranger({ lr: 1e-2, k: 4 }));
  run(a, whole, 0, 12);
  run(b, first, 0, 6);
  const bytes = await saveState(b.state!);
  // Resume under the same variable names (a fresh process would have them), from the bytes.
  const values = first.map((v) => v.dataSync().slice());
  tf.dispose(first);
  b.dispose();
  const resumed = shapes.map((s, i) => tf.variable(tf.tensor(values[i], s), true, first[i].name));
  const c = tfOptimizer(ranger({ lr: 1e-2, k: 4 }));
  await c.loadState(bytes);
  assert.equal(c.iterations, 6);
  run(c, resumed, 6, 12);
  resumed.forEach((v, i) => assert.deepEqual(v.dataSync(), whole[i].dataSync(), `variable ${i}`));
  const wa = await a.getWeights(), wc = await c.getWeights();
  assert.deepEqual(wc.map((w) => w.tensor.dataSync()), wa.map((w) => w.tensor.dataSync()));
  await assert.rejects(() => c.loadState(bytes.subarray(0, 50)), RangeError);
  tf.dispose([...whole, ...resumed, ...wa.map((w) => w.tensor), ...wc.map((w) => w.tensor)]);
  a.dispose();
  c.dispose();
});

Deno.test("tfjs: a layer frozen when the model was saved resumes its moments when unfrozen after loadLayersModel (variables `<name>_1`)", async () => {
  for (const backend of CPU_BACKENDS) {
    await useBackend(backend);
    const whole = denseNet(22);
    const compile = (model: tfl.LayersModel, trainable: boolean) => {
      model.layers[0].trainable = trainable;
      model.compile({ optimizer: model.optimizer, loss: "meanSquaredError" });
    };
    whole.compile({ optimizer: tfOptimizer(radam({ lr: 1e-2 })), loss: "meanSquaredError" });
    const { x, y } = data([6], 8, 23);
    await whole.fit(x, y, fitInOrder(2));
    compile(whole, false);
    await whole.fit(x, y, fitInOrder(1));
    // Loaded while `whole` is alive: its variables are named `<name>_1`; its first layer frozen.
    const loaded = await tfl.loadLayersModel(tf.io.fromMemory(await saveToMemory(whole)));
    assert.equal(loaded.layers[0].trainable, false);
    await whole.fit(x, y, fitInOrder(1));
    await loaded.fit(x, y, fitInOrder(1));
    compile(whole, true);
    compile(loaded, true);
    await whole.fit(x, y, fitInOrder(2));
    await loaded.fit(x, y, fitInOrder(2));
    const a = await weightValues(whole), b = await weightValues(loaded);
    a.forEach((w, i) => assert.deepEqual(b[i], w, `${backend}: weight ${i}`));
    const wa = await whole.optimizer.getWeights(), wb = await loaded.optimizer.getWeights();
    assert.deepEqual(wb.map((w) => w.name), wa.map((w) => w.name.replace(/\/(m|v)$/, "_1/$1")));
    tf.dispose([x, y, ...wa.map((w) => w.tensor), ...wb.map((w) => w.tensor)]);
    disposeModels(whole, loaded);
  }
});

Deno.test("tfjs: after optimizer.loadState(bytes), getWeights is in the tfjs layout: a model saved then (gc kernels included) resumes bit for bit", async () => {
  await useBackend("cpu");
  const make = () => ranger({ lr: 1e-2, k: 4 });
  const whole = denseNet(24), first = denseNet(24);
  whole.compile({ optimizer: tfOptimizer(make()), loss: "meanSquaredError" });
  first.compile({ optimizer: tfOptimizer(make()), loss: "meanSquaredError" });
  const { x, y } = data([6], 16, 25);
  await whole.fit(x, y, fitInOrder(5)); // 20 steps
  await first.fit(x, y, fitInOrder(3)); // 12 steps, then a library checkpoint
  const bytes = await saveState((first.optimizer as TfOptimizer).state!);
  // The model with a new optimizer given the checkpoint, saved before it trains (a conversion).
  const second = await tfl.loadLayersModel(tf.io.fromMemory(await saveToMemory(first)));
  second.compile({ optimizer: tfOptimizer(make()), loss: "meanSquaredError" });
  await (second.optimizer as TfOptimizer).loadState(bytes);
  const given = await second.optimizer.getWeights(), held = await first.optimizer.getWeights();
  assert.deepEqual(given.map((w) => w.tensor.shape), held.map((w) => w.tensor.shape));
  assert.deepEqual(given.map((w) => w.tensor.dataSync()), held.map((w) => w.tensor.dataSync()));
  const third = await tfl.loadLayersModel(tf.io.fromMemory(await saveToMemory(second)));
  await third.fit(x, y, fitInOrder(2));
  const a = await weightValues(whole), b = await weightValues(third);
  a.forEach((w, i) => assert.deepEqual(b[i], w, `weight ${i}`));
  tf.dispose([x, y, ...given.map((w) => w.tensor), ...held.map((w) => w.tensor)]);
  disposeModels(whole, first, second, third);
});

Deno.test("tfjs: a step count past int32's (2^31, 2^32 + 5, near 2^53) survives getWeights/setWeights and model.save: training resumes bit for bit", async () => {
  await useBackend("cpu");
  const make = () => ranger({ lr: 1e-2, k: 3 });
  const { x, y } = data([6], 8, 27);
  for (const steps of [2 ** 31 - 1, 2 ** 31, 2 ** 32 + 5, Number.MAX_SAFE_INTEGER - 100]) {
    const first = denseNet(26);
    first.compile({ optimizer: tfOptimizer(make()), loss: "meanSquaredError" });
    await first.fit(x, y, fitInOrder(1));
    const optimizer = first.optimizer as TfOptimizer;
    await optimizer.loadState(
      edit(await saveState(optimizer.state!), (h) => h.__metadata__.step = String(steps)),
    );
    await first.fit(x, y, fitInOrder(1)); // steps + 2
    const weights = await optimizer.getWeights();
    const other = tfOptimizer(make());
    await other.setWeights(weights);
    assert.equal(other.iterations, steps + 2, `${steps}: setWeights`);
    other.dispose();
    const loaded = await tfl.loadLayersModel(tf.io.fromMemory(await saveToMemory(first)));
    assert.equal(loaded.optimizer.iterations, steps + 2, `${steps}: loadLayersModel`);
    await first.fit(x, y, fitInOrder(2));
    await loaded.fit(x, y, fitInOrder(2));
    assert.equal(loaded.optimizer.iterations, steps + 6);
    const a = await weightValues(first), b = await weightValues(loaded);
    a.forEach((w, i) => assert.deepEqual(b[i], w, `${steps}: weight ${i}`));
    disposeModels(first, loaded);
  }
  tf.dispose([x, y]);
});

for (const states of ["32bit", "8bit"] as const) {
  Deno.test(`tfjs: optimizer.loadState of a checkpoint holding a kernel flat (a state given flat arrays; 0.2.0 on webgpu) resumes it without gc, ${states}`, async () => {
    await useBackend("cpu");
    const shapes = [[64, 70], [3]];
    const sizes = shapes.map((s) => s.reduce((a, b) => a * b, 1));
    const init = sizes.map((n, i) => randoms(n, 80 + i));
    const grads = (t: number) => sizes.map((n, i) => randoms(n, 90 + 10 * t + i));
    const make = () => lookahead(radam({ lr: 1e-2, states }), { k: 3 });
    const names = shapes.map((_, i) => name(`flat${states}${i}`));
    // The library on flat arrays, and the adapter on the variables: the same steps.
    let state = await make().init(Object.fromEntries(names.map((n, i) => [n, init[i].slice()])));
    const vars = shapes.map((s, i) => tf.variable(tf.tensor(init[i], s), true, names[i]));
    const whole = tfOptimizer(make());
    const run = (opt: TfOptimizer, from: number, to: number) => {
      for (let t = from; t < to; t++) {
        const g = grads(t).map((values, i) => tf.tensor(values, shapes[i]));
        opt.applyGradients(Object.fromEntries(vars.map((v, i) => [v.name, g[i]])));
        tf.dispose(g);
      }
    };
    for (let t = 0; t < 5; t++) {
      state = await step(state, Object.fromEntries(names.map((n, i) => [n, grads(t)[i]])));
    }
    run(whole, 0, 5);
    const params = await readParams(state);
    vars.forEach((v, i) => assert.deepEqual(v.dataSync(), params[names[i]], `variable ${i}`));
    const bytes = await saveState(state);
    const resumed = tfOptimizer(make());
    await resumed.loadState(bytes);
    // Its kernel is not started fresh: getWeights gives the whole optimizer's, and so do steps.
    const byName = async (opt: TfOptimizer) =>
      (await opt.getWeights()).sort((x, y) => x.name < y.name ? -1 : 1);
    // (Kept state comes in the checkpoint's order: compared by name.)
    const [wa, wb] = [await byName(whole), await byName(resumed)];
    assert.deepEqual(
      wb.map((w) => [w.name, w.tensor.shape]),
      wa.map((w) => [w.name, w.tensor.shape]),
    );
    assert.deepEqual(wb.map((w) => w.tensor.dataSync()), wa.map((w) => w.tensor.dataSync()));
    const before = vars.map((v) => v.dataSync().slice());
    run(whole, 5, 9);
    const reached = vars.map((v) => v.dataSync().slice());
    vars.forEach((v, i) => tf.tidy(() => v.assign(tf.tensor(before[i], shapes[i]))));
    run(resumed, 5, 9);
    vars.forEach((v, i) => assert.deepEqual(v.dataSync(), reached[i], `variable ${i}`));
    tf.dispose([...vars, ...wa.map((w) => w.tensor), ...wb.map((w) => w.tensor)]);
    for (const o of [whole, resumed]) o.dispose();
    dispose(state);
  });
}

for (const states of ["32bit", "8bit"] as const) {
  Deno.test(`tfjs: optimizer.loadState of a checkpoint saved under another gc takes each kernel's moments in the tfjs order (square ones too), ${states}`, async () => {
    // A kernel under gc is held transposed ([out, rest]), without it in the tfjs order: taken by
    // the shape it was saved in, a square kernel's moments went to the transposed elements, and
    // any other kernel's checkpoint was refused as another model's.
    await useBackend("cpu");
    const shapes = [[64, 64], [5, 7], [3]];
    for (const [fromGc, toGc] of [[true, false], [false, true]]) {
      const vars = shapes.map((s, i) =>
        tf.variable(tf.tensor(randoms(s.reduce((a, b) => a * b), 60 + i), s), true, name("gc"))
      );
      const make = (gc: boolean) => radam({ lr: 1e-2, states, gc });
      const saved = tfOptimizer(make(fromGc));
      for (let t = 0; t < 3; t++) {
        const g = shapes.map((s, i) => tf.tensor(randoms(s.reduce((a, b) => a * b), 70 + i), s));
        saved.applyGradients(Object.fromEntries(vars.map((v, i) => [v.name, g[i]])));
        tf.dispose(g);
      }
      const moments = await readMoments(saved.state!);
      const resumed = tfOptimizer(make(toGc));
      await resumed.loadState(await saveState(saved.state!));
      assert.equal(resumed.iterations, 3);
      const given = new Map((await resumed.getWeights()).map((w) => [w.name, w.tensor]));
      // A moment given in 8 bits, as codes in the order saved (a kernel's from under gc marked
      // transposed: kept as codes until the step), decoded, in the tfjs order.
      const valuesOf = (v: tf.Variable, suffix: string) => {
        const f32 = given.get(`${v.name}/${suffix}`);
        if (f32 !== undefined) return f32.dataSync();
        const marked = given.has(`${v.name}/${suffix}.transposed.codes`);
        assert.equal(marked, fromGc && v.rank === 2, `${v.name}/${suffix}'s codes' order`);
        const prefix = `${v.name}/${suffix}${marked ? ".transposed" : ""}`;
        const codes = unpackCodes(given.get(`${prefix}.codes`)!, v.size, suffix === "m");
        const out = new Float32Array(v.size);
        decodeTensor(codes, given.get(`${prefix}.scales`)!.dataSync() as Float32Array, out);
        return marked ? transpose(out, v.shape[1]!, v.shape[0]) : out;
      };
      for (const v of vars) {
        for (const [moment, suffix] of [["exp_avg", "m"], ["exp_avg_sq", "v"]]) {
          // (Held transposed under gc: [out, rest].)
          const [rows, cols] = v.shape.length === 2 ? v.shape : [1, v.size];
          const held = moments[moment][v.name];
          const want = fromGc && v.rank === 2 ? transpose(held, cols, rows) : held;
          const what = `${v.name} (${v.shape}) ${suffix}, gc ${fromGc} → ${toGc}`;
          assert.deepEqual(valuesOf(v, suffix), want, what);
        }
      }
      // And it steps on as an optimizer given the same moments as tfjs weights (f32: exact).
      const twin = tfOptimizer(make(toGc));
      if (states === "32bit") await twin.setWeights(await saved.getWeights());
      const before = vars.map((v) => v.dataSync().slice());
      const stepOnce = (opt: TfOptimizer) => {
        vars.forEach((v, i) => tf.tidy(() => v.assign(tf.tensor(before[i], shapes[i]))));
        const g = shapes.map((s, i) => tf.tensor(randoms(s.reduce((a, b) => a * b), 80 + i), s));
        opt.applyGradients(Object.fromEntries(vars.map((v, i) => [v.name, g[i]])));
        tf.dispose(g);
        return vars.map((v) => v.dataSync().slice());
      };
      const reached = stepOnce(resumed);
      if (states === "32bit") assert.deepEqual(reached, stepOnce(twin));
      assert.ok(reached.every((r) => r.every(Number.isFinite)));
      for (const o of [saved, resumed, twin]) o.dispose();
      tf.dispose(vars);
    }
  });
}
