/**
 * `optimizer.loadState` given damaged and hostile checkpoints (tests/checkpoint_hostile_files.ts:
 * bytes flipped, the file cut at each place its structure changes, its header's JSON edited) of
 * an optimizer with 8-bit moments, gradients accumulated and moving averages: each is taken, or
 * refused with the error its documentation names (a CheckpointError, or a TypeError or RangeError
 * naming what does not fit), the optimizer and its variables as they were, no tensor left behind,
 * the bytes untouched.
 */
import assert from "node:assert/strict";
import fc from "fast-check";
import { adam, CheckpointError, saveState } from "../../mod.ts";
import { type TfOptimizer, tfOptimizer } from "../../tfjs.ts";
import { applyEdit, editArb } from "../checkpoint_hostile_files.ts";
import { optimizerSnapshot, seededVars, stepWith, tf, uniqueNames, useBackend } from "./helpers.ts";

const named = uniqueNames("load-state-hostile");

/** What `opt` holds, its weights by name (a load may give them in another order). */
async function held(opt: TfOptimizer) {
  const snapshot = await optimizerSnapshot(opt);
  return { ...snapshot, weights: snapshot.weights.toSorted((a, b) => a[0] < b[0] ? -1 : 1) };
}

Deno.test("tfjs: fuzz: a hostile checkpoint given to optimizer.loadState is taken, or refused with its documented error and nothing changed", async () => {
  await useBackend("cpu");
  // A kernel of 4098 elements (8-bit moments) and a bias of 3 (f32 moments).
  const vars = seededVars(named, 1, 1366);
  const opt = tfOptimizer(adam({ lr: 0.1, states: "8bit" }), {
    gradientAccumulationSteps: 3,
    ema: true,
  });
  for (let k = 0; k < 4; k++) stepWith(opt, vars, k); // (a step, then one call summed)
  assert.equal(opt.accumulatedBatches, 1);
  const good = await saveState(opt.state!);
  const before = await held(opt);
  const weights = vars.map((v) => v.dataSync().slice());
  const tensors = tf.memory().numTensors;
  const outcomes = { taken: 0, refused: 0 };
  await fc.assert(
    fc.asyncProperty(editArb, async (e) => {
      const bytes = applyEdit(good, e);
      const copy = bytes.slice();
      try {
        await opt.loadState(bytes);
        outcomes.taken++;
        await opt.loadState(good); // (back to where every case starts)
      } catch (error) {
        outcomes.refused++;
        const documented = error instanceof CheckpointError || error instanceof TypeError ||
          error instanceof RangeError;
        assert.ok(documented, `refused with ${error}`);
        assert.ok((error as Error).message.length > 0);
      }
      assert.deepEqual(bytes, copy, "loadState changed the bytes it was given");
      assert.deepEqual(await held(opt), before);
      assert.equal(opt.accumulatedBatches, 1);
      vars.forEach((v, i) => assert.deepEqual(v.dataSync(), weights[i], v.name));
      assert.equal(tf.memory().numTensors, tensors, "tensors left behind");
    }),
    { numRuns: 150, seed: 20261207, endOnFailure: true },
  );
  assert.ok(outcomes.taken > 0 && outcomes.refused > 0, JSON.stringify(outcomes));
  stepWith(opt, vars, 9); // (it goes on)
  assert.equal(opt.accumulatedBatches, 2);
  opt.dispose();
  tf.dispose(vars);
});
