/**
 * How a tfjs user new to the adapter first writes it, and what each error says: a learning rate
 * where the optimizer goes or as the adapter's options (`tf.train.adam(1e-3)`'s habit), a tfjs
 * optimizer where this library's goes (`tfOptimizer(tf.train.adam(1e-3))`), and the
 * library's optimizer value given to `model.compile` without `tfOptimizer` (tfjs-layers' own
 * error, which the README quotes); and the weights of tfjs's own optimizers given to `setWeights`
 * (a model moving from `tf.train.*`): Adam's load as they are, momentum's buffer is named here.
 */
import assert from "node:assert/strict";
import { adam, lookahead, radam, ranger, readParams, saveState, sgd } from "../../mod.ts";
import { tfOptimizer } from "../../tfjs.ts";
import {
  data,
  denseNet,
  disposeModels,
  fitInOrder,
  saveToMemory,
  tf,
  tfl,
  useBackend,
} from "./helpers.ts";
import type { TfOptimizer } from "../../tfjs.ts";

Deno.test("tfjs: a learning rate where the optimizer or the adapter's options go says how to pass it", () => {
  assert.throws(
    () => tfOptimizer(1e-3 as never),
    {
      name: "TypeError",
      message: "tfOptimizer() expects an optimizer made by this library, e.g. radam(), got 0.001 " +
        "(pass a learning rate as tfOptimizer(adam({ lr: 0.001 })))",
    },
  );
  for (const [optimizer, call] of [[radam(), "radam"], [ranger(), "ranger"], [adam(), "adam"]]) {
    assert.throws(
      () => tfOptimizer(optimizer as never, 0.05 as never),
      {
        name: "TypeError",
        message: "Options of tfOptimizer must be an object, got 0.05 " +
          `(pass a learning rate as tfOptimizer(${call}({ lr: 0.05 })))`,
      },
    );
  }
  // A name that is not a factory's call (LookAhead of another rule) gives adam's.
  assert.throws(
    () => tfOptimizer(lookahead(radam()), 0.05 as never),
    { message: /\(pass a learning rate as tfOptimizer\(adam\(\{ lr: 0\.05 \}\)\)\)$/ },
  );
  assert.throws(() => tfOptimizer(radam as never), {
    name: "TypeError",
    message: "tfOptimizer() expects an optimizer made by this library, e.g. radam(), got a " +
      "function (a factory: call it, radam())",
  });
  assert.throws(() => tfOptimizer(adam(1e-3 as never)), {
    name: "TypeError",
    message:
      "Options of adam must be an object, got 0.001 (pass a learning rate as adam({ lr: 0.001 }))",
  });
  assert.equal(tfOptimizer(adam({ lr: 0.001 })).settings.hyperparameters.lr, 0.001);
});

Deno.test("tfjs: an optimizer's option given to tfOptimizer says it goes to the factory, in the call to write", () => {
  const cases: [() => unknown, string][] = [
    [() => tfOptimizer(radam(), { lr: 1e-3 } as never), "tfOptimizer(radam({ lr }))"],
    [() => tfOptimizer(ranger(), { states: "8bit" } as never), "tfOptimizer(ranger({ states }))"],
    [() => tfOptimizer(sgd(), { momentum: 0.9 } as never), "tfOptimizer(sgd({ momentum }))"],
    [
      () => tfOptimizer(lookahead(adam()), { k: 5 } as never),
      "tfOptimizer(lookahead(adam(), { k }))",
    ],
    [
      () => tfOptimizer(adam(), { learningRate: 1e-3 } as never),
      "learningRate is an option of the optimizer, lr there: tfOptimizer(adam({ lr }))",
    ],
  ];
  for (const [call, fix] of cases) {
    assert.throws(call, (e: Error) => {
      assert.ok(e instanceof TypeError, e.message);
      assert.ok(e.message.startsWith("Unknown option "), e.message);
      assert.ok(e.message.endsWith(`${fix})`), e.message);
      return true;
    });
  }
  // Not an option of this optimizer (Adam has no momentum): no hint.
  assert.throws(
    () => tfOptimizer(adam(), { momentum: 0.9 } as never),
    {
      message:
        "Unknown option momentum for tfOptimizer; expected one of strict, warnOnSkip, gradientAccumulationSteps, ema",
    },
  );
});

Deno.test("tfjs: Keras's names of the moving average's options (use_ema, ema_momentum, ema_overwrite_frequency) say how ema is written", () => {
  const cases: [string, string][] = [
    ["use_ema", "(use_ema is ema here: ema: true, or ema: { momentum, overwriteFrequency })"],
    ["useEma", "(useEma is ema here: ema: true, or ema: { momentum, overwriteFrequency })"],
    ["ema_momentum", "(ema_momentum is ema's momentum here: ema: { momentum })"],
    [
      "ema_overwrite_frequency",
      "(ema_overwrite_frequency is ema's overwriteFrequency here: ema: { overwriteFrequency })",
    ],
  ];
  for (const [key, hint] of cases) {
    assert.throws(() => tfOptimizer(adam(), { [key]: 1 } as never), {
      name: "TypeError",
      message: `Unknown option ${key} for tfOptimizer; expected one of strict, warnOnSkip, ` +
        `gradientAccumulationSteps, ema ${hint}`,
    });
  }
  // What they say is taken.
  const optimizer = tfOptimizer(adam(), { ema: { momentum: 0.9, overwriteFrequency: 10 } });
  optimizer.dispose();
});

Deno.test("tfjs: tfOptimizer given its options first says the optimizer goes first", () => {
  assert.throws(() => tfOptimizer({ strict: true } as never, radam() as never), {
    name: "TypeError",
    message: "tfOptimizer() expects an optimizer made by this library, e.g. radam(), got Object " +
      "(the options came first: tfOptimizer takes the optimizer first, " +
      "tfOptimizer(optimizer, options))",
  });
  assert.equal(tfOptimizer(radam(), { strict: true }).settings.name, "radam");
});

Deno.test("tfjs: a TensorFlow.js optimizer given to tfOptimizer says which of this library's to wrap", async () => {
  await useBackend("cpu");
  const cases: [tf.Optimizer, string, string][] = [
    [
      tf.train.adam(0.002),
      "AdamOptimizer",
      "adam({ lr: 0.002, eps: 1e-7 })), which is tf.train.adam(0.002)",
    ],
    [tf.train.sgd(0.1), "SGDOptimizer", "sgd({ lr: 0.1 }))"],
    [tf.train.momentum(0.1, 0.9), "MomentumOptimizer", "sgd({ lr: 0.1, momentum: 0.9 }))"],
    [tf.train.rmsprop(0.01), "RMSPropOptimizer", "adam({ lr: 0.01 }))"],
  ];
  for (const [given, name, call] of cases) {
    assert.throws(() => tfOptimizer(given as never), {
      name: "TypeError",
      message:
        `tfOptimizer() expects an optimizer made by this library, e.g. radam(), got ${name} ` +
        `(a TensorFlow.js optimizer: wrap one of this library's, e.g. tfOptimizer(${call})`,
    });
    given.dispose();
  }
});

Deno.test("tfjs: an optimizer's name given to tfOptimizer (model.compile's habit) says the call to write", () => {
  const expects =
    "tfOptimizer() expects an optimizer made by this library, e.g. radam(), got a string";
  for (const [given, factory] of [["adam", "adam"], ["RAdam", "radam"], ["sgd", "sgd"]]) {
    assert.throws(() => tfOptimizer(given as never), {
      name: "TypeError",
      message: `${expects} "${given}" (an optimizer's name: call its factory, ` +
        `tfOptimizer(${factory}()))`,
    });
  }
  assert.throws(() => tfOptimizer("rmsprop" as never), {
    name: "TypeError",
    message: `${expects} "rmsprop" (a name: this library's optimizers are made by its ` +
      "factories, radam, adam, adamw, sgd, lion, ranger, e.g. tfOptimizer(adam()))",
  });
});

Deno.test("tfjs: optimizer.lr = x (the option's name) is a TypeError naming learningRate, in sloppy mode too; learningRate = x sets it", () => {
  const optimizer = tfOptimizer(radam({ lr: 0.1 }));
  const says = {
    name: "TypeError",
    message: "A TensorFlow.js optimizer has no lr to set (the assignment would change nothing): " +
      "set optimizer.learningRate = x, as for tfjs's own optimizers, or call " +
      "optimizer.setLearningRate(x); the next step reads it",
  };
  assert.throws(() => ((optimizer as unknown as { lr: number }).lr = 0.5), says);
  // A Function's body is sloppy-mode code, as a script without "use strict" is.
  assert.throws(() => new Function("o", "o.lr = 0.5;")(optimizer), says);
  assert.equal(optimizer.learningRate, 0.1);
  assert.equal(Object.hasOwn(optimizer, "lr"), false);
  optimizer.learningRate = 0.5;
  assert.equal(optimizer.learningRate, 0.5);
  optimizer.dispose();
});

Deno.test("tfjs: model.compile refuses the optimizer value itself with the error the README quotes; tfOptimizer of it trains", async () => {
  await useBackend("cpu");
  const model = denseNet(1);
  assert.throws(
    () => model.compile({ optimizer: radam() as never, loss: "meanSquaredError" }),
    { message: "User-defined optimizer must be an instance of tf.Optimizer." },
  );
  const optimizer = tfOptimizer(radam({ lr: 0.01 }));
  model.compile({ optimizer, loss: "meanSquaredError" });
  const [x, y] = [tf.ones([4, 6]), tf.zeros([4, 3])];
  await model.fit(x, y, { epochs: 2, batchSize: 4, verbose: 0 });
  assert.equal(optimizer.iterations, 2);
  tf.dispose([x, y]);
  optimizer.dispose();
  disposeModels(model);
});

Deno.test("tfjs: tfjs's own optimizers' weights given to setWeights load (Adam) or say what they are (momentum's buffer: its name here)", async () => {
  await useBackend("cpu");
  const w = tf.variable(tf.tensor1d([1, -2, 3]), true, "newcomer/w");
  const grad = tf.tensor1d([0.3, -0.2, 0.1]);
  const at = w.dataSync().slice();
  /** Three steps of tfjs's optimizer, then its weights to ours: one more step of each, compared. */
  const migrate = async (theirs: tf.Optimizer, ours: () => ReturnType<typeof tfOptimizer>) => {
    w.assign(tf.tensor1d(at));
    for (let t = 0; t < 3; t++) theirs.applyGradients({ [w.name]: grad });
    // (tfjs's getWeights gives its variables: taken before its next step changes them.)
    const weights = await theirs.getWeights();
    const opt = ours();
    const renamed = weights.map((x) => ({
      ...x,
      name: x.name.replace(/momentum$/, "momentum_buffer"),
    }));
    let refusal: string | undefined;
    await opt.setWeights(weights).catch((e: Error) => refusal = e.message);
    if (refusal !== undefined) await opt.setWeights(renamed);
    const before = w.dataSync().slice();
    theirs.applyGradients({ [w.name]: grad });
    const want = w.dataSync().slice();
    w.assign(tf.tensor1d(before));
    opt.applyGradients({ [w.name]: grad });
    const got = w.dataSync();
    want.forEach((x, i) => assert.ok(Math.abs(got[i] - x) <= 1e-5, `${got[i]} vs ${x}`));
    assert.equal(opt.iterations, 4);
    theirs.dispose();
    opt.dispose();
    return refusal;
  };
  // tfjs's Adam names its moments as the adapter does: they load as they are.
  const fromAdam = await migrate(
    tf.train.adam(0.1),
    () => tfOptimizer(adam({ lr: 0.1, eps: 1e-7 })),
  );
  assert.equal(fromAdam, undefined);
  // tfjs's momentum buffer is SGD's momentum_buffer: the error says so, and renamed it loads.
  const fromMomentum = await migrate(
    tf.train.momentum(0.1, 0.9),
    () => tfOptimizer(sgd({ lr: 0.1, momentum: 0.9 })),
  );
  assert.match(
    fromMomentum!,
    /^Unexpected optimizer weight "newcomer\/w\/momentum": sgd expects "iter" or "<variable>\/<momentum_buffer>"/,
  );
  assert.match(
    fromMomentum!,
    /tf\.train\.momentum .*"<variable>\/momentum_buffer" \(the same values/,
  );
  // Another tfjs optimizer's state is named as its; the list is what this optimizer keeps.
  const rms = tf.train.rmsprop(0.1);
  rms.applyGradients({ [w.name]: grad });
  await assert.rejects(tfOptimizer(adam()).setWeights(await rms.getWeights()), {
    name: "TypeError",
    message: 'Unexpected optimizer weight "newcomer/w/rms": adam expects "iter" or ' +
      '"<variable>/<m | v>" (a moment in 8 bits: "<variable>/<moment>.codes" and ".scales", or ' +
      '".transposed.codes" and ".transposed.scales"); "<variable>/rms" is a weight of ' +
      "TensorFlow.js's RMSProp optimizer, whose state no optimizer of this library keeps",
  });
  rms.dispose();
  tf.dispose([w, grad]);
});

Deno.test("tfjs: setWeights given a NamedTensorMap or a model's tensors says what it takes; nothing changes", async () => {
  // Refused before as "got Object" and "got Tensor", without saying what to give.
  await useBackend("cpu");
  const w = tf.variable(tf.tensor1d([1, 2]), true, "newcomer/map/w");
  const grad = tf.ones([2]);
  const source = tfOptimizer(adam({ lr: 0.1 }));
  source.applyGradients({ [w.name]: grad });
  const weights = await source.getWeights();
  const opt = tfOptimizer(adam({ lr: 0.1 }));
  const map = Object.fromEntries(weights.map((x) => [x.name, x.tensor]));
  await assert.rejects(opt.setWeights(map as never), {
    name: "TypeError",
    message: "setWeights expects a NamedTensor[], got Object (a NamedTensorMap: give " +
      "Object.entries(map).map(([name, tensor]) => ({ name, tensor })))",
  });
  await assert.rejects(opt.setWeights([w] as never), {
    name: "TypeError",
    message: "Expected { name, tensor } weights, got Variable (the optimizer's weights are " +
      "named, { name, tensor }, as optimizer.getWeights() gives them; a model's, " +
      "model.getWeights(), are not the optimizer's)",
  });
  assert.equal(opt.iterations, 0);
  await opt.setWeights(Object.entries(map).map(([name, tensor]) => ({ name, tensor })));
  assert.equal(opt.iterations, 1);
  for (const o of [source, opt]) o.dispose();
  tf.dispose([w, grad]);
});

Deno.test("tfjs: model.dispose() leaves the optimizer (a loaded model's too), as the README says; optimizer.dispose() frees it", async () => {
  await useBackend("cpu");
  const model = denseNet(3);
  model.compile({ optimizer: tfOptimizer(radam({ lr: 1e-2 })), loss: "meanSquaredError" });
  const { x, y } = data([6], 8, 5);
  await model.fit(x, y, fitInOrder(1));
  const loaded = await tfl.loadLayersModel(tf.io.fromMemory(await saveToMemory(model)));
  await loaded.fit(x, y, fitInOrder(1));
  for (const m of [model, loaded]) {
    const optimizer = m.optimizer as TfOptimizer;
    m.dispose();
    assert.ok(optimizer.state !== undefined, "the state outlives model.dispose()");
    optimizer.dispose();
    assert.equal(optimizer.state, undefined);
  }
  tf.dispose([x, y]);
});

Deno.test("tfjs: saveState(optimizer.state) before the first step, or after setWeights, says why it is undefined and where the optimizer's state is", async () => {
  await useBackend("cpu");
  const optimizer = tfOptimizer(radam({ lr: 1e-2 }));
  const undefinedState = (e: Error) => {
    assert.equal(e.name, "TypeError");
    assert.match(
      e.message,
      /^Expected an optimizer state made by init\(\) or step\(\), got undefined \(no state yet: /,
    );
    assert.match(
      e.message,
      /optimizer\.state, is undefined until its first step \(applyGradients, or model\.fit's first batch\) makes it, or its loadState once awaited, await optimizer\.loadState\(bytes\) \(a Promise\), and again after its setWeights, or a loadState of a checkpoint laid out otherwise \(other moments, gc or states\), until the next step/,
    );
    assert.match(e.message, /await optimizer\.getWeights\(\), which model\.save\(handler, /);
    return true;
  };
  assert.equal(optimizer.state, undefined);
  await assert.rejects(saveState(optimizer.state!), undefinedState);
  await assert.rejects(readParams(optimizer.state!), undefinedState);
  // The optimizer itself, where its state goes.
  await assert.rejects(saveState(optimizer as never), {
    name: "TypeError",
    message: "Expected an optimizer state made by init() or step(), got TfOptimizer (a " +
      "TensorFlow.js optimizer: pass optimizer.state, its library state, made by its first step)",
  });
  const w = tf.variable(tf.tensor1d([1, 2, 3]), true, "newcomer_state/w");
  const grad = tf.mul(w, 2);
  optimizer.applyGradients({ [w.name]: grad });
  const bytes = await saveState(optimizer.state!);
  // After setWeights, until the next step: undefined again, what it took in getWeights.
  const given = await optimizer.getWeights();
  await optimizer.setWeights(given);
  assert.equal(optimizer.state, undefined);
  await assert.rejects(saveState(optimizer.state!), undefinedState);
  // A loadState not awaited (a Promise): still undefined, and the error says to await it.
  const loading = optimizer.loadState(bytes);
  assert.ok(loading instanceof Promise);
  await assert.rejects(saveState(optimizer.state!), undefinedState);
  // After loadState: the checkpoint loaded, saved back as it was.
  await loading;
  assert.deepEqual(await saveState(optimizer.state!), bytes);
  const names = (await optimizer.getWeights()).map((x) => x.name);
  assert.deepEqual(names, ["iter", `${w.name}/m`, `${w.name}/v`]);
  optimizer.applyGradients({ [w.name]: grad });
  assert.equal((await saveState(optimizer.state!)).length > 0, true);
  optimizer.dispose();
  tf.dispose([w, grad]);
});
