/**
 * Chains of resumes (tests/resume_chain_test.ts on the CPU backends, tests/gpu/resume_chain_test.ts
 * on WebGPU): a random rule and options, run once without a break and once saved and loaded at
 * random steps onto random places, the two compared bit for bit.
 */
import assert from "node:assert/strict";
import fc from "fast-check";
import {
  dispose,
  loadState,
  lookahead,
  type NonFinitePolicy,
  type OptimizerState,
  ranger,
  readParams,
  saveState,
  type StatesFormat,
  step,
} from "../mod.ts";
import { stateInternals } from "../core/state.ts";
import { hasNonFinite, tensorNames } from "./cases.ts";
import { edit } from "./checkpoint_files.ts";
import {
  type GroupCase,
  groupsArb,
  groupsOf,
  lookaheadArb,
  lrOf,
  paramsOf,
  scheduleArb,
  type ScheduleCase,
  snapshot,
} from "./option_mix.ts";
import { optimizerOf, real, RULE_TABLE, type RuleCase } from "./rule_table.ts";
import { prng, randomTensor } from "./util.ts";

export { lrOf, snapshot };

/** Lengths around SIMD tails, the 8-bit threshold (4096) and its blocks of 256. */
const LENGTHS = [0, 1, 5, 255, 257, 4095, 4096, 4097, 4352, 5000];

/** Where a state may run: a backend, its threads (CPU) or its device (WebGPU). */
export interface Place {
  readonly backend: "wasm" | "js" | "webgpu";
  readonly threads?: number;
  readonly device?: GPUDevice;
}

/** The CPU places: wasm, js, wasm on 2 and on 3 threads. */
export const CPU_PLACES: readonly Place[] = [
  { backend: "wasm", threads: 1 },
  { backend: "js", threads: 1 },
  { backend: "wasm", threads: 2 },
  { backend: "wasm", threads: 3 },
];

/** A call: finite gradients (`huge`: times 10³⁴, whose squares overflow f32), or one not. */
export type Call = { kind: "ok"; huge: boolean } | { kind: "nonFinite"; value: number };

export interface Resume {
  /** After how many calls. */
  at: number;
  place: number;
  defaultThreshold: boolean;
  /** Pass `lr` again where the run's is a constant. */
  lrAgain: boolean;
  /** Pass the file's own `states`. */
  statesAgain: boolean;
  /** 8-bit: through a 32-bit checkpoint and back. */
  roundTrip: boolean;
}

export interface Chained {
  rowIndex: number;
  rule: RuleCase;
  ranger: boolean;
  states: StatesFormat;
  lengths: number[];
  shaped: boolean[];
  gc: boolean;
  clipGradNorm?: number;
  nonFinite: NonFinitePolicy;
  lookahead?: { k: number; alpha: number };
  groups: GroupCase[];
  schedule: ScheduleCase;
  calls: Call[];
  start: number;
  /** The step count both runs start from (a checkpoint's, edited), past what 32 bits hold. */
  startStep?: number;
  resumes: Resume[];
  seed: number;
}

const callArb: fc.Arbitrary<Call> = fc.oneof(
  { weight: 5, arbitrary: fc.constant({ kind: "ok" as const, huge: false }) },
  { weight: 1, arbitrary: fc.constant({ kind: "ok" as const, huge: true }) },
  {
    weight: 1,
    arbitrary: fc.record({
      kind: fc.constant("nonFinite" as const),
      value: fc.constantFrom(NaN, Infinity, -Infinity),
    }),
  },
);

const resumeArb = (places: number): fc.Arbitrary<Resume> =>
  fc.record({
    at: fc.nat(),
    place: fc.integer({ min: 0, max: places - 1 }),
    defaultThreshold: fc.boolean(),
    lrAgain: fc.boolean(),
    statesAgain: fc.boolean(),
    roundTrip: fc.boolean(),
  });

/**
 * Random chained runs over `places` places, under the given non-finite policies (WebGPU's
 * `"throw"` reports on a later call, which a lockstep comparison does not follow).
 */
export const chainedArb = (
  places: number,
  policies: readonly NonFinitePolicy[],
): fc.Arbitrary<Chained> =>
  fc.integer({ min: 0, max: RULE_TABLE.length - 1 }).chain((rowIndex) =>
    fc.record({
      rowIndex: fc.constant(rowIndex),
      // (eps 0 makes 0 / 0 of a zero gradient: NaN, which no checkpoint holds)
      rule: RULE_TABLE[rowIndex].cases(true).filter((r) => r.options.eps !== 0),
      ranger: fc.boolean(),
      states: fc.constantFrom<StatesFormat>("32bit", "8bit"),
      lengths: fc.array(fc.constantFrom(...LENGTHS), { minLength: 1, maxLength: 3 }),
      shaped: fc.array(fc.boolean(), { minLength: 3, maxLength: 3 }),
      gc: fc.boolean(),
      clipGradNorm: fc.option(fc.oneof(fc.constantFrom(1e-30), real(1e-3, 10)), { nil: undefined }),
      nonFinite: fc.constantFrom<NonFinitePolicy>(...policies),
      lookahead: lookaheadArb(4, [1]),
      groups: groupsArb,
      schedule: scheduleArb,
      calls: fc.array(callArb, { minLength: 1, maxLength: 10 }),
      start: fc.integer({ min: 0, max: places - 1 }),
      resumes: fc.array(resumeArb(places), { minLength: 1, maxLength: 3 }),
      startStep: fc.option(fc.constantFrom(2 ** 31 - 2, 2 ** 32 - 3, 2 ** 53 - 12), {
        nil: undefined,
        freq: 4,
      }),
      seed: fc.integer({ min: 0, max: 2 ** 31 - 1 }),
    })
  ).map((c) => ({
    ...c,
    // Ranger is RAdam's (LookAhead and gc its own defaults); propagate's NaN cannot be saved.
    ranger: c.ranger && c.rule.optimizer === "radam",
    resumes: c.resumes.map((r) => ({ ...r, at: r.at % (c.calls.length + 1) }))
      .sort((a, b) => a.at - b.at),
  }));

/** The optimizer of a chained run, on one of the places. */
export function optimizerAt(c: Chained, place: Place) {
  const { backend, threads } = place;
  const groups = groupsOf(c.groups, c.lengths.length);
  const more = {
    lr: lrOf(c),
    states: c.states,
    clipGradNorm: c.clipGradNorm,
    nonFinite: c.nonFinite,
    groups,
    ...(backend === "webgpu" ? {} : { threads, threadThreshold: 0 }),
  };
  if (c.ranger) {
    const { nesterov: _, ...options } = c.rule.options;
    const { k, alpha } = c.lookahead ?? {};
    // (gc: Ranger's default, true, or turned off)
    return ranger({ ...options, ...more, backend, k, alpha, gc: c.gc ? undefined : false });
  }
  const opt = optimizerOf(RULE_TABLE[c.rowIndex], c.rule, backend, { ...more, gc: c.gc });
  return c.lookahead ? lookahead(opt, c.lookahead) : opt;
}

/** Initial params (rank 2 where shaped and the length factors) and each call's gradients. */
export function dataOf(c: Chained) {
  const rand = prng(c.seed);
  const names = tensorNames(c);
  const params = paramsOf(c, rand);
  const grads = c.calls.map((call) => {
    const g: Record<string, Float32Array> = {};
    names.forEach((name, i) => (g[name] = randomTensor(rand, c.lengths[i])));
    if (call.kind === "ok" && call.huge) {
      for (const name of names) g[name] = g[name].map((x) => x * 1e34);
    }
    const k = Math.floor(rand() * names.length);
    const at = Math.floor(rand() * c.lengths[k]);
    if (call.kind === "nonFinite" && c.lengths[k] > 0) g[names[k]][at] = call.value;
    return g;
  });
  return { params, grads };
}

/**
 * One call: the state to go on with, and the message of the error it threw ("" where none; a
 * refused call leaves the state unchanged). On WebGPU, which finds a non-finite gradient under
 * `"throw"` on the device and says so at a later call, a read after the step waits for the
 * device's report and throws its error (the state the step returned goes on).
 */
async function callOn(
  state: OptimizerState,
  g: Record<string, Float32Array>,
): Promise<[OptimizerState, string]> {
  let next = state;
  try {
    next = step(state, g);
    if (stateInternals(next).backend.kind === "device") await readParams(next);
    return [next, ""];
  } catch (error) {
    return [next, `${(error as Error).name}: ${(error as Error).message}`];
  }
}

/** A checkpoint, or undefined where the state holds a non-finite value ("propagate"). */
async function checkpointOf(state: OptimizerState): Promise<Uint8Array | undefined> {
  try {
    return await saveState(state);
  } catch (error) {
    assert.match((error as Error).message, /^Cannot checkpoint: /);
    return undefined;
  }
}

/** Runs a chained case; throws where a resumed run strays from the uninterrupted one. */
export async function runChained(c: Chained, places: readonly Place[]): Promise<void> {
  const { params, grads } = dataOf(c);
  const open: OptimizerState[] = [];
  const keep = (s: OptimizerState) => (open.push(s), s);
  try {
    const initAt = async (place: Place) =>
      keep(await optimizerAt(c, place).init(params, { device: place.device }));
    let straight = await initAt(places[0]);
    let resumed = await initAt(places[c.start]);
    if (c.startStep !== undefined) {
      // Both from a checkpoint of a long run: the fresh state's, its step count edited.
      const long = edit(await saveState(straight), (h) => (h.__metadata__.step = `${c.startStep}`));
      const lr = c.schedule === "none" ? undefined : lrOf(c);
      const loadAt = async ({ backend, threads, device }: Place) =>
        keep(await loadState(long, { backend, threads, device, lr }));
      [straight, resumed] = [await loadAt(places[0]), await loadAt(places[c.start])];
    }
    // Whether the resumed state's codes may differ from the run's (8 → 32 → 8, no step since).
    let recoded = false;
    let next = 0;
    for (let i = 0; i <= c.calls.length; i++) {
      for (; next < c.resumes.length && c.resumes[next].at === i; next++) {
        const r = c.resumes[next];
        const bytes = await checkpointOf(resumed);
        if (bytes === undefined) continue;
        const { backend, threads, device } = places[r.place];
        const lr = c.schedule !== "none" || r.lrAgain ? lrOf(c) : undefined;
        const options = backend === "webgpu"
          ? { backend, lr, device }
          : { backend, threads, lr, threadThreshold: r.defaultThreshold ? undefined : 0 };
        const file = stateInternals(resumed).config.run.states;
        const states = r.statesAgain ? file : undefined;
        const where = `resume ${next + 1} after call ${i} on ${backend} × ${threads ?? 1}`;
        if (r.roundTrip && file === "8bit") {
          const wide = keep(await loadState(bytes, { ...options, states: "32bit" }));
          resumed = keep(await loadState(await saveState(wide), { ...options, states: "8bit" }));
          recoded = true;
        } else {
          resumed = keep(await loadState(bytes, { ...options, states }));
          assert.deepEqual(await saveState(resumed), bytes, `${where}: saved again`);
        }
        assert.deepEqual(
          await snapshot(resumed, { codes: !recoded }),
          await snapshot(straight, { codes: !recoded }),
          `${where}: loaded`,
        );
      }
      if (i === c.calls.length) break;
      const where = `call ${i + 1} (${JSON.stringify(c.calls[i])})`;
      let said: string;
      [straight, said] = await callOn(straight, grads[i]);
      const [after, saidResumed] = await callOn(resumed, grads[i]);
      assert.equal(saidResumed, said, where);
      const skipped = c.nonFinite === "skip" && hasNonFinite(grads[i]);
      if (after !== resumed && said === "" && !skipped) recoded = false;
      resumed = after;
    }
    assert.deepEqual(
      await snapshot(resumed, { codes: !recoded }),
      await snapshot(straight, { codes: !recoded }),
      "the resumed run is not the uninterrupted one",
    );
  } finally {
    for (const s of open) dispose(s);
  }
}
