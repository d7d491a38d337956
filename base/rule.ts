/**
 * What an update rule is to the rest of the library: a module (rules/) that owns its option
 * schema, the moments it keeps (their sections and checkpoint names), its per-step scalars (a
 * block layout and the float64 code that fills it) and its element loop for each backend
 * (TypeScript and WGSL in the rule's module, AssemblyScript in assembly/). Everything else
 * (arena, threads, GPU ring and chunking, checkpoints, the training-loop features, LookAhead)
 * is rule-agnostic and reads only this.
 *
 * The element loops see the moments only as the sections they are handed (`JsSections.m0`,
 * `m1`; the AssemblyScript loop's addresses), f32 and indexed like the parameters, or from an
 * offset (`JsStep`'s `mo`): the TypeScript backend hands the loop decoded blocks of 8-bit moments
 * that way. The AssemblyScript loop of 8-bit moments (`<name>CompactRange`) decodes and encodes
 * them itself (base/q8.ts has the codes). The WGSL one takes and returns values (`rule_values`):
 * the GPU kernels load and store the moments, f32 or 8-bit.
 *
 * @module
 */
import type { ScalarLayout, StepScalars } from "./scalars.ts";
import type { Schema } from "./schema.ts";

/**
 * A rule's resolved hyperparameters (`settings.hyperparameters`, e.g. `lr`, `beta1`,
 * `weightDecay`): what its schema resolves, of a type of the rule's own
 * (`LionHyperparameters`), which a `Rule` of any type accepts.
 */
export type Hyperparameters = object;

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
 * order, as the rule's AssemblyScript loop, so that the two agree bit for bit. Element `i`'s
 * moments are `m0[i - mo]` and `m1[i - mo]` (the parameters, gradients and slow weights
 * `p[i]`, `g[i]`, `slow[i]`). It stores the new parameters before LookAhead's sync, which the
 * TypeScript backend runs over the range after it (`syncJs`, rules/lookahead.ts); it calls no
 * function but `Math.fround` and `Math.sqrt` per element, so that V8 optimizes the loop whole.
 */
export type JsStep = (
  s: JsSections,
  start: number,
  end: number,
  f32: Float32Array,
  u32: Uint32Array,
  base: number,
  mo: number,
) => void;

/**
 * An update rule: one module of rules/, its element loop in every backend. Its name names its
 * kernels: the AssemblyScript loops `<name>Range` (f32 moments) and `<name>CompactRange` (8-bit
 * moments) of assembly/<name>.ts (whose dispatch by tag is generated), the prefix of its
 * generated word offsets (`ADAM_BETA1`) and its WGSL struct.
 * The tag the kernels dispatch on is not the rule's: it is its place in the registry
 * (core/registry.ts), written into the header's `rule` word by the state.
 */
export interface Rule<H = Hyperparameters> {
  /** Its name (`settings.rule`): lower-case letters and digits, unique in the registry. */
  readonly name: string;
  /**
   * Its options' schema (common options and LookAhead's are not in it). An optimizer of the
   * registry may take another schema for the same rule (RAdam's adds its rectification's).
   */
  readonly options: Schema;
  /**
   * The moments it keeps with hyperparameters `h` (they may depend on them: SGD without
   * momentum keeps none), in section order, at most two.
   */
  moments(h: H): readonly Moment[];
  /** Its scalar block (the header, then its own words). */
  readonly scalars: ScalarLayout;
  /**
   * Fills `out` with the rule's scalars of step `t` (1-based) at learning rate `lr`: its own
   * words and `gradScale` (−1 with `maximize`, else 1); the header's `rule` (the tag) is the
   * state's, LookAhead's `sync` and `alpha` the wrapper's. May also set host-only fields
   * (diagnostics) not in the block.
   */
  computeScalars(h: H, t: number, lr: number, out: StepScalars): void;
  /**
   * Its TypeScript element loop. With 8-bit states it runs on decoded blocks of the moments, so
   * that the step of a block is this loop's arithmetic on the moments its codes hold; the
   * AssemblyScript kernel's `<name>CompactRange` (assembly/<name>.ts) does the same operations,
   * decoding and encoding the block itself.
   */
  readonly jsStep: JsStep;
  /**
   * WGSL of its element loop, for the WebGPU step kernels (gpu/wgsl_step.ts for f32 moments,
   * gpu/wgsl_compact.ts for 8-bit ones): its block's struct and loader (`wgslBlock`,
   * base/scalars.ts), and `fn rule_values(base: u32, grad_scale: f32, pre: f32, p0: vec4<f32>,
   * g: vec4<f32>, m0: vec4<f32>, v0: vec4<f32>) -> RuleValues` ({@linkcode RULE_VALUES_WGSL}):
   * the update of four elements from their values (`p0`, `g`, `m0`, `v0` as stored, so that a
   * rule may tell NaN and infinities from their bits), with the block at word `base` of `ring`,
   * the clipped gradient scale and the power of two the gradients are first multiplied by
   * (`grad_scale · (g · pre)`, see gpu/wgsl_norm.ts): their new parameters (before LookAhead's
   * sync, which the kernel fuses in after it) and moments. A moment the rule does not keep is passed as 0 and may be
   * returned as anything; the kernels read and write only the moments the state holds.
   */
  readonly wgsl: string;
}

/**
 * WGSL of what a rule's `rule_values` returns (see {@linkcode Rule.wgsl}): the new parameters of
 * four elements (before LookAhead's sync) and their new moments (`m` the first, `v` the second).
 */
export const RULE_VALUES_WGSL = /* wgsl */ `
struct RuleValues {
  p: vec4<f32>,
  m: vec4<f32>,
  v: vec4<f32>,
}
`;
