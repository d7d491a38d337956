/**
 * What a TensorFlow.js optimizer of this library reports, assigned (`optimizer.iterations = 5`,
 * to resume at a step count; `optimizer.state = loaded`; `optimizer.backend = "js"`;
 * `optimizer.settings = ...`): strict-mode code got JavaScript's "has only a getter", and a
 * sloppy-mode script nothing, silently, the assignment changing nothing. Each is now a TypeError
 * in both modes that says it is read-only and what to write instead; the optimizer is as it was,
 * and tfjs-layers' `model.fit`, which reads `iterations`, trains as before.
 */
import assert from "node:assert/strict";
import { adam } from "../../mod.ts";
import { tfOptimizer } from "../../tfjs.ts";
import { saying } from "../util.ts";
import { denseNet, disposeModels, tf, useBackend } from "./helpers.ts";

// A Function's body is sloppy-mode code, as a script without "use strict" (a CommonJS file's) is.
const sloppySet = new Function("object", "key", "value", "object[key] = value;");

/** Sets `object[key]` in strict mode (this module's) and in sloppy mode: both must throw. */
function bothModes(object: unknown, key: string, value: unknown, says: string): void {
  const strict = () => ((object as Record<string, unknown>)[key] = value);
  assert.throws(strict, saying(TypeError, says));
  assert.throws(() => sloppySet(object, key, value), saying(TypeError, says));
}

const READ_ONLY = "what a TensorFlow.js optimizer reports is read-only (the assignment would " +
  "change nothing)";

Deno.test("tfjs: optimizer.iterations, state, backend, settings and the counts assigned are a TypeError saying what to write, in sloppy mode too; nothing changes", async () => {
  await useBackend("cpu");
  const model = denseNet(3);
  const optimizer = tfOptimizer(adam({ lr: 0.01 }));
  model.compile({ optimizer, loss: "meanSquaredError" });
  const [x, y] = [tf.ones([4, 6]), tf.zeros([4, 3])];
  await model.fit(x, y, { epochs: 2, batchSize: 4, verbose: 0 });
  const state = optimizer.state, settings = optimizer.settings;
  bothModes(
    optimizer,
    "iterations",
    5,
    `Cannot set optimizer.iterations: ${READ_ONLY}; each step counts one: to go on at a run's ` +
      "step count, restore its weights, await optimizer.setWeights(weights) (their iter), or " +
      "its checkpoint, await optimizer.loadState(bytes)",
  );
  bothModes(optimizer, "state", undefined, "await optimizer.loadState(bytes)");
  bothModes(optimizer, "backend", "js", 'tfOptimizer(radam({ backend: "js" }))');
  bothModes(optimizer, "settings", adam({ lr: 1 }).settings, "optimizer.learningRate = x");
  for (const key of ["optimizerName", "skippedSteps", "accumulatedBatches", "averages"]) {
    bothModes(optimizer, key, 0, `Cannot set optimizer.${key}: ${READ_ONLY}`);
  }
  assert.equal(optimizer.iterations, 2);
  assert.equal(optimizer.state, state);
  assert.equal(optimizer.settings, settings);
  assert.equal(optimizer.backend, "wasm");
  for (const key of ["iterations", "state", "backend", "settings", "skippedSteps"]) {
    assert.equal(Object.hasOwn(optimizer, key), false, key);
  }
  // tfjs's own use of iterations is unchanged: fit goes on counting.
  await model.fit(x, y, { epochs: 1, batchSize: 4, verbose: 0 });
  assert.equal(optimizer.iterations, 3);
  tf.dispose([x, y]);
  optimizer.dispose();
  disposeModels(model);
});

Deno.test("tfjs: optimizer.settings.hyperparameters.lr assigned is a TypeError naming learningRate, in sloppy mode too; nothing changes", async () => {
  await useBackend("cpu");
  const optimizer = tfOptimizer(adam({ lr: 0.01 }));
  const w = tf.variable(tf.ones([2]), true, "read-only-hyperparameters/w");
  const grad = tf.ones([2]);
  try {
    const { hyperparameters } = optimizer.settings;
    bothModes(
      hyperparameters,
      "lr",
      0.5,
      "Cannot set settings.hyperparameters.lr: an optimizer's settings are frozen (the " +
        "assignment would change nothing); to change the learning rate, make the optimizer " +
        "again (adam({ lr })), or, of a TensorFlow.js optimizer, set optimizer.learningRate = x",
    );
    // (Of the optimizer's own factory, and an option it takes: beta1 is given in betas.)
    bothModes(
      hyperparameters,
      "beta1",
      0.5,
      "make the optimizer again with it (adam({ betas: [β1, β2] }))",
    );
    bothModes(hyperparameters, "eps", 0.5, "make the optimizer again with it (adam({ eps }))");
    bothModes(
      hyperparameters,
      "momentum",
      0.5,
      "Cannot set settings.hyperparameters.momentum: an optimizer's settings are frozen (the assignment would change nothing); adam's hyperparameters hold no momentum",
    );
    assert.ok(Object.isFrozen(hyperparameters));
    assert.equal(optimizer.settings.hyperparameters.lr, 0.01);
    assert.equal(Object.hasOwn(hyperparameters, "momentum"), false);
    // What the message says works: the step after it takes the new rate.
    optimizer.learningRate = 0.5;
    assert.equal(optimizer.settings.hyperparameters.lr, 0.5);
    optimizer.applyGradients({ [w.name]: grad });
    assert.equal(optimizer.iterations, 1);
  } finally {
    optimizer.dispose();
    tf.dispose([w, grad]);
  }
});
