/**
 * A learning rate set before every step (`optimizer.learningRate = f(step)` in a callback's
 * `onBatchBegin`, or `setLearningRate`) takes effect at the next step on the state as it is, on
 * tfjs's CPU backends: its backend (its arena, worker threads) stays, nothing is made anew or
 * copied; and the bits are those of a rate given by a schedule from the start, and of a fresh
 * optimizer with that rate given the same state. With option `ema`, with
 * `gradientAccumulationSteps`, with `clipGradNorm`, on threads, a rate as a number or a schedule.
 */
import assert from "node:assert/strict";
import { radam, type RAdamOptions, saveState } from "../../mod.ts";
import { tfOptimizer, type TfOptimizerOptions } from "../../tfjs.ts";
import { stateInternals } from "../../core/state.ts";
import {
  CPU_BACKENDS,
  optimizerSnapshot,
  seededVars,
  stepWith,
  tf,
  uniqueNames,
  useBackend,
} from "./helpers.ts";

const name = uniqueNames("lr-in-place");

/** The rate set before call `t` (0-based): a number, or every third one a schedule. */
function rateAt(t: number): number | ((step: number) => number) {
  return t % 3 === 2 ? (step: number) => 0.02 / step : 0.05 / (1 + t);
}

/** The rate `rateAt(t)` gives at the 1-based step `step`. */
function valueAt(t: number, step: number): number {
  const rate = rateAt(t);
  return typeof rate === "number" ? rate : rate(step);
}

interface Case {
  label: string;
  options: RAdamOptions;
  adapter?: TfOptimizerOptions;
}

const CASES: Case[] = [
  { label: "plain", options: {} },
  { label: "ema", options: {}, adapter: { ema: true } },
  { label: "accumulation", options: {}, adapter: { gradientAccumulationSteps: 2 } },
  { label: "clipGradNorm", options: { clipGradNorm: 0.5 } },
  { label: "threads", options: { threads: 2, threadThreshold: 0 } },
];

/** The backend object the optimizer's state runs on. */
function backendOf(opt: ReturnType<typeof tfOptimizer>): unknown {
  return stateInternals(opt.state!).backend;
}

for (const backend of CPU_BACKENDS) {
  for (const { label, options, adapter } of CASES) {
    Deno.test(`tfjs (${backend}, ${label}): a rate set before every step steps the state where it is, with the bits of a schedule`, async () => {
      await useBackend(backend);
      const vars = seededVars(name, 3, 5), twins = seededVars(name, 3, 5);
      const opt = tfOptimizer(radam({ ...options, lr: 0.1 }), adapter);
      const calls = adapter?.gradientAccumulationSteps ?? 1;
      // (A schedule of the step giving what was set before it: the rate never set.)
      const scheduled = (step: number) => step === 1 ? 0.1 : valueAt(step - 2, step);
      const ref = tfOptimizer(radam({ ...options, lr: scheduled }), adapter);
      for (let c = 0; c < calls; c++) {
        stepWith(opt, vars, 1 + c);
        stepWith(ref, twins, 1 + c);
      }
      await opt.ready();
      const backends = new Set<unknown>();
      for (let t = 0; t < 6; t++) {
        opt.learningRate = rateAt(t);
        for (let c = 0; c < calls; c++) {
          stepWith(opt, vars, 10 + 3 * t + c);
          stepWith(ref, twins, 10 + 3 * t + c);
        }
        if (t > 0) backends.add(backendOf(opt)); // (t = 0: onto the threads started)
      }
      assert.equal(backends.size, 1, "the state's backend made again at a step");
      assert.equal(opt.iterations, 7);
      assert.deepEqual(vars.map((v) => v.dataSync()), twins.map((v) => v.dataSync()));
      const [a, b] = [await optimizerSnapshot(opt), await optimizerSnapshot(ref)];
      assert.deepEqual(a.weights.map(([, d]) => d), b.weights.map(([, d]) => d));
      opt.dispose();
      ref.dispose();
      tf.dispose([...vars, ...twins]);
    });
  }

  Deno.test(`tfjs (${backend}): a rate set at step k gives the bits of a fresh optimizer with that rate given the same state`, async () => {
    await useBackend(backend);
    const vars = seededVars(name, 5, 4);
    const opt = tfOptimizer(radam({ lr: 0.1 }), { ema: true });
    for (let t = 0; t < 3; t++) stepWith(opt, vars, 20 + t);
    const bytes = await saveState(opt.state!);
    const values = vars.map((v) => tf.clone(v));
    opt.setLearningRate(0.0375);
    const was = backendOf(opt);
    for (let t = 0; t < 2; t++) stepWith(opt, vars, 30 + t);
    assert.equal(backendOf(opt), was, "the state's backend made again at a step");
    const stepped = vars.map((v) => v.dataSync().slice());
    const saved = await saveState(opt.state!);
    opt.dispose();
    // (The same variables, as they were at step k, and a fresh optimizer given the state.)
    vars.forEach((v, i) => v.assign(values[i]));
    const fresh = tfOptimizer(radam({ lr: 0.0375 }), { ema: true });
    await fresh.loadState(bytes);
    for (let t = 0; t < 2; t++) stepWith(fresh, vars, 30 + t);
    assert.deepEqual(vars.map((v) => v.dataSync()), stepped);
    assert.deepEqual(await saveState(fresh.state!), saved);
    fresh.dispose();
    tf.dispose([...vars, ...values]);
  });
}
