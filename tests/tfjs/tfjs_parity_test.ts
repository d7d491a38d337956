/**
 * The adapter against TensorFlow.js's own Adam, for what is not numerics: for the same model and
 * the same calls, `tfOptimizer(adam({ lr, eps: 1e-7 }))` does what `tf.train.adam(lr)` does
 * (`minimize`'s cost and `varList`, `computeGradients` with `applyGradients` of a map or a
 * `NamedTensor[]`, gradients for some variables or `null`, `iterations`, `getWeights`' names,
 * shapes and dtypes; `model.fit` with `validationSplit` and twice, `trainOnBatch` and `fitDataset`:
 * the same counts, history keys and, to f32 rounding, losses, and no tensor left behind), and
 * `setWeights` refuses weights without `iter` where it reset the optimizer. The differences the
 * README documents (a call with no gradient counts no iteration; a variable whose gradients were
 * all `null` has no weights) are asserted as such.
 */
import "@tensorflow/tfjs-backend-webgpu";
import assert from "node:assert/strict";
import { adam } from "../../mod.ts";
import { tfOptimizer } from "../../tfjs.ts";
import {
  CPU_BACKENDS,
  data,
  denseNet,
  optimizerSnapshot,
  tf,
  type tfl,
  uniqueNames,
  useBackend,
  webgpuTestOptions,
} from "./helpers.ts";

const name = uniqueNames("parity");
const LR = 0.1;

/** The two optimizers compared: tfjs's Adam and the adapter's, the same update. */
const MAKERS = {
  tfjs: () => tf.train.adam(LR),
  ours: () => tfOptimizer(adam({ lr: LR, eps: 1e-7 })),
} as const;

/** Three variables (ranks 1, 2 and 1) named under `prefix`. */
function variablesOf(prefix: string): tf.Variable[] {
  return [
    tf.variable(tf.tensor([1, 2]), true, `${prefix}/a`),
    tf.variable(tf.tensor([[3, 4], [5, 6]]), true, `${prefix}/b`),
    tf.variable(tf.tensor([7]), true, `${prefix}/c`),
  ];
}

/** sum(a²) + sum(b²) + sum(c²). */
const lossOf = (v: tf.Variable[]) => () => tf.addN(v.map((x) => tf.sum(tf.square(x)))) as tf.Scalar;

/** What `f` gives for each optimizer, over variables of its own; both disposed after. */
async function onBoth<T>(
  f: (opt: tf.Optimizer, vars: tf.Variable[], prefix: string) => T | Promise<T>,
): Promise<{ tfjs: T; ours: T }> {
  const out: Partial<Record<keyof typeof MAKERS, T>> = {};
  for (const key of ["tfjs", "ours"] as const) {
    const prefix = name(key);
    const vars = variablesOf(prefix);
    const opt = MAKERS[key]();
    try {
      out[key] = await f(opt, vars, prefix);
    } finally {
      opt.dispose();
      tf.dispose(vars);
    }
  }
  return out as { tfjs: T; ours: T };
}

/** The weights' names (the prefix made neutral), shapes and dtypes, and `iterations`. */
async function layoutOf(opt: tf.Optimizer, prefix: string) {
  const weights = await opt.getWeights();
  return {
    iterations: opt.iterations,
    weights: weights.map((w) => [w.name.replace(prefix, "P"), w.tensor.shape, w.tensor.dtype]),
  };
}

Deno.test("tfjs parity: minimize's cost (returnCost true or false), iterations and getWeights are tf.train.adam's", async () => {
  await useBackend("cpu");
  const got = await onBoth(async (opt, v, prefix) => {
    const cost = opt.minimize(lossOf(v), true)!;
    const kept = { shape: cost.shape, dtype: cost.dtype, live: !cost.isDisposed };
    cost.dispose();
    const tensors = tf.memory().numTensors;
    const none = opt.minimize(lossOf(v), false);
    return { kept, none, made: tf.memory().numTensors - tensors, ...await layoutOf(opt, prefix) };
  });
  assert.deepEqual(got.ours, got.tfjs);
  assert.deepEqual(got.ours.kept, { shape: [], dtype: "float32", live: true });
  assert.equal(got.ours.none, null);
  assert.equal(got.ours.made, 0);
  assert.equal(got.ours.iterations, 2);
});

// (tfjs's Adam keys its moments by position: a varList that changes between calls mixes them up,
// or fails, tensorflow/tfjs#4290; so each run keeps one.)
Deno.test("tfjs parity: minimize with a varList steps those only, and gives tf.train.adam's weights", async () => {
  await useBackend("cpu");
  const got = await onBoth(async (opt, v, prefix) => {
    const b = v[1].dataSync().slice();
    for (let i = 0; i < 2; i++) opt.minimize(lossOf(v), false, [v[0], v[2]]);
    return {
      untouched: b.join() === v[1].dataSync().join(),
      moved: v[0].dataSync()[0] !== 1 && v[2].dataSync()[0] !== 7,
      ...await layoutOf(opt, prefix),
    };
  });
  assert.deepEqual(got.ours, got.tfjs);
  assert.ok(got.ours.untouched && got.ours.moved);
});

Deno.test("tfjs parity: computeGradients then applyGradients of a map or a NamedTensor[] is tf.train.adam's", async () => {
  await useBackend("cpu");
  for (const form of ["map", "array"] as const) {
    const got = await onBoth(async (opt, v, prefix) => {
      const { value, grads } = opt.computeGradients(lossOf(v));
      const given = form === "map"
        ? grads
        : Object.entries(grads).map(([name, tensor]) => ({ name, tensor }));
      opt.applyGradients(given);
      const out = {
        value: value.shape,
        grads: Object.keys(grads).map((k) => k.replace(prefix, "P")),
        ...await layoutOf(opt, prefix),
      };
      tf.dispose([value, ...Object.values(grads)]);
      return out;
    });
    assert.deepEqual(got.ours, got.tfjs, form);
  }
});

Deno.test("tfjs parity: gradients for some variables, or null, step those and count one iteration, as tf.train.adam", async () => {
  await useBackend("cpu");
  const got = await onBoth((opt, v) => {
    const g = tf.ones([2]);
    const before = [v[1].dataSync().slice(), v[2].dataSync().slice()];
    opt.applyGradients({ [v[0].name]: g });
    opt.applyGradients({ [v[0].name]: g, [v[2].name]: null as never });
    opt.applyGradients([{ name: v[0].name, tensor: g }, {
      name: v[2].name,
      tensor: null as never,
    }]);
    g.dispose();
    return {
      iterations: opt.iterations,
      moved: v[0].dataSync()[0] !== 1,
      others: [v[1].dataSync().join(), v[2].dataSync().join()],
      before: before.map((x) => x.join()),
    };
  });
  assert.deepEqual(got.ours, got.tfjs);
  assert.deepEqual(got.ours.others, got.ours.before);
  assert.equal(got.ours.iterations, 3);
});

Deno.test("tfjs parity: setWeights refuses weights without iter (an empty array too), nothing changed, where tf.train.adam fails on them", async () => {
  await useBackend("cpu");
  const prefix = name("iter");
  const vars = variablesOf(prefix);
  const opt = MAKERS.ours();
  try {
    for (let i = 0; i < 3; i++) opt.minimize(lossOf(vars));
    const weights = (await opt.getWeights()).map((w) => ({
      name: w.name,
      tensor: tf.clone(w.tensor),
    }));
    const before = await optimizerSnapshot(opt);
    const params = vars.map((v) => v.dataSync().slice());
    const cases = [[], weights.slice(1)];
    for (const given of cases) {
      await assert.rejects(opt.setWeights(given), {
        name: "TypeError",
        message: new RegExp(
          `^${
            given.length === 0 ? "setWeights was given no weights: " : ""
          }Optimizer weight "iter" is missing \\(`,
        ),
      });
      assert.deepEqual(await optimizerSnapshot(opt), before);
      assert.notEqual(opt.state, undefined, "the state was not dropped");
    }
    // tfjs's own Adam fails on an empty array (it reads the first weight as iter).
    const theirs = tf.train.adam(LR);
    await assert.rejects(theirs.setWeights([]));
    theirs.dispose();
    // It steps on as if nothing had been given.
    opt.minimize(lossOf(vars));
    const twin = MAKERS.ours();
    const twinPrefix = name("twin");
    const twinVars = variablesOf(twinPrefix);
    twinVars.forEach((v, i) => v.assign(tf.tensor(params[i], v.shape)));
    await twin.setWeights(weights.map((w) => ({ ...w, name: w.name.replace(prefix, twinPrefix) })));
    twin.minimize(lossOf(twinVars));
    assert.deepEqual(twinVars.map((v) => v.dataSync()), vars.map((v) => v.dataSync()));
    assert.equal(opt.iterations, 4);
    twin.dispose();
    tf.dispose([...twinVars, ...weights.map((w) => w.tensor)]);
  } finally {
    opt.dispose();
    tf.dispose(vars);
  }
});

/** A dataset of `x`, `y` in batches of 8, as tfjs-layers' `fitDataset` reads one. */
function batches(x: tf.Tensor, y: tf.Tensor) {
  const count = x.shape[0] / 8;
  return {
    size: count,
    iterator: () => {
      let i = 0;
      return Promise.resolve({
        next: () =>
          Promise.resolve(
            i < count
              ? {
                done: false,
                value: {
                  xs: tf.slice(x, [i * 8, 0], [8, x.shape[1]!]),
                  ys: tf.slice(y, [i++ * 8, 0], [8, y.shape[1]!]),
                },
              }
              : { done: true, value: null },
          ),
      });
    },
  };
}

/**
 * What one round of tfjs-layers' training calls gives with `opt` on a small dense net: the
 * iterations after each, their losses and history keys, and the tensors each round left behind
 * (a second round's: the first makes what stays).
 */
async function trainingRound(opt: tf.Optimizer, seed: number) {
  const model = denseNet(seed);
  model.compile({ optimizer: opt, loss: "meanSquaredError" });
  const { x, y } = data([6], 32, seed);
  const round = async (m: tfl.Sequential) => {
    const split = await m.fit(x, y, {
      epochs: 2,
      batchSize: 8,
      validationSplit: 0.25,
      shuffle: false,
      verbose: 0,
    });
    const afterSplit = opt.iterations;
    const twice = await m.fit(x, y, { epochs: 1, batchSize: 16, shuffle: false, verbose: 0 });
    const onBatch = await m.trainOnBatch(x, y) as number;
    const dataset = await m.fitDataset(batches(x, y) as never, { epochs: 1, verbose: 0 });
    return {
      iterations: [afterSplit, opt.iterations],
      keys: Object.keys(split.history).sort(),
      losses: [
        ...split.history.loss,
        ...split.history.val_loss,
        ...twice.history.loss,
        onBatch,
        ...dataset.history.loss,
      ] as number[],
    };
  };
  try {
    const first = await round(model);
    const tensors = tf.memory().numTensors;
    const second = await round(model);
    return { first, second, left: tf.memory().numTensors - tensors };
  } finally {
    model.dispose();
    tf.dispose([x, y]);
  }
}

/** Asserts that two training rounds' outcomes agree: counts and keys exactly, losses to 1e-4. */
function assertSameTraining(
  ours: Awaited<ReturnType<typeof trainingRound>>,
  tfjs: Awaited<ReturnType<typeof trainingRound>>,
): void {
  for (const round of ["first", "second"] as const) {
    assert.deepEqual(ours[round].iterations, tfjs[round].iterations, round);
    assert.deepEqual(ours[round].keys, tfjs[round].keys, round);
    assert.equal(ours[round].losses.length, tfjs[round].losses.length);
    ours[round].losses.forEach((loss, i) => {
      const want = tfjs[round].losses[i];
      assert.ok(Math.abs(loss - want) <= 1e-4 * Math.max(1, Math.abs(want)), `${round} ${i}`);
    });
  }
  assert.deepEqual(ours.first.iterations, [6, 13]); // 2 × 3 batches, then 2 + 1 + 4
  assert.equal(ours.left, 0, "tensors left behind by a round of training");
}

for (const backend of [...CPU_BACKENDS, "webgpu"] as const) {
  Deno.test({
    name:
      `tfjs parity (${backend}): model.fit with validationSplit and again, trainOnBatch and fitDataset count, report and leak as with tf.train.adam`,
    ...(backend === "webgpu" ? await webgpuTestOptions() : {}),
    async fn() {
      await useBackend(backend);
      try {
        const tfjs = await trainingRound(MAKERS.tfjs(), 3);
        const opt = MAKERS.ours();
        const ours = await trainingRound(opt, 3);
        opt.dispose();
        assertSameTraining(ours, tfjs);
      } finally {
        if (backend === "webgpu") await useBackend("cpu");
      }
    },
  });
}

Deno.test("tfjs parity, the documented differences: a call with no gradient counts no iteration, and a variable whose gradients were all null has no weights", async () => {
  await useBackend("cpu");
  const got = await onBoth(async (opt, v, prefix) => {
    const g = tf.ones([2]);
    opt.applyGradients({ [v[0].name]: g, [v[2].name]: null as never });
    opt.applyGradients({});
    opt.applyGradients({ [v[0].name]: null as never });
    g.dispose();
    return await layoutOf(opt, prefix);
  });
  assert.equal(got.tfjs.iterations, 3);
  assert.equal(got.ours.iterations, 1);
  const names = (x: typeof got.ours) => x.weights.map((w) => w[0]);
  assert.deepEqual(names(got.tfjs), ["iter", "P/a/m", "P/c/m", "P/a/v", "P/c/v"]);
  assert.deepEqual(names(got.ours), ["iter", "P/a/m", "P/a/v"]);
});

Deno.test("tfjs parity: the adapter's Adam weights given to tf.train.adam go on there as tf.train.adam's own do", async () => {
  await useBackend("cpu");
  const got = await onBoth(async (opt, v) => {
    for (let i = 0; i < 3; i++) opt.minimize(lossOf(v));
    const theirs = tf.train.adam(LR);
    await theirs.setWeights(await opt.getWeights());
    opt.dispose(); // (disposes the weights it gave: tfjs's Adam holds variables of its own)
    for (let i = 0; i < 2; i++) theirs.minimize(lossOf(v));
    const out = { iterations: theirs.iterations, values: v.map((x) => [...x.dataSync()]).flat() };
    theirs.dispose();
    return out;
  });
  assert.equal(got.ours.iterations, 5);
  assert.equal(got.ours.iterations, got.tfjs.iterations);
  got.ours.values.forEach((x, i) => assert.ok(Math.abs(x - got.tfjs.values[i]) < 1e-5, `${i}`));
});

Deno.test("tfjs parity, documented: a NamedTensor[] naming a variable twice is refused, nothing changed, where tf.train.adam steps it twice with two moments of one name", async () => {
  await useBackend("cpu");
  const got = await onBoth(async (opt, v, prefix) => {
    const g = tf.ones([2]);
    opt.applyGradients({ [v[0].name]: g });
    const before = v[0].dataSync().slice();
    let refused = "";
    try {
      opt.applyGradients([{ name: v[0].name, tensor: g }, { name: v[0].name, tensor: g }]);
    } catch (error) {
      refused = `${(error as Error).name}: ${(error as Error).message.replace(prefix, "P")}`;
    }
    g.dispose();
    return {
      refused,
      same: before.join() === v[0].dataSync().join(),
      ...await layoutOf(opt, prefix),
    };
  });
  assert.equal(got.ours.refused, 'TypeError: Two gradients were given for variable "P/a"');
  assert.ok(got.ours.same);
  assert.equal(got.ours.iterations, 1);
  assert.equal(got.tfjs.refused, "");
  assert.equal(got.tfjs.iterations, 2);
  assert.equal(got.tfjs.weights.filter((w) => w[0] === "P/a/m").length, 2);
});
