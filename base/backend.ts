/**
 * The two kinds of backend the state machinery in core/state.ts drives, each an interface with
 * no optional members:
 *
 * - {@linkcode HostBackend} (wasm, threaded wasm, TypeScript): the arena is host memory. The
 *   host decides each step: it reads the gradients' sum of squares, skips or clips, writes the
 *   scalar blocks into the backend's memory, and calls `update`.
 * - {@linkcode DeviceBackend} (WebGPU): the device decides. It keeps the step counts, checks and
 *   clips the gradients itself, and reads the scalars of its own `t` from a ring the host writes
 *   ahead ({@linkcode DeviceCounter}).
 *
 * @module
 */
import type { ArenaLayout, CompactMoment } from "./arena.ts";
import type { BackendName } from "./options.ts";
import type { StepScalars } from "./scalars.ts";

/** The members both kinds share. `T` is the type of the tensor slots. */
interface BackendBase<T> {
  readonly name: BackendName;
  readonly layout: ArenaLayout;
  /** Parameter slots, by name. */
  readonly params: Readonly<Record<string, T>>;
  /** Gradient slots, by name. */
  readonly grads: Readonly<Record<string, T>>;
  /**
   * Copies already-validated gradients, one per tensor in the layout's order (what the check of
   * the step returned: the caller's record is not read again), into the gradient slots; a value
   * that is the slot itself is not copied.
   */
  loadGrads(grads: readonly (T | Float32Array)[]): void;
  /**
   * Gradient centralization of one tensor's gradient slot, in place (a device encodes it into
   * its next `update`): `rows` rows of `cols` elements starting at element `offset`.
   */
  centralize(offset: number, rows: number, cols: number): void;
  /** Runs one fused step over the whole arena, with the scalars written for it. */
  update(): void;
  /** Copies of one arena section (see base/arena.ts), by tensor name. */
  readSection(section: number): Promise<Record<string, Float32Array<ArrayBuffer>>>;
  /**
   * Overwrites one arena section from already-validated data (every tensor of the layout, of
   * its length). For restoring state (checkpoints); never on the step's hot path.
   */
  writeSection(section: number, data: Readonly<Record<string, Float32Array>>): void;
  /**
   * Releases what the backend holds besides memory the garbage collector reclaims (workers, GPU
   * buffers); the backend is unusable afterwards.
   */
  dispose(): void;
}

/** A backend whose arena is host memory (wasm, threads, js). */
export interface HostBackend extends BackendBase<Float32Array> {
  readonly kind: "host";
  /** Threads the step runs on (1 but for wasm with option `threads`). */
  readonly threads: number;
  /**
   * Where the state's step failed half way, why (a threaded state whose worker failed as the
   * step ran, e.g. `a kernel worker failed (…)`): its arena may hold part of that step, which
   * a checkpoint or a state made from it would keep. `undefined` where it holds none (or the
   * backend has no such failure).
   */
  halfStepped?(): string | undefined;
  /**
   * The scalar blocks `update` reads (base/scalars.ts), as two views of the same words: one
   * block per parameter group, block 0 the optimizer's own.
   */
  readonly blocks: { readonly f32: Float32Array; readonly u32: Uint32Array };
  /**
   * Sum of the squares of every gradient in the arena, accumulated in float64 in the fixed
   * order of `sumSquares` in assembly/index.ts (NaN or Infinity iff some gradient is).
   */
  gradSumSquares(): number;
  /**
   * Whether some gradient slot holds a NaN or ±Infinity: a read of the gradients and no norm
   * (the check of `nonFinite: "skip"` and `"throw"` where no clipping needs the norm).
   */
  gradsNonFinite(): boolean;
  /**
   * `loadGrads` with that check fused into the copy (each chunk checked while in cache);
   * returns whether some gradient is non-finite. The slots hold the given gradients either way.
   */
  loadGradsChecked(grads: readonly Float32Array[]): boolean;
  /**
   * Live views of one arena section, by tensor name; valid until the next step. Lets a
   * checkpoint write the arena with one copy.
   */
  viewSection(section: number): Readonly<Record<string, Float32Array>>;
}

/**
 * A host backend that holds 8-bit moments (the CPU backends, cpu/): its `readSection` and
 * `writeSection` of a moment decode and encode the compact tensors' codes, and it gives the
 * codes and scales themselves, for checkpoints to copy as they are.
 */
export interface CompactHostBackend extends HostBackend {
  /**
   * Live views of the codes and scales of moment `k` of each compact tensor (see
   * base/arena.ts `compactViews`), by name; writing into them restores a state exactly.
   */
  viewCompact(k: number): Readonly<Record<string, CompactMoment>>;
}

/** Whether `backend` holds 8-bit moments' codes (a CPU backend). */
export function holdsCodes(backend: AnyBackend): backend is CompactHostBackend {
  return backend.kind === "host" && "viewCompact" in backend;
}

/** A backend that decides on the device whether a step is taken (WebGPU). */
export interface DeviceBackend<T = unknown> extends BackendBase<T> {
  readonly kind: "device";
  /** The GPUDevice it runs on. */
  readonly device: GPUDevice;
  /**
   * Throws if the backend can no longer step or be read (a lost GPU device); called before
   * anything of a step changes.
   */
  checkUsable(): void;
  /**
   * Validates gradients of the kinds this backend accepts (GPU buffers, Float32Arrays), each
   * read from the record once, into `out` (reused by the caller), which it returns in the
   * layout's order for `loadGrads`; read and checked in the order of `visit` (layout indices,
   * default the layout's), so that an error names the first bad one in it.
   */
  checkGrads(
    grads: unknown,
    out: unknown[],
    visit?: readonly number[],
  ): readonly (T | Float32Array)[];
  /** The step counts the device keeps, and the ring of scalars it reads. */
  readonly counter: DeviceCounter;
  /**
   * Prepares the gradient centralization of the tensors of `segments` (flat triples of
   * `centralize`'s arguments), at the state's start. Where the device cannot centralize one, it
   * throws a RangeError naming it and its shape, and the backend is disposed.
   */
  planCentralize(segments: readonly number[]): void;
  /**
   * Copies of the codes and scales of moment `k` of each compact tensor (8-bit states; none in
   * a 32-bit state), by name, after every step submitted so far: what a checkpoint holds.
   */
  readCompact(k: number): Promise<Record<string, CompactMoment>>;
  /**
   * Overwrites the codes and scales of moment `k` of the compact tensors in `data` (already
   * checked) as they are: a restore that is exact.
   */
  writeCompact(k: number, data: Readonly<Record<string, CompactMoment>>): void;
  /**
   * Copies of the state of the tensors `names` alone, by name, read as the sections are read
   * (after every step submitted so far): by section, the f32 values of their moments not held
   * in 8 bits and of their slow weights; by moment, the codes and scales of those held in 8 bits.
   */
  readTensorState(names: readonly string[]): Promise<Record<string, TensorState>>;
  /**
   * The state of the tensors `names` alone and the step counts, held as they are at the call
   * (after every step submitted so far, and none submitted later): copied now on the device,
   * into buffers of the hold's own (see {@linkcode HeldState}). A RangeError where the layout
   * lacks one of them; throws, holding nothing, where the backend can no longer be read.
   */
  holdTensorState(names: readonly string[]): HeldState;
}

/**
 * The state of one tensor (copies), by section index and by moment: the f32 values of its
 * moments not held in 8 bits and of its slow weights (undefined for a section it lacks there),
 * and the codes and scales of each moment it holds in 8 bits (undefined for the others; none in
 * a state of 32-bit moments).
 */
export interface TensorState {
  readonly sections: readonly (Float32Array | undefined)[];
  readonly codes: readonly (CompactMoment | undefined)[];
}

/**
 * Some tensors' state and the step counts of a device state, held on the device as they were
 * at a point of its queue (`holdTensorState`): steps submitted later change nothing of it, and
 * it holds buffers of its own until `discard`.
 */
export interface HeldState {
  /**
   * Resolves with the step counts at the hold once the device has reported the steps submitted
   * before it; rejects with the halt or refusal of one of those (handed out once, as reads
   * do), or where the state can no longer be read (disposed, its device lost). Never rejects
   * unobserved: a hold given up unread needs no handler.
   */
  readonly settled: Promise<{ readonly steps: number; readonly skipped: number }>;
  /** Copies of the state held, by tensor name (after `settled`). */
  read(): Promise<Record<string, TensorState>>;
  /**
   * Copies the state held into `target`, a state of the same rule on the same device holding
   * each tensor with the same length, in 8 bits or not alike (encoded and submitted now).
   */
  copyInto(target: DeviceBackend): void;
  /** Frees the buffers it holds (idempotent); a read under way then rejects. */
  discard(): void;
}

/** A backend of either kind. */
// deno-lint-ignore no-explicit-any
export type AnyBackend = HostBackend | DeviceBackend<any>;

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
  /**
   * The least step whose scalars the next step writes too, below the t it writes from (else
   * Infinity): a state that goes on with another's count (at a change of its tensors) may take
   * its next step at any t from the one after the steps last reported, and its ring starts
   * with the entries that one's held. Back to Infinity once the scalars of the t the next step
   * writes from are written.
   */
  readonly scalarsFrom: number;
  /**
   * The learning rate the host computed for step `t` (a schedule's value), where it is known
   * (written with t's scalars, here or in the state this one went on from), else undefined: the
   * scalars of a t known so but not held (the state before had fewer parameter groups) are
   * computed from it, the schedule not asked again.
   */
  knownLearningRate(t: number): number | undefined;
  /**
   * Writes the scalars of step `t`: one record per scalar block, `groups[0]` the optimizer's own,
   * `groups[g]` parameter group g's; `lr` is the learning rate they were computed from.
   */
  writeScalars(t: number, groups: readonly StepScalars[], lr: number): void;
  /** Resolves when the device has reported every step submitted so far. */
  settle(): Promise<void>;
  /**
   * Sets the counts of a state being restored (before its first step), and the order its
   * gradients are checked in (`visit`, layout indices): a halt names the first bad one in it.
   */
  start(steps: number, skipped: number, visit?: readonly number[]): void;
}
