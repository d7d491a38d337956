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
 * One optimizer step over the elements `start` to `end` (exclusive) of the arena. `params`,
 * `grads`, `m`, `v` and `slow` are byte addresses of 16-byte-aligned f32 sections of the arena
 * (element 0 of each); the single-threaded host passes the whole range `[0, n)`, the threaded
 * one (cpu/threaded_wasm_backend.ts) one slice per thread. Every element's result depends on
 * that element only, so any split gives the same bits.
 *
 * Per element:
 *   g = gradScale * grad (+ coupledDecay * p, only when coupledDecay != 0)
 *   m = beta1 * m + oneMinusBeta1 * g
 *   v = beta2 * v + oneMinusBeta2 * (g * g)
 *   num = m, or m + gradMix * g when gradMix != 0 (Nesterov)
 *   adaptive: p = p * paramDecay - stepSize * (num / (sqrt(v) + eps))
 *   momentum: p = p * paramDecay - stepSize * num
 *   sync (LookAhead): slow = slow + alpha * (p - slow); p = slow
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
  start: i32,
  end: i32,
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
  slow: usize,
  alpha: f32,
  sync: i32,
  gradMix: f32,
  segments: usize,
  segmentCount: i32,
): void {
  // The scalars every range shares; `loop` splats them once per call.
  GRAD_SCALE = gradScale;
  BETA1 = beta1;
  ONE_MINUS_BETA1 = oneMinusBeta1;
  BETA2 = beta2;
  ONE_MINUS_BETA2 = oneMinusBeta2;
  EPS = eps;
  ALPHA = alpha;
  SYNC = sync != 0;
  GRAD_MIX = gradMix;
  if (segmentCount == 0) {
    const o = <usize> start << 2;
    stepRange(
      params + o, grads + o, m + o, v + o, slow + o, end - start,
      coupledDecay, paramDecay, stepSize, mode,
    );
    return;
  }
  // Parameter groups: a table of 32-byte rows (i32 start, i32 end, f32 stepSize,
  // f32 paramDecay, f32 coupledDecay, 3 × pad), one per run of tensors sharing hyperparameters;
  // each run, clipped to [start, end), is stepped with its own three scalars, all in this call.
  for (let k = 0; k < segmentCount; k++) {
    const row = segments + (<usize> k << 5);
    const lo = max(load<i32>(row), start);
    const hi = min(load<i32>(row + 4), end);
    if (lo >= hi) continue;
    const o = <usize> lo << 2;
    stepRange(
      params + o, grads + o, m + o, v + o, slow + o, hi - lo,
      load<f32>(row + 16), load<f32>(row + 12), load<f32>(row + 8), mode,
    );
  }
}

let GRAD_SCALE: f32 = 1;
let BETA1: f32 = 0;
let ONE_MINUS_BETA1: f32 = 1;
let BETA2: f32 = 0;
let ONE_MINUS_BETA2: f32 = 1;
let EPS: f32 = 0;
let ALPHA: f32 = 0;
let SYNC: bool = false;
let GRAD_MIX: f32 = 0;

/** One run of elements with its own decay and step size: picks the specialised loop. */
function stepRange(
  params: usize, grads: usize, m: usize, v: usize, slow: usize, n: i32,
  coupledDecay: f32, paramDecay: f32, stepSize: f32, mode: i32,
): void {
  // The common step (no coupled decay, no Nesterov, no LookAhead sync) has its own loops, and
  // those of plain RAdam/Adam (gradient scale 1, no decoupled decay) skip the two products by
  // 1, which are exact: the results are the same bits.
  if (coupledDecay == 0 && GRAD_MIX == 0 && !SYNC) {
    if (GRAD_SCALE == 1 && paramDecay == 1) {
      if (mode == MODE_ADAPTIVE) loop(params, grads, m, v, slow, n, coupledDecay, paramDecay, stepSize, false, MODE_ADAPTIVE, false, false, true);
      else if (mode == MODE_MOMENTUM) loop(params, grads, m, v, slow, n, coupledDecay, paramDecay, stepSize, false, MODE_MOMENTUM, false, false, true);
      else loop(params, grads, m, v, slow, n, coupledDecay, paramDecay, stepSize, false, -1, false, false, true);
    } else {
      if (mode == MODE_ADAPTIVE) loop(params, grads, m, v, slow, n, coupledDecay, paramDecay, stepSize, false, MODE_ADAPTIVE, false, false, false);
      else if (mode == MODE_MOMENTUM) loop(params, grads, m, v, slow, n, coupledDecay, paramDecay, stepSize, false, MODE_MOMENTUM, false, false, false);
      else loop(params, grads, m, v, slow, n, coupledDecay, paramDecay, stepSize, false, -1, false, false, false);
    }
  } else if (coupledDecay != 0) {
    if (mode == MODE_ADAPTIVE) loop(params, grads, m, v, slow, n, coupledDecay, paramDecay, stepSize, true, MODE_ADAPTIVE, true, true, false);
    else if (mode == MODE_MOMENTUM) loop(params, grads, m, v, slow, n, coupledDecay, paramDecay, stepSize, true, MODE_MOMENTUM, true, true, false);
    else loop(params, grads, m, v, slow, n, coupledDecay, paramDecay, stepSize, true, -1, true, true, false);
  } else {
    if (mode == MODE_ADAPTIVE) loop(params, grads, m, v, slow, n, coupledDecay, paramDecay, stepSize, false, MODE_ADAPTIVE, true, true, false);
    else if (mode == MODE_MOMENTUM) loop(params, grads, m, v, slow, n, coupledDecay, paramDecay, stepSize, false, MODE_MOMENTUM, true, true, false);
    else loop(params, grads, m, v, slow, n, coupledDecay, paramDecay, stepSize, false, -1, true, true, false);
  }
}

// @ts-ignore: decorator
@inline
function loop(
  params: usize, grads: usize, m: usize, v: usize, slow: usize, n: i32,
  coupledDecay: f32, paramDecay: f32, stepSize: f32, coupled: bool, mode: i32,
  mayNesterov: bool, maySync: bool, unitScale: bool,
): void {
  const gradScale = GRAD_SCALE;
  const beta1 = BETA1;
  const oneMinusBeta1 = ONE_MINUS_BETA1;
  const beta2 = BETA2;
  const oneMinusBeta2 = ONE_MINUS_BETA2;
  const eps = EPS;
  const alpha = ALPHA;
  // Compile-time false in the common loops: the checks below then vanish.
  const sync = maySync && SYNC;
  const gradMix = GRAD_MIX;
  const al = f32x4.splat(alpha);
  const gm = f32x4.splat(gradMix);
  const nesterov = mayNesterov && gradMix != 0;
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
  const unrolledEnd = n & ~15;
  let i = 0;
  // v128 main loop, unrolled four times (16 elements an iteration), then one vector at a time.
  for (; i < unrolledEnd; i += 16) {
    const o = <usize> i << 2;
    vector(params + o, grads + o, m + o, v + o, slow + o, gs, wd, b1, c1, b2, c2, pd, ss, ep, al, gm, coupled, mode, nesterov, sync, unitScale);
    vector(params + o + 16, grads + o + 16, m + o + 16, v + o + 16, slow + o + 16, gs, wd, b1, c1, b2, c2, pd, ss, ep, al, gm, coupled, mode, nesterov, sync, unitScale);
    vector(params + o + 32, grads + o + 32, m + o + 32, v + o + 32, slow + o + 32, gs, wd, b1, c1, b2, c2, pd, ss, ep, al, gm, coupled, mode, nesterov, sync, unitScale);
    vector(params + o + 48, grads + o + 48, m + o + 48, v + o + 48, slow + o + 48, gs, wd, b1, c1, b2, c2, pd, ss, ep, al, gm, coupled, mode, nesterov, sync, unitScale);
  }
  for (; i < vecEnd; i += 4) {
    const o = <usize> i << 2;
    vector(params + o, grads + o, m + o, v + o, slow + o, gs, wd, b1, c1, b2, c2, pd, ss, ep, al, gm, coupled, mode, nesterov, sync, unitScale);
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
    const num = nesterov ? mNew + gradMix * g : mNew;
    let pNew = p;
    if (mode == MODE_ADAPTIVE) {
      pNew = p * paramDecay - stepSize * (num / (sqrt<f32>(vNew) + eps));
    } else if (mode == MODE_MOMENTUM) {
      pNew = p * paramDecay - stepSize * num;
    }
    if (sync) {
      const s = load<f32>(slow + o);
      pNew = s + alpha * (pNew - s);
      store<f32>(slow + o, pNew);
    }
    store<f32>(params + o, pNew);
  }
}

/** One vector (4 elements) of the step; the operations of `loop`'s scalar tail, lane-wise. */
// @ts-ignore: decorator
@inline
function vector(
  params: usize, grads: usize, m: usize, v: usize, slow: usize,
  gs: v128, wd: v128, b1: v128, c1: v128, b2: v128, c2: v128, pd: v128, ss: v128, ep: v128,
  al: v128, gm: v128, coupled: bool, mode: i32, nesterov: bool, sync: bool, unitScale: bool,
): void {
  const p = v128.load(params);
  // unitScale: gs and pd are 1 (the products are exact, so skipping them changes no bit).
  let g = unitScale ? v128.load(grads) : f32x4.mul(gs, v128.load(grads));
  if (coupled) g = f32x4.add(g, f32x4.mul(wd, p));
  const mNew = f32x4.add(f32x4.mul(b1, v128.load(m)), f32x4.mul(c1, g));
  const vNew = f32x4.add(
    f32x4.mul(b2, v128.load(v)),
    f32x4.mul(c2, f32x4.mul(g, g)),
  );
  v128.store(m, mNew);
  v128.store(v, vNew);
  // Nesterov (optax): the update uses m + gradMix * g in place of m.
  const num = nesterov ? f32x4.add(mNew, f32x4.mul(gm, g)) : mNew;
  let pNew = p;
  if (mode == MODE_ADAPTIVE) {
    const q = f32x4.div(num, f32x4.add(f32x4.sqrt(vNew), ep));
    pNew = f32x4.sub(unitScale ? p : f32x4.mul(p, pd), f32x4.mul(ss, q));
  } else if (mode == MODE_MOMENTUM) {
    pNew = f32x4.sub(unitScale ? p : f32x4.mul(p, pd), f32x4.mul(ss, num));
  }
  if (sync) {
    // LookAhead sync: slow += alpha * (p - slow); p = slow
    const s = v128.load(slow);
    pNew = f32x4.add(s, f32x4.mul(al, f32x4.sub(pNew, s)));
    v128.store(slow, pNew);
  }
  v128.store(params, pNew);
}

/**
 * Elements per block of the sum of squares: the reduction is defined blockwise, so that a
 * threaded state (each thread sums whole blocks) and a single-threaded one give the same bits.
 * A multiple of 8. Mirrored by SUM_BLOCK in cpu/js_backend.ts.
 */
const SUM_BLOCK: i32 = 16384;

/**
 * Sum of squares of `n` f32 values at `ptr` (16-byte aligned), accumulated in f64 so that it
 * cannot overflow and is NaN/Infinity exactly when some value is. Fixed order, mirrored by the
 * TypeScript backend: the values are cut into blocks of SUM_BLOCK elements (the last one
 * shorter); each block is summed by `blockSumSquares`, and the block sums are added in order
 * to a running f64 total starting at 0.
 */
export function sumSquares(ptr: usize, n: i32): f64 {
  let total: f64 = 0;
  for (let start = 0; start < n; start += SUM_BLOCK) {
    total += blockSumSquares(ptr + (<usize> start << 2), min(SUM_BLOCK, n - start));
  }
  return total;
}

/**
 * The block sums of `sumSquares` for blocks `first` to `last` (exclusive) of the `n` values at
 * `ptr`, written as f64 to `out + 8 * block`: a thread's share of the reduction. The host adds
 * all the block sums in order, as `sumSquares` does.
 */
export function sumSquaresBlocks(ptr: usize, n: i32, first: i32, last: i32, out: usize): void {
  for (let b = first; b < last; b++) {
    const start = b * SUM_BLOCK;
    store<f64>(
      out + (<usize> b << 3),
      blockSumSquares(ptr + (<usize> start << 2), min(SUM_BLOCK, n - start)),
    );
  }
}

/**
 * Sum of squares of one block of `n` values: eight lane sums s0..s7 (lane j takes elements
 * 8i + j of the part below n & ~7, each square exact in f64), combined as ((s0 + s1) + (s2 +
 * s3)) + ((s4 + s5) + (s6 + s7)), then the tail added in order. Eight independent f64 chains
 * hide the add latency.
 */
// @ts-ignore: decorator
@inline
function blockSumSquares(ptr: usize, n: i32): f64 {
  let a0 = f64x2.splat(0);
  let a1 = f64x2.splat(0);
  let a2 = f64x2.splat(0);
  let a3 = f64x2.splat(0);
  const vecEnd = n & ~7;
  let i = 0;
  for (; i < vecEnd; i += 8) {
    const x = v128.load(ptr + (<usize> i << 2));
    const y = v128.load(ptr + (<usize> i << 2) + 16);
    const x0 = f64x2.promote_low_f32x4(x);
    const x1 = f64x2.promote_low_f32x4(v128.shuffle<u32>(x, x, 2, 3, 0, 1));
    const y0 = f64x2.promote_low_f32x4(y);
    const y1 = f64x2.promote_low_f32x4(v128.shuffle<u32>(y, y, 2, 3, 0, 1));
    a0 = f64x2.add(a0, f64x2.mul(x0, x0));
    a1 = f64x2.add(a1, f64x2.mul(x1, x1));
    a2 = f64x2.add(a2, f64x2.mul(y0, y0));
    a3 = f64x2.add(a3, f64x2.mul(y1, y1));
  }
  let sum = ((f64x2.extract_lane(a0, 0) + f64x2.extract_lane(a0, 1)) +
    (f64x2.extract_lane(a1, 0) + f64x2.extract_lane(a1, 1))) +
    ((f64x2.extract_lane(a2, 0) + f64x2.extract_lane(a2, 1)) +
      (f64x2.extract_lane(a3, 0) + f64x2.extract_lane(a3, 1)));
  for (; i < n; i++) {
    const x = <f64> load<f32>(ptr + (<usize> i << 2));
    sum += x * x;
  }
  return sum;
}

/**
 * Gradient centralization of one tensor laid out as `rows` rows of `cols` f32 values at `ptr`
 * (any 4-byte alignment): subtracts from each row its mean, in place. The row sum is taken in
 * f32 in a fixed order, mirrored by the TypeScript backend: four lane sums (lane j takes
 * elements 4i + j of the row's vector part), combined as (s0 + s1) + (s2 + s3), then the tail
 * added in order; mean = sum / cols.
 */
export function centralize(ptr: usize, rows: i32, cols: i32): void {
  const vecEnd = cols & ~3;
  for (let r = 0; r < rows; r++) {
    const row = ptr + ((<usize> r * <usize> cols) << 2);
    let acc = f32x4.splat(0);
    let i = 0;
    for (; i < vecEnd; i += 4) acc = f32x4.add(acc, v128.load(row + (<usize> i << 2)));
    let sum = (f32x4.extract_lane(acc, 0) + f32x4.extract_lane(acc, 1)) +
      (f32x4.extract_lane(acc, 2) + f32x4.extract_lane(acc, 3));
    for (; i < cols; i++) sum += load<f32>(row + (<usize> i << 2));
    const mean = sum / <f32> cols;
    const mv = f32x4.splat(mean);
    i = 0;
    for (; i < vecEnd; i += 4) {
      const o = row + (<usize> i << 2);
      v128.store(o, f32x4.sub(v128.load(o), mv));
    }
    for (; i < cols; i++) {
      const o = row + (<usize> i << 2);
      store<f32>(o, load<f32>(o) - mean);
    }
  }
}

/**
 * Whether any of the `n` f32 values at `ptr` is NaN or ±Infinity: 1 if so, else 0. The test is
 * on the exponent bits (all ones), an integer max over `bits & 0x7f800000`, so it costs a read
 * of the values and is exact (no arithmetic on them). The non-finite check of `nonFinite: "skip"`
 * and `"throw"` without clipping (which needs the f64 `sumSquares` instead).
 *
 * The values are read as four streams at once (four quarters of the range, 64 bytes of each an
 * iteration): one sequential stream leaves most of the memory bandwidth unused on one core,
 * four keep as many lines in flight as the step's own streams do.
 */
export function nonFinite(ptr: usize, n: i32): i32 {
  const mask = i32x4.splat(0x7f800000);
  let a0 = i32x4.splat(0);
  let a1 = i32x4.splat(0);
  let a2 = i32x4.splat(0);
  let a3 = i32x4.splat(0);
  // quarters of q elements (a multiple of 16), the rest after them
  const q = (n >> 2) & ~15;
  const qb = <usize> q << 2;
  for (let i = 0; i < q; i += 16) {
    const o0 = ptr + (<usize> i << 2);
    const o1 = o0 + qb;
    const o2 = o1 + qb;
    const o3 = o2 + qb;
    a0 = i32x4.max_u(a0, v128.and(v128.load(o0), mask));
    a1 = i32x4.max_u(a1, v128.and(v128.load(o1), mask));
    a2 = i32x4.max_u(a2, v128.and(v128.load(o2), mask));
    a3 = i32x4.max_u(a3, v128.and(v128.load(o3), mask));
    a0 = i32x4.max_u(a0, v128.and(v128.load(o0, 16), mask));
    a1 = i32x4.max_u(a1, v128.and(v128.load(o1, 16), mask));
    a2 = i32x4.max_u(a2, v128.and(v128.load(o2, 16), mask));
    a3 = i32x4.max_u(a3, v128.and(v128.load(o3, 16), mask));
    a0 = i32x4.max_u(a0, v128.and(v128.load(o0, 32), mask));
    a1 = i32x4.max_u(a1, v128.and(v128.load(o1, 32), mask));
    a2 = i32x4.max_u(a2, v128.and(v128.load(o2, 32), mask));
    a3 = i32x4.max_u(a3, v128.and(v128.load(o3, 32), mask));
    a0 = i32x4.max_u(a0, v128.and(v128.load(o0, 48), mask));
    a1 = i32x4.max_u(a1, v128.and(v128.load(o1, 48), mask));
    a2 = i32x4.max_u(a2, v128.and(v128.load(o2, 48), mask));
    a3 = i32x4.max_u(a3, v128.and(v128.load(o3, 48), mask));
  }
  let i = q << 2;
  const vecEnd = n & ~3;
  for (; i < vecEnd; i += 4) {
    a0 = i32x4.max_u(a0, v128.and(v128.load(ptr + (<usize> i << 2)), mask));
  }
  const top = i32x4.max_u(i32x4.max_u(a0, a1), i32x4.max_u(a2, a3));
  let found = v128.any_true(i32x4.eq(top, mask)) ? 1 : 0;
  for (; i < n; i++) {
    if ((load<u32>(ptr + (<usize> i << 2)) & 0x7f800000) == 0x7f800000) found = 1;
  }
  return found;
}
