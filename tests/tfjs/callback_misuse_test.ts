/**
 * The callbacks' factories misused in `model.fit`: given the model where the optimizer goes
 * (`skippedStepsCallback(model)`), the error said only that it got a `Sequential`; given
 * uncalled (`callbacks: [skippedStepsCallback]`), tfjs took the function as a callback with no
 * hooks, and `fit` ran without logging a count or swapping in an average, silently. Each now
 * says the call to write; an uncalled one rejects `fit` before its first step.
 */
import assert from "node:assert/strict";
import { adam } from "../../mod.ts";
import { emaCallback, skippedStepsCallback, tfOptimizer } from "../../tfjs.ts";
import { denseNet, tf, useBackend } from "./helpers.ts";

Deno.test("tfjs: skippedStepsCallback(model) and emaCallback(model) say to pass model.optimizer", async () => {
  await useBackend("cpu");
  const model = denseNet(3);
  model.compile({ optimizer: tfOptimizer(adam(), { ema: true }), loss: "meanSquaredError" });
  assert.throws(() => skippedStepsCallback(model as never), {
    name: "TypeError",
    message: "skippedStepsCallback() expects an optimizer made by tfOptimizer(), got Sequential " +
      "(a model: pass its optimizer, skippedStepsCallback(model.optimizer))",
  });
  assert.throws(() => emaCallback(model as never), {
    name: "TypeError",
    message: "emaCallback() expects an optimizer made by tfOptimizer(), got Sequential " +
      "(a model: pass its optimizer, emaCallback(model.optimizer))",
  });
  // What they say runs.
  skippedStepsCallback(model.optimizer as never);
  emaCallback(model.optimizer as never);
  (model.optimizer as unknown as { dispose(): void }).dispose();
  model.dispose();
});

for (
  const [name, factory] of [["skippedStepsCallback", skippedStepsCallback], [
    "emaCallback",
    emaCallback,
  ]] as const
) {
  Deno.test(`tfjs: ${name} given to model.fit uncalled rejects fit before a step, saying to call it`, async () => {
    await useBackend("cpu");
    const model = denseNet(3);
    const optimizer = tfOptimizer(adam({ lr: 0.1 }), { ema: true });
    model.compile({ optimizer, loss: "meanSquaredError" });
    const x = tf.ones([4, 6]), y = tf.ones([4, 3]);
    const before = model.getWeights().map((w) => w.dataSync().slice());
    await assert.rejects(
      model.fit(x, y, { epochs: 1, verbose: 0, callbacks: [factory as never] }),
      {
        name: "TypeError",
        message: `${name} was given to model.fit's callbacks itself: call it with the optimizer, ` +
          `callbacks: [${name}(optimizer)]`,
      },
    );
    assert.equal(optimizer.iterations, 0);
    assert.deepEqual(model.getWeights().map((w) => w.dataSync()), before);
    optimizer.dispose();
    model.dispose();
    tf.dispose([x, y]);
  });
}
