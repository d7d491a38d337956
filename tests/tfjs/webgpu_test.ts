/**
 * The TensorFlow.js adapter on tfjs's webgpu backend (Mesa's llvmpipe in CI): the library's
 * WebGPU state on tfjs's own device, no CPU readback per step, model.fit on a dense and a conv
 * net, Adam parity with tf.train.adam, tfjs-layout centralization, no leaks.
 *
 * Without a WebGPU adapter these tests fail, unless RADAM_NO_GPU=1 says the machine has none.
 */
import "@tensorflow/tfjs-backend-webgpu";
import assert from "node:assert/strict";
import { adam, ranger, readMoments, saveState } from "../../mod.ts";
import { type SettingsHolder, type TfOptimizer, tfOptimizer } from "../../tfjs.ts";
import {
  checkReadDuringReplace,
  convNet,
  countReadbacks,
  data,
  denseNet,
  disposeModels,
  fitInOrder,
  randoms,
  saveToMemory,
  tf,
  useBackend,
  webgpuTestOptions,
  weightValues,
} from "./helpers.ts";

const sanitize = await webgpuTestOptions();

/** A tfjs tensor whose data is in a GPU buffer (tfjs's copy of one written here). */
function gpuTensor(values: Float32Array, shape: number[]): tf.Tensor {
  const device = (tf.backend() as unknown as { device: GPUDevice }).device;
  const buffer = device.createBuffer({
    size: Math.ceil(values.byteLength / 16) * 16,
    usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST,
  });
  device.queue.writeBuffer(buffer, 0, values as Float32Array<ArrayBuffer>);
  const t = tf.tensor({ buffer, zeroCopy: false }, shape, "float32");
  buffer.destroy();
  return t;
}

Deno.test({
  name:
    "tfjs webgpu: adam through model.fit matches tf.train.adam, on the GPU, no readback per step",
  ...sanitize,
  async fn() {
    await useBackend("webgpu");
    const ours = denseNet(31), theirs = denseNet(31);
    const optimizer = tfOptimizer(adam({ lr: 1e-2, eps: 1e-7 }));
    ours.compile({ optimizer, loss: "meanSquaredError" });
    theirs.compile({ optimizer: tf.train.adam(1e-2), loss: "meanSquaredError" });
    const { x, y } = data([6], 32, 5);
    const fit = { epochs: 1, batchSize: 8, shuffle: false, verbose: 0 as const };
    await ours.fit(x, y, fit);
    await theirs.fit(x, y, fit);
    const readbacks = await countReadbacks(async () => {
      await ours.fit(x, y, { ...fit, epochs: 10 });
    });
    assert.equal(optimizer.backend, "webgpu");
    const tfjsReadbacks = await countReadbacks(async () => {
      await theirs.fit(x, y, { ...fit, epochs: 10 });
    });
    // model.fit itself reads the loss back (for its logs); the optimizer adds nothing to that.
    assert.equal(readbacks, tfjsReadbacks, `${readbacks} readbacks in 40 steps`);
    assert.ok(readbacks <= 10, `${readbacks} readbacks in 40 steps`);
    const a = await weightValues(ours), b = await weightValues(theirs);
    a.forEach((w, i) => {
      for (let j = 0; j < w.length; j++) {
        assert.ok(Math.abs(w[j] - b[i][j]) <= 1e-4, `weight ${i}[${j}]: ${w[j]} vs ${b[i][j]}`);
      }
    });
    assert.equal(optimizer.iterations, 44);
    tf.dispose([x, y]);
    ours.dispose();
    theirs.dispose();
    optimizer.dispose();
  },
});

Deno.test({
  name:
    "tfjs webgpu: 1000 steps read nothing back and leak nothing; centralization per output unit; under strict a changed variable set is refused",
  ...sanitize,
  async fn() {
    await useBackend("webgpu");
    const shapes = { "gpu/conv/kernel": [3, 3, 2, 4], "gpu/conv/bias": [4] };
    const names = Object.keys(shapes) as (keyof typeof shapes)[];
    const sizes = names.map((n) => shapes[n].reduce((a, b) => a * b));
    const vars = names.map((n, i) =>
      tf.variable(tf.tensor(randoms(sizes[i], 1 + i), shapes[n]), true, n)
    );
    const optimizer = tfOptimizer(ranger({ lr: 1e-3 }), { strict: true });
    // Gradients on the GPU, as a backward pass leaves them (tfjs keeps small tensors made from
    // host values on the CPU until a kernel needs them).
    const grads = names.map((n, i) => gpuTensor(randoms(sizes[i], 9 + i), shapes[n]));
    const apply = () =>
      optimizer.applyGradients(Object.fromEntries(names.map((n, i) => [n, grads[i]])));
    for (let i = 0; i < 10; i++) apply();
    assert.equal(optimizer.backend, "webgpu");
    const after10 = tf.memory().numTensors;
    assert.equal(
      await countReadbacks(() => {
        for (let i = 0; i < 990; i++) apply();
      }),
      0,
    );
    assert.equal(tf.memory().numTensors, after10);
    // Under strict, a step without one of the variables is refused, naming it, and changes
    // nothing (webgpu_set_change_test.ts: without strict, the state of the others goes on).
    const before = await Promise.all(vars.map(async (v) => (await v.data()).slice()));
    assert.throws(() => optimizer.applyGradients({ [names[0]]: grads[0] }), (e: Error) => {
      assert.ok(e instanceof RangeError, String(e));
      assert.ok(e.message.includes(JSON.stringify(names[1])), e.message);
      return true;
    });
    const after = await Promise.all(vars.map(async (v) => (await v.data()).slice()));
    assert.deepEqual(after, before);
    // exp_avg after 1000 steps of the same gradient: (1 − 0.95^1000) · centralized g, per column.
    const weights = await optimizer.getWeights();
    const m = weights.find((w) => w.name === "gpu/conv/kernel/m")!.tensor.dataSync();
    const g = randoms(sizes[0], 9), cols = 4, rows = sizes[0] / cols;
    const scale = 1 - 0.95 ** 1000;
    for (let c = 0; c < cols; c++) {
      let mean = 0;
      for (let r = 0; r < rows; r++) mean += g[r * cols + c];
      mean /= rows;
      for (let r = 0; r < rows; r++) {
        const want = scale * (g[r * cols + c] - mean);
        assert.ok(
          Math.abs(m[r * cols + c] - want) < 1e-5,
          `m[${r}, ${c}] ${m[r * cols + c]} vs ${want}`,
        );
      }
    }
    const mb = weights.find((w) => w.name === "gpu/conv/bias/m")!.tensor.dataSync();
    const gb = randoms(4, 10);
    for (let j = 0; j < 4; j++) assert.ok(Math.abs(mb[j] - scale * gb[j]) < 1e-5);
    tf.dispose([...grads, ...weights.map((w) => w.tensor), ...vars]);
    optimizer.dispose();
  },
});

Deno.test({
  name: "tfjs webgpu: model.fit trains a conv net with ranger",
  ...sanitize,
  async fn() {
    await useBackend("webgpu");
    const model = convNet(5);
    const optimizer = tfOptimizer(ranger({ lr: 3e-2 }));
    model.compile({ optimizer, loss: "meanSquaredError" });
    const { x, y } = data([6, 6, 2], 32, 9);
    const first = await model.fit(x, y, { epochs: 1, batchSize: 16, verbose: 0 });
    const h = await model.fit(x, y, { epochs: 40, batchSize: 16, verbose: 0 });
    assert.equal(optimizer.backend, "webgpu");
    const loss = h.history.loss as number[];
    const start = (first.history.loss as number[])[0];
    assert.ok(loss[loss.length - 1] < 0.9 * start, `${start} -> ${loss.at(-1)}`);
    tf.dispose([x, y]);
    model.dispose();
    optimizer.dispose();
  },
});

Deno.test({
  name: "tfjs webgpu: model.save with includeOptimizer, loadLayersModel, train on ≈ N + M steps",
  ...sanitize,
  async fn() {
    await useBackend("webgpu");
    const { tfl } = await import("./helpers.ts");
    const whole = denseNet(41), first = denseNet(41);
    whole.compile({ optimizer: tfOptimizer(ranger({ lr: 1e-2 })), loss: "meanSquaredError" });
    first.compile({ optimizer: tfOptimizer(ranger({ lr: 1e-2 })), loss: "meanSquaredError" });
    const { x, y } = data([6], 16, 3);
    await whole.fit(x, y, fitInOrder(5));
    await first.fit(x, y, fitInOrder(3));
    const saved = await saveToMemory(first);
    const loaded = await tfl.loadLayersModel(tf.io.fromMemory(saved));
    assert.equal(loaded.optimizer.iterations, 12);
    await loaded.fit(x, y, fitInOrder(2));
    const a = await weightValues(whole), b = await weightValues(loaded);
    a.forEach((w, i) => {
      for (let j = 0; j < w.length; j++) {
        assert.ok(Math.abs(w[j] - b[i][j]) <= 1e-5, `weight ${i}[${j}]: ${b[i][j]} vs ${w[j]}`);
      }
    });
    tf.dispose([x, y]);
    disposeModels(whole, first, loaded);
  },
});

Deno.test({
  name: "tfjs webgpu: model.save with includeOptimizer, saved again and again, leaks no state",
  ...sanitize,
  async fn() {
    await useBackend("webgpu");
    const model = denseNet(43);
    const optimizer = tfOptimizer(ranger({ lr: 1e-2 }));
    model.compile({ optimizer, loss: "meanSquaredError" });
    const { x, y } = data([6], 16, 5);
    await model.fit(x, y, fitInOrder(1));
    assert.equal(optimizer.backend, "webgpu");
    // The optimizer owns what getWeights gives (tfjs-layers never disposes it): one set held.
    await saveToMemory(model);
    const after1 = tf.memory().numTensors;
    for (let i = 0; i < 5; i++) {
      await saveToMemory(model);
      assert.equal(tf.memory().numTensors, after1, `save ${i + 2}`);
    }
    const weights = await optimizer.getWeights();
    optimizer.dispose();
    assert.ok(weights.every((w) => w.tensor.isDisposed), "disposed with the optimizer");
    assert.equal(tf.memory().numTensors, after1 - weights.length);
    tf.dispose([x, y]);
    model.dispose();
  },
});

/**
 * Variables of `sizes` stepped 6 times by an optimizer of `make` on tfjs backend `backend`, each
 * assigned new values (as `model.setWeights` does) before the 4th step: their values after.
 */
async function assignedMidway(
  backend: string,
  make: () => SettingsHolder,
  sizes: number[],
): Promise<Float32Array[]> {
  await useBackend(backend);
  const vars = sizes.map((n, i) =>
    tf.variable(tf.tensor1d(randoms(n, 1 + i)), true, `gpu/assigned/${backend}/${i}`)
  );
  const optimizer = tfOptimizer(make());
  for (let t = 0; t < 6; t++) {
    if (t === 3) {
      const values = sizes.map((n, i) => tf.tensor1d(randoms(n, 50 + i)));
      vars.forEach((v, i) => v.assign(values[i]));
      tf.dispose(values);
    }
    const grads = sizes.map((n, i) => tf.tensor1d(randoms(n, 100 + 10 * t + i)));
    optimizer.applyGradients(Object.fromEntries(vars.map((v, i) => [v.name, grads[i]])));
    tf.dispose(grads);
  }
  assert.equal(optimizer.backend, backend === "webgpu" ? "webgpu" : "wasm");
  const out = await Promise.all(vars.map(async (v) => (await v.data() as Float32Array).slice()));
  optimizer.dispose();
  tf.dispose(vars);
  return out;
}

Deno.test({
  name: "tfjs webgpu: a variable assigned between steps (setWeights) is stepped from its new value",
  ...sanitize,
  async fn() {
    // Lengths that are a multiple of 4 and not (the kernel moves whole vec4s); 8 bits too.
    const cases: [() => SettingsHolder, number[]][] = [
      [() => adam({ lr: 0.1 }), [5, 8, 3]],
      [() => ranger({ lr: 1e-2, k: 2, states: "8bit" }), [4099, 7]],
    ];
    for (const [make, sizes] of cases) {
      const want = await assignedMidway("cpu", make, sizes);
      const got = await assignedMidway("webgpu", make, sizes);
      want.forEach((w, i) => {
        for (let j = 0; j < w.length; j++) {
          assert.ok(
            Math.abs(got[i][j] - w[j]) <= 1e-5,
            `variable ${i}[${j}]: ${got[i][j]} vs ${w[j]}`,
          );
        }
      });
    }
  },
});

Deno.test({
  name: "tfjs webgpu: the same variables in another order are those of the state, as on cpu",
  ...sanitize,
  async fn() {
    const run = async (backend: string, strict: boolean, reorder: boolean) => {
      await useBackend(backend);
      const vars = [3, 5].map((n, i) =>
        tf.variable(tf.tensor(randoms(n, i)), true, `gpu/order/${backend}${strict}${reorder}/${i}`)
      );
      const opt = tfOptimizer(adam({ lr: 0.1 }), { strict });
      for (let t = 0; t < 3; t++) {
        const g = vars.map((v, i) => tf.tensor(randoms(v.size, 9 + i + t)));
        const named = vars.map((v, i) => ({ name: v.name, tensor: g[i] }));
        // Refused before with a RangeError saying the variable was not among those of the first.
        opt.applyGradients(reorder && t > 0 ? named.reverse() : named);
        tf.dispose(g);
      }
      const out = await Promise.all(vars.map(async (v) => Array.from(await v.data())));
      opt.dispose();
      tf.dispose(vars);
      return out;
    };
    const want = await run("cpu", false, false);
    for (const strict of [false, true]) assert.deepEqual(await run("webgpu", strict, true), want);
  },
});

Deno.test({
  name:
    "tfjs webgpu: setLearningRate once the state is on the GPU is refused at the call; training goes on unchanged",
  ...sanitize,
  async fn() {
    await useBackend("webgpu");
    const vars = [0, 1].map((i) => tf.variable(tf.tensor1d(randoms(6, 70)), true, `gpu/lr/${i}`));
    const [opt, twin] = [tfOptimizer(adam({ lr: 0.1 })), tfOptimizer(adam({ lr: 0.1 }))];
    const stepBoth = (t: number) => {
      const g = tf.tensor1d(randoms(6, 80 + t));
      opt.applyGradients({ [vars[0].name]: g });
      twin.applyGradients({ [vars[1].name]: g });
      g.dispose();
    };
    stepBoth(0);
    assert.throws(() => opt.setLearningRate(0.01), (e: Error) => {
      assert.ok(e instanceof TypeError, String(e));
      assert.match(e.message, /^setLearningRate on the webgpu backend takes effect in a new/);
      return true;
    });
    assert.equal(opt.settings.hyperparameters.lr, 0.1);
    assert.equal(opt.getConfig().settings.hyperparameters.lr, 0.1);
    for (let t = 1; t < 4; t++) stepBoth(t);
    assert.equal(opt.iterations, 4);
    assert.deepEqual(await vars[0].data(), await vars[1].data());
    opt.dispose();
    twin.dispose();
    tf.dispose(vars);
  },
});

/**
 * Variables of shapes [3, 5], [5], [4099], [64, 65] stepped 6 times by optimizers of `make`: the
 * first 3 steps on webgpu by one, the others (on tfjs backend `then`) by a new one given its
 * state by `carry` (none: the same one). Their values after.
 */
async function carriedOver(
  tag: string,
  make: () => SettingsHolder,
  carry?: (from: TfOptimizer, to: TfOptimizer) => Promise<void>,
  then = "webgpu",
): Promise<Float32Array[]> {
  await useBackend("webgpu");
  const shapes = [[3, 5], [5], [4099], [64, 65]];
  const vars = shapes.map((s, i) =>
    tf.variable(tf.tensor(randoms(s.reduce((a, b) => a * b), 90 + i), s), true, `${tag}/${i}`)
  );
  let optimizer = tfOptimizer(make());
  for (let t = 0; t < 6; t++) {
    if (t === 3 && then !== "webgpu") {
      // (tfjs would move the variables with a synchronous read, which Deno's webgpu lacks.)
      const values = await Promise.all(vars.map((v) => v.data()));
      await useBackend(then);
      const moved = vars.map((v, i) => tf.tensor(values[i], v.shape));
      vars.forEach((v, i) => v.assign(moved[i]));
      tf.dispose(moved);
    }
    if (t === 3 && carry !== undefined) {
      const next = tfOptimizer(make());
      await carry(optimizer, next);
      optimizer.dispose();
      optimizer = next;
    }
    const grads = vars.map((v, i) => tf.tensor(randoms(v.size, 200 + 10 * t + i), v.shape));
    optimizer.applyGradients(Object.fromEntries(vars.map((v, i) => [v.name, grads[i]])));
    tf.dispose(grads);
  }
  assert.equal(optimizer.backend, then === "webgpu" ? "webgpu" : "wasm");
  const out = await Promise.all(vars.map(async (v) => (await v.data() as Float32Array).slice()));
  optimizer.dispose();
  tf.dispose(vars);
  return out;
}

/** `to` takes the state of `from` through a library checkpoint. */
async function throughCheckpoint(from: TfOptimizer, to: TfOptimizer): Promise<void> {
  await to.loadState(await saveState(from.state!));
}

Deno.test({
  name:
    "tfjs webgpu: saveState(optimizer.state) → optimizer.loadState(bytes) and getWeights → setWeights resume bit for bit, rank-2 variables (kernels under gc, 8 bits) included",
  ...sanitize,
  async fn() {
    const makers = [
      () => adam({ lr: 0.05 }),
      () => ranger({ lr: 1e-2, k: 2 }),
      () => ranger({ lr: 1e-2, k: 2, states: "8bit" }),
    ];
    for (const [n, make] of makers.entries()) {
      const whole = await carriedOver(`gpu/carry/whole${n}`, make);
      const resumed = await carriedOver(`gpu/carry/state${n}`, make, throughCheckpoint);
      whole.forEach((w, i) => assert.deepEqual(resumed[i], w, `optimizer ${n}, variable ${i}`));
      // And through getWeights/setWeights (8-bit kernels under gc as codes in the tfjs order).
      const byWeights = await carriedOver(`gpu/carry/weights${n}`, make, async (from, to) => {
        const weights = await from.getWeights();
        await to.setWeights(weights);
        tf.dispose(weights.map((w) => w.tensor));
      });
      whole.forEach((w, i) => assert.deepEqual(byWeights[i], w, `optimizer ${n}, variable ${i}`));
    }
  },
});

Deno.test({
  name:
    "tfjs webgpu: a checkpoint of a Ranger state on webgpu (kernels in the tfjs layout) resumes on cpu as its weights do",
  ...sanitize,
  async fn() {
    const make = () => ranger({ lr: 1e-2, k: 2 });
    const byWeights = await carriedOver("gpu/tocpu/weights", make, async (from, to) => {
      const weights = await from.getWeights();
      await to.setWeights(weights);
      tf.dispose(weights.map((w) => w.tensor));
    }, "cpu");
    const byCheckpoint = await carriedOver("gpu/tocpu/state", make, async (from, to) => {
      await throughCheckpoint(from, to);
      // Its weights are in the tfjs layout too, before the first step.
      const weights = await to.getWeights();
      const kernel = weights.find((w) => w.name === "gpu/tocpu/state/0/m")!;
      assert.deepEqual(kernel.tensor.shape, [3, 5]);
      tf.dispose(weights.map((w) => w.tensor));
    }, "cpu");
    byWeights.forEach((w, i) => assert.deepEqual(byCheckpoint[i], w, `variable ${i}`));
  },
});

Deno.test({
  name:
    "tfjs webgpu: the weights and checkpoint of an 8-bit Ranger state (kernels in the tfjs order) give a CPU optimizer its moments",
  ...sanitize,
  async fn() {
    await useBackend("webgpu");
    const [rows, cols] = [64, 65]; // 4160 elements: held in 8 bits
    const v = tf.variable(tf.tensor(randoms(rows * cols, 3), [rows, cols]), true, "gpu/q8/k");
    const make = () => ranger({ lr: 1e-2, states: "8bit" });
    const gpu = tfOptimizer(make());
    for (let t = 0; t < 3; t++) {
      const g = tf.tensor(randoms(rows * cols, 10 + t), [rows, cols]);
      gpu.applyGradients({ [v.name]: g });
      g.dispose();
    }
    const want = (await readMoments(gpu.state!)).exp_avg[v.name]; // the tfjs order
    const weights = await gpu.getWeights();
    const bytes = await saveState(gpu.state!);
    const given = await Promise.all(
      weights.map(async (w) => ({ ...w, values: await w.tensor.data(), shape: w.tensor.shape })),
    );
    const values = await v.data();
    await useBackend("cpu");
    const moved = tf.tensor(values, [rows, cols]);
    v.assign(moved);
    moved.dispose();
    const largest = want.reduce((a, x) => Math.max(a, Math.abs(x)), 0);
    const loaders: ((opt: TfOptimizer) => Promise<void>)[] = [
      (opt) =>
        opt.setWeights(
          given.map((w) => ({
            name: w.name,
            tensor: tf.tensor(w.values, w.shape, w.tensor.dtype),
          })),
        ),
      (opt) => opt.loadState(bytes),
    ];
    for (const [n, load] of loaders.entries()) {
      const cpu = tfOptimizer(make());
      await load(cpu);
      const g = tf.zeros([rows, cols]);
      cpu.applyGradients({ [v.name]: g }); // m ← β₁·m: the order shows
      g.dispose();
      // The CPU holds the kernel transposed; within 8-bit requantization of the GPU's m.
      const got = (await readMoments(cpu.state!)).exp_avg[v.name];
      for (let r = 0; r < rows; r++) {
        for (let c = 0; c < cols; c++) {
          const error = Math.abs(got[c * rows + r] - 0.95 * want[r * cols + c]);
          assert.ok(error <= largest / 32, `loader ${n}: m[${r}, ${c}] off by ${error}`);
        }
      }
      cpu.dispose();
    }
    tf.dispose([v, ...weights.map((w) => w.tensor)]);
    gpu.dispose();
  },
});

Deno.test({
  name:
    "tfjs webgpu: getWeights' iter does not count a step the device skipped (reported after the call); setWeights resumes from it",
  ...sanitize,
  async fn() {
    await useBackend("webgpu");
    for (const states of ["32bit", "8bit"] as const) {
      const vars = [[3, 5], [4099]].map((s, i) =>
        tf.variable(
          tf.tensor(randoms(s[0] * (s[1] ?? 1), 60 + i), s),
          true,
          `gpu/iter${states}/${i}`,
        )
      );
      const stepOf = (opt: TfOptimizer, seed: number, nan = false) => {
        const grads = vars.map((v, i) => {
          const values = randoms(v.size, seed + i);
          if (nan) values[3] = NaN;
          return tf.tensor(values, v.shape);
        });
        opt.applyGradients(Object.fromEntries(vars.map((v, i) => [v.name, grads[i]])));
        tf.dispose(grads);
      };
      const opt = tfOptimizer(adam({ lr: 0.05, states }), { warnOnSkip: false });
      // No await between the steps and getWeights: the device reports the skip after the call.
      stepOf(opt, 1);
      stepOf(opt, 2, true);
      stepOf(opt, 3);
      const weights = await opt.getWeights();
      assert.equal(weights[0].name, "iter");
      // It said 3 (the steps submitted), where 2 were taken.
      assert.deepEqual([...weights[0].tensor.dataSync()], [2], states);
      assert.equal(opt.iterations, 2, states);
      assert.equal(opt.skippedSteps, 1, states);
      const other = tfOptimizer(adam({ lr: 0.05, states }), { warnOnSkip: false });
      await other.setWeights(weights);
      assert.equal(other.iterations, 2, states);
      const values = await Promise.all(vars.map((v) => v.data()));
      stepOf(opt, 4);
      const once = await Promise.all(vars.map(async (v) => (await v.data()).slice()));
      vars.forEach((v, i) => v.assign(tf.tensor(values[i] as Float32Array, v.shape)));
      stepOf(other, 4);
      const twice = await Promise.all(vars.map(async (v) => (await v.data()).slice()));
      twice.forEach((w, i) => assert.deepEqual(w, once[i], `${states}: variable ${i}`));
      assert.equal(other.iterations, 3, states);
      opt.dispose();
      other.dispose();
      tf.dispose(vars);
    }
  },
});

Deno.test({
  name:
    "tfjs webgpu: a getWeights under way when setWeights or loadState replaces the state gives the state at its call",
  ...sanitize,
  async fn() {
    await useBackend("webgpu");
    const v = tf.variable(tf.tensor(randoms(4099, 5)), true, "gpu/replaced/w");
    const grad = tf.tensor(randoms(4099, 6));
    // It rejected with "OperationError: Buffer with 'radam readback' label has been destroyed".
    await checkReadDuringReplace(() => adam({ lr: 0.1, states: "8bit" }), v, grad);
    tf.dispose([v, grad]);
  },
});

Deno.test({
  name:
    "tfjs webgpu: a getWeights under way when the optimizer is disposed rejects with the TypeError of a disposed optimizer",
  ...sanitize,
  async fn() {
    await useBackend("webgpu");
    const v = tf.variable(tf.tensor(randoms(4099, 5)), true, "gpu/disposed/w");
    const grad = tf.tensor(randoms(4099, 6));
    for (const wait of [0, 2, 4, 8]) {
      const opt = tfOptimizer(adam({ lr: 0.1, states: "8bit" }));
      opt.applyGradients({ [v.name]: grad });
      await opt.getWeights(); // (the step counts settled)
      const tensors = tf.memory().numTensors;
      const pending = opt.getWeights();
      for (let i = 0; i < wait; i++) await null;
      opt.dispose();
      // It said "This optimizer state was disposed", or threw an OperationError.
      await assert.rejects(pending, {
        name: "TypeError",
        message: /^This TensorFlow.js optimizer was disposed/,
      }, `after ${wait} microtasks`);
      assert.ok(tf.memory().numTensors < tensors, "the set given last disposed, none made");
    }
    tf.dispose([v, grad]);
  },
});
