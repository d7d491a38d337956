// The optimizer kernel over one packed arena, f32x4 SIMD: the rule-agnostic step (segments of
// parameter groups, each with its scalar block; the rule's element loop chosen by the block's
// tag, through the dispatch generated from the registry: rules.generated.ts), and the
// reductions every rule shares (sum of squares, centralization).
//
// The host computes every per-step scalar in float64 (base/scalars.ts, rules/) and writes them
// rounded to f32 into scalar blocks in this module's memory; the word offsets are generated from
// the tables that define them (layout.generated.ts). The element loops (adam.ts, lion.ts) do the
// same IEEE-754 f32 operations, in the same order, as the TypeScript ones (rules/*.ts), with no
// fused multiply-add, so that both produce bit-identical results.

import {
  ARENA_COMPACT_START,
  ARENA_G,
  ARENA_M,
  ARENA_M_CODES,
  ARENA_M_SCALES,
  ARENA_P,
  ARENA_SEGMENT_COUNT,
  ARENA_SLOW,
  ARENA_TABLE,
  ARENA_V,
  ARENA_V_CODES,
  ARENA_V_SCALES,
  BLOCK_BYTES,
  HEADER_RULE,
  SEGMENT_END,
  SEGMENT_GROUP,
  SEGMENT_PADDED,
  SEGMENT_ROW_BYTES,
  SEGMENT_START,
  SUM_BLOCK,
} from "./layout.generated";
import { ruleCompactRange, ruleRange } from "./rules.generated";
import { BLOCK } from "./q8";

/** First byte after the module's static data: where the host may place its arena. */
export function heapBase(): usize {
  return __heap_base;
}

/**
 * One optimizer step over the elements `start` to `end` (exclusive) of the arena that the
 * descriptor at `arena` describes (byte addresses of its 16-byte-aligned sections and of its
 * segment table, base/arena.ts ARENA_DESCRIPTOR), with the scalar blocks at `scalars` (block 0 the
 * optimizer's own, block g parameter group g's). The single-threaded host passes the whole range
 * `[0, n)`, the threaded one (cpu/threaded_wasm_backend.ts) one slice per thread. Every
 * element's result depends on that element only (with 8-bit moments: on its block only, and the
 * slices cut at block boundaries), so any split gives the same bits.
 *
 * Without parameter groups the range is stepped with block 0; with them, each run of the
 * segment table (rows of start, end, group), clipped to `[start, end)`, with its group's block,
 * all in this call. A row with `padded` set is a tensor with 8-bit moments (base/arena_compact.ts):
 * its blocks are stepped by the rule's compact loop, with the 2 KiB of this thread's `scratch`,
 * and its padding's parameters set back to 0 after its last block.
 */
export function step(arena: usize, scalars: usize, start: i32, end: i32, scratch: usize): void {
  const count = load<i32>(arena + ARENA_SEGMENT_COUNT);
  if (count == 0) {
    stepRun(arena, scalars, start, end);
    return;
  }
  const table = <usize> load<u32>(arena + ARENA_TABLE);
  for (let k = 0; k < count; k++) {
    const row = table + <usize> k * SEGMENT_ROW_BYTES;
    const block = scalars + <usize> load<u32>(row + SEGMENT_GROUP) * BLOCK_BYTES;
    const padded = load<i32>(row + SEGMENT_PADDED);
    const lo = max(load<i32>(row + SEGMENT_START), start);
    const hi = min(padded != 0 ? padded : load<i32>(row + SEGMENT_END), end);
    if (lo >= hi) continue;
    if (padded == 0) stepRun(arena, block, lo, hi);
    else stepCompact(arena, block, lo, hi, scratch, hi == padded ? load<i32>(row + SEGMENT_END) : hi);
  }
}

/**
 * Blocks `[lo, hi)` (multiples of BLOCK) of a compact tensor with the block at `block`, then
 * the parameters (and slow weights) of `[realEnd, hi)`, the padding, set to 0: a step may have
 * made them non-finite (0 / 0 with eps 0), which LookAhead or a coupled decay would carry into
 * the block's moments at the next step.
 */
function stepCompact(arena: usize, block: usize, lo: i32, hi: i32, scratch: usize, realEnd: i32): void {
  const o = <usize> lo << 2;
  const c = <usize> (lo - load<i32>(arena + ARENA_COMPACT_START));
  const s = (c / <usize> BLOCK) << 2;
  const p = <usize> load<u32>(arena + ARENA_P);
  const slow = <usize> load<u32>(arena + ARENA_SLOW);
  ruleCompactRange(
    load<u32>(block + HEADER_RULE),
    p + o,
    <usize> load<u32>(arena + ARENA_G) + o,
    <usize> load<u32>(arena + ARENA_M_CODES) + c,
    <usize> load<u32>(arena + ARENA_M_SCALES) + s,
    <usize> load<u32>(arena + ARENA_V_CODES) + c,
    <usize> load<u32>(arena + ARENA_V_SCALES) + s,
    slow + o,
    (hi - lo) / BLOCK,
    block,
    scratch,
  );
  for (let i = realEnd; i < hi; i++) {
    store<f32>(p + (<usize> i << 2), 0);
    store<f32>(slow + (<usize> i << 2), 0);
  }
}

/** Elements `[lo, hi)` with the block at `block`: the element loop of the block's rule. */
function stepRun(arena: usize, block: usize, lo: i32, hi: i32): void {
  const o = <usize> lo << 2;
  ruleRange(
    load<u32>(block + HEADER_RULE),
    <usize> load<u32>(arena + ARENA_P) + o,
    <usize> load<u32>(arena + ARENA_G) + o,
    <usize> load<u32>(arena + ARENA_M) + o,
    <usize> load<u32>(arena + ARENA_V) + o,
    <usize> load<u32>(arena + ARENA_SLOW) + o,
    hi - lo,
    block,
  );
}

// SUM_BLOCK (layout.generated.ts, from cpu/js_backend.ts): elements per block of the sum of
// squares. The reduction is defined blockwise, so that a threaded state (each thread sums whole
// blocks) and a single-threaded one give the same bits.

/**
 * Sum of squares of `n` f32 values at `ptr` (16-byte aligned), accumulated in f64 so that it
 * cannot overflow and is NaN/Infinity exactly when some value is. Fixed order, mirrored by the
 * TypeScript backend: the values are cut into blocks of SUM_BLOCK elements (the last one
 * shorter); each block is summed by `blockSumSquares`, and the block sums are added in order
 * to a running f64 total starting at 0.
 */
export function sumSquares(ptr: usize, n: i32): f64 {
  let total: f64 = 0;
  for (let start = 0; start < n; start += SUM_BLOCK) {
    total += blockSumSquares(ptr + (<usize> start << 2), min(SUM_BLOCK, n - start));
  }
  return total;
}

/**
 * The block sums of `sumSquares` for blocks `first` to `last` (exclusive) of the `n` values at
 * `ptr`, written as f64 to `out + 8 * block`: a thread's share of the reduction. The host adds
 * all the block sums in order, as `sumSquares` does.
 */
export function sumSquaresBlocks(ptr: usize, n: i32, first: i32, last: i32, out: usize): void {
  for (let b = first; b < last; b++) {
    const start = b * SUM_BLOCK;
    store<f64>(
      out + (<usize> b << 3),
      blockSumSquares(ptr + (<usize> start << 2), min(SUM_BLOCK, n - start)),
    );
  }
}

/**
 * Sum of squares of one block of `n` values: eight lane sums s0..s7 (lane j takes elements
 * 8i + j of the part below n & ~7, each square exact in f64), combined as ((s0 + s1) + (s2 +
 * s3)) + ((s4 + s5) + (s6 + s7)), then the tail added in order. Eight independent f64 chains
 * hide the add latency.
 */
// @ts-ignore: decorator
@inline
function blockSumSquares(ptr: usize, n: i32): f64 {
  let a0 = f64x2.splat(0);
  let a1 = f64x2.splat(0);
  let a2 = f64x2.splat(0);
  let a3 = f64x2.splat(0);
  const vecEnd = n & ~7;
  let i = 0;
  for (; i < vecEnd; i += 8) {
    const x = v128.load(ptr + (<usize> i << 2));
    const y = v128.load(ptr + (<usize> i << 2) + 16);
    const x0 = f64x2.promote_low_f32x4(x);
    const x1 = f64x2.promote_low_f32x4(v128.shuffle<u32>(x, x, 2, 3, 0, 1));
    const y0 = f64x2.promote_low_f32x4(y);
    const y1 = f64x2.promote_low_f32x4(v128.shuffle<u32>(y, y, 2, 3, 0, 1));
    a0 = f64x2.add(a0, f64x2.mul(x0, x0));
    a1 = f64x2.add(a1, f64x2.mul(x1, x1));
    a2 = f64x2.add(a2, f64x2.mul(y0, y0));
    a3 = f64x2.add(a3, f64x2.mul(y1, y1));
  }
  let sum = ((f64x2.extract_lane(a0, 0) + f64x2.extract_lane(a0, 1)) +
    (f64x2.extract_lane(a1, 0) + f64x2.extract_lane(a1, 1))) +
    ((f64x2.extract_lane(a2, 0) + f64x2.extract_lane(a2, 1)) +
      (f64x2.extract_lane(a3, 0) + f64x2.extract_lane(a3, 1)));
  for (; i < n; i++) {
    const x = <f64> load<f32>(ptr + (<usize> i << 2));
    sum += x * x;
  }
  return sum;
}

/**
 * The mean of the `cols` f32 values at `row` from their f64 sum in index order, rounded once:
 * {@link centralize}'s mean of a row whose f32 sum is not finite (finite values whose sum
 * overflows f32, which the f64 sum cannot; a NaN or an infinity gives one as before).
 */
function wideMean(row: usize, cols: i32): f32 {
  let sum: f64 = 0;
  for (let i = 0; i < cols; i++) sum += <f64> load<f32>(row + (<usize> i << 2));
  return <f32> (sum / <f64> cols);
}

/**
 * Gradient centralization of one tensor laid out as `rows` rows of `cols` f32 values at `ptr`
 * (any 4-byte alignment): subtracts from each row its mean, in place. The row sum is taken in
 * f32 in a fixed order, mirrored by the TypeScript backend: four lane sums (lane j takes
 * elements 4i + j of the row's vector part), combined as (s0 + s1) + (s2 + s3), then the tail
 * added in order; mean = sum / cols (where that sum is not finite: {@link wideMean}).
 */
export function centralize(ptr: usize, rows: i32, cols: i32): void {
  const vecEnd = cols & ~3;
  for (let r = 0; r < rows; r++) {
    const row = ptr + ((<usize> r * <usize> cols) << 2);
    let acc = f32x4.splat(0);
    let i = 0;
    for (; i < vecEnd; i += 4) acc = f32x4.add(acc, v128.load(row + (<usize> i << 2)));
    let sum = (f32x4.extract_lane(acc, 0) + f32x4.extract_lane(acc, 1)) +
      (f32x4.extract_lane(acc, 2) + f32x4.extract_lane(acc, 3));
    for (; i < cols; i++) sum += load<f32>(row + (<usize> i << 2));
    const mean = isFinite<f32>(sum) ? sum / <f32> cols : wideMean(row, cols);
    const mv = f32x4.splat(mean);
    i = 0;
    for (; i < vecEnd; i += 4) {
      const o = row + (<usize> i << 2);
      v128.store(o, f32x4.sub(v128.load(o), mv));
    }
    for (; i < cols; i++) {
      const o = row + (<usize> i << 2);
      store<f32>(o, load<f32>(o) - mean);
    }
  }
}

/**
 * Whether any of the `n` f32 values at `ptr` is NaN or ±Infinity: 1 if so, else 0. The test is
 * on the exponent bits (all ones), an integer max over `bits & 0x7f800000`, so it costs a read
 * of the values and is exact (no arithmetic on them). The non-finite check of `nonFinite: "skip"`
 * and `"throw"` without clipping (which needs the f64 `sumSquares` instead).
 *
 * The values are read as four streams at once (four quarters of the range, 64 bytes of each an
 * iteration): one sequential stream leaves most of the memory bandwidth unused on one core,
 * four keep as many lines in flight as the step's own streams do.
 */
export function nonFinite(ptr: usize, n: i32): i32 {
  const mask = i32x4.splat(0x7f800000);
  let a0 = i32x4.splat(0);
  let a1 = i32x4.splat(0);
  let a2 = i32x4.splat(0);
  let a3 = i32x4.splat(0);
  // quarters of q elements (a multiple of 16), the rest after them
  const q = (n >> 2) & ~15;
  const qb = <usize> q << 2;
  for (let i = 0; i < q; i += 16) {
    const o0 = ptr + (<usize> i << 2);
    const o1 = o0 + qb;
    const o2 = o1 + qb;
    const o3 = o2 + qb;
    a0 = i32x4.max_u(a0, v128.and(v128.load(o0), mask));
    a1 = i32x4.max_u(a1, v128.and(v128.load(o1), mask));
    a2 = i32x4.max_u(a2, v128.and(v128.load(o2), mask));
    a3 = i32x4.max_u(a3, v128.and(v128.load(o3), mask));
    a0 = i32x4.max_u(a0, v128.and(v128.load(o0, 16), mask));
    a1 = i32x4.max_u(a1, v128.and(v128.load(o1, 16), mask));
    a2 = i32x4.max_u(a2, v128.and(v128.load(o2, 16), mask));
    a3 = i32x4.max_u(a3, v128.and(v128.load(o3, 16), mask));
    a0 = i32x4.max_u(a0, v128.and(v128.load(o0, 32), mask));
    a1 = i32x4.max_u(a1, v128.and(v128.load(o1, 32), mask));
    a2 = i32x4.max_u(a2, v128.and(v128.load(o2, 32), mask));
    a3 = i32x4.max_u(a3, v128.and(v128.load(o3, 32), mask));
    a0 = i32x4.max_u(a0, v128.and(v128.load(o0, 48), mask));
    a1 = i32x4.max_u(a1, v128.and(v128.load(o1, 48), mask));
    a2 = i32x4.max_u(a2, v128.and(v128.load(o2, 48), mask));
    a3 = i32x4.max_u(a3, v128.and(v128.load(o3, 48), mask));
  }
  let i = q << 2;
  const vecEnd = n & ~3;
  for (; i < vecEnd; i += 4) {
    a0 = i32x4.max_u(a0, v128.and(v128.load(ptr + (<usize> i << 2)), mask));
  }
  const top = i32x4.max_u(i32x4.max_u(a0, a1), i32x4.max_u(a2, a3));
  let found = v128.any_true(i32x4.eq(top, mask)) ? 1 : 0;
  for (; i < n; i++) {
    if ((load<u32>(ptr + (<usize> i << 2)) & 0x7f800000) == 0x7f800000) found = 1;
  }
  return found;
}
