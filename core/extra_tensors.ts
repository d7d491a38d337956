/**
 * The names and the place in a file of the tensors a state's holder saves beside it in its
 * checkpoints (core/checkpoint_extras.ts): apart, so that the checkpoint's reading, which the
 * state's own modules import, needs no state.
 *
 * @module
 */
import type { TensorOut } from "../base/safetensors.ts";

/** The suffixes of the tensors a holder saves beside a state (see {@linkcode isExtraTensor}). */
export const EXTRA_SUFFIXES: readonly string[] = Object.freeze([".accum", ".average"]);

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
