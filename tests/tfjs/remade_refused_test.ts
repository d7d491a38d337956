/**
 * A step that makes the library state anew (variables that appear, a state loaded by
 * `setWeights` or `loadState`, new settings, the first step on webgpu of a state made on the
 * CPU) and is then refused inside the kernel (a non-finite gradient under `nonFinite: "throw"`,
 * a RangeError of the rule) leaves everything as it was before the call: the same
 * `optimizer.state` (or none), the weights `getWeights` gives, byte for byte (those loaded and
 * not yet taken in the form given, none of a new variable), the counts, and what `strict`
 * allows; the next steps are those of an optimizer that never saw the call.
 */
import "@tensorflow/tfjs-backend-webgpu";
import assert from "node:assert/strict";
import { radam, saveState } from "../../mod.ts";
import { type TfOptimizer, tfOptimizer } from "../../tfjs.ts";
import {
  CPU_BACKENDS,
  optimizerSnapshot,
  seededVars,
  stepWith,
  tf,
  uniqueNames,
  useBackend,
  webgpuTestOptions,
} from "./helpers.ts";

const name = uniqueNames("remade");

/** Asserts that `call` is refused with a RangeError and changes nothing of `opt` or `vars`. */
async function refusedUnchanged(
  opt: TfOptimizer,
  vars: tf.Variable[],
  call: () => void,
): Promise<void> {
  const state = opt.state;
  const before = await optimizerSnapshot(opt);
  const values = await Promise.all(vars.map((v) => v.data()));
  const tensors = tf.memory().numTensors;
  assert.throws(call, RangeError);
  assert.equal(opt.state, state, "optimizer.state");
  assert.deepEqual(await optimizerSnapshot(opt), before);
  assert.deepEqual(await Promise.all(vars.map((v) => v.data())), values);
  assert.equal(tf.memory().numTensors, tensors);
}

/** Steps `opt` and `ref` alike over their variables; asserts they stay equal. */
async function stepsAlike(
  opt: TfOptimizer,
  vars: tf.Variable[],
  ref: TfOptimizer,
  twins: tf.Variable[],
): Promise<void> {
  for (let t = 0; t < 2; t++) {
    stepWith(opt, vars, 10 + t);
    stepWith(ref, twins, 10 + t);
  }
  assert.deepEqual(vars.map((v) => v.dataSync()), twins.map((v) => v.dataSync()));
  const [a, b] = [await optimizerSnapshot(opt), await optimizerSnapshot(ref)];
  assert.deepEqual(a.weights.map(([, d]) => d), b.weights.map(([, d]) => d));
  assert.equal(a.iterations, b.iterations);
}

/** Two optimizers of `options` over two copies of the same seeded variables (`rows` × 3, 3). */
function pair(options: Parameters<typeof radam>[0], rows = 4) {
  const vars = seededVars(name, 1, rows), twins = seededVars(name, 1, rows);
  const opt = tfOptimizer(radam(options)), ref = tfOptimizer(radam(options));
  const free = () => {
    opt.dispose();
    ref.dispose();
    tf.dispose([...vars, ...twins]);
  };
  return { vars, twins, opt, ref, free };
}

for (const backend of CPU_BACKENDS) {
  Deno.test(`tfjs (${backend}): a refused step over a new variable keeps the state it would have replaced`, async () => {
    await useBackend(backend);
    const { vars, twins, opt, ref, free } = pair({ lr: 0.1, nonFinite: "throw" });
    stepWith(opt, vars.slice(0, 1), 1);
    stepWith(ref, twins.slice(0, 1), 1);
    await refusedUnchanged(opt, vars, () => stepWith(opt, vars, 2, true));
    await saveState(opt.state!); // (still live: not disposed by the refused step)
    await stepsAlike(opt, vars, ref, twins);
    free();
  });

  Deno.test(`tfjs (${backend}): a refused first step after setWeights keeps the weights as given (not yet encoded into 8 bits)`, async () => {
    await useBackend(backend);
    const { vars, twins, opt, ref, free } = pair(
      { lr: 0.1, nonFinite: "throw", states: "8bit" },
      1500,
    );
    const m = tf.tensor(Float32Array.from({ length: 4500 }, (_, i) => Math.sin(i) * 1e-3), [
      1500,
      3,
    ]);
    const weights = [{ name: "iter", tensor: tf.scalar(3, "int32") }, {
      name: `${vars[0].name}/m`,
      tensor: m,
    }];
    await opt.setWeights(weights);
    await ref.setWeights([weights[0], { name: `${twins[0].name}/m`, tensor: m }]);
    await refusedUnchanged(opt, vars, () => stepWith(opt, vars, 2, true));
    assert.equal(opt.state, undefined);
    await stepsAlike(opt, vars, ref, twins);
    tf.dispose([m, weights[0].tensor]);
    free();
  });

  Deno.test(`tfjs (${backend}): a refused first step after loadState keeps every loaded tensor, and strict still takes the next variables`, async () => {
    await useBackend(backend);
    const { vars, opt, free } = pair({ lr: 0.1, nonFinite: "throw" });
    const strict = tfOptimizer(radam({ lr: 0.1, nonFinite: "throw" }), { strict: true });
    const source = tfOptimizer(radam({ lr: 0.1, nonFinite: "throw" })); // (opt's settings)
    stepWith(source, vars, 1);
    const bytes = await saveState(source.state!);
    source.dispose();
    for (const o of [opt, strict]) await o.loadState(bytes);
    const loaded = opt.state; // (the checkpoint as loaded, until a step makes the state)
    // (The bias's loaded state, which the refused step left out, stays kept, in its place.)
    await refusedUnchanged(opt, vars, () => stepWith(opt, vars.slice(0, 1), 2, true));
    await refusedUnchanged(strict, vars, () => stepWith(strict, vars, 2, true));
    assert.ok(loaded !== undefined);
    assert.equal(opt.state, loaded);
    assert.deepEqual(await saveState(opt.state), bytes);
    stepWith(strict, vars.slice(0, 1), 3); // (the refused step's variables were never its)
    assert.equal(strict.iterations, 2);
    strict.dispose();
    free();
  });

  Deno.test(`tfjs (${backend}): a refused step after setLearningRate keeps the state (made anew only by a step taken)`, async () => {
    await useBackend(backend);
    const { vars, twins, opt, ref, free } = pair({ lr: 0.1, nonFinite: "throw" });
    stepWith(opt, vars, 1);
    stepWith(ref, twins, 1);
    opt.setLearningRate(0.05);
    ref.setLearningRate(0.05);
    await refusedUnchanged(opt, vars, () => stepWith(opt, vars, 2, true));
    await stepsAlike(opt, vars, ref, twins);
    free();
  });
}

/**
 * A step over a new variable refused by the rule (the schedule's NaN at step 2), on `backend`:
 * the state it would have replaced stays, unchanged.
 */
async function refusedByRule(backend: string): Promise<void> {
  await useBackend(backend);
  const vars = seededVars(name, 2, 4);
  const opt = tfOptimizer(radam({ lr: (t: number) => t >= 2 ? NaN : 0.1 }));
  stepWith(opt, vars.slice(0, 1), 1);
  await refusedUnchanged(opt, vars, () => stepWith(opt, vars, 2));
  await saveState(opt.state!); // (still live)
  opt.dispose();
  tf.dispose(vars);
}

for (const backend of CPU_BACKENDS) {
  Deno.test(`tfjs (${backend}): a step over a new variable refused by the rule keeps the state`, async () => {
    await refusedByRule(backend);
  });
}

Deno.test({
  name: "tfjs (webgpu): a step over a new variable refused by the rule keeps the state",
  ...await webgpuTestOptions(),
  fn: async () => {
    await refusedByRule("webgpu");
    await useBackend("cpu");
  },
});

Deno.test({
  name:
    "tfjs (webgpu): a refused first step there keeps the state made on the CPU it would have moved",
  ...await webgpuTestOptions(),
  fn: async () => {
    await useBackend("cpu");
    const vars = seededVars(name, 3, 4);
    const opt = tfOptimizer(radam({ lr: (t: number) => t >= 2 ? NaN : 0.1 }));
    stepWith(opt, vars, 1);
    await useBackend("webgpu");
    await refusedUnchanged(opt, vars, () => stepWith(opt, vars, 2));
    await useBackend("cpu");
    await saveState(opt.state!); // (still live)
    opt.dispose();
    tf.dispose(vars);
  },
});
