/**
 * The halts of a WebGPU state's device (device_counter.ts), and the errors the host throws when
 * it learns of one: a non-finite gradient under `nonFinite: "throw"`, or a step whose scalars
 * were no longer in the ring.
 *
 * @module
 */
import { label } from "../base/tensors.ts";
import { RING_KEPT } from "./scalar_ring.ts";

/**
 * Values of the control buffer's `halted`: running, halted by a non-finite gradient ("throw"),
 * no scalars for t, or a non-finite gradient under "skip" with 2⁵³ − 1 steps skipped already.
 *
 * @example
 * ```ts
 * import { HALT } from "./halt_error.ts";
 *
 * const halted = new Uint32Array([HALT.nonFinite])[0];
 * halted !== HALT.running; // the state halted
 * ```
 */
export const HALT = { running: 0, nonFinite: 1, noScalars: 2, skipLimit: 3 } as const;

/** The end of a halt's message: the `later` steps submitted after it were not taken either. */
function notTakenAfter(later: number): string {
  if (later <= 0) return "";
  return `, nor ${
    later === 1 ? "the step" : `the ${later} steps`
  } submitted after it before the GPU reported it`;
}

/**
 * The error of a halt at step `step` for its first non-finite gradient in init's order (`bad`:
 * the tensor and the index in it), `later` steps submitted after it; with `capped`, one under
 * "skip" that had skipped 2⁵³ − 1 steps already (as the CPU backends refuse it).
 *
 * @example
 * ```ts
 * import { nonFiniteError } from "./halt_error.ts";
 * import assert from "node:assert/strict";
 *
 * assert.match(nonFiniteError({ name: "w", index: 3 }, 2, 0).message, /"w" holds NaN.* index 3/);
 * ```
 */
export function nonFiniteError(
  bad: { readonly name: string; readonly index: number },
  step: number,
  later: number,
  capped = false,
): RangeError {
  const cap = capped
    ? ", and the state cannot skip another step: it has skipped 2⁵³ − 1, the most a count " +
      "holds exactly (a checkpoint could not hold more)"
    : "";
  return new RangeError(
    `The gradient of ${
      label(bad.name)
    } holds NaN or ±Infinity at index ${bad.index} (step ${step})${cap}; the step was not taken${
      notTakenAfter(later)
    }. WebGPU reports it at the first call after the GPU ran that step`,
  );
}

/**
 * The error of a halt at step `step` whose scalars the ring no longer kept, `later` steps
 * submitted after it.
 *
 * @example
 * ```ts
 * import { noScalarsError } from "./halt_error.ts";
 * import assert from "node:assert/strict";
 *
 * assert.match(noScalarsError(1100, 2).message, /stopped at step 1100/);
 * ```
 */
export function noScalarsError(step: number, later: number): Error {
  return new Error(
    `The WebGPU state stopped at step ${step}: more than ${RING_KEPT} steps were submitted without a report from the GPU, and some were skipped, so the step's scalars were no longer kept; that step was not taken${
      notTakenAfter(later)
    }. Await readParams(state) now and then in long loops`,
  );
}
