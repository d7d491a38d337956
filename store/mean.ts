/**
 * The fold of the data-parallel mode: the mean over samples of the contributions' gradients.
 *
 * @module
 */
import { described } from "../base/_errors.ts";
import { float32Hint } from "./_checks.ts";

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
 * Writes the mean over samples of `parts` (an array, or any iterable: a `Set`, a generator; read
 * once) into `out`: Σᵢ nᵢ·gᵢ / Σᵢ nᵢ, each contribution `gᵢ`
 * weighted by its sample count `nᵢ`, so the step is the one a single worker would take on the
 * union of their batches. The sum is taken in float64, in the order given (the journal's), and
 * divided once; each value is then rounded to float32. A replay that does the same in the same
 * order gets the same bits. `acc` is the float64 scratch (at least `out.length` long; a new
 * one by default); a shorter one is a RangeError, as is a gradient of another length than `out`.
 * An argument of another type (`parts` not iterable, `out` null, a part without its `gradient`
 * Float32Array) is a TypeError naming it, a part's `samples` negative or not finite a
 * RangeError; `out` is then left as it was. Typed arrays of another realm (an iframe's, a vm
 * context's) are taken as this realm's.
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
 * meanOfContributions(new Set([{ samples: 2, gradient: new Float32Array([3, 1]) }]), out);
 * assert.deepEqual([...out], [3, 1]);
 * assert.throws(() => meanOfContributions([], null as never), TypeError);
 * ```
 */
export function meanOfContributions(
  parts: Iterable<WeightedGradient>,
  out: Float32Array,
  acc?: Float64Array,
): void {
  checkArguments(parts, out, acc);
  if (acc === undefined) acc = new Float64Array(out.length);
  // a shorter scratch would drop the sums past its end, and the mean there be NaN
  if (acc.length < out.length) {
    throw new RangeError(`The scratch holds ${acc.length} values, expected ${out.length} or more`);
  }
  // (each part's fields read once, checked, then summed: a getter cannot change them between)
  const checked = Array.from(parts, checkedPart);
  let total = 0;
  for (const { samples, gradient } of checked) {
    if (gradient.length !== out.length) {
      throw new RangeError(`A gradient has ${gradient.length} values, expected ${out.length}`);
    }
    total += samples;
  }
  if (!(total > 0)) throw new RangeError("The mean of no samples is undefined");
  acc.fill(0, 0, out.length);
  for (const { samples, gradient } of checked) {
    for (let i = 0; i < gradient.length; i++) acc[i] += samples * gradient[i];
  }
  for (let i = 0; i < out.length; i++) out[i] = acc[i] / total;
}

/** The call {@linkcode meanOfContributions}'s errors show, naming its arguments. */
const CALL = "meanOfContributions(parts, out, acc?)";

/**
 * Throws a TypeError naming the argument of {@linkcode meanOfContributions} that is not of its
 * type: `parts` an iterable (not a string), `out` a Float32Array, `acc` a Float64Array or
 * undefined (of any realm).
 */
function checkArguments(parts: unknown, out: unknown, acc: unknown): void {
  const wrong = !isIterable(parts) || parts instanceof Map
    ? ["parts", "an array (or an iterable) of { samples, gradient }", parts]
    : !isTyped(out, "Float32Array")
    ? ["out", "a Float32Array (where the mean is written)", out]
    : acc !== undefined && !isTyped(acc, "Float64Array")
    ? ["acc", "a Float64Array (a scratch of out.length values or more) or undefined", acc]
    : undefined;
  if (wrong === undefined) return;
  const [name, expected, value] = wrong;
  // (a Map iterates its [key, value] entries: each part would be a pair)
  const hint = value instanceof Map ? " (a Map: pass its values, map.values())" : "";
  throw new TypeError(`${CALL}: ${name} must be ${expected}, got ${described(value)}${hint}`);
}

/** `part`, the `i`-th of `parts`, checked: a TypeError or RangeError naming what is wrong. */
function checkedPart(part: unknown, i: number): WeightedGradient {
  if (typeof part !== "object" || part === null) {
    throw new TypeError(
      `${CALL}: parts[${i}] must be { samples, gradient }, got ${described(part)}`,
    );
  }
  const { samples, gradient } = part as Record<string, unknown>;
  if (!isTyped(gradient, "Float32Array")) {
    throw new TypeError(
      `${CALL}: parts[${i}].gradient must be a Float32Array, got ${described(gradient)}` +
        float32Hint(gradient),
    );
  }
  if (typeof samples !== "number") {
    throw new TypeError(`${CALL}: parts[${i}].samples must be a number, got ${described(samples)}`);
  }
  if (!(Number.isFinite(samples) && samples >= 0)) {
    throw new RangeError(`${CALL}: parts[${i}].samples must be finite and ≥ 0, got ${samples}`);
  }
  return { samples, gradient: gradient as Float32Array };
}

/** Whether `value` is an object with a `Symbol.iterator` method (an array, a `Set`, …). */
function isIterable(value: unknown): value is Iterable<unknown> {
  return typeof value === "object" && value !== null &&
    typeof (value as Iterable<unknown>)[Symbol.iterator] === "function";
}

/**
 * Whether `value` is a typed array of type `name`, of this realm or another (whose class is not
 * this realm's, so that `instanceof` is false): asked of the type it was made with, which the
 * typed arrays' own `Symbol.toStringTag` getter reads from the array itself (undefined for
 * anything else). Not of `Object.prototype.toString`, which an own or a subclass's
 * `Symbol.toStringTag` answers: a `Uint8Array` or a `DataView` so tagged passed for a
 * Float32Array, its bytes summed as floats, or the mean written to none of its elements.
 */
function isTyped(value: unknown, name: "Float32Array" | "Float64Array"): boolean {
  return typedArrayName.call(value) === name;
}

/** `%TypedArray%.prototype[Symbol.toStringTag]`'s getter: the type a typed array was made as. */
const typedArrayName = Object.getOwnPropertyDescriptor(
  Object.getPrototypeOf(Uint8Array.prototype),
  Symbol.toStringTag,
)!.get as (this: unknown) => string | undefined;
