/**
 * 8-bit states under bad input, for every rule of the table, with and without LookAhead, on
 * every CPU backend (threads too), on mixed tensors (lengths 0 and 1, below and above the 4096
 * threshold, partial last blocks): a refused step (bad gradients, a bad learning rate, a
 * non-finite gradient under `"throw"`, a consumed state) throws a TypeError/RangeError naming
 * what is wrong and leaves every parameter, moment, code, scale, slow weight and count as it
 * was, and the next step gives the bits of a twin that never saw the call. And the moments
 * given from outside in f32: a second moment of −0 loads into 8 bits as +0 does.
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
import { holdsCodes } from "../base/backend.ts";
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

/** A bad call of `step`, and the error it must give. */
type BadCall =
  | { kind: "length"; tensor: number; delta: 1 | -1 }
  | { kind: "type"; tensor: number; value: "f64" | "array" | "null" }
  | { kind: "missing"; tensor: number }
  | { kind: "extra" }
  | { kind: "bare" }
  | { kind: "nonFinite"; tensor: number; where: number; clip: boolean }
  | { kind: "lr"; value: number }
  | { kind: "consumed" };

const badCallArb: fc.Arbitrary<BadCall> = fc.oneof(
  fc.record({
    kind: fc.constant("length" as const),
    tensor: fc.nat(),
    delta: fc.constantFrom(1 as const, -1 as const),
  }),
  fc.record({
    kind: fc.constant("type" as const),
    tensor: fc.nat(),
    value: fc.constantFrom("f64" as const, "array" as const, "null" as const),
  }),
  fc.record({ kind: fc.constant("missing" as const), tensor: fc.nat() }),
  fc.record({ kind: fc.constant("extra" as const) }),
  fc.record({ kind: fc.constant("bare" as const) }),
  fc.record({
    kind: fc.constant("nonFinite" as const),
    tensor: fc.nat(),
    where: fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true }),
    clip: fc.boolean(),
  }),
  fc.record({ kind: fc.constant("lr" as const), value: fc.constantFrom(NaN, -1, Infinity) }),
  fc.record({ kind: fc.constant("consumed" as const) }),
);

interface HostileCase {
  rule: RuleCase;
  lengths: number[];
  lookahead: boolean;
  which: number;
  seed: number;
  bad: BadCall;
}

function caseArb(row: RuleRow): fc.Arbitrary<HostileCase> {
  return fc.record({
    rule: row.cases(true),
    lengths: fc.array(fc.constantFrom(...LENGTHS), { minLength: 1, maxLength: 4 }),
    lookahead: fc.boolean(),
    which: fc.integer({ min: 0, max: BACKENDS.length - 1 }),
    seed: fc.integer({ min: 0, max: 2 ** 31 - 1 }),
    bad: badCallArb,
  });
}

/** Every bit a state holds besides its gradient slots: values, codes, scales, counts. */
async function snapshot(state: OptimizerState): Promise<unknown> {
  const all = await readAll(state);
  const values = Object.fromEntries(
    Object.entries(all).map(([name, s]) => [
      name,
      Object.fromEntries(Object.entries(s).map(([f, x]) => [f, bits(x as Float64Array)])),
    ]),
  );
  const backend = stateInternals(state).backend;
  const codes = holdsCodes(backend)
    ? backend.layout.unsignedCodes.map((_, k) =>
      Object.entries(backend.viewCompact(k)).map(([name, c]) => [
        name,
        c.codes.slice(),
        bits(c.scales),
      ])
    )
    : [];
  return {
    values,
    codes,
    step: state.step,
    skipped: state.skippedSteps,
    norm: bits([state.lastGradNorm]),
  };
}

/** Runs one case: twins, three steps, the bad call on one, then a step on both. */
async function checkCase(row: RuleRow, c: HostileCase): Promise<void> {
  const { backend, threads } = BACKENDS[c.which];
  const clip = c.bad.kind === "nonFinite" && c.bad.clip ? 1 : undefined;
  let poisoned: number | undefined;
  const base = c.rule.options.lr as number;
  const make = () => {
    const inner = optimizerOf(row, c.rule, backend, {
      states: "8bit",
      threads,
      threadThreshold: 0,
      nonFinite: "throw",
      clipGradNorm: clip,
      lr: () => poisoned ?? base,
    });
    return c.lookahead ? lookahead(inner, { k: 2, alpha: 0.5 }) : inner;
  };
  const names = c.lengths.map((_, i) => `t${i}`);
  const rand = prng(c.seed);
  const params = Object.fromEntries(names.map((n, i) => [n, randomTensor(rand, c.lengths[i])]));
  const grads = () =>
    Object.fromEntries(names.map((n, i) => [n, randomTensor(rand, c.lengths[i])]));
  let state = await make().init(params), twin = await make().init(params);
  try {
    for (let t = 0; t < 3; t++) {
      const g = grads();
      const next = step(state, g);
      if (t === 2 && c.bad.kind === "consumed") {
        // the handle of the step before is consumed
        const before = await snapshot(next);
        assert.throws(() => step(state, g), TypeError);
        assert.deepEqual(await snapshot(next), before);
      }
      state = next;
      twin = step(twin, g);
    }
    const before = await snapshot(state);
    const good = grads();
    const k = "tensor" in c.bad ? c.bad.tensor % names.length : 0;
    const name = names[k];
    let bad: unknown = { ...good };
    let expected: [ErrorConstructor, RegExp];
    const quoted = JSON.stringify(name).replace(/[.]/g, "\\.");
    switch (c.bad.kind) {
      case "length": {
        const n = Math.max(0, c.lengths[k] + (c.lengths[k] === 0 ? 1 : c.bad.delta));
        (bad as Record<string, unknown>)[name] = new Float32Array(n);
        expected = [RangeError, new RegExp(`${quoted} to have length ${c.lengths[k]}, got ${n}`)];
        break;
      }
      case "type": {
        const value = { f64: new Float64Array(c.lengths[k]), array: [], null: null }[c.bad.value];
        (bad as Record<string, unknown>)[name] = value;
        expected = [TypeError, new RegExp(`gradient of parameter ${quoted} to be a Float32Array`)];
        break;
      }
      case "missing":
        delete (bad as Record<string, unknown>)[name];
        expected = [TypeError, new RegExp(`Missing gradient for parameter ${quoted}`)];
        break;
      case "extra":
        (bad as Record<string, unknown>).other = new Float32Array(1);
        expected = [TypeError, /Unexpected gradient "other"/];
        break;
      case "bare":
        bad = new Float32Array(c.lengths[0] + 1);
        expected = names.length > 1
          ? [TypeError, /needs a state with one tensor/]
          : [RangeError, /to have length/];
        break;
      case "nonFinite": {
        const n = c.lengths[k];
        if (n === 0) return; // nothing to poison
        const g = (bad as Record<string, Float32Array>)[name] = good[name].slice();
        const at = Math.floor(c.bad.where * n);
        g[at] = NaN;
        expected = [RangeError, new RegExp(`${quoted} holds NaN at index ${at}`)];
        break;
      }
      case "lr":
        poisoned = c.bad.value;
        expected = [RangeError, /learning-rate schedule returned/];
        break;
      case "consumed":
        return; // checked above
    }
    assert.throws(() => step(state, bad as Record<string, Float32Array>), (e: Error) => {
      assert.ok(e instanceof expected[0], `${e.constructor.name}: ${e.message}`);
      assert.match(e.message, expected[1]);
      return true;
    });
    poisoned = undefined;
    assert.deepEqual(await snapshot(state), before, "the refused step changed the state");
    state = step(state, good);
    twin = step(twin, good);
    await assertSameBits(state, twin, `${c.bad.kind} then a step`);
  } finally {
    dispose(state);
    dispose(twin);
  }
}

for (const row of RULE_TABLE) {
  Deno.test(`${row.rule} (8bit): a refused step changes no code, scale, value or count, on every CPU backend`, async () => {
    await fc.assert(
      fc.asyncProperty(caseArb(row), (c) => checkCase(row, c)),
      { numRuns: 60 },
    );
  });
}

/** The file with every element `at` of tensor `name` (F32) set to `value`. */
function poked(bytes: Uint8Array, name: string, at: readonly number[], value: number): Uint8Array {
  const out = bytes.slice();
  const { header, data } = split(out);
  const [begin] = header[name].data_offsets as number[];
  const view = new DataView(data.buffer, data.byteOffset);
  for (const i of at) view.setFloat32(begin + i * 4, value, true);
  return out;
}

Deno.test("a second moment of −0 in a 32-bit checkpoint loads into 8 bits as +0 does, not as the block's largest", async () => {
  // The unsigned code's integer arithmetic reads −0's sign bit as a huge value: unchecked, a −0
  // became code 255, the block's largest second moment.
  await fc.assert(
    fc.asyncProperty(
      fc.constantFrom(4096, 4097, 5000),
      fc.uniqueArray(fc.nat({ max: 4095 }), { minLength: 1, maxLength: 20 }),
      fc.integer({ min: 0, max: BACKENDS.length - 1 }),
      async (n, at, which) => {
        let state = await radam({ lr: 1e-2 }).init({ w: randomTensor(prng(n), n) });
        state = step(state, { w: randomTensor(prng(at.length), n) });
        const bytes = await saveState(state);
        const [plus, minus] = [0, -0].map((z) => poked(bytes, "w.exp_avg_sq", at, z));
        const { backend, threads } = BACKENDS[which];
        const options = { states: "8bit", backend, threads, threadThreshold: 0 } as const;
        const [a, b] = [await loadState(plus, options), await loadState(minus, options)];
        try {
          const [va, vb] = [
            (await readMoments(a)).exp_avg_sq.w,
            (await readMoments(b)).exp_avg_sq.w,
          ];
          for (const i of at) assert.ok(vb[i] < 1e-9 * Math.max(...va), `v[${i}] = ${vb[i]}`);
          await assertSameBits(b, a, `−0 at ${at}`);
        } finally {
          dispose(a);
          dispose(b);
        }
      },
    ),
    { numRuns: 20 },
  );
});
