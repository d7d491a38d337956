/**
 * `checkpointInfo`: what a checkpoint's header holds, read without loading it. For every rule of
 * the table (tests/rule_table.ts), in both formats of the moments, with the training-loop
 * features, parameter groups, LookAhead and Ranger, a schedule, and tensors saved beside the
 * state: the info of a state's checkpoint is the optimizer's settings and the state's counts,
 * names and shapes. Damaged and hostile files (tests/checkpoint_hostile_files.ts) are refused
 * with loadState's own error, but for what only the values show, which it does not read.
 */
import assert from "node:assert/strict";
import fc from "fast-check";
import {
  chain,
  CheckpointError,
  type CheckpointInfo,
  checkpointInfo,
  cosineDecay,
  lion,
  loadState,
  lookahead,
  type Optimizer,
  ranger,
  saveState,
  type Settings,
  sgd,
  type ShapedTensor,
  step,
} from "../mod.ts";
import { groupsOf } from "../core/plan.ts";
import { addCheckpointExtras } from "../core/checkpoint_extras.ts";
import { edit, type Header, join, sample, sample8bit, split } from "./checkpoint_files.ts";
import { applyEdit, editArb, samples } from "./checkpoint_hostile_files.ts";
import { FORMATS, RULE_TABLE } from "./rule_table.ts";
import { randoms, saying } from "./util.ts";

/** The tensors the states are made of, in the order given to `init`. */
const SHAPES: Readonly<Record<string, number[]>> = {
  "fc.weight": [3, 5],
  "fc.bias": [4],
  big: [4100], // compact with 8-bit moments
};

/** Parameters of `SHAPES`, seeded. */
function params(seed: number): Record<string, ShapedTensor> {
  return Object.fromEntries(
    Object.entries(SHAPES).map(([name, shape], i) => [
      name,
      { data: randoms(shape.reduce((a, b) => a * b, 1), seed + i), shape },
    ]),
  );
}

/** Settings as plain values: each group's `match` left out (a file holds which tensor is in it). */
function plain(settings: Settings): unknown {
  const hyperparameters = { ...settings.hyperparameters };
  if (typeof hyperparameters.lr === "function") hyperparameters.lr = 0; // (checked apart)
  return {
    ...settings,
    hyperparameters,
    loop: {
      ...settings.loop,
      groups: settings.loop.groups.map(({ lrScale, weightDecay }) => ({ lrScale, weightDecay })),
    },
  };
}

/**
 * Asserts that `info`, of a checkpoint of `state` made by `opt` from parameters named
 * `names`, is the optimizer's settings and the state's counts, names and shapes.
 */
function checkInfo(
  info: CheckpointInfo,
  opt: Optimizer<unknown>,
  state: { step: number; skippedSteps: number; optimizer: string },
  names: readonly string[],
): void {
  assert.deepEqual(plain(info.settings), plain(opt.settings as Settings));
  assert.equal(info.optimizer, opt.settings.name);
  assert.equal(info.optimizer, state.optimizer);
  // Each group takes the tensors the optimizer's took.
  assert.deepEqual(groupsOf(info.settings, names), groupsOf(opt.settings, names));
  const settings = opt.settings as Settings;
  const schedule = typeof settings.hyperparameters.lr === "function";
  assert.equal(info.lrSchedule, schedule);
  if (schedule) {
    const lr = info.settings.hyperparameters.lr as (t: number) => number;
    assert.throws(() => lr(1), /saved with a learning-rate schedule.*loadState\(bytes, \{ lr \}\)/);
  } else assert.equal(info.settings.hyperparameters.lr, settings.hyperparameters.lr);
  assert.equal(info.step, state.step);
  assert.equal(info.skippedSteps, state.skippedSteps);
  assert.deepEqual(info.names, names);
  assert.deepEqual(info.shapes, Object.fromEntries(names.map((n) => [n, SHAPES[n]])));
  assert.equal(info.states, opt.settings.run.states);
  assert.deepEqual(info.extras, { accumulated: {}, averages: {} });
  for (const value of [info, info.names, info.shapes, info.extras, info.metadata, info.settings]) {
    assert.ok(Object.isFrozen(value));
  }
}

/** A group drawn over the tensors' names, and the training-loop options of a case. */
const loopArb = fc.record({
  gc: fc.boolean(),
  clipGradNorm: fc.option(fc.constantFrom(0.5, 1, 1e3), { nil: undefined }),
  nonFinite: fc.constantFrom("skip", "throw", "propagate"),
  groups: fc.constantFrom(
    [],
    [{ match: /bias$/, weightDecay: 0 }],
    [{ match: (n: string) => n === "big", lrScale: 0.5 }, { match: /^fc\./, lrScale: 2 }],
  ),
  lookahead: fc.option(
    fc.record({
      k: fc.integer({ min: 1, max: 9 }),
      alpha: fc.double({ min: 0.1, max: 1, noNaN: true }),
    }),
    { nil: undefined },
  ),
  schedule: fc.boolean(),
  states: fc.constantFrom(...FORMATS),
  skip: fc.boolean(),
});

for (const row of RULE_TABLE) {
  Deno.test(`checkpointInfo: ${row.rule}'s random cases, with loop features, groups, LookAhead, schedules, both formats`, async () => {
    await fc.assert(
      fc.asyncProperty(row.cases(true), loopArb, async (c, loop) => {
        const { lookahead: wrap, schedule, skip, clipGradNorm, ...rest } = loop;
        const options = {
          ...c.options,
          ...rest,
          ...(clipGradNorm === undefined ? {} : { clipGradNorm }),
          ...(schedule ? { lr: cosineDecay(0.01, { decaySteps: 10 }) } : {}),
        };
        const inner = row.optimizers[c.optimizer](options);
        const opt: Optimizer<unknown> = wrap ? lookahead(inner, wrap) : inner;
        let state = await opt.init(params(1));
        const grads = (seed: number, bad: boolean) =>
          Object.fromEntries(
            Object.entries(SHAPES).map(([name, shape], i) => {
              const g = randoms(shape.reduce((a, b) => a * b, 1), seed + i);
              if (bad && i === 0) g[0] = NaN;
              return [name, g];
            }),
          );
        state = step(state, grads(10, false));
        if (skip && rest.nonFinite === "skip") state = step(state, grads(20, true));
        const info = checkpointInfo(await saveState(state));
        checkInfo(info, opt, state, Object.keys(SHAPES));
      }),
      { numRuns: 25, seed: 20261207 },
    );
  });
}

Deno.test("checkpointInfo: Ranger, 8-bit, with groups, is its settings; loadState resumes it with half info's lr", async () => {
  const opt = ranger({
    lr: 0.02,
    k: 4,
    alpha: 0.3,
    states: "8bit",
    groups: [{ match: /bias/, weightDecay: 0, lrScale: 3 }],
    weightDecay: 0.01,
  });
  let state = await opt.init(params(5));
  state = step(state, Object.fromEntries(Object.entries(params(9)).map(([n, t]) => [n, t.data])));
  const bytes = await saveState(state);
  const info = checkpointInfo(bytes);
  checkInfo(info, opt, state, Object.keys(SHAPES));
  assert.deepEqual(info.settings.lookahead, { k: 4, alpha: 0.3 });
  assert.equal(info.metadata.q8 !== undefined, true);
  const loaded = await loadState(bytes, {
    backend: "js",
    lr: info.settings.hyperparameters.lr as number / 2,
  });
  assert.equal(loaded.optimizer, info.optimizer);
  assert.equal(loaded.step, info.step);
});

Deno.test("checkpointInfo: a schedule is not stored: lrSchedule, and an lr that says to pass it to loadState", async () => {
  const lr = cosineDecay(0.01, { decaySteps: 5 });
  const { bytes } = (await samples()).find((s) => s.what === "lion schedule")!;
  const info = checkpointInfo(bytes);
  assert.equal(info.lrSchedule, true);
  assert.equal(info.metadata.lr_schedule, "true");
  assert.equal(typeof info.settings.hyperparameters.lr, "function");
  assert.throws(() => (info.settings.hyperparameters.lr as (t: number) => number)(1), TypeError);
  // loadState still needs the schedule; with it, it resumes.
  await assert.rejects(loadState(bytes), TypeError);
  assert.equal((await loadState(bytes, { lr, backend: "js" })).step, info.step);
  // The stand-in given for a schedule is refused where it is given, not at the first step.
  const standIn = info.settings.hyperparameters.lr as (t: number) => number;
  const refused = saying(
    TypeError,
    "got the stand-in that checkpointInfo() gives for the schedule of a checkpoint saved with " +
      "one, which throws where it is called: pass the schedule itself",
  );
  assert.throws(() => sgd({ lr: standIn }), refused);
  assert.throws(() => lion({ lr: standIn, weightDecay: 0.1 }), refused);
  await assert.rejects(loadState(bytes, { lr: standIn }), refused);
  assert.throws(() => chain([standIn, 5], [lr, 5]), refused);
  // And so are settings holding it, where an optimizer's settings are read (lookahead(); the
  // TensorFlow.js adapter's tfOptimizer(info), tests/tfjs/input_test.ts).
  const held = saying(TypeError, "whose lr is the stand-in that checkpointInfo() gives");
  assert.throws(() => lookahead(info as unknown as Optimizer, { k: 2 }), held);
  assert.throws(() => lookahead({ ...lion({ lr }), settings: info.settings }), held);
});

Deno.test("checkpointInfo: tensors a holder saved beside the state, by variable, with their shapes", async () => {
  const { bytes } = (await samples()).find((s) => s.what === "sgd 8bit extras")!;
  const info = checkpointInfo(bytes);
  assert.deepEqual(info.extras, {
    accumulated: { w: [4097] },
    averages: { b: [2, 2], frozen: [3] },
  });
  assert.equal(info.metadata.accum_count, "2");
  assert.equal(info.states, "8bit");
  assert.deepEqual(info.names, ["w", "b"]);
  // A parameter whose name ends so is a parameter, not an extra.
  const opt = ranger();
  const state = await opt.init({ "x.average": new Float32Array(2) });
  addCheckpointExtras(state, () => ({
    metadata: {},
    tensors: Promise.resolve([{ name: "y.average", shape: [1], data: new Float32Array(1) }]),
  }));
  const other = checkpointInfo(await saveState(state));
  assert.deepEqual(other.names, ["x.average"]);
  assert.deepEqual(other.extras, { accumulated: {}, averages: { y: [1] } });
});

/** The error `f` throws (or rejects with), or undefined. */
async function errorOf(f: () => unknown): Promise<Error | undefined> {
  try {
    await f();
    return undefined;
  } catch (e) {
    return e as Error;
  }
}

Deno.test("checkpointInfo: not a Uint8Array, not a checkpoint: loadState's TypeError and CheckpointError", async () => {
  const bytes = await sample();
  const weights = join(
    JSON.stringify({ w: { dtype: "F32", shape: [1], data_offsets: [0, 4] } }),
    new Uint8Array(4),
  );
  const given: unknown[] = [
    "model.safetensors",
    bytes.buffer,
    new DataView(bytes.buffer),
    Array.from(bytes.subarray(0, 8)),
    weights,
    new Uint8Array(0),
    new Uint8Array(16),
    bytes.subarray(0, 40),
    edit(bytes, (h) => h.__metadata__.format = "other"),
    edit(bytes, (h) => h.__metadata__.optimizer = "adagrad"),
  ];
  for (const value of given) {
    const expected = await errorOf(() => loadState(value as Uint8Array, { backend: "js" }));
    const got = await errorOf(() => checkpointInfo(value as Uint8Array));
    assert.ok(expected !== undefined && got !== undefined);
    assert.equal(got.constructor, expected.constructor);
    assert.equal(got.message, expected.message);
  }
});

Deno.test("checkpointInfo: each header check of loadState's, with its error", async () => {
  const bytes = await sample8bit();
  const codes = "fc.weight.exp_avg.codes";
  const scales = "fc.weight.exp_avg_sq.scales";
  const edits: ((h: Header) => void)[] = [
    (h) => h.__metadata__.q8 = "0",
    (h) => delete h.__metadata__.q8,
    (h) => h.__metadata__.states = "32bit",
    (h) => h.__metadata__.states = "4bit",
    (h) => h.__metadata__.format_version = "2",
    (h) => h.__metadata__.step = "-1",
    (h) => delete h.__metadata__.skipped_steps,
    (h) => h.__metadata__.tensor_order = '["fc.bias"]',
    (h) => h.__metadata__.tensor_order = '["fc.weight","fc.bias","fc.bias"]',
    (h) => h.__metadata__.tensor_order = "[[[[0]]]]",
    (h) => h.__metadata__.hyperparameters = '{"lr":0.01}',
    (h) => h.__metadata__.hyperparameters = '{"lr":0.01,"lr":0.02}',
    (h) => h.__metadata__.lr_schedule = "maybe",
    (h) => h.__metadata__.tensor_groups = "[1,0]",
    (h) => h[codes].dtype = "U8",
    (h) => h[scales].dtype = "I8",
    (h) => h[scales].shape = [h[scales].shape[0] * 4 / 4, 1],
    (h) => h["fc.bias"].shape = [1, 2],
    (h) => (h["fc.bias.slow"] = h["fc.bias"], delete h["fc.bias"]),
    (h) => (h["w.accum"] = h["fc.bias"], delete h["fc.bias"]),
    (h) => h.__metadata__ = { ...h.__metadata__, hyperparameters: '{"lr":1,"threads":4}' },
  ];
  for (const change of edits) {
    const bad = edit(bytes, change);
    const expected = await errorOf(() => loadState(bad, { backend: "js" }));
    assert.ok(expected instanceof CheckpointError, String(change));
    assert.throws(() => checkpointInfo(bad), (e: Error) => {
      assert.equal(e.message, expected.message);
      return e instanceof CheckpointError;
    });
  }
});

Deno.test("checkpointInfo: reads no values (a negative second moment is not seen) but takes the whole file (a cut one is truncated)", async () => {
  for (const bytes of [await sample(), await sample8bit()]) {
    const { header, data } = split(bytes);
    const nan = data.slice();
    const [begin] = header["fc.bias.exp_avg_sq"].data_offsets;
    new DataView(nan.buffer).setFloat32(begin, -1, true);
    const poked = join(
      new TextDecoder().decode(bytes.subarray(8, bytes.length - data.length)),
      nan,
    );
    await assert.rejects(loadState(poked, { backend: "js" }), CheckpointError);
    assert.deepEqual(checkpointInfo(poked), checkpointInfo(bytes));
    const cut = bytes.subarray(0, bytes.length - 1);
    const loadError = await errorOf(() => loadState(cut, { backend: "js" }));
    assert.throws(() => checkpointInfo(cut), (e: Error) => {
      assert.ok(e instanceof CheckpointError);
      assert.match(e.message, /truncated/);
      assert.equal(e.message, loadError?.message);
      return true;
    });
  }
});

/**
 * Whether `message` is of what only a tensor's values show (which checkpointInfo does not read).
 */
function aboutValues(message: string): boolean {
  return /^Tensor "[^"]*"\[\d+\] is /.test(message);
}

Deno.test("checkpointInfo: damaged and hostile files are refused with loadState's error, but for their values", async () => {
  const all = await samples();
  // A stand-in schedule for a file edited to say it was saved with one.
  const anyLr = (t: number) => 0.01 / (1 + t);
  let compared = 0;
  await fc.assert(
    fc.asyncProperty(fc.nat(all.length - 1), editArb, async (i, e) => {
      const sampleFile = all[i];
      const bytes = applyEdit(sampleFile.bytes, e);
      const metadata = (() => {
        try {
          return split(bytes).header.__metadata__;
        } catch {
          return undefined;
        }
      })();
      const lr = sampleFile.lr ?? (metadata?.lr_schedule === "true" ? anyLr : undefined);
      const loadError = await errorOf(async () => {
        const state = await loadState(bytes, { backend: "js", ...(lr ? { lr } : {}) });
        return state;
      });
      const infoError = await errorOf(() => checkpointInfo(bytes));
      if (loadError === undefined) {
        assert.equal(infoError, undefined, `${infoError?.message}`);
        return;
      }
      if (aboutValues(loadError.message)) return; // (either: it reads no values)
      // (A CheckpointError, or a RangeError of a state too large to save: planned alike.)
      assert.ok(
        infoError !== undefined,
        `checkpointInfo took what loadState refused: ${loadError.message}`,
      );
      assert.equal(infoError.constructor, loadError.constructor);
      assert.equal(infoError.message, loadError.message);
      compared++;
    }),
    { numRuns: 400, seed: 20261207 },
  );
  assert.ok(compared > 100, `${compared} refusals compared`);
});
