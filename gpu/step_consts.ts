/**
 * The constants uniform of the step kernels (`Consts` in the WGSL, bound as `s`): what stays the
 * same every step of a state, laid out by one table that both the host's writer and the WGSL
 * struct come from.
 *
 * @module
 */
import { type ArenaLayout, EXP_AVG, EXP_AVG_SQ, hasSection } from "../base/arena.ts";
import type { NonFinitePolicy } from "../base/options.ts";
import { wgslStruct, type WordType } from "./_wgsl.ts";
import { RING_SIZE } from "./scalar_ring.ts";

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

/** How a state's step treats the gradients (`BackendSetup`'s options, webgpu_backend.ts). */
export interface GradTreatment {
  /** Clip the gradients to this global L2 norm, computed on the GPU each step. */
  clipGradNorm?: number;
  /** What a step with a NaN or ±Infinity gradient does (checked on the GPU each step). */
  nonFinite?: NonFinitePolicy;
}

/**
 * Whether a state's step computes the gradient norm on the device: with clipping, or the
 * non-finite check.
 *
 * @example
 * ```ts
 * import { computesNorm } from "./step_consts.ts";
 * import assert from "node:assert/strict";
 *
 * assert.equal(computesNorm({}), false);
 * assert.equal(computesNorm({ nonFinite: "skip" }), true);
 * assert.equal(computesNorm({ clipGradNorm: 1 }), true);
 * ```
 */
export function computesNorm({ nonFinite = "propagate", clipGradNorm }: GradTreatment): boolean {
  return nonFinite !== "propagate" || clipGradNorm !== undefined;
}

/**
 * The constants of a state: its layout's segments and moments, its treatment of the gradients,
 * the ring's entry `stride` (u32 words; scalar_ring.ts) and the non-finite order's `orderRows`
 * (nonfinite_order.ts).
 *
 * @example
 * ```ts ignore
 * const values = stepConstsOf(layout, { clipGradNorm: 1 }, counter.ring.stride, order.rows);
 * device.queue.writeBuffer(consts, 0, stepConstsData(values));
 * ```
 */
export function stepConstsOf(
  layout: ArenaLayout,
  treatment: GradTreatment,
  stride: number,
  orderRows: number,
): StepConsts {
  const { nonFinite = "propagate", clipGradNorm } = treatment;
  return {
    segment_count: layout.segments.length,
    clip: clipGradNorm === undefined ? 0 : 1,
    clip_max: clipGradNorm ?? 0,
    check: nonFinite !== "propagate" ? 1 : 0,
    halt_on_bad: nonFinite === "throw" ? 1 : 0,
    ring_size: RING_SIZE,
    stride,
    norm_computed: computesNorm(treatment) ? 1 : 0,
    moments: [EXP_AVG, EXP_AVG_SQ].filter((k) => hasSection(layout, k)).length,
    order_rows: orderRows,
  };
}
