/**
 * State kept aside: what the adapter holds where no live state holds it. The moments and slow
 * weights of variables left out of the last step (frozen layers), or read by `setWeights` or
 * `loadState` and not yet matched to a variable, by variable name; and the step counts while
 * there is no state (before the first step, after `setWeights`). A new state takes it through
 * kept_write.ts.
 *
 * @module
 */
import { type CompactMoment, EXP_AVG } from "../base/arena.ts";
import type { HostBackend } from "../base/backend.ts";
import { halfStepOf, type OptimizerState, stateInternals } from "../core/state.ts";
import { decodeTensor } from "../base/q8_tensor.ts";
import { halfStepRefusal } from "../base/_state_errors.ts";
import { type Entry, entryOf, sameShape, sameVariable, toArena } from "./layout.ts";
import { compactCopies, stateViews } from "./host_state.ts";
import { inEntryOrder } from "./code_order.ts";
import { checkAttached } from "../cpu/cpu_backend.ts";

/**
 * Throws a TypeError where the optimizer's state `state` (on worker threads) may hold part of a
 * step that failed half way, as `saveState` and init's option `from` refuse it: `keeper` says
 * what would have kept that part (the weights `getWeights` gives, a new state made from it).
 */
export function checkWhole(state: OptimizerState<unknown>, keeper: string): void {
  const half = halfStepOf(stateInternals(state).backend);
  if (half === undefined) return;
  throw halfStepRefusal(
    "The optimizer's state (on worker threads) is refused",
    half,
    keeper,
    "changed",
    ", or from weights given before it (setWeights)",
  );
}

/** The state of one variable kept aside. */
export interface Kept {
  /**
   * The variable as it was held. For state read from a checkpoint (`loadState`), where only the
   * arena shape is known, a placeholder: `arenaShape` then says which variables it fits.
   */
  readonly entry: Entry;
  readonly arenaShape?: readonly number[];
  /**
   * By arena section, in the arena layout; undefined for PARAMS and GRADS, and for a moment
   * held as codes (`codes`).
   */
  readonly sections: (Float32Array | undefined)[];
  /**
   * By moment (0: `exp_avg`, 1: `exp_avg_sq`): the codes and scales of a moment held in 8 bits
   * (copies, in the arena layout), kept as they are so that a resume is exact.
   */
  readonly codes?: readonly (CompactMoment | undefined)[];
  /**
   * For codes read by `setWeights` without an f32 weight of the variable (which gives its
   * shape): the sizes the variable may have (its codes come packed 4 to an int32).
   */
  readonly sizes?: readonly [number, number];
  /**
   * For codes read by `setWeights`, or by `loadState` from a checkpoint saved under another
   * `gc`: by moment, whether they are in the transposed order (`<variable>/m.transposed.codes`).
   * Kept in that order (getWeights gives them back so) and reordered where it is not the one the
   * variable is held in, by the step that takes them ({@linkcode KeptStates.fitting}).
   */
  readonly codesTransposed?: readonly boolean[];
  /**
   * For state kept aside from a state on the GPU (tfjs's webgpu backend: a variable left out of
   * a step): resolves once its sections and codes, read back from the GPU, are filled in; rejects
   * where the read failed (a lost device). Until then the GPU path copies it on the GPU.
   */
  readonly ready?: Promise<void>;
  /**
   * For state read by `loadState`: its sections and codes are views of the arena of the state
   * loaded, which `optimizer.state` gives until a step (not copies beside it: the moments are
   * held once). Copied by {@linkcode KeptStates.ownBorrowed} once that state ends.
   */
  readonly borrowed?: boolean;
}

/** A kept state as it fits one variable: the entry its sections are laid out by. */
export interface Fitting {
  readonly entry: Entry;
  readonly sections: readonly (Float32Array | undefined)[];
  readonly codes?: readonly (CompactMoment | undefined)[];
}

/** A loaded state matched to a variable of another `_<n>` suffix: its name, and it. */
interface Matched {
  readonly name: string;
  readonly kept: Kept;
}

/** A variable the kept state is matched to: its name and tfjs shape (and `tf.Variable` id). */
export interface Wanted {
  readonly name: string;
  readonly shape: readonly number[];
  readonly variable?: number;
}

/** tfjs's registry of variables (`tf.engine().registeredVariables`): by name, the live one. */
export type Registry = Readonly<Record<string, { readonly id: number }>>;

/**
 * Whether `k`, kept under `name` aside from a step, is of a variable that is gone: `registered`
 * holds no variable of its name, or another `tf.Variable` (the one it was kept for disposed).
 * State read by `setWeights` or `loadState` (kept for no variable) never is.
 */
function isGone(name: string, k: Kept, registered: Registry): boolean {
  if (k.entry.variable === undefined) return false;
  const variable = Object.hasOwn(registered, name) ? registered[name] : undefined;
  return variable === undefined || variable.id !== k.entry.variable;
}

/**
 * Ties a name from a saved model to a variable of the same base name (tfjs's `_<n>` suffix).
 *
 * @example
 * ```ts
 * import { baseName } from "./kept.ts";
 * import assert from "node:assert/strict";
 *
 * assert.equal(baseName("dense_Dense1/kernel_3"), "dense_Dense1/kernel");
 * ```
 */
export function baseName(name: string): string {
  return name.replace(/_\d+$/, "");
}

/**
 * The kept-aside states of an optimizer, and its step counts while it has no state.
 *
 * @example
 * ```ts
 * import { KeptStates } from "./kept.ts";
 * import { entryOf } from "./layout.ts";
 * import assert from "node:assert/strict";
 *
 * const kept = new KeptStates();
 * const m = new Float32Array([1, 2]);
 * kept.replace(new Map([["w", { entry: entryOf("w", [2], false), sections: [, , m] }]]), 3, 0);
 * // A variable loaded as "w_1" (tfjs's suffix) gets the state saved as "w".
 * const fitting = kept.fitting([{ name: "w_1", shape: [2] }], false, {});
 * assert.equal(fitting.get("w_1")!.sections[2], m);
 * assert.equal(kept.steps, 3);
 * ```
 */
export class KeptStates {
  readonly #byName = new Map<string, Kept>();
  /** Steps taken and skipped where no state holds them. */
  steps = 0;
  skipped = 0;
  /**
   * The names of states read by {@linkcode replace} that no variable has taken yet: saved names
   * may differ from the variables' by `_<n>`.
   */
  readonly #loaded = new Set<string>();
  /**
   * The loaded states the last {@linkcode fitting} matched to variables of another name (by
   * their name): forgotten by {@linkcode forgetTaken}, once the state that takes them is made.
   */
  #matched = new Map<string, Matched>();

  /** The variable names kept, in the order they were kept. */
  names(): string[] {
    return [...this.#byName.keys()];
  }

  /** The names of the states read by {@linkcode replace} that no variable has taken yet. */
  loadedNames(): string[] {
    return [...this.#loaded].filter((name) => this.#byName.has(name));
  }

  /** The kept states, in the order they were kept. */
  values(): IterableIterator<Kept> {
    return this.#byName.values();
  }

  /**
   * Keeps the state of `entries`, the variables of a host state, and its step counts: before
   * those kept already, as `getWeights` lists them (the state's, then those kept aside), so that
   * those a step then leaves out stay in that order, which a resume by `setWeights` of those
   * weights keeps too.
   */
  keepState(state: OptimizerState<unknown>, entries: readonly Entry[]): void {
    checkWhole(state, "a new state made from it for a step over other variables");
    const internals = stateInternals(state);
    this.steps = internals.steps;
    this.skipped = internals.skipped;
    const backend = internals.backend as HostBackend;
    const views = stateViews(backend);
    const compact = compactCopies(backend);
    this.keepFirst(entries.map((entry) => {
      const codes = compact.map((c) => c[entry.name]);
      const sections = views.map((v) => v?.[entry.name]?.slice());
      return { entry, sections, ...(codes.some((c) => c) ? { codes } : {}) };
    }));
  }

  /**
   * Keeps `kept` (the variables of a state, in its order) before those kept already, as
   * {@linkcode keepState} orders them; what was kept under their names is replaced.
   */
  keepFirst(kept: readonly Kept[]): void {
    const names = new Set(kept.map((k) => k.entry.name));
    const before = [...this.#byName].filter(([name]) => !names.has(name));
    this.#byName.clear();
    for (const k of kept) {
      this.#loaded.delete(k.entry.name);
      this.#byName.set(k.entry.name, k);
    }
    for (const [name, k] of before) this.#byName.set(name, k);
  }

  /**
   * Replaces everything kept by `kept` (read by `setWeights` or `loadState`), with these step
   * counts; each {@linkcode fitting} first matches those of them no variable has taken yet to
   * variables whose names differ by tfjs's `_<n>` suffix (also at a later step than the next:
   * a variable frozen when the model was saved comes back when it is unfrozen).
   */
  replace(kept: ReadonlyMap<string, Kept>, steps: number, skipped: number): void {
    this.clear();
    for (const [name, k] of kept) {
      this.#byName.set(name, k);
      this.#loaded.add(name);
    }
    this.steps = steps;
    this.skipped = skipped;
  }

  /**
   * A function that puts back what is kept and the counts as they are now: for a step that made
   * a state from them and then failed (the kept states themselves are never changed, only
   * added, replaced or forgotten).
   */
  saved(): () => void {
    const byName = [...this.#byName], loaded = [...this.#loaded];
    const matched = this.#matched, steps = this.steps, skipped = this.skipped;
    return () => {
      this.clear();
      for (const [name, k] of byName) this.#byName.set(name, k);
      for (const name of loaded) this.#loaded.add(name);
      this.#matched = matched;
      this.steps = steps;
      this.skipped = skipped;
    };
  }

  /**
   * Replaces each kept state whose sections and codes are views of a loaded state's arena
   * (`borrowed`) by copies of them: called once that state ends, so that the variables no step
   * has taken yet hold their own moments, not the whole arena (parameters and gradients too).
   */
  ownBorrowed(): void {
    const owned = new Map<Kept, Kept>();
    for (const [name, k] of this.#byName) {
      if (k.borrowed !== true) continue;
      const { borrowed: _, ...rest } = k;
      const codes = k.codes?.map((c) => c && { codes: c.codes.slice(), scales: c.scales.slice() });
      const copy = {
        ...rest,
        sections: k.sections.map((s) => s?.slice()),
        ...(codes && { codes }),
      };
      owned.set(k, copy);
      this.#byName.set(name, copy);
    }
    for (const [name, m] of this.#matched) {
      const copy = owned.get(m.kept);
      if (copy !== undefined) this.#matched.set(name, { name: m.name, kept: copy });
    }
  }

  /**
   * Throws the TypeError of a state whose memory was detached where the arena that the kept
   * states read by `loadState` are views of (`borrowed`) was: transferred with the ArrayBuffer of
   * `optimizer.state.params` (the state loaded, until a step), which leaves their moments empty.
   * Nothing changes: another `loadState` resumes.
   */
  checkBorrowed(): void {
    for (const k of this.#byName.values()) {
      if (k.borrowed !== true) continue;
      const views = [...k.sections, ...(k.codes ?? []).flatMap((c) => c ? [c.codes] : [])];
      for (const v of views) {
        if ((v?.buffer as { detached?: boolean } | undefined)?.detached) checkAttached(v!.buffer);
      }
    }
  }

  /** Forgets every kept state (not the counts). */
  clear(): void {
    this.#byName.clear();
    this.#loaded.clear();
    this.#matched = new Map();
  }

  /**
   * The kept state of each of `wanted` that fits it (by name; none for a variable whose kept
   * state has another shape, or was kept for another `tf.Variable` of its name): its sections in
   * the arena layout of an optimizer that does (`gc`) or does not centralize, with the entry they
   * are laid out by. Still kept until {@linkcode forgetTaken}, as is the state of variables that
   * are gone (by `registered`, tfjs's registry), which the matching of loaded names treats as
   * forgotten already; a loaded state matched to a variable of another `_<n>` suffix stays kept
   * under its own name until then too (a step that fails changes nothing).
   */
  fitting(wanted: readonly Wanted[], gc: boolean, registered: Registry): Map<string, Fitting> {
    const matched = this.#matched = this.#loaded.size > 0
      ? this.#matchLoadedNames(wanted, gc, registered)
      : new Map<string, Matched>();
    const out = new Map<string, Fitting>();
    for (const w of wanted) {
      const m = matched.get(w.name);
      const k = m
        ? { ...m.kept, entry: { ...m.kept.entry, name: w.name } }
        : this.#byName.get(w.name);
      if (k && !sameVariable(k.entry, w.variable)) continue; // (another variable's: fresh)
      if (k && inTfjsOrder(k, w.shape, gc)) {
        out.set(w.name, transposedCopy(k, entryOf(w.name, w.shape, gc)));
      } else if (k && keptFits(k, w.shape, gc)) {
        // The layout it was held in: as this optimizer holds it on the CPU.
        const entry = k.arenaShape || k.sizes ? entryOf(w.name, w.shape, gc) : k.entry;
        // (Codes read packed may carry up to 3 codes of padding.)
        const codes = k.codes?.map((c) =>
          c && { codes: c.codes.subarray(0, entry.size), scales: c.scales }
        );
        const held = codes && k.codesTransposed
          ? inEntryOrder(k.sections, codes, k.codesTransposed, entry)
          : { sections: k.sections, ...(codes ? { codes } : {}) };
        out.set(w.name, { entry, ...held });
      }
    }
    return out;
  }

  /**
   * Once a state over `wanted` is made (only then: where making it fails, the state kept for
   * them and for gone variables stays kept), forgets what is kept under their names (now in the
   * state, or started fresh), and the state kept aside from a step of variables that are gone:
   * where `registered` (tfjs's registry) holds no variable of its name, or another `tf.Variable`
   * (the one it was kept for disposed). No variable can take that (one made again under the name
   * starts fresh), and `getWeights` would otherwise save it with another model.
   */
  forgetTaken(wanted: readonly Wanted[], registered: Registry): void {
    for (const w of wanted) {
      const m = this.#matched.get(w.name);
      // (The loaded state the last `fitting` matched to it, where it is still the one kept.)
      if (m !== undefined && this.#byName.get(m.name) === m.kept) {
        this.#byName.delete(m.name);
        this.#loaded.delete(m.name);
      }
      this.#byName.delete(w.name);
      this.#loaded.delete(w.name);
    }
    this.#matched = new Map();
    for (const [name, k] of this.#byName) {
      if (isGone(name, k, registered)) this.#byName.delete(name);
    }
  }

  /**
   * tfjs-layers names a loaded model's variables `<name>_<n>` where `<name>` was taken before in
   * the process (the saved model still alive, or built or loaded earlier), and a saved model's
   * may carry such a suffix too. A loaded state whose name has no variable goes to the one
   * variable of the same base name and shape that has no kept state of its own (one new to the
   * optimizer); where that is not one variable, nothing is moved (the variable starts fresh), so
   * nothing is ever mis-assigned. The state of a gone variable (`registered`) counts for none.
   * By the variable's name: the loaded state it takes (nothing is moved here).
   */
  #matchLoadedNames(
    wanted: readonly Wanted[],
    gc: boolean,
    registered: Registry,
  ): Map<string, Matched> {
    const matched = new Map<string, Matched>();
    const kept = this.#byName;
    const held = (name: string) => kept.has(name) && !isGone(name, kept.get(name)!, registered);
    const names = new Set(wanted.map((w) => w.name));
    const orphans = [...kept.keys()].filter((k) => !names.has(k) && held(k));
    for (const orphan of orphans) {
      if (!this.#loaded.has(orphan)) continue;
      const k = kept.get(orphan)!;
      const candidates = wanted.filter((w) =>
        !held(w.name) && baseName(w.name) === baseName(orphan) && keptFits(k, w.shape, gc)
      );
      const others = orphans.filter((o) => o !== orphan && baseName(o) === baseName(orphan));
      if (candidates.length !== 1 || others.length > 0) continue;
      // (It takes the place of a gone variable's state under the name.)
      matched.set(candidates[0].name, { name: orphan, kept: k });
    }
    return matched;
  }
}

/**
 * Whether kept state fits a variable of `shape`, as a step takes it (by name or base name, the
 * caller's): the same shape; for state read by `loadState`, the same arena shape
 * ({@linkcode arenaFits}); for codes given to `setWeights` without an f32 weight, a size among
 * those they may hold. Judged from shapes and sizes alone: no code is read (nor decoded).
 *
 * @example
 * ```ts
 * import { keptFits } from "./kept.ts";
 * import { entryOf } from "./layout.ts";
 * import assert from "node:assert/strict";
 *
 * const kept = { entry: entryOf("w", [2, 3], false), sections: [] };
 * assert.equal(keptFits(kept, [2, 3], false), true);
 * assert.equal(keptFits(kept, [3, 2], false), false);
 * assert.equal(keptFits({ ...kept, sizes: [4997, 5000] }, [50, 100], false), true);
 * ```
 */
export function keptFits(kept: Kept, shape: readonly number[], gc: boolean): boolean {
  if (kept.sizes !== undefined) {
    const size = shape.reduce((a, b) => a * b, 1);
    return size >= kept.sizes[0] && size <= kept.sizes[1];
  }
  if (kept.arenaShape === undefined) return sameShape(kept.entry.shape, shape);
  return arenaFits(kept, shape, gc);
}

/**
 * Whether kept state read by `loadState` holds a kernel of `shape` flat in the tfjs order, where
 * an optimizer under `gc` holds it transposed (`[out, rest]`): a checkpoint of a state on tfjs's
 * webgpu backend, where tfjs centralizes and the state keeps every variable in the tfjs layout
 * (its shapes flat, so that the library does not centralize again).
 *
 * @example
 * ```ts
 * import { inTfjsOrder } from "./kept.ts";
 * import { entryOf } from "./layout.ts";
 * import assert from "node:assert/strict";
 *
 * const kept = { entry: entryOf("k", [6], false), arenaShape: [6], sections: [] };
 * assert.equal(inTfjsOrder(kept, [2, 3], true), true);
 * assert.equal(inTfjsOrder(kept, [2, 3], false), false); // not transposed: taken as it is
 * assert.equal(inTfjsOrder({ ...kept, arenaShape: [3, 2] }, [2, 3], true), false); // transposed
 * ```
 */
export function inTfjsOrder(kept: Kept, shape: readonly number[], gc: boolean): boolean {
  const held = kept.arenaShape;
  if (held === undefined || held.length !== 1) return false;
  const entry = entryOf(kept.entry.name, shape, gc);
  return entry.transposed && held[0] === entry.size && kept.entry.size === entry.size;
}

/**
 * Whether kept state read by `loadState` (its `arenaShape` known) fits a variable of `shape`: held
 * in the layout this optimizer holds such a variable in, or flat (rank 1) where that layout is
 * the tfjs order too (no transposition: a checkpoint of a state given flat arrays, or written by
 * 0.2.0 on webgpu, which held every variable flat), or flat in the tfjs order where it is
 * transposed ({@linkcode inTfjsOrder}); always of the same size.
 *
 * @example
 * ```ts
 * import { arenaFits } from "./kept.ts";
 * import { entryOf } from "./layout.ts";
 * import assert from "node:assert/strict";
 *
 * const flat = { entry: entryOf("k", [6], false), arenaShape: [6], sections: [] };
 * assert.equal(arenaFits(flat, [2, 3], false), true); // the same order
 * assert.equal(arenaFits(flat, [2, 3], true), true); // transposed when taken
 * assert.equal(arenaFits(flat, [2, 4], false), false);
 * assert.equal(arenaFits({ ...flat, arenaShape: [3, 2] }, [2, 3], false), false);
 * ```
 */
export function arenaFits(kept: Kept, shape: readonly number[], gc: boolean): boolean {
  const held = kept.arenaShape!;
  const entry = entryOf(kept.entry.name, shape, gc);
  if (entry.size !== kept.entry.size) return false;
  // Held in this optimizer's layout, or flat: in the same order, or transposed when taken.
  return sameShape(entry.arenaShape, held) || (held.length === 1 && held[0] === entry.size);
}

/**
 * Kept state held flat in the tfjs order ({@linkcode inTfjsOrder}) laid out as `entry` (the
 * transposed one) lays it out: copies of its sections; its codes decoded into f32 sections (the
 * blocks of 256 hold other elements there).
 */
function transposedCopy(kept: Kept, entry: Entry): Fitting {
  const copy = (values: Float32Array) => {
    const out = new Float32Array(entry.size);
    toArena(entry, values, out);
    return out;
  };
  const sections = kept.sections.map((d) => d && copy(d));
  kept.codes?.forEach((c, m) => {
    if (c === undefined) return;
    const values = new Float32Array(entry.size);
    decodeTensor(c.codes.subarray(0, entry.size), c.scales, values);
    sections[EXP_AVG + m] = copy(values);
  });
  return { entry, sections };
}
