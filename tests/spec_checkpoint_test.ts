/**
 * docs/SPEC.md's "Checkpoint file" and "Compact states" sections are enough to read and write a
 * checkpoint: the reader, writer, decoder and encoder below are written from the SPEC's words
 * alone (nothing of base/ or core/ is imported), and must agree with `saveState`, `loadState`,
 * `readParams`, `readMoments` and `readSlowWeights` bit for bit.
 */
import assert from "node:assert/strict";
import {
  loadState,
  ranger,
  readMoments,
  readParams,
  readSlowWeights,
  saveState,
  step,
} from "../mod.ts";

type Data = Float32Array | Int8Array | Uint8Array;
interface Tensor {
  dtype: "F32" | "I8" | "U8";
  shape: number[];
  data: Data;
}

const BYTES = { F32: 4, I8: 1, U8: 1 } as const;

/** "Checkpoint file": the header length, the JSON header, then each tensor at its offsets. */
function readFile(
  bytes: Uint8Array,
): { meta: Record<string, string>; tensors: Map<string, Tensor> } {
  const n = Number(new DataView(bytes.buffer, bytes.byteOffset).getBigUint64(0, true));
  const header = JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + n)));
  const data = bytes.slice(8 + n);
  const tensors = new Map<string, Tensor>();
  let covered = 0;
  for (const [name, entry] of Object.entries(header)) {
    if (name === "__metadata__") continue;
    const { dtype, shape, data_offsets: [begin, end] } = entry as {
      dtype: Tensor["dtype"];
      shape: number[];
      data_offsets: [number, number];
    };
    assert.equal(end - begin, shape.reduce((a, d) => a * d, 1) * BYTES[dtype], name);
    const raw = data.slice(begin, end).buffer;
    const view = dtype === "F32"
      ? new Float32Array(raw)
      : dtype === "I8"
      ? new Int8Array(raw)
      : new Uint8Array(raw);
    tensors.set(name, { dtype, shape, data: view });
    covered += end - begin;
  }
  assert.equal(covered, data.length, "the tensors tile the data");
  return { meta: header.__metadata__, tensors };
}

/** "Checkpoint file", written: the header padded with spaces to a multiple of 8 bytes. */
function writeFile(tensors: [string, Tensor][], meta: Record<string, string>): Uint8Array {
  const header: Record<string, unknown> = { __metadata__: meta };
  let offset = 0;
  for (const [name, t] of tensors) {
    header[name] = {
      dtype: t.dtype,
      shape: t.shape,
      data_offsets: [offset, offset + t.data.byteLength],
    };
    offset += t.data.byteLength;
  }
  const json = new TextEncoder().encode(JSON.stringify(header));
  const n = Math.ceil(json.length / 8) * 8;
  const out = new Uint8Array(8 + n + offset).fill(0x20, 8, 8 + n);
  new DataView(out.buffer).setBigUint64(0, BigInt(n), true);
  out.set(json, 8);
  let at = 8 + n;
  for (const [, t] of tensors) {
    out.set(new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength), at);
    at += t.data.byteLength;
  }
  return out;
}

const F = new Float32Array(1);
const B = new Int32Array(F.buffer);
/** `F(bits)`: the f32 with those bits. */
const fromBits = (bits: number) => (B[0] = bits, F[0]);
const bitsOf = (x: number) => (F[0] = x, B[0]);
const f32 = Math.fround;

/** "The codes": the value of a code, before the scale. */
const signedValue = (c: number) =>
  c === 0 ? 0 : Math.sign(c) * fromBits((Math.abs(c) << 20) + 0x37900000);
const unsignedValue = (k: number) => fromBits((k << 20) + 0x2f900000);

/** A moment of `n` elements decoded from its codes and scales, block by block. */
function decode(codes: Int8Array | Uint8Array, scales: Float32Array): Float32Array {
  const value = codes instanceof Int8Array ? signedValue : unsignedValue;
  return Float32Array.from(codes, (c, i) => f32(value(c) * scales[Math.floor(i / 256)]));
}

/** "Encoding a block", steps 1 to 3, for blocks of finite values (a checkpoint's). */
function encode(
  x: Float32Array,
  signed: boolean,
): { codes: Int8Array | Uint8Array; scales: Float32Array } {
  const blocks = Math.ceil(x.length / 256);
  const padded = new Float32Array(blocks * 256);
  padded.set(x);
  const codes = signed ? new Int8Array(x.length) : new Uint8Array(x.length);
  const scales = new Float32Array(blocks);
  for (let b = 0; b < blocks; b++) {
    const block = padded.subarray(b * 256, b * 256 + 256);
    let top = 0;
    for (const v of block) top = Math.max(top, bitsOf(v) & 0x7fffffff);
    if (top === 0) continue; // scale 0, codes 0
    const s = fromBits(Math.min(Math.max(top, 0x00800000), 0x7f7fffff));
    scales[b] = s;
    const wide = top > 0x7e800000;
    const r = wide ? f32(1 / f32(s * 2 ** -2)) : f32(1 / s);
    for (let j = 0; j < 256 && b * 256 + j < x.length; j++) {
      const y = wide ? f32(f32(block[j] * 2 ** -2) * r) : f32(block[j] * r);
      const k = signed
        ? ((bitsOf(y) & 0x7fffffff) - 0x37880000) >> 20
        : ((bitsOf(y) < 0 ? 0 : bitsOf(y)) - 0x2f880000) >> 20;
      const clamped = Math.min(signed ? 127 : 255, Math.max(0, k));
      codes[b * 256 + j] = signed && bitsOf(y) < 0 ? -clamped : clamped;
    }
  }
  return { codes, scales };
}

/** Random f32 values of magnitudes across `decades` decades below 1, signed or not. */
function values(n: number, seed: number, signed: boolean, decades = 12): Float32Array {
  let s = seed;
  const rand = () => (s = (s * 1103515245 + 12345) % 2147483648) / 2147483648;
  return Float32Array.from({ length: n }, () => {
    const v = 10 ** (-decades * rand());
    return signed && rand() < 0.5 ? -v : v;
  });
}

Deno.test("SPEC: an 8-bit Ranger checkpoint read from the SPEC's words alone gives the state's params, moments and slow weights", async () => {
  const grads = { head: values(10, 1, true), body: values(5000, 2, true) };
  let state = await ranger({ states: "8bit" }).init({
    body: values(5000, 3, true),
    head: { data: values(10, 4, true), shape: [2, 5] },
  });
  for (let t = 0; t < 3; t++) state = step(state, grads);
  const { meta, tensors } = readFile(await saveState(state));
  assert.equal(meta.format, "radam.checkpoint");
  assert.equal(meta.format_version, "1");
  assert.equal(meta.optimizer, "ranger");
  assert.equal(meta.step, "3");
  assert.equal(meta.states, "8bit");
  assert.equal(meta.q8, "b256-i8e4m3-u8e5m3-v1");
  assert.deepEqual(JSON.parse(meta.hyperparameters).lookahead, { k: 6, alpha: 0.5 });
  // In the order given to init; the arena's (the tensor with f32 moments first) derives from it.
  assert.deepEqual(JSON.parse(meta.tensor_order), ["body", "head"]);
  assert.deepEqual(state.names, ["head", "body"]);
  const params = await readParams(state);
  const moments = await readMoments(state);
  const slow = await readSlowWeights(state);
  assert.deepEqual(tensors.get("head")!.shape, [2, 5]);
  for (const name of ["head", "body"]) {
    assert.deepEqual(tensors.get(name)!.data, params[name]);
    assert.deepEqual(tensors.get(`${name}.slow`)!.data, slow[name]);
  }
  assert.deepEqual(tensors.get("head.exp_avg")!.data, moments.exp_avg.head);
  assert.deepEqual(tensors.get("head.exp_avg_sq")!.data, moments.exp_avg_sq.head);
  for (const [moment, dtype] of [["exp_avg", "I8"], ["exp_avg_sq", "U8"]]) {
    const codes = tensors.get(`body.${moment}.codes`)!;
    const scales = tensors.get(`body.${moment}.scales`)!;
    assert.equal(codes.dtype, dtype);
    assert.deepEqual(codes.shape, [5000]);
    assert.deepEqual(scales.shape, [Math.ceil(5000 / 256)]);
    assert.equal(tensors.has(`body.${moment}`), false);
    const decoded = decode(codes.data as Int8Array | Uint8Array, scales.data as Float32Array);
    assert.deepEqual(decoded, moments[moment].body, moment);
  }
});

/** Adam's moments for a tensor of 4100 elements (17 blocks), with the blocks the SPEC singles out. */
function hardMoments(): { m: Float32Array; v: Float32Array } {
  const m = values(4100, 5, true);
  const v = values(4100, 6, false);
  m.fill(0, 256, 512); // a block of zeros: scale 0, codes 0
  v.fill(0, 256, 512);
  for (let i = 512; i < 768; i++) m[i] = v[i] = 1e-40 * (1 + i % 7); // subnormal top: scale 2⁻¹²⁶
  for (let i = 768; i < 1024; i++) m[i] = v[i] = 3e38 / (1 + i % 5); // above 2¹²⁶: encoded wide
  for (let i = 1024; i < 1280; i += 3) v[i] = -0; // a second moment of −0: code 0
  return { m, v };
}

Deno.test("SPEC: an Adam checkpoint written from the SPEC's words loads, and its 8-bit codes are the SPEC's encoding", async () => {
  const w = values(6, 7, true);
  const b = values(4100, 8, true);
  const wm = values(6, 9, true);
  const wv = values(6, 10, false);
  const { m, v } = hardMoments();
  const f = (shape: number[], data: Float32Array): Tensor => ({ dtype: "F32", shape, data });
  const hyperparameters = {
    lr: 1e-3,
    betas: [0.9, 0.999],
    eps: 1e-8,
    weightDecay: 0,
    decoupledWeightDecay: false,
    maximize: false,
  }; // the required keys only: gc is taken as Adam's default
  const meta = {
    format: "radam.checkpoint",
    format_version: "1",
    optimizer: "adam",
    hyperparameters: JSON.stringify(hyperparameters),
    lr_schedule: "false",
    step: "7",
    skipped_steps: "1",
    tensor_order: JSON.stringify(["w", "b"]),
  };
  const file = writeFile([
    ["b.exp_avg_sq", f([4100], v)],
    ["w", f([3, 2], w)],
    ["b", f([4100], b)],
    ["w.exp_avg", f([3, 2], wm)],
    ["b.exp_avg", f([4100], m)],
    ["w.exp_avg_sq", f([3, 2], wv)],
  ], meta);
  const state = await loadState(file);
  assert.equal(state.step, 7);
  assert.equal(state.skippedSteps, 1);
  assert.deepEqual(await readParams(state), { w, b });
  assert.deepEqual(await readMoments(state), {
    exp_avg: { w: wm, b: m },
    exp_avg_sq: { w: wv, b: v },
  });

  // Loaded in 8 bits, b's moments are encoded: to exactly the codes and scales of the SPEC's steps.
  const compact = readFile(await saveState(await loadState(file, { states: "8bit" })));
  assert.deepEqual(JSON.parse(compact.meta.tensor_order), ["w", "b"]);
  const em = encode(m, true);
  const ev = encode(v, false);
  assert.deepEqual(compact.tensors.get("b.exp_avg.codes")!.data, em.codes);
  assert.deepEqual(compact.tensors.get("b.exp_avg.scales")!.data, em.scales);
  assert.deepEqual(compact.tensors.get("b.exp_avg_sq.codes")!.data, ev.codes);
  assert.deepEqual(compact.tensors.get("b.exp_avg_sq.scales")!.data, ev.scales);

  // And an 8-bit file written by hand (its tensor_order in another order) loads to the SPEC's values.
  const hand = writeFile([
    ["w", f([3, 2], w)],
    ["w.exp_avg", f([3, 2], wm)],
    ["w.exp_avg_sq", f([3, 2], wv)],
    ["b", f([4100], b)],
    ["b.exp_avg.scales", f([17], em.scales)],
    ["b.exp_avg_sq.scales", f([17], ev.scales)],
    ["b.exp_avg.codes", { dtype: "I8", shape: [4100], data: em.codes }],
    ["b.exp_avg_sq.codes", { dtype: "U8", shape: [4100], data: ev.codes }],
  ], {
    ...meta,
    tensor_order: JSON.stringify(["b", "w"]),
    states: "8bit",
    q8: "b256-i8e4m3-u8e5m3-v1",
  });
  const loaded = await readMoments(await loadState(hand));
  assert.deepEqual(loaded.exp_avg.b, decode(em.codes, em.scales));
  assert.deepEqual(loaded.exp_avg_sq.b, decode(ev.codes, ev.scales));
  assert.deepEqual(loaded.exp_avg.w, wm);
});
