/**
 * With option `gradientAccumulationSteps`, a sum resumed (`setWeights`) whose variable is given no
 * gradient since goes at the N-th call to the one variable it can be: in a loop of the caller's
 * own `applyGradients` calls (no `minimize` `varList` to go by), its own variable frozen
 * (`trainable: false`) and another live copy of it trainable (a target network, the model kept
 * beside a copy), it went to that copy, which no call trained: it is dropped now, as under
 * `model.fit`. Where its variable is the only one of its name and shape, it still steps it, and
 * so it does where its variable, trainable, has frozen copies beside it (a target network's `_1`):
 * it was dropped there.
 */
import assert from "node:assert/strict";
import { adam } from "../../mod.ts";
import { type TfOptimizer, tfOptimizer } from "../../tfjs.ts";
import { tf, uniqueNames, useBackend } from "./helpers.ts";

const named = uniqueNames("accumulate_owner");
const STEPS = 3;

/** A weight as getWeights gives it. */
type NamedTensor = { name: string; tensor: tf.Tensor };

/** One call with gradients of ones for `vars`. */
function call(opt: TfOptimizer, vars: readonly tf.Variable[]): void {
  const grads = Object.fromEntries(vars.map((v) => [v.name, tf.onesLike(v)]));
  try {
    opt.applyGradients(grads);
  } finally {
    tf.dispose(Object.values(grads));
  }
}

/**
 * The weights of a run over `a` and `b` (names `prefix` + "a", "b") stopped after N − 1 calls,
 * the second of them over `a` only; its variables gone.
 */
async function resumedWeights(prefix: string): Promise<NamedTensor[]> {
  const a = tf.variable(tf.zeros([2]), true, prefix + "a");
  const b = tf.variable(tf.zeros([3]), true, prefix + "b");
  const opt = tfOptimizer(adam({ lr: 0.1 }), { gradientAccumulationSteps: STEPS });
  call(opt, [a, b]);
  call(opt, [a]);
  const weights = (await opt.getWeights()).map((w) => ({
    name: w.name,
    tensor: tf.clone(w.tensor),
  }));
  assert.ok(weights.some((w) => w.name === b.name + "/accum"));
  opt.dispose();
  tf.dispose([a, b]);
  return weights;
}

Deno.test("tfjs: a sum resumed of a variable frozen since goes to no other live copy of it at the N-th applyGradients call", async () => {
  await useBackend("cpu");
  const prefix = named("m") + "/";
  const weights = await resumedWeights(prefix);
  const a = tf.variable(tf.zeros([2]), true, prefix + "a");
  const b = tf.variable(tf.zeros([3]), false, prefix + "b"); // (frozen: the loop trains a only)
  const copy = tf.variable(tf.zeros([3]), true, prefix + "b_1"); // (another copy of b, live)
  const opt = tfOptimizer(adam({ lr: 0.1 }), { gradientAccumulationSteps: STEPS });
  try {
    await opt.setWeights(weights);
    call(opt, [a]); // (the N-th call)
    assert.equal(opt.iterations, 1);
    assert.notDeepEqual([...await a.data()], [0, 0]);
    assert.deepEqual([...await copy.data()], [0, 0, 0], "the copy was stepped");
    assert.deepEqual([...await b.data()], [0, 0, 0]);
  } finally {
    opt.dispose();
    tf.dispose([a, b, copy, ...weights.map((w) => w.tensor)]);
  }
});

Deno.test("tfjs: a sum resumed of a variable given no gradient since still steps it at the N-th applyGradients call", async () => {
  await useBackend("cpu");
  const prefix = named("m") + "/";
  const weights = await resumedWeights(prefix);
  const a = tf.variable(tf.zeros([2]), true, prefix + "a");
  const b = tf.variable(tf.zeros([3]), true, prefix + "b");
  const opt = tfOptimizer(adam({ lr: 0.1 }), { gradientAccumulationSteps: STEPS });
  try {
    await opt.setWeights(weights);
    call(opt, [a]); // (the N-th call)
    assert.equal(opt.iterations, 1);
    for (const x of await b.data()) assert.ok(x < 0, "b was not stepped by its sum");
  } finally {
    opt.dispose();
    tf.dispose([a, b, ...weights.map((w) => w.tensor)]);
  }
});

Deno.test("tfjs: a sum resumed of a variable given no gradient since steps it beside a frozen copy of it (a target network) at the N-th applyGradients call", async () => {
  await useBackend("cpu");
  const prefix = named("m") + "/";
  const weights = await resumedWeights(prefix);
  const a = tf.variable(tf.zeros([2]), true, prefix + "a");
  const b = tf.variable(tf.zeros([3]), true, prefix + "b");
  const target = tf.variable(tf.zeros([3]), false, prefix + "b_1"); // (a frozen copy of b)
  const opt = tfOptimizer(adam({ lr: 0.1 }), { gradientAccumulationSteps: STEPS });
  try {
    await opt.setWeights(weights);
    call(opt, [a]); // (the N-th call)
    assert.equal(opt.iterations, 1);
    for (const x of await b.data()) assert.ok(x < 0, "b was not stepped by its sum");
    assert.deepEqual([...await target.data()], [0, 0, 0]);
  } finally {
    opt.dispose();
    tf.dispose([a, b, target, ...weights.map((w) => w.tensor)]);
  }
});
