/**
 * The WGSL compute kernels of the WebGPU backend: one fused RAdam/Adam/AdamW step over a chunk
 * of the arena sections, with the per-element operations of assembly/index.ts (same order, same
 * modes, Nesterov's `m + gradMix · g`, LookAhead's fused sync into the slow weights, and
 * per-segment step size and decays for parameter groups; the scalars are the host's float64
 * ones rounded to f32), and gradient centralization (one workgroup per row).
 *
 * Each invocation updates one `vec4<f32>`; the last vec4 of a chunk is masked, so elements past
 * the chunk's count are left as they were. The invocation index is 2-D
 * (`workgroup_id.y · num_workgroups.x + workgroup_id.x`), so chunks of more than
 * 65535 workgroups run in one dispatch.
 *
 * @module
 */

/** Invocations per workgroup. */
export const WORKGROUP_SIZE = 64;

/**
 * Bytes of the scalars uniform: 9 f32 scalars, the mode, the segment count, the sync flag,
 * LookAhead's alpha, Nesterov's gradMix, the clipping flag and clipGradNorm.
 */
export const SCALARS_BYTES = 64;

/** WGSL source of the step kernel (entry point `step`). */
export const STEP_KERNEL_WGSL = /* wgsl */ `
struct Scalars {
  grad_scale: f32, coupled_decay: f32,
  beta1: f32, one_minus_beta1: f32,
  beta2: f32, one_minus_beta2: f32,
  param_decay: f32, step_size: f32, eps: f32,
  mode: u32, segment_count: u32, sync: u32,
  alpha: f32, grad_mix: f32, clip: u32, clip_max: f32,
}
struct Chunk { count: u32, start: u32, partial_base: u32, pad0: u32 }
// The global gradient norm of this step (see GRAD_NORM_PARTIAL_WGSL).
struct Norm { norm: f32, bad: u32, pad0: u32, pad1: u32 }
// A parameter-group run of the arena (the rows of core/arena.ts's segment table).
struct Segment {
  start: u32, end: u32, step_size: f32, param_decay: f32, coupled_decay: f32,
  pad0: u32, pad1: u32, pad2: u32,
}

@group(0) @binding(0) var<storage, read_write> p: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read> g: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read_write> m: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read_write> v: array<vec4<f32>>;
@group(0) @binding(4) var<uniform> s: Scalars;
@group(0) @binding(5) var<uniform> chunk: Chunk;
@group(0) @binding(6) var<storage, read_write> slow: array<vec4<f32>>;
@group(0) @binding(7) var<storage, read> segments: array<Segment>;
@group(0) @binding(8) var<storage, read> grad_norm: Norm;

@compute @workgroup_size(${WORKGROUP_SIZE})
fn step(
  @builtin(workgroup_id) wid: vec3<u32>,
  @builtin(num_workgroups) groups: vec3<u32>,
  @builtin(local_invocation_index) lid: u32,
) {
  let i = (wid.y * groups.x + wid.x) * ${WORKGROUP_SIZE}u + lid;
  let count = chunk.count;
  if (i >= (count + 3u) / 4u) { return; }
  let p0 = p[i];
  let m0 = m[i];
  let v0 = v[i];
  var step_size = s.step_size;
  var param_decay = s.param_decay;
  var coupled_decay = s.coupled_decay;
  if (s.segment_count > 0u) {
    // Parameter groups: the last segment starting at or before this element (tensors, hence
    // segments, start at 64-element offsets, so a vec4 never straddles two).
    let e = chunk.start + i * 4u;
    var lo = 0u;
    var hi = s.segment_count - 1u;
    while (lo < hi) {
      let mid = (lo + hi + 1u) / 2u;
      if (segments[mid].start <= e) { lo = mid; } else { hi = mid - 1u; }
    }
    step_size = segments[lo].step_size;
    param_decay = segments[lo].param_decay;
    coupled_decay = segments[lo].coupled_decay;
  }
  var grad_scale = s.grad_scale;
  if (s.clip != 0u && grad_norm.bad == 0u && grad_norm.norm > s.clip_max) {
    // Global-norm clipping: the gradient times max / norm.
    grad_scale = grad_scale * (s.clip_max / grad_norm.norm);
  }
  var gi = grad_scale * g[i];
  if (coupled_decay != 0.0) { gi = gi + coupled_decay * p0; }
  let mi = s.beta1 * m0 + s.one_minus_beta1 * gi;
  let vi = s.beta2 * v0 + s.one_minus_beta2 * (gi * gi);
  // Nesterov (optax): the update uses m + gradMix · g in place of m.
  var num = mi;
  if (s.grad_mix != 0.0) { num = mi + s.grad_mix * gi; }
  var pi = p0;
  if (s.mode == 0u) {
    pi = p0 * param_decay - step_size * (num / (sqrt(vi) + s.eps));
  } else if (s.mode == 1u) {
    pi = p0 * param_decay - step_size * num;
  }
  let rest = count - i * 4u;
  // The tail: lanes at or past the count keep their old values.
  let keep = vec4<u32>(0u, 1u, 2u, 3u) >= vec4<u32>(min(rest, 4u));
  if (s.sync != 0u) {
    // LookAhead sync: slow += alpha · (p − slow); p = slow.
    let s0 = slow[i];
    pi = select(s0 + s.alpha * (pi - s0), p0, keep);
    slow[i] = select(pi, s0, keep);
  }
  m[i] = select(mi, m0, keep);
  v[i] = select(vi, v0, keep);
  p[i] = select(pi, p0, keep);
}
`;

/** Bytes of the uniform of the centralization kernel: rows, cols, two pad words. */
export const CENTRALIZE_UNIFORM_BYTES = 16;

/**
 * WGSL of gradient centralization (entry point `centralize`): workgroup `r` subtracts from row
 * `r` of a `rows × cols` tensor its f32 mean. Each of the 64 invocations sums a strided part of
 * the row, then a tree reduction in workgroup memory gives the row sum (any summation tree of
 * `cols` terms stays within the `(cols − 1)` roundings the reference allows).
 */
export const CENTRALIZE_KERNEL_WGSL = /* wgsl */ `
struct Shape { rows: u32, cols: u32, pad0: u32, pad1: u32 }

@group(0) @binding(0) var<storage, read_write> x: array<f32>;
@group(0) @binding(1) var<uniform> shape: Shape;

var<workgroup> partial: array<f32, ${WORKGROUP_SIZE}>;

@compute @workgroup_size(${WORKGROUP_SIZE})
fn centralize(
  @builtin(workgroup_id) wid: vec3<u32>,
  @builtin(num_workgroups) groups: vec3<u32>,
  @builtin(local_invocation_index) lid: u32,
) {
  let row = wid.y * groups.x + wid.x;
  if (row >= shape.rows) { return; }
  let cols = shape.cols;
  let base = row * cols;
  var sum = 0.0;
  for (var j = lid; j < cols; j += ${WORKGROUP_SIZE}u) { sum = sum + x[base + j]; }
  partial[lid] = sum;
  workgroupBarrier();
  for (var k = ${WORKGROUP_SIZE / 2}u; k > 0u; k = k / 2u) {
    if (lid < k) { partial[lid] = partial[lid] + partial[lid + k]; }
    workgroupBarrier();
  }
  let mean = partial[0] / f32(cols);
  for (var j = lid; j < cols; j += ${WORKGROUP_SIZE}u) { x[base + j] = x[base + j] - mean; }
}
`;

const GRAD_NORM_WORKGROUP_ARRAYS = `
var<workgroup> wf: array<f32, ${WORKGROUP_SIZE}>;
var<workgroup> wu: array<u32, ${WORKGROUP_SIZE}>;

// Tree reduction of the workgroup's (largest |g|, non-finite flag) pairs into wf[0], wu[0].
fn reduce_max(lid: u32) {
  workgroupBarrier();
  for (var k = ${WORKGROUP_SIZE / 2}u; k > 0u; k = k / 2u) {
    if (lid < k) {
      wf[lid] = max(wf[lid], wf[lid + k]);
      wu[lid] = max(wu[lid], wu[lid + k]);
    }
    workgroupBarrier();
  }
}`;

/**
 * WGSL of the global gradient norm (first pass, entry point `partial`), overflow-safe in f32, in two passes. `partial` (one
 * workgroup a 256 gradients, over a chunk of the grads section like the step kernel): the
 * workgroup's largest |g|, the sum of (g / largest)², and whether some g is NaN or ±Infinity
 * (tested on the bits: a compiler may assume finite floats). `total` (one workgroup): M = the
 * largest of all, norm = M · sqrt(Σ sum · (largest / M)²), and the non-finite flag.
 */
export const GRAD_NORM_PARTIAL_WGSL = /* wgsl */ `
struct Chunk { count: u32, start: u32, partial_base: u32, pad0: u32 }
struct Partial { largest: f32, sum: f32, bad: u32, pad0: u32 }

@group(0) @binding(0) var<storage, read> g: array<vec4<f32>>;
@group(0) @binding(1) var<uniform> chunk: Chunk;
@group(0) @binding(2) var<storage, read_write> partials: array<Partial>;

${GRAD_NORM_WORKGROUP_ARRAYS}

fn nonFinite(x: vec4<f32>) -> bool {
  let e = bitcast<vec4<u32>>(x) & vec4<u32>(0x7f800000u);
  return any(e == vec4<u32>(0x7f800000u));
}

@compute @workgroup_size(${WORKGROUP_SIZE})
fn partial(
  @builtin(workgroup_id) wid: vec3<u32>,
  @builtin(num_workgroups) groups: vec3<u32>,
  @builtin(local_invocation_index) lid: u32,
) {
  let w = wid.y * groups.x + wid.x;
  let i = w * ${WORKGROUP_SIZE}u + lid;
  let count = chunk.count;
  var x = vec4<f32>(0.0);
  if (i < (count + 3u) / 4u) {
    let rest = count - i * 4u;
    x = select(g[i], vec4<f32>(0.0), vec4<u32>(0u, 1u, 2u, 3u) >= vec4<u32>(min(rest, 4u)));
  }
  let a = abs(x);
  wf[lid] = max(max(a.x, a.y), max(a.z, a.w));
  wu[lid] = select(0u, 1u, nonFinite(x));
  reduce_max(lid);
  let largest = wf[0];
  let bad = wu[0];
  workgroupBarrier();
  var y = vec4<f32>(0.0);
  if (largest > 0.0) { y = x / largest; }
  wf[lid] = (y.x * y.x + y.y * y.y) + (y.z * y.z + y.w * y.w);
  workgroupBarrier();
  for (var k = ${WORKGROUP_SIZE / 2}u; k > 0u; k = k / 2u) {
    if (lid < k) { wf[lid] = wf[lid] + wf[lid + k]; }
    workgroupBarrier();
  }
  let groupsUsed = ((count + 3u) / 4u + ${WORKGROUP_SIZE - 1}u) / ${WORKGROUP_SIZE}u;
  if (lid == 0u && w < groupsUsed) {
    partials[chunk.partial_base + w] = Partial(largest, wf[0], bad, 0u);
  }
}
`;

/** WGSL of the second pass of the gradient norm (entry point `total`). */
export const GRAD_NORM_TOTAL_WGSL = /* wgsl */ `
struct Partial { largest: f32, sum: f32, bad: u32, pad0: u32 }
struct Norm { norm: f32, bad: u32, pad0: u32, pad1: u32 }
${GRAD_NORM_WORKGROUP_ARRAYS}

@group(0) @binding(0) var<storage, read> all_partials: array<Partial>;
@group(0) @binding(1) var<storage, read_write> result: Norm;

@compute @workgroup_size(${WORKGROUP_SIZE})
fn total(@builtin(local_invocation_index) lid: u32) {
  let n = arrayLength(&all_partials);
  var largest = 0.0;
  var bad = 0u;
  for (var k = lid; k < n; k += ${WORKGROUP_SIZE}u) {
    largest = max(largest, all_partials[k].largest);
    bad = max(bad, all_partials[k].bad);
  }
  wf[lid] = largest;
  wu[lid] = bad;
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
  workgroupBarrier();
  for (var k = ${WORKGROUP_SIZE / 2}u; k > 0u; k = k / 2u) {
    if (lid < k) { wf[lid] = wf[lid] + wf[lid + k]; }
    workgroupBarrier();
  }
  if (lid == 0u) { result = Norm(m * sqrt(wf[0]), wu[0], 0u, 0u); }
}
`;

/** WGSL of a plain copy kernel over vec4s (the bandwidth limit the benchmark compares with). */
export const COPY_KERNEL_WGSL = /* wgsl */ `
@group(0) @binding(0) var<storage, read> src: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read_write> dst: array<vec4<f32>>;

@compute @workgroup_size(${WORKGROUP_SIZE})
fn copy(
  @builtin(workgroup_id) wid: vec3<u32>,
  @builtin(num_workgroups) groups: vec3<u32>,
  @builtin(local_invocation_index) lid: u32,
) {
  let i = (wid.y * groups.x + wid.x) * ${WORKGROUP_SIZE}u + lid;
  if (i < arrayLength(&dst)) { dst[i] = src[i]; }
}
`;

/**
 * WGSL of a masked copy of one tensor's elements (entry point `copy_tensor`), one `vec4` an
 * invocation: the first `chunk.count` elements of `src` into `dst` (the uniform is a chunk entry
 * of the step kernel); lanes of the last vec4 past the count keep `dst`'s values, so the up to 3
 * floats after a tensor whose length is not a multiple of 4 are left as they were. It moves
 * parameters updated in place in a caller's buffer to and from the arena's params section
 * (readback, restore, LookAhead's start) without needing COPY_SRC or COPY_DST on that buffer.
 */
export const COPY_TENSOR_WGSL = /* wgsl */ `
struct Chunk { count: u32, start: u32, partial_base: u32, pad0: u32 }

@group(0) @binding(0) var<storage, read> src: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read_write> dst: array<vec4<f32>>;
@group(0) @binding(2) var<uniform> chunk: Chunk;

@compute @workgroup_size(${WORKGROUP_SIZE})
fn copy_tensor(
  @builtin(workgroup_id) wid: vec3<u32>,
  @builtin(num_workgroups) groups: vec3<u32>,
  @builtin(local_invocation_index) lid: u32,
) {
  let i = (wid.y * groups.x + wid.x) * ${WORKGROUP_SIZE}u + lid;
  let count = chunk.count;
  if (i >= (count + 3u) / 4u) { return; }
  let rest = count - i * 4u;
  let keep = vec4<u32>(0u, 1u, 2u, 3u) >= vec4<u32>(min(rest, 4u));
  dst[i] = select(src[i], dst[i], keep);
}
`;

/** A 2-D workgroup grid covering `groups` workgroups with at most `maxPerDimension` per side. */
export function dispatchGrid(groups: number, maxPerDimension: number): [number, number] {
  if (groups <= maxPerDimension) return [Math.max(groups, 1), 1];
  const y = Math.ceil(groups / maxPerDimension);
  if (y > maxPerDimension) {
    throw new RangeError(
      `A dispatch of ${groups} workgroups exceeds ${maxPerDimension}² workgroups`,
    );
  }
  return [Math.ceil(groups / y), y];
}
