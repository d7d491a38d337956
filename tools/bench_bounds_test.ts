import assert from "node:assert/strict";
import { instance } from "../bench/compare/bounds.ts";

// The bounds of the cheapest 8-bit code (assembly/bounds.ts) must do the whole of the work they
// stand for, or the bench's bound would be too high: every element decoded, stepped and encoded.
// Checked against float64 arithmetic of the same linear code (a byte × one scale, rounded to
// nearest with ties to even, saturated); the values are dyadic, so that f32 and f64 agree and
// ties occur.

const N = 48;
const f32 = Math.fround;

/** The code of `x / scale`, rounded to nearest (ties to even) and saturated to [lo, hi]. */
function code(x: number, scale: number, lo: number, hi: number): number {
  const y = x / scale, r = Math.round(y);
  const even = r - y === 0.5 && r % 2 !== 0 ? r - 1 : r;
  return Math.min(hi, Math.max(lo, even));
}

/** Buffers of `N` parameters, gradients and two code sections, filled from `seed`. */
async function setUp(seed: number) {
  const { k, at } = await instance(4096 * 4);
  const p = new Float32Array(k.memory.buffer, at, N);
  const g = new Float32Array(k.memory.buffer, at + 1024, N);
  const m = new Int8Array(k.memory.buffer, at + 2048, N);
  const v = new Uint8Array(k.memory.buffer, at + 3072, N);
  for (let i = 0; i < N; i++) {
    p[i] = f32(0.5 + ((i * seed) % 7) / 8);
    g[i] = f32((((i * 5 + seed) % 11) - 5) / 8);
    m[i] = ((i * 13 + seed) % 201) - 100;
    v[i] = (i * 29 + seed) % 250;
  }
  return { k, at, p, g, m, v };
}

Deno.test("bench bound: Lion with the cheapest 8-bit code steps and encodes every element", async () => {
  const { k, at, p, g, m } = await setUp(3);
  const [p0, g0, m0] = [Array.from(p), Array.from(g), Array.from(m)];
  const scale = 1 / 64, ss = 1 / 16;
  k.lionLinear8(at, at + 1024, at + 2048, N, 0.5, 0.75, ss, scale);
  for (let i = 0; i < N; i++) {
    const mv = m0[i] * scale;
    const c = 0.5 * mv + 0.5 * g0[i];
    assert.equal(p[i], f32(p0[i] - ss * Math.sign(c)), `p[${i}]`);
    assert.equal(m[i], code(0.75 * mv + 0.25 * g0[i], scale, -128, 127), `m[${i}]`);
  }
});

Deno.test("bench bound: RAdam with the cheapest 8-bit code steps and encodes every element", async () => {
  const { k, at, p, g, m, v } = await setUp(5);
  const [p0, g0, m0, v0] = [Array.from(p), Array.from(g), Array.from(m), Array.from(v)];
  const scale = 1 / 128, ss = 1 / 32;
  k.radamLinear8(at, at + 1024, at + 2048, at + 3072, N, 0.5, 0.75, ss, 1 / 1024, scale);
  for (let i = 0; i < N; i++) {
    const mNew = 0.5 * m0[i] * scale + 0.5 * g0[i];
    const vNew = 0.75 * v0[i] * scale + 0.25 * g0[i] * g0[i];
    const step = ss * (mNew / (Math.sqrt(vNew) + 1 / 1024));
    assert.ok(Math.abs(p[i] - (p0[i] - step)) <= 1e-6 * (1 + Math.abs(step)), `p[${i}]`);
    assert.equal(m[i], code(mNew, scale, -128, 127), `m[${i}]`);
    assert.equal(v[i], code(vNew, scale, 0, 255), `v[${i}]`);
  }
});
