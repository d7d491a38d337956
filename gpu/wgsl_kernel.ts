/**
 * The WGSL kernels of the WebGPU backend, and their helpers' exports: the step (wgsl_step.ts),
 * the gradient norm (wgsl_norm.ts), and here gradient centralization (one workgroup a row, the
 * rows of many tensors in one dispatch) and the copies (a plain vec4 copy, the benchmark's bandwidth limit, and the masked copy of a
 * tensor).
 *
 * @module
 */
import {
  type Binding,
  CHUNK_WGSL,
  declareBindings,
  GRID_ARGS,
  type Kernel,
  WORKGROUP_SIZE,
} from "./_wgsl.ts";
import { F32_MAX } from "../base/schema.ts";

export { dispatchGrid, WORKGROUP_SIZE } from "./_wgsl.ts";
export { DECIDE, SMALL_STEP_ELEMENTS, stepKernels } from "./wgsl_step.ts";
export { GRAD_NORM_PARTIAL, GRAD_NORM_TOTAL, NORM_ELEMENTS_PER_WORKGROUP } from "./wgsl_norm.ts";

const CENTRALIZE_BINDINGS: readonly Binding[] = [
  { name: "x", type: "array<f32>", kind: "storage" },
  { name: "table", type: "array<vec4<u32>>", kind: "read-only-storage" },
];

/** The WGSL the two centralization kernels share: bindings, table lookup, row mean. */
const CENTRALIZE_COMMON = /* wgsl */ `
${declareBindings(CENTRALIZE_BINDINGS)}
const LANES = ${WORKGROUP_SIZE}u;

// The run of row \`row\` among table entries first..last (the last whose first row is at or
// before it): its first row, the element its first row starts at, its cols.
fn run_of(row: u32, first: u32, last: u32) -> vec4<u32> {
  var lo = first;
  var hi = last;
  while (lo < hi) {
    let mid = (lo + hi + 1u) / 2u;
    if (table[mid].x <= row) { lo = mid; } else { hi = mid - 1u; }
  }
  return table[lo];
}

// The magnitude of v as bits (sign cleared), as stored: a compiler may assume that no float
// arithmetic yields an infinity or a NaN, so a row is told from its largest magnitude's bits
// (past 0x7f800000: a NaN; equal: an infinity), not from a sum tested after the fact.
fn magnitude(v: f32) -> u32 { return bitcast<u32>(v) & 0x7fffffffu; }

// Whether v is +Infinity (x) and whether it is −Infinity (y), as 1 or 0, from the bits.
fn infinities(v: f32) -> vec2<u32> {
  let bits = bitcast<u32>(v);
  return vec2<u32>(u32(bits == 0x7f800000u), u32(bits == 0xff800000u));
}

// The bits of the mean of a row whose largest magnitude (bits top) is not finite, holding
// infinities inf (either sign's flag, infinities), as the CPU backends' f64 sum gives it: NaN
// where a NaN or both infinities, else that infinity.
fn special_mean(top: u32, inf: vec2<u32>) -> u32 {
  if (top > 0x7f800000u || all(inf != vec2<u32>(0u))) { return 0x7fc00000u; }
  return select(0xff800000u, 0x7f800000u, inf.x != 0u);
}

// v − mean for a mean (bits) that is not finite, from the bits: NaN where the mean is NaN or v
// is an infinity (then the mean's own, ∞ − ∞), else the mean negated.
fn minus_special(v: f32, mean: u32) -> f32 {
  let inf = (bitcast<u32>(v) & 0x7f800000u) == 0x7f800000u;
  return bitcast<f32>(select(mean ^ 0x80000000u, 0x7fc00000u, inf || mean == 0x7fc00000u));
}

// Whether v − mean may pass f32's largest for the values of a row (largest magnitude bits top, as
// stored) and its finite mean: only where one of them is of magnitude 2^127 or more.
fn wide_difference(top: u32, mean: f32) -> bool {
  return top >= 0x7f000000u || abs(mean) >= ${2 ** 127};
}

// v − mean for a finite v and mean; in a row where wide (wide_difference), an infinity, as bits,
// where that difference passes f32's largest (a compiler may assume that no result does), told
// from the halves: v − mean rounds past the largest f32 exactly where v / 2 − mean / 2 rounds to
// 2^127 or more (halving is exact for the values that matter: one of them is of magnitude 2^126
// or more, and the other's error cannot move the half across a midpoint); elsewhere the
// difference, finite (clamped: an overflow this missed would read ±FLT_MAX, not pass as IEEE's).
fn minus_mean(v: f32, mean: f32, wide: bool) -> f32 {
  if (!wide) { return v - mean; }
  let half = v * 0.5 - mean * 0.5;
  let inf = select(0xff800000u, 0x7f800000u, half > 0.0);
  let finite = clamp(v - mean, -${F32_MAX}, ${F32_MAX});
  return select(finite, bitcast<f32>(inf), abs(half) >= ${2 ** 127});
}

// The k ≥ 0 by which a row's values are scaled (times 2⁻ᵏ, exact) so that no partial sum of its
// cols values, each of magnitude below 2^(e + 1) (e the exponent of the largest, bits top), can
// pass 2¹²⁶; 0 unless that bound, 2^(e + 1) · cols, is above 2¹²⁶. Decided on the bits as stored.
fn sum_shift(top: u32, cols: u32) -> i32 {
  let e = i32(top >> 23u) - 127;
  let c = i32(32u - countLeadingZeros(cols - 1u));
  return max(0, e + 1 + c - 126);
}
`;

/**
 * Gradient centralization of the wide rows (of more than 64 elements) of many tensors in one
 * dispatch (entry point `centralize`; gpu/centralize.ts): `table[0]` holds the dispatch's wide
 * rows and runs, then its narrow rows and runs; then per run (wide runs first) its first row
 * among the wide or narrow rows, the element of the binding its first row starts at, and its
 * row length `cols`. Workgroup `r` finds the run of wide row `r` (a binary search), then
 * subtracts from the row its f32 mean: each of the 64 invocations sums a strided part of the
 * row, then a tree reduction in workgroup memory gives the row sum (any summation tree of
 * `cols` terms stays within the `(cols − 1)` roundings the reference allows), with the row's
 * largest magnitude and its non-finite values, told by their bits as stored (WGSL lets a
 * compiler assume that float arithmetic yields no infinity or NaN, so a sum that overflowed may
 * not read as one). A row holding a NaN or an infinity gets the mean the CPU backends' f64 sum
 * gives it (NaN, or that infinity) and each value minus it, from the bits. A row of finite values
 * whose f32 sum could pass 2¹²⁶ (judged from its largest magnitude and `cols`) is summed again
 * with every value scaled by a power of two (exact), so that no sum overflows, as the CPU
 * backends' f64 mean does not.
 */
export const CENTRALIZE: Kernel = {
  entryPoint: "centralize",
  bindings: CENTRALIZE_BINDINGS,
  code: /* wgsl */ `
${CENTRALIZE_COMMON}
var<workgroup> partial: array<vec2<u32>, LANES>;

@compute @workgroup_size(LANES)
fn centralize(
  ${GRID_ARGS}
) {
  let row = wid.y * groups.x + wid.x;
  let head = table[0];
  if (row >= head.x) { return; }
  let run = run_of(row, 1u, head.y);
  let cols = run.z;
  let base = run.y + (row - run.x) * cols;
  var sum = 0.0;
  var top = 0u;
  for (var j = lid; j < cols; j += LANES) {
    let v = x[base + j];
    sum = sum + v;
    top = max(top, magnitude(v));
  }
  let total = row_sum(lid, sum, top);
  if (total.y >= 0x7f800000u) {
    // (Rare: a second pass finds the infinities' signs: a sum of +Infinity's flags, exact, and
    // the largest of −Infinity's.)
    var inf = vec2<u32>(0u);
    for (var j = lid; j < cols; j += LANES) { inf = max(inf, infinities(x[base + j])); }
    let signs = row_sum(lid, f32(inf.x), inf.y);
    let special = special_mean(total.y, vec2<u32>(u32(bitcast<f32>(signs.x) > 0.0), signs.y));
    for (var j = lid; j < cols; j += LANES) { x[base + j] = minus_special(x[base + j], special); }
    return;
  }
  var mean = bitcast<f32>(total.x) / f32(cols);
  let k = sum_shift(total.y, cols);
  if (k > 0) {
    let down = ldexp(1.0, -k);
    var scaled = 0.0;
    for (var j = lid; j < cols; j += LANES) { scaled = scaled + x[base + j] * down; }
    mean = ldexp(bitcast<f32>(row_sum(lid, scaled, 0u).x) / f32(cols), k);
  }
  let wide = wide_difference(total.y, mean);
  for (var j = lid; j < cols; j += LANES) { x[base + j] = minus_mean(x[base + j], mean, wide); }
}

// The sum of every invocation's part (as bits) and the largest of their tops (magnitude bits),
// to all of them (a tree reduction in workgroup memory).
fn row_sum(lid: u32, part: f32, top: u32) -> vec2<u32> {
  workgroupBarrier();
  partial[lid] = vec2<u32>(bitcast<u32>(part), top);
  workgroupBarrier();
  for (var k = LANES / 2u; k > 0u; k = k / 2u) {
    if (lid < k) {
      let a = partial[lid];
      let b = partial[lid + k];
      let total = bitcast<f32>(a.x) + bitcast<f32>(b.x);
      partial[lid] = vec2<u32>(bitcast<u32>(total), max(a.y, b.y));
    }
    workgroupBarrier();
  }
  return workgroupUniformLoad(&partial[0]);
}
`,
};

/**
 * Gradient centralization of the narrow rows (of at most 64 elements) of many tensors in one
 * dispatch (entry point `centralize_narrow`, the table of `CENTRALIZE`): an invocation a row,
 * 64 rows a workgroup. Each row is summed as `CENTRALIZE`'s workgroup sums it, lane `j`'s part
 * `0 + x[j]` (0 past the row), then the same tree, in a private array: the same bits, without
 * the barriers that a workgroup a row costs (on CPU adapters most of its time); non-finite values
 * and large rows as there.
 */
export const CENTRALIZE_NARROW: Kernel = {
  entryPoint: "centralize_narrow",
  bindings: CENTRALIZE_BINDINGS,
  code: /* wgsl */ `
${CENTRALIZE_COMMON}

@compute @workgroup_size(LANES)
fn centralize_narrow(
  ${GRID_ARGS}
) {
  let row = (wid.y * groups.x + wid.x) * LANES + lid;
  let head = table[0];
  if (row >= head.z) { return; }
  let run = run_of(row, 1u + head.y, head.y + head.w);
  let cols = run.z;
  let base = run.y + (row - run.x) * cols;
  var parts: array<f32, LANES>;
  var top = 0u;
  for (var j = 0u; j < cols; j++) {
    let v = x[base + j];
    parts[j] = 0.0 + v;
    top = max(top, magnitude(v));
  }
  if (top >= 0x7f800000u) {
    var inf = vec2<u32>(0u);
    for (var j = 0u; j < cols; j++) { inf = max(inf, infinities(x[base + j])); }
    let special = special_mean(top, inf);
    for (var j = 0u; j < cols; j++) { x[base + j] = minus_special(x[base + j], special); }
    return;
  }
  var mean: f32;
  let k = sum_shift(top, cols);
  if (k == 0) {
    mean = tree_sum(&parts) / f32(cols);
  } else {
    let down = ldexp(1.0, -k);
    for (var j = 0u; j < cols; j++) { parts[j] = 0.0 + x[base + j] * down; }
    mean = ldexp(tree_sum(&parts) / f32(cols), k);
  }
  let wide = wide_difference(top, mean);
  for (var j = 0u; j < cols; j++) { x[base + j] = minus_mean(x[base + j], mean, wide); }
}

// The tree of \`row_sum\` (CENTRALIZE) over one invocation's parts.
fn tree_sum(parts: ptr<function, array<f32, LANES>>) -> f32 {
  for (var k = LANES / 2u; k > 0u; k = k / 2u) {
    for (var i = 0u; i < k; i++) { (*parts)[i] = (*parts)[i] + (*parts)[i + k]; }
  }
  return (*parts)[0];
}
`,
};

const COPY_BINDINGS: readonly Binding[] = [
  { name: "src", type: "array<vec4<f32>>", kind: "read-only-storage" },
  { name: "dst", type: "array<vec4<f32>>", kind: "storage" },
];

/** WGSL of a plain copy kernel over vec4s (the bandwidth limit the benchmark compares with). */
export const COPY_KERNEL_WGSL = /* wgsl */ `
${CHUNK_WGSL}
${declareBindings(COPY_BINDINGS)}

@compute @workgroup_size(${WORKGROUP_SIZE})
fn copy(
  ${GRID_ARGS}
) {
  let i = vector_index(wid, groups, lid);
  if (i < arrayLength(&dst)) { dst[i] = src[i]; }
}
`;

const COPY_TENSOR_BINDINGS: readonly Binding[] = [
  ...COPY_BINDINGS,
  { name: "chunk", type: "Chunk", kind: "uniform" },
];

/**
 * A masked copy of one tensor's elements (entry point `copy_tensor`), one `vec4` an
 * invocation: the first `chunk.count` elements of `src` into `dst` (the uniform is a chunk entry
 * of the step kernel); lanes of the last vec4 past the count keep `dst`'s values, so the up to 3
 * floats after a tensor whose length is not a multiple of 4 are left as they were. It moves
 * parameters updated in place in a caller's buffer to and from the arena's params section
 * (readback, restore, LookAhead's start) without needing COPY_SRC or COPY_DST on that buffer.
 */
export const COPY_TENSOR: Kernel = {
  entryPoint: "copy_tensor",
  bindings: COPY_TENSOR_BINDINGS,
  code: /* wgsl */ `
${CHUNK_WGSL}
${declareBindings(COPY_TENSOR_BINDINGS)}

@compute @workgroup_size(${WORKGROUP_SIZE})
fn copy_tensor(
  ${GRID_ARGS}
) {
  let i = vector_index(wid, groups, lid);
  let count = chunk.count;
  if (i >= (count + 3u) / 4u) { return; }
  dst[i] = select(src[i], dst[i], past_count(count, i));
}
`,
};
