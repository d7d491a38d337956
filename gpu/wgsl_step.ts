/**
 * The WGSL step kernels of a rule: one fused update over a chunk of the arena sections, the
 * rule's element operations (`rule_values`, from its module in rules/: the per-element operations of
 * its AssemblyScript loop, in the same order) with LookAhead's fused sync (rules/lookahead.ts),
 * each element with the scalar block of its parameter group (read from the ring, scalar_ring.ts,
 * at the t `decide` chose; the gradient scale clipped by the global norm); and the decision
 * alone where no norm is computed.
 *
 * Each invocation of `step` updates one `vec4<f32>`; the last vec4 of a chunk is masked, so
 * elements past the chunk's count are left as they were. The invocation index is 2-D
 * (`workgroup_id.y · num_workgroups.x + workgroup_id.x`), so chunks of more than 65535
 * workgroups run in one dispatch. `step_small` takes a whole step of a small arena (norm,
 * check, decision and update) in one workgroup.
 *
 * @module
 */
import { SEGMENT_WGSL } from "../base/arena.ts";
import { type Rule, RULE_VALUES_WGSL } from "../base/rule.ts";
import { FINISH_WGSL } from "../rules/lookahead.ts";
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
import {
  BAD_KEY_WGSL,
  NORM_ELEMENTS_PER_WORKGROUP,
  NORM_WORKGROUP_WGSL,
  SET_NORM_WGSL,
} from "./wgsl_norm.ts";

/**
 * Largest arena (elements) stepped by `step_small`, the whole step in one dispatch of one
 * workgroup (with no centralization that step): as many as one workgroup of the norm covers.
 */
export const SMALL_STEP_ELEMENTS = NORM_ELEMENTS_PER_WORKGROUP;

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

/**
 * WGSL of every rule's step around its `rule_update`: the clipping factor, and the update of
 * one vec4 with the scalar block of its parameter group.
 */
const UPDATE_WGSL = /* wgsl */ `
// The rule's operations on vec4 i of the bound sections (f32 moments: those the state keeps),
// with the block at base; the lanes in keep keep their values.
fn rule_update(i: u32, base: u32, grad_scale: f32, pre: f32, keep: vec4<bool>) {
  let p0 = p[i];
  var m0 = vec4<f32>(0.0);
  var v0 = vec4<f32>(0.0);
  if (s.moments > 0u) { m0 = m[i]; }
  if (s.moments > 1u) { v0 = v[i]; }
  let r = rule_values(base, grad_scale, pre, p0, g[i], m0, v0);
  if (s.moments > 0u) { m[i] = select(with_special(r.m, r.ms), m0, keep); }
  if (s.moments > 1u) { v[i] = select(with_special(r.v, r.vs), v0, keep); }
  finish_update(i, p0, r.p, r.ps, block_sync(base), block_alpha(base), keep);
}

// The factors of the global-norm clipping of this step, max / norm: the power of two the
// gradients are first multiplied by (1, or 2⁻¹²⁶ where max / norm is below 2⁻¹²⁶), and the rest
// (written by set_norm: (1, 1) where the step does not clip).
fn clip_factors() -> vec2<f32> {
  if (s.clip != 0u) {
    return vec2<f32>(control.clip_pow2, control.clip_scale);
  }
  return vec2<f32>(1.0);
}

// The update of vec4 i (below ceil(count / 4)) of the chunk, at ring entry e0, clipped by the
// factors clip (clip_factors).
fn update(i: u32, count: u32, e0: u32, clip: vec2<f32>) {
  var group = 0u;
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
    group = segments[lo].group;
  }
  let base = block_at(e0, group);
  rule_update(i, base, block_grad_scale(base) * clip.y, clip.x, past_count(count, i));
}

`;

/** WGSL of `step`: the update over one chunk, one vec4 an invocation, after the decision. */
const STEP_WGSL = /* wgsl */ `@compute @workgroup_size(${WORKGROUP_SIZE})
fn step(
  ${GRID_ARGS}
) {
  let i = vector_index(wid, groups, lid);
  let count = chunk.count;
  if (i >= (count + 3u) / 4u) { return; }
  // A skipped step (non-finite gradient), a halted state, or no scalars for this t: no change.
  let t = control.step_t;
  if (t == 0u) { return; }
  update(i, count, ring_entry(t), clip_factors());
}
`;

/** WGSL of `step_small`: the whole step of a small arena in one workgroup. */
const STEP_SMALL_WGSL = /* wgsl */ `var<workgroup> norm_max: f32;
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
    var nan = false;
    for (var i = lid; i < vectors; i += ${WORKGROUP_SIZE}u) {
      let x = select(g[i], vec4<f32>(0.0), past_count(count, i));
      key = max(key, bad_key(x, chunk.start + i * 4u));
      nan = nan || has_nan(x);
      let a = abs(x);
      largest = max(largest, max(max(a.x, a.y), max(a.z, a.w)));
    }
    // Few barriers (each is costly on software adapters): invocation 0 combines the 64 values.
    wf[lid] = largest;
    wu[lid] = key;
    if (nan) { atomicStore(&wnan, 1u); }
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
      set_norm(m, sum, norm_key, atomicLoad(&wnan) != 0u);
    }
  }
  if (lid == 0u) {
    decide();
    decided_t = control.step_t;
  }
  let t = workgroupUniformLoad(&decided_t);
  if (t == 0u) { return; }
  let e0 = ring_entry(t);
  let clip = clip_factors();
  for (var i = lid; i < vectors; i += ${WORKGROUP_SIZE}u) { update(i, count, e0, clip); }
}
`;

/** The WGSL of `rule`'s step kernels. */
const stepWgsl = (rule: Rule) => /* wgsl */ `
${STEP_CONSTS_WGSL}
${CHUNK_WGSL}
${SEGMENT_WGSL}
${declareBindings(STEP_BINDINGS)}
${RING_WGSL}
${DECIDE_WGSL}
${NORM_WORKGROUP_WGSL}
${BAD_KEY_WGSL}
${SET_NORM_WGSL}
${RULE_VALUES_WGSL}
${FINISH_WGSL}
${rule.wgsl}
${UPDATE_WGSL}${STEP_WGSL}
${STEP_SMALL_WGSL}`;

/** The step kernels of a rule. */
export interface StepKernels {
  /** The update over one chunk, one vec4 an invocation, after the step was decided. */
  readonly step: Kernel;
  /** The whole step of a small arena in one workgroup (the same bindings). */
  readonly stepSmall: Kernel;
}

const stepKernelsCache = new Map<string, StepKernels>();

/**
 * The step kernels of `rule` (made once per element loop: rules of one family share them).
 *
 * @example
 * ```ts
 * import { stepKernels } from "./wgsl_step.ts";
 * import { LION } from "../rules/lion.ts";
 * import assert from "node:assert/strict";
 *
 * assert.match(stepKernels(LION).step.code, /fn rule_values/);
 * ```
 */
export function stepKernels(rule: Rule): StepKernels {
  let kernels = stepKernelsCache.get(rule.name);
  if (!kernels) {
    const code = stepWgsl(rule);
    kernels = {
      step: { code, entryPoint: "step", bindings: STEP_BINDINGS },
      stepSmall: { code, entryPoint: "step_small", bindings: STEP_BINDINGS },
    };
    stepKernelsCache.set(rule.name, kernels);
  }
  return kernels;
}

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
