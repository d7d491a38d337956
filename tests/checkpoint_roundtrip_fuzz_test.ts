/**
 * saveState → loadState on random settings and step histories: every rule (Ranger and LookAhead
 * over any rule included), parameter groups, a schedule, 32-bit or 8-bit moments on tensors
 * either side of the 8-bit threshold, tensors of awkward names (non-ASCII, an object's prototype
 * keys) and shapes (empty, scalar, rank 3), and tensors saved beside the state by its holder (the
 * adapter's gradients accumulated and moving averages). Loaded on js and on wasm, the state is
 * the saved one bit for bit, saves the same bytes again (those of the state alone: the holder's
 * tensors are the holder's to read back), and its next step is the unbroken run's.
 * tests/resume_chain_test.ts resumes at several random cuts and thread counts.
 */
import assert from "node:assert/strict";
import fc from "fast-check";
import {
  dispose,
  loadState,
  lookahead,
  type OptimizerState,
  ranger,
  saveState,
  type ShapedTensor,
  type StatesFormat,
  step,
} from "../mod.ts";
import { addCheckpointExtras } from "../core/checkpoint_extras.ts";
import { split } from "./checkpoint_files.ts";
import {
  type GroupCase,
  groupsArb,
  lookaheadArb,
  lrOf,
  scheduleArb,
  snapshot,
} from "./option_mix.ts";
import { optimizerOf, RULE_TABLE, type RuleCase } from "./rule_table.ts";
import { prng, randomTensor, setting } from "./util.ts";

/**
 * `RADAM_ROUNDTRIP_RUNS` and `RADAM_ROUNDTRIP_SEED` (with `--allow-env`) run more cases, or others.
 */
const RUNS = setting("RADAM_ROUNDTRIP_RUNS") ?? 60;
const SEED = setting("RADAM_ROUNDTRIP_SEED") ?? 20261207;

/** Lengths around SIMD tails, the 8-bit threshold (4096) and its blocks of 256. */
const LENGTHS = [0, 1, 3, 255, 4095, 4096, 4353];

/** Names a state may hold: dotted, non-ASCII, an object's prototype keys. */
const NAMES = ["layer.0.weight", "é/ü", "constructor", "toString", "", "a b", "\ud83d\ude00"];

interface Tensor {
  name: string;
  length: number;
  /** `[n]` (a bare Float32Array), rank 3, or a scalar `[]` (length 1). */
  rank: 1 | 3 | 0;
}

interface RoundTrip {
  rowIndex: number;
  rule: RuleCase;
  ranger: boolean;
  lookahead?: { k: number; alpha: number };
  states: StatesFormat;
  tensors: Tensor[];
  groups: GroupCase[];
  schedule: "none" | "warmup" | "cosine" | "oneCycle" | "chain";
  steps: number;
  /** The holder's tensors saved beside the state: sums with their count, averages. */
  extras: { sums: boolean; averages: boolean };
  seed: number;
}

const tensorsArb: fc.Arbitrary<Tensor[]> = fc.uniqueArray(
  fc.record({
    name: fc.constantFrom(...NAMES),
    length: fc.constantFrom(...LENGTHS),
    rank: fc.constantFrom<Tensor["rank"]>(1, 3, 0),
  }),
  { minLength: 1, maxLength: 3, selector: (t) => t.name },
).map((ts) => ts.map((t) => (t.rank === 0 ? { ...t, length: 1 } : t)));

const roundTripArb: fc.Arbitrary<RoundTrip> = fc.integer({ min: 0, max: RULE_TABLE.length - 1 })
  .chain((rowIndex) =>
    fc.record({
      rowIndex: fc.constant(rowIndex),
      // (eps 0 makes 0 / 0 of a zero gradient: NaN, which no checkpoint holds)
      rule: RULE_TABLE[rowIndex].cases(true).filter((r) => r.options.eps !== 0),
      ranger: fc.boolean(),
      lookahead: lookaheadArb(3, [1, 0.5]),
      states: fc.constantFrom<StatesFormat>("32bit", "8bit"),
      tensors: tensorsArb,
      groups: groupsArb,
      schedule: scheduleArb,
      steps: fc.integer({ min: 0, max: 4 }),
      extras: fc.record({ sums: fc.boolean(), averages: fc.boolean() }),
      seed: fc.integer({ min: 0, max: 2 ** 31 - 1 }),
    })
  ).map((c) => ({ ...c, ranger: c.ranger && c.rule.optimizer === "radam" }));

/** The optimizer of a case on `backend`. */
function optimizerFor(c: RoundTrip, backend: "js" | "wasm") {
  const names = c.tensors.map((t) => t.name);
  // Group g takes the tensors at its residue; a group that takes none is left out (init refuses it).
  const all = c.groups.map((g) => ({
    match: (name: string) => names.indexOf(name) % g.modulus === g.residue,
    lrScale: g.lrScale,
    weightDecay: g.weightDecay,
  }));
  const taken = new Set(names.map((name) => all.findIndex((g) => g.match(name))));
  const groups = all.filter((_, k) => taken.has(k));
  const more = { backend, lr: lrOf(c), states: c.states, groups };
  if (c.ranger) {
    const { nesterov: _, ...options } = c.rule.options;
    return ranger({ ...options, ...more, ...c.lookahead });
  }
  const opt = optimizerOf(RULE_TABLE[c.rowIndex], c.rule, backend, more);
  return c.lookahead ? lookahead(opt, c.lookahead) : opt;
}

/** The shape of a tensor of the case. */
function shapeOf(t: Tensor): number[] {
  if (t.rank === 0) return [];
  if (t.rank === 1) return [t.length];
  return t.length === 0 ? [2, 0, 3] : [1, t.length, 1];
}

/** Initial params and each step's gradients, from the case's seed. */
function dataOf(c: RoundTrip) {
  const rand = prng(c.seed);
  const params: Record<string, Float32Array | ShapedTensor> = Object.create(null);
  for (const t of c.tensors) {
    const data = randomTensor(rand, t.length);
    params[t.name] = t.rank === 1 ? data : { data, shape: shapeOf(t) };
  }
  const grads = Array.from({ length: c.steps + 1 }, () => {
    const g: Record<string, Float32Array> = Object.create(null);
    for (const t of c.tensors) g[t.name] = randomTensor(rand, t.length);
    return g;
  });
  return { params: { ...params }, grads: grads.map((g) => ({ ...g })) };
}

/** Makes the holder of `state` save sums and averages beside it, as the adapter does. */
function withExtras(c: RoundTrip, state: OptimizerState): OptimizerState {
  const rand = prng(c.seed + 1);
  // (A TensorFlow.js variable always has a name: none is "", whose ".accum" is no extra's name.)
  const tensors = c.tensors.filter((t) => t.name !== "").flatMap((t) => [
    ...(c.extras.sums ? [{ name: `${t.name}.accum`, shape: shapeOf(t) }] : []),
    ...(c.extras.averages ? [{ name: `${t.name}.average`, shape: shapeOf(t) }] : []),
  ]).map((t) => ({ ...t, data: randomTensor(rand, t.shape.reduce((a, b) => a * b, 1)) }));
  // (Their count where there are sums: the adapter saves no count of none, a file refused.)
  const sums = tensors.some((t) => t.name.endsWith(".accum"));
  return addCheckpointExtras(state, () => ({
    metadata: sums ? { accum_count: "2" } : {} as Record<string, string>,
    tensors: Promise.resolve(tensors),
  }));
}

/** Runs a case: N steps, save, load on js and wasm, compare, one more step on each. */
async function runRoundTrip(c: RoundTrip): Promise<void> {
  const { params, grads } = dataOf(c);
  const open: OptimizerState[] = [];
  const keep = (s: OptimizerState) => (open.push(s), s);
  try {
    let state = keep(await optimizerFor(c, "wasm").init(params));
    for (let t = 0; t < c.steps; t++) state = keep(step(state, grads[t]));
    const alone = await saveState(state);
    const hasExtras = c.extras.sums || c.extras.averages;
    const bytes = hasExtras ? await saveState(withExtras(c, state)) : alone;
    if (hasExtras) {
      const names = Object.keys(split(bytes).header);
      for (const t of c.tensors.filter((t) => t.name !== "")) {
        assert.equal(names.includes(`${t.name}.accum`), c.extras.sums, `${t.name}.accum saved`);
      }
    }
    const copy = bytes.slice();
    const lr = c.schedule === "none" ? undefined : lrOf(c);
    const before = await snapshot(state);
    const next = await snapshot(keep(step(state, grads[c.steps])), { codes: false });
    for (const backend of ["js", "wasm"] as const) {
      const loaded = keep(await loadState(bytes, { backend, lr }));
      assert.deepEqual(bytes, copy, "loadState changed its bytes");
      assert.deepEqual(await snapshot(loaded), before, `${backend}: loaded`);
      assert.deepEqual(await saveState(loaded), alone, `${backend}: saved again`);
      const stepped = keep(step(loaded, grads[c.steps]));
      assert.deepEqual(await snapshot(stepped, { codes: false }), next, `${backend}: next step`);
    }
  } finally {
    for (const s of open) dispose(s);
  }
}

Deno.test(`fuzz: saveState → loadState on js and wasm is the state bit for bit, and its next step the unbroken run's (${RUNS} cases, seed ${SEED})`, async () => {
  await fc.assert(fc.asyncProperty(roundTripArb, runRoundTrip), {
    numRuns: RUNS,
    seed: SEED,
    endOnFailure: true,
  });
});
