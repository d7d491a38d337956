// The model and data of the packed-package test, shared by the unbundled script that saves the
// model (save.mjs) and the bundled app that resumes it (app.mjs). Imports tfjs only.
import * as tf from "@tensorflow/tfjs-core";
import * as tfl from "@tensorflow/tfjs-layers";

/** Training samples, and steps per epoch (20 samples, batches of 4: 5 steps). */
export const SAMPLES = 20;
/** Epochs before the save (10 steps: not a multiple of Ranger's k = 6) and after it. */
export const EPOCHS_BEFORE = 2;
export const EPOCHS_AFTER = 2;
export const FIT = { batchSize: 4, shuffle: false, verbose: 0 };

/** Deterministic values in [-0.5, 0.5) (an LCG: the same in every process). */
function values(n, seed) {
  const out = new Float32Array(n);
  let s = seed >>> 0;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    out[i] = s / 2 ** 32 - 0.5;
  }
  return out;
}

/** A 5-8-3 MLP (its kernels are matrices: Ranger centralizes their gradients) with set weights. */
export function makeModel() {
  const model = tfl.sequential({
    layers: [
      tfl.layers.dense({ units: 8, inputShape: [5], activation: "tanh" }),
      tfl.layers.dense({ units: 3 }),
    ],
  });
  const weights = model.getWeights().map((w, i) => tf.tensor(values(w.size, 11 + i), w.shape));
  model.setWeights(weights);
  tf.dispose(weights);
  return model;
}

/** The training data: inputs and regression targets. */
export function makeData() {
  return {
    x: tf.tensor2d(values(SAMPLES * 5, 3), [SAMPLES, 5]),
    y: tf.tensor2d(values(SAMPLES * 3, 5), [SAMPLES, 3]),
  };
}

/** The model's weights and its optimizer's, as plain numbers (float32 values, exact in JSON). */
export async function snapshot(model) {
  const optimizer = await model.optimizer.getWeights();
  return {
    className: model.optimizer.getClassName(),
    iterations: model.optimizer.iterations,
    weights: model.getWeights().map((w) => Array.from(w.dataSync())),
    optimizer: optimizer.map((w) => Array.from(w.tensor.dataSync())),
  };
}
