/**
 * A change of the set of variables on tfjs's webgpu backend (layers frozen, then unfrozen) keeps
 * the state as the CPU paths do: the variables still there keep theirs, new ones start fresh at
 * the optimizer's step count, those left out keep theirs aside until they come back (also
 * through getWeights/setWeights and a model saved with its optimizer); `strict` refuses a change.
 */
import "@tensorflow/tfjs-backend-webgpu";
import assert from "node:assert/strict";
import { radam, ranger } from "../../mod.ts";
import { type TfOptimizer, tfOptimizer } from "../../tfjs.ts";
import {
  bigNet,
  data,
  disposeModels,
  fitInOrder,
  saveToMemory,
  shapedVars,
  stepSet,
  tf,
  tfl,
  uniqueNames,
  useBackend,
  webgpuTestOptions,
  weightValues,
} from "./helpers.ts";

const sanitize = await webgpuTestOptions();
const name = uniqueNames("gpuset");

/** Kernels (the first two compact under 8-bit states: 4480 and 4096 elements) and biases. */
const SHAPES = [[70, 64], [64], [64, 64], [3]];

/**
 * The sets of variables of each step: all, the head (frozen backbone) with the old head's state,
 * all again (unfrozen), the backbone alone, a variable new to the state, then all.
 */
const SETS = [
  [0, 1, 2, 3],
  [0, 1, 2, 3],
  [2, 3],
  [2, 3],
  [0, 1, 2, 3],
  [0, 2],
  [1, 3],
  [0, 1, 2, 3],
];

type Make = () => TfOptimizer;

/** The variables' values and the optimizer's weights (names, values) after `steps`. */
async function outcome(
  opt: TfOptimizer,
  vars: tf.Variable[],
  prefix: string,
): Promise<{ values: Float32Array[]; weights: [string, Float32Array][] }> {
  const values = await Promise.all(vars.map(async (v) => (await v.data() as Float32Array).slice()));
  const weights = await Promise.all(
    (await opt.getWeights()).map(async (w) =>
      [w.name.replaceAll(prefix, "P"), new Float32Array(await w.tensor.data())] as [
        string,
        Float32Array,
      ]
    ),
  );
  return { values, weights };
}

/** `SETS` on tfjs backend `backend` with an optimizer of `make`; `at` reads the outcome after. */
async function run(backend: string, make: Make, at: number[]) {
  await useBackend(backend);
  const prefix = name(backend);
  const vars = shapedVars(prefix, SHAPES);
  const opt = make();
  const out = [];
  for (let t = 0; t < SETS.length; t++) {
    stepSet(opt, vars, SETS[t], t);
    if (at.includes(t)) out.push(await outcome(opt, vars, prefix));
  }
  assert.equal(opt.iterations, SETS.length);
  opt.dispose();
  tf.dispose(vars);
  return out;
}

/** Asserts `got` and `want` name the same weights, and hold values within `tol` (relative). */
function assertClose(
  got: Awaited<ReturnType<typeof run>>,
  want: Awaited<ReturnType<typeof run>>,
  tol: number,
) {
  assert.equal(got.length, want.length);
  got.forEach((g, k) => {
    assert.deepEqual(g.weights.map((w) => w[0]), want[k].weights.map((w) => w[0]));
    const pairs = [
      ...g.values.map((v, i) => [`variable ${i}`, v, want[k].values[i]] as const),
      ...g.weights.map((w, i) => [w[0], w[1], want[k].weights[i][1]] as const),
    ];
    for (const [what, a, b] of pairs) {
      assert.equal(a.length, b.length, what);
      for (let j = 0; j < a.length; j++) {
        const bound = tol * Math.max(1, Math.abs(b[j]));
        assert.ok(Math.abs(a[j] - b[j]) <= bound, `${what}[${j}] at ${k}: ${a[j]} vs ${b[j]}`);
      }
    }
  });
}

const CASES: [string, Make, number][] = [
  ["radam", () => tfOptimizer(radam({ lr: 1e-2 })), 0],
  // (tfjs centralizes the gradients on webgpu, in its own ops: within float32 rounding.)
  ["ranger", () => tfOptimizer(ranger({ lr: 1e-2, k: 3 })), 1e-5],
  ["8-bit radam", () => tfOptimizer(radam({ lr: 1e-2, states: "8bit" })), 0],
];

for (const [label, make, tol] of CASES) {
  Deno.test({
    name:
      `tfjs webgpu: layers frozen and unfrozen keep their state as on cpu (${label}), kept aside while frozen`,
    ...sanitize,
    async fn() {
      // Read while the backbone is frozen (kept aside), just after it comes back, and at the end.
      const at = [2, 3, 4, 6, 7];
      const want = await run("cpu", make, at);
      assertClose(await run("webgpu", make, at), want, tol);
      // Read at the end only: variables come back while the state kept aside is read back.
      assertClose(await run("webgpu", make, [7]), want.slice(-1), tol);
    },
  });
}

/**
 * `SETS` on webgpu with an optimizer of `make`, handed over by getWeights/setWeights to a new
 * one after step `handover` (then some state is kept aside), outcome at the end.
 */
async function runHandedOver(make: Make, handover: number) {
  await useBackend("webgpu");
  const prefix = name("handover");
  const vars = shapedVars(prefix, SHAPES);
  let opt = make();
  for (let t = 0; t < SETS.length; t++) {
    stepSet(opt, vars, SETS[t], t);
    if (t !== handover) continue;
    const next = make();
    await next.setWeights(await opt.getWeights());
    opt.dispose();
    opt = next;
  }
  const out = await outcome(opt, vars, prefix);
  opt.dispose();
  tf.dispose(vars);
  return [out];
}

for (const [label, make, tol] of CASES) {
  Deno.test({
    name:
      `tfjs webgpu: state kept aside while frozen goes through getWeights and setWeights (${label})`,
    ...sanitize,
    async fn() {
      const want = await run("cpu", make, [SETS.length - 1]);
      // Handed over while the backbone is frozen, and while one of each is left out.
      for (const handover of [2, 3, 5]) {
        assertClose(await runHandedOver(make, handover), want, tol);
      }
    },
  });
}

Deno.test({
  name:
    "tfjs webgpu: under strict a change of the variables is refused with a RangeError naming one, nothing changed",
  ...sanitize,
  async fn() {
    await useBackend("webgpu");
    const prefix = name("strict");
    const vars = shapedVars(prefix, SHAPES);
    const opt = tfOptimizer(ranger({ lr: 1e-2, states: "8bit" }), { strict: true });
    stepSet(opt, vars, [0, 1, 2, 3], 0);
    const before = await outcome(opt, vars, prefix);
    // (The first variable left out, as on the CPU paths.)
    for (const [set, missing] of [[[2, 3], 0], [[0, 1, 2], 3]] as const) {
      assert.throws(() => stepSet(opt, vars, set, 1), (e: Error) => {
        assert.ok(e instanceof RangeError, String(e));
        assert.ok(e.message.includes(JSON.stringify(`${prefix}/${missing}`)), e.message);
        assert.ok(e.message.includes("strict"), e.message);
        return true;
      });
    }
    assert.deepEqual(await outcome(opt, vars, prefix), before);
    assert.equal(opt.iterations, 1);
    opt.dispose();
    tf.dispose(vars);
  },
});

/**
 * bigNet trained on webgpu: all layers, then its first layer frozen (recompiled with the same
 * optimizer), then all again; saved with its optimizer and loaded after `saveAt` epochs.
 */
async function fitFreezing(make: Make, saveAt: number | undefined): Promise<Float32Array[]> {
  await useBackend("webgpu");
  let model: tfl.LayersModel = bigNet(5);
  const { x, y } = data([70], 8, 3);
  const trainable = [true, false, false, true];
  let optimizer = make();
  for (let epoch = 0; epoch < trainable.length; epoch++) {
    model.layers[0].trainable = trainable[epoch];
    model.compile({ optimizer, loss: "meanSquaredError" });
    await model.fit(x, y, fitInOrder(1));
    if (epoch !== saveAt) continue;
    const loaded = await tfl.loadLayersModel(tf.io.fromMemory(await saveToMemory(model)));
    disposeModels(model);
    model = loaded;
    optimizer = loaded.optimizer as TfOptimizer;
  }
  const out = await weightValues(model);
  disposeModels(model);
  tf.dispose([x, y]);
  return out;
}

for (const [label, make] of CASES) {
  Deno.test({
    name:
      `tfjs webgpu: a model saved with its optimizer while a layer is frozen resumes its state when unfrozen (${label})`,
    ...sanitize,
    async fn() {
      const want = await fitFreezing(make, undefined);
      for (const saveAt of [1, 2]) {
        const got = await fitFreezing(make, saveAt);
        got.forEach((w, i) => assert.deepEqual(w, want[i], `weight ${i}, saved after ${saveAt}`));
      }
    },
  });
}
