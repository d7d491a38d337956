/**
 * The names and the place in a file of the tensors a state's holder saves beside it in its
 * checkpoints (core/checkpoint_extras.ts): apart, so that the checkpoint's reading, which the
 * state's own modules import, needs no state.
 *
 * @module
 */
import { CheckpointError, type TensorEntry, type TensorOut } from "../base/safetensors.ts";

/** The suffixes of the tensors a holder saves beside a state (see {@linkcode isExtraTensor}). */
export const EXTRA_SUFFIXES: readonly string[] = Object.freeze([".accum", ".average"]);

/**
 * The metadata key of the count of the gradients accumulated (`<name>.accum`) a file holds, and
 * the name of the TensorFlow.js adapter's weight of that count.
 */
export const ACCUM_COUNT_KEY = "accum_count";

/**
 * Whether a checkpoint's tensor named `name` is one a holder saves beside a state: it ends in
 * `.accum` or `.average` (and is no tensor of the state: the caller checks that).
 *
 * @example
 * ```ts
 * import { isExtraTensor } from "./extra_tensors.ts";
 * import assert from "node:assert/strict";
 *
 * assert.equal(isExtraTensor("dense/kernel.accum"), true);
 * assert.equal(isExtraTensor("dense/kernel.exp_avg"), false);
 * ```
 */
export function isExtraTensor(name: string): boolean {
  return EXTRA_SUFFIXES.some((suffix) => name.length > suffix.length && name.endsWith(suffix));
}

/**
 * `tensors` (a state's, F32 first, then 8-bit codes) with `extra` (F32) after the F32 ones, so
 * that every F32 tensor stays 4-byte aligned in the file.
 *
 * @example
 * ```ts
 * import { withExtraTensors } from "./extra_tensors.ts";
 * import assert from "node:assert/strict";
 *
 * const f32 = (name: string) => ({ name, shape: [1], data: new Float32Array(1) });
 * const codes = { name: "w.exp_avg.codes", shape: [1], data: new Int8Array(1) };
 * const out = withExtraTensors([f32("w"), codes], [f32("w.accum")]);
 * assert.deepEqual(out.map((t) => t.name), ["w", "w.accum", "w.exp_avg.codes"]);
 * ```
 */
export function withExtraTensors(
  tensors: readonly TensorOut[],
  extra: readonly TensorOut[],
): TensorOut[] {
  const at = tensors.findIndex((t) => !(t.data instanceof Float32Array));
  const cut = at < 0 ? tensors.length : at;
  return [...tensors.slice(0, cut), ...extra, ...tensors.slice(cut)];
}

/**
 * Throws a CheckpointError (a RangeError) naming `name`, a tensor of a checkpoint that is no
 * tensor of its state and ends in `.accum` or `.average` ({@linkcode isExtraTensor}), unless it
 * is as its holder saves it: F32; a gradient accumulated (`.accum`) with its count in the
 * metadata (`accum_count`); of as many elements as the parameter of its base name, where that
 * is one (`lengths`: the parameters' element counts by name; a holder keeps sums and averages of
 * variables that the state does not hold, frozen ones; its shape may differ from the state's,
 * which holds a kernel transposed, or a scalar as `[1]`). So a damaged file that dropped a
 * parameter named so from its `tensor_order` is refused, not loaded without it.
 *
 * @example
 * ```ts
 * import { checkExtraTensor } from "./extra_tensors.ts";
 * import assert from "node:assert/strict";
 *
 * const entry = { dtype: "F32", shape: [2, 3], begin: 0, end: 24 } as const;
 * const lengths = new Map([["w", 6]]);
 * checkExtraTensor("w.average", entry, lengths, {}); // as the holder saves it
 * checkExtraTensor("frozen.average", entry, lengths, {}); // of a variable the state lacks
 * assert.throws(() => checkExtraTensor("w.accum", entry, lengths, {}), RangeError);
 * assert.throws(() => checkExtraTensor("w.average", { ...entry, shape: [6, 6] }, lengths, {}));
 * ```
 */
export function checkExtraTensor(
  name: string,
  entry: TensorEntry,
  lengths: ReadonlyMap<string, number>,
  metadata: Readonly<Record<string, string>>,
): void {
  const suffix = EXTRA_SUFFIXES.find((s) => name.endsWith(s))!;
  const sum = suffix === ".accum";
  const what = `${sum ? "a gradient accumulated" : "a moving average"} saved beside the state`;
  const quoted = JSON.stringify(name);
  if (entry.dtype !== "F32") {
    throw new CheckpointError(`Tensor ${quoted} is ${entry.dtype}; expected F32 (${what})`);
  }
  if (sum && !Object.hasOwn(metadata, ACCUM_COUNT_KEY)) {
    throw new CheckpointError(
      `Checkpoint has an unexpected tensor ${quoted}: not in its tensor_order, and no gradient ` +
        `accumulated (those come with their count, the metadata "${ACCUM_COUNT_KEY}")`,
    );
  }
  const base = name.slice(0, -suffix.length);
  const length = lengths.get(base);
  const size = entry.shape.reduce((a, b) => a * b, 1);
  if (length !== undefined && size !== length) {
    throw new CheckpointError(
      `Tensor ${quoted} (${what}) has shape [${entry.shape.join(",")}], ${size} elements, ` +
        `unlike ${JSON.stringify(base)}, ${length}`,
    );
  }
}

/**
 * Throws a CheckpointError where a checkpoint's metadata counts gradients accumulated
 * (`accum_count`) but it holds none beside the state (`extras`: the names of the tensors a
 * holder saved there, {@linkcode isExtraTensor}): its holder saves the count with the sums, and
 * a count of sums that are missing is a damaged file, as sums without their count are.
 *
 * @example
 * ```ts
 * import { checkAccumulated } from "./extra_tensors.ts";
 * import assert from "node:assert/strict";
 *
 * checkAccumulated(["w.accum", "w.average"], { accum_count: "2" });
 * checkAccumulated(["w.average"], {});
 * assert.throws(() => checkAccumulated(["w.average"], { accum_count: "2" }), /lacks/);
 * ```
 */
export function checkAccumulated(
  extras: readonly string[],
  metadata: Readonly<Record<string, string>>,
): void {
  if (!Object.hasOwn(metadata, ACCUM_COUNT_KEY)) return;
  if (extras.some((name) => name.endsWith(EXTRA_SUFFIXES[0]))) return;
  throw new CheckpointError(
    `Checkpoint lacks the gradients accumulated that its metadata "${ACCUM_COUNT_KEY}" counts ` +
      `(${JSON.stringify(metadata[ACCUM_COUNT_KEY])}): no tensor <variable>${
        EXTRA_SUFFIXES[0]
      } beside the state's`,
  );
}
