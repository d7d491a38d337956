/**
 * tfjs-core's `Optimizer.minimize` with the tensors it computed given back where the step refuses
 * them: tfjs's own leaves the gradients (and the loss) behind when `applyGradients` throws, and
 * when it refuses the loss itself (one that is not a scalar, or no trainable variable).
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs-core";

/**
 * As tfjs-core's `Optimizer.minimize`: the gradients of `f` over `varList` (by default, every
 * trainable variable it reads) given to `optimizer.applyGradients` (as a `NamedTensor[]` in the
 * order of `varList` where given), then disposed; the loss returned with `returnCost`, else
 * disposed and `null` returned. Where `applyGradients` throws (a refused gradient or variable),
 * the gradients and the loss are disposed before the error is thrown: no tensor is left behind,
 * nor where tfjs refuses `f`'s loss (not a scalar) or `varList` (no trainable variable).
 *
 * @example
 * ```ts
 * import * as tf from "@tensorflow/tfjs-core";
 * import "@tensorflow/tfjs-backend-cpu";
 * import "@tensorflow/tfjs-layers"; // (registers tfjs's gradients)
 * import { minimizing } from "./minimize.ts";
 * import assert from "node:assert/strict";
 *
 * await tf.setBackend("cpu");
 * const w = tf.variable(tf.tensor1d([1, 2]), true, "minimizing_doc/w");
 * const refusing = tf.train.sgd(0.1);
 * refusing.applyGradients = () => {
 *   throw new RangeError("refused");
 * };
 * const before = tf.memory().numTensors;
 * assert.throws(() => minimizing(refusing, () => tf.sum(tf.square(w))), RangeError);
 * assert.equal(tf.memory().numTensors, before);
 * ```
 */
export function minimizing(
  optimizer: tf.Optimizer,
  f: () => tf.Scalar,
  returnCost = false,
  varList?: tf.Variable[],
): tf.Scalar | null {
  // In a scope of its own: where tfjs refuses the loss (not a scalar, no trainable variable in
  // varList), what it computed is disposed as the error leaves the scope.
  const { value, grads } = tf.tidy(() => optimizer.computeGradients(f, varList));
  try {
    optimizer.applyGradients(
      varList != null ? varList.map((v) => ({ name: v.name, tensor: grads[v.name] })) : grads,
    );
  } catch (error) {
    tf.dispose(value);
    throw error;
  } finally {
    tf.dispose(grads);
  }
  if (returnCost) return value;
  value.dispose();
  return null;
}
