/**
 * What a TensorFlow.js user porting a training loop writes first. The optimizer wrapped twice: `tfOptimizer(tfOptimizer(radam()))` made a
 * second optimizer with a state of its own, which the one held (its `learningRate`, `loadState`,
 * `skippedSteps`) did not reach, silently; `lookahead(tfOptimizer(radam()))` made a core
 * optimizer that `model.compile` then refused as not a `tf.Optimizer`. Both are TypeErrors that
 * say what to write. `tf.grads`' list of tensors given to `applyGradients` said only that a
 * `{ name, tensor }` was expected: it says how to key them.
 */
import assert from "node:assert/strict";
import { adam, lookahead, radam } from "../../mod.ts";
import { tfOptimizer } from "../../tfjs.ts";
import { tf, uniqueNames, useBackend } from "./helpers.ts";

const named = uniqueNames("porting");

Deno.test("tfjs: tfOptimizer given what tfOptimizer returns says to pass it as it is", async () => {
  await useBackend("cpu");
  const held = tfOptimizer(adam({ lr: 0.1 }));
  assert.throws(() => tfOptimizer(held as never), {
    name: "TypeError",
    message:
      /^tfOptimizer\(\) was given what tfOptimizer\(\) returns, already a tf\.Optimizer: pass it to model\.compile as it is/,
  });
  // The one held still trains, and its learning rate is the one used.
  const w = tf.variable(tf.tensor1d([1, -2]), true, named("w"));
  held.setLearningRate(0.5);
  held.applyGradients({ [w.name]: tf.ones([2]) });
  assert.equal(held.iterations, 1);
  assert.deepEqual([...w.dataSync()], [0.5, -2.5]);
  held.dispose();
  w.dispose();
});

Deno.test("tfjs: lookahead given what tfOptimizer returns says to wrap the library's optimizer first", () => {
  const held = tfOptimizer(radam());
  assert.throws(() => lookahead(held as never), {
    name: "TypeError",
    message:
      "lookahead() was given a TensorFlow.js optimizer (what tfOptimizer() returns): wrap this library's optimizer, then adapt it, tfOptimizer(lookahead(radam()))",
  });
  assert.equal(tfOptimizer(lookahead(radam())).settings.name, "lookahead(radam)");
  held.dispose();
});

Deno.test("tfjs: tf.grads' list of tensors given to applyGradients says how to key them; nothing changes", async () => {
  await useBackend("cpu");
  const w = tf.variable(tf.tensor1d([1, -2]), true, named("w"));
  const optimizer = tfOptimizer(adam({ lr: 0.5 }));
  const f = (x: tf.Tensor): tf.Scalar => tf.sum(tf.square(x));
  const grads = tf.grads(f)([w]);
  assert.throws(() => optimizer.applyGradients(grads as never), {
    name: "TypeError",
    message:
      "Expected gradient 0 to be a { name, tensor } (a NamedTensor), got Tensor (a gradient without its variable's name, as tf.grads gives them: key each by its variable's name, { name: variable.name, tensor }, or pass tf.variableGrads(f).grads)",
  });
  assert.equal(optimizer.iterations, 0);
  assert.deepEqual([...w.dataSync()], [1, -2]);
  // What it says works.
  optimizer.applyGradients(tf.variableGrads(() => f(w)).grads);
  assert.equal(optimizer.iterations, 1);
  assert.deepEqual([...w.dataSync()], [0.5, -1.5]);
  optimizer.dispose();
  tf.dispose([w, ...grads]);
});
