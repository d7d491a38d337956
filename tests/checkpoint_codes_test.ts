/**
 * Checkpoints of 8-bit moments (docs/SPEC.md "Compact states"): codes and scales stored as they
 * are (a resume is bit-exact), conversions between the formats on load (lossy one way, as said),
 * and hostile files: each damage to the codes, scales and their metadata throws a
 * CheckpointError naming the problem before anything is allocated; mutated files load a valid
 * state or throw one.
 */
import assert from "node:assert/strict";
import fc from "fast-check";
import {
  CheckpointError,
  dispose,
  lion,
  loadState,
  radam,
  readMoments,
  readParams,
  saveState,
  sgd,
  step,
} from "../mod.ts";
import { holdsCodes } from "../base/backend.ts";
import { Q8_VERSION } from "../base/q8.ts";
import { decodeTensor, encodeTensor } from "../base/q8_tensor.ts";
import { stateInternals } from "../core/state.ts";
import { assertSameBits } from "./cases.ts";
import { edit, type Header, join, loadOrRefused, sample8bit, split } from "./checkpoint_files.ts";
import { bits, randoms } from "./util.ts";

const W = "fc.weight";

/** The file with byte `index` of tensor `name`'s data set (1-byte codes) or its f32 set. */
function poke(bytes: Uint8Array, name: string, index: number, value: number, f32 = false) {
  const out = bytes.slice();
  const { header, data } = split(out);
  const [begin] = (header[name] as { data_offsets: number[] }).data_offsets;
  const view = new DataView(data.buffer, data.byteOffset);
  if (f32) view.setFloat32(begin + index * 4, value, true);
  else view.setInt8(begin + index, value);
  return out;
}

/** The file with tensor `name` removed (its bytes cut out, the later offsets moved). */
function drop(bytes: Uint8Array, name: string): Uint8Array {
  const { header, data } = split(bytes);
  const [begin, end] = header[name].data_offsets;
  delete header[name];
  for (const v of Object.values(header) as { data_offsets?: number[] }[]) {
    if (v.data_offsets && v.data_offsets[0] >= end) {
      v.data_offsets = v.data_offsets.map((x) => x - (end - begin));
    }
  }
  return join(
    JSON.stringify(header),
    new Uint8Array([...data.subarray(0, begin), ...data.subarray(end)]),
  );
}

/** The file with the last `cut` bytes of tensor `name` removed, and its shape `shape`. */
function shorten(bytes: Uint8Array, name: string, cut: number, shape: number[]): Uint8Array {
  const { header, data } = split(bytes);
  const end = header[name].data_offsets[1];
  header[name].data_offsets[1] -= cut;
  header[name].shape = shape;
  for (const [key, v] of Object.entries(header) as [string, { data_offsets?: number[] }][]) {
    if (key !== name && v.data_offsets && v.data_offsets[0] >= end) {
      v.data_offsets = v.data_offsets.map((x) => x - cut);
    }
  }
  return join(
    JSON.stringify(header),
    new Uint8Array([...data.subarray(0, end - cut), ...data.subarray(end)]),
  );
}

/** The file with `change` applied to its metadata. */
function meta(bytes: Uint8Array, change: (m: Record<string, string>) => void): Uint8Array {
  return edit(bytes, (h: Header) => change(h.__metadata__));
}

/** Damage to the 8-bit sections and their metadata, each with the error it must give. */
const DAMAGE: [string, (b: Uint8Array) => Uint8Array, RegExp][] = [
  [
    "codes of another length",
    (b) => edit(b, (h) => h[`${W}.exp_avg.codes`].shape = [4000]),
    /shape \[4000\] of I8 needs 4000 bytes/,
  ],
  [
    "codes of another shape, same length",
    (b) =>
      edit(b, (h) => {
        h[`${W}.exp_avg.codes`].shape = [41, 100];
      }),
    /"fc.weight.exp_avg.codes" has shape \[41,100\], unlike "fc.weight" \[4100\]/,
  ],
  [
    "scales: a block count that does not match",
    (b) => shorten(b, `${W}.exp_avg.scales`, 4, [16]),
    /"fc.weight.exp_avg.scales" has shape \[16\]; expected \[17\]/,
  ],
  [
    "codes: one short",
    (b) => shorten(b, `${W}.exp_avg_sq.codes`, 1, [4099]),
    /"fc.weight.exp_avg_sq.codes" has shape \[4099\], unlike "fc.weight" \[4100\]/,
  ],
  [
    "scales of another shape, same bytes",
    (b) => edit(b, (h) => h[`${W}.exp_avg_sq.scales`].shape = [1, 17]),
    /"fc.weight.exp_avg_sq.scales" has shape \[1,17\]; expected \[17\] \(one scale per block of 256 of its 4100 codes\)/,
  ],
  [
    "a negative scale",
    (b) => poke(b, `${W}.exp_avg.scales`, 3, -0.5, true),
    /scales"\[3\] is -0.5/,
  ],
  [
    // (Its codes 0, as a block of zeros holds them: it loaded, its moments read back as -0.)
    "a scale of -0",
    (b) => {
      let out = poke(b, `${W}.exp_avg.scales`, 1, -0, true);
      for (let i = 256; i < 512; i++) out = poke(out, `${W}.exp_avg.codes`, i, 0);
      return out;
    },
    /scales"\[1\] is -0; expected \+0 or a positive normal finite number/,
  ],
  ["a NaN scale", (b) => poke(b, `${W}.exp_avg_sq.scales`, 0, NaN, true), /scales"\[0\] is NaN/],
  ["an infinite scale", (b) => poke(b, `${W}.exp_avg.scales`, 16, Infinity, true), /is Infinity/],
  [
    "a subnormal scale",
    (b) => poke(b, `${W}.exp_avg.scales`, 2, 1e-40, true),
    /scales"\[2\] is 9\.99\d*e-41; expected \+0 or a positive normal finite number/,
  ],
  [
    "the signed code -128",
    (b) => poke(b, `${W}.exp_avg.codes`, 5, -128),
    /codes"\[5\] is -128; the signed code -128 is never written/,
  ],
  [
    "codes where the format says none (a block of scale 0)",
    (b) => poke(poke(b, `${W}.exp_avg.scales`, 1, 0, true), `${W}.exp_avg.codes`, 300, 7),
    /codes"\[(2[5-9]\d|300)\] is -?\d+; block 1's scale is 0 \(a block of zeros\), so its codes must be 0/,
  ],
  [
    "codes without their scales",
    (b) => drop(b, `${W}.exp_avg.scales`),
    /lacks the tensor "fc.weight.exp_avg.scales"/,
  ],
  [
    "scales without their codes",
    (b) => drop(b, `${W}.exp_avg_sq.codes`),
    /lacks the tensor "fc.weight.exp_avg_sq.codes"/,
  ],
  [
    "unsigned codes of a signed moment",
    (b) => edit(b, (h) => h[`${W}.exp_avg.codes`].dtype = "U8"),
    /is U8; expected I8 \(the codes of a signed moment\)/,
  ],
  [
    "signed codes of a non-negative moment",
    (b) => edit(b, (h) => h[`${W}.exp_avg_sq.codes`].dtype = "I8"),
    /is I8; expected U8 \(the codes of a non-negative moment\)/,
  ],
  [
    "codes for a parameter",
    (b) => edit(b, (h) => h["fc.bias"].dtype = "U8"),
    /shape \[2\] of U8 needs 2 bytes|"fc.bias" is U8; expected F32/,
  ],
  [
    "f32 values beside codes",
    (b) =>
      edit(b, (h) => {
        h[`${W}.exp_avg`] = h[`${W}.exp_avg.codes`];
        delete h[`${W}.exp_avg.codes`];
      }),
    /lacks the tensor "fc.weight.exp_avg.codes"|unexpected tensor "fc.weight.exp_avg"/,
  ],
  [
    "codes in a file whose states metadata says 32bit",
    (b) => meta(b, (m) => m.states = "32bit"),
    /holds 8-bit codes, but its metadata states is "32bit"/,
  ],
  ["codes without a states metadata", (b) => meta(b, (m) => delete m.states), /lacks states/],
  ["a states metadata unknown", (b) => meta(b, (m) => m.states = "4bit"), /states must be one of/],
  ["codes without their version", (b) => meta(b, (m) => delete m.q8), /lacks q8/],
  [
    "codes of another version",
    (b) => meta(b, (m) => m.q8 = "b128-i8e4m3-u8e5m3-v2"),
    /codes are of version "b128-i8e4m3-u8e5m3-v2"; this library reads/,
  ],
];

Deno.test("8-bit checkpoints: damage to the codes and scales throws a CheckpointError naming it", async () => {
  const good = await sample8bit();
  assert.equal((await loadState(good)).step, 3, "the undamaged file loads");
  for (const [what, damage, message] of DAMAGE) {
    await assert.rejects(loadState(damage(good), { backend: "js" }), (e: Error) => {
      assert.ok(e instanceof CheckpointError, `${what}: ${e}`);
      assert.match(e.message, message, what);
      return true;
    }, what);
  }
});

Deno.test("fuzz: mutated 8-bit checkpoints load a valid state or throw a CheckpointError", async () => {
  const good = await sample8bit();
  const { header } = split(good);
  const byteStart = Math.min(
    ...Object.entries(header).filter(([k]) => k.endsWith(".codes")).map(([, v]) =>
      (v as { data_offsets: number[] }).data_offsets[0]
    ),
  );
  const dataStart = good.length - split(good).data.length;
  let loaded = 0;
  await fc.assert(
    fc.asyncProperty(
      fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), {
        minLength: 1,
        maxLength: 8,
      }),
      fc.boolean(),
      async (writes, inCodes) => {
        const out = good.slice();
        // half the runs write into the codes and scales, the rest anywhere
        const lo = inCodes ? dataStart + byteStart - 17 * 8 * 4 : 0;
        for (const [at, value] of writes) out[lo + at % (out.length - lo)] = value;
        let state = await loadOrRefused(out);
        if (state === undefined) return;
        loaded++;
        const moments = await readMoments(state);
        for (const m of Object.values(moments)) {
          for (const x of Object.values(m)) assert.ok(x.every(Number.isFinite), "finite moments");
        }
        assert.ok(moments.exp_avg_sq[W].every((x) => x >= 0), "v ≥ 0");
        state = step(state, {
          [W]: new Float32Array(4100).fill(1),
          "fc.bias": new Float32Array(2),
        });
        assert.equal(state.step, 4);
      },
    ),
    { numRuns: 1000 },
  );
  assert.ok(loaded > 0, "some mutations (of code bytes) still load");
});

Deno.test("8-bit checkpoints hold the codes as they are: a resume is bit-exact, on every CPU backend", async () => {
  const grads = (t: number) => ({ w: randoms(5000, t), b: randoms(7, 100 + t) });
  for (const make of [radam, lion, sgd]) {
    // deno-lint-ignore no-explicit-any
    let state = await (make as any)({ ...(make === sgd ? { momentum: 0.9 } : {}), states: "8bit" })
      .init({ w: randoms(5000, 1), b: randoms(7, 2) });
    for (let t = 1; t <= 5; t++) state = step(state, grads(t));
    const bytes = await saveState(state);
    const { header, data } = split(bytes);
    assert.equal(header.__metadata__.states, "8bit");
    assert.equal(header.__metadata__.q8, Q8_VERSION);
    // the codes and scales in the file are the state's own bytes
    const backend = stateInternals(state).backend;
    assert.ok(holdsCodes(backend));
    Object.keys(await readMoments(state)).forEach((name, k) => {
      const held = backend.viewCompact(k).w;
      const [cb, ce] = header[`w.${name}.codes`].data_offsets;
      const codes = new Uint8Array(held.codes.buffer, held.codes.byteOffset, held.codes.length);
      assert.deepEqual(data.slice(cb, ce), codes.slice(), `${make.name} ${name} codes`);
      const [sb, se] = header[`w.${name}.scales`].data_offsets;
      assert.deepEqual(bits(new Float32Array(data.slice(sb, se).buffer)), bits(held.scales));
    });
    const resumed = [];
    for (const [backend, threads] of [["js", 1], ["wasm", 1], ["wasm", 2]] as const) {
      resumed.push(await loadState(bytes, { backend, threads, threadThreshold: 0 }));
    }
    for (let t = 6; t <= 9; t++) {
      state = step(state, grads(t));
      for (let r = 0; r < resumed.length; r++) resumed[r] = step(resumed[r], grads(t));
    }
    for (const r of resumed) {
      await assertSameBits(r, state, `${make.name} → ${r.backend} × ${r.threads}`);
      dispose(r);
    }
  }
});

Deno.test("a 32-bit checkpoint loads into 8-bit moments encoded (lossy), and back decoded", async () => {
  const params = { w: randoms(4500, 3), b: randoms(5, 4) };
  let state = await radam({ lr: 1e-2 }).init(params);
  for (let t = 1; t <= 4; t++) state = step(state, { w: randoms(4500, 10 + t), b: randoms(5, t) });
  const wide = await saveState(state);
  const before = await readMoments(state);
  // into 8 bits: each moment encoded to its nearest code (base/q8_tensor.ts)
  const compact = await loadState(wide, { states: "8bit", backend: "js" });
  assert.equal(stateInternals(compact).config.run.states, "8bit");
  const moments = await readMoments(compact);
  for (const [name, signed] of [["exp_avg", true], ["exp_avg_sq", false]] as const) {
    const codes = signed ? new Int8Array(4500) : new Uint8Array(4500);
    const scales = new Float32Array(18);
    encodeTensor(before[name].w, codes, scales);
    const expected = new Float32Array(4500);
    decodeTensor(codes, scales, expected);
    assert.deepEqual(bits(moments[name].w), bits(expected), `${name}: the nearest codes`);
    assert.notDeepEqual(bits(moments[name].w), bits(before[name].w), `${name}: lossy`);
    assert.deepEqual(moments[name].b, before[name].b, `${name}: a small tensor stays f32`);
  }
  assert.deepEqual((await readParams(compact)).w, (await readParams(state)).w);
  // and back: the 32-bit state holds exactly the values the codes hold
  const back = await loadState(await saveState(compact), { states: "32bit", backend: "wasm" });
  assert.equal(stateInternals(back).config.run.states, "32bit");
  const decoded = await readMoments(back);
  for (const name of ["exp_avg", "exp_avg_sq"]) {
    assert.deepEqual(bits(decoded[name].w), bits(moments[name].w), `${name}: decoded exactly`);
  }
  const { header } = split(await saveState(back));
  assert.equal(header.__metadata__.states, "32bit");
  assert.equal(header.__metadata__.q8, undefined);
  assert.ok(!Object.keys(header).some((k) => k.endsWith(".codes")));
  // a 32-bit file without the states metadata (older) still loads, as 32-bit
  const old = edit(wide, (h) => delete h.__metadata__.states);
  assert.equal(stateInternals(await loadState(old)).config.run.states, "32bit");
  // the option is checked
  await assert.rejects(
    loadState(wide, { states: "16bit" as "8bit" }),
    /Option states must be one of 32bit, 8bit, got a string "16bit"/,
  );
});

Deno.test("an 8-bit state whose second moment overflowed (held at FLT_MAX) saves and loads, bit-exact", async () => {
  // A finite gradient of 3e19 makes v = g · g Infinity in f32: its block's scale was NaN, which no
  // checkpoint holds (the save threw). The block's scale is now FLT_MAX, the element's code the
  // top one: the state saves, resumes bit-exact on every CPU backend, and goes to 32 bits (v of
  // FLT_MAX there, finite) and back to the same codes and scales.
  const grads = (t: number) => ({ w: randoms(5000, 20 + t), b: randoms(7, 30 + t) });
  let state = await radam({ lr: 1e-2, states: "8bit" }).init({
    w: randoms(5000, 1),
    b: randoms(7, 2),
  });
  const first = grads(1);
  first.w[777] = 3e19;
  state = step(state, first);
  for (let t = 2; t <= 3; t++) state = step(state, grads(t));
  const bytes = await saveState(state);
  const { header, data } = split(bytes);
  const [sb, se] = header["w.exp_avg_sq.scales"].data_offsets;
  const scales = new Float32Array(data.slice(sb, se).buffer);
  assert.ok(scales.every(Number.isFinite));
  assert.ok(scales[3] > 3.3e38, `block 3: about FLT_MAX, decayed by β2 twice: ${scales[3]}`);
  const resumed = [];
  for (const [backend, threads] of [["js", 1], ["wasm", 1], ["wasm", 2]] as const) {
    resumed.push(await loadState(bytes, { backend, threads, threadThreshold: 0 }));
  }
  for (let t = 4; t <= 6; t++) {
    state = step(state, grads(t));
    for (let r = 0; r < resumed.length; r++) resumed[r] = step(resumed[r], grads(t));
  }
  assert.ok((await readParams(state)).w.every(Number.isFinite));
  for (const r of resumed) {
    await assertSameBits(r, state, `→ ${r.backend} × ${r.threads}`);
    dispose(r);
  }
  const again = await saveState(state);
  const wide = await loadState(again, { states: "32bit", backend: "js" });
  const back = await saveState(await loadState(await saveState(wide), { states: "8bit" }));
  const [a, b] = [split(again), split(back)];
  for (
    const name of [
      "w.exp_avg.codes",
      "w.exp_avg.scales",
      "w.exp_avg_sq.codes",
      "w.exp_avg_sq.scales",
    ]
  ) {
    const [ab, ae] = a.header[name].data_offsets, [bb, be] = b.header[name].data_offsets;
    assert.deepEqual(b.data.slice(bb, be), a.data.slice(ab, ae), name);
  }
  dispose(wide);
  dispose(state);
});

Deno.test("an 8-bit checkpoint's tensor_order is the order given to init; one in the arena's order (0.2.0's) loads and keeps it", async () => {
  const init = () => ({ w: randoms(5000, 1), b: randoms(3, 2) });
  const grads = () => ({ w: randoms(5000, 3), b: randoms(3, 4) });
  const open = [];
  try {
    const s = step(await radam({ states: "8bit", nonFinite: "throw" }).init(init()), grads());
    open.push(s);
    assert.deepEqual(s.names, ["b", "w"]); // the arena: f32 moments first
    const bytes = await saveState(s);
    const { header } = split(bytes);
    assert.deepEqual(JSON.parse(header.__metadata__.tensor_order), ["w", "b"]);
    // The file follows tensor_order: w's tensors first, then b's, then the codes.
    const begin = (key: string) => header[key].data_offsets[0];
    assert.ok(begin("w") < begin("w.exp_avg.scales") && begin("w.exp_avg_sq.scales") < begin("b"));
    assert.ok(begin("b.exp_avg_sq") < begin("w.exp_avg.codes"));
    // As 0.2.0 wrote it: the same tensors, tensor_order the arena's. It loads as it did (its
    // arena is the one its tensor_order names), and names tensors in that order, which is all
    // it knows of the state's; saved again, it keeps it.
    const old = edit(bytes, (h) => h.__metadata__.tensor_order = JSON.stringify(["b", "w"]));
    const resumed = await loadState(old);
    open.push(resumed);
    assert.deepEqual(resumed.names, ["b", "w"]);
    const fresh = await loadState(bytes);
    open.push(fresh);
    await assertSameBits(resumed, fresh, "0.2.0's order");
    const bad = { w: new Float32Array(5000).fill(NaN), b: new Float32Array(3).fill(NaN) };
    assert.throws(() => step(fresh, bad), /gradient of parameter "w" holds NaN/);
    assert.throws(() => step(resumed, bad), /gradient of parameter "b" holds NaN/);
    const again = split(await saveState(resumed)).header.__metadata__.tensor_order;
    assert.deepEqual(JSON.parse(again), ["b", "w"]);
  } finally {
    for (const s of open) dispose(s);
  }
});
