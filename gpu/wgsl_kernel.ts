/**
 * The WGSL compute kernel of the WebGPU backend: one fused RAdam/Adam/AdamW step over a chunk
 * of the four arena sections, with the per-element operations of assembly/index.ts (same
 * order, same modes; the scalars are the host's float64 ones rounded to f32).
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

/** Bytes of the scalars uniform: 9 f32 scalars, the mode, two pad words. */
export const SCALARS_BYTES = 48;

/** WGSL source of the step kernel (entry point `step`). */
export const STEP_KERNEL_WGSL = /* wgsl */ `
struct Scalars {
  grad_scale: f32, coupled_decay: f32,
  beta1: f32, one_minus_beta1: f32,
  beta2: f32, one_minus_beta2: f32,
  param_decay: f32, step_size: f32, eps: f32,
  mode: u32, pad0: u32, pad1: u32,
}
struct Chunk { count: u32, pad0: u32, pad1: u32, pad2: u32 }

@group(0) @binding(0) var<storage, read_write> p: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read> g: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read_write> m: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read_write> v: array<vec4<f32>>;
@group(0) @binding(4) var<uniform> s: Scalars;
@group(0) @binding(5) var<uniform> chunk: Chunk;

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
  var gi = s.grad_scale * g[i];
  if (s.coupled_decay != 0.0) { gi = gi + s.coupled_decay * p0; }
  let mi = s.beta1 * m0 + s.one_minus_beta1 * gi;
  let vi = s.beta2 * v0 + s.one_minus_beta2 * (gi * gi);
  var pi = p0;
  if (s.mode == 0u) {
    pi = p0 * s.param_decay - s.step_size * (mi / (sqrt(vi) + s.eps));
  } else if (s.mode == 1u) {
    pi = p0 * s.param_decay - s.step_size * mi;
  }
  let rest = count - i * 4u;
  if (rest >= 4u) {
    m[i] = mi;
    v[i] = vi;
    p[i] = pi;
  } else {
    // The tail: lanes at or past the count keep their old values.
    let keep = vec4<u32>(0u, 1u, 2u, 3u) >= vec4<u32>(rest);
    m[i] = select(mi, m0, keep);
    v[i] = select(vi, v0, keep);
    p[i] = select(pi, p0, keep);
  }
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
