// Type-checked by the packed-package test with `tsc --strict`, first with library files checked
// (no skipLibCheck), then with `--skipLibCheck`: the npm README's TensorFlow.js example, typed,
// with tfjs-layers 4.22 (what `@tensorflow/tfjs` brings). tfjs-layers' own declarations fail
// under `strict`; the package's and this file's must not.
import * as tf from "@tensorflow/tfjs-core";
import "@tensorflow/tfjs-backend-cpu";
import * as tfl from "@tensorflow/tfjs-layers";
import { radam } from "@optim/radam";
import { tfOptimizer } from "@optim/radam/tfjs";

export async function fit(): Promise<number | undefined> {
  const model = tfl.sequential({
    layers: [tfl.layers.dense({ units: 1, inputShape: [1] })],
  });
  const optimizer = tfOptimizer(radam({ lr: 0.05 }));
  model.compile({ optimizer, loss: "meanSquaredError" });
  const xs = tf.tensor2d([[0], [1], [2], [3]]);
  const ys = tf.tensor2d([[1], [3], [5], [7]]);
  const history = await model.fit(xs, ys, { epochs: 100, verbose: 0 });
  // @ts-expect-error: the backend is a name, not a number
  const wrong: number = optimizer.backend;
  void wrong;
  return history.history.loss.at(-1) as number | undefined;
}
