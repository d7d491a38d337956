/**
 * The host-memory backends' common shape: an arena in one ArrayBuffer (a WebAssembly memory, or
 * a plain buffer for the TypeScript backend) with per-tensor views, the scalar blocks the
 * kernel reads, and the kernel that updates the arena.
 *
 * @module
 */
import {
  type ArenaLayout,
  type CompactMoment,
  compactViews,
  GRADS,
  PARAMS,
  sectionViews,
} from "../base/arena.ts";
import type { CompactHostBackend } from "../base/backend.ts";
import { gradSlots, paramViews } from "../base/_state_slots.ts";
import { sectionValues, writeSectionValues } from "../base/arena_compact.ts";
import type { BackendName } from "../base/options.ts";
import { BLOCK_WORDS, blockCount } from "../base/scalars.ts";

/**
 * Elements the check of {@linkcode CpuBackend.loadGradsChecked} covers at least per call (64
 * KiB): small tensors are checked together, large ones each once copied, with one call.
 */
const CHECK_RUN = 16384;

/** The reductions and per-tensor kernels a host backend provides besides the step. */
export interface CpuKernels {
  /** One step over the arena, with the scalar blocks as written. */
  update(): void;
  gradSumSquares(): number;
  /**
   * Whether any of the `n` gradients from element `offset` of the gradient section is NaN or
   * ±Infinity (a read of them, no norm).
   */
  nonFiniteRange(offset: number, n: number): boolean;
  /** The whole gradient section's check: one range, or split across the threads. */
  gradsNonFinite(): boolean;
  centralize(offset: number, rows: number, cols: number): void;
  /** Threads the step runs on. */
  threads: number;
  /** Releases what the backend holds besides memory (workers); nothing for one thread. */
  dispose(): void;
  /**
   * Where a step failed half way (threads: a worker failed as the step ran), why; else
   * `undefined` (the default: one thread's step that throws leaves no part of it behind).
   */
  halfStepped?(): string | undefined;
}

/**
 * Throws a TypeError where `buffer`, a state's arena, was detached: transferred by
 * `postMessage` or `structuredClone` with a transfer list, or by `ArrayBuffer.prototype.transfer`
 * (only the TypeScript backend's plain ArrayBuffer can be; a WebAssembly memory refuses). Every
 * view of it then reads as empty: a step did nothing and counted itself skipped.
 */
export function checkAttached(buffer: ArrayBufferLike): void {
  if (buffer.byteLength > 0) return;
  throw new TypeError(
    "This optimizer state's memory was detached: the ArrayBuffer of state.params and state.grads " +
      "was transferred (postMessage or structuredClone with a transfer list, or transfer()), " +
      "which leaves the state empty. Send copies instead (state.params.w.slice(), or " +
      "readParams), and resume from a checkpoint (loadState)",
  );
}

/** Two views of the scalar blocks of `layout` at byte `at` of `buffer`. */
export function blockViews(
  buffer: ArrayBufferLike,
  at: number,
  layout: ArenaLayout,
): { f32: Float32Array; u32: Uint32Array } {
  const words = blockCount(layout.segments) * BLOCK_WORDS;
  return { f32: new Float32Array(buffer, at, words), u32: new Uint32Array(buffer, at, words) };
}

/**
 * A host-memory backend: views into an arena, its scalar blocks, and the kernels. With 8-bit
 * states, reads and writes of a moment's section decode and encode the compact tensors.
 */
export class CpuBackend implements CompactHostBackend {
  readonly kind = "host" as const;
  readonly params: Readonly<Record<string, Float32Array>>;
  readonly grads: Readonly<Record<string, Float32Array>>;
  readonly #gradList: Float32Array[];
  /** The byte range of the arena's buffer the gradient slots lie in (see `#unaliased`). */
  readonly #gradBytes: readonly [number, number];
  readonly update: () => void;
  readonly gradSumSquares: () => number;
  readonly gradsNonFinite: () => boolean;
  readonly #nonFiniteRange: (offset: number, n: number) => boolean;
  readonly centralize: (offset: number, rows: number, cols: number) => void;
  readonly threads: number;
  readonly dispose: () => void;
  readonly halfStepped: () => string | undefined;

  constructor(
    readonly name: BackendName,
    readonly layout: ArenaLayout,
    readonly buffer: ArrayBufferLike,
    readonly base: number,
    readonly blocks: { readonly f32: Float32Array; readonly u32: Uint32Array },
    kernels: CpuKernels,
  ) {
    this.update = kernels.update;
    this.gradSumSquares = kernels.gradSumSquares;
    this.gradsNonFinite = kernels.gradsNonFinite;
    this.#nonFiniteRange = kernels.nonFiniteRange;
    this.centralize = kernels.centralize;
    this.threads = kernels.threads;
    this.dispose = kernels.dispose;
    this.halfStepped = kernels.halfStepped ?? (() => undefined);
    this.params = paramViews(sectionViews(buffer, base, layout, PARAMS), "host");
    this.grads = gradSlots(sectionViews(buffer, base, layout, GRADS), "host");
    this.#gradList = layout.names.map((n) => this.grads[n]);
    // A loop, not Math.min(...list): a spread of 150,000 tensors overflowed the stack.
    let low = Infinity, high = -Infinity;
    for (const g of this.#gradList) {
      if (g.length === 0) continue;
      low = Math.min(low, g.byteOffset);
      high = Math.max(high, g.byteOffset + g.byteLength);
    }
    this.#gradBytes = [low, high];
  }

  /**
   * `grads`, or a copy of the list in which each array that is a view of this arena's gradient
   * section other than its own tensor's slot (another tensor's slot, a range across slots) is
   * replaced by a copy of its values, so that every gradient is read as it was when the step was
   * called, whatever the order of the copies into the slots (`{ a: grads.b, b: grads.a }`
   * swaps). Nothing is allocated unless such a view is given.
   */
  #unaliased(grads: readonly Float32Array[]): readonly Float32Array[] {
    const slots = this.#gradList;
    const start = this.#gradBytes[0], end = this.#gradBytes[1];
    let out: Float32Array[] | undefined;
    for (let i = 0; i < slots.length; i++) {
      const src = grads[i];
      // (the byte range first: cheaper than the buffer, and enough for most gradients)
      const at = src.byteOffset;
      if (at >= end || at + src.byteLength <= start || src === slots[i]) continue;
      if (src.buffer !== this.buffer) continue;
      (out ??= grads.slice())[i] = src.slice();
    }
    return out ?? grads;
  }

  loadGrads(given: readonly Float32Array[]): void {
    checkAttached(this.buffer);
    const grads = this.#unaliased(given);
    const slots = this.#gradList;
    for (let i = 0; i < slots.length; i++) {
      const src = grads[i];
      if (src !== slots[i]) slots[i].set(src);
    }
  }

  /**
   * {@linkcode loadGrads} with the non-finite check fused in: each tensor is copied with one
   * `set` (no view made of a part of it: a step allocates nothing here), and the section is
   * checked behind the copy, a run of at least CHECK_RUN elements at a time (small tensors
   * together, since they lie back to back), while what was just copied is still in cache as far
   * as it fits; a tensor given as its own slot is checked with its neighbours, uncopied. Returns
   * whether some gradient is NaN or ±Infinity (every tensor is still copied: the slots then hold
   * the gradients given).
   */
  loadGradsChecked(given: readonly Float32Array[]): boolean {
    checkAttached(this.buffer);
    const grads = this.#unaliased(given);
    const offsets = this.layout.offsets;
    const check = this.#nonFiniteRange;
    let found = false;
    let checked = 0;
    const slots = this.#gradList;
    for (let i = 0; i < slots.length; i++) {
      const src = grads[i];
      const dst = slots[i];
      if (src !== dst) dst.set(src);
      const copied = offsets[i] + dst.length;
      if (copied - checked >= CHECK_RUN) {
        found = check(checked, copied - checked) || found;
        checked = copied;
      }
    }
    const total = this.layout.total;
    if (checked < total) found = check(checked, total - checked) || found;
    return found;
  }

  viewSection(section: number): Readonly<Record<string, Float32Array>> {
    checkAttached(this.buffer);
    return sectionViews(this.buffer, this.base, this.layout, section);
  }

  viewCompact(k: number): Readonly<Record<string, CompactMoment>> {
    checkAttached(this.buffer);
    return compactViews(this.buffer, this.base, this.layout, k);
  }

  readSection(section: number): Promise<Record<string, Float32Array<ArrayBuffer>>> {
    return Promise.resolve(sectionValues(this, section));
  }

  writeSection(section: number, data: Readonly<Record<string, Float32Array>>): void {
    writeSectionValues(this, section, data);
  }
}
