import assert from "node:assert/strict";
import { type StandaloneExports, standaloneInstance } from "./_asc.ts";

// The bench's bounds with moments as bytes (assembly/bounds.ts) must do the whole of the work
// they stand for, or the bound would be too high: every element's bytes moved into its lane,
// stepped, and moved back. Checked against float64 arithmetic of the same steps, where a code is
// the top byte of an f32 (decoded: that byte, then 24 zero bits; encoded: the top byte of the
// new f32 value).

const N = 48;
const f32 = Math.fround;
const bits = new Uint32Array(1), value = new Float32Array(bits.buffer);

/** The f32 whose top byte is `code`. */
function decode(code: number): number {
  bits[0] = (code & 255) << 24;
  return value[0];
}

/** The top byte of `x` as an f32. */
function encode(x: number): number {
  value[0] = x;
  return bits[0] >>> 24;
}

/** The two kernels' exports (assembly/bounds.ts, as bench/compare/bounds.ts compiles it). */
interface Kernels extends StandaloneExports {
  lionBytes(...args: number[]): void;
  radamBytes(...args: number[]): void;
  lionScaled(...args: number[]): void;
  radamScaled(...args: number[]): void;
}

/**
 * Buffers of `n` parameters, gradients, two code sections and two pairs of scales (the codes'
 * and the next), filled from `seed`; with their addresses.
 */
async function setUp(seed: number, n: number) {
  const { exports: k, at } = await standaloneInstance<Kernels>("bounds.ts", 16 * n);
  const to = { p: at, g: at + 4 * n, m: at + 8 * n, v: at + 9 * n, s: at + 10 * n };
  const p = new Float32Array(k.memory.buffer, to.p, n);
  const g = new Float32Array(k.memory.buffer, to.g, n);
  const m = new Uint8Array(k.memory.buffer, to.m, n);
  const v = new Uint8Array(k.memory.buffer, to.v, n);
  const s = new Float32Array(k.memory.buffer, to.s, 4);
  for (let i = 0; i < n; i++) {
    p[i] = f32(0.5 + ((i * seed) % 7) / 8);
    g[i] = f32((((i * 5 + seed) % 11) - 5) / 8);
    // signed moments of 2^-10 to 2^4 (codes 0x3a–0x41, 0xba–0xc1); v of 2^-10 to 2^4, ≥ 0
    m[i] = 0x3a + ((i * 13 + seed) % 8) + (i % 3 === 0 ? 0x80 : 0);
    v[i] = 0x3a + ((i * 29 + seed) % 8);
  }
  s.set([0.75, 1.5, 1.25, 0.625]);
  return { k, to, p, g, m, v, s };
}

Deno.test("bench bound: Lion with byte moments steps and moves every element", async () => {
  const { k, to, p, g, m } = await setUp(3, N);
  const [p0, g0, m0] = [Array.from(p), Array.from(g), Array.from(m)];
  const ss = 1 / 16;
  k.lionBytes(to.p, to.g, to.m, N, 0.5, 0.75, ss);
  for (let i = 0; i < N; i++) {
    const mv = decode(m0[i]);
    const c = 0.5 * mv + 0.5 * g0[i];
    assert.equal(p[i], f32(p0[i] - ss * Math.sign(c)), `p[${i}]`);
    assert.equal(m[i], encode(0.75 * mv + 0.25 * g0[i]), `m[${i}]`);
  }
});

Deno.test("bench bound: RAdam with byte moments steps and moves every element", async () => {
  const { k, to, p, g, m, v } = await setUp(5, N);
  const [p0, g0, m0, v0] = [Array.from(p), Array.from(g), Array.from(m), Array.from(v)];
  const ss = 1 / 32;
  k.radamBytes(to.p, to.g, to.m, to.v, N, 0.5, 0.75, ss, 1 / 1024);
  for (let i = 0; i < N; i++) {
    const mNew = 0.5 * decode(m0[i]) + 0.5 * g0[i];
    const vNew = 0.75 * decode(v0[i]) + 0.25 * g0[i] * g0[i];
    const step = ss * (mNew / (Math.sqrt(vNew) + 1 / 1024));
    assert.ok(Math.abs(p[i] - (p0[i] - step)) <= 1e-6 * (1 + Math.abs(step)), `p[${i}]`);
    assert.equal(m[i], encode(mNew), `m[${i}]`);
    assert.equal(v[i], encode(vNew), `v[${i}]`);
  }
});

// The scaled forms (a block of 256 elements, two f32 scales a block and moment: the one its
// codes are in, and the next one): decoded in the first, the new moment encoded in the second,
// both folded into the step's constants (each constant rounded to f32 as the kernel does); the
// next scale = the second × the largest magnitude of the new codes' values.

const B = 256;

/** The largest magnitude of `values`. */
const largest = (values: number[]) => Math.max(...values.map(Math.abs));

Deno.test("bench bound: Lion with scaled byte moments decodes, steps, encodes, rescales", async () => {
  const { k, to, p, g, m, s } = await setUp(3, B);
  const [p0, g0, m0, [sc, sn]] = [Array.from(p), Array.from(g), Array.from(m), Array.from(s)];
  const ss = 1 / 16;
  k.lionScaled(to.p, to.g, to.m, to.s, B, 0.5, 0.75, ss);
  const [b1, b2, c2] = [f32(0.5 * sc), f32(f32(0.75 * sc) / sn), f32(0.25 / sn)];
  const next: number[] = [];
  for (let i = 0; i < B; i++) {
    const q = decode(m0[i]);
    const c = f32(f32(b1 * q) + f32(0.5 * g0[i]));
    assert.equal(p[i], f32(p0[i] - ss * Math.sign(c)), `p[${i}]`);
    next.push(f32(f32(b2 * q) + f32(c2 * g0[i])));
    assert.equal(m[i], encode(next[i]), `m[${i}]`);
  }
  assert.deepEqual(Array.from(s.subarray(0, 2)), [sn, f32(sn * largest(next))]);
});

Deno.test("bench bound: RAdam with scaled byte moments decodes, steps, encodes, rescales", async () => {
  const { k, to, p, g, m, v, s } = await setUp(5, B);
  const [p0, g0, m0, v0] = [Array.from(p), Array.from(g), Array.from(m), Array.from(v)];
  const [mc, mn, vc, vn] = Array.from(s);
  const ss = 1 / 32, eps = 1 / 1024;
  k.radamScaled(to.p, to.g, to.m, to.v, to.s, to.s + 8, B, 0.5, 0.75, ss, eps);
  const [b1, c1] = [f32(f32(0.5 * mc) / mn), f32(0.5 / mn)];
  const [b2, c2] = [f32(f32(0.75 * vc) / vn), f32(0.25 / vn)];
  const ms: number[] = [], vs: number[] = [];
  for (let i = 0; i < B; i++) {
    ms.push(f32(f32(b1 * decode(m0[i])) + f32(c1 * g0[i])));
    vs.push(f32(f32(b2 * decode(v0[i])) + f32(c2 * f32(g0[i] * g0[i]))));
    // the update in the moments' own values: m = m' × mn, v = v' × vn
    const step = ss * (ms[i] * mn / (Math.sqrt(vs[i] * vn) + eps));
    assert.ok(Math.abs(p[i] - (p0[i] - step)) <= 1e-6 * (1 + Math.abs(step)), `p[${i}]`);
    assert.equal(m[i], encode(ms[i]), `m[${i}]`);
    assert.equal(v[i], encode(vs[i]), `v[${i}]`);
  }
  assert.deepEqual(Array.from(s), [mn, f32(mn * largest(ms)), vn, f32(vn * largest(vs))]);
});
