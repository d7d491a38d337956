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
