/**
 * What an update rule is to the rest of the library: a module (rules/) that owns its option
 * schema, the moments it keeps (their sections and checkpoint names), its per-step scalars (a
 * block layout and the float64 code that fills it) and its element loop for each backend
 * (TypeScript here; AssemblyScript in assembly/, WGSL in the rule's module). Everything else
 * (arena, threads, GPU ring and chunking, checkpoints, the training-loop features, LookAhead)
 * is rule-agnostic and reads only this.
 *
 * @module
 */
import type { ScalarLayout, StepScalars } from "./scalars.ts";
import type { Schema } from "./schema.ts";

/** The update rule a configuration describes. */
export type RuleKind = "radam" | "adam" | "lion";

/** A rule's resolved hyperparameters, by field (e.g. `lr`, `beta1`, `beta2`, `weightDecay`). */
export type Hyperparameters = Readonly<Record<string, unknown>>;

/** One moment a rule keeps, in section order (`EXP_AVG`, then `EXP_AVG_SQ`). */
export interface Moment {
  /** Its name in checkpoints (`<tensor>.<name>`) and in `readMoments`, as PyTorch's. */
  readonly name: string;
  /** Whether every value must be ≥ 0 (a second moment); checked in checkpoints. */
  readonly nonNegative: boolean;
}

/** The arena sections a TypeScript element loop reads (absent ones alias `p`). */
export interface JsSections {
  readonly p: Float32Array;
  readonly g: Float32Array;
  readonly m0: Float32Array;
  readonly m1: Float32Array;
  readonly slow: Float32Array;
}

/**
 * A rule's TypeScript element loop over elements `[start, end)`, with the scalar block at word
 * `base` of `f32` / `u32` (two views of the same words): the same f32 operations, in the same
 * order, as the rule's AssemblyScript loop, so that the two agree bit for bit.
 */
export type JsStep = (
  s: JsSections,
  start: number,
  end: number,
  f32: Float32Array,
  u32: Uint32Array,
  base: number,
) => void;

/** An update rule. */
export interface Rule {
  /** Its kind (`settings.kind`). */
  readonly kind: RuleKind;
  /** The value of the block's `rule` word: which element loop the kernels run. */
  readonly tag: number;
  /**
   * The name of its element loop in the kernels (rules of one family share it): the prefix of
   * its generated AssemblyScript offsets (`ADAM_BETA1`, `ADAM_TAG`) and of its WGSL struct.
   */
  readonly kernel: string;
  /** Its hyperparameters' schema (common options and LookAhead's are not in it). */
  readonly options: Schema;
  /** The moments it keeps. */
  readonly moments: readonly Moment[];
  /** Its scalar block (the header, then its own words). */
  readonly scalars: ScalarLayout;
  /**
   * Fills `out` with the rule's scalars of step `t` (1-based) at learning rate `lr`: its own
   * words, `rule` and `gradScale` (−1 with `maximize`, else 1); LookAhead's `sync` and
   * `alpha` are the wrapper's. May also set host-only fields (diagnostics) not in the block.
   */
  computeScalars(h: Hyperparameters, t: number, lr: number, out: StepScalars): void;
  /** Its TypeScript element loop. */
  readonly jsStep: JsStep;
  /**
   * WGSL of its element loop, for the WebGPU step kernel (gpu/wgsl_step.ts): its block's struct
   * and loader (`wgslBlock`, core/scalars.ts), and `fn rule_update(i: u32, base: u32,
   * grad_scale: f32, keep: vec4<bool>)`, the update of vec4 `i` of the bound sections (`p`, `g`,
   * `m`, `v`) with the block at word `base` of `ring` and the clipped gradient scale, which ends
   * with `finish_update` (LookAhead's sync and the params' store, rules/lookahead.ts); lanes in
   * `keep` keep their values.
   */
  readonly wgsl: string;
}
