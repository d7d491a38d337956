/**
 * How a state on TensorFlow.js's wasm heap (heap_backend.ts) is laid out: the bytes it
 * allocates and the runs of the kernel over its tensors (a moment held in 8 bits, with
 * `states: "8bit"`, is read and written as the CPU backends do: base/arena_compact.ts).
 *
 * The allocation: `[main descriptor | one descriptor per external run | tails | scalar blocks |
 * scratch | arena]`, each part at a multiple of 64 bytes. An external tensor (its parameters in
 * its variable's data) has a run, and so a descriptor, of its own; a compact one whose length is
 * not a multiple of 256 has two: its whole blocks, stepped in its variable's data, and its last,
 * partial block, stepped in a padded copy (a _tail_: 256 parameters then 256 gradients,
 * {@linkcode TAIL_BYTES}), because the kernel steps whole blocks and would read and write past
 * the end of the variable's data. The scratch is the 2 KiB the kernel's 8-bit step writes a
 * block's new moments into (cpu/wasm_backend.ts `scratchBytes`: none for a 32-bit state); the
 * arena leaves out the sections that are not used (those before the first allocated one).
 *
 * @module
 */
import {
  ARENA_DESCRIPTOR,
  type ArenaLayout,
  GRADS,
  hasSection,
  PARAMS,
  SLOW,
} from "../base/arena.ts";
import { Q8_BLOCK } from "../base/q8.ts";
import { BLOCK_BYTES, blockCount } from "../base/scalars.ts";
import { scratchBytes } from "../cpu/wasm_backend.ts";

/** Alignment of every part of the allocation. */
export const ALIGN = 64;

/**
 * Bytes of a tail: the padded copy of a compact tensor's last, partial block (256 parameters,
 * then 256 gradients), stepped by the kernel as the CPU backends step that block in their arena.
 */
export const TAIL_BYTES = 2 * Q8_BLOCK * 4;

/** One call of the kernel: a descriptor and an element range. */
export interface Run {
  descriptor: number;
  start: number;
  end: number;
  /** Index (in the layout) of the tensor whose parameters are its variable's data, or -1. */
  external: number;
  /**
   * The byte address of the tail this run steps (its parameters, then its gradients at
   * `tail + TAIL_BYTES / 2`): the last, partial block of an external compact tensor; else 0.
   */
  tail: number;
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

/**
 * Whether tensor `i` of `layout` is compact with a last block that is partial (its length not
 * a multiple of 256): held in a variable's data, that block is stepped in a tail.
 *
 * @example
 * ```ts
 * import { partialLast } from "./heap_layout.ts";
 * import { planCompactArena } from "../base/arena_compact.ts";
 * import assert from "node:assert/strict";
 *
 * const layout = planCompactArena(["w", "v", "b"], [5000, 4096, 10], { moments: 2 });
 * assert.deepEqual(layout.names.map((_, i) => partialLast(layout, i)), [false, true, false]);
 * ```
 */
export function partialLast(layout: ArenaLayout, i: number): boolean {
  return layout.compact[i] && layout.lengths[i] % Q8_BLOCK !== 0;
}

/** The external runs (descriptors besides the main one) and the tails of `external`. */
function counts(layout: ArenaLayout, external: readonly boolean[]): [number, number] {
  let runs = 0, tails = 0;
  external.forEach((x, i) => {
    if (!x || layout.lengths[i] === 0) return;
    runs++;
    if (partialLast(layout, i)) runs++, tails++;
  });
  return [runs, tails];
}

/** Bytes of the header before the arena: descriptors, tails, scalar blocks, scratch. */
function headerBytes(layout: ArenaLayout, external: readonly boolean[]): number {
  const [runs, tails] = counts(layout, external);
  const blocks = blockCount(layout.segments) * BLOCK_BYTES + scratchBytes(layout);
  return ALIGN * (1 + runs) + tails * TAIL_BYTES + Math.ceil(blocks / ALIGN) * ALIGN;
}

/**
 * The placement of an allocation at `pointer`, `external[i]` saying whether tensor i of the
 * layout keeps its parameters in its variable's data, its arena from section `first` on (see
 * {@linkcode allocationBytes}).
 *
 * @example
 * ```ts
 * import { placement } from "./heap_layout.ts";
 * import { planArena, PARAMS } from "../base/arena.ts";
 * import assert from "node:assert/strict";
 *
 * const layout = planArena(["w"], [10], { moments: 2 });
 * const at = placement(layout, 100, [true], PARAMS);
 * assert.equal(at.at, 128); // aligned to 64
 * assert.equal(at.scalars, 128 + 2 * 64); // after the main descriptor and one external one
 * assert.equal(at.scratch, at.scalars + 64); // one scalar block; no scratch in 32 bits
 * ```
 */
export function placement(
  layout: ArenaLayout,
  pointer: number,
  external: readonly boolean[],
  first: number,
): HeapPlacement {
  const at = Math.ceil(pointer / ALIGN) * ALIGN;
  const [runs, tails] = counts(layout, external);
  const scalars = at + ALIGN * (1 + runs) + tails * TAIL_BYTES;
  const scratch = scalars + blockCount(layout.segments) * BLOCK_BYTES;
  const arena = at + headerBytes(layout, external);
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
 * assert.ok(
 *   allocationBytes(layout, [true], PARAMS) - allocationBytes(layout, [true], EXP_AVG) >= 8 << 16,
 * );
 * ```
 */
export function allocationBytes(
  layout: ArenaLayout,
  external: readonly boolean[],
  first: number,
): number {
  return ALIGN + headerBytes(layout, external) + layout.byteLength - skippedBytes(layout, first);
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
 * points at its variable, and, where its last block is partial, a second run over that block
 * with a descriptor and a tail of its own (the tails after the descriptors).
 *
 * @example
 * ```ts
 * import { planRuns } from "./heap_layout.ts";
 * import { planArena } from "../base/arena.ts";
 * import { planCompactArena } from "../base/arena_compact.ts";
 * import assert from "node:assert/strict";
 *
 * const layout = planArena(["a", "b", "c"], [4, 4, 4], {});
 * assert.deepEqual(planRuns(layout, [false, false, true], 0), [
 *   { descriptor: 0, start: 0, end: 8, external: -1, tail: 0 },
 *   { descriptor: 64, start: 8, end: 12, external: 2, tail: 0 },
 * ]);
 * // 5000 elements: 19 whole blocks in the variable's data, the last 136 in a tail
 * const compact = planCompactArena(["w"], [5000], { moments: 2 });
 * assert.deepEqual(planRuns(compact, [true], 0), [
 *   { descriptor: 64, start: 0, end: 4864, external: 0, tail: 0 },
 *   { descriptor: 128, start: 4864, end: 5120, external: 0, tail: 192 },
 * ]);
 * ```
 */
export function planRuns(layout: ArenaLayout, external: readonly boolean[], at: number): Run[] {
  const runs: Run[] = [];
  let next = at + ALIGN;
  let tail = at + ALIGN * (1 + counts(layout, external)[0]);
  for (let i = 0; i < layout.names.length; i++) {
    const start = layout.offsets[i], end = start + runLength(layout, i);
    if (end === start) continue;
    if (external[i]) {
      const whole = start + Math.floor(layout.lengths[i] / Q8_BLOCK) * Q8_BLOCK;
      const split = partialLast(layout, i) ? whole : end;
      runs.push({ descriptor: next, start, end: split, external: i, tail: 0 });
      next += ALIGN;
      if (split < end) {
        runs.push({ descriptor: next, start: split, end, external: i, tail });
        next += ALIGN;
        tail += TAIL_BYTES;
      }
      continue;
    }
    const last = runs[runs.length - 1];
    if (last && last.external < 0 && last.end === start) last.end = end;
    else runs.push({ descriptor: at, start, end, external: -1, tail: 0 });
  }
  return runs;
}

/** The index of the slow weights' word in an arena descriptor. */
const SLOW_WORD = Object.keys(ARENA_DESCRIPTOR).indexOf("slow");

/**
 * Before the kernel's run over a tail (`words`: the heap's): the real parameters of the last
 * block copied into it from the variable's data at byte `params` (its padding stays 0: the
 * kernel sets it back to 0 after each step of the block), and its gradient, where the step reads
 * it in place (at byte `borrowed`; 0: the run reads the gradient slots from `grads`, whose
 * padding is 0); the run's descriptor pointed at them.
 *
 * @example
 * ```ts
 * import { enterTail, leaveTail, planRuns } from "./heap_layout.ts";
 * import { planCompactArena } from "../base/arena_compact.ts";
 * import assert from "node:assert/strict";
 *
 * const layout = planCompactArena(["w"], [4100], { moments: 2 });
 * const tail = planRuns(layout, [true], 0)[1]; // elements 4096-4352, 4 of them real
 * const heap = new Float32Array(16384);
 * const words = new Uint32Array(heap.buffer);
 * const params = 16384; // the variable's data: 4100 values
 * heap.fill(1, params / 4, params / 4 + 4100);
 * enterTail(words, layout, tail, params, 0, 0);
 * assert.deepEqual(heap.subarray(tail.tail / 4, tail.tail / 4 + 5), new Float32Array([1, 1, 1, 1, 0]));
 * assert.equal((words[tail.descriptor / 4] + 4 * 4096) >>> 0, tail.tail); // params (u32)
 * heap.fill(2, tail.tail / 4, tail.tail / 4 + 4); // (the step)
 * leaveTail(words, layout, tail, params);
 * assert.deepEqual(heap.subarray(params / 4 + 4095, params / 4 + 4101), new Float32Array([1, 2, 2, 2, 2, 0]));
 * ```
 */
export function enterTail(
  words: Uint32Array,
  layout: ArenaLayout,
  run: Run,
  params: number,
  borrowed: number,
  grads: number,
): void {
  // (the tail's first element in its tensor, and the tensor's elements from it on)
  const from = run.start - layout.offsets[run.external];
  const count = layout.lengths[run.external] - from;
  const tail = run.tail / 4, p = params / 4 + from;
  words.copyWithin(tail, p, p + count);
  // The kernel adds 4 × the element index to the params and grads words (u32, wrapping).
  const word = run.descriptor / 4;
  words[word] = (run.tail - run.start * 4) >>> 0;
  // After the last block the kernel sets the padding's parameters and slow weights to 0. Without
  // slow weights, the descriptor's slow word is where the params section starts (as on the CPU
  // backends), which here is not allocated: it is pointed at the tail's parameters instead.
  if (!hasSection(layout, SLOW)) words[word + SLOW_WORD] = words[word];
  if (borrowed === 0) words[word + 1] = grads >>> 0;
  else {
    const g = borrowed / 4 + from;
    words.copyWithin(tail + Q8_BLOCK, g, g + count);
    words[word + 1] = (run.tail + TAIL_BYTES / 2 - run.start * 4) >>> 0;
  }
}

/**
 * Points the descriptor of an external tensor's run at its parameters, its variable's data at
 * byte `params`, and at its gradient: where it is read in place, at byte `borrowed`, else (0) in
 * its slot of the grads section at byte `grads`. The run of a tail is pointed at its tail, the
 * values copied in ({@linkcode enterTail}).
 */
export function pointRun(
  words: Uint32Array,
  layout: ArenaLayout,
  run: Run,
  params: number,
  borrowed: number,
  grads: number,
): void {
  if (run.tail !== 0) {
    enterTail(words, layout, run, params, borrowed, grads);
    return;
  }
  // The kernel adds 4 × the element index to the params and grads words (u32, wrapping).
  const word = run.descriptor / 4;
  words[word] = (params - run.start * 4) >>> 0;
  words[word + 1] = borrowed === 0 ? grads >>> 0 : (borrowed - run.start * 4) >>> 0;
}

/**
 * After the kernel's run over a tail: its real parameters copied back into the variable's data
 * at byte `params` (see {@linkcode enterTail}).
 */
export function leaveTail(words: Uint32Array, layout: ArenaLayout, run: Run, params: number): void {
  const from = run.start - layout.offsets[run.external];
  const count = layout.lengths[run.external] - from;
  const tail = run.tail / 4;
  words.copyWithin(params / 4 + from, tail, tail + count);
}
