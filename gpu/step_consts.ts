/**
 * The constants uniform of the step kernels (`Consts` in the WGSL, bound as `s`): what stays the
 * same every step of a state, laid out by one table that both the host's writer and the WGSL
 * struct come from.
 *
 * @module
 */
import { wgslStruct, type WordType } from "./_wgsl.ts";

/** The words of the constants uniform, in order. */
export const STEP_CONSTS = {
  /** Rows of the segment table (parameter-group runs); 0 without groups. */
  segment_count: "u32",
  /** 1 with `clipGradNorm`. */
  clip: "u32",
  /** `clipGradNorm`'s max. */
  clip_max: "f32",
  /** 1 where a non-finite gradient skips the step (`nonFinite` "skip" or "throw"). */
  check: "u32",
  /** 1 where it also halts the state ("throw"). */
  halt_on_bad: "u32",
  /** Entries of the ring of scalars. */
  ring_size: "u32",
  /** u32 words of a ring entry. */
  stride: "u32",
  /** 1 where the gradient norm is computed (clip or check). */
  norm_computed: "u32",
  /** Moments the state keeps (0, 1 or 2): the kernels read and write only those. */
  moments: "u32",
  /** Order rows after the segment rows of the segment table (nonfinite_order.ts); at least 1. */
  order_rows: "u32",
} as const satisfies Record<string, WordType>;

/** Values of the constants uniform, by name. */
export type StepConsts = Record<keyof typeof STEP_CONSTS, number>;

/** Bytes of the constants uniform. */
export const STEP_CONSTS_BYTES = 4 * Object.keys(STEP_CONSTS).length;

/** WGSL of the `Consts` struct. */
export const STEP_CONSTS_WGSL = wgslStruct("Consts", STEP_CONSTS);

/**
 * The bytes of the constants uniform for `values`.
 *
 * @example
 * ```ts
 * import { stepConstsData } from "./step_consts.ts";
 * import assert from "node:assert/strict";
 *
 * const data = stepConstsData({
 *   segment_count: 0, clip: 1, clip_max: 0.5, check: 1, halt_on_bad: 0,
 *   ring_size: 1088, stride: 16, norm_computed: 1, moments: 2, order_rows: 1,
 * });
 * assert.equal(new Float32Array(data)[2], 0.5);
 * ```
 */
export function stepConstsData(values: StepConsts): ArrayBuffer {
  const data = new ArrayBuffer(STEP_CONSTS_BYTES);
  const f32 = new Float32Array(data), u32 = new Uint32Array(data);
  (Object.entries(STEP_CONSTS) as [keyof StepConsts, WordType][]).forEach(([name, type], word) => {
    if (type === "f32") f32[word] = values[name];
    else u32[word] = values[name] >>> 0;
  });
  return data;
}
