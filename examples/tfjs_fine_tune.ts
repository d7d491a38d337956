/**
 * Fine-tuning a small TensorFlow.js model with Ranger, in Deno:
 *
 * 1. a "pretrained" feature extractor (two dense layers) is trained on one task with
 *    `tf.train.adam`, as a model you downloaded would have been;
 * 2. its layers are frozen, a new head is put on top, and the head is trained on a second task
 *    with `model.compile({ optimizer: tfOptimizer(ranger()) })`;
 * 3. the extractor is unfrozen and the whole model trained on: the optimizer keeps the head's
 *    state and starts the newly trainable layers fresh (see the README's "TensorFlow.js").
 *
 * A progress line is printed per epoch. `deno run examples/tfjs_fine_tune.ts` (tfjs cpu backend;
 * no permissions needed).
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs-core";
import "@tensorflow/tfjs-backend-cpu";
import * as tfl from "@tensorflow/tfjs-layers";
import { ranger } from "../mod.ts";
import { tfOptimizer } from "../tfjs.ts";

/** Points in the plane and a label: which of `classes` sectors (rotated by `turn`) holds them. */
export function sectors(
  n: number,
  classes: number,
  turn: number,
  seed: number,
): { x: tf.Tensor2D; y: tf.Tensor2D } {
  let s = seed;
  const random = () => (s = (s * 1103515245 + 12345) % 2147483648) / 2147483648;
  const points: number[] = [], labels: number[] = [];
  for (let i = 0; i < n; i++) {
    const angle = random() * 2 * Math.PI, radius = 0.3 + random();
    points.push(radius * Math.cos(angle), radius * Math.sin(angle));
    const sector = Math.floor(((angle + turn) % (2 * Math.PI)) / (2 * Math.PI) * classes);
    for (let c = 0; c < classes; c++) labels.push(c === sector % classes ? 1 : 0);
  }
  return { x: tf.tensor2d(points, [n, 2]), y: tf.tensor2d(labels, [n, classes]) };
}

/** What one epoch reports. */
export interface EpochReport {
  phase: string;
  epoch: number;
  loss: number;
  accuracy: number;
}

/** Runs the three phases; returns the per-epoch reports and the final test accuracy. */
export async function fineTune(
  options: { epochs?: number; log?: (line: string) => void } = {},
): Promise<{ reports: EpochReport[]; testAccuracy: number }> {
  const epochs = options.epochs ?? 12;
  const log = options.log ?? console.log;
  await tf.setBackend("cpu");
  tf.env().set("PROD", true); // no hint about tfjs-node on stderr
  const reports: EpochReport[] = [];
  const progress = (phase: string, total: number) => ({
    onEpochEnd: (epoch: number, logs?: tfl.Logs) => {
      const r = { phase, epoch: epoch + 1, loss: logs!.loss, accuracy: logs!.acc };
      reports.push(r);
      log(
        `${phase.padEnd(10)} epoch ${String(r.epoch).padStart(2)}/${total}  loss ${
          r.loss.toFixed(4)
        }  accuracy ${(100 * r.accuracy).toFixed(1)}%`,
      );
    },
  });

  // 1. Pretraining (tfjs's own Adam): 4 sectors.
  const base = tfl.sequential({
    layers: [
      tfl.layers.dense({ units: 32, inputShape: [2], activation: "relu", name: "features1" }),
      tfl.layers.dense({ units: 32, activation: "relu", name: "features2" }),
    ],
  });
  const pretrain = tfl.sequential({
    layers: [base, tfl.layers.dense({ units: 4, activation: "softmax", name: "old_head" })],
  });
  pretrain.compile({ optimizer: tf.train.adam(1e-2), loss: "categoricalCrossentropy" });
  const task1 = sectors(512, 4, 0, 1);
  await pretrain.fit(task1.x, task1.y, { epochs: 10, batchSize: 64, verbose: 0 });

  // 2. Fine-tuning a new head with Ranger, the extractor frozen: 6 sectors, turned.
  const model = tfl.sequential({
    layers: [base, tfl.layers.dense({ units: 6, activation: "softmax", name: "new_head" })],
  });
  base.trainable = false;
  const optimizer = tfOptimizer(ranger({ lr: 2e-2 }));
  model.compile({ optimizer, loss: "categoricalCrossentropy", metrics: ["accuracy"] });
  const task2 = sectors(512, 6, 0.4, 2);
  const fit = { batchSize: 32, verbose: 0 as const };
  await model.fit(task2.x, task2.y, { ...fit, epochs, callbacks: progress("head", epochs) });

  // 3. Everything trainable: the head keeps its Ranger state, the extractor starts fresh.
  base.trainable = true;
  model.compile({ optimizer, loss: "categoricalCrossentropy", metrics: ["accuracy"] });
  await model.fit(task2.x, task2.y, { ...fit, epochs, callbacks: progress("all layers", epochs) });

  const test = sectors(256, 6, 0.4, 3);
  const result = model.evaluate(test.x, test.y) as tf.Scalar[];
  const testAccuracy = (await result[1].data())[0];
  log(`test accuracy ${(100 * testAccuracy).toFixed(1)}% (${optimizer.iterations} Ranger steps)`);
  tf.dispose([task1.x, task1.y, task2.x, task2.y, test.x, test.y, ...result]);
  model.dispose(); // and with it the shared extractor
  pretrain.layers[1].dispose();
  optimizer.dispose();
  return { reports, testAccuracy };
}

if (import.meta.main) await fineTune();
