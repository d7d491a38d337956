/**
 * 8-bit states (`states: "8bit"`) through the TensorFlow.js adapter's weights: getWeights /
 * setWeights round-trip the codes exactly (and resume bit for bit), 8-bit weights load into a
 * 32-bit optimizer and back as the library's own conversions do, damaged codes are refused,
 * model.save with includeOptimizer and loadLayersModel resume bit for bit, the config stores
 * `states`. And on tfjs's webgpu backend: model.fit in 8 bits, its weights through save and
 * load, and an 8-bit state moved onto the GPU with its moments.
 */
import "@tensorflow/tfjs-backend-webgpu";
import assert from "node:assert/strict";
import {
  adam,
  dispose,
  loadState,
  lookahead,
  radam,
  ranger,
  readParams,
  saveState,
  step,
} from "../../mod.ts";
import { TfOptimizer, tfOptimizer } from "../../tfjs.ts";
import {
  bigNet,
  clonedWeights,
  CPU_BACKENDS,
  data,
  disposeModels,
  fitInOrder,
  randoms,
  saveToMemory,
  tf,
  tfl,
  uniqueNames,
  useBackend,
  webgpuTestOptions,
  weightValues,
} from "./helpers.ts";

const name = uniqueNames("q8w");

/** Two variables (one compact, of a padded block and 4489 codes: not 4 to an int32; one small), and their gradient at step t. */
function twoVariables(): {
  names: string[];
  shapes: number[][];
  vars: tf.Variable[];
  grads: (t: number) => tf.NamedTensorMap;
  values: () => Float32Array[];
  reset: (to: Float32Array[]) => void;
} {
  const names = [name("w"), name("b")];
  const shapes = [[67, 67], [64]];
  const vars = shapes.map((s, i) =>
    tf.variable(tf.tensor(randoms(s.reduce((a, b) => a * b), i + 1), s), true, names[i])
  );
  return {
    names,
    shapes,
    vars,
    grads: (t) =>
      Object.fromEntries(names.map((n, i) => [
        n,
        tf.tensor(randoms(vars[i].size, 20 * t + i), shapes[i]),
      ])),
    values: () => vars.map((v) => (v.dataSync() as Float32Array).slice()),
    reset: (to) => vars.forEach((v, i) => v.assign(tf.tensor(to[i], shapes[i]))),
  };
}

/** `steps` steps of `opt` from step `from` on. */
function run(opt: TfOptimizer, v: ReturnType<typeof twoVariables>, from: number, steps: number) {
  for (let t = from; t < from + steps; t++) {
    const g = v.grads(t);
    opt.applyGradients(g);
    tf.dispose(Object.values(g));
  }
}

/** Names and values of weights (codes as int32, the rest float32). */
function contents(weights: { name: string; tensor: tf.Tensor }[]): [string, string, number[]][] {
  return weights.map((w) => [w.name, w.tensor.dtype, [...w.tensor.dataSync()]]);
}

for (const backend of CPU_BACKENDS) {
  Deno.test(`tfjs ${backend}: getWeights/setWeights round-trip 8-bit codes exactly and resume bit for bit`, async () => {
    await useBackend(backend);
    const v = twoVariables();
    const make = () => radam({ lr: 1e-2, states: "8bit" });
    const a = tfOptimizer(make());
    run(a, v, 0, 3);
    const saved = await clonedWeights(a);
    assert.ok(saved.some((w) => w.name === `${v.names[0]}/m.codes` && w.tensor.dtype === "int32"));
    const at3 = v.values();
    run(a, v, 3, 2);
    const whole = v.values(), wholeWeights = contents(await a.getWeights());
    // Another optimizer, from the saved weights and the variables as they were at step 3.
    v.reset(at3);
    const b = tfOptimizer(make());
    await b.setWeights(saved);
    assert.deepEqual(contents(await b.getWeights()), contents(saved), "kept as given");
    run(b, v, 3, 2);
    assert.deepEqual(v.values(), whole);
    assert.deepEqual(contents(await b.getWeights()), wholeWeights);
    tf.dispose(saved.map((w) => w.tensor));
    a.dispose();
    b.dispose();
    tf.dispose(v.vars);
  });

  Deno.test(`tfjs ${backend}: getWeights holds the state at the call, though a step follows before it resolves`, async () => {
    await useBackend(backend);
    for (const states of ["8bit", "32bit"] as const) {
      const v = twoVariables();
      const a = tfOptimizer(ranger({ lr: 1e-2, states, k: 2 }));
      run(a, v, 0, 3);
      const settled = contents(await a.getWeights());
      const pending = a.getWeights();
      run(a, v, 3, 1); // (the slow weights sync at this step: k = 2)
      assert.deepEqual(contents(await pending), settled, states);
      a.dispose();
      tf.dispose(v.vars);
    }
  });

  Deno.test(`tfjs ${backend}: 8-bit weights into a 32-bit optimizer and back convert as loadState does`, async () => {
    await useBackend(backend);
    for (const [from, to] of [["8bit", "32bit"], ["32bit", "8bit"]] as const) {
      const v = twoVariables();
      const a = tfOptimizer(radam({ lr: 1e-2, states: from }));
      run(a, v, 0, 3);
      const weights = await a.getWeights();
      const bytes = await saveState(a.state!);
      // The library's conversion: the checkpoint loaded in the other format, one more step.
      let ref = await loadState(bytes, { backend: "js", states: to });
      const g = v.grads(3);
      ref = step(ref, Object.fromEntries(v.names.map((n) => [n, g[n].dataSync() as Float32Array])));
      const b = tfOptimizer(radam({ lr: 1e-2, states: to }));
      await b.setWeights(weights);
      b.applyGradients(g);
      const want = await readParams(ref);
      v.names.forEach((n, i) =>
        assert.deepEqual(v.vars[i].dataSync(), want[n], `${from}→${to} ${n}`)
      );
      tf.dispose([...weights.map((w) => w.tensor), ...Object.values(g)]);
      dispose(ref);
      a.dispose();
      b.dispose();
      tf.dispose(v.vars);
    }
  });
}

Deno.test("tfjs: setWeights refuses damaged 8-bit weights, naming them, and changes nothing", async () => {
  await useBackend("cpu");
  const v = twoVariables();
  const opt = tfOptimizer(radam({ lr: 1e-2, states: "8bit" }));
  run(opt, v, 0, 2);
  const good = await clonedWeights(opt);
  const before = contents(good);
  const codes = `${v.names[0]}/v.codes`, scales = `${v.names[0]}/v.scales`;
  const mCodes = `${v.names[0]}/m.codes`;
  const replaced = (n: string, t: tf.Tensor) =>
    good.map((w) => w.name === n ? { name: n, tensor: t } : w);
  const scaleValues = good.find((w) => w.name === scales)!.tensor.dataSync() as Float32Array;
  const packed = good.find((w) => w.name === mCodes)!.tensor.dataSync() as Int32Array;
  const cases: [string, { name: string; tensor: tf.Tensor }[], RegExp][] = [
    ["codes without scales", good.filter((w) => w.name !== scales), /v\.scales" is missing/],
    ["codes as float32", replaced(codes, tf.zeros([1120])), /rank-1 int32/],
    ["too few codes", replaced(codes, tf.zeros([1000], "int32")), /disagree/],
    [
      "codes beside f32 moments",
      [...good, { name: `${v.names[0]}/v`, tensor: tf.zeros([67, 67]) }],
      /given twice/,
    ],
    [
      "a negative scale",
      replaced(scales, tf.tensor(scaleValues.map((s, i) => i === 3 ? -s : s))),
      /v\.scales"\[3\]/,
    ],
    [
      "a NaN scale",
      replaced(scales, tf.tensor(scaleValues.map((s, i) => i === 0 ? NaN : s))),
      /v\.scales"\[0\]/,
    ],
    [
      "code -128",
      replaced(
        mCodes,
        tf.tensor(packed.map((c, i) => i === 5 ? (c & ~0xff) | 0x80 : c), undefined, "int32"),
      ),
      /code -128 at element 20/,
    ],
    ["codes of an unknown moment", [...good, {
      name: `${v.names[0]}/x.codes`,
      tensor: tf.zeros([1120], "int32"),
    }], /Unexpected optimizer weight/],
  ];
  for (const [what, weights, message] of cases) {
    await assert.rejects(() => opt.setWeights(weights), (e: Error) => {
      assert.ok(e instanceof TypeError || e instanceof RangeError, `${what}: ${e}`);
      assert.match(e.message, message, what);
      return true;
    });
    assert.deepEqual(contents(await opt.getWeights()), before, `${what} changed something`);
  }
  tf.dispose(good.map((w) => w.tensor));
  opt.dispose();
  tf.dispose(v.vars);
});

Deno.test("tfjs: model.save with includeOptimizer and loadLayersModel resume 8-bit states bit for bit", async () => {
  for (const backend of CPU_BACKENDS) {
    await useBackend(backend);
    for (
      const make of [
        () => ranger({ lr: 1e-2, states: "8bit" }),
        () => lookahead(radam({ lr: 1e-2, states: "8bit" }), { k: 3 }),
      ]
    ) {
      const whole = bigNet(21), first = bigNet(21);
      whole.compile({ optimizer: tfOptimizer(make()), loss: "meanSquaredError" });
      first.compile({ optimizer: tfOptimizer(make()), loss: "meanSquaredError" });
      const { x, y } = data([70], 16, 13);
      await whole.fit(x, y, fitInOrder(5));
      await first.fit(x, y, fitInOrder(3));
      const saved = await saveToMemory(first);
      const config = saved.trainingConfig!.optimizer_config as {
        config: { settings: { states: string } };
      };
      assert.equal(config.config.settings.states, "8bit");
      // The codes are saved packed: 1 byte a code.
      const codes = saved.weightSpecs!.filter((s) => s.name.endsWith(".codes"));
      assert.ok(codes.length > 0 && codes.every((s) => s.dtype === "int32"));
      // Ranger's kernels are held transposed: their codes say so (code_order_test.ts).
      const marked = codes.filter((s) => s.name.endsWith(".transposed.codes"));
      assert.equal(marked.length, make().settings.loop.gc ? codes.length : 0);
      const loaded = await tfl.loadLayersModel(tf.io.fromMemory(saved));
      assert.equal((loaded.optimizer as TfOptimizer).settings.run.states, "8bit");
      await loaded.fit(x, y, fitInOrder(2));
      const a = await weightValues(whole), b = await weightValues(loaded);
      a.forEach((w, i) => assert.deepEqual(b[i], w, `${backend} weight ${i}`));
      const wa = await whole.optimizer.getWeights(), wb = await loaded.optimizer.getWeights();
      assert.deepEqual(
        contents(wb).map(([, d, x]) => [d, x]),
        contents(wa).map(([, d, x]) => [d, x]),
      );
      tf.dispose([x, y, ...wa.map((w) => w.tensor), ...wb.map((w) => w.tensor)]);
      disposeModels(whole, first, loaded);
    }
  }
});

Deno.test("tfjs config: states is stored; a config without it (before 0.2.0) is 32-bit; a bad one is refused", () => {
  const config = tfOptimizer(radam({ states: "8bit" })).getConfig();
  assert.equal(config.settings.states, "8bit");
  const back = TfOptimizer.fromConfig(
    TfOptimizer,
    JSON.parse(JSON.stringify(config)),
  ) as TfOptimizer;
  assert.equal(back.settings.run.states, "8bit");
  const { states: _, ...older } = config.settings;
  const old = TfOptimizer.fromConfig(TfOptimizer, { ...config, settings: older }) as TfOptimizer;
  assert.equal(old.settings.run.states, "32bit");
  assert.throws(
    () =>
      TfOptimizer.fromConfig(TfOptimizer, { ...config, settings: { ...older, states: "4bit" } }),
    /states/,
  );
});

const sanitize = await webgpuTestOptions();

Deno.test({
  name:
    "tfjs webgpu: model.fit in 8 bits trains, and its weights (codes read back from the GPU) resume through save and load",
  ...sanitize,
  ignore: sanitize.ignore,
  async fn() {
    await useBackend("webgpu");
    const model = bigNet(9);
    const optimizer = tfOptimizer(radam({ lr: 1e-2, states: "8bit" }));
    model.compile({ optimizer, loss: "meanSquaredError" });
    const { x, y } = data([70], 32, 7);
    const history = await model.fit(x, y, { epochs: 8, batchSize: 8, shuffle: false, verbose: 0 });
    const loss = history.history.loss as number[];
    assert.equal(optimizer.backend, "webgpu");
    assert.ok(loss[loss.length - 1] < loss[0], `loss ${loss[0]} → ${loss.at(-1)}`);
    const weights = await clonedWeights(optimizer); // (saveToMemory calls getWeights)
    assert.ok(weights.some((w) => w.name.endsWith("/m.codes") && w.tensor.dtype === "int32"));
    const saved = await saveToMemory(model);
    const loaded = await tfl.loadLayersModel(tf.io.fromMemory(saved));
    const again = await loaded.optimizer.getWeights();
    assert.deepEqual(
      contents(again).map(([, d, v]) => [d, v]),
      contents(weights).map(([, d, v]) => [d, v]),
    );
    tf.dispose([x, y, ...weights.map((w) => w.tensor), ...again.map((w) => w.tensor)]);
    disposeModels(model, loaded);
  },
});

Deno.test({
  name:
    "tfjs webgpu: an 8-bit state trained on cpu moves onto the GPU with its moments (within the GPU's tolerance of the core library)",
  ...sanitize,
  ignore: sanitize.ignore,
  async fn() {
    await useBackend("cpu");
    const v = twoVariables();
    const init = v.values();
    const make = () => adam({ lr: 1e-2, states: "8bit" });
    const opt = tfOptimizer(make());
    const grads = [0, 1, 2, 3, 4].map((t) => v.grads(t));
    const values = grads.map((g): Record<string, Float32Array> =>
      Object.fromEntries(Object.entries(g).map(([n, t]) => [n, t.dataSync() as Float32Array]))
    );
    for (let t = 0; t < 3; t++) opt.applyGradients(grads[t]);
    await useBackend("webgpu");
    for (let t = 3; t < 5; t++) opt.applyGradients(grads[t]);
    assert.equal(opt.backend, "webgpu");
    let state = await make().init(Object.fromEntries(v.names.map((n, i) => [n, init[i]])));
    for (const g of values) state = step(state, g);
    const want = await readParams(state);
    // Fresh moments at step 4 would move the parameters by about lr (1e-2) from these.
    for (let i = 0; i < v.names.length; i++) {
      const got = await v.vars[i].data() as Float32Array;
      const w = want[v.names[i]];
      for (let j = 0; j < got.length; j++) {
        assert.ok(Math.abs(got[j] - w[j]) <= 2e-3, `${v.names[i]}[${j}]: ${got[j]} vs ${w[j]}`);
      }
    }
    tf.dispose(grads.flatMap((g) => Object.values(g)));
    opt.dispose();
    tf.dispose(v.vars);
  },
});

Deno.test({
  name:
    "tfjs webgpu: getWeights of an 8-bit state holds it at the call, codes included, though a step follows before it resolves",
  ...sanitize,
  ignore: sanitize.ignore,
  async fn() {
    await useBackend("webgpu");
    const v = twoVariables();
    const a = tfOptimizer(radam({ lr: 1e-2, states: "8bit" }));
    run(a, v, 0, 3);
    assert.equal(a.backend, "webgpu");
    const settled = await clonedWeights(a);
    assert.ok(settled.some((w) => w.name.endsWith("/m.codes")), "codes given");
    // The codes and scales are those of the state's checkpoint.
    const b = tfOptimizer(radam({ lr: 1e-2, states: "8bit" }));
    await b.loadState(await saveState(a.state!));
    const codes = (w: { name: string; tensor: tf.Tensor }[]) =>
      new Map(contents(w).filter(([n]) => /\.(codes|scales)$/.test(n)).map(([n, , x]) => [n, x]));
    const fromFile = await b.getWeights();
    assert.deepEqual(codes(settled), codes(fromFile));
    const pending = a.getWeights();
    run(a, v, 3, 1); // (it used to reject: the codes were read through a checkpoint, after it)
    assert.deepEqual(contents(await pending), contents(settled));
    b.dispose();
    a.dispose();
    tf.dispose([...settled, ...fromFile].map((w) => w.tensor));
    tf.dispose(v.vars);
  },
});
