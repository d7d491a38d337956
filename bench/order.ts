/**
 * Random orders for the benchmarks: the order in which states are made and in which contenders
 * take their turns, shuffled so that no contender always comes first, or always follows the same
 * one (a fixed order cost the first of five equal steps 4% on the AMD EPYC, see ANALYSIS.md).
 *
 * @module
 */
import { seededRandom } from "../examples/demo/random.ts";

/**
 * A seeded generator of numbers in [0, 1) (mulberry32, the demo's), so that a run's orders can
 * be repeated.
 *
 * @example
 * ```ts
 * import { seeded } from "./order.ts";
 * const random = seeded(1);
 * console.log(random() === seeded(1)()); // true
 * ```
 */
export const seeded: (seed: number) => () => number = seededRandom;

/**
 * 0…n−1 in a random order drawn from `random` (Fisher–Yates).
 *
 * @example
 * ```ts
 * import { seeded, shuffled } from "./order.ts";
 * console.log(shuffled(5, seeded(1)).toSorted()); // [0, 1, 2, 3, 4]
 * ```
 */
export function shuffled(n: number, random: () => number): number[] {
  const order = Array.from({ length: n }, (_, i) => i);
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [order[i], order[j]] = [order[j], order[i]];
  }
  return order;
}

/** Runs a full garbage collection where the runtime was started with `--expose-gc`. */
export function collectGarbage(): void {
  (globalThis as { gc?: () => void }).gc?.();
}
