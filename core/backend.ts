/**
 * What a backend provides to the state machinery in core/state.ts: tensor slots held where the
 * kernel runs, a way to load gradients into them, and the fused update.
 *
 * @module
 */
import type { ArenaLayout } from "./arena.ts";
import type { BackendName } from "./options.ts";
import type { StepScalars } from "./scalars.ts";

/** A backend holding one state's arena. `T` is the type of its tensor slots. */
export interface Backend<T = Float32Array> {
  readonly name: BackendName;
  readonly layout: ArenaLayout;
  /** Parameter slots, by name. */
  readonly params: Readonly<Record<string, T>>;
  /** Gradient slots, by name. */
  readonly grads: Readonly<Record<string, T>>;
  /**
   * Copies already-validated gradients into the gradient slots; a value that is the slot itself
   * is not copied.
   */
  loadGrads(grads: T | Readonly<Record<string, T>>): void;
  /**
   * Throws if the backend can no longer step or be read (a lost GPU device); called before
   * anything of a step changes. Optional: CPU backends are always usable.
   */
  checkUsable?(): void;
  /**
   * Validates gradients of the kinds this backend accepts besides Float32Arrays (GPU buffers);
   * optional: without it, core/tensors.ts `checkGrads` applies.
   */
  checkGrads?(grads: unknown): void;
  /**
   * Sum of the squares of every gradient in the arena, accumulated in float64 in the fixed
   * order of `sumSquares` in assembly/index.ts (NaN or Infinity iff some gradient is).
   */
  gradSumSquares?(): number;
  /**
   * Whether some gradient slot holds a NaN or ±Infinity: a read of the gradients and no norm
   * (the check of `nonFinite: "skip"` and `"throw"` where no clipping needs the norm). Optional,
   * with the next member: a CPU backend has both.
   */
  gradsNonFinite?(): boolean;
  /**
   * `loadGrads` with that check fused into the copy (each chunk checked while in cache);
   * returns whether some gradient is non-finite. The slots hold the given gradients either way.
   */
  loadGradsChecked?(grads: T | Readonly<Record<string, T>>): boolean;
  /**
   * Gradient centralization of one tensor's gradient slot, in place: `rows` rows of `cols`
   * elements starting at element `offset` of the section; each row loses its f32 mean.
   */
  centralize?(offset: number, rows: number, cols: number): void;
  /**
   * The segment table (parameter groups), 8 f32 a row as laid out in core/arena.ts; the state
   * writes each row's stepSize, paramDecay and coupledDecay at indices 2, 3, 4 before `update`.
   * Empty without groups. These members are optional: WebGPU has neither
   * `gradSumSquares`, the non-finite checks nor `segmentScalars` (it reduces the norm and checks the gradients on the
   * GPU, and keeps every group's scalars in its per-step ring, see `counter`), and encodes
   * `centralize` into its next `update`.
   */
  readonly segmentScalars?: Float32Array;
  /** Threads the step runs on (wasm with option `threads`); 1 when absent. */
  readonly threads?: number;
  /**
   * Releases what the backend holds besides memory the garbage collector reclaims (the workers
   * of a threaded state); the backend is unusable afterwards. Optional.
   */
  dispose?(): void;
  /** Runs one fused step over the whole arena. */
  update(scalars: StepScalars): void;
  /**
   * Present where the step counts live with the kernel (WebGPU): a skipped step must not
   * advance t, and only the device knows whether it skipped. `update` then takes its scalars
   * from the ones written by `writeScalars` for the device's own t.
   */
  readonly counter?: DeviceCounter;
  /**
   * Live views of one arena section, by tensor name, where the backend's memory is host memory
   * (CPU backends); valid until the next step. Lets a checkpoint write the arena with one copy.
   */
  viewSection?(section: number): Readonly<Record<string, Float32Array>>;
  /** Copies of one arena section (see core/arena.ts), by tensor name. */
  readSection(section: number): Promise<Record<string, Float32Array>>;
  /**
   * Overwrites one arena section from already-validated data (every tensor of the layout, of
   * its length). For restoring state (checkpoints); never on the step's hot path.
   */
  writeSection(section: number, data: Readonly<Record<string, Float32Array>>): void;
}

/**
 * Step counts kept on a device that decides by itself whether a step is taken (WebGPU with the
 * non-finite check). The host learns them asynchronously; until then it assumes the steps it
 * submitted were taken. Scalars are written ahead, per t, into a ring the kernel reads at its t.
 */
export interface DeviceCounter {
  /** Steps taken as last reported, plus the steps submitted since. */
  readonly steps: number;
  /** Steps skipped, as last reported. */
  readonly skipped: number;
  /** The gradient norm of the last step reported (NaN when none is computed). */
  readonly lastNorm: number;
  /** The error the device reported (a non-finite gradient under "throw"), once; then clears it. */
  takeFault(): Error | undefined;
  /** Whether the scalars of step `t` are in the ring. */
  hasScalars(t: number): boolean;
  /**
   * How many steps' scalars to write at once, from the first missing t on (one upload for that
   * many steps; schedules are pure functions of t on such a backend).
   */
  readonly scalarsAhead: number;
  /** Writes the scalars of step `t` (and of each parameter group, index 0 the optimizer's own). */
  writeScalars(t: number, scalars: StepScalars, groups: readonly StepScalars[]): void;
  /** Resolves when the device has reported every step submitted so far. */
  settle(): Promise<void>;
  /** Sets the counts of a state being restored (before its first step). */
  start(steps: number, skipped: number): void;
}
