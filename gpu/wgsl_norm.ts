/**
 * The WGSL kernels of the global gradient norm and the non-finite check (two passes), and the
 * workgroup reductions they share with the one-workgroup step.
 *
 * @module
 */
import { SEGMENT_WGSL } from "../base/arena.ts";
import {
  type Binding,
  CHUNK_WGSL,
  declareBindings,
  GRID_ARGS,
  type Kernel,
  WORKGROUP_SIZE,
} from "./_wgsl.ts";
import { DECIDE_WGSL } from "./control.ts";
import { RING_WGSL } from "./scalar_ring.ts";
import { STEP_CONSTS_WGSL } from "./step_consts.ts";

/** vec4s of the gradients each invocation of the first norm pass reads (64 elements). */
export const NORM_VECTORS_PER_INVOCATION = 16;

/** Gradients one workgroup of the first norm pass covers. */
export const NORM_ELEMENTS_PER_WORKGROUP = 4 * WORKGROUP_SIZE * NORM_VECTORS_PER_INVOCATION;

/** Bytes of one workgroup's partial (`Partial` in the WGSL): largest |g|, sum, key, NaN flag. */
export const NORM_PARTIAL_BYTES = 16;

/**
 * WGSL of the workgroup reductions of the norm kernels (over the workgroup arrays `wf`, `wu`)
 * and the NaN test (with the workgroup's NaN flag `wnan`, set to 1 by any
 * invocation that saw a NaN: the norm is NaN where a gradient is NaN, else +Infinity where one
 * is ±Infinity).
 */
export const NORM_WORKGROUP_WGSL = /* wgsl */ `
var<workgroup> wf: array<f32, ${WORKGROUP_SIZE}>;
var<workgroup> wu: array<u32, ${WORKGROUP_SIZE}>;
var<workgroup> wnan: atomic<u32>;

// Tree reduction of the workgroup's (largest |g|, non-finite key) pairs into wf[0], wu[0].
fn reduce_max(lid: u32) {
  workgroupBarrier();
  for (var k = ${WORKGROUP_SIZE / 2}u; k > 0u; k = k / 2u) {
    if (lid < k) {
      wf[lid] = max(wf[lid], wf[lid + k]);
      wu[lid] = max(wu[lid], wu[lid + k]);
    }
    workgroupBarrier();
  }
}

// Tree reduction of the workgroup's sums into wf[0].
fn reduce_sum(lid: u32) {
  workgroupBarrier();
  for (var k = ${WORKGROUP_SIZE / 2}u; k > 0u; k = k / 2u) {
    if (lid < k) { wf[lid] = wf[lid] + wf[lid + k]; }
    workgroupBarrier();
  }
}

// Whether one of the four elements is NaN (tested on the bits, as bad_key).
fn has_nan(x: vec4<f32>) -> bool {
  return any((bitcast<vec4<u32>>(x) & vec4<u32>(0x7fffffffu)) > vec4<u32>(0x7f800000u));
}`;

/**
 * WGSL of `bad_key(x, e)`: the key of the first NaN or ±Infinity among the four elements from
 * element e of the grads section (tested on the bits: a compiler may assume finite floats), or 0
 * where all four are finite: 0xffffffff − its position in the order the gradients are checked
 * in (init's), from the order rows of the segment table (nonfinite_order.ts), so that the
 * largest key is the first bad gradient in that order. The search runs only for a vec4 holding
 * one (a vec4 never straddles two tensors: they start at 64-element offsets). Needs `segments`
 * and the constants `s` bound.
 */
export const BAD_KEY_WGSL = /* wgsl */ `
fn bad_key(x: vec4<f32>, e: u32) -> u32 {
  let bad = (bitcast<vec4<u32>>(x) & vec4<u32>(0x7f800000u)) == vec4<u32>(0x7f800000u);
  if (!any(bad)) { return 0u; }
  let lane = select(select(select(3u, 2u, bad.z), 1u, bad.y), 0u, bad.x);
  var lo = s.segment_count;
  var hi = s.segment_count + s.order_rows - 1u;
  while (lo < hi) {
    let mid = (lo + hi + 1u) / 2u;
    if (segments[mid].start <= e) { lo = mid; } else { hi = mid - 1u; }
  }
  return 0xffffffffu - (segments[lo].group + (e + lane - segments[lo].start));
}`;

/**
 * WGSL of `set_norm(m, sum, key, nan)`, which writes the step's non-finite key, gradient norm
 * and clipping factors into the control buffer (`control` and the constants `s` must be bound),
 * as the CPU backends take them from the float64 sum of squares. Where every gradient is finite
 * (key 0): norm = M · sqrt(sum) of gradients of largest |g| M and sum of (g / M)², held as
 * fract · 2^exp (from M = f · 2^e and f · sqrt(sum)), so that no f32 result passes the largest
 * f32: WGSL lets a compiler assume none does, so a product that overflowed may not compare as
 * Infinity. The norm is compared with max (a finite one: an infinite max never clips) by
 * exponent, then fraction; it reads Infinity (written as bits) where past f32's range. Where it
 * is above max, the factor max / norm = (fract(max) / fract(norm)) · 2^(exp(max) − exp(norm)),
 * so that finite gradients whose norm is past f32's range are still clipped; where that factor is
 * below 2⁻¹²⁶ (an f32 subnormal of a few significant bits, or 0), it is held as 2⁻¹²⁶ · (its
 * value · 2¹²⁶): the kernels multiply the gradients by 2⁻¹²⁶ first (exact where |g| ≥ 1: the
 * products that matter), as the CPU backends then scale them in float64. A max of 0 clips by 0.
 * Otherwise the norm is NaN where a gradient is NaN (`nan`; no clipping: NaN > max is false),
 * else +Infinity (a ±Infinity, and no NaN), which clips by max / ∞ = 0. The factors are (1, 1)
 * where the step does not clip.
 */
export const SET_NORM_WGSL = /* wgsl */ `
fn set_norm(m: f32, sum: f32, key: u32, nan: bool) {
  control.key = key;
  var pow2 = 1.0;
  var scale = 1.0;
  if (key != 0u) {
    // Written as bits: the shader's float arithmetic may assume finite values.
    control.norm = bitcast<f32>(select(0x7f800000u, 0x7fc00000u, nan));
    if (!nan) { scale = 0.0; }
  } else if (m > 0.0) {
    let norm = frexp(frexp(m).fract * sqrt(sum));
    let e = frexp(m).exp + norm.exp;
    // Past f32's range: Infinity, as bits (a select, not a constant: Tint refuses a constant
    // expression whose value is infinite).
    let finite = bitcast<u32>(ldexp(2.0 * norm.fract, min(e, 128) - 1));
    control.norm = bitcast<f32>(select(finite, 0x7f800000u, e > 128));
    let max_bits = bitcast<u32>(s.clip_max);
    let c = frexp(s.clip_max);
    if ((max_bits & 0x7fffffffu) == 0u) {
      scale = 0.0;
    } else if (max_bits < 0x7f800000u && (e > c.exp || (e == c.exp && norm.fract > c.fract))) {
      let x = c.fract / norm.fract;
      scale = ldexp(x, c.exp - e);
      if (scale < ${2 ** -126}) {
        pow2 = ${2 ** -126};
        scale = ldexp(x, c.exp - e + 126);
      }
    }
  } else {
    control.norm = 0.0;
  }
  control.clip_scale = scale;
  control.clip_pow2 = pow2;
}`;

const PARTIAL_WGSL = "struct Partial { largest: f32, sum: f32, key: u32, nan: u32 }";

const PARTIAL_BINDINGS: readonly Binding[] = [
  { name: "g", type: "array<vec4<f32>>", kind: "read-only-storage" },
  { name: "chunk", type: "Chunk", kind: "uniform" },
  { name: "partials", type: "array<Partial>", kind: "storage" },
  { name: "segments", type: "array<Segment>", kind: "read-only-storage" },
  { name: "s", type: "Consts", kind: "uniform" },
];

/**
 * WGSL of the global gradient norm, overflow-safe in f32, in two passes. `partial` (one
 * workgroup a {@linkcode NORM_ELEMENTS_PER_WORKGROUP} gradients of a chunk of the grads section):
 * each invocation reads its 16 vec4s (coalesced: vec4 `k · 64 + lid` of the workgroup's block)
 * once into registers, takes their largest |g| and the sum of (g / largest)², and a key locating
 * its first NaN or ±Infinity in init's order (`bad_key`: the largest key is the first such
 * element), and whether one is NaN. One tree reduction combines
 * the (largest, sum, key) triples: largest M = max(m1, m2), sum = s1 · (m1 / M)² + s2 · (m2 /
 * M)². `total` (one workgroup) combines the workgroups' triples the same way: norm = M ·
 * sqrt(sum), or NaN or +Infinity where a gradient is not finite (see `set_norm`).
 */
export const GRAD_NORM_PARTIAL: Kernel = {
  entryPoint: "partial",
  bindings: PARTIAL_BINDINGS,
  code: /* wgsl */ `
${CHUNK_WGSL}
${STEP_CONSTS_WGSL}
${SEGMENT_WGSL}
${PARTIAL_WGSL}
${declareBindings(PARTIAL_BINDINGS)}
${NORM_WORKGROUP_WGSL}
${BAD_KEY_WGSL}
var<workgroup> ws: array<f32, ${WORKGROUP_SIZE}>;

@compute @workgroup_size(${WORKGROUP_SIZE})
fn partial(
  ${GRID_ARGS}
) {
  let w = wid.y * groups.x + wid.x;
  let count = chunk.count;
  let vectors = (count + 3u) / 4u;
  let first = w * ${WORKGROUP_SIZE * NORM_VECTORS_PER_INVOCATION}u + lid;
  var xs: array<vec4<f32>, ${NORM_VECTORS_PER_INVOCATION}>;
  var largest = 0.0;
  var key = 0u;
  var nan = false;
  for (var k = 0u; k < ${NORM_VECTORS_PER_INVOCATION}u; k++) {
    let i = first + k * ${WORKGROUP_SIZE}u;
    var x = vec4<f32>(0.0);
    if (i < vectors) {
      x = select(g[i], vec4<f32>(0.0), past_count(count, i));
      key = max(key, bad_key(x, chunk.start + i * 4u));
      nan = nan || has_nan(x);
    }
    xs[k] = x;
    let a = abs(x);
    largest = max(largest, max(max(a.x, a.y), max(a.z, a.w)));
  }
  var acc = vec4<f32>(0.0);
  if (largest > 0.0) {
    for (var k = 0u; k < ${NORM_VECTORS_PER_INVOCATION}u; k++) {
      let y = xs[k] / largest;
      acc = acc + y * y;
    }
  }
  wf[lid] = largest;
  ws[lid] = (acc.x + acc.y) + (acc.z + acc.w);
  wu[lid] = key;
  if (nan) { atomicStore(&wnan, 1u); }
  workgroupBarrier();
  for (var k = ${WORKGROUP_SIZE / 2}u; k > 0u; k = k / 2u) {
    if (lid < k) {
      let m1 = wf[lid];
      let m2 = wf[lid + k];
      let m = max(m1, m2);
      var sum = 0.0;
      if (m > 0.0) {
        let r1 = m1 / m;
        let r2 = m2 / m;
        sum = ws[lid] * (r1 * r1) + ws[lid + k] * (r2 * r2);
      }
      wf[lid] = m;
      ws[lid] = sum;
      wu[lid] = max(wu[lid], wu[lid + k]);
    }
    workgroupBarrier();
  }
  let groupsUsed = (vectors + ${WORKGROUP_SIZE * NORM_VECTORS_PER_INVOCATION - 1}u) / ${
    WORKGROUP_SIZE * NORM_VECTORS_PER_INVOCATION
  }u;
  if (lid == 0u && w < groupsUsed) {
    partials[chunk.partial_base + w] = Partial(wf[0], ws[0], wu[0], atomicLoad(&wnan));
  }
}
`,
};

const TOTAL_BINDINGS: readonly Binding[] = [
  { name: "all_partials", type: "array<Partial>", kind: "read-only-storage" },
  { name: "control", type: "Control", kind: "storage" },
  { name: "ring", type: "array<u32>", kind: "read-only-storage" },
  { name: "s", type: "Consts", kind: "uniform" },
];

/**
 * The second pass of the gradient norm (entry point `total`, one workgroup), which then decides
 * the step (`decide`, control.ts).
 */
export const GRAD_NORM_TOTAL: Kernel = {
  entryPoint: "total",
  bindings: TOTAL_BINDINGS,
  code: /* wgsl */ `
${STEP_CONSTS_WGSL}
${PARTIAL_WGSL}
${declareBindings(TOTAL_BINDINGS)}
${RING_WGSL}
${DECIDE_WGSL}
${NORM_WORKGROUP_WGSL}
${SET_NORM_WGSL}

@compute @workgroup_size(${WORKGROUP_SIZE})
fn total(@builtin(local_invocation_index) lid: u32) {
  let n = arrayLength(&all_partials);
  var largest = 0.0;
  var key = 0u;
  for (var k = lid; k < n; k += ${WORKGROUP_SIZE}u) {
    largest = max(largest, all_partials[k].largest);
    key = max(key, all_partials[k].key);
    if (all_partials[k].nan != 0u) { atomicStore(&wnan, 1u); }
  }
  wf[lid] = largest;
  wu[lid] = key;
  reduce_max(lid);
  let m = wf[0];
  workgroupBarrier();
  var sum = 0.0;
  if (m > 0.0) {
    for (var k = lid; k < n; k += ${WORKGROUP_SIZE}u) {
      let r = all_partials[k].largest / m;
      sum = sum + all_partials[k].sum * (r * r);
    }
  }
  wf[lid] = sum;
  reduce_sum(lid);
  if (lid == 0u) {
    set_norm(m, wf[0], wu[0], atomicLoad(&wnan) != 0u);
    decide();
  }
}
`,
};
