/**
 * `optimizer.minimize` as tfjs's: the gradients it computed disposed after the step, the loss
 * returned with `returnCost` (else disposed); and where the step refuses them (a non-finite
 * gradient under `nonFinite: "throw"`, a variable the optimizer cannot step), disposed too, with
 * the loss, where tfjs's own `minimize` leaves them behind at every refused call.
 */
import assert from "node:assert/strict";
import { adam } from "../../mod.ts";
import { tfOptimizer } from "../../tfjs.ts";
import { CPU_BACKENDS, tf, uniqueNames, useBackend } from "./helpers.ts";

const name = uniqueNames("minimize");

for (const backend of CPU_BACKENDS) {
  Deno.test(`tfjs ${backend}: minimize leaves no tensor behind, refused or not, as tfjs's does where it steps (it leaks where refused)`, async () => {
    await useBackend(backend);
    const w = tf.variable(tf.tensor1d([1, -2, 3]), true, name("w"));
    const frozen = tf.variable(tf.tensor1d([4]), false, name("frozen"));
    const opt = tfOptimizer(adam({ lr: 0.1, nonFinite: "throw" }));
    const loss = () => tf.sum(tf.square(w)) as tf.Scalar;
    const before = tf.memory().numTensors;
    assert.equal(opt.minimize(loss), null);
    assert.equal(tf.memory().numTensors, before);
    const cost = opt.minimize(loss, true, [w])!;
    assert.equal(tf.memory().numTensors, before + 1);
    cost.dispose();
    const stepped = w.dataSync().slice();
    // Refused: a NaN gradient, and a variable that is not trainable (given in varList).
    const nan = () => tf.sum(tf.mul(w, NaN)) as tf.Scalar;
    for (let i = 0; i < 3; i++) {
      assert.throws(() => opt.minimize(nan), /not finite|non-finite|NaN/);
      assert.throws(() => opt.minimize(nan, true), /not finite|non-finite|NaN/);
      assert.throws(() => opt.minimize(() => tf.sum(frozen) as tf.Scalar, false, [frozen]));
      assert.equal(tf.memory().numTensors, before, `call ${i}`);
    }
    assert.deepEqual(w.dataSync(), stepped); // (nothing changed)
    assert.equal(opt.iterations, 2);
    opt.dispose();
    tf.dispose([w, frozen]);
  });
}

for (const backend of CPU_BACKENDS) {
  Deno.test(`tfjs ${backend}: minimize leaves no tensor behind where tfjs refuses the loss (not a scalar, no trainable variable)`, async () => {
    await useBackend(backend);
    const w = tf.variable(tf.tensor1d([1, -2, 3]), true, name("w"));
    const opt = tfOptimizer(adam({ lr: 0.1 }));
    const before = tf.memory().numTensors;
    for (let i = 0; i < 2; i++) {
      // A loss of rank 1 (a forgotten tf.sum), and an empty varList.
      assert.throws(
        () => opt.minimize(() => tf.square(w) as unknown as tf.Scalar),
        /must return a scalar/,
      );
      assert.throws(
        () => opt.minimize(() => tf.sum(tf.square(w)) as tf.Scalar, false, []),
        /at least one of the input variables/,
      );
      assert.equal(tf.memory().numTensors, before, `call ${i}`);
    }
    assert.deepEqual(w.dataSync(), new Float32Array([1, -2, 3]));
    assert.equal(opt.iterations, 0);
    opt.dispose();
    w.dispose();
  });
}
