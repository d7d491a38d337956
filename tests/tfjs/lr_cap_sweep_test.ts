/**
 * `setLearningRate` after a step, its checkpoint's header planned once (for a rate longer than the
 * state's own), takes or refuses each later rate as planning the whole header under it does, at
 * every cap around that header's length (a byte, and a padding's 8 bytes, under and over): rates
 * in exponent forms (`1e-7`, `1.5e+21`, `5e-324`, the largest f32), negative zero, rates shorter than the one
 * planned after it and longer ones in sequence, with the averages or the sums saved beside the
 * state. Where it takes one, the header is not planned again. The cap is lowered for these tests
 * (`setHeaderCap`).
 */
import assert from "node:assert/strict";
import { radam, saveState } from "../../mod.ts";
import type { Settings } from "../../base/settings.ts";
import { setHeaderCap } from "../../base/_json_bounds.ts";
import { paddedHeaderLength } from "../../base/safetensors.ts";
import { checkSavableUnder } from "../../core/new_settings.ts";
import { withLearningRate } from "../../core/options.ts";
import { stateInternals } from "../../core/state.ts";
import { tfOptimizer, type TfOptimizerOptions } from "../../tfjs.ts";
import { besideStepped, type SavedExtras } from "../../tfjs/checkpoint_extras.ts";
import { entryOf } from "../../tfjs/layout.ts";
import { tf, uniqueNames, useBackend } from "./helpers.ts";
import { workDone } from "../work_counts.ts";

const named = uniqueNames("lr_cap_sweep");

/** Rates to set in turn: exponent forms, zeros, shorter and longer than those before. */
const RATES = [
  1e-7,
  1.5e21,
  -0,
  0,
  0.1,
  1.2345678901234567e-10,
  5e-324,
  2,
  3.4028234663852886e38, // (the largest f32)
  0.001,
  123456789.25,
  0.30000000000000004,
  1e21,
  7,
];

const CASES: [string, TfOptimizerOptions, SavedExtras][] = [
  ["ema", { ema: true }, { steps: 1, averages: true }],
  ["accumulation", { gradientAccumulationSteps: 3 }, { steps: 3, averages: false }],
  ["none", {}, { steps: 1, averages: false }],
];

for (const [what, options, saved] of CASES) {
  Deno.test(`tfjs: setLearningRate after a step takes and refuses rates as the full planner does, at every cap around each one's header (${what})`, async () => {
    await useBackend("cpu");
    const vars = Array.from(
      { length: 40 },
      (_, i) => tf.variable(tf.scalar(1), true, named(`w${i}`)),
    );
    const grads = Object.fromEntries(vars.map((v) => [v.name, tf.scalar(0.5)]));
    const opt = tfOptimizer(radam({ lr: 0.5 }), options);
    try {
      for (let i = 0; i < saved.steps; i++) opt.applyGradients(grads);
      opt.setLearningRate(0.25); // (longer than its own: planned)
      const base = opt.settings as Settings;
      /** The header's JSON length under `lr`, planned in full; or `undefined` past `cap`. */
      const planned = (lr: number): number | undefined => {
        const state = opt.state!;
        const order = stateInternals(state).order;
        const entries = order.map((name) => entryOf(name, [], false));
        try {
          return checkSavableUnder(
            state,
            withLearningRate(base, lr),
            besideStepped(entries, saved),
          );
        } catch (error) {
          if (!(error instanceof RangeError) || !/above the cap/.test(error.message)) throw error;
          return undefined;
        }
      };
      let inForce: number = 0.25, taken = 0, refused = 0;
      for (const [k, lr] of RATES.entries()) {
        const padded = paddedHeaderLength(planned(lr)!);
        for (const delta of [-9, -8, -1, 0, 1, 8]) {
          setHeaderCap(padded + delta);
          try {
            const fits = planned(lr) !== undefined;
            assert.equal(fits, delta >= 0, `lr ${lr}, cap ${padded}${delta}`);
            const state = opt.state;
            let took = true;
            const calls = workDone(() => {
              try {
                opt.setLearningRate(lr);
              } catch (error) {
                assert.ok(error instanceof RangeError, String(error));
                assert.match(error.message, /above the cap of/);
                took = false;
              }
            });
            assert.equal(took, fits, `lr ${lr}, cap ${padded}${delta}: as planned`);
            if (took) {
              assert.ok(calls < 50, `lr ${lr}: planned again (${calls} calls)`);
              inForce = lr;
              taken++;
            } else refused++;
            assert.ok(Object.is(opt.learningRate, inForce), `lr ${lr}: the rate in force`);
            assert.equal(opt.state, state);
          } finally {
            setHeaderCap();
          }
        }
        if (k % 3 !== 2) continue;
        opt.setLearningRate(inForce = 0.0625); // (a rate the step takes: not the largest f32)
        for (let i = 0; i < saved.steps; i++) opt.applyGradients(grads); // (stepped under it)
      }
      assert.ok(taken > 0 && refused > 0);
      opt.setLearningRate(0.0625);
      for (let i = 0; i < saved.steps; i++) opt.applyGradients(grads);
      await saveState(opt.state!);
    } finally {
      opt.dispose();
      tf.dispose([...vars, ...Object.values(grads)]);
    }
  });
}
