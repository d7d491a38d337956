/**
 * The plain TypeScript backend: the rule's TypeScript element loop (rules/), the same per-element
 * f32 arithmetic as the WASM kernel (assembly/), operation for operation, each result rounded
 * with `Math.fround`, reading the same scalar blocks. Since every operation is a correctly
 * rounded IEEE-754 add, mul, div or sqrt (float64 then rounded to f32 gives the f32 result for
 * these), both backends agree bit for bit. The reductions (sum of squares, centralization) are
 * here, in the kernel's order.
 *
 * @module
 */
import {
  type ArenaLayout,
  codesSection,
  EXP_AVG,
  EXP_AVG_SQ,
  GRADS,
  hasSection,
  PARAMS,
  scalesSection,
  sectionView,
  type Segment,
  SLOW,
} from "../base/arena.ts";
import {
  blockTop,
  encodeSignedBlock,
  encodeUnsignedBlock,
  Q8_BLOCK,
  scaleBits,
  SIGNED_VALUES,
  UNSIGNED_VALUES,
} from "../base/q8.ts";
import type { JsSections, Rule } from "../base/rule.ts";
import { BLOCK_BYTES, BLOCK_WORDS, blockCount, HEADER } from "../base/scalars.ts";
import { syncJs } from "../rules/lookahead.ts";
import { blockViews, checkAttached, CpuBackend } from "./cpu_backend.ts";

const f32 = Math.fround;

/**
 * Elements per block of the sum of squares: the reduction is defined blockwise so that threaded
 * and single-threaded states give the same bits. A multiple of 8. The AssemblyScript kernel
 * reads it from assembly/layout.generated.ts, generated from this one.
 */
export const SUM_BLOCK = 16384;

/**
 * Sum of squares in float64, in the order of `sumSquares` in assembly/index.ts: blocks of
 * SUM_BLOCK elements, each summed by `jsBlockSumSquares`, the block sums added in order to a
 * running total starting at 0.
 */
export function jsSumSquares(x: Float32Array, n: number): number {
  let total = 0;
  for (let start = 0; start < n; start += SUM_BLOCK) {
    total += jsBlockSumSquares(x, start, Math.min(SUM_BLOCK, n - start));
  }
  return total;
}

/**
 * One block's sum of squares, in the order of `blockSumSquares` in assembly/index.ts: eight lane
 * sums over the part below n & ~7, combined as ((s0 + s1) + (s2 + s3)) + ((s4 + s5) + (s6 +
 * s7)), then the tail in order.
 */
function jsBlockSumSquares(x: Float32Array, start: number, n: number): number {
  let s0 = 0, s1 = 0, s2 = 0, s3 = 0, s4 = 0, s5 = 0, s6 = 0, s7 = 0;
  const vecEnd = start + (n & ~7);
  const end = start + n;
  let i = start;
  for (; i < vecEnd; i += 8) {
    s0 += x[i] * x[i];
    s1 += x[i + 1] * x[i + 1];
    s2 += x[i + 2] * x[i + 2];
    s3 += x[i + 3] * x[i + 3];
    s4 += x[i + 4] * x[i + 4];
    s5 += x[i + 5] * x[i + 5];
    s6 += x[i + 6] * x[i + 6];
    s7 += x[i + 7] * x[i + 7];
  }
  let sum = ((s0 + s1) + (s2 + s3)) + ((s4 + s5) + (s6 + s7));
  for (; i < end; i++) sum += x[i] * x[i];
  return sum;
}

/**
 * Whether any of the `n` values of `x` from `start` is NaN or ±Infinity (`nonFinite` in
 * assembly/index.ts: the same predicate, so the same answer). `x − x` is 0 for a finite x and
 * NaN otherwise, so the sum is 0 exactly when every value is finite.
 */
export function jsNonFinite(x: Float32Array, start: number, n: number): boolean {
  let s = 0;
  for (let i = start, end = start + n; i < end; i++) s += x[i] - x[i];
  return s !== 0;
}

/**
 * Gradient centralization in f32, in the order of `centralize` in assembly/index.ts: per row,
 * four f32 lane sums combined as (s0 + s1) + (s2 + s3), the tail added in order, mean = sum /
 * cols (where that sum is not finite, as `wideMean` there: the f64 sum in index order over cols,
 * rounded once; finite values whose f32 sum overflowed got the mean ±Infinity), then each
 * element minus the mean.
 */
export function jsCentralize(
  x: Float32Array,
  offset: number,
  rows: number,
  cols: number,
): void {
  const vecEnd = cols & ~3;
  const fc = f32(cols);
  for (let r = 0; r < rows; r++) {
    const row = offset + r * cols;
    let s0 = 0, s1 = 0, s2 = 0, s3 = 0;
    let i = 0;
    for (; i < vecEnd; i += 4) {
      s0 = f32(s0 + x[row + i]);
      s1 = f32(s1 + x[row + i + 1]);
      s2 = f32(s2 + x[row + i + 2]);
      s3 = f32(s3 + x[row + i + 3]);
    }
    let sum = f32(f32(s0 + s1) + f32(s2 + s3));
    for (; i < cols; i++) sum = f32(sum + x[row + i]);
    let mean = f32(sum / fc);
    if (!Number.isFinite(sum)) {
      let wide = 0;
      for (i = 0; i < cols; i++) wide += x[row + i];
      mean = f32(wide / cols);
    }
    for (i = 0; i < cols; i++) x[row + i] = x[row + i] - mean;
  }
}

/**
 * `rule`'s TypeScript loop over elements `[start, end)` with the block at word `base` (moments
 * from offset `mo`: see {@linkcode JsStep}), then, on a LookAhead sync step, the sync of the
 * same elements.
 */
function stepRange(
  rule: Rule,
  sections: JsSections,
  start: number,
  end: number,
  f: Float32Array,
  u: Uint32Array,
  base: number,
  mo: number,
): void {
  rule.jsStep(sections, start, end, f, u, base, mo);
  if (u[base + HEADER.sync] !== 0) {
    syncJs(sections.p, sections.slow, start, end, f[base + HEADER.alpha]);
  }
}

/**
 * One step over the arena with `rule`'s TypeScript loop: over all `n` elements with block 0, or,
 * with parameter groups, over each run with its group's block; a compact tensor's run (8-bit
 * states) block by block, as `step` in assembly/index.ts does.
 */
export function jsStep(
  rule: Rule,
  sections: JsSections,
  layout: ArenaLayout,
  f: Float32Array,
  u: Uint32Array,
  compact?: JsCompact,
): void {
  const segments = layout.segments;
  if (segments.length === 0) {
    stepRange(rule, sections, 0, layout.total, f, u, 0, 0);
    return;
  }
  for (const s of segments) {
    const base = s.group * BLOCK_WORDS;
    if (s.padded === undefined) stepRange(rule, sections, s.start, s.end, f, u, base, 0);
    else jsCompactRun(rule, compact!, layout.compactStart, s, f, u, base);
  }
}

/** The codes and scales of a compact arena, and the step's scratch. */
export interface JsCompact {
  readonly codes: readonly (Int8Array | Uint8Array)[];
  readonly scales: readonly Float32Array[];
  /** The scales' bits. */
  readonly scaleWords: readonly Int32Array[];
  /** The rule's loop's sections, its moments the scratch (one block each). */
  readonly sections: JsSections;
  /** The bits of the scratch's moments. */
  readonly bits: readonly Int32Array[];
}

/**
 * A compact tensor's row, block by block: its moments decoded into the scratch (value × scale,
 * one f32 product), the rule's loop on them, the scratch encoded (scale: the largest magnitude),
 * then the padding's parameters and slow weights set to 0 (`stepCompact` in assembly/index.ts).
 */
function jsCompactRun(
  rule: Rule,
  c: JsCompact,
  compactStart: number,
  row: Segment,
  f: Float32Array,
  u: Uint32Array,
  base: number,
): void {
  const moments = c.codes.length;
  const scratch = [c.sections.m0, c.sections.m1];
  for (let start = row.start; start < row.padded!; start += Q8_BLOCK) {
    const at = start - compactStart, b = at / Q8_BLOCK;
    for (let k = 0; k < moments; k++) {
      const codes = c.codes[k], s = c.scales[k][b], x = scratch[k];
      const values = codes instanceof Int8Array ? SIGNED_VALUES : UNSIGNED_VALUES;
      for (let j = 0; j < Q8_BLOCK; j++) x[j] = values[codes[at + j] & 255] * s;
    }
    stepRange(rule, c.sections, start, start + Q8_BLOCK, f, u, base, start);
    for (let k = 0; k < moments; k++) {
      const top = blockTop(c.bits[k], 0);
      const codes = c.codes[k];
      c.scaleWords[k][b] = scaleBits(top);
      if (codes instanceof Int8Array) encodeSignedBlock(scratch[k], 0, top, codes, at);
      else encodeUnsignedBlock(scratch[k], 0, top, codes, at);
    }
  }
  c.sections.p.fill(0, row.end, row.padded);
  c.sections.slow.fill(0, row.end, row.padded);
}

/** The codes, scales and scratch of a compact arena in `buffer`, for {@linkcode jsStep}. */
function compactOf(buffer: ArrayBuffer, layout: ArenaLayout, sections: JsSections): JsCompact {
  const blocks = layout.unsignedCodes.map(() => new Float32Array(Q8_BLOCK));
  const count = layout.total - layout.compactStart;
  return {
    codes: layout.unsignedCodes.map((unsigned, k) => {
      const at = layout.sectionOffsets[codesSection(k)];
      return unsigned ? new Uint8Array(buffer, at, count) : new Int8Array(buffer, at, count);
    }),
    scales: layout.unsignedCodes.map((_, k) =>
      new Float32Array(buffer, layout.sectionOffsets[scalesSection(k)], count / Q8_BLOCK)
    ),
    scaleWords: layout.unsignedCodes.map((_, k) =>
      new Int32Array(buffer, layout.sectionOffsets[scalesSection(k)], count / Q8_BLOCK)
    ),
    sections: { ...sections, m0: blocks[0], m1: blocks[1] ?? blocks[0] },
    bits: blocks.map((x) => new Int32Array(x.buffer)),
  };
}

/** Allocates a TypeScript-backend arena for `layout`, stepped by `rule`'s loop. */
export function createJsBackend(layout: ArenaLayout, rule: Rule): CpuBackend {
  let buffer: ArrayBuffer;
  try {
    buffer = new ArrayBuffer(layout.byteLength);
  } catch (cause) {
    throw new RangeError(
      `Cannot allocate the ${layout.byteLength}-byte arena for ${layout.total} parameters`,
      { cause },
    );
  }
  const view = (section: number) =>
    sectionView(buffer, 0, layout, hasSection(layout, section) ? section : PARAMS);
  const sections: JsSections = {
    p: view(PARAMS),
    g: view(GRADS),
    m0: view(EXP_AVG),
    m1: view(EXP_AVG_SQ),
    slow: view(SLOW),
  };
  const blocks = blockViews(new ArrayBuffer(blockCount(layout.segments) * BLOCK_BYTES), 0, layout);
  const { g } = sections;
  const n = layout.total;
  const compact = layout.compactStart < n ? compactOf(buffer, layout, sections) : undefined;
  // The arena is a plain ArrayBuffer, which a transfer can detach: the steps that read the
  // gradient slots where they lie (zero copy) check it (a copy in is checked as it loads).
  return new CpuBackend("js", layout, buffer, 0, blocks, {
    update: () => {
      checkAttached(buffer);
      jsStep(rule, sections, layout, blocks.f32, blocks.u32, compact);
    },
    gradSumSquares: () => (checkAttached(buffer), jsSumSquares(g, n)),
    nonFiniteRange: (offset, count) => jsNonFinite(g, offset, count),
    gradsNonFinite: () => (checkAttached(buffer), jsNonFinite(g, 0, n)),
    centralize: (offset, rows, cols) => jsCentralize(g, offset, rows, cols),
    threads: 1,
    dispose: () => {},
  });
}
