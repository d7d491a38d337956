/**
 * The plain TypeScript backend: the same per-element f32 arithmetic as the WASM kernel
 * (assembly/index.ts), operation for operation, each result rounded with `Math.fround`. Since
 * every operation is a correctly rounded IEEE-754 add, mul, div or sqrt (float64 then rounded
 * to f32 gives the f32 result for these), both backends agree bit for bit.
 *
 * @module
 */
import {
  type ArenaLayout,
  EXP_AVG,
  EXP_AVG_SQ,
  GRADS,
  PARAMS,
  sectionView,
  SLOW,
} from "../core/arena.ts";
import { MODE_ADAPTIVE, MODE_MOMENTUM, type StepScalars } from "../core/scalars.ts";
import { CpuBackend } from "./cpu_backend.ts";

const f32 = Math.fround;

/**
 * One step over the arena's sections, in f32 arithmetic: over all `n` elements with the
 * global scalars, or, with parameter groups, over each segment of `table` (rows of 8: start,
 * end as i32 in `tableInts`, then stepSize, paramDecay, coupledDecay) with its own three.
 */
export function jsStep(
  p: Float32Array,
  g: Float32Array,
  m: Float32Array,
  v: Float32Array,
  n: number,
  s: StepScalars,
  slow: Float32Array,
  table: Float32Array,
  tableInts: Int32Array,
): void {
  if (table.length === 0) {
    jsStepRange(p, g, m, v, 0, n, s, slow, s.stepSize, s.paramDecay, s.coupledDecay);
    return;
  }
  for (let k = 0; k < table.length; k += 8) {
    const start = tableInts[k], end = tableInts[k + 1];
    jsStepRange(p, g, m, v, start, end, s, slow, table[k + 2], table[k + 3], table[k + 4]);
  }
}

function jsStepRange(
  p: Float32Array,
  g: Float32Array,
  m: Float32Array,
  v: Float32Array,
  start: number,
  end: number,
  s: StepScalars,
  slow: Float32Array,
  stepSize: number,
  paramDecay: number,
  coupledDecay: number,
): void {
  const gs = f32(s.gradScale), wd = f32(coupledDecay);
  const b1 = f32(s.beta1), c1 = f32(s.oneMinusBeta1);
  const b2 = f32(s.beta2), c2 = f32(s.oneMinusBeta2);
  const pd = f32(paramDecay), ss = f32(stepSize), eps = f32(s.eps);
  const mode = s.mode;
  const coupled = wd !== 0;
  const alpha = f32(s.alpha), sync = s.sync !== 0;
  const gm = f32(s.gradMix), nesterov = gm !== 0;
  for (let i = start; i < end; i++) {
    const pi = p[i];
    let gi = f32(gs * g[i]);
    if (coupled) gi = f32(gi + f32(wd * pi));
    const mi = f32(f32(b1 * m[i]) + f32(c1 * gi));
    const vi = f32(f32(b2 * v[i]) + f32(c2 * f32(gi * gi)));
    m[i] = mi;
    v[i] = vi;
    const num = nesterov ? f32(mi + f32(gm * gi)) : mi;
    let pNew = pi;
    if (mode === MODE_ADAPTIVE) {
      pNew = f32(f32(pi * pd) - f32(ss * f32(num / f32(f32(Math.sqrt(vi)) + eps))));
    } else if (mode === MODE_MOMENTUM) {
      pNew = f32(f32(pi * pd) - f32(ss * num));
    }
    if (sync) {
      const si = slow[i];
      pNew = f32(si + f32(alpha * f32(pNew - si)));
      slow[i] = pNew;
    }
    p[i] = pNew;
  }
}

/**
 * Elements per block of the sum of squares (SUM_BLOCK in assembly/index.ts): the reduction is
 * defined blockwise so that threaded and single-threaded states give the same bits.
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
 * cols, then each element minus the mean.
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
    const mean = f32(sum / fc);
    for (i = 0; i < cols; i++) x[row + i] = x[row + i] - mean;
  }
}

/** Allocates a TypeScript-backend arena for `layout`. */
export function createJsBackend(layout: ArenaLayout): CpuBackend {
  let buffer: ArrayBuffer;
  try {
    buffer = new ArrayBuffer(layout.byteLength);
  } catch (cause) {
    throw new RangeError(
      `Cannot allocate the ${layout.byteLength}-byte arena for ${layout.total} parameters`,
      { cause },
    );
  }
  const p = sectionView(buffer, 0, layout, PARAMS);
  const g = sectionView(buffer, 0, layout, GRADS);
  const m = sectionView(buffer, 0, layout, EXP_AVG);
  const v = sectionView(buffer, 0, layout, EXP_AVG_SQ);
  const slow = layout.sectionCount > SLOW ? sectionView(buffer, 0, layout, SLOW) : p;
  const n = layout.total;
  const rows = layout.segments.length * 8;
  const table = new Float32Array(buffer, layout.segmentTableOffset, rows);
  const tableInts = new Int32Array(buffer, layout.segmentTableOffset, rows);
  const kernel = (s: StepScalars) => jsStep(p, g, m, v, n, s, slow, table, tableInts);
  return new CpuBackend("js", layout, buffer, 0, kernel, {
    gradSumSquares: () => jsSumSquares(g, n),
    nonFiniteRange: (offset, count) => jsNonFinite(g, offset, count),
    centralize: (offset, rows, cols) => jsCentralize(g, offset, rows, cols),
  });
}
