/**
 * A step right after a learning rate was set (`setLearningRate`), over the state's variables in
 * another order, with what is saved beside the state (option `ema`'s averages, option
 * `gradientAccumulationSteps`' sums), near the cap on a checkpoint header's length: the state is
 * stepped where it is, in its own order, so its checkpoint is checked against the cap in that
 * order (the digits of the tensors' offsets in the header depend on it), not in the order the
 * gradients were given. The cap is lowered for these tests (`setHeaderCap`).
 */
import assert from "node:assert/strict";
import { radam, saveState } from "../../mod.ts";
import type { Settings } from "../../base/settings.ts";
import { setHeaderCap } from "../../base/_json_bounds.ts";
import { stateInternals } from "../../core/state.ts";
import { type TfOptimizer, tfOptimizer, type TfOptimizerOptions } from "../../tfjs.ts";
import { checkSavableBeside, type SavedExtras } from "../../tfjs/checkpoint_extras.ts";
import { tf, uniqueNames, useBackend } from "./helpers.ts";

const named = uniqueNames("lr_order_cap");

/** Whether a checkpoint of a state of `config` over `vars`, in this order, fits the cap. */
function fitsIn(config: Settings, vars: readonly tf.Variable[], saved: SavedExtras): boolean {
  const items = vars.map((v) => ({ name: v.name, variable: v, tensor: v }));
  try {
    checkSavableBeside(config, items, saved);
    return true;
  } catch (error) {
    if (!(error instanceof RangeError)) throw error;
    return false;
  }
}

/** The lowest cap a checkpoint of such a state fits (padded to 8 bytes). */
function lowestCap(config: Settings, vars: readonly tf.Variable[], saved: SavedExtras): number {
  let lo = 8, hi = 1_000_000;
  try {
    while (lo < hi) {
      const mid = Math.floor((lo + hi) / 2);
      setHeaderCap(mid);
      if (fitsIn(config, vars, saved)) hi = mid;
      else lo = mid + 1;
    }
  } finally {
    setHeaderCap();
  }
  return lo;
}

/** Gradients of ones for `vars`, in their order. */
function ones(vars: readonly tf.Variable[]): tf.NamedTensorMap {
  return Object.fromEntries(vars.map((v) => [v.name, tf.onesLike(v)]));
}

/** Steps `opt` with gradients of ones over `vars` (`calls` calls: one step under accumulation). */
function stepOver(opt: TfOptimizer, vars: readonly tf.Variable[], calls: number): void {
  for (let i = 0; i < calls; i++) {
    const grads = ones(vars);
    try {
      opt.applyGradients(grads);
    } finally {
      tf.dispose(Object.values(grads));
    }
  }
}

const CASES: [string, TfOptimizerOptions, SavedExtras][] = [
  ["ema", { ema: true }, { steps: 1, averages: true }],
  ["accumulation", { gradientAccumulationSteps: 2 }, { steps: 2, averages: false }],
];

for (const [what, options, saved] of CASES) {
  Deno.test(`tfjs: after setLearningRate, a step over the state's variables in another order is checked against the cap in the state's order (${what})`, async () => {
    await useBackend("cpu");
    const calls = saved.steps;
    const small = Array.from(
      { length: 20 },
      (_, i) => tf.variable(tf.scalar(1), true, named(`s${i}`)),
    );
    const big = tf.variable(tf.ones([300_000]), true, named("big"));
    const inOrder = [...small, big], reversed = [big, ...small];
    const config = radam({ lr: 0.25 }).settings as Settings;
    // Just fits in the state's order at the new rate; in the other order, the offsets' digits
    // take the header past the cap.
    const cap = lowestCap(config, inOrder, saved);
    assert.ok(lowestCap(config, reversed, saved) > cap);
    setHeaderCap(cap);
    const twins = inOrder.map((v) => tf.variable(v, true, named("twin")));
    try {
      const opt = tfOptimizer(radam({ lr: 0.5 }), options);
      stepOver(opt, inOrder, calls);
      const order = stateInternals(opt.state!).order;
      opt.setLearningRate(0.25); // (its checkpoint in the state's order: fits)
      stepOver(opt, reversed, calls); // (before the fix: refused, planned in the order given)
      assert.equal(opt.iterations, 2);
      assert.deepEqual(stateInternals(opt.state!).order, order);
      await saveState(opt.state!); // (it fits)
      // As a run whose rate was always so, stepped in the order given (its names others: uncapped).
      setHeaderCap();
      const ref = tfOptimizer(radam({ lr: (t) => t === 1 ? 0.5 : 0.25 }), options);
      stepOver(ref, twins, calls);
      stepOver(ref, [twins[twins.length - 1], ...twins.slice(0, -1)], calls);
      for (const [i, v] of inOrder.entries()) {
        assert.deepEqual(await v.data(), await twins[i].data(), v.name);
      }
      opt.dispose();
      ref.dispose();
    } finally {
      setHeaderCap();
      tf.dispose([...inOrder, ...twins]);
    }
  });
}

for (const [what, options, saved] of CASES) {
  Deno.test(`tfjs: a state made again in the order given, as tfjs moved onto its wasm backend, is refused where its checkpoint in that order would pass the cap (${what})`, async () => {
    await useBackend("cpu");
    const calls = saved.steps;
    const small = Array.from(
      { length: 20 },
      (_, i) => tf.variable(tf.scalar(1), true, named(`s${i}`)),
    );
    const big = tf.variable(tf.ones([300_000]), true, named("big"));
    const inOrder = [...small, big], reversed = [big, ...small];
    const config = radam({ lr: 0.5 }).settings as Settings;
    const cap = lowestCap(config, inOrder, saved);
    assert.ok(lowestCap(config, reversed, saved) > cap);
    setHeaderCap(cap);
    try {
      const opt = tfOptimizer(radam({ lr: 0.5 }), options);
      stepOver(opt, inOrder, calls);
      const state = opt.state, values = await Promise.all(inOrder.map((v) => v.data()));
      await useBackend("wasm");
      // (Before the fix: taken, and its checkpoint could not be saved.)
      for (let i = 0; i < calls - 1; i++) stepOver(opt, reversed, 1);
      assert.throws(() => stepOver(opt, reversed, 1), (e: Error) => {
        assert.ok(e instanceof RangeError, String(e));
        assert.match(e.message, new RegExp(`above the cap of ${cap} `));
        return true;
      });
      assert.equal(opt.iterations, 1);
      assert.equal(opt.state, state);
      for (const [i, v] of inOrder.entries()) assert.deepEqual(await v.data(), values[i]);
      if (calls === 1) { // (the sums' order, first seen, is kept)
        // In the state's own order: moved, stepped, saved.
        stepOver(opt, inOrder, 1);
        assert.equal(opt.iterations, 2);
        assert.equal(opt.state!.backend, "wasm");
        await saveState(opt.state!);
      }
      opt.dispose();
    } finally {
      setHeaderCap();
      tf.dispose(inOrder);
      await useBackend("cpu");
    }
  });
}
