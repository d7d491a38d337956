/**
 * Gradient centralization in tfjs ops, for the adapter on tfjs's webgpu backend (gpu_path.ts):
 * a gradient minus its mean over every axis but the last, in float32, with no overflow where
 * the mean of finite values is finite, as the library's backends take it (the CPU backends'
 * float64 fallback, the WebGPU backend's scaled sum, gpu/centralize.ts).
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs-core";

/**
 * `g` (rank > 1, not empty) minus its mean over every axis but the last, a new tensor. The mean
 * of a column of `n` values is their float32 sum over `n` (tfjs's `mean`), where no sum can
 * overflow: where the column's largest magnitude is below 2^(126 − c), `c = ⌈log₂ n⌉`; else,
 * as the library's WebGPU backend decides it, the sum of the values scaled by 2^−(c + 2)
 * (exact, but for values so small that they cannot move the sum), over `n`, scaled back: a
 * finite column's mean is then finite, as the CPU backends' float64 mean (a column holding a
 * NaN or an infinity gives a non-finite mean either way). A value minus a finite mean can still
 * pass float32's largest: ±Infinity, as on every backend.
 *
 * @example
 * ```ts
 * import * as tf from "@tensorflow/tfjs-core";
 * import "@tensorflow/tfjs-backend-cpu";
 * import { centralized } from "./centralize_ops.ts";
 * import assert from "node:assert/strict";
 *
 * await tf.setBackend("cpu");
 * // Column 0's float32 sum overflows (tfjs's webgpu mean of it is Infinity); its mean does not.
 * const g = tf.tensor2d([[3e38, 1], [3e38, 3]]);
 * const c = centralized(g);
 * assert.deepEqual([...c.dataSync()], [0, -1, 0, 1]);
 * tf.dispose([g, c]);
 * ```
 */
export function centralized(g: tf.Tensor): tf.Tensor {
  const axes = [...Array(g.rank - 1).keys()];
  const n = g.size / g.shape[g.rank - 1];
  const c = 32 - Math.clz32(n - 1); // ⌈log₂ n⌉ (n < 2³¹: a tfjs tensor's size)
  return tf.tidy(() => {
    // 1, or 2^−(c + 2) where the column's sum could pass 2¹²⁶ (both exact in float32).
    const wide = tf.greaterEqual(tf.max(tf.abs(g), axes, true), 2 ** (126 - c));
    const scale = tf.where(wide, tf.scalar(2 ** -(c + 2)), tf.scalar(1));
    return tf.sub(g, tf.div(tf.mean(tf.mul(g, scale), axes, true), scale));
  });
}
