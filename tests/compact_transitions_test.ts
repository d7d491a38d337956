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
