/**
 * The control buffer of a WebGPU state, where the device keeps its step counts
 * (device_counter.ts is the host's side): one table, {@linkcode CONTROL}, lays it out (name →
 * word, type), and both the WGSL struct `Control` and the host's reads and writes of it come
 * from it; and `decide` (WGSL, run by one invocation before a step's update), which counts the
 * submission and takes, skips or halts the step.
 *
 * @module
 */
import { wgslStruct, wordsOf, type WordType } from "./_wgsl.ts";
import { HALT } from "./halt_error.ts";

/**
 * The words of the control buffer: the step's gradient norm and non-finite key (written by the
 * norm passes), the t its update runs at, then the counts the device keeps.
 *
 * @example Reading a count from a copy of the buffer
 * ```ts
 * import { CONTROL_WORD } from "./control.ts";
 *
 * const words = new Uint32Array(13);
 * words[CONTROL_WORD.taken]; // the steps taken since the state's start
 * ```
 */
export const CONTROL = {
  /**
   * The global gradient norm of this step (f32): NaN where a gradient is NaN, else Infinity
   * where one is ±Infinity, as the CPU backends' float64 norm.
   */
  norm: "f32",
  /** 0xffffffff − (first non-finite gradient's position in init's order), or 0 if none. */
  key: "u32",
  /** The t' (scalar_ring.ts) this step's update runs at, or 0 when it does not run (`decide`). */
  step_t: "u32",
  /**
   * The clipping factor of this step, clipGradNorm / norm, as `clip_pow2 · clip_scale` (written
   * with `norm`, see `set_norm` in wgsl_norm.ts): finite where the norm of finite gradients is
   * past f32's range, and reads Infinity; a normal f32 where the factor is below 2⁻¹²⁶; 0 where
   * a gradient is ±Infinity and none NaN; 1 where the step does not clip.
   */
  clip_scale: "f32",
  /** Steps submitted (every `decide`). */
  submitted: "u32",
  /** Steps taken since the start (init, loadState). */
  taken: "u32",
  /** Steps skipped (a non-finite gradient under "skip"), mod 2³²: the count's low word. */
  skipped: "u32",
  /** One of {@linkcode HALT}. */
  halted: "u32",
  /** The position in init's order of the first non-finite gradient of the halting step. */
  first_bad: "u32",
  /** The bits of the norm of the last step taken or skipped (NaN's where none is computed). */
  norm_bits: "u32",
  /** `submitted` at the halt. */
  halted_at: "u32",
  /** The power of two the gradients are first multiplied by where clipping (1, or 2⁻¹²⁶). */
  clip_pow2: "f32",
  /**
   * The count of steps skipped's high word, ⌊skipped / 2³²⌋ (below 2²¹): with `skipped` the
   * device knows the count exactly, so a step that would skip past 2⁵³ − 1 (high word 0x1fffff,
   * low word 0xffffffff) is refused as under "throw" (a checkpoint could not hold the count),
   * as on the CPU, however far below the limit the state started and with no readback.
   */
  skipped_hi: "u32",
} as const satisfies Record<string, WordType>;

/** The word of each field of the control buffer. */
export const CONTROL_WORD = wordsOf(CONTROL);

/** Bytes of the control buffer. */
export const CONTROL_BYTES = 4 * Object.keys(CONTROL).length;

/** The bits of f32 NaN (the norm of a step that computes none). */
export const NAN_BITS = 0x7fc00000;

/**
 * WGSL of the control buffer's struct and of `decide()`: counts the submission, then halts the
 * state (a non-finite gradient under "throw", or under "skip" past 2⁵³ − 1 skipped; no scalars
 * for t), skips the step or takes it, and records the norm; `control.step_t` is then the t the
 * update runs at, or 0. Needs `control` (read-write), the ring (see scalar_ring.ts) and the
 * constants `s` bound.
 */
export const DECIDE_WGSL = /* wgsl */ `
${wgslStruct("Control", CONTROL)}

fn decide() {
  control.submitted = control.submitted + 1u;
  control.step_t = 0u;
  if (control.halted != ${HALT.running}u) { return; }
  // (Under "skip", with 2⁵³ − 1 skipped already: refused as "throw" refuses it.)
  let capped = control.skipped_hi == 0x1fffffu && control.skipped == 0xffffffffu;
  if (s.check != 0u && control.key != 0u && (s.halt_on_bad != 0u || capped)) {
    // Refused ("throw"): the norm stays the last step's taken or skipped, as on the CPU.
    control.halted = select(${HALT.skipLimit}u, ${HALT.nonFinite}u, s.halt_on_bad != 0u);
    control.first_bad = 0xffffffffu - control.key;
    control.halted_at = control.submitted;
    return;
  }
  control.norm_bits = select(${NAN_BITS}u, bitcast<u32>(control.norm), s.norm_computed != 0u);
  if (s.check != 0u && control.key != 0u) {
    control.skipped = control.skipped + 1u;
    if (control.skipped == 0u) { control.skipped_hi = control.skipped_hi + 1u; }
    return;
  }
  let t = control.taken + 1u;
  if (ring_tag(ring_entry(t)) != t) {
    control.halted = ${HALT.noScalars}u;
    control.halted_at = control.submitted;
    return;
  }
  control.taken = t;
  control.step_t = t;
}
`;
