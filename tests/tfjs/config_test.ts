/**
 * The adapter's stored config is readable JSON that tfjs-layers 4.22 loads unchanged (it turns
 * keys and strings holding `_` to camelCase, except a string under `name`), for every rule, with
 * groups over tfjs's `_`-named variables, and a schedule; configs of 0.1.0 (base64 settings)
 * still load and resume bit for bit; bad configs are refused with errors that say what is wrong.
 */
import assert from "node:assert/strict";
import {
  adam,
  adamw,
  CheckpointError,
  linearWarmup,
  lion,
  lookahead,
  radam,
  ranger,
  sgd,
} from "../../mod.ts";
import { TfOptimizer, tfOptimizer, type TfOptimizerConfig } from "../../tfjs.ts";
import { optimizerOf, RULE_TABLE } from "../rule_table.ts";
import { decodeBase64 } from "./fixtures/base64.ts";
import {
  data,
  denseNet,
  disposeModels,
  fitInOrder,
  saveToMemory,
  tf,
  tfl,
  useBackend,
  weightValues,
} from "./helpers.ts";

/** Every key and string of `value` with a `_`, with its path (strings under `name` excepted). */
function underscores(value: unknown, path = "config"): string[] {
  if (typeof value === "string") return value.includes("_") ? [`${path}: ${value}`] : [];
  if (Array.isArray(value)) return value.flatMap((v, i) => underscores(v, `${path}[${i}]`));
  if (typeof value !== "object" || value === null) return [];
  return Object.entries(value).flatMap(([k, v]) => [
    ...k.includes("_") ? [`${path} key ${k}`] : [],
    ...(k === "name" && typeof v === "string") ? [] : underscores(v, `${path}.${k}`),
  ]);
}

/** Settings as JSON, with a schedule or a group's `match` as a mark (they are not stored). */
function plain(settings: object): unknown {
  return JSON.parse(
    JSON.stringify(
      settings,
      (_, v) => typeof v === "function" || v instanceof RegExp ? "(function)" : v,
    ),
  );
}

/** `saved` as it comes back from a model.json file: through JSON text. */
function throughJson(saved: tf.io.ModelArtifacts): tf.io.ModelArtifacts {
  const { weightData, ...rest } = saved;
  return { ...JSON.parse(JSON.stringify(rest)), weightData };
}

const OPTIMIZERS = {
  radam: () => radam({ lr: 3e-3, betas: [0.8, 0.99], weightDecay: 0.1, clipGradNorm: 2 }),
  adam: () => adam({ lr: 1e-3, nonFinite: "propagate" }),
  "adamw with groups": () =>
    adamw({ lr: 1e-3, groups: [{ match: /bias$/, weightDecay: 0, lrScale: 0.5 }] }),
  lion: () => lion({ lr: 1e-4, nonFinite: "throw" }),
  "ranger with groups": () =>
    ranger({
      lr: 1e-2,
      k: 4,
      groups: [{ match: (n: string) => n.endsWith("kernel"), lrScale: 2 }],
    }),
  "lookahead(adam) with a schedule": () => lookahead(adam({ lr: (t: number) => 1e-3 / t })),
  "sgd with Nesterov momentum": () => sgd({ lr: 1e-2, momentum: 0.9, nesterov: true }),
  "sgd without momentum (no moment)": () => sgd({ lr: 1e-2, weightDecay: 1e-4 }),
  // Every rule of the table, as its example.
  ...Object.fromEntries(
    RULE_TABLE.map((row) => [
      `${row.rule} (the rule table's example)`,
      () => optimizerOf(row, row.example, "auto"),
    ]),
  ),
};

for (const [label, make] of Object.entries(OPTIMIZERS)) {
  Deno.test(`tfjs config: ${label} is stored as readable JSON that loadLayersModel reads unchanged`, async () => {
    await useBackend("cpu");
    const model = denseNet(5);
    const optimizer = tfOptimizer(make(), { strict: true, warnOnSkip: false });
    model.compile({ optimizer, loss: "meanSquaredError" });
    const { x, y } = data([6], 8, 3);
    if (label.includes("schedule")) optimizer.setLearningRate((t) => 1e-3 / t);
    await model.fit(x, y, fitInOrder(1));
    const saved = throughJson(await saveToMemory(model));
    const stored = (saved.trainingConfig!.optimizer_config as { config: TfOptimizerConfig })
      .config;
    assert.deepEqual(stored, optimizer.getConfig());
    // Readable: the settings are an object, not a blob; nothing tfjs-layers would rewrite.
    assert.equal(stored.version, 2);
    assert.equal(stored.optimizer, optimizer.settings.name);
    assert.equal(typeof stored.settings, "object");
    assert.equal(stored.settings.strict, true);
    assert.equal(stored.settings.warnOnSkip, false);
    assert.deepEqual(underscores(stored), []);
    const lr = optimizer.settings.hyperparameters.lr;
    assert.equal(stored.settings.hyperparameters.lr, typeof lr === "function" ? null : lr);
    if (label.includes("groups")) {
      // The variables' tfjs names hold `_` (dense_Dense1/kernel): stored under `name`.
      const names = model.getWeights().map((w) => (w as tf.Variable).name);
      assert.deepEqual(stored.settings.tensors!.map((t) => t.name), names);
      assert.ok(names.every((n) => n.includes("_")));
      assert.ok(stored.settings.tensors!.some((t) => t.group === 1));
    } else {
      assert.equal(stored.settings.tensors, undefined);
    }
    const loaded = await tfl.loadLayersModel(tf.io.fromMemory(saved));
    const back = loaded.optimizer as TfOptimizer;
    assert.ok(back instanceof TfOptimizer);
    // Everything came back as it was written (the group of each variable included).
    assert.deepEqual(back.getConfig(), stored);
    assert.deepEqual(plain(back.settings), plain(optimizer.settings));
    tf.dispose([x, y]);
    disposeModels(model, loaded);
  });
}

Deno.test("tfjs config: a model saved by 0.1.0 (base64 settings) loads and trains on bit for bit", async () => {
  await useBackend("cpu");
  const fixture = JSON.parse(
    await Deno.readTextFile(new URL("./fixtures/config_v1_model.json", import.meta.url)),
  );
  const config = fixture.trainingConfig.optimizer_config.config;
  assert.equal(typeof config.settings, "string"); // the 0.1.0 form
  assert.equal(config.version, undefined);
  const load = () =>
    tfl.loadLayersModel(tf.io.fromMemory({
      modelTopology: fixture.modelTopology,
      trainingConfig: fixture.trainingConfig,
      weightSpecs: fixture.weightSpecs,
      weightData: decodeBase64(fixture.weightData).buffer as ArrayBuffer,
    }));
  // Loaded while a model of the same names is alive: tfjs names its variables `<name>_<n>`, and
  // the saved moments and groups (by name) still go to them.
  const first = await load();
  const loaded = await load();
  const names = loaded.getWeights().map((w) => (w as tf.Variable).name);
  assert.ok(names.every((n) => /_\d+$/.test(n)), names.join());
  const optimizer = loaded.optimizer as TfOptimizer;
  assert.ok(optimizer instanceof TfOptimizer);
  assert.equal(optimizer.iterations, 12);
  // Ranger (stored as "lookahead(ranger)" by 0.1.0, named "ranger" now): gc, LookAhead, k = 4.
  assert.equal(config.optimizer, "lookahead(ranger)");
  assert.equal(optimizer.optimizerName, "ranger");
  assert.equal(optimizer.settings.loop.gc, true);
  assert.equal(optimizer.settings.lookahead?.k, 4);
  assert.equal(optimizer.settings.loop.groups.length, 1);
  const x = tf.tensor(fixture.x, [16, 6]), y = tf.tensor(fixture.y, [16, 3]);
  await loaded.fit(x, y, fitInOrder(2));
  const got = await weightValues(loaded);
  got.forEach((w, i) => assert.deepEqual(w, new Float32Array(fixture.expected[i]), `weight ${i}`));
  // Written again, it is the readable form, with the same groups.
  const written = optimizer.getConfig();
  assert.equal(written.version, 2);
  assert.equal(written.optimizer, "ranger");
  assert.deepEqual(written.settings.tensors!.map((t) => t.group), [0, 1, 0, 1]);
  tf.dispose([x, y]);
  disposeModels(first, loaded);
});

Deno.test("tfjs config: a 0.1.0 config's base64 settings are read where the runtime has no atob (Hermes before React Native 0.74)", async () => {
  const fixture = JSON.parse(
    await Deno.readTextFile(new URL("./fixtures/config_v1_model.json", import.meta.url)),
  );
  const config = fixture.trainingConfig.optimizer_config.config;
  const g = globalThis as { atob?: typeof atob };
  const saved = g.atob;
  delete g.atob;
  try {
    const optimizer = TfOptimizer.fromConfig(TfOptimizer, config) as TfOptimizer;
    assert.equal(optimizer.optimizerName, "ranger");
    assert.equal(optimizer.settings.lookahead?.k, 4);
    optimizer.dispose();
  } finally {
    g.atob = saved;
  }
});

Deno.test("tfjs config: bad configs are refused, saying what is wrong", async () => {
  await useBackend("cpu");
  const good = tfOptimizer(adam()).getConfig();
  const load = (config: unknown) =>
    TfOptimizer.fromConfig(TfOptimizer, config as tf.serialization.ConfigDict);
  assert.throws(() => load({ format: "x" }), /Not a config of this library's tfjs optimizer/);
  assert.throws(() => load({ ...good, settings: 3 }), /settings to be an object, got 3/);
  assert.throws(() => load({ ...good, version: 3 }), /version 3; this version of the library/);
  assert.throws(
    () => load({ ...good, optimizer: "adagrad" }),
    (e: Error) => e instanceof CheckpointError && /unknown optimizer "adagrad"/.test(e.message),
  );
  const hyper = { ...good.settings.hyperparameters, betas: [2, 0.9] };
  assert.throws(
    () => load({ ...good, settings: { ...good.settings, hyperparameters: hyper } }),
    (e: Error) =>
      e instanceof CheckpointError && /RadamTfOptimizer config is invalid/.test(e.message),
  );
  // The adapter's own options, as a saved file may hold them (edited, or from a newer version).
  const invalid = (e: Error) =>
    e instanceof CheckpointError && /RadamTfOptimizer config is invalid/.test(e.message);
  for (
    const options of [
      { gradientAccumulationSteps: 0 },
      { gradientAccumulationSteps: 2.5 },
      { ema: { momentum: 2 } },
      { ema: "yes" },
    ]
  ) {
    assert.throws(() => load({ ...good, settings: { ...good.settings, ...options } }), invalid);
  }
  const grouped = tfOptimizer(adamw({ groups: [{ match: /b/, weightDecay: 0 }] }));
  const w = tf.variable(tf.zeros([2]), true, "config_test/b");
  const g = tf.ones([2]);
  grouped.applyGradients({ [w.name]: g });
  const config = grouped.getConfig();
  assert.deepEqual(config.settings.tensors, [{ name: "config_test/b", group: 1 }]);
  assert.throws(
    () => load({ ...config, settings: { ...config.settings, tensors: [{ name: 1 }] } }),
    /settings.tensors to be an array of \{ name, group \}/,
  );
  assert.throws(
    () => load({ ...config, settings: { ...config.settings, tensors: [{ name: "b", group: 5 }] } }),
    CheckpointError,
  );
  assert.throws(
    () => tfOptimizer(adam(), { warnOnSkip: 1 as never }),
    /warnOnSkip must be a boolean/,
  );
  tf.dispose([w, g]);
  grouped.dispose();
});

Deno.test("tfjs config: getConfig/fromConfig round trip; a stored schedule must be given again", async () => {
  await useBackend("cpu");
  const opt = tfOptimizer(
    radam({ lr: 3e-3, betas: [0.8, 0.99], weightDecay: 0.1, clipGradNorm: 2 }),
  );
  const config = opt.getConfig();
  const back = TfOptimizer.fromConfig(TfOptimizer, config) as TfOptimizer;
  assert.deepEqual({ ...back.settings }, { ...opt.settings });
  assert.throws(() => TfOptimizer.fromConfig(TfOptimizer, { format: "x" }), TypeError);
  const scheduled = tfOptimizer(adam({ lr: (t) => 1e-3 * t }));
  const restored = TfOptimizer.fromConfig(TfOptimizer, scheduled.getConfig()) as TfOptimizer;
  const w = tf.variable(tf.tensor([1, 2]), true, "config_test/round_trip/w");
  const g = tf.ones([2]);
  assert.throws(() => restored.applyGradients({ [w.name]: g }), /setLearningRate/);
  assert.deepEqual(w.dataSync(), new Float32Array([1, 2]));
  // A wrong type is a TypeError, a number out of range a RangeError; neither changes the lr.
  assert.throws(() => restored.setLearningRate("1e-3" as unknown as number), {
    name: "TypeError",
    message: 'Option lr must be a finite number ≥ 0 or a schedule, got a string "1e-3"' +
      " (a number as text: convert it, Number(value))",
  });
  assert.throws(() => restored.setLearningRate(-1), { name: "RangeError", message: /got -1$/ });
  // Past f32's range: it drove the variables to ±Infinity at the next step.
  assert.throws(() => restored.setLearningRate(1e39), {
    name: "RangeError",
    message: /^Option lr must be ≤ 3.4028234663852886e\+38 \(the largest f32\), got 1e\+39$/,
  });
  // A schedule maker, its call forgotten: it was taken for a schedule, linearWarmup(t) then
  // throwing "Option warmupSteps must be an integer ≥ 1, got undefined" inside applyGradients.
  assert.throws(() => restored.setLearningRate(linearWarmup as unknown as number), {
    name: "TypeError",
    message: /got linearWarmup itself, which makes a schedule: call it, lr: linearWarmup\(/,
  });
  assert.throws(() => restored.applyGradients({ [w.name]: g }), /setLearningRate/);
  restored.setLearningRate((t) => 1e-3 * t);
  restored.applyGradients({ [w.name]: g });
  assert.equal(restored.iterations, 1);
  assert.notDeepEqual(w.dataSync(), new Float32Array([1, 2]));
  tf.dispose([w, g]);
  for (const o of [opt, back, scheduled, restored]) o.dispose();
});

Deno.test("tfjs config: groups of variables saved with tfjs's suffix (`<name>_1`) go to them when loaded under another (`<name>_2`) or none", async () => {
  await useBackend("cpu");
  // Explicit layer names, the model built twice: the second's variables are `<name>_1`.
  const build = () => {
    const model = tfl.sequential({
      layers: [tfl.layers.dense({ units: 3, inputShape: [6], name: "config_suffix" })],
    });
    const values = model.getWeights().map((w, i) => tf.fill(w.shape, 0.5 + i));
    model.setWeights(values);
    tf.dispose(values);
    return model;
  };
  const first = build(), model = build();
  const decayed = adamw({
    lr: 1e-2,
    weightDecay: 0.5,
    groups: [{ match: /bias/, weightDecay: 0 }],
  });
  model.compile({ optimizer: tfOptimizer(decayed), loss: "meanSquaredError" });
  const { x, y } = data([6], 8, 3);
  await model.fit(x, y, fitInOrder(1));
  const saved = throughJson(await saveToMemory(model));
  const stored = (saved.trainingConfig!.optimizer_config as { config: TfOptimizerConfig }).config;
  assert.deepEqual(stored.settings.tensors, [
    { name: "config_suffix/kernel_1", group: 0 },
    { name: "config_suffix/bias_1", group: 1 },
  ]);
  const loaded = await tfl.loadLayersModel(tf.io.fromMemory(saved));
  assert.deepEqual(loaded.weights.map((w) => w.name), [
    "config_suffix/kernel_2",
    "config_suffix/bias_2",
  ]);
  // The bias keeps weight decay 0: training on gives the bits of the model that was saved.
  await model.fit(x, y, fitInOrder(2));
  await loaded.fit(x, y, fitInOrder(2));
  const [a, b] = [await weightValues(model), await weightValues(loaded)];
  a.forEach((w, i) => assert.deepEqual(b[i], w, `weight ${i}`));
  // In a fresh process the variables would have no suffix: the same group.
  const match = (loaded.optimizer as TfOptimizer).settings.loop.groups[0].match as (
    n: string,
  ) => boolean;
  assert.deepEqual(
    ["config_suffix/bias", "config_suffix/kernel", "config_suffix/bias_3"].map(match),
    [true, false, true],
  );
  tf.dispose([x, y]);
  first.dispose();
  disposeModels(model, loaded);
});

Deno.test("tfjs config: a model with parameter groups saved untrained (before any step) loads with its groups", async () => {
  await useBackend("cpu");
  const decayed = () =>
    tfOptimizer(adamw({ lr: 1e-2, weightDecay: 0.5, groups: [{ match: /bias/, weightDecay: 0 }] }));
  const model = denseNet(41);
  model.compile({ optimizer: decayed(), loss: "meanSquaredError" });
  // The config holds the group of each of the model's variables (those registered then).
  const saved = throughJson(await saveToMemory(model));
  const stored = (saved.trainingConfig!.optimizer_config as { config: TfOptimizerConfig }).config;
  const groupOf = new Map(stored.settings.tensors!.map((t) => [t.name, t.group]));
  assert.deepEqual(
    model.trainableWeights.map((w) => groupOf.get(w.originalName)),
    [0, 1, 0, 1],
  );
  const loaded = await tfl.loadLayersModel(tf.io.fromMemory(saved));
  // Trained on, it gives the bits of the model that was saved (its biases not decayed).
  const { x, y } = data([6], 8, 41);
  await model.fit(x, y, fitInOrder(2));
  await loaded.fit(x, y, fitInOrder(2));
  const [a, b] = [await weightValues(model), await weightValues(loaded)];
  a.forEach((w, i) => assert.deepEqual(b[i], w, `weight ${i}`));
  tf.dispose([x, y]);
  disposeModels(model, loaded);
  // With no variable registered at all, nothing can be stored: a TypeError saying so.
  assert.deepEqual(Object.keys(tf.engine().registeredVariables), []);
  assert.throws(() => decayed().getConfig(), /build the model first/);
});

Deno.test("tfjs config: a layer frozen when its model was saved keeps its parameter group, unfrozen after loading", async () => {
  await useBackend("cpu");
  const decayed = adamw({
    lr: 1e-2,
    weightDecay: 0.5,
    groups: [{ match: /bias(_\d+)?$/, weightDecay: 0 }],
  });
  const model = denseNet(43);
  model.layers[0].trainable = false;
  model.compile({ optimizer: tfOptimizer(decayed), loss: "meanSquaredError" });
  const { x, y } = data([6], 8, 43);
  await model.fit(x, y, fitInOrder(1));
  const saved = throughJson(await saveToMemory(model));
  const stored = (saved.trainingConfig!.optimizer_config as { config: TfOptimizerConfig }).config;
  const groupOf = new Map(stored.settings.tensors!.map((t) => [t.name, t.group]));
  // The frozen layer's variables too (no step updated them), each with its group.
  assert.deepEqual(model.weights.map((w) => groupOf.get(w.originalName)), [0, 1, 0, 1]);
  const loaded = await tfl.loadLayersModel(tf.io.fromMemory(saved));
  assert.equal(loaded.layers[0].trainable, false);
  // Unfrozen in both, trained on: the loaded model's bias is not decayed, as the saved one's.
  for (const m of [model, loaded]) {
    m.layers[0].trainable = true;
    m.compile({ optimizer: m.optimizer, loss: "meanSquaredError" });
    await m.fit(x, y, fitInOrder(2));
  }
  const [a, b] = [await weightValues(model), await weightValues(loaded)];
  a.forEach((w, i) => assert.deepEqual(b[i], w, `weight ${i}`));
  tf.dispose([x, y]);
  disposeModels(model, loaded);
});
