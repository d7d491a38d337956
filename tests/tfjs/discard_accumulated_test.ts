/**
 * `discardAccumulated()`: drops the gradients accumulated towards the next step (option
 * `gradientAccumulationSteps`), and only them: the moments, step count and averages stay, and the
 * next call is the first of a new N. Refused once disposed, and while the N-th call's step runs.
 */
import assert from "node:assert/strict";
import { adam, radam, saveState } from "../../mod.ts";
import { type TfOptimizer, tfOptimizer } from "../../tfjs.ts";
import { CPU_BACKENDS, optimizerSnapshot, tf, uniqueNames, useBackend } from "./helpers.ts";

const named = uniqueNames("discard_accumulated");
const STEPS = 3;

/** One call with gradients `k · (i + 1)` for the i-th variable. */
function call(opt: TfOptimizer, vars: readonly tf.Variable[], k: number): void {
  const grads = Object.fromEntries(vars.map((v, i) => [v.name, tf.fill(v.shape, k * (i + 1))]));
  try {
    opt.applyGradients(grads);
  } finally {
    tf.dispose(Object.values(grads));
  }
}

/** Two variables of `shape`. */
function variables(): tf.Variable[] {
  return [
    tf.variable(tf.fill([3], 1), true, named("a")),
    tf.variable(tf.fill([2], -2), true, named("b")),
  ];
}

/** What the snapshot holds but the sums and their count. */
function withoutSums(weights: (readonly [string, tf.TypedArray])[]) {
  return weights.filter(([name]) => !name.endsWith("/accum") && name !== "accum_count");
}

for (const backend of CPU_BACKENDS) {
  Deno.test(`tfjs ${backend}: discardAccumulated drops the sums only, and the next call starts a new N`, async () => {
    await useBackend(backend);
    const vars = variables();
    const twins = vars.map((v) => tf.variable(v, true, named("twin")));
    const opt = tfOptimizer(radam({ lr: 0.1 }), { gradientAccumulationSteps: STEPS, ema: true });
    const ref = tfOptimizer(radam({ lr: 0.1 }), { gradientAccumulationSteps: STEPS, ema: true });
    try {
      // One step, then two calls summed (which the reference never makes).
      for (let k = 1; k <= STEPS; k++) call(opt, vars, k), call(ref, twins, k);
      call(opt, vars, 7);
      call(opt, vars, 8);
      assert.equal(opt.accumulatedBatches, 2);
      const before = await optimizerSnapshot(opt);
      const values = await Promise.all(vars.map((v) => v.data()));
      assert.ok(before.weights.some(([name]) => name.endsWith("/accum")));

      assert.equal(opt.discardAccumulated(), 2);
      assert.equal(opt.accumulatedBatches, 0);
      const after = await optimizerSnapshot(opt);
      assert.equal(after.iterations, 1);
      assert.equal(after.skipped, before.skipped);
      assert.deepEqual(after.weights, withoutSums(before.weights)); // (moments, iter, averages)
      assert.ok(after.weights.some(([name]) => name.endsWith("/average")));
      assert.deepEqual(await Promise.all(vars.map((v) => v.data())), values);

      // The next call is the first of N: the step after N calls is the reference's, bit for bit.
      for (let k = 4; k <= 3 + STEPS; k++) {
        assert.equal(opt.iterations, 1);
        call(opt, vars, k);
        call(ref, twins, k);
      }
      assert.equal(opt.iterations, 2);
      assert.equal(opt.accumulatedBatches, 0);
      for (const [i, v] of vars.entries()) {
        assert.deepEqual(await v.data(), await twins[i].data(), v.name);
      }
      assert.deepEqual(
        (await optimizerSnapshot(opt)).weights.map(([, w]) => w),
        (await optimizerSnapshot(ref)).weights.map(([, w]) => w),
      );
      assert.equal(opt.discardAccumulated(), 0); // (nothing held: nothing dropped)
    } finally {
      opt.dispose();
      ref.dispose();
      tf.dispose([...vars, ...twins]);
    }
  });
}

Deno.test("tfjs: after discardAccumulated, a checkpoint of the state holds no sums", async () => {
  await useBackend("cpu");
  const vars = variables();
  const opt = tfOptimizer(adam({ lr: 0.1 }), { gradientAccumulationSteps: STEPS });
  try {
    call(opt, vars, 1); // (makes the state, so that the sums can be saved)
    const counts: number[] = [];
    for (const discard of [false, true]) {
      if (discard) opt.discardAccumulated();
      const next = tfOptimizer(adam({ lr: 0.1 }), { gradientAccumulationSteps: STEPS });
      try {
        await next.loadState(await saveState(opt.state!));
        counts.push(next.accumulatedBatches);
      } finally {
        next.dispose();
      }
    }
    assert.deepEqual(counts, [1, 0]);
  } finally {
    opt.dispose();
    tf.dispose(vars);
  }
});

Deno.test("tfjs: discardAccumulated without accumulation drops nothing and changes nothing", async () => {
  await useBackend("cpu");
  const vars = variables();
  const opt = tfOptimizer(adam({ lr: 0.1 }));
  try {
    call(opt, vars, 1);
    const before = await optimizerSnapshot(opt);
    assert.equal(opt.discardAccumulated(), 0);
    assert.deepEqual(await optimizerSnapshot(opt), before);
  } finally {
    opt.dispose();
    tf.dispose(vars);
  }
});

Deno.test("tfjs: discardAccumulated is a TypeError on a disposed optimizer", async () => {
  await useBackend("cpu");
  const opt = tfOptimizer(adam({ lr: 0.1 }), { gradientAccumulationSteps: STEPS });
  opt.dispose();
  assert.throws(() => opt.discardAccumulated(), { name: "TypeError", message: /disposed/ });
});

Deno.test("tfjs: discardAccumulated from the schedule of the N-th call's step is a TypeError, nothing dropped", async () => {
  await useBackend("cpu");
  const vars = variables();
  let discardIn = true;
  const schedule = (_t: number) => {
    if (discardIn) opt.discardAccumulated();
    return 0.1;
  };
  const opt = tfOptimizer(adam({ lr: schedule }), { gradientAccumulationSteps: STEPS });
  try {
    for (let k = 1; k < STEPS; k++) call(opt, vars, k);
    const before = await optimizerSnapshot(opt);
    assert.throws(() => call(opt, vars, STEPS), (error: Error) => {
      assert.ok(error instanceof TypeError, String(error));
      assert.match(error.message, /^discardAccumulated\(\) was called while the step/);
      assert.match(error.message, /nothing was dropped/);
      return true;
    });
    assert.equal(opt.accumulatedBatches, STEPS - 1);
    assert.deepEqual(await optimizerSnapshot(opt), before);
    discardIn = false;
    call(opt, vars, STEPS); // (the sums were kept: this call steps)
    assert.equal(opt.iterations, 1);
    assert.equal(opt.accumulatedBatches, 0);
  } finally {
    opt.dispose();
    tf.dispose(vars);
  }
});
