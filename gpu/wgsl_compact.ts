/**
 * The WGSL step kernel of 8-bit moments (docs/SPEC.md "Compact states"): one workgroup a block
 * of 256 elements of a compact tensor, 64 invocations of one vec4 each (one u32 of four codes a
 * moment). Each decodes its four codes of each moment with the block's scale, runs the rule's
 * element operations (`rule_values`, the same function the f32 kernel calls) and LookAhead's
 * fused sync, and stores the parameters; the workgroup then takes the block's largest new
 * moment (an integer max of the bits with the sign cleared, a NaN's or an infinity's taken from
 * the rule's specials, RULE_VALUES_WGSL) and each invocation encodes its four new moments with
 * the same integer arithmetic as base/q8.ts (an infinity's code from its bits). The padding after a tensor's last
 * element keeps its parameters and slow weights (a vec4 wholly past it is not touched), and its
 * moments are 0.
 *
 * Bindings: the params, grads and slow weights of the chunk (a run of blocks of one tensor, from
 * its first element; a param updated in place only up to the vec4 of the tensor's last element),
 * each moment's codes from the chunk's first block (`array<u32>`, four a word, element j of a
 * word in its byte j), and the scales, the whole section (the first moment's, then the second's;
 * the chunk's first block is `chunk.block0`).
 *
 * @module
 */
import { type Rule, RULE_VALUES_WGSL } from "../base/rule.ts";
import {
  LARGEST_SCALE_BITS,
  NAN_SCALE_BITS,
  SIGNED_OFFSET,
  SIGNED_ROUND,
  SIGNED_SHIFT,
  UNSIGNED_OFFSET,
  UNSIGNED_ROUND,
  UNSIGNED_SHIFT,
} from "../base/q8.ts";
import { FINISH_WGSL } from "../rules/lookahead.ts";
import {
  type Binding,
  declareBindings,
  GRID_ARGS,
  type Kernel,
  wgslStruct,
  wordsOf,
} from "./_wgsl.ts";
import { DECIDE_WGSL } from "./control.ts";
import { RING_WGSL } from "./scalar_ring.ts";
import { STEP_CONSTS_WGSL } from "./step_consts.ts";

/** Fields of a compact chunk's uniform (`CompactChunk`): a run of blocks. */
export const COMPACT_CHUNK_FIELDS = {
  /** Blocks of the chunk (one workgroup each; all of one tensor). */
  blocks: "u32",
  /** The arena element of its first block. */
  start: "u32",
  /** The index of its first block among the compact blocks (into the scales). */
  block0: "u32",
  /** The element after its tensor's last (the padding from there on). */
  end: "u32",
  /** Its tensor's parameter group (its scalar block). */
  group: "u32",
  /** Blocks of the whole compact region: where the second moment's scales start. */
  all_blocks: "u32",
  pad0: "u32",
  pad1: "u32",
} as const;

/** Words of a compact chunk's uniform. */
export const COMPACT_CHUNK_WORD = wordsOf(COMPACT_CHUNK_FIELDS);

/** Bytes of a compact chunk's uniform. */
export const COMPACT_CHUNK_BYTES = 4 * Object.keys(COMPACT_CHUNK_FIELDS).length;

/** The bindings of `step_compact`. */
export const COMPACT_BINDINGS: readonly Binding[] = [
  { name: "p", type: "array<vec4<f32>>", kind: "storage" },
  { name: "g", type: "array<vec4<f32>>", kind: "read-only-storage" },
  { name: "slow", type: "array<vec4<f32>>", kind: "storage" },
  { name: "m_codes", type: "array<u32>", kind: "storage" },
  { name: "v_codes", type: "array<u32>", kind: "storage" },
  { name: "scales", type: "array<f32>", kind: "storage" },
  { name: "s", type: "Consts", kind: "uniform" },
  { name: "chunk", type: "CompactChunk", kind: "uniform" },
  { name: "control", type: "Control", kind: "storage" },
  { name: "ring", type: "array<u32>", kind: "read-only-storage" },
];

const hex = (n: number) => `${n < 0 ? "-" : ""}0x${Math.abs(n).toString(16)}`;

/** WGSL of the codes: decoding four codes of a word, encoding four values into one. */
export const CODES_WGSL = /* wgsl */ `
// Four decoded values (finite, at most 1) times a block's scale: NaN (the scale's own bits) where
// the scale as stored is NaN, told from its bits (a compiler may assume a product is no NaN).
fn times_scale(x: vec4<f32>, scale: f32) -> vec4<f32> {
  let bits = bitcast<u32>(scale);
  return select(x * scale, bitcast<vec4<f32>>(vec4<u32>(bits)), (bits & 0x7fffffffu) > 0x7f800000u);
}

// Four signed codes (bytes of w) times the scale.
fn decode_signed(w: u32, scale: f32) -> vec4<f32> {
  let c = bitcast<vec4<i32>>(vec4<u32>(w << 24u, w << 16u, w << 8u, w)) >> vec4<u32>(24u);
  let k = abs(c);
  let mag = bitcast<vec4<f32>>((k << vec4<u32>(${SIGNED_SHIFT}u)) + vec4<i32>(${
  hex(SIGNED_OFFSET)
}));
  let value = select(select(mag, -mag, c < vec4<i32>(0)), vec4<f32>(0.0), k == vec4<i32>(0));
  return times_scale(value, scale);
}

// Four unsigned codes (bytes of w) times the scale.
fn decode_unsigned(w: u32, scale: f32) -> vec4<f32> {
  let k = (vec4<u32>(w) >> vec4<u32>(0u, 8u, 16u, 24u)) & vec4<u32>(255u);
  return times_scale(bitcast<vec4<f32>>((k << vec4<u32>(${UNSIGNED_SHIFT}u)) + vec4<u32>(${
  hex(UNSIGNED_OFFSET)
}u)), scale);
}

// Whether a block whose largest magnitude has bits top is stored with codes (else codes 0).
fn has_codes(top: u32) -> bool { return top != 0u && top <= 0x7f800000u; }

// The scale stored for a block whose largest magnitude has bits top (a subnormal top: the
// smallest normal f32; an infinity: FLT_MAX; a NaN: NaN). The NaN's bits are made from top: WGSL
// refuses a constant expression whose value is a NaN (Tint, in browsers, fails the whole module).
fn scale_of(top: u32) -> f32 {
  if (top > 0x7f800000u) {
    return bitcast<f32>(max(top, ${hex(NAN_SCALE_BITS)}u) & ${hex(NAN_SCALE_BITS)}u);
  }
  return select(bitcast<f32>(clamp(top, 0x00800000u, ${hex(LARGEST_SCALE_BITS)}u)), 0.0, top == 0u);
}

// The largest magnitude of four values, as bits with the sign cleared, from their finite values
// x and their specials s (RULE_VALUES_WGSL: the bits of a NaN or an infinity, else 0), so that
// no NaN or infinity is read from a float (a compiler may assume there is none).
fn top_bits(x: vec4<f32>, s: vec4<u32>) -> u32 {
  let a = max(bitcast<vec4<u32>>(select(x, vec4<f32>(0.0), s != vec4<u32>(0u))), s) & vec4<u32>(0x7fffffffu);
  return max(max(a.x, a.y), max(a.z, a.w));
}

// The lanes whose special s is an infinity (its code is the top one, ±127 or 255).
fn is_infinity(s: vec4<u32>) -> vec4<bool> {
  return (s & vec4<u32>(0x7fffffffu)) == vec4<u32>(0x7f800000u);
}

// y = x · R of four finite values (|y| ≤ 1 + 2⁻²³) in a block whose largest magnitude has bits
// top: R = 1 / S, or in a wide block (S above 2^126, where 1 / S would be a subnormal, which a GPU
// may flush to 0) (x · 2^-2) · R with R = 1 / (S · 2^-2).
fn scaled(x: vec4<f32>, top: u32) -> vec4<i32> {
  let q = select(1.0, 0.25, top > 0x7e800000u);
  return bitcast<vec4<i32>>((x * q) * (1.0 / (scale_of(top) * q)));
}

// Four values (finite values x, specials s) as signed codes, in a block whose largest magnitude
// has bits top: an infinity's code from its bits, ±127 (its y = x · R would be an infinity).
fn encode_signed(x: vec4<f32>, s: vec4<u32>, top: u32) -> u32 {
  if (!has_codes(top)) { return 0u; }
  let inf = is_infinity(s);
  let y = select(scaled(select(x, vec4<f32>(0.0), inf), top), bitcast<vec4<i32>>(s), inf);
  let k = clamp(((y & vec4<i32>(0x7fffffff)) + vec4<i32>(${
  hex(SIGNED_ROUND)
})) >> vec4<u32>(${SIGNED_SHIFT}u), vec4<i32>(0), vec4<i32>(127));
  let c = bitcast<vec4<u32>>(select(k, -k, y < vec4<i32>(0))) & vec4<u32>(255u);
  return c.x | (c.y << 8u) | (c.z << 16u) | (c.w << 24u);
}

// Four values (≥ 0; finite values x, specials s) as unsigned codes, in a block whose largest
// magnitude has bits top: +Infinity's code from its bits, 255.
fn encode_unsigned(x: vec4<f32>, s: vec4<u32>, top: u32) -> u32 {
  if (!has_codes(top)) { return 0u; }
  let inf = is_infinity(s);
  let y = select(scaled(select(x, vec4<f32>(0.0), inf), top), bitcast<vec4<i32>>(s), inf);
  let k = bitcast<vec4<u32>>(clamp((y + vec4<i32>(${
  hex(UNSIGNED_ROUND)
})) >> vec4<u32>(${UNSIGNED_SHIFT}u), vec4<i32>(0), vec4<i32>(255)));
  return k.x | (k.y << 8u) | (k.z << 16u) | (k.w << 24u);
}
`;

/** WGSL of `step_compact`. */
const STEP_COMPACT_WGSL = /* wgsl */ `
var<workgroup> tops: array<vec2<u32>, 64>;
var<workgroup> block_t: u32;

// The factors of the global-norm clipping of this step, max / norm: the power of two the
// gradients are first multiplied by (1, or 2⁻¹²⁶ where max / norm is below 2⁻¹²⁶), and the rest
// (see set_norm); (1, 1) where the step does not clip.
fn clip_factors() -> vec2<f32> {
  if (s.clip != 0u) {
    return vec2<f32>(control.clip_pow2, control.clip_scale);
  }
  return vec2<f32>(1.0);
}

// The largest of the workgroup's tops of each moment, after they are written (one barrier: each
// invocation reads the 64, the same words for all, rather than a tree of barriers).
fn block_tops() -> vec2<u32> {
  workgroupBarrier();
  var top = vec2<u32>(0u);
  for (var j = 0u; j < 64u; j++) { top = max(top, tops[j]); }
  return top;
}

@compute @workgroup_size(64)
fn step_compact(
  ${GRID_ARGS}
) {
  let block = wid.y * groups.x + wid.x;
  if (lid == 0u) { block_t = control.step_t; }
  // A skipped step (non-finite gradient), a halted state, or no scalars for this t: no change.
  let t = workgroupUniformLoad(&block_t);
  if (t == 0u || block >= chunk.blocks) { return; }
  let i = block * 64u + lid;
  let e = chunk.start + i * 4u;
  let base = block_at(ring_entry(t), chunk.group);
  let keep = vec4<u32>(0u, 1u, 2u, 3u) + vec4<u32>(e) >= vec4<u32>(chunk.end);
  let b = chunk.block0 + block;
  // A vec4 wholly past the tensor is neither read nor written: a param updated in place in a
  // caller's buffer is bound only up to the vec4 of its last element.
  let inside = e < chunk.end;
  var p0 = vec4<f32>(0.0);
  if (inside) { p0 = p[i]; }
  let m0 = decode_signed(m_codes[i], scales[b]);
  var v0 = vec4<f32>(0.0);
  if (s.moments > 1u) { v0 = decode_unsigned(v_codes[i], scales[chunk.all_blocks + b]); }
  let clip = clip_factors();
  let r = rule_values(base, block_grad_scale(base) * clip.y, clip.x, p0, g[i], m0, v0);
  if (inside) { finish_update(i, p0, r.p, r.ps, block_sync(base), block_alpha(base), keep); }
  let mn = select(r.m, vec4<f32>(0.0), keep);
  let vn = select(r.v, vec4<f32>(0.0), keep);
  let ms = select(r.ms, vec4<u32>(0u), keep);
  let vs = select(r.vs, vec4<u32>(0u), keep);
  tops[lid] = vec2<u32>(top_bits(mn, ms), top_bits(vn, vs));
  let top = block_tops();
  let tm = top.x;
  m_codes[i] = encode_signed(mn, ms, tm);
  if (lid == 0u) { scales[b] = scale_of(tm); }
  if (s.moments > 1u) {
    let tv = top.y;
    v_codes[i] = encode_unsigned(vn, vs, tv);
    if (lid == 0u) { scales[chunk.all_blocks + b] = scale_of(tv); }
  }
}
`;

const kernelCache = new Map<string, Kernel>();

/**
 * The 8-bit step kernel of `rule` (entry point `step_compact`; one per element loop).
 *
 * @example
 * ```ts
 * import { compactKernel } from "./wgsl_compact.ts";
 * import { LION } from "../rules/lion.ts";
 * import assert from "node:assert/strict";
 *
 * assert.match(compactKernel(LION).code, /fn encode_signed/);
 * ```
 */
export function compactKernel(rule: Rule): Kernel {
  let kernel = kernelCache.get(rule.name);
  if (!kernel) {
    const code = /* wgsl */ `
${STEP_CONSTS_WGSL}
${wgslStruct("CompactChunk", COMPACT_CHUNK_FIELDS)}
${declareBindings(COMPACT_BINDINGS)}
${RING_WGSL}
${DECIDE_WGSL}
${FINISH_WGSL}
${RULE_VALUES_WGSL}
${rule.wgsl}
${CODES_WGSL}
${STEP_COMPACT_WGSL}`;
    kernel = { code, entryPoint: "step_compact", bindings: COMPACT_BINDINGS };
    kernelCache.set(rule.name, kernel);
  }
  return kernel;
}
