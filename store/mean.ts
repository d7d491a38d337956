/**
 * The fold of the data-parallel mode: the mean over samples of the contributions' gradients.
 *
 * @module
 */

/**
 * One contribution's part in a fold: its gradient (the mean over its samples, every tensor's
 * values one after another in the state's order) and its number of samples.
 *
 * @example
 * ```ts
 * import type { WeightedGradient } from "@optim/radam/store";
 *
 * const g: WeightedGradient = { samples: 8, gradient: new Float32Array([0.5, -1]) };
 * ```
 */
export interface WeightedGradient {
  /** How many samples the gradient is the mean over: its weight. */
  readonly samples: number;
  /** The gradient, every tensor's values one after another. */
  readonly gradient: Float32Array;
}

/**
 * Writes the mean over samples of `parts` into `out`: Σᵢ nᵢ·gᵢ / Σᵢ nᵢ, each contribution `gᵢ`
 * weighted by its sample count `nᵢ`, so the step is the one a single worker would take on the
 * union of their batches. The sum is taken in float64, in the order given (the journal's), and
 * divided once; each value is then rounded to float32. A replay that does the same in the same
 * order gets the same bits. `acc` is the float64 scratch (at least `out.length` long; a new
 * one by default); a shorter one is a RangeError, as is a gradient of another length than `out`.
 *
 * @example
 * ```ts
 * import { meanOfContributions } from "@optim/radam/store";
 * import assert from "node:assert/strict";
 *
 * const out = new Float32Array(2);
 * meanOfContributions([
 *   { samples: 1, gradient: new Float32Array([1, 2]) },
 *   { samples: 3, gradient: new Float32Array([5, 6]) },
 * ], out);
 * assert.deepEqual([...out], [4, 5]); // (1·1 + 3·5) / 4, (1·2 + 3·6) / 4
 * ```
 */
export function meanOfContributions(
  parts: readonly WeightedGradient[],
  out: Float32Array,
  acc?: Float64Array,
): void {
  if (acc === undefined) acc = new Float64Array(out.length);
  // a shorter scratch would drop the sums past its end, and the mean there be NaN
  if (acc.length < out.length) {
    throw new RangeError(`The scratch holds ${acc.length} values, expected ${out.length} or more`);
  }
  acc.fill(0, 0, out.length);
  let total = 0;
  for (const { samples, gradient } of parts) {
    if (gradient.length !== out.length) {
      throw new RangeError(`A gradient has ${gradient.length} values, expected ${out.length}`);
    }
    total += samples;
    for (let i = 0; i < gradient.length; i++) acc[i] += samples * gradient[i];
  }
  if (!(total > 0)) throw new RangeError("The mean of no samples is undefined");
  for (let i = 0; i < out.length; i++) out[i] = acc[i] / total;
}
