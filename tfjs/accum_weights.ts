/**
 * The gradients accumulated (accumulate.ts) as optimizer weights: those given to `setWeights`
 * (`<variable>/accum` and `accum_count`) sorted from the others, checked and read, and
 * `getWeights`' check of the sums it gives.
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs-core";
import { described } from "../base/_errors.ts";
import { firstBadValue } from "../core/checkpoint_tensors.ts";
import { ACCUM_COUNT_KEY } from "../core/extra_tensors.ts";
import { type LoadedSums, SUM_SUFFIX } from "./accumulate.ts";
import type { NamedTensor } from "./gradients.ts";
import { checkWeightLive } from "./_hints.ts";
import { checkLoadedShapes } from "./matching.ts";

/**
 * Splits weights given to `setWeights` into the optimizer's own and the accumulator's, whose
 * tensors are read at the call (`tf.clone`: a later dispose of them takes nothing from it).
 * Throws a TypeError naming a sum or count that was disposed or given twice, a sum that is not
 * float32, or sums without `accum_count` (and the count without sums, or not a tensor), and a
 * RangeError naming a sum and both shapes where the variables of its name (or base name) are all
 * of another shape; nothing taken.
 * `read` resolves to the sums (the caller disposes them if it takes them not), or rejects with a
 * RangeError where the count is not an integer from 1 to N − 1 (`steps`: N), or, with
 * `finiteOnly` (option `nonFinite: "throw"`), naming a sum and index holding a non-finite number
 * (under `"skip"` and `"propagate"` such sums are taken: the step they end is skipped, or
 * propagates them, as the run that summed them would have), its clones disposed.
 */
export function splitWeights(
  weights: readonly NamedTensor[],
  steps: number,
  finiteOnly: boolean,
): { rest: NamedTensor[]; read: Promise<LoadedSums | undefined> } {
  if (!Array.isArray(weights)) {
    return { rest: weights as NamedTensor[], read: Promise.resolve(undefined) };
  }
  const { rest, counted, count, sums } = sortWeights(weights);
  if (!counted && sums.size === 0) return { rest, read: Promise.resolve(undefined) };
  if (!(count instanceof tf.Tensor) || count.size !== 1 || sums.size === 0) {
    throw new TypeError(
      `Weights of gradients accumulated (<variable>${SUM_SUFFIX}) come with their count, a scalar "${ACCUM_COUNT_KEY}", and the count with at least one; got ${
        counted ? `${described(count)} as the count` : "no count"
      } and ${sums.size} sums`,
    );
  }
  checkLoadedShapes(sums, SUM_SUFFIX, "a gradient accumulated");
  const countRead = count.data();
  const clones = new Map([...sums].map(([name, t]) => [name, tf.keep(tf.clone(t))]));
  const read = countRead.then(async (values) => {
    const n = values[0];
    if (!Number.isInteger(n) || n < 1 || n >= steps) {
      throw new RangeError(
        `The weight "${ACCUM_COUNT_KEY}" must be ${
          steps === 1 ? "absent" : `an integer from 1 to ${steps - 1}`
        } (option gradientAccumulationSteps is ${steps}), got ${n}`,
      );
    }
    if (finiteOnly) {
      for (const [name, clone] of clones) checkSumFinite(name, await clone.data() as Float32Array);
    }
    return { count: n, sums: clones };
  }).catch((error) => {
    tf.dispose([...clones.values()]);
    throw error;
  });
  return { rest, read };
}

/**
 * The weights given to `setWeights` sorted: the optimizer's own (`rest`), `accum_count` (where
 * `counted`) and the sums by variable name, those checked live and float32 (a TypeError naming
 * one that is not, or one given twice, as a moment given twice is).
 */
function sortWeights(weights: readonly NamedTensor[]): {
  rest: NamedTensor[];
  counted: boolean;
  count: unknown;
  sums: Map<string, tf.Tensor>;
} {
  const rest: NamedTensor[] = [];
  let count: unknown, counted = false;
  const sums = new Map<string, tf.Tensor>();
  const twice = (name: string) =>
    new TypeError(`Optimizer weight ${JSON.stringify(name)} is given twice`);
  for (const w of weights) {
    const name = typeof w?.name === "string" ? w.name : "";
    if (name === ACCUM_COUNT_KEY) {
      if (counted) throw twice(name);
      [count, counted] = [w.tensor, true];
      if (count instanceof tf.Tensor) checkWeightLive(w);
    } else if (name.endsWith(SUM_SUFFIX) && w.tensor instanceof tf.Tensor) {
      checkWeightLive(w);
      if (w.tensor.dtype !== "float32") {
        throw new TypeError(
          `The weight ${
            JSON.stringify(name)
          } (a gradient accumulated) must be float32, got ${w.tensor.dtype}`,
        );
      }
      const variable = name.slice(0, -SUM_SUFFIX.length);
      if (sums.has(variable)) throw twice(name);
      sums.set(variable, w.tensor);
    } else rest.push(w);
  }
  return { rest, counted, count, sums };
}

/**
 * Under `nonFinite: "throw"`, throws a RangeError naming the sum of variable `name` and the index
 * where `values` holds a non-finite number: the step it ends would throw, at every N-th call.
 * `outcome` ends the message (default: that of a `setWeights` refused).
 */
function checkSumFinite(
  name: string,
  values: Float32Array,
  outcome = "the step it is summed into would throw); refused, nothing changed",
): void {
  const i = firstBadValue(values, false);
  if (i < 0) return;
  throw new RangeError(
    `Expected weight ${JSON.stringify(name + SUM_SUFFIX)}[${i}] to be a finite number, got ${
      described(values[i])
    } (option nonFinite: "throw": ${outcome}`,
  );
}

/**
 * Under `nonFinite: "throw"`, `getWeights`' check of the sums among `weights` (`<variable>/accum`)
 * before it gives them: rejects with the RangeError `setWeights` would throw for the first one
 * holding a non-finite number (on webgpu calls 1 to N − 1 are checked on the device only, at
 * the step they end, which halts), so that no save is written that cannot be loaded. Rejected,
 * it disposes every tensor of `weights` (which the caller then gives no one).
 */
export async function checkSumsFinite(weights: readonly NamedTensor[]): Promise<void> {
  const sums = weights.filter((w) => w.name.endsWith(SUM_SUFFIX) && w.tensor.dtype === "float32");
  try {
    const read = await Promise.all(sums.map((w) => w.tensor.data() as Promise<Float32Array>));
    sums.forEach((w, k) =>
      checkSumFinite(
        w.name.slice(0, -SUM_SUFFIX.length),
        read[k],
        "setWeights would refuse it; on webgpu the step it is summed into halts, as a later " +
          "call says); not saved",
      )
    );
  } catch (error) {
    tf.dispose(weights.map((w) => w.tensor));
    throw error;
  }
}

/**
 * Awaits both `taken` (the weights' other checks and reads) and `read` (their sums): resolves to
 * both, or rejects with the first error (that of `taken` first), the sums disposed.
 */
export async function bothRead<T>(
  taken: Promise<T>,
  read: Promise<LoadedSums | undefined>,
): Promise<[T, LoadedSums | undefined]> {
  const [a, b] = await Promise.allSettled([taken, read]);
  if (a.status === "fulfilled" && b.status === "fulfilled") return [a.value, b.value];
  if (b.status === "fulfilled") disposeSums(b.value);
  throw a.status === "rejected" ? a.reason : (b as PromiseRejectedResult).reason;
}

/** Disposes sums read but not taken. */
export function disposeSums(loaded: LoadedSums | undefined): void {
  if (loaded !== undefined) tf.dispose([...loaded.sums.values()]);
}
