/**
 * The WGSL step kernels: one fused RAdam/Adam/AdamW update over a chunk of the arena sections,
 * with the per-element operations of assembly/index.ts (same order, same modes, Nesterov's
 * `m + gradMix · g`, LookAhead's fused sync into the slow weights, and per-segment step size and
 * decays for parameter groups; the scalars are the host's float64 ones rounded to f32, read from
 * the ring, scalar_ring.ts, at the t `decide` chose), and the decision alone where no norm is
 * computed.
 *
 * Each invocation of `step` updates one `vec4<f32>`; the last vec4 of a chunk is masked, so
 * elements past the chunk's count are left as they were. The invocation index is 2-D
 * (`workgroup_id.y · num_workgroups.x + workgroup_id.x`), so chunks of more than 65535
 * workgroups run in one dispatch. `step_small` takes a whole step of a small arena (norm,
 * check, decision and update) in one workgroup.
 *
 * @module
 */
import { SEGMENT_ROW_BYTES } from "../core/arena.ts";
import {
  type Binding,
  CHUNK_WGSL,
  declareBindings,
  GRID_ARGS,
  type Kernel,
  wgslStruct,
  wordsOf,
  WORKGROUP_SIZE,
} from "./_wgsl.ts";
import { DECIDE_WGSL } from "./device_counter.ts";
import { RING_WGSL } from "./scalar_ring.ts";
import { STEP_CONSTS_WGSL } from "./step_consts.ts";
import { NORM_ELEMENTS_PER_WORKGROUP, NORM_WORKGROUP_WGSL } from "./wgsl_norm.ts";

/**
 * Largest arena (elements) stepped by `step_small`, the whole step in one dispatch of one
 * workgroup (with no centralization that step): as many as one workgroup of the norm covers.
 */
export const SMALL_STEP_ELEMENTS = NORM_ELEMENTS_PER_WORKGROUP;

/** A row of the segment table (parameter-group runs): elements [start, end) use `group`. */
export const SEGMENT_ROW = {
  start: "u32",
  end: "u32",
  group: "u32",
  pad0: "u32",
  pad1: "u32",
  pad2: "u32",
  pad3: "u32",
  pad4: "u32",
} as const;

/** The word of each field of a segment row. */
export const SEGMENT_WORD = wordsOf(SEGMENT_ROW);

if (4 * Object.keys(SEGMENT_ROW).length !== SEGMENT_ROW_BYTES) {
  throw new Error("SEGMENT_ROW does not match SEGMENT_ROW_BYTES (core/arena.ts)");
}

/** The bindings of `step` and `step_small`. */
const STEP_BINDINGS: readonly Binding[] = [
  { name: "p", type: "array<vec4<f32>>", kind: "storage" },
  { name: "g", type: "array<vec4<f32>>", kind: "read-only-storage" },
  { name: "m", type: "array<vec4<f32>>", kind: "storage" },
  { name: "v", type: "array<vec4<f32>>", kind: "storage" },
  { name: "s", type: "Consts", kind: "uniform" },
  { name: "chunk", type: "Chunk", kind: "uniform" },
  { name: "slow", type: "array<vec4<f32>>", kind: "storage" },
  { name: "segments", type: "array<Segment>", kind: "read-only-storage" },
  { name: "control", type: "Control", kind: "storage" },
  { name: "ring", type: "array<u32>", kind: "read-only-storage" },
];

const STEP_WGSL = /* wgsl */ `
${STEP_CONSTS_WGSL}
${CHUNK_WGSL}
${wgslStruct("Segment", SEGMENT_ROW)}
${declareBindings(STEP_BINDINGS)}
${RING_WGSL}
${DECIDE_WGSL}
${NORM_WORKGROUP_WGSL}

// The scalars of the step at ring entry e0, the gradient scale clipped by the global norm.
fn step_scalars(e0: u32) -> Scalars {
  var sc = scalars_at(e0);
  if (s.clip != 0u && control.key == 0u && control.norm > s.clip_max) {
    // Global-norm clipping: the gradient times max / norm.
    sc.gradScale = sc.gradScale * (s.clip_max / control.norm);
  }
  return sc;
}

// The update of vec4 i (below ceil(count / 4)) of the chunk, with the scalars sc of entry e0.
fn update(i: u32, count: u32, e0: u32, sc: Scalars) {
  var coupled_decay = sc.coupledDecay;
  var param_decay = sc.paramDecay;
  var step_size = sc.stepSize;
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
    let row = group_scalars_at(e0, segments[lo].group);
    step_size = row.stepSize;
    param_decay = row.paramDecay;
    coupled_decay = row.coupledDecay;
  }
  var gi = sc.gradScale * g[i];
  if (coupled_decay != 0.0) { gi = gi + coupled_decay * p0; }
  let mi = sc.beta1 * m0 + sc.oneMinusBeta1 * gi;
  let vi = sc.beta2 * v0 + sc.oneMinusBeta2 * (gi * gi);
  // Nesterov (optax): the update uses m + gradMix · g in place of m.
  var num = mi;
  if (sc.gradMix != 0.0) { num = mi + sc.gradMix * gi; }
  var pi = p0;
  if (sc.mode == 0u) {
    pi = p0 * param_decay - step_size * (num / (sqrt(vi) + sc.eps));
  } else if (sc.mode == 1u) {
    pi = p0 * param_decay - step_size * num;
  }
  let keep = past_count(count, i);
  if (sc.sync != 0u) {
    // LookAhead sync: slow += alpha · (p − slow); p = slow.
    let s0 = slow[i];
    pi = select(s0 + sc.alpha * (pi - s0), p0, keep);
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
  let e0 = ring_entry(t);
  update(i, count, e0, step_scalars(e0));
}

var<workgroup> norm_max: f32;
var<workgroup> norm_key: u32;
var<workgroup> decided_t: u32;

// The whole step of a chunk of at most SMALL_STEP_ELEMENTS elements in one workgroup (a model
// that small is bound by the host, so one dispatch a step): the gradient norm and check as the
// norm kernels compute them, \`decide\`, then the update.
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
    decided_t = control.step_t;
  }
  let t = workgroupUniformLoad(&decided_t);
  if (t == 0u) { return; }
  let e0 = ring_entry(t);
  let sc = step_scalars(e0);
  for (var i = lid; i < vectors; i += ${WORKGROUP_SIZE}u) { update(i, count, e0, sc); }
}
`;

/** The step kernel over one chunk, one vec4 an invocation, after the step was decided. */
export const STEP: Kernel = { code: STEP_WGSL, entryPoint: "step", bindings: STEP_BINDINGS };

/** The whole step of a small arena in one workgroup (same bindings as {@linkcode STEP}). */
export const STEP_SMALL: Kernel = {
  code: STEP_WGSL,
  entryPoint: "step_small",
  bindings: STEP_BINDINGS,
};

const DECIDE_BINDINGS: readonly Binding[] = [
  { name: "control", type: "Control", kind: "storage" },
  { name: "ring", type: "array<u32>", kind: "read-only-storage" },
  { name: "s", type: "Consts", kind: "uniform" },
];

/**
 * A step's decision alone (entry point `decide_step`, one invocation, before the update
 * dispatches), where no gradient norm is computed (`nonFinite: "propagate"`, no clipping).
 */
export const DECIDE: Kernel = {
  entryPoint: "decide_step",
  bindings: DECIDE_BINDINGS,
  code: /* wgsl */ `
${STEP_CONSTS_WGSL}
${declareBindings(DECIDE_BINDINGS)}
${RING_WGSL}
${DECIDE_WGSL}

@compute @workgroup_size(1)
fn decide_step() { decide(); }
`,
};
