/**
 * How a state on TensorFlow.js's wasm heap (heap_backend.ts) is laid out: the bytes it
 * allocates and the runs of the kernel over its tensors (a moment held in 8 bits, with
 * `states: "8bit"`, is read and written as the CPU backends do: base/arena_compact.ts).
 *
 * The allocation: `[main descriptor | one descriptor per external tensor | scalar blocks |
 * scratch | arena]`, each part at a multiple of 64 bytes. The scratch is the 2 KiB the kernel's
 * 8-bit step writes a block's new moments into (cpu/wasm_backend.ts `scratchBytes`: none for a
 * 32-bit state); the arena leaves out the sections that are not used (those before the first
 * allocated one).
 *
 * @module
 */
import { type ArenaLayout, GRADS, hasSection, PARAMS } from "../base/arena.ts";
import { Q8_BLOCK } from "../base/q8.ts";
import { BLOCK_BYTES, blockCount } from "../base/scalars.ts";
import { scratchBytes } from "../cpu/wasm_backend.ts";

/** Alignment of every part of the allocation. */
export const ALIGN = 64;

/** One call of the kernel: a descriptor and an element range. */
export interface Run {
  descriptor: number;
  start: number;
  end: number;
  /** Index (in the layout) of the tensor whose parameters are its variable's data, or -1. */
  external: number;
}

/** Where the parts of an allocation at `pointer` lie. */
export interface HeapPlacement {
  /** The main descriptor (aligned). */
  readonly at: number;
  /** The scalar blocks. */
  readonly scalars: number;
  /** The scratch of the 8-bit step (its address even where it has no bytes). */
  readonly scratch: number;
  /** The arena's (virtual) start: sections that are not allocated lie before the allocation. */
  readonly base: number;
}

/** Bytes of the header before the arena: descriptors, scalar blocks, scratch. */
function headerBytes(layout: ArenaLayout, externals: number): number {
  const blocks = blockCount(layout.segments) * BLOCK_BYTES + scratchBytes(layout);
  return ALIGN * (1 + externals) + Math.ceil(blocks / ALIGN) * ALIGN;
}

/**
 * The placement of an allocation at `pointer` with `externals` external tensors, its arena from
 * section `first` on (see {@linkcode allocationBytes}).
 *
 * @example
 * ```ts
 * import { placement } from "./heap_layout.ts";
 * import { planArena, PARAMS } from "../base/arena.ts";
 * import assert from "node:assert/strict";
 *
 * const layout = planArena(["w"], [10], { moments: 2 });
 * const at = placement(layout, 100, 1, PARAMS);
 * assert.equal(at.at, 128); // aligned to 64
 * assert.equal(at.scalars, 128 + 2 * 64); // after the main descriptor and one external one
 * assert.equal(at.scratch, at.scalars + 64); // one scalar block; no scratch in 32 bits
 * ```
 */
export function placement(
  layout: ArenaLayout,
  pointer: number,
  externals: number,
  first: number,
): HeapPlacement {
  const at = Math.ceil(pointer / ALIGN) * ALIGN;
  const scalars = at + ALIGN * (1 + externals);
  const scratch = scalars + blockCount(layout.segments) * BLOCK_BYTES;
  const arena = at + headerBytes(layout, externals);
  return { at, scalars, scratch, base: arena - skippedBytes(layout, first) };
}

/**
 * Bytes to allocate: room to align to 64, the header, and the arena from section `first` on
 * (`PARAMS`: all of it; `GRADS`: no params section; `EXP_AVG`: neither params nor gradients).
 *
 * @example
 * ```ts
 * import { allocationBytes } from "./heap_layout.ts";
 * import { EXP_AVG, planArena, PARAMS } from "../base/arena.ts";
 * import assert from "node:assert/strict";
 *
 * const layout = planArena(["w"], [1 << 16], { moments: 2 });
 * // Leaving out the params and the gradients saves 8 bytes a parameter, at least.
 * assert.ok(allocationBytes(layout, 1, PARAMS) - allocationBytes(layout, 1, EXP_AVG) >= 8 << 16);
 * ```
 */
export function allocationBytes(layout: ArenaLayout, externals: number, first: number): number {
  return ALIGN + headerBytes(layout, externals) + layout.byteLength -
    skippedBytes(layout, first);
}

/** Bytes before the first section allocated from `first` on (or the segment table). */
function skippedBytes(layout: ArenaLayout, first: number): number {
  if (first === PARAMS) return 0;
  let least = layout.segmentTableOffset;
  layout.sectionOffsets.forEach((offset, s) => {
    const skipped = s === PARAMS || (s === GRADS && first > GRADS);
    if (!skipped && hasSection(layout, s)) least = Math.min(least, offset);
  });
  return least;
}

/**
 * The elements a run over tensor `i` steps: a compact tensor's whole blocks, padding included.
 *
 * @example
 * ```ts
 * import { runLength } from "./heap_layout.ts";
 * import { planCompactArena } from "../base/arena_compact.ts";
 * import assert from "node:assert/strict";
 *
 * const layout = planCompactArena(["w", "b"], [5000, 10], { moments: 2 }); // order: b, w
 * assert.deepEqual([runLength(layout, 0), runLength(layout, 1)], [10, 5120]);
 * ```
 */
export function runLength(layout: ArenaLayout, i: number): number {
  const n = layout.lengths[i];
  return layout.compact[i] ? Math.ceil(n / Q8_BLOCK) * Q8_BLOCK : n;
}

/**
 * The kernel's runs: consecutive tensors held in the arena as one run of the main descriptor at
 * `at`; each external one with a descriptor of its own (from `at + ALIGN` on), whose params word
 * points at its variable.
 *
 * @example
 * ```ts
 * import { planRuns } from "./heap_layout.ts";
 * import { planArena } from "../base/arena.ts";
 * import assert from "node:assert/strict";
 *
 * const layout = planArena(["a", "b", "c"], [4, 4, 4], {});
 * assert.deepEqual(planRuns(layout, [false, false, true], 0), [
 *   { descriptor: 0, start: 0, end: 8, external: -1 },
 *   { descriptor: 64, start: 8, end: 12, external: 2 },
 * ]);
 * ```
 */
export function planRuns(layout: ArenaLayout, external: readonly boolean[], at: number): Run[] {
  const runs: Run[] = [];
  let next = at + ALIGN;
  for (let i = 0; i < layout.names.length; i++) {
    const start = layout.offsets[i], end = start + runLength(layout, i);
    if (end === start) continue;
    if (external[i]) {
      runs.push({ descriptor: next, start, end, external: i });
      next += ALIGN;
      continue;
    }
    const last = runs[runs.length - 1];
    if (last && last.external < 0 && last.end === start) last.end = end;
    else runs.push({ descriptor: at, start, end, external: -1 });
  }
  return runs;
}
