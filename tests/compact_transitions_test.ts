/**
 * The transitions between 32-bit and 8-bit states for every rule of the table, with and without
 * LookAhead, on every CPU backend, on mixed tensors (lengths 0 and 1, below and above the 4096
 * threshold, partial last blocks): a 32-bit checkpoint loaded into 8 bits holds each moment's
 * nearest codes and everything else as it was; saved and loaded back into 32 bits, exactly the
 * values the codes hold; `readMoments` gives copies; an 8-bit resume on another backend steps on
 * with the same bits.
 */
import assert from "node:assert/strict";
import fc from "fast-check";
import {
  dispose,
  loadState,
  lookahead,
  type OptimizerState,
  radam,
  readMoments,
  saveState,
  step,
} from "../mod.ts";
import { blocksOf, compactLength } from "../base/q8.ts";
import { decodeTensor, encodeTensor } from "../base/q8_tensor.ts";
import { stateInternals } from "../core/state.ts";
import {
  assertSameBits,
  COMPACT_LENGTHS as LENGTHS,
  CPU_BACKENDS as BACKENDS,
  readAll,
} from "./cases.ts";
import { split } from "./checkpoint_files.ts";
import { optimizerOf, RULE_TABLE, type RuleCase, type RuleRow } from "./rule_table.ts";
import { bits, prng, randomTensor } from "./util.ts";

interface TransitionCase {
  rule: RuleCase;
  lengths: number[];
  lookahead: boolean;
  from: number;
  to: number;
  seed: number;
}

function caseArb(row: RuleRow): fc.Arbitrary<TransitionCase> {
  const backend = fc.integer({ min: 0, max: BACKENDS.length - 1 });
  return fc.record({
    // (eps 0 makes 0 / 0 where a gradient is 0: a NaN parameter, which no checkpoint holds)
    rule: row.cases(false).filter((r) => r.options.eps !== 0),
    lengths: fc.array(fc.constantFrom(...LENGTHS), { minLength: 1, maxLength: 4 }),
    lookahead: fc.boolean(),
    from: backend,
    to: backend,
    seed: fc.integer({ min: 0, max: 2 ** 31 - 1 }),
  });
}

/** The values of `x` through the nearest codes (signed, or unsigned for `exp_avg_sq`). */
function throughCodes(x: Float32Array, unsigned: boolean): Float32Array {
  const codes = unsigned ? new Uint8Array(x.length) : new Int8Array(x.length);
  const scales = new Float32Array(blocksOf(x.length));
  encodeTensor(x, codes, scales);
  const out = new Float32Array(x.length);
  decodeTensor(codes, scales, out);
  return out;
}

async function checkCase(row: RuleRow, c: TransitionCase): Promise<void> {
  const names = c.lengths.map((_, i) => `t${i}`);
  const rand = prng(c.seed);
  const tensors = () =>
    Object.fromEntries(names.map((n, i) => [n, randomTensor(rand, c.lengths[i])]));
  const make = (which: number, states: "32bit" | "8bit") => {
    const { backend, threads } = BACKENDS[which];
    const inner = optimizerOf(row, c.rule, backend, { states, threads, threadThreshold: 0 });
    return c.lookahead ? lookahead(inner, { k: 2 }) : inner;
  };
  const open: OptimizerState[] = [];
  const load = async (bytes: Uint8Array, which: number, states: "32bit" | "8bit") => {
    const { backend, threads } = BACKENDS[which];
    const s = await loadState(bytes, { backend, threads, threadThreshold: 0, states });
    open.push(s);
    return s;
  };
  try {
    let wide = await make(c.from, "32bit").init(tensors());
    open.push(wide);
    for (let t = 0; t < 3; t++) wide = step(wide, tensors());
    const before = await readAll(wide);
    const moments = await readMoments(wide);
    // into 8 bits: the nearest codes of each compact tensor's moments, all else as it was
    const compact = await load(await saveState(wide), c.to, "8bit");
    assert.equal(stateInternals(compact).config.run.states, "8bit");
    const got = await readMoments(compact);
    const wants: [string, string, Float32Array][] = [];
    for (const [m, byName] of Object.entries(moments)) {
      for (const [name, x] of Object.entries(byName)) {
        const want = compactLength(x.length) ? throughCodes(x, m === "exp_avg_sq") : x;
        assert.deepEqual(bits(got[m][name]), bits(want), `${m} of ${name}`);
        wants.push([m, name, want]);
        got[m][name].fill(7); // a copy: the state keeps its own
      }
    }
    const reread = await readMoments(compact);
    for (const [m, name, want] of wants) assert.deepEqual(bits(reread[m][name]), bits(want));
    const after = await readAll(compact);
    for (const name of names) {
      assert.deepEqual(bits(after[name].p), bits(before[name].p), `params of ${name}`);
      if (c.lookahead) assert.deepEqual(bits(after[name].s!), bits(before[name].s!), "slow");
    }
    // and back into 32 bits: exactly what the codes hold
    const eight = await saveState(compact);
    const back = await load(eight, c.from, "32bit");
    assert.equal(stateInternals(back).config.run.states, "32bit");
    await assertSameBits(back, compact, "8 → 32 bits", false);
    // an 8-bit resume on another backend steps on with the same bits
    let again = await load(eight, c.from, "8bit");
    let here = compact;
    for (let t = 0; t < 3; t++) {
      const g = tensors();
      again = step(again, g);
      here = step(here, g);
    }
    await assertSameBits(again, here, `8-bit resume, backend ${c.to} → ${c.from}`);
  } finally {
    for (const s of open) dispose(s);
  }
}

for (const row of RULE_TABLE) {
  Deno.test(`${row.rule}: 32-bit ↔ 8-bit checkpoints convert as said, on every CPU backend, LookAhead and odd lengths`, async () => {
    await fc.assert(
      fc.asyncProperty(caseArb(row), (c) => checkCase(row, c)),
      { numRuns: 25 },
    );
  });
}

/** The bits of every value `readAll` read. */
function bitsOfAll(all: Awaited<ReturnType<typeof readAll>>) {
  return Object.entries(all).map(([name, x]) => [name, bits(x.p), bits(x.m), x.v && bits(x.v)]);
}

/** A view of tensor `name`'s data in a checkpoint (edited in place): F32, or with `u8` U8. */
function dataOf(bytes: Uint8Array, name: string): Float32Array;
function dataOf(bytes: Uint8Array, name: string, u8: true): Uint8Array;
function dataOf(bytes: Uint8Array, name: string, u8?: true): Float32Array | Uint8Array {
  const { header, data } = split(bytes);
  const [begin, end] = header[name].data_offsets;
  const at = data.byteOffset + begin;
  return u8
    ? new Uint8Array(data.buffer, at, end - begin)
    : new Float32Array(data.buffer, at, (end - begin) / 4);
}

Deno.test("8 → 32 → 8 bits gives back the file, but for the two kinds of block the SPEC names, on every CPU backend", async () => {
  const n = 4100; // 17 blocks, the last partial
  const init = () => ({ w: Float32Array.from({ length: n }, (_, i) => Math.cos(i)) });
  const grads = () => ({ w: Float32Array.from({ length: n }, (_, i) => Math.sin(i * 0.7)) });
  const open: OptimizerState[] = [];
  const keep = (s: OptimizerState) => (open.push(s), s);
  try {
    let trained = keep(await radam({ states: "8bit" }).init(init()));
    for (let t = 0; t < 3; t++) trained = keep(step(trained, grads()));
    // A 32-bit state's moments set so that, encoded: block 1 of m is below 2⁻¹⁴² · 1.1875
    // (scale 2⁻¹²⁶, codes 0), block 2 of v has the scale 2⁻¹¹⁸ and zeros (code 0, 2⁻¹⁴⁹ in f32).
    const wide = await saveState(keep(step(keep(await radam().init(init())), grads())));
    const m = dataOf(wide, "w.exp_avg"), v = dataOf(wide, "w.exp_avg_sq");
    m.fill(2 ** -149, 256, 512);
    v.fill(0, 512, 768);
    v[600] = 2 ** -118;
    const special = await saveState(keep(await loadState(wide, { states: "8bit" })));
    assert.deepEqual(dataOf(special, "w.exp_avg.scales")[1], 2 ** -126);
    for (const { backend, threads } of BACKENDS) {
      const options = { backend, threads, threadThreshold: 0 };
      const trip = async (bytes: Uint8Array) => {
        const f32 = keep(await loadState(bytes, { ...options, states: "32bit" }));
        const back = keep(await loadState(await saveState(f32), { ...options, states: "8bit" }));
        // The same values (params, decoded moments), and the same step after.
        const direct = keep(await loadState(bytes, options));
        const values = async (x: OptimizerState) => bitsOfAll(await readAll(x));
        assert.deepEqual(await values(back), await values(direct), `${backend} × ${threads}`);
        const saved = await saveState(back);
        const g = grads();
        assert.deepEqual(await values(keep(step(back, g))), await values(keep(step(direct, g))));
        return saved;
      };
      assert.deepEqual(await trip(await saveState(trained)), await saveState(trained));
      const again = await trip(special);
      // The same file but for block 1's scale of m (0) and block 2's code 0s of v (7).
      const mScales = dataOf(again, "w.exp_avg.scales");
      assert.equal(mScales[1], 0);
      mScales[1] = 2 ** -126;
      const vCodes = dataOf(again, "w.exp_avg_sq.codes", true);
      for (let i = 512; i < 768; i++) {
        assert.equal(vCodes[i], i === 600 ? 255 : 7);
        if (i !== 600) vCodes[i] = 0;
      }
      assert.deepEqual(again, special);
    }
  } finally {
    for (const s of open) dispose(s);
  }
});
