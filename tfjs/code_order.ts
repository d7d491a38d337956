/**
 * The order of 8-bit moments given as TensorFlow.js weights. A moment's codes and scales are cut
 * into blocks of 256 elements in the order the optimizer holds the variable, and an optimizer
 * under gradient centralization (`gc`, Ranger) on a CPU backend holds a kernel (rank > 1)
 * transposed, its last axis first (`[out, rest]`). So the weights say which order they are in:
 * `<variable>/m.codes` and `<variable>/m.scales` hold the moment in the order tfjs holds the
 * variable (row-major over its shape, as its f32 weights), `<variable>/m.transposed.codes` and
 * `<variable>/m.transposed.scales` in the transposed one. `setWeights` keeps codes as given, in
 * their order (so that `getWeights` before a step gives them back, names and bytes: a model loaded
 * and saved again is the model loaded); the step that takes the variable takes those whose order
 * is the one it holds the variable in as they are (exact), and decodes the others, reorders them
 * and encodes them in its own blocks (lossy, as 32-bit weights given to an 8-bit optimizer are:
 * a transposition puts other elements in each block of 256, so no encoding in the other order
 * keeps the same bits).
 *
 * @module
 */
import { type CompactMoment, EXP_AVG } from "../base/arena.ts";
import { decodeTensor } from "../base/q8_tensor.ts";
import { type Entry, entryOf, fromArena, toArena } from "./layout.ts";

/** The mark of a moment's weights held transposed: `<variable>/m.transposed.codes`. */
export const TRANSPOSED = "transposed";

/**
 * The name a moment's codes and scales are given under, before `.codes` / `.scales`: the
 * moment's own (`<variable>/m`), marked `.transposed` where they are in the transposed order.
 *
 * @example
 * ```ts
 * import { codesName } from "./code_order.ts";
 * import assert from "node:assert/strict";
 *
 * assert.equal(codesName("dense/kernel/m", false), "dense/kernel/m");
 * assert.equal(codesName("dense/kernel/m", true), "dense/kernel/m.transposed");
 * ```
 */
export function codesName(name: string, transposed: boolean): string {
  return transposed ? `${name}.${TRANSPOSED}` : name;
}

/**
 * A moment's name before `.codes` / `.scales` without its mark, and whether it had one.
 *
 * @example
 * ```ts
 * import { unmarked } from "./code_order.ts";
 * import assert from "node:assert/strict";
 *
 * assert.deepEqual(unmarked("m.transposed"), ["m", true]);
 * assert.deepEqual(unmarked("m"), ["m", false]);
 * ```
 */
export function unmarked(moment: string): [string, boolean] {
  const mark = `.${TRANSPOSED}`;
  return moment.endsWith(mark) ? [moment.slice(0, -mark.length), true] : [moment, false];
}

/**
 * The TypeError of the codes and scales of one moment given in two orders: `first`, the name of
 * the weight given first, and `other`, that of its pair, marked otherwise.
 *
 * @example
 * ```ts
 * import { mixedOrders } from "./code_order.ts";
 * import assert from "node:assert/strict";
 *
 * const error = mixedOrders("k/m.codes", "k/m.transposed.scales");
 * assert.ok(error instanceof TypeError);
 * assert.match(error.message, /"k\/m.transposed.scales"/);
 * ```
 */
export function mixedOrders(first: string, other: string): TypeError {
  return new TypeError(
    `Optimizer weights ${JSON.stringify(first)} and ${
      JSON.stringify(other)
    } are one moment's in two orders: give "<moment>.codes" with "<moment>.scales" (the ` +
      `variable's order), or "<moment>.${TRANSPOSED}.codes" with ` +
      `"<moment>.${TRANSPOSED}.scales" (its last axis first)`,
  );
}

/**
 * Whether codes of a variable of tfjs shape `shape` in the transposed order (`transposed`) or in
 * tfjs's hold its elements in the order `entry` (how an optimizer holds that variable) does: the
 * same order, or one of the two dimensions a kernel is transposed over is 1.
 *
 * @example
 * ```ts
 * import { sameCodeOrder } from "./code_order.ts";
 * import { entryOf } from "./layout.ts";
 * import assert from "node:assert/strict";
 *
 * assert.ok(sameCodeOrder(true, entryOf("k", [3, 2], true))); // both transposed
 * assert.ok(!sameCodeOrder(true, entryOf("k", [3, 2], false)));
 * assert.ok(sameCodeOrder(true, entryOf("k", [1, 6], false))); // one row: the same order
 * assert.ok(sameCodeOrder(true, entryOf("b", [6], false))); // rank 1: never transposed
 * ```
 */
export function sameCodeOrder(transposed: boolean, entry: Entry): boolean {
  const given = transposed && entryOf(entry.name, entry.shape, true).transposed;
  return given === entry.transposed || entry.rows === 1 || entry.cols === 1;
}

/**
 * The values of a moment given as `codes` in the transposed order (`transposed`) or in tfjs's,
 * decoded (exact) and laid out as `entry` holds the variable: f32 values, which an 8-bit state
 * encodes in its own blocks.
 *
 * @example
 * ```ts
 * import { reorderedCodes } from "./code_order.ts";
 * import { entryOf } from "./layout.ts";
 * import { encodeTensor } from "../base/q8_tensor.ts";
 * import assert from "node:assert/strict";
 *
 * // A [2, 3] kernel held transposed: [[1, 2, 4], [8, 0.5, 0.25]] as [1, 8, 2, 0.5, 4, 0.25].
 * const held = new Float32Array([1, 8, 2, 0.5, 4, 0.25]);
 * const codes = { codes: new Int8Array(6), scales: new Float32Array(1) };
 * encodeTensor(held, codes.codes, codes.scales);
 * const values = reorderedCodes(codes, true, entryOf("k", [2, 3], false));
 * assert.deepEqual([...values], [1, 2, 4, 8, 0.5, 0.25]); // (these values encode exactly)
 * ```
 */
export function reorderedCodes(
  codes: CompactMoment,
  transposed: boolean,
  entry: Entry,
): Float32Array {
  const decoded = new Float32Array(entry.size);
  decodeTensor(codes.codes.subarray(0, entry.size), codes.scales, decoded);
  const tfjs = transposed ? fromArena(entryOf(entry.name, entry.shape, true), decoded) : decoded;
  const out = new Float32Array(entry.size);
  toArena(entry, tfjs, out);
  return out;
}

/**
 * Kept state's sections and codes as `entry` holds the variable, its codes given in the orders
 * `transposed` (by moment): codes in that order as they are, the others as f32 sections
 * ({@linkcode reorderedCodes}). `sections` are copied only where one is added.
 *
 * @example
 * ```ts
 * import { inEntryOrder } from "./code_order.ts";
 * import { entryOf } from "./layout.ts";
 * import { EXP_AVG } from "../base/arena.ts";
 * import assert from "node:assert/strict";
 *
 * const m = { codes: new Int8Array(6), scales: new Float32Array(1) };
 * const kept = inEntryOrder([], [m], [true], entryOf("k", [2, 3], false));
 * assert.deepEqual(kept.codes, [undefined]);
 * assert.deepEqual(kept.sections[EXP_AVG], new Float32Array(6));
 * ```
 */
export function inEntryOrder(
  sections: readonly (Float32Array | undefined)[],
  codes: readonly (CompactMoment | undefined)[],
  transposed: readonly boolean[],
  entry: Entry,
): { sections: (Float32Array | undefined)[]; codes: (CompactMoment | undefined)[] } {
  const out = { sections: [...sections], codes: [...codes] };
  codes.forEach((c, m) => {
    if (c === undefined || sameCodeOrder(transposed[m] === true, entry)) return;
    out.sections[EXP_AVG + m] = reorderedCodes(c, transposed[m], entry);
    out.codes[m] = undefined;
  });
  return out;
}
