// Bench-only kernels (bench/compare/bounds.ts compiles them; not part of the library's build):
// the bounds a step's speed is held to on a CPU, in the same f32x4 wasm SIMD the kernels use.
//
//   divSqrt: the divide and square root of an RAdam step alone (`v / (sqrt(v) + eps)` stored),
//     over an L1-resident buffer: no memory traffic, no other arithmetic to speak of. Every RAdam
//     step does one f32x4.sqrt and one f32x4.div per 4 parameters: it cannot run faster.
//   rmw16: a read-modify-write of the bytes an 8-bit RAdam step moves per parameter (read params,
//     gradients and two code bytes; write params and the two codes back: 16 bytes), with a
//     trivial update: the step's memory bound.
//   rmw28: the same for the 28 bytes of a 32-bit RAdam step (f32 params, grads, m, v).
//   lionLinear8, radamLinear8: the rule's own vector arithmetic (plain step: gradient scale 1, no
//     decay, no LookAhead) with its moments in the cheapest 8-bit code there is to write: a byte
//     times one fixed scale (linear, no block scales, no maxima). Decoding widens, converts and
//     multiplies; encoding multiplies, rounds by adding 1.5 × 2^23 (two operations: cheaper in
//     V8 than i32x4.trunc_sat_f32x4_s, which becomes six x86 instructions) and narrows. A
//     block-wise code does at least this much and adds its maxima and scales, so its step cannot
//     run faster than these on the same machine. (Wrong results: a bound, not a step.)

/** First byte after the module's static data. */
export function heapBase(): usize {
  return __heap_base;
}

/** `n` elements' worth of `x / (sqrt(x) + eps)` over the `block` f32 at `x` (L1), `eps` given. */
export function divSqrt(x: usize, block: i32, n: i32, eps: f32): void {
  const ep = f32x4.splat(eps);
  for (let done = 0; done < n; done += block) {
    for (let i: usize = 0; i < <usize> block; i += 16) {
      const o = x + (i << 2);
      const a = v128.load(o), b = v128.load(o, 16), c = v128.load(o, 32), d = v128.load(o, 48);
      v128.store(o, f32x4.div(a, f32x4.add(f32x4.sqrt(a), ep)));
      v128.store(o, f32x4.div(b, f32x4.add(f32x4.sqrt(b), ep)), 16);
      v128.store(o, f32x4.div(c, f32x4.add(f32x4.sqrt(c), ep)), 32);
      v128.store(o, f32x4.div(d, f32x4.add(f32x4.sqrt(d), ep)), 48);
    }
  }
}

/** `p += g` over `n` f32, and both code bytes of each element incremented: 16 bytes moved. */
export function rmw16(p: usize, g: usize, c0: usize, c1: usize, n: i32, one: i32): void {
  const k = i8x16.splat(<i8> one);
  for (let i: usize = 0; i < <usize> n; i += 16) {
    const o = i << 2;
    v128.store(c0 + i, i8x16.add(v128.load(c0 + i), k));
    v128.store(c1 + i, i8x16.add(v128.load(c1 + i), k));
    v128.store(p + o, f32x4.add(v128.load(p + o), v128.load(g + o)));
    v128.store(p + o, f32x4.add(v128.load(p + o, 16), v128.load(g + o, 16)), 16);
    v128.store(p + o, f32x4.add(v128.load(p + o, 32), v128.load(g + o, 32)), 32);
    v128.store(p + o, f32x4.add(v128.load(p + o, 48), v128.load(g + o, 48)), 48);
  }
}

/** `p += g`, `m += g`, `v += g` over `n` f32: the 28 bytes of a 32-bit step. */
export function rmw28(p: usize, g: usize, m: usize, v: usize, n: i32): void {
  for (let i: usize = 0; i < <usize> n; i += 4) {
    const o = i << 2;
    const gv = v128.load(g + o);
    v128.store(p + o, f32x4.add(v128.load(p + o), gv));
    v128.store(m + o, f32x4.add(v128.load(m + o), gv));
    v128.store(v + o, f32x4.add(v128.load(v + o), gv));
  }
}

/** 16 signed codes widened to four f32x4 of `code * scale`. */
// @ts-ignore: decorator
@inline
function decodeLinear(q: v128, sc: v128, j: i32, signed: bool): v128 {
  const half = j < 2
    ? (signed ? i16x8.extend_low_i8x16_s(q) : i16x8.extend_low_i8x16_u(q))
    : (signed ? i16x8.extend_high_i8x16_s(q) : i16x8.extend_high_i8x16_u(q));
  const w = (j & 1) == 0
    ? (signed ? i32x4.extend_low_i16x8_s(half) : i32x4.extend_low_i16x8_u(half))
    : (signed ? i32x4.extend_high_i16x8_s(half) : i32x4.extend_high_i16x8_u(half));
  return f32x4.mul(f32x4.convert_i32x4_s(w), sc);
}

/** `round(x * inv)` as i32 lanes: added to 1.5 × 2²³, whose low mantissa bits then hold it. */
// @ts-ignore: decorator
@inline
function roundLinear(x: v128, inv: v128, magic: v128): v128 {
  return i32x4.sub(f32x4.add(f32x4.mul(x, inv), magic), magic);
}

/** Four f32x4 times `inv`, rounded and narrowed to 16 codes (saturating). */
// @ts-ignore: decorator
@inline
function encodeLinear(a: v128, b: v128, c: v128, d: v128, inv: v128, magic: v128, signed: bool): v128 {
  const ab = i16x8.narrow_i32x4_s(roundLinear(a, inv, magic), roundLinear(b, inv, magic));
  const cd = i16x8.narrow_i32x4_s(roundLinear(c, inv, magic), roundLinear(d, inv, magic));
  return signed ? i8x16.narrow_i16x8_s(ab, cd) : i8x16.narrow_i16x8_u(ab, cd);
}

/** Lion's sign(c), as assembly/lion.ts takes it (±1, +0 at ±0, NaN kept). */
// @ts-ignore: decorator
@inline
function lionSign(c: v128, signBit: v128, one: v128): v128 {
  const signed = v128.and(v128.or(v128.and(c, signBit), one), f32x4.ne(c, f32x4.splat(0)));
  return v128.bitselect(signed, c, f32x4.eq(c, c));
}

/** Four elements of Lion's plain step at byte offset `o`; returns the new moment. */
// @ts-ignore: decorator
@inline
function lionLinearVector(
  p: usize, g: usize, o: usize, m0: v128, b1: v128, c1: v128, b2: v128, c2: v128, ss: v128,
  signBit: v128, one: v128,
): v128 {
  const gv = v128.load(g + o);
  const c = f32x4.add(f32x4.mul(b1, m0), f32x4.mul(c1, gv));
  v128.store(p + o, f32x4.sub(v128.load(p + o), f32x4.mul(ss, lionSign(c, signBit, one))));
  return f32x4.add(f32x4.mul(b2, m0), f32x4.mul(c2, gv));
}

/**
 * Lion's plain step over `n` elements (a multiple of 16) with its moment as one signed byte an
 * element, `code * scale`: 14 bytes moved a parameter.
 */
export function lionLinear8(
  p: usize, g: usize, codes: usize, n: i32,
  beta1: f32, beta2: f32, stepSize: f32, scale: f32,
): void {
  const b1 = f32x4.splat(beta1), c1 = f32x4.splat(1 - beta1);
  const b2 = f32x4.splat(beta2), c2 = f32x4.splat(1 - beta2);
  const ss = f32x4.splat(stepSize), sc = f32x4.splat(scale), inv = f32x4.splat(1 / scale);
  const magic = f32x4.splat(12582912);
  const signBit = i32x4.splat(0x80000000), one = f32x4.splat(1);
  for (let i: usize = 0; i < <usize> n; i += 16) {
    const q = v128.load(codes + i);
    const o = i << 2;
    const a = lionLinearVector(p, g, o, decodeLinear(q, sc, 0, true), b1, c1, b2, c2, ss, signBit, one);
    const b = lionLinearVector(p, g, o + 16, decodeLinear(q, sc, 1, true), b1, c1, b2, c2, ss, signBit, one);
    const c = lionLinearVector(p, g, o + 32, decodeLinear(q, sc, 2, true), b1, c1, b2, c2, ss, signBit, one);
    const d = lionLinearVector(p, g, o + 48, decodeLinear(q, sc, 3, true), b1, c1, b2, c2, ss, signBit, one);
    v128.store(codes + i, encodeLinear(a, b, c, d, inv, magic, true));
  }
}

/** `p -= stepSize * m / (sqrt(v) + eps)` for the four parameters at `p`. */
// @ts-ignore: decorator
@inline
function radamUpdate(p: usize, m: v128, v: v128, ss: v128, ep: v128): void {
  const u = f32x4.div(m, f32x4.add(f32x4.sqrt(v), ep));
  v128.store(p, f32x4.sub(v128.load(p), f32x4.mul(ss, u)));
}

/**
 * RAdam's rectified step (Adam's arithmetic: `p -= stepSize * m / (sqrt(v) + eps)`) over `n`
 * elements (a multiple of 16) with `m` as signed and `v` as unsigned bytes, `code * scale`: 16
 * bytes moved a parameter.
 */
export function radamLinear8(
  p: usize, g: usize, mCodes: usize, vCodes: usize, n: i32,
  beta1: f32, beta2: f32, stepSize: f32, eps: f32, scale: f32,
): void {
  const b1 = f32x4.splat(beta1), c1 = f32x4.splat(1 - beta1);
  const b2 = f32x4.splat(beta2), c2 = f32x4.splat(1 - beta2);
  const ss = f32x4.splat(stepSize), ep = f32x4.splat(eps);
  const sc = f32x4.splat(scale), inv = f32x4.splat(1 / scale);
  const magic = f32x4.splat(12582912);
  for (let i: usize = 0; i < <usize> n; i += 16) {
    const qm = v128.load(mCodes + i), qv = v128.load(vCodes + i);
    const o = i << 2;
    const g0 = v128.load(g + o), g1 = v128.load(g + o, 16);
    const g2 = v128.load(g + o, 32), g3 = v128.load(g + o, 48);
    const m0 = f32x4.add(f32x4.mul(b1, decodeLinear(qm, sc, 0, true)), f32x4.mul(c1, g0));
    const m1 = f32x4.add(f32x4.mul(b1, decodeLinear(qm, sc, 1, true)), f32x4.mul(c1, g1));
    const m2 = f32x4.add(f32x4.mul(b1, decodeLinear(qm, sc, 2, true)), f32x4.mul(c1, g2));
    const m3 = f32x4.add(f32x4.mul(b1, decodeLinear(qm, sc, 3, true)), f32x4.mul(c1, g3));
    const v0 = f32x4.add(f32x4.mul(b2, decodeLinear(qv, sc, 0, false)), f32x4.mul(c2, f32x4.mul(g0, g0)));
    const v1 = f32x4.add(f32x4.mul(b2, decodeLinear(qv, sc, 1, false)), f32x4.mul(c2, f32x4.mul(g1, g1)));
    const v2 = f32x4.add(f32x4.mul(b2, decodeLinear(qv, sc, 2, false)), f32x4.mul(c2, f32x4.mul(g2, g2)));
    const v3 = f32x4.add(f32x4.mul(b2, decodeLinear(qv, sc, 3, false)), f32x4.mul(c2, f32x4.mul(g3, g3)));
    radamUpdate(p + o, m0, v0, ss, ep);
    radamUpdate(p + o + 16, m1, v1, ss, ep);
    radamUpdate(p + o + 32, m2, v2, ss, ep);
    radamUpdate(p + o + 48, m3, v3, ss, ep);
    v128.store(mCodes + i, encodeLinear(m0, m1, m2, m3, inv, magic, true));
    v128.store(vCodes + i, encodeLinear(v0, v1, v2, v3, inv, magic, false));
  }
}
