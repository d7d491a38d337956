/**
 * A differential hunt across combinations of options on the CPU backends: a random rule and its
 * options, 32-bit or 8-bit moments, LookAhead, clipping (down to scales below f32's normal
 * range), centralization, parameter groups, a schedule, a non-finite policy, on tensors whose
 * lengths straddle the 8-bit threshold, its blocks and the threads' split, run in lockstep on
 * wasm, js and wasm on 2 threads, gradients copied in or written into the slots (zero copy),
 * with non-finite and malformed gradients injected. After every call the three states hold the
 * same bits (params, moments with their codes and scales, slow weights, counts, norm); a skipped
 * step changes nothing but the skip count and norm; a refused one changes nothing at all, and
 * says the same on every backend. Mid-run, the three checkpoints are the same bytes; loaded on
 * every backend (in the same format, or converted to the other), the resumed states step on in
 * lockstep, and, in the same format, as the uninterrupted run bit for bit.
 *
 * `RADAM_COMBINATIONS_RUNS` and `RADAM_COMBINATIONS_SEED` (with `--allow-env`) run more cases,
 * or others; the default is a fixed seed, so CI is deterministic.
 */
import assert from "node:assert/strict";
import fc from "fast-check";
import {
  dispose,
  loadState,
  lookahead,
  type NonFinitePolicy,
  type OptimizerState,
  saveState,
  type StatesFormat,
  step,
} from "../mod.ts";
import { stateInternals } from "../core/state.ts";
import { CPU_BACKENDS, hasNonFinite, tensorNames } from "./cases.ts";
import {
  type GroupCase,
  groupsArb,
  groupsOf,
  lookaheadArb,
  lrOf,
  paramsOf,
  scheduleArb,
  type ScheduleCase,
  snapshot as snapshotOf,
} from "./option_mix.ts";
import { optimizerOf, real, RULE_TABLE, type RuleCase } from "./rule_table.ts";
import { prng, randomTensor, setting } from "./util.ts";

const RUNS = setting("RADAM_COMBINATIONS_RUNS") ?? 40;
const SEED = setting("RADAM_COMBINATIONS_SEED") ?? 20261206;

/**
 * Lengths around SIMD tails, the 8-bit threshold (4096) and its blocks of 256, and large enough
 * that two threads split inside a tensor.
 */
const LENGTHS = [0, 1, 3, 17, 255, 256, 257, 4095, 4096, 4097, 4352, 4607, 8193, 9000];

/** What a call of `step` is given. */
type Call =
  | { kind: "ok"; huge: boolean; zeroCopy: boolean }
  | { kind: "nonFinite"; value: number; zeroCopy: boolean }
  | { kind: "length" }
  | { kind: "missing" };

interface Combination {
  rowIndex: number;
  rule: RuleCase;
  states: StatesFormat;
  lengths: number[];
  /** Which tensors are rank 2 (centralized with `gc`). */
  shaped: boolean[];
  gc: boolean;
  clipGradNorm?: number;
  nonFinite: NonFinitePolicy;
  lookahead?: { k: number; alpha: number };
  /** Groups matching tensor indices by residue: `index % modulus === residue`. */
  groups: GroupCase[];
  schedule: ScheduleCase;
  calls: Call[];
  /** After how many calls the run is saved and resumed, and in which format. */
  cut: number;
  convert: boolean;
  /** Which of the three backends' checkpoints is loaded. */
  source: number;
  seed: number;
}

const callArb: fc.Arbitrary<Call> = fc.oneof(
  {
    weight: 8,
    arbitrary: fc.record({
      kind: fc.constant("ok" as const),
      huge: fc.boolean(),
      zeroCopy: fc.boolean(),
    }),
  },
  {
    weight: 2,
    arbitrary: fc.record({
      kind: fc.constant("nonFinite" as const),
      value: fc.constantFrom(NaN, Infinity, -Infinity),
      zeroCopy: fc.boolean(),
    }),
  },
  { weight: 1, arbitrary: fc.constantFrom<Call>({ kind: "length" }, { kind: "missing" }) },
);

const combinationArb: fc.Arbitrary<Combination> = fc.integer({ min: 0, max: RULE_TABLE.length - 1 })
  .chain((rowIndex) =>
    fc.record({
      rowIndex: fc.constant(rowIndex),
      // (eps 0 makes 0 / 0 of a zero gradient: NaN, which no checkpoint holds)
      rule: RULE_TABLE[rowIndex].cases(true).filter((r) => r.options.eps !== 0),
      states: fc.constantFrom<StatesFormat>("32bit", "8bit"),
      lengths: fc.array(fc.constantFrom(...LENGTHS), { minLength: 1, maxLength: 4 }),
      shaped: fc.array(fc.boolean(), { minLength: 4, maxLength: 4 }),
      gc: fc.boolean(),
      clipGradNorm: fc.option(
        fc.oneof(fc.constantFrom(0, 1e-39, 1e-30, Number.MAX_VALUE), real(1e-3, 100)),
        { nil: undefined },
      ),
      nonFinite: fc.constantFrom<NonFinitePolicy>("skip", "skip", "throw", "propagate"),
      lookahead: lookaheadArb(5, [0, 0.5, 1]),
      groups: groupsArb,
      schedule: scheduleArb,
      calls: fc.array(callArb, { minLength: 1, maxLength: 12 }),
      cut: fc.nat(),
      convert: fc.boolean(),
      source: fc.integer({ min: 0, max: CPU_BACKENDS.length - 1 }),
      seed: fc.integer({ min: 0, max: 2 ** 31 - 1 }),
    })
  ).map((c) => ({ ...c, cut: c.cut % (c.calls.length + 1) }));

/** The optimizer of a combination on one of the CPU backends. */
function optimizerAt(c: Combination, which: number) {
  const { backend, threads } = CPU_BACKENDS[which];
  const groups = groupsOf(c.groups, c.lengths.length);
  const opt = optimizerOf(RULE_TABLE[c.rowIndex], c.rule, backend, {
    lr: lrOf(c),
    states: c.states,
    gc: c.gc,
    clipGradNorm: c.clipGradNorm,
    nonFinite: c.nonFinite,
    groups,
    threads,
    threadThreshold: 0,
  });
  return c.lookahead ? lookahead(opt, c.lookahead) : opt;
}

/** Initial params (rank 2 where shaped and the length factors) and each call's gradients. */
function dataOf(c: Combination) {
  const rand = prng(c.seed);
  const names = tensorNames(c);
  const params = paramsOf(c, rand);
  const grads = c.calls.map((call) => {
    const g: Record<string, Float32Array> = {};
    names.forEach((name, i) => {
      g[name] = randomTensor(rand, c.lengths[i]);
      if (call.kind === "ok" && call.huge) g[name] = g[name].map((x) => x * 1e34);
    });
    // One or two tensors made bad: errors name the first in the order given to init.
    const bad = [Math.floor(rand() * names.length), Math.floor(rand() * names.length)];
    for (const [j, k] of bad.entries()) {
      const at = Math.floor(rand() * c.lengths[k]);
      if (call.kind === "nonFinite" && c.lengths[k] > 0) g[names[k]][at] = call.value;
      if (call.kind === "length") g[names[k]] = new Float32Array(c.lengths[k] + 1);
      if (call.kind === "missing") {
        if (j === 0) delete g[names[k]];
        else if (k !== bad[0]) g[names[k]] = new Float32Array(c.lengths[k] + 2);
      }
    }
    return g;
  });
  return { params, grads };
}

/** Everything a state holds, as bits: counts, norm, params, moments, codes, slow weights. */
function snapshot(state: OptimizerState): Promise<unknown> {
  return snapshotOf(state, { norm: true });
}

/** Whether a call must be refused: malformed gradients, or non-finite ones under "throw". */
function refused(c: Combination, call: Call, g: Record<string, Float32Array>): boolean {
  return call.kind === "length" || call.kind === "missing" ||
    (c.nonFinite === "throw" && hasNonFinite(g));
}

/** One call on one state: the next state, or the error it threw. */
function callOn(
  state: OptimizerState,
  call: Call,
  g: Record<string, Float32Array>,
): OptimizerState | Error {
  try {
    if ((call.kind === "ok" || call.kind === "nonFinite") && call.zeroCopy) {
      for (const name of state.names) state.grads[name].set(g[name]);
      return step(state);
    }
    return step(state, g);
  } catch (error) {
    return error as Error;
  }
}

/**
 * Steps a trio of states (wasm, js, 2 threads) through `calls[from, to)`, checking after each
 * call that they agree and that a skipped or refused call changed what it may not.
 */
async function lockstep(
  c: Combination,
  trio: OptimizerState[],
  grads: Record<string, Float32Array>[],
  from: number,
  to: number,
  what: string,
): Promise<{ trio: OptimizerState[]; said: (string | undefined)[] }> {
  const said: (string | undefined)[] = [];
  for (let i = from; i < to; i++) {
    const where = `${what}, call ${i + 1} (${JSON.stringify(c.calls[i])})`;
    const before = await snapshot(trio[0]) as { step: number; skipped: number };
    const results = trio.map((s) => callOn(s, c.calls[i], grads[i]));
    const errors = results.map((r) => r instanceof Error ? `${r.name}: ${r.message}` : undefined);
    assert.deepEqual(errors, errors.map(() => errors[0]), `${where}: the backends disagree`);
    said.push(errors[0]);
    if (results[0] instanceof Error) {
      assert.ok(refused(c, c.calls[i], grads[i]), `${where}: threw ${errors[0]}`);
      // Refused: nothing changed, and the state is still usable.
      for (const s of trio) assert.deepEqual(await snapshot(s), before, `${where}: refused`);
      continue;
    }
    trio = results as OptimizerState[];
    const after = await Promise.all(trio.map(snapshot));
    for (let k = 1; k < trio.length; k++) {
      assert.deepEqual(
        after[k],
        after[0],
        `${where}: ${CPU_BACKENDS[k].backend} × ${CPU_BACKENDS[k].threads}`,
      );
    }
    const skipped = c.nonFinite === "skip" && hasNonFinite(grads[i]);
    const now = after[0] as { step: number; skipped: number; norm: number };
    if (skipped) {
      assert.deepEqual(
        { ...now, skipped: now.skipped - 1, norm: undefined },
        { ...before, norm: undefined },
        `${where}: a skipped step changed the state`,
      );
    } else {
      assert.equal(now.step, before.step + 1, `${where}: not taken`);
    }
  }
  return { trio, said };
}

/** The bytes of a state's checkpoint, or the message of its refusal. */
async function checkpointOf(state: OptimizerState): Promise<Uint8Array | string> {
  try {
    return await saveState(state);
  } catch (error) {
    const message = (error as Error).message;
    // Only a state holding non-finite values cannot be saved.
    assert.match(message, /^Cannot checkpoint: .* is (NaN|-?Infinity|-)/);
    return message;
  }
}

/** Runs a combination; throws where the backends or a resume disagree. */
async function runCombination(c: Combination): Promise<void> {
  const { params, grads } = dataOf(c);
  const open: OptimizerState[] = [];
  const keep = (s: OptimizerState) => (open.push(s), s);
  try {
    let straight: OptimizerState[] = [];
    for (let k = 0; k < CPU_BACKENDS.length; k++) {
      straight.push(keep(await optimizerAt(c, k).init(params)));
    }
    straight = (await lockstep(c, straight, grads, 0, c.cut, "straight")).trio;
    const saved = await Promise.all(straight.map(checkpointOf));
    for (let k = 1; k < saved.length; k++) {
      assert.deepEqual(saved[k], saved[0], `checkpoint of backend ${k} differs`);
    }
    const bytes = saved[c.source];
    if (typeof bytes === "string") {
      await lockstep(c, straight, grads, c.cut, c.calls.length, "straight");
      return;
    }
    const states: StatesFormat = c.convert ? (c.states === "8bit" ? "32bit" : "8bit") : c.states;
    const lr = c.schedule === "none" ? undefined : lrOf(c);
    const load = async (file: Uint8Array, which: number, states: StatesFormat) => {
      const { backend, threads } = CPU_BACKENDS[which];
      return keep(await loadState(file, { backend, threads, threadThreshold: 0, lr, states }));
    };
    let resumed: OptimizerState[] = [];
    for (let k = 0; k < CPU_BACKENDS.length; k++) resumed.push(await load(bytes, k, states));
    for (let k = 0; k < resumed.length; k++) {
      assert.equal(stateInternals(resumed[k]).config.run.states, states);
      assert.equal(resumed[k].step, straight[0].step);
      assert.equal(resumed[k].skippedSteps, straight[0].skippedSteps);
    }
    if (c.convert && c.states === "8bit") {
      // 8 → 32 bits decodes exactly; back into 8 bits, the codes hold the same values. (Not
      // always the same file: docs/SPEC.md "Checkpoints" of compact states says which blocks
      // come back otherwise; tests/compact_transitions_test.ts checks them.)
      const again = await load(await saveState(resumed[c.source]), c.source, "8bit");
      const decoded = async (s: OptimizerState) => ({
        ...await snapshot(s) as object,
        codes: [],
        norm: 0,
      });
      assert.deepEqual(await decoded(again), await decoded(straight[0]), "8 → 32 → 8 bits");
    }
    if (!c.convert) {
      const a = { ...await snapshot(straight[0]) as object, norm: 0 };
      for (const s of resumed) {
        assert.deepEqual({ ...await snapshot(s) as object, norm: 0 }, a, "loaded");
      }
    }
    const after = await lockstep(c, resumed, grads, c.cut, c.calls.length, `resumed (${states})`);
    resumed = after.trio;
    const rest = await lockstep(c, straight, grads, c.cut, c.calls.length, "straight");
    straight = rest.trio;
    // The same calls are refused with the same words, in either format and converted: a
    // checkpoint keeps the order given to init (tensor_order), which errors name tensors in,
    // whatever order an 8-bit arena keeps.
    assert.deepEqual(after.said, rest.said, "the resumed run's errors");
    if (c.convert) return;
    const taken = c.calls.slice(c.cut).some((call, i) => !refused(c, call, grads[c.cut + i]));
    const want = await snapshot(straight[0]) as { norm: number };
    const got = await snapshot(resumed[0]) as { norm: number };
    // (A state loaded and not stepped since has no norm of a last step.)
    if (!taken) got.norm = want.norm;
    assert.deepEqual(got, want, "the resumed run is not the uninterrupted one");
    const [last, lastStraight] = [await checkpointOf(resumed[1]), await checkpointOf(straight[2])];
    assert.deepEqual(last, lastStraight, "last save");
  } finally {
    for (const s of open) dispose(s);
  }
}

Deno.test(`combinations of every option on wasm, js and 2 threads, with a mid-run resume (${RUNS} cases, seed ${SEED})`, async () => {
  await fc.assert(fc.asyncProperty(combinationArb, runCombination), {
    numRuns: RUNS,
    seed: SEED,
    endOnFailure: true,
  });
});
