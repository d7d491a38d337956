/**
 * The optimizer weight `iter`, the steps taken: an int32 scalar, as tfjs's own optimizers write
 * it, up to 2³¹ − 1 steps; past them, where one int32 would wrap (a negative count, refused when
 * read back; past 2³² a small one, which resumed with the bias corrections of an early step) and
 * a float32 would round, the int32 pair `[steps mod 2³¹, ⌊steps / 2³¹⌋]`: any count up to 2⁵³ −
 * 1 resumes exactly.
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs-core";
import type { ReadTensor } from "./given.ts";
import { shapeText } from "./layout.ts";

/** Steps that one int32 word of `iter` holds. */
const ITER_WORD = 2 ** 31;

/** Weight `iter` of `steps` (see the module doc). */
export function iterTensor(steps: number): tf.Tensor {
  if (steps < ITER_WORD) return tf.scalar(steps, "int32");
  return tf.tensor1d([steps % ITER_WORD, Math.floor(steps / ITER_WORD)], "int32");
}

/**
 * Reads weight `iter` (one value of any dtype, or the pair {@linkcode iterTensor} writes): the
 * steps taken. Throws a RangeError for another shape, or a count that is not an integer in
 * [0, 2⁵³ − 1].
 */
export async function stepsOf(tensor: tf.Tensor, read: ReadTensor): Promise<number> {
  const pair = tensor.rank === 1 && tensor.size === 2;
  if (tensor.size !== 1 && !pair) {
    throw new RangeError(
      `Expected weight "iter" to be one value (or the int32 pair [steps mod 2^31, steps / 2^31]), got shape ${
        shapeText(tensor.shape)
      }`,
    );
  }
  const values = await read(tensor);
  const value = pair ? values[0] + values[1] * ITER_WORD : values[0];
  if (
    !Number.isSafeInteger(value) || value < 0 ||
    (pair && !(values[0] >= 0 && values[0] < ITER_WORD && Number.isInteger(values[1])))
  ) {
    throw new RangeError(
      `Expected weight "iter" to be an integer ≥ 0, got ${pair ? `[${values.join(", ")}]` : value}`,
    );
  }
  return value;
}
