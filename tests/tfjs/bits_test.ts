/**
 * The TensorFlow.js adapter's steps give the core library's bits on tfjs's cpu and wasm backends:
 * RAdam through applyGradients (both input forms) with its moments as tfjs weights, Ranger's
 * gradient centralization in the tfjs layout (per output unit, the last axis), and option
 * `threads` moving to the workers with the same bits.
 */
import assert from "node:assert/strict";
import { radam, ranger, readMoments, readParams, readSlowWeights, step } from "../../mod.ts";
import { tfOptimizer } from "../../tfjs.ts";
import { CPU_BACKENDS, randoms, tf, transpose, uniqueNames, useBackend } from "./helpers.ts";

const name = uniqueNames("bits");

/**
 * Reference (float64): after one step of Ranger (β1 = 0.95), exp_avg = (1 − β1) · (g − the mean
 * over all axes but the last), and each output unit's centralized gradient sums to ~0.
 */
function assertCentralizedMoments(
  shapes: Record<string, number[]>,
  g: Float32Array[],
  m: (name: string) => ArrayLike<number>,
): void {
  const beta1 = 0.95;
  const names = Object.keys(shapes);
  const sizes = names.map((n) => shapes[n].reduce((a, b) => a * b));
  names.forEach((n, i) => {
    const shape = shapes[n];
    const cols = shape[shape.length - 1], rows = sizes[i] / cols;
    const got = m(n);
    for (let c = 0; c < cols; c++) {
      let mean = 0;
      for (let r = 0; r < rows; r++) mean += g[i][r * cols + c];
      mean = shape.length > 1 ? mean / rows : 0;
      for (let r = 0; r < rows; r++) {
        const want = (1 - beta1) * (g[i][r * cols + c] - mean);
        assert.ok(
          Math.abs(got[r * cols + c] - want) <= 1e-6 * (1 + Math.abs(want)),
          `${n}[${r}, ${c}]: ${got[r * cols + c]} vs ${want}`,
        );
      }
      // Each output unit's centralized gradient sums to ~0 over the other axes.
      if (shape.length > 1) {
        let sum = 0;
        for (let r = 0; r < rows; r++) sum += got[r * cols + c];
        assert.ok(Math.abs(sum) < 1e-5, `${n} column ${c} sums to ${sum}`);
      }
    }
  });
}

for (const backend of CPU_BACKENDS) {
  Deno.test(`tfjs ${backend}: radam through applyGradients gives the core library's bits`, async () => {
    await useBackend(backend);
    const shapes: Record<string, number[]> = { [name("k")]: [5, 3], [name("b")]: [3] };
    const names = Object.keys(shapes);
    const init = names.map((n, i) => randoms(shapes[n].reduce((a, b) => a * b), 7 + i));
    const vars = names.map((n, i) => tf.variable(tf.tensor(init[i], shapes[n]), true, n));
    const opt = tfOptimizer(radam({ lr: 0.05, weightDecay: 0.01 }));
    let state = await radam({ lr: 0.05, weightDecay: 0.01 }).init(
      Object.fromEntries(names.map((n, i) => [n, init[i].slice()])),
    );
    for (let t = 0; t < 12; t++) {
      const g = names.map((_, i) => randoms(init[i].length, 100 * t + i + 1));
      const tensors = names.map((n, i) => tf.tensor(g[i], shapes[n]));
      // Alternate the two input forms tfjs uses.
      if (t % 2 === 0) opt.applyGradients(Object.fromEntries(names.map((n, i) => [n, tensors[i]])));
      else opt.applyGradients(names.map((n, i) => ({ name: n, tensor: tensors[i] })));
      tf.dispose(tensors);
      state = step(state, Object.fromEntries(names.map((n, i) => [n, g[i]])));
    }
    const want = await readParams(state);
    names.forEach((n, i) => assert.deepEqual(vars[i].dataSync(), want[n], n));
    const moments = await readMoments(state);
    const weights = await opt.getWeights();
    assert.equal(weights[0].name, "iter");
    assert.equal(weights[0].tensor.dataSync()[0], 12);
    assert.deepEqual(weights.map((w) => w.name).slice(1), [
      ...names.map((n) => `${n}/m`),
      ...names.map((n) => `${n}/v`),
    ]);
    names.forEach((n, i) => {
      assert.deepEqual(weights[1 + i].tensor.dataSync(), moments.exp_avg[n]);
      assert.deepEqual(weights[1 + names.length + i].tensor.dataSync(), moments.exp_avg_sq[n]);
    });
    assert.equal(opt.iterations, 12);
    assert.equal(opt.backend, "wasm");
    tf.dispose(weights.map((w) => w.tensor));
    opt.dispose();
    tf.dispose(vars);
  });

  Deno.test(`tfjs ${backend}: ranger centralizes dense and conv2d kernels per output unit (last axis)`, async () => {
    await useBackend(backend);
    const dense = name("dense/kernel"), conv = name("conv/kernel"), bias = name("conv/bias");
    const shapes: Record<string, number[]> = { [dense]: [4, 3], [conv]: [3, 3, 2, 5], [bias]: [5] };
    const names = Object.keys(shapes);
    const sizes = names.map((n) => shapes[n].reduce((a, b) => a * b));
    const vars = names.map((n, i) =>
      tf.variable(tf.tensor(randoms(sizes[i], 3 + i), shapes[n]), true, n)
    );
    const options = { lr: 1e-2, k: 3 };
    const opt = tfOptimizer(ranger(options));
    const g = names.map((_, i) => randoms(sizes[i], 50 + i));
    const gt = names.map((n, i) => tf.tensor(g[i], shapes[n]));
    opt.applyGradients(Object.fromEntries(names.map((n, i) => [n, gt[i]])));
    // After one step: the moments of the centralized gradients, in the tfjs layout.
    const weights = await opt.getWeights();
    assertCentralizedMoments(
      shapes,
      g,
      (n) => weights.find((w) => w.name === `${n}/m`)!.tensor.dataSync(),
    );
    // And bit for bit what the core library's Ranger does for the same layers in PyTorch's
    // layout (output units first), over several steps.
    const rc = (n: string, i: number) => {
      const s = shapes[n];
      const cols = s[s.length - 1];
      return { rows: sizes[i] / cols, cols };
    };
    const init = names.map((_, i) => randoms(sizes[i], 3 + i));
    let state = await ranger(options).init(Object.fromEntries(names.map((n, i) => {
      if (shapes[n].length === 1) return [n, init[i]];
      const { rows, cols } = rc(n, i);
      return [n, { data: transpose(init[i], rows, cols), shape: [cols, rows] }];
    })));
    const asCore = (n: string, i: number, a: Float32Array) => {
      if (shapes[n].length === 1) return a.slice();
      const { rows, cols } = rc(n, i);
      return transpose(a, rows, cols);
    };
    state = step(state, Object.fromEntries(names.map((n, i) => [n, asCore(n, i, g[i])])));
    for (let t = 1; t < 7; t++) {
      const gs = names.map((_, i) => randoms(sizes[i], 1000 * t + i));
      const ts = names.map((n, i) => tf.tensor(gs[i], shapes[n]));
      opt.applyGradients(Object.fromEntries(names.map((n, i) => [n, ts[i]])));
      tf.dispose(ts);
      state = step(state, Object.fromEntries(names.map((n, i) => [n, asCore(n, i, gs[i])])));
    }
    const want = await readParams(state);
    const slow = await readSlowWeights(state);
    const last = await opt.getWeights();
    names.forEach((n, i) => {
      assert.deepEqual(asCore(n, i, vars[i].dataSync() as Float32Array), want[n], n);
      const s = last.find((w) => w.name === `${n}/slow`)!.tensor.dataSync() as Float32Array;
      assert.deepEqual(asCore(n, i, s), slow[n], `${n}/slow`);
    });
    tf.dispose([...gt, ...weights.map((w) => w.tensor), ...last.map((w) => w.tensor)]);
    opt.dispose();
    tf.dispose(vars);
  });
}

Deno.test("tfjs: option threads starts on one thread and moves to the workers, same bits", async () => {
  await useBackend("wasm");
  const shape = [64, 32];
  const init = randoms(64 * 32, 5);
  const a = tf.variable(tf.tensor(init, shape), true, name("threads/w"));
  const b = tf.variable(tf.tensor(init, shape), true, name("one/w"));
  const threaded = tfOptimizer(ranger({ lr: 1e-2, threads: 2, threadThreshold: 0 }));
  const single = tfOptimizer(ranger({ lr: 1e-2 }));
  try {
    for (let t = 0; t < 8; t++) {
      if (t === 3) await threaded.ready();
      const g = tf.tensor(randoms(init.length, 40 + t), shape);
      threaded.applyGradients({ [a.name]: g });
      single.applyGradients({ [b.name]: g });
      g.dispose();
      assert.equal(threaded.state!.threads, t < 3 ? 1 : 2, `step ${t + 1}`);
      assert.deepEqual(a.dataSync(), b.dataSync(), `step ${t + 1}`);
    }
  } finally {
    threaded.dispose();
    single.dispose();
    tf.dispose([a, b]);
  }
});

Deno.test("tfjs: a step refused under strict while the workers of option threads start leaves them starting: the state moves to them", async () => {
  await useBackend("wasm");
  const shape = [64, 32];
  const init = randoms(64 * 32, 6);
  const [a, b, c, d] = ["a", "b", "c", "d"].map((n, i) =>
    tf.variable(tf.tensor(init, shape), true, name(`strict_threads/${n}${i}`))
  );
  const threaded = tfOptimizer(ranger({ lr: 1e-2, threads: 2, threadThreshold: 0 }), {
    strict: true,
  });
  const single = tfOptimizer(ranger({ lr: 1e-2 }));
  try {
    for (let t = 0; t < 4; t++) {
      const g = tf.tensor(randoms(init.length, 60 + t), shape);
      if (t === 1) {
        // A variable left out: refused, nothing changed (the workers still starting).
        assert.throws(() => threaded.applyGradients({ [a.name]: g }), RangeError);
        await threaded.ready();
      }
      threaded.applyGradients({ [a.name]: g, [b.name]: g });
      single.applyGradients({ [c.name]: g, [d.name]: g });
      g.dispose();
      assert.equal(threaded.state!.threads, t < 1 ? 1 : 2, `step ${t + 1}`);
      assert.deepEqual(a.dataSync(), c.dataSync(), `step ${t + 1}`);
      assert.deepEqual(b.dataSync(), d.dataSync(), `step ${t + 1}`);
    }
  } finally {
    threaded.dispose();
    single.dispose();
    tf.dispose([a, b, c, d]);
  }
});
