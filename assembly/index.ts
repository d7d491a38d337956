// RAdam / Adam / AdamW update kernel over one packed arena, f32x4 SIMD.
//
// The host computes every per-step scalar in float64 (see core/scalars.ts) and passes them
// here rounded to f32; this file only does the per-element work. The arithmetic, and its
// order, is the same as the TypeScript backend's (cpu/js_backend.ts), so that both produce
// bit-identical results: every operation below is an IEEE-754 f32 add, mul, div or sqrt,
// with no fused multiply-add.

/** First byte after the module's static data: where the host may place its arena. */
export function heapBase(): usize {
  return __heap_base;
}

/** `mode` value: adaptive (rectified RAdam, or Adam) update of the parameters. */
const MODE_ADAPTIVE: i32 = 0;
/** `mode` value: bias-corrected momentum-SGD update (RAdam before rectification). */
const MODE_MOMENTUM: i32 = 1;
// Any other mode: moments only, the parameters are left untouched.

/**
 * One optimizer step over `n` elements. `params`, `grads`, `m` and `v` are byte addresses of
 * 16-byte-aligned f32 sections of the arena.
 *
 * Per element:
 *   g = gradScale * grad (+ coupledDecay * p, only when coupledDecay != 0)
 *   m = beta1 * m + oneMinusBeta1 * g
 *   v = beta2 * v + oneMinusBeta2 * (g * g)
 *   adaptive: p = p * paramDecay - stepSize * (m / (sqrt(v) + eps))
 *   momentum: p = p * paramDecay - stepSize * m
 *
 * The weight-decay term is skipped, not multiplied by zero, when there is none, so that a
 * non-finite parameter never leaks into the moments (PyTorch skips it too). Each combination of
 * (coupled decay, mode) gets its own loop, specialised at compile time.
 */
export function step(
  params: usize,
  grads: usize,
  m: usize,
  v: usize,
  n: i32,
  gradScale: f32,
  coupledDecay: f32,
  beta1: f32,
  oneMinusBeta1: f32,
  beta2: f32,
  oneMinusBeta2: f32,
  paramDecay: f32,
  stepSize: f32,
  eps: f32,
  mode: i32,
): void {
  if (coupledDecay != 0) {
    if (mode == MODE_ADAPTIVE) {
      loop(
        params,
        grads,
        m,
        v,
        n,
        gradScale,
        coupledDecay,
        beta1,
        oneMinusBeta1,
        beta2,
        oneMinusBeta2,
        paramDecay,
        stepSize,
        eps,
        true,
        MODE_ADAPTIVE,
      );
    } else if (mode == MODE_MOMENTUM) {
      loop(
        params,
        grads,
        m,
        v,
        n,
        gradScale,
        coupledDecay,
        beta1,
        oneMinusBeta1,
        beta2,
        oneMinusBeta2,
        paramDecay,
        stepSize,
        eps,
        true,
        MODE_MOMENTUM,
      );
    } else {
      loop(
        params,
        grads,
        m,
        v,
        n,
        gradScale,
        coupledDecay,
        beta1,
        oneMinusBeta1,
        beta2,
        oneMinusBeta2,
        paramDecay,
        stepSize,
        eps,
        true,
        -1,
      );
    }
  } else {
    if (mode == MODE_ADAPTIVE) {
      loop(
        params,
        grads,
        m,
        v,
        n,
        gradScale,
        coupledDecay,
        beta1,
        oneMinusBeta1,
        beta2,
        oneMinusBeta2,
        paramDecay,
        stepSize,
        eps,
        false,
        MODE_ADAPTIVE,
      );
    } else if (mode == MODE_MOMENTUM) {
      loop(
        params,
        grads,
        m,
        v,
        n,
        gradScale,
        coupledDecay,
        beta1,
        oneMinusBeta1,
        beta2,
        oneMinusBeta2,
        paramDecay,
        stepSize,
        eps,
        false,
        MODE_MOMENTUM,
      );
    } else {
      loop(
        params,
        grads,
        m,
        v,
        n,
        gradScale,
        coupledDecay,
        beta1,
        oneMinusBeta1,
        beta2,
        oneMinusBeta2,
        paramDecay,
        stepSize,
        eps,
        false,
        -1,
      );
    }
  }
}

// Inlined into each call above, with `coupled` and `mode` constant, so that each of the six
// loops is specialised. (deno fmt would drop this decorator: deno.json excludes assembly/.)
// @ts-ignore: decorator
@inline
function loop(
  params: usize,
  grads: usize,
  m: usize,
  v: usize,
  n: i32,
  gradScale: f32,
  coupledDecay: f32,
  beta1: f32,
  oneMinusBeta1: f32,
  beta2: f32,
  oneMinusBeta2: f32,
  paramDecay: f32,
  stepSize: f32,
  eps: f32,
  coupled: bool,
  mode: i32,
): void {
  // Constants splatted once.
  const gs = f32x4.splat(gradScale);
  const wd = f32x4.splat(coupledDecay);
  const b1 = f32x4.splat(beta1);
  const c1 = f32x4.splat(oneMinusBeta1);
  const b2 = f32x4.splat(beta2);
  const c2 = f32x4.splat(oneMinusBeta2);
  const pd = f32x4.splat(paramDecay);
  const ss = f32x4.splat(stepSize);
  const ep = f32x4.splat(eps);
  const vecEnd = n & ~3;
  const blockEnd = n & ~15;
  let i = 0;
  // v128 main loop, unrolled four times: fewer loop branches and interrupt checks a vector.
  for (; i < blockEnd; i += 16) {
    const o = <usize> i << 2;
    vector(params, grads, m, v, o, gs, wd, b1, c1, b2, c2, pd, ss, ep, coupled, mode);
    vector(params, grads, m, v, o + 16, gs, wd, b1, c1, b2, c2, pd, ss, ep, coupled, mode);
    vector(params, grads, m, v, o + 32, gs, wd, b1, c1, b2, c2, pd, ss, ep, coupled, mode);
    vector(params, grads, m, v, o + 48, gs, wd, b1, c1, b2, c2, pd, ss, ep, coupled, mode);
  }
  for (; i < vecEnd; i += 4) {
    vector(params, grads, m, v, <usize> i << 2, gs, wd, b1, c1, b2, c2, pd, ss, ep, coupled, mode);
  }
  // Scalar tail: the same operations, one lane at a time.
  for (; i < n; i++) {
    const o = <usize> i << 2;
    const p = load<f32>(params + o);
    let g = gradScale * load<f32>(grads + o);
    if (coupled) g = g + coupledDecay * p;
    const mNew = beta1 * load<f32>(m + o) + oneMinusBeta1 * g;
    const vNew = beta2 * load<f32>(v + o) + oneMinusBeta2 * (g * g);
    store<f32>(m + o, mNew);
    store<f32>(v + o, vNew);
    if (mode == MODE_ADAPTIVE) {
      store<f32>(params + o, p * paramDecay - stepSize * (mNew / (sqrt<f32>(vNew) + eps)));
    } else if (mode == MODE_MOMENTUM) {
      store<f32>(params + o, p * paramDecay - stepSize * mNew);
    }
  }
}

// One f32x4 vector of the update, at byte offset `o` of each section: the per-element
// operations of the scalar tail in `loop`, four lanes at a time.
// @ts-ignore: decorator
@inline
function vector(
  params: usize,
  grads: usize,
  m: usize,
  v: usize,
  o: usize,
  gs: v128,
  wd: v128,
  b1: v128,
  c1: v128,
  b2: v128,
  c2: v128,
  pd: v128,
  ss: v128,
  ep: v128,
  coupled: bool,
  mode: i32,
): void {
  const p = v128.load(params + o);
  let g = f32x4.mul(gs, v128.load(grads + o));
  if (coupled) g = f32x4.add(g, f32x4.mul(wd, p));
  const mNew = f32x4.add(f32x4.mul(b1, v128.load(m + o)), f32x4.mul(c1, g));
  const vNew = f32x4.add(f32x4.mul(b2, v128.load(v + o)), f32x4.mul(c2, f32x4.mul(g, g)));
  v128.store(m + o, mNew);
  v128.store(v + o, vNew);
  if (mode == MODE_ADAPTIVE) {
    const q = f32x4.div(mNew, f32x4.add(f32x4.sqrt(vNew), ep));
    v128.store(params + o, f32x4.sub(f32x4.mul(p, pd), f32x4.mul(ss, q)));
  } else if (mode == MODE_MOMENTUM) {
    v128.store(params + o, f32x4.sub(f32x4.mul(p, pd), f32x4.mul(ss, mNew)));
  }
}
