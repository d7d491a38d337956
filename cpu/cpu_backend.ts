/**
 * The CPU backends' common shape: an arena in one ArrayBuffer (a WebAssembly memory, or a plain
 * buffer for the TypeScript backend) with per-tensor views, and a kernel that updates it.
 *
 * @module
 */
import { type ArenaLayout, GRADS, PARAMS, sectionViews, SEGMENT_ROW_BYTES } from "../core/arena.ts";
import type { Backend } from "../core/backend.ts";
import type { BackendName } from "../core/options.ts";
import type { StepScalars } from "../core/scalars.ts";

/**
 * Elements of one copy-and-check chunk of {@linkcode CpuBackend.loadGradsChecked}: 64 KiB, so
 * that the check reads what the copy just wrote from L1/L2 rather than from memory.
 */
const COPY_CHUNK = 16384;

/** Runs one step over the arena at `base` in `buffer`. */
export type CpuKernel = (scalars: StepScalars) => void;

/** The reduction and per-tensor kernels a CPU backend provides besides the step. */
export interface CpuExtras {
  gradSumSquares(): number;
  /**
   * Whether any of the `n` gradients from element `offset` of the gradient section is NaN or
   * ±Infinity (a read of them, no norm).
   */
  nonFiniteRange(offset: number, n: number): boolean;
  /** The whole gradient section's check, where the backend splits it (threads); else one range. */
  gradsNonFinite?(): boolean;
  centralize(offset: number, rows: number, cols: number): void;
  /** Threads the step runs on (default 1). */
  threads?: number;
  /** Releases what the backend holds besides memory (workers). */
  dispose?(): void;
}

/** A CPU backend: views into an arena, and the kernel that steps it. */
export class CpuBackend implements Backend<Float32Array> {
  readonly params: Readonly<Record<string, Float32Array>>;
  readonly grads: Readonly<Record<string, Float32Array>>;
  readonly #gradList: Float32Array[];
  readonly segmentScalars: Float32Array;
  readonly gradSumSquares: () => number;
  readonly gradsNonFinite: () => boolean;
  readonly #nonFiniteRange: (offset: number, n: number) => boolean;
  readonly centralize: (offset: number, rows: number, cols: number) => void;
  readonly threads: number;
  readonly dispose?: () => void;

  constructor(
    readonly name: BackendName,
    readonly layout: ArenaLayout,
    readonly buffer: ArrayBufferLike,
    readonly base: number,
    readonly update: CpuKernel,
    extras: CpuExtras,
  ) {
    this.gradSumSquares = extras.gradSumSquares;
    const range = extras.nonFiniteRange;
    this.#nonFiniteRange = range;
    this.gradsNonFinite = extras.gradsNonFinite ?? (() => range(0, layout.total));
    const rows = layout.segments.length;
    const at = base + layout.segmentTableOffset;
    this.segmentScalars = new Float32Array(buffer, at, rows * (SEGMENT_ROW_BYTES / 4));
    const ints = new Int32Array(buffer, at, rows * (SEGMENT_ROW_BYTES / 4));
    layout.segments.forEach((seg, k) => {
      ints[k * 8] = seg.start;
      ints[k * 8 + 1] = seg.end;
    });
    this.centralize = extras.centralize;
    this.threads = extras.threads ?? 1;
    if (extras.dispose) this.dispose = extras.dispose;
    this.params = sectionViews(buffer, base, layout, PARAMS);
    this.grads = sectionViews(buffer, base, layout, GRADS);
    this.#gradList = layout.names.map((n) => this.grads[n]);
  }

  loadGrads(grads: Float32Array | Readonly<Record<string, Float32Array>>): void {
    if (grads === this.grads) return;
    const names = this.layout.names;
    if (grads instanceof Float32Array) {
      if (grads !== this.#gradList[0]) this.#gradList[0].set(grads);
      return;
    }
    for (let i = 0; i < names.length; i++) {
      const src = grads[names[i]];
      if (src !== this.#gradList[i]) this.#gradList[i].set(src);
    }
  }

  /**
   * {@linkcode loadGrads} with the non-finite check fused in: the tensors are copied in chunks of
   * up to COPY_CHUNK elements, and the section is checked behind the copy, a run of at least
   * COPY_CHUNK elements at a time (small tensors together, since they lie back to back), while
   * what was just copied is still in cache; a tensor given as its own slot is checked with its
   * neighbours, uncopied. Returns whether some gradient is NaN or ±Infinity (every tensor is
   * still copied: the slots then hold the gradients given).
   */
  loadGradsChecked(grads: Float32Array | Readonly<Record<string, Float32Array>>): boolean {
    if (grads === this.grads) return this.gradsNonFinite();
    const names = this.layout.names;
    const offsets = this.layout.offsets;
    const check = this.#nonFiniteRange;
    let found = false;
    let checked = 0;
    for (let i = 0; i < names.length; i++) {
      const src = grads instanceof Float32Array ? grads : grads[names[i]];
      const dst = this.#gradList[i];
      const n = dst.length;
      for (let o = 0; o < n; o += COPY_CHUNK) {
        const end = Math.min(n, o + COPY_CHUNK);
        if (src !== dst) {
          if (o === 0 && end === n) dst.set(src);
          else dst.set(src.subarray(o, end), o);
        }
        const copied = offsets[i] + end;
        if (copied - checked >= COPY_CHUNK) {
          found = check(checked, copied - checked) || found;
          checked = copied;
        }
      }
    }
    const total = this.layout.total;
    if (checked < total) found = check(checked, total - checked) || found;
    return found;
  }

  viewSection(section: number): Readonly<Record<string, Float32Array>> {
    return sectionViews(this.buffer, this.base, this.layout, section);
  }

  readSection(section: number): Promise<Record<string, Float32Array>> {
    const views = this.viewSection(section);
    const out: Record<string, Float32Array> = {};
    for (const name of this.layout.names) out[name] = views[name].slice();
    return Promise.resolve(out);
  }

  writeSection(section: number, data: Readonly<Record<string, Float32Array>>): void {
    const views = this.viewSection(section);
    for (const name of this.layout.names) views[name].set(data[name]);
  }
}
