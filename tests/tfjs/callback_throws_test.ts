/**
 * A `model.fit` callback that throws (`onBatchEnd`, `onBatchBegin`, `onEpochEnd`) leaves tensors
 * behind: tfjs-layers' own (4.22's fit loop disposes the epoch's shuffled indices and the batch's
 * logged loss only after the callbacks return), as many with tfjs's own Adam as with the
 * adapter's optimizer. None is the optimizer's: with gradient accumulation and moving averages
 * too (sums and averages held mid-epoch), disposing the optimizer and the model leaves exactly
 * what tfjs's Adam leaves, and the optimizer's next `fit` goes on.
 */
import assert from "node:assert/strict";
import { adam } from "../../mod.ts";
import { tfOptimizer, type TfOptimizerOptions } from "../../tfjs.ts";
import { CPU_BACKENDS, denseNet, tf, useBackend } from "./helpers.ts";

const HOOKS = ["onBatchBegin", "onBatchEnd", "onEpochEnd"] as const;

/**
 * The tensors left behind by a `fit` of the optimizer `make` gives whose callback `hook` throws
 * at the 2nd batch (or epoch), the optimizer and model disposed after a `fit` that goes on.
 */
async function leftBehind(make: () => tf.Optimizer, hook: string): Promise<number> {
  const before = tf.memory().numTensors;
  const optimizer = make(), model = denseNet(3);
  model.compile({ optimizer, loss: "meanSquaredError" });
  const x = tf.ones([8, 6]), y = tf.ones([8, 3]);
  let calls = 0;
  const throwing = {
    [hook]: () => {
      if (++calls === 2) throw new Error("callback failed");
    },
  };
  await assert.rejects(
    model.fit(x, y, { epochs: 2, batchSize: 4, verbose: 0, callbacks: throwing }),
    /callback failed/,
  );
  const steps = optimizer.iterations;
  await model.fit(x, y, { epochs: 1, batchSize: 4, verbose: 0 });
  assert.ok(optimizer.iterations > steps);
  optimizer.dispose();
  model.dispose();
  tf.dispose([x, y]);
  return tf.memory().numTensors - before;
}

const OPTIONS: TfOptimizerOptions[] = [{}, { gradientAccumulationSteps: 3, ema: true }];

for (const backend of CPU_BACKENDS) {
  Deno.test(`tfjs ${backend}: a fit callback that throws leaves only tfjs-layers' tensors behind, as with tfjs's Adam`, async () => {
    await useBackend(backend);
    for (const hook of HOOKS) {
      const theirs = await leftBehind(() => tf.train.adam(0.01), hook);
      assert.ok(theirs <= 2, `${hook}: tfjs's Adam left ${theirs}`);
      for (const options of OPTIONS) {
        const ours = await leftBehind(() => tfOptimizer(adam({ lr: 0.01 }), options), hook);
        assert.equal(ours, theirs, `${hook}, ${JSON.stringify(options)}`);
      }
    }
  });
}
