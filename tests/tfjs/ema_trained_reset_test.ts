/**
 * With option `ema`, averages loaded (`setWeights`, `loadState`) and not yet stepped go at
 * `averages.swap()` (and `finalize()`) to the variables of the last `minimize` call where one was
 * made since: the variables an earlier `minimize` call was given, before the load, no longer
 * restrict them (the averages loaded may be of other variables: a model built anew, a layer
 * unfrozen since). They were left out of the swap, silently.
 */
import assert from "node:assert/strict";
import { adam, saveState } from "../../mod.ts";
import { type TfOptimizer, tfOptimizer } from "../../tfjs.ts";
import { tf, uniqueNames, useBackend } from "./helpers.ts";

const named = uniqueNames("ema_trained_reset");

/** A weight as getWeights gives it. */
type NamedTensor = { name: string; tensor: tf.Tensor };

/** Three steps of `b` by another optimizer with averages: its weights (copies) and state. */
async function trainedElsewhere(b: tf.Variable): Promise<{
  weights: NamedTensor[];
  bytes: Uint8Array;
  average: Float32Array;
}> {
  const other = tfOptimizer(adam({ lr: 0.1 }), { ema: true });
  try {
    for (let k = 1; k <= 3; k++) {
      const grad = tf.fill(b.shape, k);
      other.applyGradients({ [b.name]: grad });
      grad.dispose();
    }
    const weights = (await other.getWeights()).map((w) => ({
      name: w.name,
      tensor: tf.clone(w.tensor),
    }));
    const average = weights.find((w) => w.name === `${b.name}/average`)!;
    const values = await average.tensor.data() as Float32Array;
    return { weights, bytes: await saveState(other.state!), average: values };
  } finally {
    other.dispose();
  }
}

for (const load of ["setWeights", "loadState"] as const) {
  Deno.test(`tfjs: averages loaded by ${load} after a minimize over other variables go to theirs at swap()`, async () => {
    await useBackend("cpu");
    const a = tf.variable(tf.ones([2]), true, named("a"));
    const b = tf.variable(tf.zeros([3]), true, named("b"));
    const { weights, bytes, average } = await trainedElsewhere(b);
    const training = await b.data();
    const opt: TfOptimizer = tfOptimizer(adam({ lr: 0.1 }), { ema: true });
    try {
      opt.minimize(() => tf.sum(tf.square(a)), false, [a]); // (the variables trained: a)
      if (load === "setWeights") await opt.setWeights(weights);
      else await opt.loadState(bytes);
      opt.averages!.swap();
      assert.deepEqual(await b.data(), average, "the average was not swapped in");
      opt.averages!.swap();
      assert.deepEqual(await b.data(), training);
      opt.averages!.finalize();
      assert.deepEqual(await b.data(), average, "the average was not written by finalize");
    } finally {
      opt.dispose();
      tf.dispose([a, b, ...weights.map((w) => w.tensor)]);
    }
  });
}
