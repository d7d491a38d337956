/**
 * The adapter's setWeights under damaged and mismatched weights, for 32-bit and 8-bit states
 * with LookAhead: each is refused with a TypeError/RangeError naming the weight, and nothing
 * changes (getWeights gives what it gave). f32 moments and slow weights are held to what a
 * checkpoint's must be (finite; `v` ≥ 0), and a `v` of −0 loads as +0 does.
 */
import assert from "node:assert/strict";
import fc from "fast-check";
import { lookahead, radam } from "../../mod.ts";
import { type TfOptimizer, tfOptimizer } from "../../tfjs.ts";
import {
  clonedWeights,
  denseNet,
  randoms,
  saveToMemory,
  tf,
  uniqueNames,
  useBackend,
} from "./helpers.ts";

const name = uniqueNames("hw");
const SHAPE = [70, 64]; // 4480 elements: 8-bit moments, the last block partial

type Weights = { name: string; tensor: tf.Tensor }[];

/** An optimizer of `states` with LookAhead after two steps of one variable, and its weights. */
async function trained(states: "32bit" | "8bit") {
  const v = tf.variable(tf.tensor(randoms(4480, 1), SHAPE), true, name("w"));
  const opt = tfOptimizer(lookahead(radam({ lr: 1e-2, states }), { k: 3 }));
  for (let t = 0; t < 2; t++) {
    const g = tf.tensor(randoms(4480, 10 + t), SHAPE);
    opt.applyGradients({ [v.name]: g });
    g.dispose();
  }
  return { v, opt, weights: await clonedWeights(opt) };
}

/** Names, dtypes and values of weights. */
async function contents(opt: TfOptimizer): Promise<[string, string, number[]][]> {
  const weights = await opt.getWeights();
  const out = weights.map((w) => [w.name, w.tensor.dtype, [...w.tensor.dataSync()]]);
  tf.dispose(weights.map((w) => w.tensor));
  return out as [string, string, number[]][];
}

/** `weights` with the one named `which` given `tensor` instead. */
function replaced(weights: Weights, which: string, tensor: tf.Tensor): Weights {
  return weights.map((w) => w.name === which ? { name: which, tensor } : w);
}

/** Damage by kind, each with the error it must give (`v`: the variable's name). */
const DAMAGE: [string, (w: Weights, v: string) => Weights, RegExp][] = [
  ["iter negative", (w) => replaced(w, "iter", tf.scalar(-1, "int32")), /"iter" to be an integer/],
  ["iter fractional", (w) => replaced(w, "iter", tf.scalar(2.5)), /"iter" to be an integer/],
  [
    "iter of several values",
    (w) => replaced(w, "iter", tf.tensor1d([2, 9, 1], "int32")),
    /"iter" to be one value \(or the int32 pair .*\), got shape \[3\]/,
  ],
  [
    "iter a pair with a negative high word",
    (w) => replaced(w, "iter", tf.tensor1d([2, -1], "int32")),
    /"iter" to be an integer ≥ 0, got \[2, -1\]/,
  ],
  [
    "iter a pair with a low word of 2^31",
    (w) => replaced(w, "iter", tf.tensor1d([2 ** 31, 0])),
    /"iter" to be an integer ≥ 0, got \[2147483648, 0\]/,
  ],
  [
    "iter a pair past 2^53",
    (w) => replaced(w, "iter", tf.tensor1d([0, 2 ** 22], "int32")),
    /"iter" to be an integer ≥ 0, got \[0, 4194304\]/,
  ],
  [
    "iter given twice",
    (w) => [...w, { name: "iter", tensor: tf.scalar(9, "int32") }],
    /"iter" is given twice/,
  ],
  [
    "slow of another size than the moments",
    (w, v) => replaced(w, `${v}/slow`, tf.zeros([70, 63])),
    /disagree in (shape|size)/,
  ],
  [
    "slow given twice",
    (w, v) => [...w, { name: `${v}/slow`, tensor: tf.zeros(SHAPE) }],
    /given twice/,
  ],
  [
    "slow as codes",
    (w, v) => [...w, { name: `${v}/slow.codes`, tensor: tf.zeros([1120], "int32") }],
    /Unexpected optimizer weight/,
  ],
  ["slow as int32", (w, v) => replaced(w, `${v}/slow`, tf.zeros(SHAPE, "int32")), /float32/],
  [
    "not a NamedTensor",
    (w) => [...w, { name: "x" } as unknown as Weights[0]],
    /Expected \{ name, tensor \} weights/,
  ],
];

Deno.test("tfjs: setWeights refuses damaged or mismatched weights, naming them; nothing changes", async () => {
  await useBackend("cpu");
  for (const states of ["32bit", "8bit"] as const) {
    const { v, opt, weights } = await trained(states);
    const before = await contents(opt);
    for (const [what, damage, message] of DAMAGE) {
      await assert.rejects(() => opt.setWeights(damage(weights, v.name)), (e: Error) => {
        assert.ok(e instanceof TypeError || e instanceof RangeError, `${what}: ${e}`);
        assert.match(e.message, message, `${states} ${what}`);
        return true;
      });
      assert.deepEqual(await contents(opt), before, `${states} ${what} changed something`);
    }
    opt.dispose();
    v.dispose();
  }
});

Deno.test("tfjs: f32 moments and slow weights that are not finite (or v < 0) are refused, naming the weight and index", async () => {
  await useBackend("cpu");
  for (const states of ["32bit", "8bit"] as const) {
    const { v, opt, weights } = await trained(states);
    const before = await contents(opt);
    // f32 weights of the moments (as a 32-bit optimizer gives them: 8-bit ones convert them)
    const wide: Weights = [
      ...weights.filter((w) => !/\/[mv](\.codes|\.scales)?$/.test(w.name)),
      { name: `${v.name}/m`, tensor: tf.tensor(randoms(4480, 3), SHAPE) },
      { name: `${v.name}/v`, tensor: tf.tensor(randoms(4480, 4).map(Math.abs), SHAPE) },
    ];
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom("m", "v", "slow"),
        fc.nat({ max: 4479 }),
        fc.constantFrom(NaN, Infinity, -Infinity, -1e-30),
        async (which, at, bad) => {
          const target = wide.find((w) => w.name === `${v.name}/${which}`)!;
          const data = (target.tensor.dataSync() as Float32Array).slice();
          data[at] = bad;
          const damaged = replaced(wide, target.name, tf.tensor(data, SHAPE));
          const refused = which === "v" || !Number.isFinite(bad);
          if (!refused) return; // a negative m or slow weight is a value like any other
          await assert.rejects(() => opt.setWeights(damaged), (e: Error) => {
            assert.ok(e instanceof RangeError, `${e}`);
            assert.match(
              e.message,
              new RegExp(`"${v.name}/${which}"\\[${at}\\] to be a finite number`),
            );
            return true;
          });
          assert.deepEqual(await contents(opt), before);
        },
      ),
      { numRuns: 25 },
    );
    opt.dispose();
    v.dispose();
  }
});

Deno.test("tfjs: a v weight of −0 given to an 8-bit optimizer gives the state +0 gives", async () => {
  await useBackend("cpu");
  const values = randoms(4480, 5).map((x) => x * x);
  const at = [0, 7, 300, 4479];
  const runs = [];
  for (const zero of [0, -0]) {
    const v = tf.variable(tf.tensor(randoms(4480, 1), SHAPE), true, name("w"));
    const opt = tfOptimizer(radam({ lr: 1e-2, states: "8bit" }));
    const given = values.slice();
    for (const i of at) given[i] = zero;
    await opt.setWeights([
      { name: "iter", tensor: tf.scalar(2, "int32") },
      { name: `${v.name}/m`, tensor: tf.tensor(randoms(4480, 6), SHAPE) },
      { name: `${v.name}/v`, tensor: tf.tensor(given, SHAPE) },
    ]);
    const g = tf.tensor(randoms(4480, 7), SHAPE);
    opt.applyGradients({ [v.name]: g });
    runs.push({ params: v.dataSync().slice(), weights: (await contents(opt)).map((w) => w[2]) });
    g.dispose();
    opt.dispose();
    v.dispose();
  }
  assert.deepEqual(runs[1], runs[0]);
});

Deno.test("tfjs: weights that setWeights would refuse are refused by getWeights (so by model.save), naming the weight: a non-finite state under propagate, a moment overflowed", async () => {
  await useBackend("cpu");
  const cases = [
    { states: "32bit", nonFinite: "propagate", g: NaN, weight: "m", at: 7 },
    { states: "8bit", nonFinite: "propagate", g: NaN, weight: "m.scales", at: 17 },
    { states: "32bit", nonFinite: "skip", g: 3e38, weight: "v", at: 7 },
  ] as const;
  for (const { states, nonFinite, g, weight, at } of cases) {
    const label = `${states} ${nonFinite} ${g}`;
    const v = tf.variable(tf.tensor(randoms(4480, 1), SHAPE), true, name("w"));
    const opt = tfOptimizer(radam({ lr: 1e-2, states, nonFinite }));
    const grads = randoms(4480, 2);
    grads[at * (weight === "m.scales" ? 256 : 1)] = g;
    const gradient = tf.tensor(grads, SHAPE);
    opt.applyGradients({ [v.name]: gradient });
    const tensors = tf.memory().numTensors;
    await assert.rejects(() => opt.getWeights(), (e: Error) => {
      assert.ok(e instanceof RangeError, `${label}: ${e}`);
      assert.match(e.message, new RegExp(`"${v.name}/${weight.replace(".", "\\.")}"\\[${at}\\]`));
      assert.match(e.message, /setWeights \(so tf.loadLayersModel\) takes only finite values/);
      return true;
    }, label);
    assert.equal(tf.memory().numTensors, tensors, `${label}: no tensor left behind`);
    // Kept aside (the variable left out of a step), the same.
    const other = tf.variable(tf.zeros([3]), true, name("b"));
    const one = tf.ones([3]);
    opt.applyGradients({ [other.name]: one });
    await assert.rejects(() => opt.getWeights(), RangeError, label);
    opt.dispose();
    tf.dispose([v, other, gradient, one]);
  }
  // model.save with includeOptimizer: refused when saving, not when loading.
  const model = denseNet(5);
  model.compile({
    optimizer: tfOptimizer(radam({ nonFinite: "propagate" })),
    loss: "meanSquaredError",
  });
  const x = tf.tensor2d([[NaN, 0, 0, 0, 0, 0]]), y = tf.zeros([1, 3]);
  await model.fit(x, y, { epochs: 1, verbose: 0 });
  await assert.rejects(() => saveToMemory(model), /Cannot give the optimizer's weights/);
  model.optimizer.dispose();
  model.dispose();
  tf.dispose([x, y]);
});
