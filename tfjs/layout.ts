/**
 * Where a TensorFlow.js variable sits in the optimizer's arena, the copies between the two
 * layouts, and the comparison and wording of shapes (the adapter's error messages word the
 * values they got with the library's own helper, base/_errors.ts).
 *
 * tfjs keeps kernels output-last (`[in, out]` for dense, `[kh, kw, in, out]` for conv2d), where
 * PyTorch keeps them output-first, and the library's gradient centralization subtracts the mean
 * of each *row* (the PyTorch layout: one row per output unit). So, under `gc`, a variable of rank
 * > 1 is held in the arena transposed, as `[out, rest]` (its last axis first), and the library
 * centralizes each output unit over every other axis, as PyTorch's Ranger does for the same
 * layer. Every other variable is held as it is, element for element.
 *
 * @module
 */

/** One variable as the optimizer holds it. */
export interface Entry {
  /** The tfjs variable's name: the key of its state. */
  readonly name: string;
  /** The variable's tfjs shape. */
  readonly shape: readonly number[];
  /** Elements. */
  readonly size: number;
  /** Held transposed, as `[cols, rows]` (gradient centralization in the tfjs layout). */
  readonly transposed: boolean;
  /** The product of every dimension but the last (1 for rank 0 and 1). */
  readonly rows: number;
  /** The last dimension (the size for rank ≤ 1). */
  readonly cols: number;
  /** The shape the library is given (centralized per row when rank > 1 and `gc`). */
  readonly arenaShape: readonly number[];
  /**
   * The id of the `tf.Variable` the state was made for (a step's variables, and state kept aside
   * from them); none for state read by `setWeights` or `loadState`, which any variable of its
   * name may take. A variable made again under the name (the one before disposed) is another
   * variable: it does not take this state.
   */
  readonly variable?: number;
}

/**
 * The entry of a variable of `shape`, for an optimizer that does (`gc`) or does not centralize;
 * with `variable`, the id of the `tf.Variable` a step's state is made for.
 */
export function entryOf(
  name: string,
  shape: readonly number[],
  gc: boolean,
  variable?: number,
): Entry {
  const size = shape.reduce((a, b) => a * b, 1);
  const cols = shape.length === 0 ? 1 : shape[shape.length - 1];
  const rows = cols === 0 ? 0 : size / cols;
  const transposed = gc && shape.length > 1 && size > 0;
  return {
    name,
    shape: [...shape],
    size,
    transposed,
    rows,
    cols,
    // Without gc the shape only labels checkpoints; rank > 1 is centralized only when transposed.
    arenaShape: transposed ? [cols, rows] : gc ? [size] : [...shape],
    ...(variable === undefined ? {} : { variable }),
  };
}

/** Copies `src` (tfjs layout) into `dst` (arena layout). */
export function toArena(entry: Entry, src: Float32Array, dst: Float32Array): void {
  if (!entry.transposed) {
    dst.set(src);
    return;
  }
  const { rows, cols } = entry;
  for (let r = 0; r < rows; r++) {
    const at = r * cols;
    for (let c = 0; c < cols; c++) dst[c * rows + r] = src[at + c];
  }
}

/** A new array holding `src` (arena layout) in the tfjs layout. */
export function fromArena(entry: Entry, src: Float32Array): Float32Array {
  if (!entry.transposed) return src.slice();
  const { rows, cols } = entry;
  const out = new Float32Array(entry.size);
  for (let r = 0; r < rows; r++) {
    const at = r * cols;
    for (let c = 0; c < cols; c++) out[at + c] = src[c * rows + r];
  }
  return out;
}

/** `[a, b, c]`, for error messages. */
export function shapeText(shape: readonly number[]): string {
  return `[${shape.join(", ")}]`;
}

/** Whether two shapes are equal. */
export function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}

/**
 * Whether the state of `entry` may go to the `tf.Variable` of id `id` under its name: state made
 * for another variable (disposed, and one made again under its name) may not; state read by
 * `setWeights` or `loadState` (no variable id) may.
 *
 * @example
 * ```ts
 * import { entryOf, sameVariable } from "./layout.ts";
 * import assert from "node:assert/strict";
 *
 * assert.equal(sameVariable(entryOf("w", [2], false, 7), 7), true);
 * assert.equal(sameVariable(entryOf("w", [2], false, 7), 8), false); // made again under "w"
 * assert.equal(sameVariable(entryOf("w", [2], false), 8), true); // loaded: any variable "w"
 * ```
 */
export function sameVariable(entry: Pick<Entry, "variable">, id: number | undefined): boolean {
  return entry.variable === undefined || id === undefined || entry.variable === id;
}

/**
 * Whether the state of `entry` goes to the variable of `shape` and `tf.Variable` id `id` under
 * its name: of the same shape, and not made for another variable ({@linkcode sameVariable}).
 *
 * @example
 * ```ts
 * import { entryOf, takesState } from "./layout.ts";
 * import assert from "node:assert/strict";
 *
 * assert.equal(takesState(entryOf("w", [2], false, 7), [2], 7), true);
 * assert.equal(takesState(entryOf("w", [2], false, 7), [3], 7), false); // another shape
 * assert.equal(takesState(entryOf("w", [2], false, 7), [2], 8), false); // made again under "w"
 * ```
 */
export function takesState(
  entry: Pick<Entry, "shape" | "variable">,
  shape: readonly number[],
  id: number | undefined,
): boolean {
  return sameShape(entry.shape, shape) && sameVariable(entry, id);
}
