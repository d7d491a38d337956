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
//   lionBytes, radamBytes: the rule's own vector arithmetic (plain step: gradient scale 1, no
//     decay, no LookAhead) with its moments as one byte an element in the least a code can do:
//     decoding widens each byte to its f32 lane and shifts it to the top (the float's sign and 7
//     exponent bits), encoding shifts the lanes' top bytes down and narrows them; no scale, no
//     maxima, no rounding, no arithmetic. Every 8-bit code must at least move its bytes into lanes
//     and back; this is the fastest way to do it we found in V8 (one i8x16.shuffle per four
//     elements and three per sixteen, fewer wasm operations, ran 1.25x slower: V8 lowers a
//     two-input shuffle to several x86 instructions). (Crude values: a bound, not a step.)
//   lionScaled, radamScaled: the same with what every block-wise code adds at the least: each
//     block of 256 has its scales, and the block's largest new magnitude (the maximum of the
//     values' bits shifted left by one) sets the next one. The codes are decoded in the scale
//     they were written in and encoded in the next one, taken from the last step (one pass, no
//     scratch, no clamp), and both scales are folded into the step's per-block constants, so no
//     multiply an element is added: the only work an element beyond the bytes' is the maximum.
//     Still no rounding, no sign handling beyond the float's own, no code map.

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

/**
 * Code j of four (0–3) of the 16 in `q` as f32x4: each byte widened to its lane and shifted to
 * its top (the float's sign and 7 exponent bits), the rest 0.
 */
// @ts-ignore: decorator
@inline
function decodeBytes(q: v128, j: i32): v128 {
  const half = j < 2 ? i16x8.extend_low_i8x16_u(q) : i16x8.extend_high_i8x16_u(q);
  const w = (j & 1) == 0 ? i32x4.extend_low_i16x8_u(half) : i32x4.extend_high_i16x8_u(half);
  return i32x4.shl(w, 24);
}

/** The top bytes of four f32x4, as 16 codes: shifted down and narrowed. */
// @ts-ignore: decorator
@inline
function encodeBytes(a: v128, b: v128, c: v128, d: v128): v128 {
  const ab = i16x8.narrow_i32x4_s(i32x4.shr_u(a, 24), i32x4.shr_u(b, 24));
  const cd = i16x8.narrow_i32x4_s(i32x4.shr_u(c, 24), i32x4.shr_u(d, 24));
  return i8x16.narrow_i16x8_u(ab, cd);
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
function lionBytesVector(
  p: usize, g: usize, o: usize, m0: v128, b1: v128, c1: v128, b2: v128, c2: v128, ss: v128,
  signBit: v128, one: v128,
): v128 {
  const gv = v128.load(g + o);
  const c = f32x4.add(f32x4.mul(b1, m0), f32x4.mul(c1, gv));
  v128.store(p + o, f32x4.sub(v128.load(p + o), f32x4.mul(ss, lionSign(c, signBit, one))));
  return f32x4.add(f32x4.mul(b2, m0), f32x4.mul(c2, gv));
}

/** Elements a block of a scaled bound: one scale each. */
const BLOCK: usize = 256;

/** The largest magnitude of four f32 lanes, as their bits shifted left by one, into `mx`. */
// @ts-ignore: decorator
@inline
function maxInto(mx: v128, x: v128): v128 {
  return i32x4.max_u(mx, i32x4.shl(x, 1));
}

/** The lane-wise largest of `mx` (bits shifted left by one) as the f32 it was. */
// @ts-ignore: decorator
@inline
function largest(mx: v128): f32 {
  const a = max<u32>(i32x4.extract_lane(mx, 0), i32x4.extract_lane(mx, 1));
  const b = max<u32>(i32x4.extract_lane(mx, 2), i32x4.extract_lane(mx, 3));
  return reinterpret<f32>(max<u32>(a, b) >> 1);
}

/** Where a run of a scaled bound leaves its maxima (a v128 a moment), `maxima` of a run. */
const MAXIMA = memory.data(32, 16);

/**
 * Lion's plain step over elements `[from, to)` (multiples of 16) with its moment as the top byte
 * of each f32, with the step's constants given. With `track` (a constant where inlined), the
 * largest new magnitude (bits shifted left by one) is left at {@link MAXIMA}.
 */
// @ts-ignore: decorator
@inline
function lionRun(
  p: usize, g: usize, codes: usize, from: usize, to: usize,
  b1: v128, c1: v128, b2: v128, c2: v128, ss: v128, signBit: v128, one: v128, track: bool,
): void {
  let mx = i32x4.splat(0);
  for (let i = from; i < to; i += 16) {
    const q = v128.load(codes + i);
    const o = i << 2;
    const a = lionBytesVector(p, g, o, decodeBytes(q, 0), b1, c1, b2, c2, ss, signBit, one);
    const b = lionBytesVector(p, g, o + 16, decodeBytes(q, 1), b1, c1, b2, c2, ss, signBit, one);
    const c = lionBytesVector(p, g, o + 32, decodeBytes(q, 2), b1, c1, b2, c2, ss, signBit, one);
    const d = lionBytesVector(p, g, o + 48, decodeBytes(q, 3), b1, c1, b2, c2, ss, signBit, one);
    if (track) mx = maxInto(maxInto(maxInto(maxInto(mx, a), b), c), d);
    v128.store(codes + i, encodeBytes(a, b, c, d));
  }
  if (track) v128.store(MAXIMA, mx);
}

/**
 * Lion's plain step over `n` elements (a multiple of 16) with its moment as the top byte of
 * each f32: 14 bytes moved a parameter.
 */
export function lionBytes(
  p: usize, g: usize, codes: usize, n: i32, beta1: f32, beta2: f32, stepSize: f32,
): void {
  const b1 = f32x4.splat(beta1), c1 = f32x4.splat(1 - beta1);
  const b2 = f32x4.splat(beta2), c2 = f32x4.splat(1 - beta2);
  const ss = f32x4.splat(stepSize);
  const signBit = i32x4.splat(0x80000000), one = f32x4.splat(1);
  lionRun(p, g, codes, 0, <usize> n, b1, c1, b2, c2, ss, signBit, one, false);
}

/** `p -= stepSize * m / (sqrt(v) + eps)` for the four parameters at `p`. */
// @ts-ignore: decorator
@inline
function radamUpdate(p: usize, m: v128, v: v128, ss: v128, ep: v128): void {
  const u = f32x4.div(m, f32x4.add(f32x4.sqrt(v), ep));
  v128.store(p, f32x4.sub(v128.load(p), f32x4.mul(ss, u)));
}

/**
 * RAdam's rectified step (Adam's arithmetic) over elements `[from, to)` (multiples of 16) with
 * `m` and `v` as the top bytes of their f32, with the step's constants given. With `track` (a
 * constant where inlined), the largest new magnitudes of m and v (bits shifted left by one) are
 * left at {@link MAXIMA}.
 */
// @ts-ignore: decorator
@inline
function radamRun(
  p: usize, g: usize, mCodes: usize, vCodes: usize, from: usize, to: usize,
  b1: v128, c1: v128, b2: v128, c2: v128, ss: v128, ep: v128, track: bool,
): void {
  let mxm = i32x4.splat(0), mxv = i32x4.splat(0);
  for (let i = from; i < to; i += 16) {
    const qm = v128.load(mCodes + i), qv = v128.load(vCodes + i);
    const o = i << 2;
    const g0 = v128.load(g + o), g1 = v128.load(g + o, 16);
    const g2 = v128.load(g + o, 32), g3 = v128.load(g + o, 48);
    const m0 = f32x4.add(f32x4.mul(b1, decodeBytes(qm, 0)), f32x4.mul(c1, g0));
    const m1 = f32x4.add(f32x4.mul(b1, decodeBytes(qm, 1)), f32x4.mul(c1, g1));
    const m2 = f32x4.add(f32x4.mul(b1, decodeBytes(qm, 2)), f32x4.mul(c1, g2));
    const m3 = f32x4.add(f32x4.mul(b1, decodeBytes(qm, 3)), f32x4.mul(c1, g3));
    const v0 = f32x4.add(f32x4.mul(b2, decodeBytes(qv, 0)), f32x4.mul(c2, f32x4.mul(g0, g0)));
    const v1 = f32x4.add(f32x4.mul(b2, decodeBytes(qv, 1)), f32x4.mul(c2, f32x4.mul(g1, g1)));
    const v2 = f32x4.add(f32x4.mul(b2, decodeBytes(qv, 2)), f32x4.mul(c2, f32x4.mul(g2, g2)));
    const v3 = f32x4.add(f32x4.mul(b2, decodeBytes(qv, 3)), f32x4.mul(c2, f32x4.mul(g3, g3)));
    radamUpdate(p + o, m0, v0, ss, ep);
    radamUpdate(p + o + 16, m1, v1, ss, ep);
    radamUpdate(p + o + 32, m2, v2, ss, ep);
    radamUpdate(p + o + 48, m3, v3, ss, ep);
    if (track) {
      mxm = maxInto(maxInto(maxInto(maxInto(mxm, m0), m1), m2), m3);
      mxv = maxInto(maxInto(maxInto(maxInto(mxv, v0), v1), v2), v3);
    }
    v128.store(mCodes + i, encodeBytes(m0, m1, m2, m3));
    v128.store(vCodes + i, encodeBytes(v0, v1, v2, v3));
  }
  if (track) {
    v128.store(MAXIMA, mxm);
    v128.store(MAXIMA, mxv, 16);
  }
}

/**
 * RAdam's rectified step (Adam's arithmetic: `p -= stepSize * m / (sqrt(v) + eps)`) over `n`
 * elements (a multiple of 16) with `m` and `v` as the top bytes of their f32: 16 bytes moved a
 * parameter.
 */
export function radamBytes(
  p: usize, g: usize, mCodes: usize, vCodes: usize, n: i32,
  beta1: f32, beta2: f32, stepSize: f32, eps: f32,
): void {
  const b1 = f32x4.splat(beta1), c1 = f32x4.splat(1 - beta1);
  const b2 = f32x4.splat(beta2), c2 = f32x4.splat(1 - beta2);
  const ss = f32x4.splat(stepSize), ep = f32x4.splat(eps);
  radamRun(p, g, mCodes, vCodes, 0, <usize> n, b1, c1, b2, c2, ss, ep, false);
}

/**
 * Lion's plain step over `n` elements (a multiple of 256) with its moment in blocks of 256, each
 * with two f32 scales at `scales` (pairs: the scale its codes are in, and the next one). The
 * moment is decoded in the first and encoded in the second, both folded into the step's
 * constants; the largest new magnitude gives the next scale. (No clamp: codes past the scale
 * are wrong, which only makes the bound faster.)
 */
export function lionScaled(
  p: usize, g: usize, codes: usize, scales: usize, n: i32,
  beta1: f32, beta2: f32, stepSize: f32,
): void {
  const ss = f32x4.splat(stepSize), c1 = f32x4.splat(1 - beta1);
  const signBit = i32x4.splat(0x80000000), one = f32x4.splat(1);
  for (let start: usize = 0; start < <usize> n; start += BLOCK) {
    const at = scales + (start >> 5);
    const sc = load<f32>(at), sn = load<f32>(at, 4);
    // c = b1 sc q + c1 g (its sign is Lion's); the new moment in codes of sn: (b2 sc q + c2 g) / sn
    const b1 = f32x4.splat(beta1 * sc);
    const b2 = f32x4.splat(beta2 * sc / sn), c2 = f32x4.splat((1 - beta2) / sn);
    lionRun(p, g, codes, start, start + BLOCK, b1, c1, b2, c2, ss, signBit, one, true);
    store<f32>(at, sn);
    store<f32>(at, sn * largest(v128.load(MAXIMA)), 4);
  }
}

/**
 * RAdam's rectified step over `n` elements (a multiple of 256) with `m` and `v` in blocks of 256,
 * each with two f32 scales a moment (at `mScales`, `vScales`: the scale its codes are in, and
 * the next one), folded into the step's constants as in {@link lionScaled}: the new moments are
 * computed in codes of the next scales, and the update from them.
 */
export function radamScaled(
  p: usize, g: usize, mCodes: usize, vCodes: usize, mScales: usize, vScales: usize, n: i32,
  beta1: f32, beta2: f32, stepSize: f32, eps: f32,
): void {
  for (let start: usize = 0; start < <usize> n; start += BLOCK) {
    const am = mScales + (start >> 5), av = vScales + (start >> 5);
    const mc = load<f32>(am), mn = load<f32>(am, 4), vc = load<f32>(av), vn = load<f32>(av, 4);
    // m' = (b1 mc q + c1 g) / mn, v' = (b2 vc q + c2 g²) / vn; the update
    // stepSize m / (√v + eps) = (stepSize mn / √vn) m' / (√v' + eps / √vn)
    const b1 = f32x4.splat(beta1 * mc / mn), c1 = f32x4.splat((1 - beta1) / mn);
    const b2 = f32x4.splat(beta2 * vc / vn), c2 = f32x4.splat((1 - beta2) / vn);
    const root = sqrt<f32>(vn);
    const ss = f32x4.splat(stepSize * mn / root), ep = f32x4.splat(eps / root);
    radamRun(p, g, mCodes, vCodes, start, start + BLOCK, b1, c1, b2, c2, ss, ep, true);
    store<f32>(am, mn);
    store<f32>(am, mn * largest(v128.load(MAXIMA)), 4);
    store<f32>(av, vn);
    store<f32>(av, vn * largest(v128.load(MAXIMA, 16)), 4);
  }
}
