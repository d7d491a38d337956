/**
 * What a tfjs user new to the adapter writes, where the error did not say what to write:
 * TensorFlow.js's own maker given uncalled (`tfOptimizer(tf.train.adam)`) or the optimizer's
 * options alone (`tfOptimizer({ lr: 1e-3 })`) said only what they were, a function of the
 * caller's named `adam` was told to be called as the library's factory, and a boolean option
 * read as text (`ema: "true"`, `finalize: "false"`) said only that it must be a boolean.
 */
import assert from "node:assert/strict";
import { radam } from "../../mod.ts";
import { emaCallback, tfOptimizer } from "../../tfjs.ts";
import { tf } from "./helpers.ts";

const EXPECTS = "tfOptimizer() expects an optimizer made by this library, e.g. radam(), got ";

Deno.test("tfjs: TensorFlow.js's own optimizer maker given uncalled says which of this library's to wrap", () => {
  const cases: [unknown, string][] = [
    [
      tf.train.adam,
      "tf.train.adam, TensorFlow.js's maker of its own optimizer: wrap one of this " +
      "library's, e.g. tfOptimizer(adam({ lr: 0.001 }))",
    ],
    [
      tf.train.sgd,
      "tf.train.sgd, TensorFlow.js's maker of its own optimizer: wrap one of this " +
      "library's, e.g. tfOptimizer(sgd({ lr: 0.01 }))",
    ],
    [tf.train.momentum, "e.g. tfOptimizer(sgd({ lr: 0.01, momentum: 0.9 }))"],
    [tf.train.rmsprop, "tf.train.rmsprop, TensorFlow.js's maker"],
  ];
  for (const [maker, hint] of cases) {
    assert.throws(
      () => tfOptimizer(maker as never),
      (e: Error) =>
        e instanceof TypeError && e.message.startsWith(`${EXPECTS}a function (`) &&
        e.message.includes(hint),
    );
  }
  // A function of the caller's, named as a factory of this library, is neither.
  function adam() {}
  assert.throws(
    () => tfOptimizer(adam as never),
    (e: Error) => e instanceof TypeError && e.message === `${EXPECTS}a function`,
  );
});

Deno.test("tfjs: the optimizer's options alone given to tfOptimizer say they go to a factory", () => {
  assert.throws(
    () => tfOptimizer({ lr: 1e-3 } as never),
    {
      name: "TypeError",
      message: `${EXPECTS}Object (options: they go to the optimizer's factory, ` +
        "tfOptimizer(radam({ lr: 0.001 })))",
    },
  );
});

Deno.test("tfjs: a boolean option of the adapter given as text says how to convert it", () => {
  const hint = ' (a boolean as text: convert it, value === "true")';
  assert.throws(() => tfOptimizer(radam(), { ema: "true" as never }), {
    name: "TypeError",
    message: `Option ema must be a boolean or { momentum, overwriteFrequency }, got a string ` +
      `"true"${hint}`,
  });
  assert.throws(() => tfOptimizer(radam(), { strict: "false" as never }), {
    name: "TypeError",
    message: `Option strict must be a boolean, got a string "false"${hint}`,
  });
  const optimizer = tfOptimizer(radam(), { ema: true });
  try {
    assert.throws(() => emaCallback(optimizer, { finalize: "false" as never }), {
      name: "TypeError",
      message: `Option finalize must be a boolean, got a string "false"${hint}`,
    });
    // Its options are optional, as the documentation now shows them.
    assert.equal(typeof emaCallback(optimizer).onTrainEnd, "function");
  } finally {
    optimizer.dispose();
  }
});

Deno.test("tfjs: Keras's clipvalue given to tfOptimizer says there is no clipping by value here", () => {
  for (const key of ["clipvalue", "clipValue"]) {
    assert.throws(
      () => tfOptimizer(radam(), { [key]: 1 } as never),
      (e: Error) =>
        e instanceof TypeError && e.message.startsWith(`Unknown option ${key} for tfOptimizer`) &&
        e.message.endsWith(
          "to clip by value, clamp each gradient's elements to [−v, v] before the step, " +
            "g[i] = Math.min(v, Math.max(-v, g[i])))",
        ),
    );
  }
});
