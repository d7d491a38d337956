/**
 * Option `gradientAccumulationSteps`: `setWeights` checks the sums it is given against the
 * variables (shape) and, under `nonFinite: "throw"`, their values, nothing changed on refusal;
 * under `"throw"` a call whose sum of finite gradients overflows is refused and adds nothing; a
 * call with no gradient is not one of the N; a loaded sum of a variable absent from the calls
 * after the resume steps it, as the run not resumed does; under `"throw"`, `getWeights`
 * mid-accumulation reads no sum on the CPU backends, where each call checked its sums (it read
 * them all back again, a needless read of every variable's size).
 */
import assert from "node:assert/strict";
import { adam } from "../../mod.ts";
import { type TfOptimizer, tfOptimizer } from "../../tfjs.ts";
import { CPU_BACKENDS, tf, uniqueNames, useBackend } from "./helpers.ts";

const named = uniqueNames("accumulate-checks");

/** An optimizer weight, as getWeights gives them. */
type NamedWeight = { name: string; tensor: tf.Tensor };

/** The accumulator's weights (count and sums) of `opt`, as names and values. */
async function sumsOf(opt: TfOptimizer): Promise<[string, number[]][]> {
  return (await opt.getWeights())
    .filter((w) => w.name === "accum_count" || w.name.endsWith("/accum"))
    .map((w) => [w.name, [...w.tensor.dataSync()]]);
}

/** Weights of step 0 with `count` calls summed into `sum` for variable `name`. */
function sumWeights(name: string, sum: tf.Tensor, count = 1): NamedWeight[] {
  return [
    { name: "iter", tensor: tf.scalar(0, "int32") },
    { name: "accum_count", tensor: tf.scalar(count, "int32") },
    { name: `${name}/accum`, tensor: sum },
  ];
}

/** `setWeights(weights)` rejects with a RangeError matching `pattern`, `opt` as it was. */
async function refused(opt: TfOptimizer, weights: NamedWeight[], pattern: RegExp) {
  const before = await sumsOf(opt);
  const tensors = tf.memory().numTensors;
  await assert.rejects(
    opt.setWeights(weights),
    (e) => e instanceof RangeError && pattern.test(e.message),
  );
  assert.equal(tf.memory().numTensors, tensors);
  assert.deepEqual(await sumsOf(opt), before);
  tf.dispose(weights.map((w) => w.tensor));
}

Deno.test("tfjs: setWeights refuses a sum of another shape than its variable, nothing changed", async () => {
  await useBackend("cpu");
  const w = tf.variable(tf.tensor1d([1, 2]), true, named("w"));
  const opt = tfOptimizer(adam({ lr: 0.1 }), { gradientAccumulationSteps: 3 });
  const g = tf.tensor1d([0.5, -1]);
  opt.applyGradients({ [w.name]: g });
  const name = JSON.stringify(`${w.name}/accum`).replace(/[/\\]/g, "\\$&");
  await refused(
    opt,
    sumWeights(w.name, tf.tensor1d([1, 2, 3])),
    new RegExp(`${name}.*\\[3\\].*\\[2\\]`),
  );
  // Under the base name of a loaded model's variable (`<name>_1`) too.
  await refused(opt, sumWeights(`${w.name}_1`, tf.zeros([2, 2])), /is of shape \[2, 2\].*is \[2\]/);
  assert.equal(opt.accumulatedBatches, 1);
  opt.applyGradients({ [w.name]: g });
  opt.applyGradients({ [w.name]: g });
  assert.equal(opt.iterations, 1);
  opt.dispose();
  tf.dispose([w, g]);
});

Deno.test("tfjs: setWeights refuses a non-finite sum under nonFinite throw, and takes it under skip", async () => {
  await useBackend("cpu");
  const w = tf.variable(tf.tensor1d([1, 2]), true, named("w"));
  const g = tf.tensor1d([0.5, -1]);
  const throwing = tfOptimizer(adam({ lr: 0.1, nonFinite: "throw" }), {
    gradientAccumulationSteps: 2,
  });
  for (const bad of [NaN, Infinity]) {
    await refused(throwing, sumWeights(w.name, tf.tensor1d([1, bad])), /\/accum"\[1\].*finite/);
  }
  assert.equal(throwing.accumulatedBatches, 0);
  throwing.applyGradients({ [w.name]: g });
  throwing.applyGradients({ [w.name]: g });
  assert.equal(throwing.iterations, 1);
  // Under "skip" the step it ends is skipped, as that of the run that summed it.
  const skipping = tfOptimizer(adam({ lr: 0.1 }), {
    gradientAccumulationSteps: 2,
    warnOnSkip: false,
  });
  const weights = sumWeights(w.name, tf.tensor1d([1, NaN]));
  await skipping.setWeights(weights);
  assert.equal(skipping.accumulatedBatches, 1);
  const before = [...w.dataSync()];
  skipping.applyGradients({ [w.name]: g });
  assert.equal(skipping.skippedSteps, 1);
  assert.deepEqual([...w.dataSync()], before);
  for (const o of [throwing, skipping]) o.dispose();
  tf.dispose([w, g, ...weights.map((x) => x.tensor)]);
});

for (const backend of CPU_BACKENDS) {
  Deno.test(`tfjs ${backend}: under nonFinite throw, a call whose sum overflows is refused and adds nothing`, async () => {
    await useBackend(backend);
    const w = tf.variable(tf.tensor1d([1, 2]), true, named("w"));
    const opt = tfOptimizer(adam({ lr: 0.1, nonFinite: "throw" }), {
      gradientAccumulationSteps: 3,
    });
    const big = tf.tensor1d([1, 3e38]), small = tf.tensor1d([0.5, -1]);
    opt.applyGradients({ [w.name]: big });
    const before = await sumsOf(opt);
    const tensors = tf.memory().numTensors;
    assert.throws(
      () => opt.applyGradients({ [w.name]: big }),
      (e) => e instanceof RangeError && /over 2 calls overflows float32 at index 1/.test(e.message),
    );
    assert.equal(tf.memory().numTensors, tensors);
    assert.deepEqual(await sumsOf(opt), before);
    // A non-finite gradient is named as such, not as an overflow.
    const nan = tf.tensor1d([NaN, 0]);
    assert.throws(() => opt.applyGradients({ [w.name]: nan }), /holds NaN at index 0/);
    // Training goes on: the next calls step (3e38 + 0.5 + 0.5 over 3 is finite).
    opt.applyGradients({ [w.name]: small });
    opt.applyGradients({ [w.name]: small });
    assert.equal(opt.iterations, 1);
    assert.equal(opt.accumulatedBatches, 0);
    opt.dispose();
    tf.dispose([w, big, small, nan]);
  });
}

Deno.test("tfjs: a call with no gradient (every one null) is not one of the N", async () => {
  await useBackend("cpu");
  const a = tf.variable(tf.tensor1d([1, 2]), true, named("a"));
  const b = tf.variable(tf.tensor1d([1, 2]), true, named("b"));
  const opt = tfOptimizer(adam({ lr: 0.1 }), { gradientAccumulationSteps: 2 });
  const plain = tfOptimizer(adam({ lr: 0.1 }));
  const g1 = tf.tensor1d([0.5, -1]), g2 = tf.tensor1d([0.25, 3]);
  // deno-lint-ignore no-explicit-any
  const none = { [a.name]: null } as any;
  opt.applyGradients(none);
  opt.applyGradients({});
  assert.equal(opt.accumulatedBatches, 0);
  opt.applyGradients({ [a.name]: g1 });
  opt.applyGradients(none);
  assert.equal(opt.accumulatedBatches, 1);
  assert.equal(opt.iterations, 0);
  opt.applyGradients({ [a.name]: g2 });
  assert.equal(opt.iterations, 1);
  const mean = tf.tidy(() => tf.div(tf.add(g1, g2), 2));
  plain.applyGradients({ [b.name]: mean });
  assert.deepEqual([...a.dataSync()], [...b.dataSync()]);
  for (const o of [opt, plain]) o.dispose();
  tf.dispose([a, b, g1, g2, mean]);
});

/** `a` and `b` after calls {a, b}, {a} and {a} of `opt` (N = 3), resumed after the second. */
async function absentAfterResume(resume: boolean, twin?: boolean): Promise<number[][]> {
  const a = tf.variable(tf.tensor1d([1, 2]), true, named("a"));
  const b = tf.variable(tf.tensor1d([3, 4]), true, named("b"));
  let opt = tfOptimizer(adam({ lr: 0.1 }), { gradientAccumulationSteps: 3 });
  const g = tf.tensor1d([0.5, -1]);
  opt.applyGradients({ [a.name]: g, [b.name]: g });
  opt.applyGradients({ [a.name]: g });
  // (Another variable of b's base name and shape: whose the sum is cannot be told.)
  const other = twin ? tf.variable(tf.zeros([2]), true, `${b.name}_1`) : undefined;
  if (resume) {
    const next = tfOptimizer(adam({ lr: 0.1 }), { gradientAccumulationSteps: 3 });
    await next.setWeights(await opt.getWeights());
    opt.dispose();
    opt = next;
  }
  opt.applyGradients({ [a.name]: g });
  const values = [[...a.dataSync()], [...b.dataSync()], [...other?.dataSync() ?? []]];
  opt.dispose();
  tf.dispose([a, b, g, ...other ? [other] : []]);
  return values;
}

Deno.test("tfjs: a loaded sum of a variable given no gradient after the resume steps it, as unresumed", async () => {
  await useBackend("cpu");
  const unresumed = await absentAfterResume(false);
  assert.notDeepEqual(unresumed[1], [3, 4]);
  assert.deepEqual(await absentAfterResume(true), unresumed);
  // Where two variables could be its own, it is dropped: b and its twin unchanged.
  const [, b, twin] = await absentAfterResume(true, true);
  assert.deepEqual([b, twin], [[3, 4], [0, 0]]);
});

for (const backend of CPU_BACKENDS) {
  Deno.test(`tfjs ${backend}: under nonFinite throw, getWeights mid-accumulation reads no sum (each call checked it), after a setWeights too`, async () => {
    await useBackend(backend);
    const w = tf.variable(tf.tensor1d([1, 2, 3]), true, named("w"));
    const opt = tfOptimizer(adam({ lr: 0.1, nonFinite: "throw" }), {
      gradientAccumulationSteps: 3,
    });
    const g = tf.tensor1d([0.5, -1, 2]);
    opt.applyGradients({ [w.name]: g });
    // Every read of a tensor's data while getWeights runs, by tensor.
    const read = new Set<tf.Tensor>();
    const { data, dataSync } = tf.Tensor.prototype;
    const proto = tf.Tensor.prototype as unknown as Record<string, unknown>;
    proto.data = function (this: tf.Tensor) {
      read.add(this);
      return data.call(this);
    };
    proto.dataSync = function (this: tf.Tensor) {
      read.add(this);
      return dataSync.call(this);
    };
    const sumsRead = async (o: TfOptimizer): Promise<string[]> => {
      read.clear();
      const weights = await o.getWeights();
      return weights.filter((x) => x.name.endsWith("/accum") && read.has(x.tensor))
        .map((x) => x.name);
    };
    try {
      assert.deepEqual(await sumsRead(opt), []);
      const next = tfOptimizer(adam({ lr: 0.1, nonFinite: "throw" }), {
        gradientAccumulationSteps: 3,
      });
      await next.setWeights(await opt.getWeights()); // (checked as they load)
      opt.dispose();
      assert.deepEqual(await sumsRead(next), []);
      next.applyGradients({ [w.name]: g });
      assert.equal(next.accumulatedBatches, 2);
      next.dispose();
    } finally {
      proto.data = data;
      proto.dataSync = dataSync;
    }
    tf.dispose([g, w]);
  });
}
