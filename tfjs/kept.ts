/**
 * State kept aside: what the adapter holds where no live state holds it. The moments and slow
 * weights of variables left out of the last step (frozen layers), or read by `setWeights` or
 * `loadState` and not yet matched to a variable, by variable name; and the step counts while
 * there is no state (before the first step, after `setWeights`).
 *
 * @module
 */
import { GRADS, hasSection, PARAMS } from "../base/arena.ts";
import type { HostBackend } from "../base/backend.ts";
import { type OptimizerState, stateInternals } from "../core/state.ts";
import { type Entry, entryOf, sameShape } from "./layout.ts";

/** The state of one variable kept aside. */
export interface Kept {
  /**
   * The variable as it was held. For state read from a checkpoint (`loadState`), where only the
   * arena shape is known, a placeholder: `arenaShape` then says which variables it fits.
   */
  readonly entry: Entry;
  readonly arenaShape?: readonly number[];
  /** By arena section, in the arena layout; undefined for PARAMS and GRADS. */
  readonly sections: (Float32Array | undefined)[];
}

/** A variable the kept state is matched to: its name and tfjs shape. */
export interface Wanted {
  readonly name: string;
  readonly shape: readonly number[];
}

/**
 * Live views of the state sections of a host backend, by section index (undefined for the
 * params, the gradients and the sections its rule lacks).
 */
export function stateViews(
  backend: HostBackend,
): (Readonly<Record<string, Float32Array>> | undefined)[] {
  return backend.layout.sectionOffsets.map((_, s) =>
    s === PARAMS || s === GRADS || !hasSection(backend.layout, s)
      ? undefined
      : backend.viewSection(s)
  );
}

/** Ties a name from a saved model to a variable of the same base name (tfjs's `_<n>` suffix). */
export function baseName(name: string): string {
  return name.replace(/_\d+$/, "");
}

/** The kept-aside states of an optimizer, and its step counts while it has no state. */
export class KeptStates {
  readonly #byName = new Map<string, Kept>();
  /** Steps taken and skipped where no state holds them. */
  steps = 0;
  skipped = 0;
  /** Set by {@linkcode replace}: saved names may differ from the variables' by `_<n>`. */
  #renameOnLoad = false;

  /** The variable names kept, in the order they were kept. */
  names(): string[] {
    return [...this.#byName.keys()];
  }

  /** The kept states, in the order they were kept. */
  values(): IterableIterator<Kept> {
    return this.#byName.values();
  }

  /** Keeps the state of `entries`, the variables of a host state, and its step counts. */
  keepState(state: OptimizerState<unknown>, entries: readonly Entry[]): void {
    const internals = stateInternals(state);
    this.steps = internals.steps;
    this.skipped = internals.skipped;
    const views = stateViews(internals.backend as HostBackend);
    for (const entry of entries) {
      this.#byName.set(entry.name, { entry, sections: views.map((v) => v?.[entry.name].slice()) });
    }
  }

  /**
   * Replaces everything kept by `kept` (read by `setWeights` or `loadState`), with these step
   * counts; the next {@linkcode fitting} first matches names that differ by tfjs's `_<n>` suffix.
   */
  replace(kept: ReadonlyMap<string, Kept>, steps: number, skipped: number): void {
    this.#byName.clear();
    for (const [name, k] of kept) this.#byName.set(name, k);
    this.steps = steps;
    this.skipped = skipped;
    this.#renameOnLoad = true;
  }

  /** Forgets every kept state (not the counts). */
  clear(): void {
    this.#byName.clear();
  }

  /**
   * The kept state of each of `wanted` that fits it (by name; none for a variable whose kept
   * state has another shape): its sections in the arena layout of an optimizer that does (`gc`)
   * or does not centralize, with the entry they are laid out by. Still kept until
   * {@linkcode forget}.
   */
  fitting(
    wanted: readonly Wanted[],
    gc: boolean,
  ): Map<string, { entry: Entry; sections: readonly (Float32Array | undefined)[] }> {
    if (this.#renameOnLoad) this.#matchLoadedNames(wanted, gc);
    const out = new Map<string, { entry: Entry; sections: (Float32Array | undefined)[] }>();
    for (const w of wanted) {
      const k = this.#byName.get(w.name);
      if (k && this.#fits(k, w.shape, gc)) {
        // The layout it was held in: as this optimizer holds it on the CPU.
        const entry = k.arenaShape ? entryOf(w.name, w.shape, gc) : k.entry;
        out.set(w.name, { entry, sections: k.sections });
      }
    }
    return out;
  }

  /** Forgets what is kept under the names of `wanted` (now in a live state, or started fresh). */
  forget(wanted: readonly Wanted[]): void {
    for (const w of wanted) this.#byName.delete(w.name);
  }

  /** Whether kept state fits a variable of `shape` (same shape, or same arena shape). */
  #fits(kept: Kept, shape: readonly number[], gc: boolean): boolean {
    if (kept.arenaShape === undefined) {
      return kept.entry.size === shape.reduce((a, b) => a * b, 1) &&
        sameShape(kept.entry.shape, shape);
    }
    const entry = entryOf(kept.entry.name, shape, gc);
    return entry.size === kept.entry.size && sameShape(entry.arenaShape, kept.arenaShape);
  }

  /**
   * tfjs-layers names a loaded model's variables `<name>_<n>` where `<name>` is taken (the saved
   * model still alive in the process), and a saved model's may carry such a suffix too. A kept
   * state whose name has no variable goes to the one variable of the same base name and shape
   * that has no kept state of its own; where that is not one variable, nothing is moved (the
   * variable starts fresh), so nothing is ever mis-assigned.
   */
  #matchLoadedNames(wanted: readonly Wanted[], gc: boolean): void {
    this.#renameOnLoad = false;
    const kept = this.#byName;
    const names = new Set(wanted.map((w) => w.name));
    const orphans = [...kept.keys()].filter((k) => !names.has(k));
    for (const orphan of orphans) {
      const k = kept.get(orphan)!;
      const candidates = wanted.filter((w) =>
        !kept.has(w.name) && baseName(w.name) === baseName(orphan) && this.#fits(k, w.shape, gc)
      );
      const others = orphans.filter((o) => o !== orphan && baseName(o) === baseName(orphan));
      if (candidates.length !== 1 || others.length > 0) continue;
      kept.delete(orphan);
      kept.set(candidates[0].name, { ...k, entry: { ...k.entry, name: candidates[0].name } });
    }
  }
}
