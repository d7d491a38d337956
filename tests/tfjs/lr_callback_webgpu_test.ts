/**
 * A TensorFlow.js user who lowers the learning rate in an epoch's callback
 * (`model.optimizer.learningRate = x`, as with tfjs's own optimizers) on tfjs's webgpu backend:
 * after the first step that is a TypeError (the device holds the next steps' scalars), which
 * said only to save and load the model; it says too that a schedule given from the start, or one
 * reading a variable, changes it during training, and that way works there.
 *
 * Without a WebGPU adapter these tests fail, unless RADAM_NO_GPU=1 says the machine has none.
 */
import "@tensorflow/tfjs-backend-webgpu";
import assert from "node:assert/strict";
import { adam, adamw, chain, cosineDecay, linearWarmup } from "../../mod.ts";
import { tfOptimizer } from "../../tfjs.ts";
import { tf, useBackend, webgpuTestOptions } from "./helpers.ts";

const sanitize = await webgpuTestOptions();

Deno.test({
  name:
    "tfjs webgpu: learningRate set after the first step says how to change it during training; a schedule reading a variable does",
  ...sanitize,
  async fn() {
    await useBackend("webgpu");
    const w = tf.variable(tf.tensor1d([1, -2, 3, 4, 5]), true, "lr_callback_webgpu/w");
    const g = tf.ones([5]);
    const fixed = tfOptimizer(adam({ lr: 0.01 }));
    fixed.applyGradients({ [w.name]: g });
    assert.throws(() => (fixed.learningRate = 0.001), {
      name: "TypeError",
      message:
        /to change it during training \(an epoch's callback\), give lr as a schedule from the start, tfOptimizer\(radam\(\{ lr: \(t\) => … \}\)\), or one reading a variable of yours, lr: \(\) => lr \(the GPU's steps read it up to 64 steps ahead\)$/,
    });
    fixed.dispose();
    // What it says: the variable set mid-run is read within 64 steps, and holds from then on.
    let lr = 0.01;
    const scheduled = tfOptimizer(adam({ lr: () => lr }));
    for (let t = 0; t < 3; t++) scheduled.applyGradients({ [w.name]: g });
    const early = await w.data();
    lr = 0;
    for (let t = 0; t < 65; t++) scheduled.applyGradients({ [w.name]: g });
    const settled = await w.data();
    assert.notDeepEqual(settled, early);
    for (let t = 0; t < 5; t++) scheduled.applyGradients({ [w.name]: g });
    assert.deepEqual(await w.data(), settled);
    assert.equal(scheduled.iterations, 73);
    scheduled.dispose();
    tf.dispose([w, g]);
  },
});

Deno.test({
  name:
    "tfjs webgpu: the first step after the variables trained change asks a schedule only for the steps whose scalars were not computed yet",
  ...sanitize,
  async fn() {
    await useBackend("webgpu");
    const a = tf.variable(tf.ones([64]), true, "lr_callback_webgpu/a");
    const b = tf.variable(tf.ones([3]), true, "lr_callback_webgpu/b");
    const [ga, gb] = [tf.onesLike(a), tf.onesLike(b)];
    const asked: number[] = [];
    const optimizer = tfOptimizer(adam({ lr: (t) => (asked.push(t), 1e-3) }));
    // Far more steps than the device reports on before the host goes on: every step since its
    // last report is one the device may be at when the next starts (some may be skipped).
    for (let t = 0; t < 1200; t++) optimizer.applyGradients({ [a.name]: ga });
    const before = asked.length;
    assert.deepEqual(new Set(asked).size, before, "each step's asked once");
    asked.length = 0;
    optimizer.applyGradients({ [a.name]: ga, [b.name]: gb }); // (b joins: a new state)
    // Only t = 1201 (its own, written again) and those ahead not yet written: never 1088.
    assert.ok(asked.length <= 64, `asked ${asked.length} times`);
    assert.ok(asked.every((t) => t >= 1201 && t < 1201 + 64), `asked for ${asked}`);
    await optimizer.getWeights();
    assert.equal(optimizer.iterations, 1201);
    optimizer.dispose();
    tf.dispose([a, b, ga, gb]);
  },
});

Deno.test({
  name:
    "tfjs webgpu: a change that drops the last parameter group takes the scalars of the steps the device may be at, with the results of a run that awaited before it",
  ...sanitize,
  async fn() {
    await useBackend("webgpu");
    const [ga, gb] = [tf.ones([16]), tf.ones([3])];
    /** The kernel after 1200 steps over both, a change leaving the bias out, and 30 more. */
    const run = async (awaited: boolean) => {
      const a = tf.variable(tf.ones([16]), true, `lr_callback_webgpu/k${awaited}`);
      const b = tf.variable(tf.ones([3]), true, `lr_callback_webgpu/k${awaited}_bias`);
      const asked: number[] = [];
      const optimizer = tfOptimizer(adam({
        lr: (t) => (asked.push(t), 1e-3 * (1 + (t % 7))),
        groups: [{ match: /bias$/, lrScale: 0.5 }],
      }));
      for (let t = 0; t < 1200; t++) optimizer.applyGradients({ [a.name]: ga, [b.name]: gb });
      if (awaited) await optimizer.getWeights();
      asked.length = 0;
      optimizer.applyGradients({ [a.name]: ga }); // (one group fewer: a smaller ring entry)
      assert.ok(asked.length <= 64, `asked ${asked.length} times`);
      for (let t = 0; t < 29; t++) optimizer.applyGradients({ [a.name]: ga });
      const values = await a.data();
      optimizer.dispose();
      tf.dispose([a, b]);
      return values;
    };
    assert.deepEqual(await run(false), await run(true));
    tf.dispose([ga, gb]);
  },
});

Deno.test({
  name:
    "tfjs webgpu: changes that drop a middle group's variable, then bring it back (a group above those held), after steps the device skipped and has not reported, train as on the CPU, a schedule asked for each step's learning rate once (its own again at a change)",
  ...sanitize,
  async fn() {
    /** A run with skips unreported at each change (`awaited`: reported first), on `backend`. */
    const run = async (backend: string, awaited: boolean) => {
      await useBackend(backend);
      const key = `${backend}${awaited}`;
      const vars = [[16], [3], [5]].map((shape, i) =>
        tf.variable(tf.ones(shape), true, `lr_callback_webgpu/g${key}/${["w", "bias", "gain"][i]}`)
      );
      const asked = new Map<number, number>();
      const schedule = chain(
        [linearWarmup(1e-2, { warmupSteps: 40 }), 40],
        [cosineDecay(1e-2, { decaySteps: 500 }), 500],
      );
      const optimizer = tfOptimizer(
        adamw({
          lr: (t) => (asked.set(t, (asked.get(t) ?? 0) + 1), schedule(t)),
          weightDecay: 0.01,
          groups: [
            { match: /bias$/, lrScale: 0.5, weightDecay: 0 },
            { match: /gain$/, lrScale: 2 },
          ],
        }),
        { warnOnSkip: false },
      );
      /** `n` steps over the variables `which`, every third one's gradient not finite. */
      const steps = (which: number[], n: number) => {
        for (let t = 0; t < n; t++) {
          const grads = which.map((i) =>
            tf.fill(vars[i].shape, t % 3 === 1 && i === 0 ? NaN : 0.1 + 0.01 * ((t + i) % 5))
          );
          optimizer.applyGradients(
            Object.fromEntries(which.map((i, j) => [vars[i].name, grads[j]])),
          );
          tf.dispose(grads);
        }
      };
      const settle = async () =>
        void (awaited && tf.dispose((await optimizer.getWeights()).map((w) => w.tensor)));
      steps([0, 2], 90); // groups 0 and 2: three blocks an entry
      await settle();
      steps([0, 1], 40); // the gain left out: two blocks
      await settle();
      steps([0, 1, 2], 30); // back: three again, more than the state before held
      const values = await Promise.all(vars.map((v) => v.data()));
      tf.dispose((await optimizer.getWeights()).map((w) => w.tensor)); // (the counts reported)
      const counts = [optimizer.iterations, optimizer.skippedSteps];
      // Each step's asked once, and its own again at a change: what the state before computed
      // is taken (with more groups than it held: its learning rates).
      const again = [...asked].filter(([, n]) => n > 1);
      assert.ok(again.length <= 2 && again.every(([, n]) => n === 2), `asked again: ${again}`);
      optimizer.dispose();
      tf.dispose(vars);
      return { values, counts };
    };
    const gpu = await run("webgpu", false);
    assert.deepEqual(gpu, await run("webgpu", true));
    const cpu = await run("cpu", false);
    assert.deepEqual(gpu.counts, cpu.counts);
    gpu.values.forEach((a, i) =>
      a.forEach((v, j) =>
        assert.ok(
          Math.abs(v - cpu.values[i][j]) <= 1e-5,
          `[${i}][${j}]: ${v} vs ${cpu.values[i][j]}`,
        )
      )
    );
  },
});
