/**
 * Giving a variable new values after a step: by assign, as tfjs's own optimizers give them.
 *
 * @module
 */
import type * as tf from "@tensorflow/tfjs-core";

/**
 * Assigns `values` (a tensor made for it) to `variable` and disposes `values`: returns the data
 * id the variable has now, which tells whether it is assigned again before the next step.
 *
 * @example
 * ```ts
 * import * as tf from "@tensorflow/tfjs-core";
 * import "@tensorflow/tfjs-backend-cpu";
 * import { assignStepped } from "./_assign.ts";
 * import assert from "node:assert/strict";
 *
 * await tf.setBackend("cpu");
 * const v = tf.variable(tf.zeros([2]), true, "assign/example");
 * const values = tf.tensor1d([1, 2]);
 * assert.equal(assignStepped(v, values), v.dataId);
 * assert.ok(values.isDisposed);
 * assert.deepEqual([...v.dataSync()], [1, 2]);
 * v.dispose();
 * ```
 */
export function assignStepped(variable: tf.Variable, values: tf.Tensor): object {
  try {
    variable.assign(values);
  } finally {
    values.dispose();
  }
  return variable.dataId;
}
