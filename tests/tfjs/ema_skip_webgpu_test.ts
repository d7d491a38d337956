/**
 * Option `ema` on tfjs's webgpu backend follows the device's own decision of each step, with no
 * readback: where the device does not take a step whose gradients, as given, are all finite (the
 * gradient centralization `gc`, which runs in tfjs there, overflowing float32 where a value
 * minus its column's mean does), or where it halts
 * (`nonFinite: "throw"`: the step of a NaN gradient, and those submitted before the device
 * reports it; a state stopped for want of scalars), the averages stay as they were; where the
 * device and a check of the gradients agree (finite gradients whose norm overflows, clipped and
 * taken; accumulated ones whose mean overflows, skipped), the averages follow it too. The
 * reference is Keras's rule in float64 over the variables' values after each step the device
 * took (their values moved). A step the device did not take overwrites no variable with its
 * average (`overwriteFrequency`).
 *
 * Without a WebGPU adapter these tests fail, unless RADAM_NO_GPU=1 says the machine has none.
 */
import "@tensorflow/tfjs-backend-webgpu";
import assert from "node:assert/strict";
import { adam } from "../../mod.ts";
import { type TfOptimizer, tfOptimizer } from "../../tfjs.ts";
import {
  countReadbacks,
  onWebgpu,
  randoms,
  readAverages,
  readValues,
  seededVars,
  tf,
  uniqueNames,
  webgpuTestOptions,
} from "./helpers.ts";

const sanitize = await webgpuTestOptions();
const named = uniqueNames("ema_skip_webgpu");

/** Keras's moving averages in float64, over the values after each step taken. */
class Reference {
  #averages: Float64Array[] | undefined;
  #last: Float32Array[] | undefined;
  constructor(readonly momentum: number, readonly values: Float32Array[]) {
    this.#last = values;
  }
  /** After a call: where the variables moved, the step was taken. Whether it was. */
  after(values: Float32Array[]): boolean {
    const m = this.momentum;
    const moved = values.some((v, i) => v.some((x, k) => x !== this.#last![i][k]));
    this.#last = values;
    if (!moved) return false;
    this.#averages = this.#averages === undefined
      ? values.map((v) => Float64Array.from(v))
      : this.#averages.map((r, i) => r.map((a, k) => m * a + (1 - m) * values[i][k]));
    return true;
  }
  /** Asserts `got` are the averages, within float32 rounding. */
  check(got: Float32Array[]): void {
    const want = this.#averages!;
    assert.equal(got.length, want.length);
    got.forEach((g, i) =>
      g.forEach((x, k) => {
        const w = want[i][k];
        assert.ok(Math.abs(x - w) <= 1e-6 * (1 + Math.abs(w)), `[${i}][${k}]: ${x} vs ${w}`);
      })
    );
  }
}

/** A call of `opt` over `vars` with the gradients `grads(i, values)` gives variable i. */
function call(
  opt: TfOptimizer,
  vars: tf.Variable[],
  grads: (i: number, values: Float32Array) => void,
  seed: number,
): void {
  const tensors = vars.map((v, i) => {
    const values = randoms(v.size, seed * 7 + i);
    grads(i, values);
    return tf.tensor(values, v.shape);
  });
  try {
    opt.applyGradients(Object.fromEntries(vars.map((v, i) => [v.name, tensors[i]])));
  } finally {
    tf.dispose(tensors);
  }
}

const plain = () => {};

Deno.test({
  name: "tfjs webgpu: ema leaves a step the device skipped for gc's overflow, with finite grads",
  ...sanitize,
  fn: onWebgpu(async () => {
    const vars = seededVars(named, 3, 40);
    const opt = tfOptimizer(adam({ lr: 0.05, gc: true }), {
      ema: { momentum: 0.9 },
      warnOnSkip: false,
    });
    const ref = new Reference(0.9, await readValues(vars));
    for (let step = 1; step <= 3; step++) {
      call(opt, vars, plain, step);
      assert.ok(ref.after(await readValues(vars)));
    }
    // The kernel's column 0 3e38 but for its last row, −3e38: finite, and so is its mean over
    // the rows (2.85e38), but the last row minus it, which tfjs takes to centralize it,
    // overflows; the device then finds −Infinity and skips the step (the CPU backends, which
    // check the gradients before they centralize them, take it: gc_overflow_webgpu_test.ts).
    const big = (i: number, g: Float32Array) =>
      i === 0 && g.forEach((_, k) => k % 3 || (g[k] = k === g.length - 3 ? -3e38 : 3e38));
    assert.equal(countReadbacks(() => call(opt, vars, big, 4)), 0);
    assert.equal(ref.after(await readValues(vars)), false, "the device skipped it");
    ref.check(await readAverages(opt));
    call(opt, vars, plain, 5);
    assert.ok(ref.after(await readValues(vars)));
    ref.check(await readAverages(opt));
    opt.dispose();
    tf.dispose(vars);
  }),
});

Deno.test({
  name: "tfjs webgpu: under nonFinite throw, ema leaves the steps the device halted",
  ...sanitize,
  fn: onWebgpu(async () => {
    const vars = seededVars(named, 5, 40);
    const opt = tfOptimizer(adam({ lr: 0.05, nonFinite: "throw" }), { ema: { momentum: 0.9 } });
    const ref = new Reference(0.9, await readValues(vars));
    for (let step = 1; step <= 3; step++) {
      call(opt, vars, plain, step);
      assert.ok(ref.after(await readValues(vars)));
    }
    const nan = (i: number, g: Float32Array) => i === 0 && (g[0] = NaN);
    // Submitted at once: the device halts at the first, the second finds it halted; the host
    // learns of it later.
    assert.equal(countReadbacks(() => (call(opt, vars, nan, 4), call(opt, vars, plain, 5))), 0);
    assert.equal(ref.after(await readValues(vars)), false, "the device halted");
    await assert.rejects(opt.getWeights(), RangeError); // (the halt, said once)
    ref.check(await readAverages(opt));
    for (let step = 6; step <= 7; step++) {
      call(opt, vars, plain, step);
      assert.ok(ref.after(await readValues(vars)));
      ref.check(await readAverages(opt));
    }
    opt.dispose();
    tf.dispose(vars);
  }),
});

Deno.test({
  name: "tfjs webgpu: ema leaves the steps of a state the device stopped (no scalars left)",
  ...sanitize,
  fn: onWebgpu(async () => {
    const vars = seededVars(named, 7, 4);
    const opt = tfOptimizer(adam({ lr: 0.05 }), { ema: { momentum: 0.9 }, warnOnSkip: false });
    const ref = new Reference(0.9, await readValues(vars));
    for (let step = 1; step <= 2; step++) {
      call(opt, vars, plain, step);
      assert.ok(ref.after(await readValues(vars)));
    }
    // More steps skipped than the ring keeps scalars for, with no report between them: the
    // device stops at the next step, whose gradients are finite, and takes none after it.
    const grads = vars.map((v) => tf.fill(v.shape, NaN));
    const bad = Object.fromEntries(vars.map((v, i) => [v.name, grads[i]]));
    for (let k = 0; k < 1100; k++) opt.applyGradients(bad);
    tf.dispose(grads);
    call(opt, vars, plain, 3), call(opt, vars, plain, 4);
    assert.equal(ref.after(await readValues(vars)), false, "the device stopped");
    await assert.rejects(opt.getWeights(), /stopped at step 3/);
    ref.check(await readAverages(opt));
    opt.dispose();
    tf.dispose(vars);
  }),
});

Deno.test({
  name: "tfjs webgpu: ema as the device decided where both agree: clip overflow, accumulation",
  ...sanitize,
  fn: onWebgpu(async () => {
    const vars = seededVars(named, 9, 4);
    const opt = tfOptimizer(adam({ lr: 0.05, clipGradNorm: 1 }), {
      ema: { momentum: 0.9 },
      gradientAccumulationSteps: 2,
      warnOnSkip: false,
    });
    const ref = new Reference(0.9, await readValues(vars));
    const fill = (x: number) => (_: number, g: Float32Array) => g.fill(x);
    // Finite gradients whose norm overflows float32: clipped, taken. Then finite ones whose sum
    // overflows: the mean stepped holds Infinity, skipped.
    const steps = [plain, plain, fill(1e38), fill(3e38), plain];
    const taken = [true, true, true, false, true];
    for (const [k, grads] of steps.entries()) {
      call(opt, vars, grads, 2 * k + 1), call(opt, vars, grads, 2 * k + 2);
      assert.equal(ref.after(await readValues(vars)), taken[k], `step ${k + 1}`);
      ref.check(await readAverages(opt));
    }
    opt.dispose();
    tf.dispose(vars);
  }),
});

Deno.test({
  name: "tfjs webgpu: ema's overwrite leaves the variables at a step the device skipped",
  ...sanitize,
  fn: onWebgpu(async () => {
    const vars = seededVars(named, 11, 40);
    const opt = tfOptimizer(adam({ lr: 0.05 }), {
      ema: { momentum: 0.9, overwriteFrequency: 4 },
      warnOnSkip: false,
    });
    const ref = new Reference(0.9, await readValues(vars));
    for (let step = 1; step <= 3; step++) {
      call(opt, vars, plain, step);
      assert.ok(ref.after(await readValues(vars)));
    }
    // The 4th step submitted, skipped by the device: no step taken, so no overwrite either (as
    // on the CPU, where the count does not reach 4).
    const before = await readValues(vars);
    call(opt, vars, (i, g) => i === 0 && (g[0] = NaN), 4);
    assert.deepEqual(await readValues(vars), before, "the variables as they were");
    ref.check(await readAverages(opt));
    opt.dispose();
    tf.dispose(vars);
  }),
});
