/**
 * How a tfjs user new to the adapter first writes it, and what each error says: a learning rate
 * where the optimizer goes or as the adapter's options (`tf.train.adam(1e-3)`'s habit), a tfjs
 * optimizer where this library's goes (`tfOptimizer(tf.train.adam(1e-3))`), and the
 * library's optimizer value given to `model.compile` without `tfOptimizer` (tfjs-layers' own
 * error, which the README quotes).
 */
import assert from "node:assert/strict";
import { adam, lookahead, radam, ranger } from "../../mod.ts";
import { tfOptimizer } from "../../tfjs.ts";
import { denseNet, disposeModels, tf, useBackend } from "./helpers.ts";

Deno.test("tfjs: a learning rate where the optimizer or the adapter's options go says how to pass it", () => {
  assert.throws(
    () => tfOptimizer(1e-3 as never),
    {
      name: "TypeError",
      message: "tfOptimizer() expects an optimizer made by this library, e.g. radam(), got 0.001 " +
        "(pass a learning rate as tfOptimizer(adam({ lr: 0.001 })))",
    },
  );
  for (const [optimizer, call] of [[radam(), "radam"], [ranger(), "ranger"], [adam(), "adam"]]) {
    assert.throws(
      () => tfOptimizer(optimizer as never, 0.05 as never),
      {
        name: "TypeError",
        message: "Options of tfOptimizer must be an object, got 0.05 " +
          `(pass a learning rate as tfOptimizer(${call}({ lr: 0.05 })))`,
      },
    );
  }
  // A name that is not a factory's call (LookAhead of another rule) gives adam's.
  assert.throws(
    () => tfOptimizer(lookahead(radam()), 0.05 as never),
    { message: /\(pass a learning rate as tfOptimizer\(adam\(\{ lr: 0\.05 \}\)\)\)$/ },
  );
  assert.throws(() => tfOptimizer(radam as never), {
    name: "TypeError",
    message: "tfOptimizer() expects an optimizer made by this library, e.g. radam(), got a " +
      "function (a factory: call it, radam())",
  });
  assert.throws(() => tfOptimizer(adam(1e-3 as never)), {
    name: "TypeError",
    message:
      "Options of adam must be an object, got 0.001 (pass a learning rate as adam({ lr: 0.001 }))",
  });
  assert.equal(tfOptimizer(adam({ lr: 0.001 })).settings.hyperparameters.lr, 0.001);
});

Deno.test("tfjs: a TensorFlow.js optimizer given to tfOptimizer says which of this library's to wrap", async () => {
  await useBackend("cpu");
  const cases: [tf.Optimizer, string, string][] = [
    [
      tf.train.adam(0.002),
      "AdamOptimizer",
      "adam({ lr: 0.002, eps: 1e-7 })), which is tf.train.adam(0.002)",
    ],
    [tf.train.sgd(0.1), "SGDOptimizer", "sgd({ lr: 0.1 }))"],
    [tf.train.momentum(0.1, 0.9), "MomentumOptimizer", "sgd({ lr: 0.1, momentum: 0.9 }))"],
    [tf.train.rmsprop(0.01), "RMSPropOptimizer", "adam({ lr: 0.01 }))"],
  ];
  for (const [given, name, call] of cases) {
    assert.throws(() => tfOptimizer(given as never), {
      name: "TypeError",
      message:
        `tfOptimizer() expects an optimizer made by this library, e.g. radam(), got ${name} ` +
        `(a TensorFlow.js optimizer: wrap one of this library's, e.g. tfOptimizer(${call})`,
    });
    given.dispose();
  }
});

Deno.test("tfjs: model.compile refuses the optimizer value itself with the error the README quotes; tfOptimizer of it trains", async () => {
  await useBackend("cpu");
  const model = denseNet(1);
  assert.throws(
    () => model.compile({ optimizer: radam() as never, loss: "meanSquaredError" }),
    { message: "User-defined optimizer must be an instance of tf.Optimizer." },
  );
  const optimizer = tfOptimizer(radam({ lr: 0.01 }));
  model.compile({ optimizer, loss: "meanSquaredError" });
  const [x, y] = [tf.ones([4, 6]), tf.zeros([4, 3])];
  await model.fit(x, y, { epochs: 2, batchSize: 4, verbose: 0 });
  assert.equal(optimizer.iterations, 2);
  tf.dispose([x, y]);
  optimizer.dispose();
  disposeModels(model);
});
