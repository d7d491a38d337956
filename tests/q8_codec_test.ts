// The 8-bit codes of compact states: base/q8.ts against the float64 reference
// (tests/q8_reference.ts) and against the wasm build of assembly/q8.ts, bit for bit.
import assert from "node:assert/strict";
import fc from "fast-check";
import {
  decodeSignedBlocks,
  decodeUnsignedBlocks,
  encodeSignedBlocks,
  encodeUnsignedBlocks,
  LARGEST_SCALE_BITS,
  NAN_SCALE_BITS,
  Q8_BLOCK,
  SIGNED_VALUES,
  UNSIGNED_VALUES,
} from "../base/q8.ts";
import { Q8_WASM_BASE64 } from "./q8_wasm.generated.ts";
import { prng } from "./util.ts";
import {
  F32_MAX,
  refDecodeSigned,
  refDecodeUnsigned,
  refEncodeSigned,
  refEncodeUnsigned,
  refScale,
  SIGNED_MAGNITUDES,
  UNSIGNED_VALUES as REF_UNSIGNED,
} from "./q8_reference.ts";

const B = Q8_BLOCK;
const f32 = Math.fround;

/** The wasm build's exports, over its own memory. */
interface Q8Wasm {
  memory: WebAssembly.Memory;
  heapBase(): number;
  encodeSignedBlocks(x: number, codes: number, scales: number, blocks: number): void;
  encodeUnsignedBlocks(x: number, codes: number, scales: number, blocks: number): void;
  decodeSignedBlocks(codes: number, scales: number, out: number, blocks: number): void;
  decodeUnsignedBlocks(codes: number, scales: number, out: number, blocks: number): void;
}

const wasm = (() => {
  const bytes = Uint8Array.from(atob(Q8_WASM_BASE64), (c) => c.charCodeAt(0));
  const exports = new WebAssembly.Instance(new WebAssembly.Module(bytes), {})
    .exports as unknown as Q8Wasm;
  exports.memory.grow(16);
  return exports;
})();

/** Places of `blocks` blocks in the wasm memory: values, codes, scales, decoded. */
function wasmPlaces(blocks: number) {
  const base = Math.ceil(wasm.heapBase() / 64) * 64;
  const n = blocks * B;
  const buffer = wasm.memory.buffer;
  const at = { x: base, codes: base + 4 * n, scales: base + 5 * n, out: base + 5 * n + 4 * blocks };
  return {
    at,
    x: new Float32Array(buffer, at.x, n),
    signed: new Int8Array(buffer, at.codes, n),
    unsigned: new Uint8Array(buffer, at.codes, n),
    scales: new Float32Array(buffer, at.scales, blocks),
    scaleBits: new Uint32Array(buffer, at.scales, blocks),
    out: new Float32Array(buffer, at.out, n),
  };
}

/**
 * Blocks of every kind the step meets: uniform, spread over many binades (as moments are),
 * sparse, with exact zeros and subnormals, all-zero, all-subnormal, and (when `special`) with a
 * NaN or an infinity, or spread below a largest magnitude above 2^126 (up to FLT_MAX: a wide
 * block), or below an infinity; `signed` draws both signs.
 */
function randomBlocks(blocks: number, seed: number, signed: boolean, special: boolean) {
  const random = prng(seed);
  const x = new Float32Array(blocks * B);
  for (let b = 0; b < blocks; b++) {
    const kind = b % (special ? 10 : 6);
    const huge = random() < 0.25 ? F32_MAX : 2 ** 126 * (1 + random());
    const top = 2 ** (Math.floor(random() * 200) - 100);
    for (let j = 0; j < B; j++) {
      let v: number;
      if (kind === 0) v = random() * top;
      else if (kind === 1) v = top * 2 ** (-40 * random());
      else if (kind === 2) v = random() < 0.9 ? 0 : top * random();
      else if (kind === 3) {
        v = random() < 0.2 ? 2 ** -149 * Math.floor(random() * 2 ** 23) : top * random();
      } else if (kind === 4) v = 0;
      else if (kind === 5) v = 2 ** -149 * Math.floor(random() * 2 ** 23);
      else if (kind === 6) v = j === 17 ? NaN : top * random();
      else if (kind === 7) v = j === 200 ? Infinity : top * random();
      else if (kind === 8) v = j === 99 ? huge : huge * 2 ** (-40 * random());
      else v = j === 45 ? Infinity : huge * 2 ** (-60 * random());
      x[b * B + j] = signed && random() < 0.5 ? -v : v;
    }
  }
  return x;
}

Deno.test("the code values are the grids of the specification, increasing, 1.0 at the top", () => {
  for (let k = 0; k <= 127; k++) {
    assert.equal(SIGNED_VALUES[k], SIGNED_MAGNITUDES[k]);
    assert.equal(SIGNED_VALUES[(-k) & 255], -SIGNED_MAGNITUDES[k] || 0);
  }
  assert.equal(SIGNED_VALUES[127], 1);
  assert.equal(SIGNED_VALUES[1], 1.25 * 2 ** -16);
  for (let k = 0; k < 256; k++) assert.equal(UNSIGNED_VALUES[k], REF_UNSIGNED[k]);
  assert.equal(UNSIGNED_VALUES[0], 1.125 * 2 ** -32);
  assert.equal(UNSIGNED_VALUES[255], 1);
  for (let k = 1; k < 256; k++) assert.ok(UNSIGNED_VALUES[k] > UNSIGNED_VALUES[k - 1]);
  for (let k = 1; k < 128; k++) assert.ok(SIGNED_VALUES[k] > SIGNED_VALUES[k - 1]);
});

Deno.test("decoding is the code's value times the scale, rounded once to f32 (TS and wasm)", () => {
  const blocks = 4;
  const w = wasmPlaces(blocks);
  const scales = new Float32Array([1, 3.1415927, 1.7e-30, 2.9e37]);
  const signed = new Int8Array(blocks * B).map((_, i) => ((i % B) - 128));
  const unsigned = new Uint8Array(blocks * B).map((_, i) => i % B);
  const ts = new Float32Array(blocks * B);
  w.scales.set(scales);
  for (const kind of ["signed", "unsigned"] as const) {
    if (kind === "signed") {
      decodeSignedBlocks(signed, scales, ts, blocks);
      w.signed.set(signed);
      wasm.decodeSignedBlocks(w.at.codes, w.at.scales, w.at.out, blocks);
    } else {
      decodeUnsignedBlocks(unsigned, scales, ts, blocks);
      w.unsigned.set(unsigned);
      wasm.decodeUnsignedBlocks(w.at.codes, w.at.scales, w.at.out, blocks);
    }
    for (let i = 0; i < blocks * B; i++) {
      const s = scales[Math.floor(i / B)];
      const c = signed[i];
      // −128 is never written; it decodes as the magnitude 128 would (1.125), with its sign
      const expected = kind === "unsigned"
        ? f32(refDecodeUnsigned(unsigned[i], s))
        : c === -128
        ? f32(-1.125 * s)
        : f32(refDecodeSigned(c, s));
      assert.equal(ts[i], expected, `${kind} code ${i % B}, scale ${s}`);
      assert.equal(w.out[i], expected, `${kind} code ${i % B}, scale ${s} (wasm)`);
    }
  }
});

/** The reference's code, or one step away where |x| / s is within 2^-20 of their midpoint. */
function assertNearest(
  code: number,
  x: number,
  s: number,
  ref: (x: number, s: number) => number,
  decode: (c: number, s: number) => number,
  where: string,
) {
  const expected = ref(x, s);
  if (code === expected) return;
  assert.equal(Math.abs(code - expected), 1, `${where}: code ${code}, reference ${expected}`);
  const mid = (decode(code, 1) + decode(expected, 1)) / 2;
  const t = x / s;
  assert.ok(
    Math.abs(Math.abs(t) - Math.abs(mid)) <= 2 ** -20 * Math.abs(mid),
    `${where}: code ${code} is not the nearest to ${t} (reference ${expected})`,
  );
}

Deno.test("encoding picks the block's largest magnitude as scale and the nearest code", () => {
  const blocks = 64;
  for (const signed of [true, false]) {
    for (let seed = 1; seed <= 4; seed++) {
      const x = randomBlocks(blocks, seed, signed, true);
      const scales = new Float32Array(blocks);
      const scaleBits = new Uint32Array(scales.buffer);
      const codes = signed ? new Int8Array(blocks * B) : new Uint8Array(blocks * B);
      if (signed) encodeSignedBlocks(x, codes as Int8Array, scales, blocks);
      else encodeUnsignedBlocks(x, codes as Uint8Array, scales, blocks);
      for (let b = 0; b < blocks; b++) {
        const block = x.subarray(b * B, (b + 1) * B);
        const s = refScale(block);
        if (Number.isNaN(s)) assert.equal(scaleBits[b], NAN_SCALE_BITS);
        else assert.equal(scales[b], s);
        for (let j = 0; j < B; j++) {
          const code = codes[b * B + j];
          const where = `${signed ? "signed" : "unsigned"} seed ${seed} block ${b} element ${j}`;
          if (!(s > 0)) assert.equal(code, 0, where);
          else if (signed) {
            assertNearest(code, block[j], s, refEncodeSigned, refDecodeSigned, where);
          } else assertNearest(code, block[j], s, refEncodeUnsigned, refDecodeUnsigned, where);
        }
      }
    }
  }
});

Deno.test("the wasm codes and the TypeScript codes are the same bits", () => {
  const blocks = 96;
  const w = wasmPlaces(blocks);
  for (const signed of [true, false]) {
    for (let seed = 11; seed <= 14; seed++) {
      const x = randomBlocks(blocks, seed, signed, true);
      const scales = new Float32Array(blocks);
      const codes = signed ? new Int8Array(blocks * B) : new Uint8Array(blocks * B);
      const out = new Float32Array(blocks * B);
      w.x.set(x);
      if (signed) {
        encodeSignedBlocks(x, codes as Int8Array, scales, blocks);
        wasm.encodeSignedBlocks(w.at.x, w.at.codes, w.at.scales, blocks);
        decodeSignedBlocks(codes as Int8Array, scales, out, blocks);
        wasm.decodeSignedBlocks(w.at.codes, w.at.scales, w.at.out, blocks);
      } else {
        encodeUnsignedBlocks(x, codes as Uint8Array, scales, blocks);
        wasm.encodeUnsignedBlocks(w.at.x, w.at.codes, w.at.scales, blocks);
        decodeUnsignedBlocks(codes as Uint8Array, scales, out, blocks);
        wasm.decodeUnsignedBlocks(w.at.codes, w.at.scales, w.at.out, blocks);
      }
      assert.deepEqual(w.scaleBits, new Uint32Array(scales.buffer));
      assert.deepEqual(signed ? w.signed : w.unsigned, codes);
      for (let i = 0; i < blocks * B; i++) {
        if (Number.isNaN(out[i])) assert.ok(Number.isNaN(w.out[i]));
        else assert.ok(Object.is(w.out[i], out[i]), `decoded ${i}: ${w.out[i]} vs ${out[i]}`);
      }
    }
  }
});

Deno.test("codes survive a round trip, and decoding is within half a code step", () => {
  // Exact where every decoded value is a normal f32 (scale ≥ 2^-94: the smallest unsigned code
  // is 2^-32 · 1.125 of it); below, decoded values are subnormals, rounded to fewer bits.
  fc.assert(
    fc.property(
      fc.array(fc.integer({ min: -127, max: 127 }), { minLength: B, maxLength: B }),
      fc.array(fc.integer({ min: 0, max: 255 }), { minLength: B, maxLength: B }),
      fc.integer({ min: -94, max: 127 }),
      fc.integer({ min: 0, max: B - 1 }),
      (signedCodes, unsignedCodes, exponent, topAt) => {
        const s = new Float32Array([2 ** exponent * 1.37]);
        const signed = Int8Array.from(signedCodes);
        const unsigned = Uint8Array.from(unsignedCodes);
        signed[topAt] = 127; // the block's largest magnitude is the scale itself
        unsigned[topAt] = 255;
        const x = new Float32Array(B), scale = new Float32Array(1);
        const signedBack = new Int8Array(B), unsignedBack = new Uint8Array(B);
        decodeSignedBlocks(signed, s, x, 1);
        encodeSignedBlocks(x, signedBack, scale, 1);
        assert.deepEqual(signedBack, signed);
        assert.equal(scale[0], s[0]);
        decodeUnsignedBlocks(unsigned, s, x, 1);
        encodeUnsignedBlocks(x, unsignedBack, scale, 1);
        assert.deepEqual(unsignedBack, unsigned);
        assert.equal(scale[0], s[0]);
      },
    ),
  );
  // Values from the smallest code's value up to the scale come back within half a step: 1/16 of
  // their magnitude (3 mantissa bits).
  const x = randomBlocks(48, 5, true, false);
  const codes = new Int8Array(x.length), ucodes = new Uint8Array(x.length);
  const scales = new Float32Array(48), uscales = new Float32Array(48);
  const back = new Float32Array(x.length), uback = new Float32Array(x.length);
  const ux = x.map(Math.abs);
  encodeSignedBlocks(x, codes, scales, 48);
  decodeSignedBlocks(codes, scales, back, 48);
  encodeUnsignedBlocks(ux, ucodes, uscales, 48);
  decodeUnsignedBlocks(ucodes, uscales, uback, 48);
  for (let i = 0; i < x.length; i++) {
    const s = scales[Math.floor(i / B)], us = uscales[Math.floor(i / B)];
    if (s > 0 && Math.abs(x[i]) >= SIGNED_VALUES[1] * s) {
      assert.ok(Math.abs(back[i] - x[i]) <= Math.abs(x[i]) / 16 * (1 + 2 ** -20), `signed ${i}`);
    }
    if (us > 0 && ux[i] >= UNSIGNED_VALUES[0] * us) {
      assert.ok(Math.abs(uback[i] - ux[i]) <= ux[i] / 16 * (1 + 2 ** -20), `unsigned ${i}`);
    }
  }
});

Deno.test("a non-zero second moment never decodes to 0; a signed code keeps its sign", () => {
  const blocks = 48;
  const x = randomBlocks(blocks, 21, false, false);
  const codes = new Uint8Array(x.length);
  const scales = new Float32Array(blocks);
  const back = new Float32Array(x.length);
  encodeUnsignedBlocks(x, codes, scales, blocks);
  decodeUnsignedBlocks(codes, scales, back, blocks);
  for (let i = 0; i < x.length; i++) {
    const s = scales[Math.floor(i / B)];
    if (s > 0) assert.ok(back[i] > 0, `element ${i}`);
    else assert.equal(back[i], 0);
  }
  const y = randomBlocks(blocks, 22, true, false);
  const signed = new Int8Array(y.length);
  encodeSignedBlocks(y, signed, scales, blocks);
  decodeSignedBlocks(signed, scales, back, blocks);
  for (let i = 0; i < y.length; i++) {
    assert.ok(back[i] === 0 || Math.sign(back[i]) === Math.sign(y[i]), `element ${i}`);
    assert.notEqual(signed[i], -128);
  }
});

Deno.test("encoding is monotone: larger values never get smaller codes", () => {
  fc.assert(
    fc.property(
      fc.array(fc.float({ noNaN: true, noDefaultInfinity: true }), { minLength: B, maxLength: B }),
      (values) => {
        const x = Float32Array.from(values).sort();
        const codes = new Int8Array(B), ucodes = new Uint8Array(B);
        const scale = new Float32Array(1);
        encodeSignedBlocks(x, codes, scale, 1);
        for (let j = 1; j < B; j++) assert.ok(codes[j] >= codes[j - 1]);
        const ux = x.map(Math.abs).sort();
        encodeUnsignedBlocks(ux, ucodes, scale, 1);
        for (let j = 1; j < B; j++) assert.ok(ucodes[j] >= ucodes[j - 1]);
      },
    ),
  );
});

Deno.test("special blocks: zeros, subnormals, NaN and infinities", () => {
  const blocks = 5;
  const x = new Float32Array(blocks * B);
  x.fill(2 ** -140, B, 2 * B); // subnormal: scale 2^-126, the smallest normal; 2^-14 of it
  x.fill(0.5, 2 * B, 3 * B);
  x[2 * B + 7] = NaN; // NaN: scale NaN, codes 0
  x.fill(-0.25, 3 * B, 4 * B);
  x[3 * B + 9] = -Infinity; // an infinity: scale FLT_MAX, the infinity the top code (signed)
  x.fill(1, 4 * B, 5 * B);
  x[4 * B + 3] = 2 ** -140; // a subnormal beside normal values: the smallest code
  const w = wasmPlaces(blocks);
  w.x.set(x);
  for (const signed of [true, false]) {
    const scales = new Float32Array(blocks);
    const scaleBits = new Uint32Array(scales.buffer);
    const codes = signed ? new Int8Array(blocks * B) : new Uint8Array(blocks * B);
    const out = new Float32Array(blocks * B);
    if (signed) {
      encodeSignedBlocks(x, codes as Int8Array, scales, blocks);
      decodeSignedBlocks(codes as Int8Array, scales, out, blocks);
      wasm.encodeSignedBlocks(w.at.x, w.at.codes, w.at.scales, blocks);
    } else {
      encodeUnsignedBlocks(x, codes as Uint8Array, scales, blocks);
      decodeUnsignedBlocks(codes as Uint8Array, scales, out, blocks);
      wasm.encodeUnsignedBlocks(w.at.x, w.at.codes, w.at.scales, blocks);
    }
    assert.deepEqual([...scaleBits], [
      0,
      0x00800000,
      NAN_SCALE_BITS,
      LARGEST_SCALE_BITS,
      0x3f800000,
    ]);
    assert.deepEqual([...w.scaleBits], [...scaleBits]);
    assert.deepEqual(signed ? w.signed : w.unsigned, codes);
    assert.ok(codes.subarray(0, B).every((c) => c === 0));
    assert.ok(codes.subarray(2 * B, 3 * B).every((c) => c === 0));
    assert.ok(out.subarray(0, B).every((v) => v === 0));
    // a block of subnormals decodes to its values (2^-14 is a code of either map), not to 0
    assert.ok(out.subarray(B, 2 * B).every((v) => v === 2 ** -140));
    assert.ok(out.subarray(2 * B, 3 * B).every(Number.isNaN));
    // −Infinity: −FLT_MAX (signed); −0.25 flushes to 0 beside it; negative: unsigned code 0
    assert.equal(out[3 * B + 9], signed ? -F32_MAX : f32(1.125 * 2 ** -32 * F32_MAX));
    assert.ok(out.subarray(3 * B, 4 * B).every(Number.isFinite));
    // signed: the subnormal beside 1.0 flushes to 0; unsigned: the smallest code, not 0
    assert.equal(out[4 * B + 3], signed ? 0 : 1.125 * 2 ** -32);
    assert.equal(out[4 * B], 1);
  }
});

Deno.test("a negative value, −0 and the smallest included, gets unsigned code 0 (TS and wasm, as the reference)", () => {
  const blocks = 3;
  const x = new Float32Array(blocks * B);
  for (let i = 0; i < x.length; i++) x[i] = 1 + (i % 7) / 8;
  x[B + 100] = 2 ** -40; // block 1 of tiny values: the smallest code, beside the negatives
  x.fill(2 ** -60, 2 * B, 3 * B); // block 2: a scale far below 1, y of a tiny x underflows
  const negatives = [
    [0, -0],
    [1, -(2 ** -149)],
    [2, -1e-30],
    [3, -0.5],
    [B + 5, -0],
    [B + 6, -(2 ** -140)],
    [2 * B + 9, -0],
    [2 * B + 10, -(2 ** -149)],
  ];
  for (const [i, v] of negatives) x[i] = v;
  const codes = new Uint8Array(blocks * B);
  const scales = new Float32Array(blocks);
  encodeUnsignedBlocks(x, codes, scales, blocks);
  const w = wasmPlaces(blocks);
  w.x.set(x);
  wasm.encodeUnsignedBlocks(w.at.x, w.at.codes, w.at.scales, blocks);
  assert.deepEqual(w.unsigned, codes);
  assert.deepEqual(w.scales, scales);
  for (const [i] of negatives) assert.equal(codes[i], 0, `element ${i}`);
  for (let i = 0; i < x.length; i++) {
    assert.equal(codes[i], refEncodeUnsigned(x[i], scales[i >> 8]), `element ${i}`);
  }
});

/** A block's codes decoded to f32 and encoded again (8 → 32 → 8): its codes, scale and values. */
function throughF32(codes: Int8Array | Uint8Array, scale: number) {
  const signed = codes instanceof Int8Array;
  const s = new Float32Array([scale]), x = new Float32Array(B), back = new Float32Array(1);
  const again = signed ? new Int8Array(B) : new Uint8Array(B), y = new Float32Array(B);
  if (signed) {
    decodeSignedBlocks(codes, s, x, 1);
    encodeSignedBlocks(x, again as Int8Array, back, 1);
    decodeSignedBlocks(again as Int8Array, back, y, 1);
  } else {
    decodeUnsignedBlocks(codes, s, x, 1);
    encodeUnsignedBlocks(x, again as Uint8Array, back, 1);
    decodeUnsignedBlocks(again as Uint8Array, back, y, 1);
  }
  return { codes: again, scale: back[0], values: x, valuesAgain: y };
}

Deno.test("8 → 32 → 8: a block's codes and scale come back, but for the two kinds the SPEC names; its values always", () => {
  const scaleOf = (exponent: number, mantissa: number) =>
    new Float32Array(new Uint32Array([((exponent + 127) << 23) | mantissa]).buffer)[0];
  fc.assert(
    fc.property(
      fc.array(fc.integer({ min: -127, max: 127 }), { minLength: B, maxLength: B }),
      fc.array(fc.integer({ min: 0, max: 255 }), { minLength: B, maxLength: B }),
      fc.integer({ min: -126, max: 127 }),
      fc.integer({ min: 0, max: 0x7fffff }),
      fc.integer({ min: 0, max: B - 1 }),
      (signedCodes, unsignedCodes, exponent, mantissa, topAt) => {
        const scale = scaleOf(exponent, mantissa);
        const signed = Int8Array.from(signedCodes);
        const unsigned = Uint8Array.from(unsignedCodes);
        signed[topAt] = -127; // as encoded: the block's largest value holds the top code
        unsigned[topAt] = 255;
        const a = throughF32(signed, scale), b = throughF32(unsigned, scale);
        assert.deepEqual(bitsOf(a.valuesAgain), bitsOf(a.values));
        assert.deepEqual(bitsOf(b.valuesAgain), bitsOf(b.values));
        // First moments: every scale; second moments: from 2⁻¹¹³.
        assert.deepEqual([a.codes, a.scale], [signed, scale]);
        if (exponent >= -113) assert.deepEqual([b.codes, b.scale], [unsigned, scale]);
      },
    ),
    { numRuns: 2000 },
  );
  // First moments whose largest magnitude is below 2⁻¹⁴² · 1.1875: scale 2⁻¹²⁶, every code 0;
  // back, the scale of zeros.
  const tiny = new Float32Array(B).fill(2 ** -149);
  tiny[7] = -(2 ** -142) * 1.125;
  const codes = new Int8Array(B), scales = new Float32Array(1);
  encodeSignedBlocks(tiny, codes, scales, 1);
  assert.deepEqual([codes, scales[0]], [new Int8Array(B), 2 ** -126]);
  const zeros = throughF32(codes, scales[0]);
  assert.deepEqual([zeros.codes, zeros.scale], [new Int8Array(B), 0]);
  assert.deepEqual(bitsOf(zeros.valuesAgain), bitsOf(zeros.values));
  // Second moments under 2⁻¹¹⁸: code 0 (a zero, encoded) is 2⁻¹⁴⁹ in f32, as code 7 (2⁻³¹) is; back,
  // code 7.
  const v = new Float32Array(B);
  v[0] = 2 ** -118;
  const ucodes = new Uint8Array(B), uscales = new Float32Array(1);
  encodeUnsignedBlocks(v, ucodes, uscales, 1);
  assert.deepEqual([ucodes[0], ucodes[1], uscales[0]], [255, 0, 2 ** -118]);
  const shared = throughF32(ucodes, uscales[0]);
  assert.deepEqual([shared.codes[0], shared.codes[1], shared.scale], [255, 7, 2 ** -118]);
  assert.deepEqual([shared.values[1], shared.valuesAgain[1]], [2 ** -149, 2 ** -149]);
});

/** The bits of f32 values. */
function bitsOf(x: Float32Array): Uint32Array {
  return new Uint32Array(x.buffer, x.byteOffset, x.length);
}
