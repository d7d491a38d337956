/**
 * A state `optimizer.loadState` read, kept as `optimizer.state` until a step, near the cap on a
 * checkpoint header's length: a `setLearningRate` whose rate (its digits in the header) would take
 * its checkpoint past the cap is refused with the step's RangeError, nothing changed (the next
 * step gives the bits of a run that never called it); and one whose checkpoint only the sums and
 * averages saved beside it take past the cap is not kept, as one past it alone is not: the step
 * then refuses it, where `saveState(optimizer.state)` failed after the load, at the file's write;
 * so is one kept until a call that only sums adds sums that take it past the cap. A
 * `setLearningRate` after a step is refused so too, at once, where the step it marks to remake
 * the state would have refused it. The cap is lowered for these tests (`setHeaderCap`), so that
 * their checkpoints' headers are of a few kilobytes, not of 100 MB.
 */
import assert from "node:assert/strict";
import { radam, saveState } from "../../mod.ts";
import type { Settings } from "../../base/settings.ts";
import { checkSavableSize, type SavedBeside } from "../../core/checkpoint_header.ts";
import { planState } from "../../core/plan.ts";
import { type TfOptimizer, tfOptimizer, type TfOptimizerOptions } from "../../tfjs.ts";
import { stateInternals } from "../../core/state.ts";
import { tf, uniqueNames, useBackend } from "./helpers.ts";
import { cappedTest } from "../checkpoint_files.ts";
import { workDone } from "../work_counts.ts";

const named = uniqueNames("loaded_cap");

/** The cap on a header's length in these tests. */
const CAP = 40_000;

/** The longest name of these tests' variables, less room for a prefix. */
const LONGEST = 600;

/** The RangeError message of a state past the cap. */
const PAST_CAP = new RegExp(`would have a header of \\d+ bytes, above the cap of ${CAP} `);

/** A test run with the cap lowered to {@linkcode CAP}. */
function capped(name: string, fn: () => Promise<void>): void {
  cappedTest(CAP, name, fn);
}

/**
 * By how many bytes the header of a checkpoint of a state of `config` over scalar tensors `names`
 * (with `beside`) would pass the cap, at its widest step counts: 0 where it fits.
 */
function excess(
  config: Settings,
  names: readonly string[],
  beside?: (names: readonly string[]) => SavedBeside,
): number {
  try {
    const layout = planState(config, names, names.map(() => 1));
    checkSavableSize(config, layout, names.map(() => []), names, beside?.(names));
    return 0;
  } catch (error) {
    if (!(error instanceof RangeError)) throw error;
    return Number(/a header of (\d+) bytes/.exec(error.message)![1]) - CAP;
  }
}

/** Whether a checkpoint of such a state ({@linkcode excess}) fits the cap. */
function fits(
  config: Settings,
  names: readonly string[],
  beside?: (names: readonly string[]) => SavedBeside,
): boolean {
  return excess(config, names, beside) === 0;
}

/**
 * Names of scalars (each within a tensor's limit) whose state under `config` just fits the cap
 * (with `beside`): the name of each is `perChar` times in the header, and the last is the
 * longest that fits.
 */
function justFitting(
  config: Settings,
  perChar: number,
  beside?: (names: readonly string[]) => SavedBeside,
): string[] {
  const prefix = named("w");
  let n = Math.floor(CAP / (perChar * (LONGEST + 20) + 400));
  const of = (last: number) => [
    ...Array.from({ length: n }, (_, i) => `${prefix}.${i}.${"x".repeat(LONGEST)}`),
    `${prefix}.last.${"x".repeat(last)}`,
  ];
  while (!fits(config, of(0), beside)) n--;
  let over: number;
  while ((over = excess(config, of(LONGEST), beside)) === 0) n++;
  // (The header is padded to 8 bytes: near the cap, within a few characters.)
  let last = LONGEST - Math.ceil(over / perChar);
  while (!fits(config, of(last), beside)) last--;
  while (fits(config, of(last + 1), beside)) last++;
  return of(last);
}

/** Scalar variables of these names, each 2. */
function variables(names: readonly string[]): tf.Variable[] {
  return names.map((name) => tf.variable(tf.scalar(2), true, name));
}

/** Gradients `g` for each of `vars`. */
function gradients(vars: readonly tf.Variable[], g: number): tf.NamedTensorMap {
  return Object.fromEntries(vars.map((v) => [v.name, tf.scalar(g)]));
}

/** A checkpoint of `make()` after one step over `vars`. */
async function savedAfterStep(make: () => TfOptimizer, vars: tf.Variable[]): Promise<Uint8Array> {
  const opt = make();
  const grads = gradients(vars, 0.5);
  opt.applyGradients(grads);
  const bytes = await saveState(opt.state!);
  opt.dispose();
  tf.dispose(Object.values(grads));
  return bytes;
}

const LONG_LR = 1.2345678901234567e-10;

capped(
  "tfjs: setLearningRate after loadState whose rate would take the checkpoint past the cap is refused, nothing changed: the step gives the bits of a run that never called it",
  async () => {
    await useBackend("cpu");
    const make = () => tfOptimizer(radam({ lr: 0.5 }));
    const names = justFitting(make().settings as Settings, 4);
    assert.ok(!fits(radam({ lr: LONG_LR }).settings as Settings, names)); // (the rate's digits)
    const vars = variables(names);
    const bytes = await savedAfterStep(make, vars);
    const run = async (failed: boolean) => {
      for (const v of vars) v.assign(tf.scalar(2));
      const opt = make();
      await opt.loadState(bytes);
      const state = opt.state;
      assert.ok(state !== undefined);
      if (failed) {
        assert.throws(() => opt.setLearningRate(LONG_LR), (e: Error) => {
          assert.ok(e instanceof RangeError, String(e));
          assert.match(e.message, PAST_CAP);
          return true;
        });
        assert.equal(opt.learningRate, 0.5);
        assert.equal(opt.state, state);
      }
      const saved = await saveState(opt.state!);
      const grads = gradients(vars, 0.25);
      opt.applyGradients(grads);
      tf.dispose(Object.values(grads));
      const values = await Promise.all(vars.map(async (v) => (await v.data())[0]));
      const after = [values, opt.iterations, await saveState(opt.state!)] as const;
      opt.dispose();
      return { saved, after };
    };
    const never = await run(false), failed = await run(true);
    assert.deepEqual(failed.saved, never.saved);
    assert.deepEqual(failed.after, never.after);
    tf.dispose(vars);
  },
);

capped(
  "tfjs: a state loadState read whose checkpoint only the averages saved beside it take past the cap is not kept; the step refuses it",
  async () => {
    await useBackend("cpu");
    const options: TfOptimizerOptions = { ema: true };
    const make = () => tfOptimizer(radam({ lr: 0.5 }), options);
    const averages = (names: readonly string[]): SavedBeside => ({
      tensors: names.map((name) => ({
        name: `${name}.average`,
        shape: [],
        dtype: "F32",
        byteLength: 4,
      })),
      metadata: {},
    });
    const names = justFitting(make().settings as Settings, 5, averages);
    const vars = variables(names);
    const bytes = await savedAfterStep(make, vars);
    // Longer settings: the state alone fits, not with its averages (whatever its step counts).
    const longer = radam({ lr: LONG_LR, eps: LONG_LR, betas: [0.12345678901234567, 0.987654321] });
    assert.ok(fits(longer.settings as Settings, names));
    assert.ok(!fits(longer.settings as Settings, names, averages));
    for (const v of vars) v.assign(tf.scalar(2));
    const opt = tfOptimizer(longer, options);
    await opt.loadState(bytes);
    assert.equal(opt.state, undefined); // (was kept, and its save failed at the file's write)
    assert.equal(opt.iterations, 1);
    const grads = gradients(vars, 0.25);
    assert.throws(() => opt.applyGradients(grads), (e: Error) => {
      assert.ok(e instanceof RangeError, String(e));
      assert.match(
        e.message,
        new RegExp(`above the cap of ${CAP} \\(\\d+ tensors, and \\d+ saved beside`),
      );
      return true;
    });
    for (const v of vars) assert.deepEqual(await v.data(), new Float32Array([2]));
    opt.dispose();
    tf.dispose([...vars, ...Object.values(grads)]);
  },
);

capped(
  "tfjs: a state loadState read is not kept past a call that only sums, whose sums take its checkpoint past the cap; the step refuses it",
  async () => {
    await useBackend("cpu");
    const sums = (names: readonly string[]): SavedBeside => ({
      tensors: names.map((name) => ({
        name: `${name}.accum`,
        shape: [],
        dtype: "F32",
        byteLength: 4,
      })),
      metadata: { accum_count: "1" },
    });
    // Saved at a step (no sums); loaded into an optimizer that sums 2 calls: kept, until a call
    // sums (the state it would make, with its sums, refused: none made).
    const make = () => tfOptimizer(radam({ lr: 0.5 }));
    const names = justFitting(make().settings as Settings, 4);
    assert.ok(!fits(make().settings as Settings, names, sums));
    const vars = variables(names);
    const bytes = await savedAfterStep(make, vars);
    for (const v of vars) v.assign(tf.scalar(2));
    const opt = tfOptimizer(radam({ lr: 0.5 }), { gradientAccumulationSteps: 2 });
    await opt.loadState(bytes);
    assert.ok(opt.state !== undefined);
    const grads = gradients(vars, 0.25);
    opt.applyGradients(grads); // (summed)
    // (It was kept, and saveState(optimizer.state) failed at the file's write.)
    assert.equal(opt.state, undefined);
    assert.throws(() => opt.applyGradients(grads), (e: Error) => {
      assert.ok(e instanceof RangeError, String(e));
      assert.match(
        e.message,
        new RegExp(`above the cap of ${CAP} \\(\\d+ tensors, and \\d+ saved beside`),
      );
      return true;
    });
    assert.equal(opt.iterations, 1);
    for (const v of vars) assert.deepEqual(await v.data(), new Float32Array([2]));
    opt.dispose();
    tf.dispose([...vars, ...Object.values(grads)]);
  },
);

/** What an optimizer with option `ema` saves beside a state over scalars `names`. */
function averagesOf(names: readonly string[]): SavedBeside {
  const tensors = names.map((name) => ({
    name: `${name}.average`,
    shape: [],
    dtype: "F32" as const,
    byteLength: 4,
  }));
  return { tensors, metadata: {} };
}

for (const ema of [false, true]) {
  capped(
    `tfjs: setLearningRate after a step whose rate would take the checkpoint past the cap is refused at once${
      ema ? " (the averages saved beside it counted)" : ""
    }, nothing changed: the next step gives the bits of a run that never called it`,
    async () => {
      await useBackend("cpu");
      const options: TfOptimizerOptions = ema ? { ema: true } : {};
      const make = () => tfOptimizer(radam({ lr: 0.5 }), options);
      const beside = ema ? averagesOf : undefined;
      const names = justFitting(make().settings as Settings, ema ? 5 : 4, beside);
      assert.ok(!fits(radam({ lr: LONG_LR }).settings as Settings, names, beside));
      if (ema) assert.ok(fits(radam({ lr: LONG_LR }).settings as Settings, names)); // (alone: fits)
      const vars = variables(names);
      const run = async (failed: boolean) => {
        for (const v of vars) v.assign(tf.scalar(2));
        const opt = make();
        const first = gradients(vars, 0.5);
        opt.applyGradients(first);
        tf.dispose(Object.values(first));
        const state = opt.state;
        if (failed) {
          assert.throws(() => opt.setLearningRate(LONG_LR), (e: Error) => {
            assert.ok(e instanceof RangeError, String(e));
            assert.match(e.message, PAST_CAP);
            return true;
          });
          assert.throws(() => (opt.learningRate = LONG_LR), RangeError); // (the same setter)
          assert.equal(opt.learningRate, 0.5);
          assert.equal(opt.state, state);
        }
        const grads = gradients(vars, 0.25);
        opt.applyGradients(grads); // (before the fix: refused here, the rate taken)
        tf.dispose(Object.values(grads));
        const values = await Promise.all(vars.map(async (v) => (await v.data())[0]));
        const after = [values, opt.iterations, await saveState(opt.state!)] as const;
        opt.dispose();
        return after;
      };
      assert.deepEqual(await run(true), await run(false));
      tf.dispose(vars);
    },
  );
}

for (
  const options of [{}, { ema: true }, { gradientAccumulationSteps: 3 }] as TfOptimizerOptions[]
) {
  Deno.test(
    `tfjs: setLearningRate after a step plans the state's checkpoint once, for the first rate longer in its header than its own (${
      JSON.stringify(options)
    }): a loop setting its own schedule each step pays no call per variable`,
    async () => {
      await useBackend("cpu");
      const n = 3000;
      const vars = Array.from(
        { length: n },
        (_, i) => tf.variable(tf.scalar(1), true, named(`v${i}`)),
      );
      const opt = tfOptimizer(radam({ lr: 0.001 }), options);
      const grads = gradients(vars, 0.5);
      opt.applyGradients(grads); // (with accumulation: summed, the state made for the sums)
      assert.ok(opt.state !== undefined);
      // Longer than the state's own rate: checked, once, over every variable.
      assert.ok(workDone(() => opt.setLearningRate(0.0009)) >= n);
      // No longer than one checked: nothing planned, at a step or not (the state made again).
      for (const lr of [0.0008, 0.0007, 0.06, (t: number) => 0.001 / t]) {
        opt.applyGradients(grads);
        assert.ok(workDone(() => opt.setLearningRate(lr)) < 50);
        assert.equal(opt.learningRate, lr);
      }
      // Longer still: its header's length known from the one planned, by the digits alone.
      for (const lr of [0.00012345, 1.2345678901234567e-10, 0.0005]) {
        opt.applyGradients(grads);
        assert.ok(workDone(() => opt.setLearningRate(lr)) < 50);
        assert.equal(opt.learningRate, lr);
      }
      // The same variables in another order, stepped where the state is (in its order): known.
      const reversed = Object.fromEntries(Object.entries(grads).reverse());
      for (let i = 0; i < 3; i++) opt.applyGradients(reversed); // (with accumulation: a step)
      assert.ok(workDone(() => opt.setLearningRate(0.00012345)) < 50);
      opt.setLearningRate(0.0005);
      // Made again over the variables in another order (a variable left out, then back; its
      // file's): checked again, the digits of the tensors' offsets in the header being others.
      const { [vars[0].name]: _, ...fewer } = grads;
      while (opt.accumulatedBatches > 0) opt.applyGradients(reversed); // (from a step on)
      for (let i = 0; i < 3; i++) opt.applyGradients(fewer);
      for (let i = 0; i < 3; i++) opt.applyGradients(reversed);
      assert.equal(stateInternals(opt.state!).order[0], vars[n - 1].name);
      assert.ok(workDone(() => opt.setLearningRate(0.00012345)) >= n);
      assert.ok(workDone(() => opt.setLearningRate(1.2345678901234567e-10)) < 50);
      opt.dispose();
      tf.dispose([...vars, ...Object.values(grads)]);
    },
  );
}

capped(
  "tfjs: setLearningRate after a step takes a rate no longer in the header than one checked before, and refuses one longer past the cap, after the steps that remade the state",
  async () => {
    await useBackend("cpu");
    const make = (lr: number) => tfOptimizer(radam({ lr }), { ema: true });
    // Names that just fit with the averages, at a rate of 8 characters: not at LONG_LR.
    const names = justFitting(make(0.123456).settings as Settings, 5, averagesOf);
    assert.ok(!fits(radam({ lr: LONG_LR }).settings as Settings, names, averagesOf));
    const vars = variables(names);
    const opt = make(0.5);
    const grads = gradients(vars, 0.25);
    opt.applyGradients(grads);
    opt.setLearningRate(0.111111); // (longer than the state's own: checked, fits)
    for (const lr of [0.222222, 0.333333]) {
      opt.applyGradients(grads); // (the state made again at the new rate)
      opt.setLearningRate(lr);
    }
    opt.applyGradients(grads);
    const state = opt.state;
    assert.throws(() => opt.setLearningRate(LONG_LR), (e: Error) => {
      assert.ok(e instanceof RangeError, String(e));
      assert.match(e.message, PAST_CAP);
      return true;
    });
    assert.equal(opt.learningRate, 0.333333);
    assert.equal(opt.state, state);
    opt.applyGradients(grads); // (fits: the rate in force)
    await saveState(opt.state!);
    opt.dispose();
    tf.dispose([...vars, ...Object.values(grads)]);
  },
);

capped(
  "tfjs: setLearningRate after a step, its header's length known from one planned, takes and refuses each longer rate as the planner does, at the cap's every byte",
  async () => {
    await useBackend("cpu");
    const make = (lr: number) => tfOptimizer(radam({ lr }), { ema: true });
    // Names that just fit with the averages at a rate of 8 characters.
    const names = justFitting(make(0.123456).settings as Settings, 5, averagesOf);
    const vars = variables(names);
    const opt = make(0.5);
    const grads = gradients(vars, 0.25);
    opt.applyGradients(grads);
    opt.setLearningRate(0.25); // (longer than the state's own: planned, fits)
    const verdicts: boolean[] = [];
    let inForce = 0.25;
    for (let digits = 3; digits <= 17; digits++) {
      const lr = Number((1 / 3).toPrecision(digits)); // (a character more each time)
      const planned = fits(radam({ lr }).settings as Settings, names, averagesOf);
      const state = opt.state;
      let taken = true;
      const calls = workDone(() => {
        try {
          opt.setLearningRate(lr);
        } catch (error) {
          assert.ok(error instanceof RangeError && PAST_CAP.test(error.message), String(error));
          taken = false;
        }
      });
      assert.equal(taken, planned, `lr ${lr}`);
      if (taken) assert.ok(calls < 50, `lr ${lr}: planned again`);
      if (taken) inForce = lr;
      assert.equal(opt.learningRate, inForce);
      assert.equal(opt.state, state);
      verdicts.push(taken);
      if (digits % 2 === 0) opt.applyGradients(grads); // (stepped under the rate in force)
    }
    assert.ok(verdicts.includes(true) && verdicts.includes(false), String(verdicts));
    opt.applyGradients(grads);
    await saveState(opt.state!); // (the rate in force fits)
    opt.dispose();
    tf.dispose([...vars, ...Object.values(grads)]);
  },
);
