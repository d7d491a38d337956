/**
 * The WGSL compute kernels of the WebGPU backend: one fused RAdam/Adam/AdamW step over a chunk
 * of the arena sections, with the per-element operations of assembly/index.ts (same order, same
 * modes, Nesterov's `m + gradMix · g`, LookAhead's fused sync into the slow weights, and
 * per-segment step size and decays for parameter groups; the scalars are the host's float64
 * ones rounded to f32, read from a ring indexed by the step count the device keeps), the end of a
 * step (counting it taken, skipped or halted), the global gradient norm with the non-finite
 * check, and gradient centralization (one workgroup per row).
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

/** The builtins of an entry point over a 2-D grid of workgroups (see `vector_index`). */
const GRID_ARGS = `@builtin(workgroup_id) wid: vec3<u32>,
  @builtin(num_workgroups) groups: vec3<u32>,
  @builtin(local_invocation_index) lid: u32,`;

/** WGSL of a chunk of an arena section, and the indexing every vec4 kernel shares. */
const CHUNK_WGSL = /* wgsl */ `
struct Chunk { count: u32, start: u32, partial_base: u32, pad0: u32 }

// This invocation's vec4 in a 2-D grid of workgroups.
fn vector_index(wid: vec3<u32>, groups: vec3<u32>, lid: u32) -> u32 {
  return (wid.y * groups.x + wid.x) * ${WORKGROUP_SIZE}u + lid;
}

// The lanes of vec4 i (below ceil(count / 4)) at or past the count: they keep their values.
fn past_count(count: u32, i: u32) -> vec4<bool> {
  return vec4<u32>(0u, 1u, 2u, 3u) >= vec4<u32>(min(count - i * 4u, 4u));
}
`;

/**
 * Bytes of the constants uniform (`Consts` in the WGSL): what stays the same every step.
 */
export const CONSTS_BYTES = 32;

/**
 * Steps' scalars the ring keeps before t (the device may lag the host by this many unreported
 * steps; see `halted` 2 in `Control`).
 */
export const RING_KEPT = 1024;

/** Steps' scalars the host writes at once, from t on, in one upload (see `scalarsAhead`). */
export const RING_AHEAD = 64;

/** Entries of the ring of per-step scalars (see {@linkcode ringStride}). */
export const RING_SIZE = RING_KEPT + RING_AHEAD;

/** u32 words of one ring entry before the per-group rows. */
const RING_HEAD_WORDS = 16;

/** Word of a ring entry holding the step `t` it was written for (its tag). */
export const RING_TAG_WORD = 10;

/**
 * u32 words of one ring entry for `groupCount` parameter groups (0 without groups): the 16
 * words of the step's scalars (9 f32, mode, tag, sync, alpha, gradMix, 2 pad), then per group
 * its stepSize, paramDecay, coupledDecay and a pad word.
 */
export function ringStride(groupCount: number): number {
  return RING_HEAD_WORDS + 4 * groupCount;
}

/**
 * Bytes of the control buffer (`Control` in the WGSL): the gradient norm of the step (16
 * bytes, written by the norm passes), then the device-side step counters.
 */
export const CONTROL_BYTES = 48;
/** Byte offset of the step counters in the control buffer. */
export const COUNTERS_OFFSET = 16;
/** u32 words of the step counters. */
export const COUNTER_WORDS = 8;

// Shared WGSL declarations of the step and finalize kernels.
const STEP_COMMON = /* wgsl */ `
struct Consts {
  segment_count: u32, clip: u32, clip_max: f32,
  // check: a non-finite gradient skips the step; halt_on_bad: and halts the state ("throw").
  check: u32, halt_on_bad: u32,
  ring_size: u32, stride: u32,
  // Whether the gradient-norm passes run (clip or check).
  norm_computed: u32,
}
struct Control {
  // The global gradient norm of this step, and key = 0xffffffff − (first non-finite element),
  // or 0 when every gradient is finite (written by GRAD_NORM_TOTAL_WGSL).
  // step_t: the t this step runs at when it is taken, 0 when it is not (written by \`decide\`).
  norm: f32, key: u32, step_t: u32, pad1: u32,
  // Step counts kept on the device: a skipped step must not advance t, and only the GPU knows.
  submitted: u32, taken: u32, skipped: u32,
  // 0: running; 1: halted by a non-finite gradient ("throw"); 2: halted, no scalars for t.
  halted: u32, first_bad: u32, norm_bits: u32, halted_at: u32, pad2: u32,
}
`;

/**
 * WGSL of the decision of a step, made before its update by one invocation (after the norm, if
 * any): counts the submission, then halts the state, skips the step or takes it, on the device,
 * and records the gradient norm; \`control.step_t\` is then the t the update runs at, or 0 when
 * it does not run. The host reads these counters back asynchronously. Needs \`control\`,
 * \`ring\` and \`s\` bound.
 */
const DECIDE_FN_WGSL = /* wgsl */ `
fn decide() {
  control.submitted = control.submitted + 1u;
  control.step_t = 0u;
  if (control.halted != 0u) { return; }
  // NaN (0x7fc00000) when no norm was computed.
  control.norm_bits = select(0x7fc00000u, bitcast<u32>(control.norm), s.norm_computed != 0u);
  if (s.check != 0u && control.key != 0u) {
    if (s.halt_on_bad != 0u) {
      control.halted = 1u;
      control.first_bad = 0xffffffffu - control.key;
      control.halted_at = control.submitted;
    } else {
      control.skipped = control.skipped + 1u;
    }
    return;
  }
  let t = control.taken + 1u;
  if (ring[(t % s.ring_size) * s.stride + ${RING_TAG_WORD}u] != t) {
    control.halted = 2u;
    control.halted_at = control.submitted;
    return;
  }
  control.taken = t;
  control.step_t = t;
}
`;

/**
 * WGSL of the workgroup reductions of the norm kernels (over the workgroup arrays \`wf\`, \`wu\`),
 * the non-finite key, and the decided t of a one-workgroup step.
 */
const NORM_WORKGROUP_WGSL = /* wgsl */ `
var<workgroup> wf: array<f32, ${WORKGROUP_SIZE}>;
var<workgroup> wu: array<u32, ${WORKGROUP_SIZE}>;
var<workgroup> step_t: u32;

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

// The key of the first NaN or ±Infinity among the four elements from element e, or 0.
fn bad_key(x: vec4<f32>, e: u32) -> u32 {
  let bad = (bitcast<vec4<u32>>(x) & vec4<u32>(0x7f800000u)) == vec4<u32>(0x7f800000u);
  if (bad.x) { return 0xffffffffu - e; }
  if (bad.y) { return 0xffffffffu - (e + 1u); }
  if (bad.z) { return 0xffffffffu - (e + 2u); }
  if (bad.w) { return 0xffffffffu - (e + 3u); }
  return 0u;
}`;

/**
 * WGSL source of the step kernel: entry point `step` (one vec4 an invocation, after `decide`)
 * and `step_small` (a whole step, decision included, in one workgroup).
 */
export const STEP_KERNEL_WGSL = /* wgsl */ `
${STEP_COMMON}
${CHUNK_WGSL}
// A parameter-group run of the arena: elements [start, end) use the group's scalars.
struct Segment { start: u32, end: u32, group: u32, pad0: u32, pad1: u32, pad2: u32, pad3: u32, pad4: u32 }

@group(0) @binding(0) var<storage, read_write> p: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read> g: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read_write> m: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read_write> v: array<vec4<f32>>;
@group(0) @binding(4) var<uniform> s: Consts;
@group(0) @binding(5) var<uniform> chunk: Chunk;
@group(0) @binding(6) var<storage, read_write> slow: array<vec4<f32>>;
@group(0) @binding(7) var<storage, read> segments: array<Segment>;
@group(0) @binding(8) var<storage, read_write> control: Control;
@group(0) @binding(9) var<storage, read> ring: array<u32>;

fn ring_f32(k: u32) -> f32 { return bitcast<f32>(ring[k]); }

// The scalars of step t's ring entry (the group rows are read by \`update\`).
struct Scalars {
  e0: u32, grad_scale: f32, coupled_decay: f32, beta1: f32, one_minus_beta1: f32, beta2: f32,
  one_minus_beta2: f32, param_decay: f32, step_size: f32, eps: f32, mode: u32, sync: u32,
  alpha: f32, grad_mix: f32,
}

fn scalars_of(t: u32) -> Scalars {
  let e0 = (t % s.ring_size) * s.stride;
  var grad_scale = ring_f32(e0);
  if (s.clip != 0u && control.key == 0u && control.norm > s.clip_max) {
    // Global-norm clipping: the gradient times max / norm.
    grad_scale = grad_scale * (s.clip_max / control.norm);
  }
  return Scalars(
    e0, grad_scale, ring_f32(e0 + 1u), ring_f32(e0 + 2u), ring_f32(e0 + 3u), ring_f32(e0 + 4u),
    ring_f32(e0 + 5u), ring_f32(e0 + 6u), ring_f32(e0 + 7u), ring_f32(e0 + 8u), ring[e0 + 9u],
    ring[e0 + 11u], ring_f32(e0 + 12u), ring_f32(e0 + 13u),
  );
}

// The update of vec4 i (below ceil(count / 4)) of the chunk with step scalars sc.
fn update(i: u32, count: u32, sc: Scalars) {
  let e0 = sc.e0;
  let beta1 = sc.beta1;
  let one_minus_beta1 = sc.one_minus_beta1;
  let beta2 = sc.beta2;
  let one_minus_beta2 = sc.one_minus_beta2;
  let eps = sc.eps;
  let mode = sc.mode;
  let sync = sc.sync;
  let alpha = sc.alpha;
  let grad_mix = sc.grad_mix;
  var coupled_decay = sc.coupled_decay;
  var param_decay = sc.param_decay;
  var step_size = sc.step_size;
  let p0 = p[i];
  let m0 = m[i];
  let v0 = v[i];
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
    let row = e0 + ${RING_HEAD_WORDS}u + 4u * segments[lo].group;
    step_size = ring_f32(row);
    param_decay = ring_f32(row + 1u);
    coupled_decay = ring_f32(row + 2u);
  }
  var gi = sc.grad_scale * g[i];
  if (coupled_decay != 0.0) { gi = gi + coupled_decay * p0; }
  let mi = beta1 * m0 + one_minus_beta1 * gi;
  let vi = beta2 * v0 + one_minus_beta2 * (gi * gi);
  // Nesterov (optax): the update uses m + gradMix · g in place of m.
  var num = mi;
  if (grad_mix != 0.0) { num = mi + grad_mix * gi; }
  var pi = p0;
  if (mode == 0u) {
    pi = p0 * param_decay - step_size * (num / (sqrt(vi) + eps));
  } else if (mode == 1u) {
    pi = p0 * param_decay - step_size * num;
  }
  let keep = past_count(count, i);
  if (sync != 0u) {
    // LookAhead sync: slow += alpha · (p − slow); p = slow.
    let s0 = slow[i];
    pi = select(s0 + alpha * (pi - s0), p0, keep);
    slow[i] = select(pi, s0, keep);
  }
  m[i] = select(mi, m0, keep);
  v[i] = select(vi, v0, keep);
  p[i] = select(pi, p0, keep);
}

@compute @workgroup_size(${WORKGROUP_SIZE})
fn step(
  ${GRID_ARGS}
) {
  let i = vector_index(wid, groups, lid);
  let count = chunk.count;
  if (i >= (count + 3u) / 4u) { return; }
  // A skipped step (non-finite gradient), a halted state, or no scalars for this t: no change.
  let t = control.step_t;
  if (t == 0u) { return; }
  update(i, count, scalars_of(t));
}

${NORM_WORKGROUP_WGSL}
${DECIDE_FN_WGSL}
var<workgroup> norm_max: f32;
var<workgroup> norm_key: u32;

// The whole step of a chunk of at most SMALL_STEP_ELEMENTS elements in one workgroup (a model
// that small is bound by the host, so one dispatch a step): the gradient norm and check as
// GRAD_NORM_PARTIAL_WGSL and GRAD_NORM_TOTAL_WGSL compute them, \`decide\`, then the update.
@compute @workgroup_size(${WORKGROUP_SIZE})
fn step_small(@builtin(local_invocation_index) lid: u32) {
  let count = chunk.count;
  let vectors = (count + 3u) / 4u;
  if (s.norm_computed != 0u) {
    var largest = 0.0;
    var key = 0u;
    for (var i = lid; i < vectors; i += ${WORKGROUP_SIZE}u) {
      let x = select(g[i], vec4<f32>(0.0), past_count(count, i));
      key = max(key, bad_key(x, chunk.start + i * 4u));
      let a = abs(x);
      largest = max(largest, max(max(a.x, a.y), max(a.z, a.w)));
    }
    // Few barriers (each is costly on software adapters): invocation 0 combines the 64 values.
    wf[lid] = largest;
    wu[lid] = key;
    workgroupBarrier();
    if (lid == 0u) {
      var m = 0.0;
      var k = 0u;
      for (var j = 0u; j < ${WORKGROUP_SIZE}u; j++) {
        m = max(m, wf[j]);
        k = max(k, wu[j]);
      }
      norm_max = m;
      norm_key = k;
    }
    let m = workgroupUniformLoad(&norm_max);
    var acc = vec4<f32>(0.0);
    if (m > 0.0) {
      for (var i = lid; i < vectors; i += ${WORKGROUP_SIZE}u) {
        let y = select(g[i], vec4<f32>(0.0), past_count(count, i)) / m;
        acc = acc + y * y;
      }
    }
    wf[lid] = (acc.x + acc.y) + (acc.z + acc.w);
    workgroupBarrier();
    if (lid == 0u) {
      var sum = 0.0;
      for (var j = 0u; j < ${WORKGROUP_SIZE}u; j++) { sum = sum + wf[j]; }
      control.norm = m * sqrt(sum);
      control.key = norm_key;
    }
  }
  if (lid == 0u) {
    decide();
    step_t = control.step_t;
  }
  let t = workgroupUniformLoad(&step_t);
  if (t == 0u) { return; }
  let sc = scalars_of(t);
  for (var i = lid; i < vectors; i += ${WORKGROUP_SIZE}u) { update(i, count, sc); }
}
`;

/**
 * WGSL of a step's decision alone (entry point \`decide\`, one invocation, before the update
 * dispatches), where no gradient norm is computed (\`nonFinite: "propagate"\`, no clipping).
 */
export const DECIDE_KERNEL_WGSL = /* wgsl */ `
${STEP_COMMON}
@group(0) @binding(0) var<storage, read_write> control: Control;
@group(0) @binding(1) var<storage, read> ring: array<u32>;
@group(0) @binding(2) var<uniform> s: Consts;
${DECIDE_FN_WGSL}
@compute @workgroup_size(1)
fn decide_step() { decide(); }
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
  ${GRID_ARGS}
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

/** vec4s of the gradients each invocation of the first norm pass reads (64 elements). */
export const NORM_VECTORS_PER_INVOCATION = 16;

/** Gradients one workgroup of the first norm pass covers. */
export const NORM_ELEMENTS_PER_WORKGROUP = 4 * WORKGROUP_SIZE * NORM_VECTORS_PER_INVOCATION;

/**
 * Largest arena (elements) stepped by `step_small`, the whole step in one dispatch of one
 * workgroup (with no centralization that step): the norm pass of one workgroup covers as many.
 */
export const SMALL_STEP_ELEMENTS = NORM_ELEMENTS_PER_WORKGROUP;

/**
 * WGSL of the global gradient norm, overflow-safe in f32, in two passes. `partial` (one
 * workgroup a {@linkcode NORM_ELEMENTS_PER_WORKGROUP} gradients of a chunk of the grads section):
 * each invocation reads its 16 vec4s (coalesced: vec4 `k · 64 + lid` of the workgroup's block)
 * once into registers, takes their largest |g| and the sum of (g / largest)², and a key locating
 * its first NaN or ±Infinity (tested on the bits: a compiler may assume finite floats):
 * 0xffffffff − the element's index in the grads section, or 0 when all are finite, so that the
 * largest key is the first such element. One tree reduction combines the (largest, sum, key)
 * triples: largest M = max(m1, m2), sum = s1 · (m1 / M)² + s2 · (m2 / M)². `total` (one
 * workgroup) combines the workgroups' triples the same way: norm = M · sqrt(sum).
 */
export const GRAD_NORM_PARTIAL_WGSL = /* wgsl */ `
${CHUNK_WGSL}
struct Partial { largest: f32, sum: f32, key: u32, pad0: u32 }

@group(0) @binding(0) var<storage, read> g: array<vec4<f32>>;
@group(0) @binding(1) var<uniform> chunk: Chunk;
@group(0) @binding(2) var<storage, read_write> partials: array<Partial>;

${NORM_WORKGROUP_WGSL}
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
  for (var k = 0u; k < ${NORM_VECTORS_PER_INVOCATION}u; k++) {
    let i = first + k * ${WORKGROUP_SIZE}u;
    var x = vec4<f32>(0.0);
    if (i < vectors) {
      x = select(g[i], vec4<f32>(0.0), past_count(count, i));
      key = max(key, bad_key(x, chunk.start + i * 4u));
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
    partials[chunk.partial_base + w] = Partial(wf[0], ws[0], wu[0], 0u);
  }
}
`;

/**
 * WGSL of the second pass of the gradient norm (entry point `total`, one workgroup), which then
 * decides the step (see `DECIDE_KERNEL_WGSL`).
 */
export const GRAD_NORM_TOTAL_WGSL = /* wgsl */ `
${STEP_COMMON}
struct Partial { largest: f32, sum: f32, key: u32, pad0: u32 }
${NORM_WORKGROUP_WGSL}

@group(0) @binding(0) var<storage, read> all_partials: array<Partial>;
@group(0) @binding(1) var<storage, read_write> control: Control;
@group(0) @binding(2) var<storage, read> ring: array<u32>;
@group(0) @binding(3) var<uniform> s: Consts;
${DECIDE_FN_WGSL}

@compute @workgroup_size(${WORKGROUP_SIZE})
fn total(@builtin(local_invocation_index) lid: u32) {
  let n = arrayLength(&all_partials);
  var largest = 0.0;
  var key = 0u;
  for (var k = lid; k < n; k += ${WORKGROUP_SIZE}u) {
    largest = max(largest, all_partials[k].largest);
    key = max(key, all_partials[k].key);
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
    control.norm = m * sqrt(wf[0]);
    control.key = wu[0];
    decide();
  }
}
`;

/** WGSL of a plain copy kernel over vec4s (the bandwidth limit the benchmark compares with). */
export const COPY_KERNEL_WGSL = /* wgsl */ `
${CHUNK_WGSL}
@group(0) @binding(0) var<storage, read> src: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read_write> dst: array<vec4<f32>>;

@compute @workgroup_size(${WORKGROUP_SIZE})
fn copy(
  ${GRID_ARGS}
) {
  let i = vector_index(wid, groups, lid);
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
${CHUNK_WGSL}

@group(0) @binding(0) var<storage, read> src: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read_write> dst: array<vec4<f32>>;
@group(0) @binding(2) var<uniform> chunk: Chunk;

@compute @workgroup_size(${WORKGROUP_SIZE})
fn copy_tensor(
  ${GRID_ARGS}
) {
  let i = vector_index(wid, groups, lid);
  let count = chunk.count;
  if (i >= (count + 3u) / 4u) { return; }
  dst[i] = select(src[i], dst[i], past_count(count, i));
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
