/**
 * A step matches its gradients to the state's variables once: with option `ema` or
 * `gradientAccumulationSteps` (whose step also checks whether a state is to be made, to plan what
 * is saved beside it), and after a new learning rate, it reads each variable's identity as often
 * as a plain step does.
 */
import assert from "node:assert/strict";
import { radam } from "../../mod.ts";
import { tfOptimizer, type TfOptimizerOptions } from "../../tfjs.ts";
import { CPU_BACKENDS, seededVars, stepWith, tf, uniqueNames, useBackend } from "./helpers.ts";

const name = uniqueNames("match-once");

/** Counts the reads of each of `vars`' `id` (the state's check of a variable's identity). */
function countingIds(vars: tf.Variable[]): { reads: number } {
  const counter = { reads: 0 };
  for (const v of vars) {
    const id = v.id;
    Object.defineProperty(v, "id", {
      get: () => {
        counter.reads++;
        return id;
      },
    });
  }
  return counter;
}

/** The reads of the variables' ids by the step of an optimizer of `options` (its N calls). */
function readsOfStep(options: TfOptimizerOptions | undefined, newRate: boolean): number {
  const vars = seededVars(name, 2, 3);
  const opt = tfOptimizer(radam({ lr: 0.1 }), options);
  const calls = options?.gradientAccumulationSteps ?? 1;
  for (let t = 0; t < 2 * calls; t++) stepWith(opt, vars, t + 1); // (made, stepped)
  const counter = countingIds(vars);
  if (newRate) opt.learningRate = 0.05;
  for (let t = 0; t < calls; t++) stepWith(opt, vars, t + 10);
  assert.equal(opt.iterations, 3);
  opt.dispose();
  tf.dispose(vars);
  return counter.reads;
}

for (const backend of CPU_BACKENDS) {
  Deno.test(`tfjs (${backend}): a step with ema or gradient accumulation matches its variables once`, async () => {
    await useBackend(backend);
    for (const newRate of [false, true]) {
      const plain = readsOfStep(undefined, newRate);
      assert.ok(plain > 0);
      const cases = [{ ema: true }, { gradientAccumulationSteps: 2 }, {
        ema: true,
        gradientAccumulationSteps: 3,
      }];
      for (const options of cases) {
        assert.equal(readsOfStep(options, newRate), plain, JSON.stringify({ options, newRate }));
      }
    }
    // A new rate costs the plain step no second look either.
    assert.equal(readsOfStep(undefined, true), readsOfStep(undefined, false));
  });
}
