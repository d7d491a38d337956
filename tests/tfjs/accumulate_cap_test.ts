/**
 * Gradient accumulation near the cap on a checkpoint header's length: an N-th call whose step is
 * refused because the state's checkpoint, with the sums saved beside it, would pass the cap keeps
 * the sums (every later N-th call would be refused the same way). Its RangeError says how to drop
 * them (`discardAccumulated()`), and the call changes nothing, so that it can be given again once the cause is gone. The
 * cap is lowered for these tests (`setHeaderCap`).
 */
import assert from "node:assert/strict";
import { radam } from "../../mod.ts";
import type { Settings } from "../../base/settings.ts";
import { setHeaderCap } from "../../base/_json_bounds.ts";
import { type TfOptimizer, tfOptimizer } from "../../tfjs.ts";
import { checkSavableBeside } from "../../tfjs/checkpoint_extras.ts";
import { tf, uniqueNames, useBackend } from "./helpers.ts";

const named = uniqueNames("accumulate_cap");
const STEPS = 3;

/** The lowest cap a checkpoint of a state over `vars`, with N − 1 sums beside it, fits. */
function lowestCap(config: Settings, vars: readonly tf.Variable[]): number {
  const items = vars.map((v) => ({ name: v.name, variable: v, tensor: v }));
  let lo = 8, hi = 1_000_000;
  try {
    while (lo < hi) {
      const mid = Math.floor((lo + hi) / 2);
      setHeaderCap(mid);
      try {
        checkSavableBeside(config, items, { steps: STEPS, averages: false });
        hi = mid;
      } catch (error) {
        if (!(error instanceof RangeError)) throw error;
        lo = mid + 1;
      }
    }
  } finally {
    setHeaderCap();
  }
  return lo;
}

/** One call with gradients `k` times each variable's ones. */
function call(opt: TfOptimizer, vars: readonly tf.Variable[], k: number): void {
  const grads = Object.fromEntries(vars.map((v) => [v.name, tf.mul(tf.onesLike(v), k)]));
  try {
    opt.applyGradients(grads);
  } finally {
    tf.dispose(Object.values(grads));
  }
}

/** Variables whose state passes the lowered cap. */
function variables(): tf.Variable[] {
  return Array.from(
    { length: 6 },
    (_, i) => tf.variable(tf.fill([3], i + 1), true, named(`w${i}`)),
  );
}

Deno.test("tfjs: an N-th call refused for the cap on the header's length says how to drop the sums, and changes nothing", async () => {
  await useBackend("cpu");
  const vars = variables();
  const config = radam({ lr: 0.1 }).settings as Settings;
  const cap = lowestCap(config, vars);
  const opt = tfOptimizer(radam({ lr: 0.1 }), { gradientAccumulationSteps: STEPS });
  const ref = tfOptimizer(radam({ lr: 0.1 }), { gradientAccumulationSteps: STEPS });
  const twins = vars.map((v) => tf.variable(v, true, named("twin")));
  try {
    setHeaderCap(cap - 8);
    for (let k = 1; k < STEPS; k++) call(opt, vars, k);
    assert.equal(opt.accumulatedBatches, STEPS - 1);
    const before = await Promise.all(vars.map((v) => v.data()));
    for (let attempt = 0; attempt < 2; attempt++) {
      assert.throws(() => call(opt, vars, STEPS), (error: Error) => {
        assert.ok(error instanceof RangeError, String(error));
        assert.match(error.message, /above the cap/);
        assert.match(error.message, /accumulatedBatches/);
        assert.match(error.message, /optimizer\.discardAccumulated\(\)/);
        assert.match(error.message, /loadState/);
        return true;
      });
      // Nothing changed: neither the sums, nor their count, nor the variables, nor the steps.
      assert.equal(opt.accumulatedBatches, STEPS - 1);
      assert.equal(opt.iterations, 0);
      assert.deepEqual(await Promise.all(vars.map((v) => v.data())), before);
    }
    // Given again once the cause is gone (here the cap), the call steps as if never refused.
    setHeaderCap();
    call(opt, vars, STEPS);
    for (let k = 1; k <= STEPS; k++) call(ref, twins, k);
    assert.equal(opt.iterations, 1);
    for (const [i, v] of vars.entries()) {
      assert.deepEqual(await v.data(), await twins[i].data(), v.name);
    }
  } finally {
    setHeaderCap();
    opt.dispose();
    ref.dispose();
    tf.dispose([...vars, ...twins]);
  }
});

Deno.test("tfjs: the way out a refused N-th call names drops the sums", async () => {
  await useBackend("cpu");
  const vars = variables();
  const config = radam({ lr: 0.1 }).settings as Settings;
  const cap = lowestCap(config, vars);
  const opt = tfOptimizer(radam({ lr: 0.1 }), { gradientAccumulationSteps: STEPS });
  try {
    setHeaderCap(cap - 8);
    for (let k = 1; k < STEPS; k++) call(opt, vars, k);
    assert.throws(() => call(opt, vars, STEPS), RangeError);
    assert.throws(() => call(opt, vars.slice(0, 1), STEPS), RangeError); // (the sums are kept)
    // As the message says: discardAccumulated() (the moments and step count kept).
    assert.equal(opt.discardAccumulated(), STEPS - 1);
    assert.equal(opt.accumulatedBatches, 0);
    assert.equal(opt.iterations, 0);
    for (let k = 1; k <= STEPS; k++) call(opt, vars.slice(0, 1), k); // (fewer variables: fits)
    assert.equal(opt.iterations, 1);
  } finally {
    setHeaderCap();
    opt.dispose();
    tf.dispose(vars);
  }
});

Deno.test("tfjs: an N-th call refused for another reason, whose words read like the cap's, gets no advice to drop the sums", async () => {
  await useBackend("cpu");
  // (A variable whose name holds the words of the cap's refusal; its step refused for a NaN.)
  const w = tf.variable(tf.zeros([2]), true, named("w holds 9 bytes, above the cap of 8"));
  const opt = tfOptimizer(radam({ lr: 0.1, nonFinite: "throw" }), {
    gradientAccumulationSteps: 2,
  });
  const nan = tf.tensor1d([NaN, 1]);
  const one = tf.onesLike(w);
  try {
    opt.applyGradients({ [w.name]: one });
    assert.throws(() => opt.applyGradients({ [w.name]: nan }), (error: Error) => {
      assert.ok(error instanceof RangeError, String(error));
      assert.match(error.message, /NaN/);
      assert.match(error.message, / bytes, above the cap of /);
      assert.doesNotMatch(error.message, /accumulatedBatches|Nothing changed/);
      assert.equal(error.cause, undefined);
      return true;
    });
  } finally {
    opt.dispose();
    tf.dispose([w, nan, one]);
  }
});
