/**
 * RAdam, Adam, AdamW, SGD, Lion and LookAhead on WebGPU beside wasm where every value as stored is
 * finite but an f32 operation of the step passes f32's largest (a gradient of 2⁶⁴ or more squared,
 * sums and products of values and scalars near FLT_MAX, Adam's `eps = 0` over a zero `v`), value
 * class by value class, in 32-bit and 8-bit states: WGSL lets a compiler assume that no operation
 * overflows, so each rule takes a vec4 whose largest magnitude as stored reaches a bound (derived
 * from the step's scalars: `adam_limit`, `sgd_limit`; Lion's is 2¹²⁶) through its checked path,
 * which decides each overflow from scaled or halved operands. llvmpipe keeps IEEE-754, so these pass there without
 * that path too: tests/gpu/wgsl_finite_test.ts reads the routing from the code, and the property
 * below checks, in f32 arithmetic, that no step below the bound overflows.
 */
import assert from "node:assert/strict";
import fc from "fast-check";
import { adam, adamw, lion, lookahead, radam, sgd, type StatesFormat } from "../../mod.ts";
import { ignore, noGpuErrors } from "./gpu_device.ts";
import { compareLanes, type Make } from "./lanes.ts";

const MAX = 3.4028234663852886e38;
const f32 = Math.fround;

/** Per lane: the parameter, then the gradients of four steps, all finite. */
const LANES: readonly (readonly number[])[] = [
  [1, 2 ** 64, 1, 1, 1],
  [1, -(2 ** 70), 2 ** 63, 0, 1],
  [MAX, 1, 1, 1, 1],
  [-MAX, MAX, 0.5, 1, 1],
  [2 ** 100, -(2 ** 100), 2 ** 100, 1, 1],
  [1, MAX, MAX, MAX, 1],
  [1, 0, 0, 0, 0],
  [2 ** 62, 2 ** 62, -(2 ** 62), 2 ** 62, 1],
  [1, 1e30, 1e-30, -1e30, 1],
  [-(2 ** 120), 2 ** 120, 2 ** 120, 0, 1],
  [0.5, 3e38, -3e38, 3e38, 1],
  [1, 1e-20, 0, 1e-20, 0],
];

const on = (backend: "webgpu" | "wasm", states: StatesFormat) => ({ backend, states }) as const;

const CONFIGS: Record<string, Make> = {
  "adam": (b, s) => adam({ lr: 1e-2, ...on(b, s) }),
  "adam, eps 0 (0 / 0)": (b, s) => adam({ eps: 0, ...on(b, s) }),
  "adam, L2 decay 1e30, maximize": (b, s) =>
    adam({ weightDecay: 1e30, maximize: true, ...on(b, s) }),
  "adamw, lr 1e30": (b, s) => adamw({ lr: 1e30, weightDecay: 1e-3, ...on(b, s) }),
  "radam (momentum steps), lr 1e35": (b, s) => radam({ lr: 1e35, ...on(b, s) }),
  "radam, nesterov, betas [0.5, 0.5]": (b, s) =>
    radam({ nesterov: true, betas: [0.5, 0.5], threshold: 4, ...on(b, s) }),
  "radam, moments only": (b, s) => radam({ degenerateToSgd: false, ...on(b, s) }),
  "sgd, lr 1e30": (b, s) => sgd({ lr: 1e30, ...on(b, s) }),
  "sgd, momentum 1e30, L2 decay": (b, s) => sgd({ momentum: 1e30, weightDecay: 2, ...on(b, s) }),
  "sgd, dampening 0.5, nesterov momentum 1e20": (b, s) =>
    sgd({ momentum: 1e20, nesterov: true, ...on(b, s) }),
  "sgd, dampening": (b, s) => sgd({ momentum: 0.9, dampening: 0.5, ...on(b, s) }),
  "lion, betas [0.5, 1 − 2⁻²⁴], lr 1e38": (b, s) =>
    lion({ lr: 1e38, betas: [0.5, 1 - 2 ** -24], ...on(b, s) }),
  "lion, betas [0, 2⁻²⁵ + 2⁻⁴⁸], lr 1e32": (b, s) =>
    lion({ lr: 1e32, betas: [0, 2 ** -25 + 2 ** -48], ...on(b, s) }),
  "lion, lr 2, decay 1e38, maximize": (b, s) =>
    lion({ lr: 2, weightDecay: 1e38, maximize: true, ...on(b, s) }),
  "lookahead(sgd, lr 1e20), k = 1": (b, s) =>
    lookahead(sgd({ lr: 1e20, ...on(b, s) }), { k: 1, alpha: 0.5 }),
  "lookahead(adam, lr 1e36), k = 1": (b, s) =>
    lookahead(adam({ lr: 1e36, ...on(b, s) }), { k: 1, alpha: 1 }),
};

for (const states of ["32bit", "8bit"] as const) {
  for (const [config, make] of Object.entries(CONFIGS)) {
    Deno.test({
      name:
        `webgpu ${config} (${states}): finite values whose step overflows f32 give wasm's NaN, infinities and finite values`,
      ignore,
      async fn() {
        await noGpuErrors(async () => {
          const seen = await compareLanes(make, states, LANES);
          // (8-bit moments hold an infinity as ±FLT_MAX: docs/SPEC.md, "Compact states".)
          if (states === "32bit") assert.ok(seen.size >= 2, [...seen].join());
        });
      },
    });
  }
}

// The bounds, as the WGSL computes them (adam_limit, sgd_limit, exp_above, limit_bits), as the
// exponent k of 2^k: values as stored below it take the path that does not check for overflow;
// below −126 every value takes the checked path (undefined here).
const bits = new Uint32Array(1), word = new Float32Array(bits.buffer);
const expAbove = (x: number) => (word[0] = x, ((bits[0] >>> 23) & 0xff) - 126);
const limitExponent = (k: number) => k >= -126 ? Math.min(k, 128) : undefined;

interface AdamScalars {
  wd: number;
  b1: number;
  b2: number;
  pd: number;
  ss: number;
  eps: number;
  gm: number;
  mm: number;
}
function adamLimit(s: AdamScalars): number | undefined {
  const a = Math.max(expAbove(s.wd), 0) + 1;
  const em = Math.max(expAbove(s.mm), expAbove(s.gm), 0);
  const le = Math.min(Math.max(expAbove(s.eps) - 1, -64), 0);
  const pd = expAbove(s.pd), ss = expAbove(s.ss);
  return limitExponent(
    Math.min(63 - a, 125 - a - em, 126 - pd, 123 - Math.max(ss, -1) - a - em + le),
  );
}

interface SgdScalars {
  wd: number;
  bd: number;
  bg: number;
  mu: number;
  ss: number;
}
function sgdLimit(s: SgdScalars): number | undefined {
  const c = Math.max(expAbove(s.wd), 0) + 1 + Math.max(expAbove(s.bd), 0) +
    Math.max(expAbove(s.mu), 0);
  return limitExponent(Math.min(125 - c, 124 - c - expAbove(s.ss)));
}

/** Finite f32 scalars ≥ 0: 0, tiny, 1, huge, and any. */
const scalar = fc.oneof(
  fc.constantFrom(0, 2 ** -149, 1e-8, 1, 2, 1e30, MAX),
  fc.float({ min: 0, max: MAX, noNaN: true }),
  fc.float({ min: 0, max: 4, noNaN: true }),
);
const unit = fc.float({ min: 0, max: 1, maxExcluded: true, noNaN: true });
/** A value below 2^k in magnitude, often the largest f32 below it. */
const below = (k: number) =>
  fc.tuple(fc.oneof(fc.constant(1), fc.double({ min: 0, max: 1, noNaN: true })), fc.boolean()).map(
    ([u, negative]) => {
      const top = k === 128 ? MAX : f32(2 ** k * (1 - 2 ** -24));
      const x = Math.min(f32(u * 2 ** k), top);
      return negative ? -x : x;
    },
  );

/** Whether every intermediate of an f32 step stays at most 2¹²⁷ (far from any overflow). */
const small = (...xs: number[]) => xs.every((x) => Math.abs(x) <= 2 ** 127);

Deno.test("webgpu overflow bounds: below adam_limit, no f32 operation of Adam's step reaches 2¹²⁷, whatever the scalars", () => {
  const scalars = fc.record({
    wd: scalar,
    b1: unit,
    b2: unit,
    pd: scalar.chain((x) => fc.constantFrom(x, -x)),
    ss: scalar,
    eps: scalar,
    gm: scalar,
    mm: scalar,
  });
  fc.assert(
    fc.property(
      scalars,
      fc.constantFrom(-1, 1),
      fc.constantFrom(1, 2 ** -10),
      fc.constantFrom(0, 1, 2),
      (s, gs, pre, mode) => {
        const k = adamLimit(s);
        if (k === undefined) return;
        fc.assert(
          fc.property(below(k), below(k), below(k), below(k), (p, g, m, v0) => {
            const v = Math.abs(v0);
            const c1 = f32(1 - s.b1), c2 = f32(1 - s.b2);
            const wdp = f32(s.wd * p);
            const gi = f32(f32(gs * f32(g * pre)) + wdp);
            const bm = f32(s.b1 * m), cg = f32(c1 * gi);
            const mi = f32(bm + cg);
            const gg = f32(gi * gi), bv = f32(s.b2 * v), cgg = f32(c2 * gg);
            const vi = f32(bv + cgg);
            const mmm = f32(s.mm * mi), gmg = f32(s.gm * gi);
            const num = f32(mmm + gmg);
            if (mode === 0 && s.eps < 2 ** -64 && vi < 2 ** -126) return; // the checked path
            const q = mode === 0 ? f32(num / f32(f32(Math.sqrt(vi)) + s.eps)) : num;
            const ppd = f32(p * s.pd), ssq = f32(s.ss * q);
            const pn = f32(ppd - ssq);
            const all = [wdp, gi, bm, cg, mi, gg, bv, cgg, vi, mmm, gmg, num, ppd, ssq, pn];
            if (mode !== 2) all.push(q * (1 + 2 ** -21), s.ss * q * (1 + 2 ** -21));
            assert.ok(small(...all), `k ${k}: ${[p, g, m, v]} → ${all}`);
          }),
          { numRuns: 20 },
        );
      },
    ),
    { numRuns: 10000 },
  );
});

Deno.test("webgpu overflow bounds: below sgd_limit, no f32 operation of SGD's step reaches 2¹²⁷, whatever the scalars", () => {
  const scalars = fc.record({ wd: scalar, bd: scalar, bg: unit, mu: scalar, ss: scalar });
  fc.assert(
    fc.property(
      scalars,
      fc.constantFrom(-1, 1),
      fc.constantFrom(0, 1, 2),
      (s, gs, mode) => {
        const k = sgdLimit(s);
        if (k === undefined) return;
        fc.assert(
          fc.property(below(k), below(k), below(k), (p, g, m) => {
            const wdp = f32(s.wd * p), gi = f32(f32(gs * g) + wdp);
            const bdm = f32(s.bd * m), bgg = f32(s.bg * gi), mi = f32(bdm + bgg);
            const mum = f32(s.mu * mi), nest = f32(gi + mum);
            const d = mode === 0 ? gi : mode === 1 ? mi : nest;
            const ssd = f32(s.ss * d), pn = f32(p - ssd);
            const all = [wdp, gi, bdm, bgg, mi, mum, nest, ssd, pn];
            assert.ok(small(...all), `k ${k}: ${[p, g, m]} → ${all}`);
          }),
          { numRuns: 20 },
        );
      },
    ),
    { numRuns: 10000 },
  );
});

Deno.test("webgpu overflow bounds: below Lion's 2¹²⁶, no f32 operation of c or m reaches 2¹²⁷; at or above it, m from halves is the f32 step's, or overflows exactly where the halves reach 2¹²⁷", () => {
  const finite = fc.float({ min: -MAX, max: MAX, noNaN: true, noDefaultInfinity: true });
  const near = fc.oneof(finite, below(128), below(126), fc.constantFrom(MAX, -MAX, 2 ** 126));
  fc.assert(
    fc.property(
      unit,
      unit,
      fc.constantFrom(-1, 1),
      fc.constantFrom(1, 2 ** -10),
      (b1, b2, gs, pre) => {
        const c1 = f32(1 - b1), c2 = f32(1 - b2);
        fc.assert(
          fc.property(below(126), below(126), (m, g) => {
            const gi = f32(gs * f32(g * pre));
            const bm = f32(b1 * m), cg = f32(c1 * gi), c = f32(bm + cg);
            const b2m = f32(b2 * m), c2g = f32(c2 * gi), mi = f32(b2m + c2g);
            const all = [gi, bm, cg, c, b2m, c2g, mi];
            assert.ok(small(...all), `${[b1, b2, m, g]} → ${all}`);
          }),
          { numRuns: 20 },
        );
        fc.assert(
          fc.property(near, near, (m, g) => {
            const gi = f32(gs * f32(g * pre));
            const mi = f32(f32(b2 * m) + f32(c2 * gi));
            const hm = f32(f32(b2 * f32(m * 0.5)) + f32(c2 * f32(gi * 0.5)));
            const what = `${[b2, m, g]}: ${mi}, half ${hm}`;
            assert.equal(Math.abs(hm) >= 2 ** 127, !Number.isFinite(mi), what);
            if (Math.abs(hm) >= 2 ** 99) assert.equal(f32(hm * 2), mi, what);
          }),
          { numRuns: 20 },
        );
      },
    ),
    { numRuns: 5000 },
  );
});
