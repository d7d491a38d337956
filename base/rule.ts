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
   * Fills `out` with the rule's scalars of step `t` (1-based) at the learning rate
   * `out[LR_WORD]` (base/scalars.ts), each at its word (`out[scalars.word.stepSize]`): its own
   * words and `gradScale` (−1 with `maximize`, else 1); the header's `rule` (the tag) is the
   * state's, LookAhead's `sync` and `alpha` the wrapper's. It runs every step, and allocates
   * nothing.
   */
  computeScalars(h: H, t: number, out: StepScalars): void;
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
   * sync, which the kernel fuses in after it) and moments, each with its special (the bits of a NaN
   * or an infinity, decided from the bits as stored, else 0). A moment the rule does not keep is
   * passed as 0 and may be returned as anything; the kernels read and write only the moments the
   * state holds.
   */
  readonly wgsl: string;
}

/**
 * WGSL of what a rule's `rule_values` returns (see {@linkcode Rule.wgsl}), and the helpers a rule
 * decides NaN and infinities with. `p`, `m`, `v`: the new parameters of four elements (before
 * LookAhead's sync) and their new moments (`m` the first, `v` the second), as f32 arithmetic
 * gives them where they are finite; `ps`, `ms`, `vs`: their bits where they are NaN or an
 * infinity (NaN as 0x7fc00000), else 0 (the lane's f32 value stands). WGSL lets a compiler
 * assume that no float value is NaN or infinite (an expression that would yield one has an
 * indeterminate value, and comparisons, `min`, `max`, `select` of one are unspecified), so a rule
 * decides these classes from the bits of the values as stored and its finite scalars, as
 * IEEE-754 has them on the CPU, with the integer helpers here, and the kernels store them as
 * bits (`with_special`), LookAhead's sync and the 8-bit encoding reading the bits, not the value.
 * The same checked path takes the finite values from which an f32 operation of the rule may
 * overflow: `at_least` with a limit (`limit_bits`) below which, given the step's scalars
 * (`exp_above` of their bits), none can (docs/SPEC.md, "Numerics the backends share").
 */
export const RULE_VALUES_WGSL = /* wgsl */ `
struct RuleValues {
  p: vec4<f32>,
  m: vec4<f32>,
  v: vec4<f32>,
  ps: vec4<u32>,
  ms: vec4<u32>,
  vs: vec4<u32>,
}

// The bits of w · x, w a finite scalar, where x (bits: a value as stored, or a special) is NaN or
// an infinity: NaN (so is ∞ · 0), else the infinity of sign sign(x) · sign(w); 0 where x is
// finite.
fn special_times(x: vec4<u32>, w: f32) -> vec4<u32> {
  let mag = x & vec4<u32>(0x7fffffffu);
  let inf = mag == vec4<u32>(0x7f800000u);
  let flip = select(0u, 0x80000000u, w < 0.0);
  let inf_bits = ((x ^ vec4<u32>(flip)) & vec4<u32>(0x80000000u)) | vec4<u32>(0x7f800000u);
  let nan = (mag > vec4<u32>(0x7f800000u)) | (inf & vec4<bool>(w == 0.0));
  return select(select(vec4<u32>(0u), inf_bits, inf), vec4<u32>(0x7fc00000u), nan);
}

// The bits of x + y from the specials of x and y (0 where finite): NaN where either is NaN or
// they are infinities of opposite signs, else the infinity; 0 where both are finite.
fn special_sum(a: vec4<u32>, b: vec4<u32>) -> vec4<u32> {
  let zero = vec4<u32>(0u);
  let nan = (a == vec4<u32>(0x7fc00000u)) | (b == vec4<u32>(0x7fc00000u)) |
    ((a != zero) & (b != zero) & (a != b));
  return select(a | b, vec4<u32>(0x7fc00000u), nan);
}

// The special of x · x from x's: NaN, +Infinity, or 0 where finite.
fn special_square(x: vec4<u32>) -> vec4<u32> { return x & vec4<u32>(0x7fffffffu); }

// x where its special s is 0, else the NaN or infinity s holds.
fn with_special(x: vec4<f32>, s: vec4<u32>) -> vec4<f32> {
  return select(x, bitcast<vec4<f32>>(s), s != vec4<u32>(0u));
}

// The special of w · x for an x of special sx (0 where finite) and a finite scalar w: sx's, scaled,
// where x is not finite; where it is, the infinity w · x rounds to past f32's largest, as IEEE-754
// has it (WGSL lets an overflow give any value): exactly where (x · 2⁻⁶⁴) · (w · 2⁻⁶⁴) rounds to 1
// or more (a factor below 2⁻⁶² makes the product far from the largest); else 0.
fn times_checked(x: vec4<f32>, sx: vec4<u32>, w: f32) -> vec4<u32> {
  let over = abs((x * ${2 ** -64}) * (w * ${2 ** -64})) >= vec4<f32>(1.0);
  let inf = select(vec4<u32>(0x7f800000u), vec4<u32>(0xff800000u), (x < vec4<f32>(0.0)) != vec4<bool>(w < 0.0));
  return select(select(vec4<u32>(0u), inf, over), special_times(sx, w), sx != vec4<u32>(0u));
}

// The special of x · x (as times_checked): NaN or +Infinity from sx, or where x · x overflows.
fn square_checked(x: vec4<f32>, sx: vec4<u32>) -> vec4<u32> {
  let h = abs(x * ${2 ** -64});
  let over = select(vec4<u32>(0u), vec4<u32>(0x7f800000u), h * h >= vec4<f32>(1.0));
  return select(over, special_square(sx), sx != vec4<u32>(0u));
}

// The special of x + y for values x, y of specials sx, sy (as times_checked): special_sum's where
// either is not finite; where both are, the infinity x + y rounds to past f32's largest: exactly
// where x / 2 + y / 2 rounds to 2¹²⁷ or more (halving is exact for the values that matter: one
// is of magnitude 2¹²⁶ or more, and the other's error cannot move the half across a midpoint).
fn sum_checked(x: vec4<f32>, sx: vec4<u32>, y: vec4<f32>, sy: vec4<u32>) -> vec4<u32> {
  let half = x * 0.5 + y * 0.5;
  let inf = select(vec4<u32>(0x7f800000u), vec4<u32>(0xff800000u), half < vec4<f32>(0.0));
  let over = select(vec4<u32>(0u), inf, abs(half) >= vec4<f32>(${2 ** 127}));
  return select(over, special_sum(sx, sy), (sx | sy) != vec4<u32>(0u));
}

// The special of x − y (as sum_checked).
fn difference_checked(x: vec4<f32>, sx: vec4<u32>, y: vec4<f32>, sy: vec4<u32>) -> vec4<u32> {
  return sum_checked(x, sx, -y, special_times(sy, -1.0));
}

// The special of the gradient a rule steps with, grad_scale · (g · pre) + wd · p with a coupled
// decay wd (0: none), from g as stored (its bits gb) and p (its special sp0), as IEEE-754 has it:
// g's scaled, or the sum's (an overflow of the sum, or ∞ − ∞). (grad_scale · (g · pre) cannot
// overflow: neither factor is above 1.)
fn grad_special(grad_scale: f32, pre: f32, g: vec4<f32>, gb: vec4<u32>, p0: vec4<f32>, sp0: vec4<u32>, wd: f32) -> vec4<u32> {
  let sg = special_times(gb, grad_scale);
  if (wd == 0.0) { return sg; }
  return sum_checked(grad_scale * (g * pre), sg, wd * p0, times_checked(p0, sp0, wd));
}

// Whether any of four values as stored (bits) has a magnitude of bits \`limit\` or more, lane by
// lane: NaN and infinities always (limit is at most +Infinity's bits). A rule takes such a vec4
// through its checked path, with a limit below which none of its f32 operations can overflow.
fn at_least(a: vec4<u32>, b: vec4<u32>, c: vec4<u32>, d: vec4<u32>, limit: u32) -> vec4<bool> {
  let mask = vec4<u32>(0x7fffffffu);
  return max(max(a & mask, b & mask), max(c & mask, d & mask)) >= vec4<u32>(limit);
}

// An exponent e with |x| < 2^e, from a finite scalar's bits (0 and subnormals give −126).
fn exp_above(bits: u32) -> i32 { return i32((bits >> 23u) & 0xffu) - 126; }

// The bits of 2^k, the least magnitude at_least takes with limit 2^k: 0 (every value) for
// k < −126, +Infinity's bits (NaN and infinities only) for k ≥ 128.
fn limit_bits(k: i32) -> u32 { return select(0u, u32(min(k, 128) + 127) << 23u, k >= -126); }
`;
