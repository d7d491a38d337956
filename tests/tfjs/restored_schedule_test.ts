/**
 * An optimizer restored from a config saved with a learning-rate schedule holds a stand-in for
 * it (a config cannot store a function), which throws where a step calls it. Given back as a
 * schedule (`optimizer.setLearningRate(restored.learningRate)`, an optimizer's `lr`,
 * `loadState`'s, a part of `chain()`) it was taken, and threw only at a step, as the core's
 * stand-in (`checkpointInfo`'s) once did; it is refused where it is given, as that one is.
 * Restoring is as it was: the optimizer loads a checkpoint, and trains once a schedule is set.
 */
import assert from "node:assert/strict";
import { adam, chain, loadState, saveState } from "../../mod.ts";
import { TfOptimizer, tfOptimizer } from "../../tfjs.ts";
import { saying } from "../util.ts";
import { tf, useBackend } from "./helpers.ts";

const refused = saying(
  TypeError,
  "Option lr must be a number or a schedule (t) => lr, got the stand-in that a TensorFlow.js " +
    "optimizer restored from a config saved with a schedule holds for it (its learningRate), " +
    "which throws where it is called: pass the schedule itself",
);

Deno.test("tfjs: the stand-in of a restored optimizer's schedule is refused where it is given", async () => {
  await useBackend("cpu");
  const lr = (t: number) => 1e-2 / t;
  const scheduled = tfOptimizer(adam({ lr }));
  const w = tf.variable(tf.tensor([1, 2]), true, "restored_schedule_test/w");
  const g = tf.ones([2]);
  scheduled.applyGradients({ [w.name]: g });
  const bytes = await saveState(scheduled.state!);
  const restored = TfOptimizer.fromConfig(TfOptimizer, scheduled.getConfig()) as TfOptimizer;
  const standIn = restored.learningRate as (t: number) => number;
  assert.equal(typeof standIn, "function");
  assert.throws(() => standIn(1), /give it again with optimizer\.setLearningRate\(schedule\)/);

  assert.throws(() => restored.setLearningRate(standIn), refused);
  assert.throws(() => adam({ lr: standIn }), refused);
  assert.throws(() => tfOptimizer(adam({ lr: standIn })), refused);
  await assert.rejects(loadState(bytes, { lr: standIn }), refused);
  assert.throws(
    () => chain([standIn, 5], [lr, 5]),
    saying(TypeError, "chain() parts must be [schedule, steps], got the stand-in that a"),
  );

  // Restoring is as it was: the checkpoint loads, a step asks for the schedule, and with it
  // the optimizer goes on from the checkpoint's step count.
  await restored.loadState(bytes);
  assert.throws(() => restored.applyGradients({ [w.name]: g }), /setLearningRate/);
  restored.setLearningRate(lr);
  restored.applyGradients({ [w.name]: g });
  assert.equal(restored.iterations, 2);
  tf.dispose([w, g]);
  scheduled.dispose();
  restored.dispose();
});
