/**
 * Interleavings around a change of the set of variables on tfjs's webgpu backend: a non-finite
 * gradient under `nonFinite: "throw"` just before a change, changes in a row while the state kept
 * aside is still read back, and dispose or setWeights meanwhile.
 */
import "@tensorflow/tfjs-backend-webgpu";
import assert from "node:assert/strict";
import { radam, ranger } from "../../mod.ts";
import { type TfOptimizer, tfOptimizer } from "../../tfjs.ts";
import { shapedVars, stepSet, tf, uniqueNames, useBackend, webgpuTestOptions } from "./helpers.ts";

const sanitize = await webgpuTestOptions();
const name = uniqueNames("gpurace");

const SHAPES = [[70, 64], [64], [64, 64], [3]];

/** Lets the device report (readbacks resolve on the event loop). */
async function drain(opt: TfOptimizer): Promise<void> {
  for (let i = 0; i < 20; i++) await new Promise((r) => setTimeout(r, 5));
  void opt;
}

/** The weights of `opt` by name (copies), those kept aside included. */
async function weightsByName(opt: TfOptimizer, prefix: string): Promise<Map<string, Float32Array>> {
  const out = new Map<string, Float32Array>();
  for (const w of await opt.getWeights()) {
    out.set(w.name.replace(prefix, "P"), new Float32Array(await w.tensor.data()));
  }
  return out;
}

/**
 * Step 0 over `first`, step 1 over `first` with a NaN in the gradient of variable `bad`, then
 * steps over `then` (a change), on `backend`: on cpu step 1 throws at once; on webgpu a later
 * call must throw it, once. The outcome: the weights after, and the steps counted.
 */
async function haltBeforeChange(
  backend: string,
  first: number[],
  then: number[],
  bad: number,
): Promise<{ weights: Map<string, Float32Array>; iterations: number }> {
  await useBackend(backend);
  const prefix = name(`throw-${backend}`);
  const vars = shapedVars(prefix, SHAPES);
  const opt = tfOptimizer(radam({ lr: 1e-2, nonFinite: "throw" }));
  stepSet(opt, vars, first, 0);
  const thrown: unknown[] = [];
  try {
    stepSet(opt, vars, first, 1, bad);
  } catch (error) {
    thrown.push(error);
  }
  // (On webgpu, the change comes before the device reported the halt.)
  for (let t = 2; t < 6; t++) {
    try {
      stepSet(opt, vars, then, t);
      await drain(opt);
      await opt.getWeights();
    } catch (error) {
      thrown.push(error);
    }
  }
  assert.equal(thrown.length, 1, `thrown: ${thrown.join("; ")}`);
  assert.ok(thrown[0] instanceof RangeError, String(thrown[0]));
  assert.ok(String(thrown[0]).includes(`${prefix}/${bad}`), String(thrown[0]));
  const out = { weights: await weightsByName(opt, prefix), iterations: opt.iterations };
  opt.dispose();
  tf.dispose(vars);
  return out;
}

for (
  const [label, first, then] of [
    ["a layer frozen", [0, 1, 2, 3], [2, 3]],
    ["a layer unfrozen (none left out)", [2, 3], [0, 1, 2, 3]],
  ] as const
) {
  Deno.test({
    name:
      `tfjs webgpu: a non-finite gradient under throw just before a change (${label}) is thrown once by a later call, the state kept aside as on cpu`,
    ...sanitize,
    async fn() {
      const bad = first[0];
      const want = await haltBeforeChange("cpu", [...first], [...then], bad);
      const got = await haltBeforeChange("webgpu", [...first], [...then], bad);
      // The step halted at is not counted (the new state goes on with the device's count).
      assert.equal(want.iterations, 5);
      assert.equal(got.iterations, want.iterations);
      // The variables left out keep their state at the halt (that of step 0), as on cpu.
      const left = first.filter((i) => !(then as readonly number[]).includes(i));
      for (const i of left) {
        for (const m of ["m", "v"]) {
          const key = `P/${i}/${m}`;
          assert.ok(want.weights.has(key) && got.weights.has(key), key);
          assert.deepEqual(got.weights.get(key), want.weights.get(key), key);
        }
      }
    },
  });
}

type Op =
  | { step: number[] }
  | { save: true } // getWeights twice at once, without awaiting the steps' reads; one kept
  | { restore: true }; // setWeights of the kept weights, at once (a read back may be pending)

/** `ops` on `backend` with an optimizer of `make`: the variables and weights at the end. */
async function runOps(backend: string, make: () => TfOptimizer, ops: readonly Op[]) {
  await useBackend(backend);
  const prefix = name(`ops-${backend}`);
  const vars = shapedVars(prefix, SHAPES);
  const opt = make();
  let saved: { name: string; tensor: tf.Tensor }[] | undefined;
  let t = 0;
  for (const op of ops) {
    if ("step" in op) stepSet(opt, vars, op.step, t++);
    else if ("save" in op) {
      const [a, b] = await Promise.all([opt.getWeights(), opt.getWeights()]);
      assert.deepEqual(a.map((w) => w.name), b.map((w) => w.name));
      tf.dispose(saved?.map((w) => w.tensor));
      saved = b.map((w) => ({ name: w.name, tensor: tf.clone(w.tensor) }));
    } else {
      await opt.setWeights(saved!);
    }
  }
  const values = await Promise.all(vars.map(async (v) => new Float32Array(await v.data())));
  const weights = await weightsByName(opt, prefix);
  opt.dispose();
  tf.dispose(vars);
  tf.dispose(saved?.map((w) => w.tensor));
  return { values, weights };
}

const RACES: [string, Op[]][] = [
  // Out, back and out again while the first read back is pending.
  ["left out, back, out again", [
    { step: [0, 1, 2, 3] },
    { step: [0, 1, 2, 3] },
    { step: [2, 3] },
    { step: [0, 1, 2, 3] },
    { step: [2, 3] },
    { step: [1, 3] },
    { step: [0, 1, 2, 3] },
  ]],
  ["weights read twice at once while read back", [
    { step: [0, 1, 2, 3] },
    { step: [0, 2] },
    { save: true },
    { step: [1, 3] },
    { step: [0, 1, 2, 3] },
  ]],
  ["weights set while read back", [
    { step: [0, 1, 2, 3] },
    { save: true },
    { step: [0, 1, 2, 3] },
    { step: [2, 3] },
    { restore: true },
    { step: [0, 1, 2, 3] },
    { step: [0, 1] },
    { restore: true },
    { step: [1, 2] },
    { step: [0, 1, 2, 3] },
  ]],
];

/** Rules, and the relative tolerance against cpu (Ranger's gc runs in tfjs ops on webgpu). */
const MAKES: [string, () => TfOptimizer, number][] = [
  ["radam", () => tfOptimizer(radam({ lr: 1e-2 })), 0],
  ["8-bit radam", () => tfOptimizer(radam({ lr: 1e-2, states: "8bit" })), 0],
  // (LookAhead's sync every 2 steps crosses each change.)
  ["ranger", () => tfOptimizer(ranger({ lr: 1e-2, k: 2 })), 1e-5],
];

/** Asserts `a` and `b` within `tol` (relative; 0: bit for bit). */
function assertNear(a: Float32Array | undefined, b: Float32Array, tol: number, what: string) {
  if (tol === 0) return assert.deepEqual(a, b, what);
  assert.equal(a?.length, b.length, what);
  b.forEach((x, j) => {
    const bound = tol * Math.max(1, Math.abs(x));
    assert.ok(Math.abs(a![j] - x) <= bound, `${what}[${j}]: ${a![j]} vs ${x}`);
  });
}

for (const [label, ops] of RACES) {
  for (const [rule, make, tol] of MAKES) {
    Deno.test({
      name: `tfjs webgpu: ${label} as on cpu (${rule})`,
      ...sanitize,
      async fn() {
        const want = await runOps("cpu", make, ops);
        const got = await runOps("webgpu", make, ops);
        assert.deepEqual([...got.weights.keys()], [...want.weights.keys()]);
        for (const [k, w] of want.weights) assertNear(got.weights.get(k), w, tol, k);
        got.values.forEach((v, i) => assertNear(v, want.values[i], tol, `variable ${i}`));
      },
    });
  }
}

Deno.test({
  name:
    "tfjs webgpu: the optimizer, the model's variables or all disposed while a read back is pending leave no rejection unhandled",
  ...sanitize,
  async fn() {
    await useBackend("webgpu");
    for (const how of ["optimizer", "variables", "all variables"]) {
      const prefix = name(`dispose-${how}`);
      const vars = shapedVars(prefix, SHAPES);
      const opt = tfOptimizer(radam({ lr: 1e-2, states: "8bit" }));
      stepSet(opt, vars, [0, 1, 2, 3], 0);
      stepSet(opt, vars, [2, 3], 1); // 0 and 1 read back
      const reading = opt.getWeights();
      if (how === "optimizer") opt.dispose();
      else if (how === "variables") tf.dispose(vars);
      else tf.disposeVariables();
      const result = await reading.then(() => "read", (e) => e);
      if (how === "optimizer") assert.ok(result instanceof TypeError, String(result));
      else assert.equal(result, "read");
      await drain(opt);
      opt.dispose();
      tf.dispose(vars);
    }
  },
});

/**
 * Under `nonFinite: "skip"`, step 1 skipped (a NaN), then a change: with `settle`, the weights
 * read before it (so the device reported the skip). The count and outcome at the end.
 */
async function skipBeforeChange(backend: string, settle: boolean) {
  await useBackend(backend);
  const prefix = name(`skip-${backend}`);
  const vars = shapedVars(prefix, SHAPES);
  const opt = tfOptimizer(radam({ lr: 1e-2, nonFinite: "skip" }), { warnOnSkip: false });
  stepSet(opt, vars, [0, 1, 2, 3], 0);
  stepSet(opt, vars, [0, 1, 2, 3], 1, 2);
  if (settle) await opt.getWeights();
  for (let t = 2; t < 5; t++) stepSet(opt, vars, [2, 3], t);
  const weights = await weightsByName(opt, prefix);
  const out = { iterations: opt.iterations, skipped: opt.skippedSteps, weights };
  opt.dispose();
  tf.dispose(vars);
  return out;
}

Deno.test({
  name:
    "tfjs webgpu: a step skipped just before a change counts as skipped, reported first or not, as on cpu",
  ...sanitize,
  async fn() {
    const want = await skipBeforeChange("cpu", false);
    assert.equal(want.iterations, 4);
    assert.equal(want.skipped, 1);
    // Reported before the change (weights read), or not yet (the new state goes on with the
    // device's own count): as on cpu, bit for bit.
    for (const settle of [true, false]) {
      const got = await skipBeforeChange("webgpu", settle);
      assert.equal(got.iterations, want.iterations, `settle ${settle}`);
      assert.equal(got.skipped, want.skipped, `settle ${settle}`);
      for (const [k, w] of want.weights) assert.deepEqual(got.weights.get(k), w, k);
    }
  },
});
