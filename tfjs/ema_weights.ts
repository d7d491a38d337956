/**
 * The moving averages (option `ema`, ema.ts) among the weights given to `setWeights`:
 * `<variable>/average`, split out of the rest, checked and copied.
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs-core";
import type { NamedTensor } from "./gradients.ts";
import { checkWeightLive } from "./_hints.ts";
import { checkLoadedShapes } from "./matching.ts";
import { AVERAGE_SUFFIX, copyOf } from "./ema.ts";

/**
 * Splits the averages (`<variable>/average`) out of weights given to `setWeights`: the rest,
 * and copies of the averages by variable name (the caller disposes them where it takes them
 * not). Throws a TypeError naming an average that was disposed, is not float32, or is given
 * twice (as a moment given twice is), and a RangeError naming one and both shapes where the
 * variables of its name (or base name) are all of another shape; nothing taken then.
 */
export function splitAverages(
  weights: readonly NamedTensor[],
): { rest: NamedTensor[]; averages: Map<string, tf.Tensor> } {
  if (!Array.isArray(weights)) return { rest: weights as NamedTensor[], averages: new Map() };
  const rest: NamedTensor[] = [];
  const given = new Map<string, tf.Tensor>();
  for (const w of weights) {
    const name = typeof w?.name === "string" ? w.name : "";
    if (!name.endsWith(AVERAGE_SUFFIX) || !(w.tensor instanceof tf.Tensor)) {
      rest.push(w);
      continue;
    }
    checkWeightLive(w);
    if (w.tensor.dtype !== "float32") {
      throw new TypeError(
        `The weight ${JSON.stringify(name)} (a moving average) must be float32, got ` +
          w.tensor.dtype,
      );
    }
    const variable = name.slice(0, -AVERAGE_SUFFIX.length);
    if (given.has(variable)) {
      throw new TypeError(`Optimizer weight ${JSON.stringify(name)} is given twice`);
    }
    given.set(variable, w.tensor);
  }
  checkLoadedShapes(given, AVERAGE_SUFFIX, "a moving average");
  const averages = new Map([...given].map(([name, t]) => [name, tf.keep(copyOf(t))]));
  return { rest, averages };
}
