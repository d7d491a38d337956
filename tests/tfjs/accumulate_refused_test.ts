/**
 * Option `gradientAccumulationSteps`: a refused call changes nothing, the N-th's included (its
 * sums and count as they were, no tensor left behind), and `setWeights` names a disposed sum,
 * and one given twice.
 */
import assert from "node:assert/strict";
import { adam } from "../../mod.ts";
import { type TfOptimizer, tfOptimizer } from "../../tfjs.ts";
import {
  CPU_BACKENDS,
  data,
  denseNet,
  disposeModels,
  fitInOrder,
  tf,
  uniqueNames,
  useBackend,
} from "./helpers.ts";

const named = uniqueNames("accumulate-refused");

/** The accumulator's weights (count and sums) of `opt`, as names and values. */
async function sumsOf(opt: TfOptimizer): Promise<[string, number[]][]> {
  return (await opt.getWeights())
    .filter((w) => w.name === "accum_count" || w.name.endsWith("/accum"))
    .map((w) => [w.name, [...w.tensor.dataSync()]]);
}

Deno.test("tfjs: an N-th call whose step is refused leaves the sums and count as they were", async () => {
  await useBackend("cpu");
  const w = tf.variable(tf.tensor1d([1, 2]), true, named("w"));
  // (Option backend "webgpu" while tfjs runs on cpu: the step throws, before anything changes.)
  const opt = tfOptimizer(adam({ lr: 0.1, backend: "webgpu" }), { gradientAccumulationSteps: 3 });
  const g = tf.tensor1d([0.5, -1]);
  opt.applyGradients({ [w.name]: g });
  opt.applyGradients({ [w.name]: g });
  const before = await sumsOf(opt);
  const tensors = tf.memory().numTensors;
  assert.throws(() => opt.applyGradients({ [w.name]: g }), /TensorFlow.js runs on "cpu"/);
  assert.equal(tf.memory().numTensors, tensors);
  assert.equal(opt.accumulatedBatches, 2);
  assert.deepEqual(await sumsOf(opt), before);
  assert.deepEqual([...w.dataSync()], [1, 2]);
  opt.dispose();
  tf.dispose([w, g]);
});

Deno.test("tfjs: setWeights names a disposed accumulated sum or count, nothing changed", async () => {
  await useBackend("cpu");
  const w = tf.variable(tf.tensor1d([1, 2]), true, named("w"));
  const opt = tfOptimizer(adam({ lr: 0.1 }), { gradientAccumulationSteps: 3 });
  const g = tf.tensor1d([0.5, -1]);
  opt.applyGradients({ [w.name]: g });
  for (const disposed of ["accum_count", `${w.name}/accum`]) {
    const weights = [
      { name: "iter", tensor: tf.scalar(0, "int32") },
      { name: "accum_count", tensor: tf.scalar(2, "int32") },
      { name: `${w.name}/accum`, tensor: tf.tensor1d([3, 4]) },
    ];
    weights.find((x) => x.name === disposed)!.tensor.dispose();
    const tensors = tf.memory().numTensors;
    await assert.rejects(
      opt.setWeights(weights),
      (e) => e instanceof TypeError && e.message.includes(JSON.stringify(disposed)),
    );
    assert.equal(tf.memory().numTensors, tensors);
    assert.equal(opt.accumulatedBatches, 1);
    tf.dispose(weights.map((x) => x.tensor));
  }
  assert.deepEqual(await sumsOf(opt), [["accum_count", [1]], [`${w.name}/accum`, [0.5, -1]]]);
  opt.dispose();
  tf.dispose([w, g]);
});

Deno.test("tfjs: setWeights refuses a count or sum given twice, or a count that is no tensor, nothing changed", async () => {
  await useBackend("cpu");
  const w = tf.variable(tf.tensor1d([1, 2]), true, named("w"));
  const opt = tfOptimizer(adam({ lr: 0.1 }), { gradientAccumulationSteps: 3 });
  const g = tf.tensor1d([0.5, -1]);
  opt.applyGradients({ [w.name]: g });
  const sum = () => ({ name: `${w.name}/accum`, tensor: tf.tensor1d([3, 4]) });
  const count = (n: number) => ({ name: "accum_count", tensor: tf.scalar(n, "int32") });
  const cases: [{ name: string; tensor: tf.Tensor }[], RegExp][] = [
    [[count(2), sum(), count(1)], /"accum_count" is given twice/],
    [[count(2), sum(), sum()], /\/accum" is given twice/],
    [
      [{ name: "accum_count", tensor: undefined as unknown as tf.Tensor }],
      /got undefined as the count/,
    ],
  ];
  for (const [given, pattern] of cases) {
    const weights = [{ name: "iter", tensor: tf.scalar(0, "int32") }, ...given];
    const tensors = tf.memory().numTensors;
    await assert.rejects(
      opt.setWeights(weights),
      (e) => e instanceof TypeError && pattern.test(e.message),
    );
    assert.equal(tf.memory().numTensors, tensors);
    tf.dispose(weights.map((x) => x.tensor).filter((t) => t !== undefined));
  }
  assert.equal(opt.iterations, 0);
  assert.deepEqual(await sumsOf(opt), [["accum_count", [1]], [`${w.name}/accum`, [0.5, -1]]]);
  opt.dispose();
  tf.dispose([w, g]);
});

for (const backend of CPU_BACKENDS) {
  Deno.test(`tfjs ${backend}: model.fit accumulating leaves no tensor behind; dispose frees the sums`, async () => {
    await useBackend(backend);
    const { x, y } = data([6], 12, 41); // 3 batches of 4, N = 2: epochs end mid-accumulation
    const model = denseNet(4);
    const optimizer = tfOptimizer(adam({ lr: 0.01 }), { gradientAccumulationSteps: 2 });
    model.compile({ optimizer, loss: "meanSquaredError" });
    await model.fit(x, y, fitInOrder(1));
    const tensors = tf.memory().numTensors;
    await model.fit(x, y, fitInOrder(2)); // 6 calls: the sums of one held before and after
    assert.equal(optimizer.accumulatedBatches, 1);
    assert.equal(tf.memory().numTensors, tensors);
    const sums = model.trainableWeights.length;
    optimizer.dispose();
    assert.equal(tf.memory().numTensors, tensors - sums);
    disposeModels(model);
    tf.dispose([x, y]);
  });
}

Deno.test("tfjs: an N-th call whose mean fails to be made leaves no tensor behind", async () => {
  await useBackend("cpu");
  const a = tf.variable(tf.tensor1d([1, 2]), true, named("a"));
  const b = tf.variable(tf.tensor1d([3, 4]), true, named("b"));
  const opt = tfOptimizer(adam({ lr: 0.1 }), { gradientAccumulationSteps: 2 });
  const g = tf.tensor1d([0.5, -1]);
  opt.applyGradients({ [a.name]: g, [b.name]: g });
  const before = await sumsOf(opt);
  const tensors = tf.memory().numTensors;
  // (tfjs's division fails at the second variable's mean, the first's made: a backend short of
  // memory.)
  const kernel = tf.getKernel("RealDiv", "cpu")!;
  let divisions = 0;
  tf.unregisterKernel("RealDiv", "cpu");
  tf.registerKernel({
    ...kernel,
    kernelFunc: (args) => {
      if (++divisions === 2) throw new Error("out of memory");
      return kernel.kernelFunc(args);
    },
  });
  try {
    assert.throws(() => opt.applyGradients({ [a.name]: g, [b.name]: g }), /out of memory/);
  } finally {
    tf.unregisterKernel("RealDiv", "cpu");
    tf.registerKernel(kernel);
  }
  assert.equal(tf.memory().numTensors, tensors);
  assert.equal(opt.accumulatedBatches, 1);
  assert.deepEqual(await sumsOf(opt), before);
  assert.deepEqual([...a.dataSync()], [1, 2]);
  opt.dispose();
  tf.dispose([a, b, g]);
});
