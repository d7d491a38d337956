/**
 * TensorFlow.js adapter: any optimizer of this library (RAdam, Adam, AdamW, Lion, SGD, Ranger,
 * LookAhead, with schedules, clipping, groups, `nonFinite`, threads) as a `tf.Optimizer`, for
 * `model.compile`, `optimizer.minimize` and `applyGradients`.
 *
 * ```ts
 * import * as tf from "@tensorflow/tfjs-core";
 * import "@tensorflow/tfjs-backend-cpu";
 * import * as tfl from "@tensorflow/tfjs-layers";
 * import { ranger } from "@optim/radam";
 * import { tfOptimizer } from "@optim/radam/tfjs";
 *
 * await tf.setBackend("cpu");
 * const model = tfl.sequential({ layers: [tfl.layers.dense({ units: 1, inputShape: [2] })] });
 * model.compile({ optimizer: tfOptimizer(ranger({ lr: 1e-2 })), loss: "meanSquaredError" });
 * const x = tf.tensor2d([[0, 1], [1, 0], [1, 1], [0, 0]]);
 * const y = tf.tensor2d([[1], [-1], [0], [0]]);
 * await model.fit(x, y, { epochs: 3, verbose: 0 });
 * ```
 *
 * The state is keyed by variable name and made at the first step from the variables' values; it
 * belongs to that `tf.Variable`: one disposed and made again under its name (a model rebuilt with
 * the same names) starts fresh, as any variable new to the optimizer, whatever its shape (tfjs's
 * own optimizers, which key their state by position, hand it the moments of the one before).
 * On tfjs-backend-wasm the state lives on tfjs's own wasm heap and this library's kernel runs
 * there: each variable is updated in its own data and its gradient read where tfjs keeps it, with
 * no copy (one copy of the gradients with `clipGradNorm` or `nonFinite: "propagate"`; one copy each
 * way for kernels held transposed under `gc`, and with `threads`). On the tfjs `cpu` backend (and
 * any other but webgpu: on webgl too, the state in CPU memory) the update runs in this library's
 * wasm kernel: gradients read with `dataSync` (on webgl, a readback from the GPU each step), one
 * copy into the arena, parameters written back with `assign` (one copy). On `webgpu` it runs on
 * tfjs's own GPU device with no CPU readback per step (see the README's "TensorFlow.js" section
 * for the copies per backend).
 *
 * `mod.ts` does not import this module: users who do not use TensorFlow.js never load it.
 *
 * @module
 */
import type { SettingsHolder, TfOptimizerOptions } from "./tfjs/options.ts";
import { TfOptimizer } from "./tfjs/optimizer.ts";
import { registerTfOptimizer } from "./tfjs/register.ts";

export { TfOptimizer };
export type { SettingsHolder, TfOptimizerOptions };
export type { JsonValue, TfOptimizerConfig } from "./tfjs/config.ts";
export { registerTfOptimizer };
export { type SkippedStepsCallback, skippedStepsCallback } from "./tfjs/skipped.ts";
export type { EmaAverages, EmaOptions, EmaSettings } from "./tfjs/ema.ts";
export { type EmaCallback, emaCallback, type EmaCallbackOptions } from "./tfjs/ema_callback.ts";

// Importing the adapter registers it (code that only loads a model calls registerTfOptimizer()).
registerTfOptimizer();

/**
 * Turns an optimizer of this library into a TensorFlow.js optimizer (a subclass of tfjs-core's
 * `Optimizer`): `model.compile({ optimizer: tfOptimizer(radam()) })`.
 *
 * `tfOptimizer(adam({ lr, eps: 1e-7 }))` is `tf.train.adam(lr)` (tfjs's Adam adds its epsilon,
 * `tf.backend().epsilon()`, 1e-7 on the float32 backends, to √v̂, where PyTorch and this library
 * add eps: the same place), to within f32 rounding. The optimizer's options go to its factory,
 * `tfOptimizer(adamw({ lr: 3e-4, weightDecay: 0.01 }))`; `options` are the adapter's own
 * ({@linkcode TfOptimizerOptions}).
 *
 * What it returns (the class `TfOptimizer`, left out of these docs) has `tf.Optimizer`'s members
 * (`minimize`, `applyGradients`, `iterations`, `getWeights`, `setWeights`, `dispose`) and:
 * `state`, the library state of its variables, `undefined` until its first step
 * (`await saveState(optimizer.state)` is its checkpoint); `loadState(bytes)`, the way back (a
 * Promise: await it before the next step), whose moments and step count go to the variables of
 * their names; `setLearningRate(lr)`; `backend` (`"wasm"`, `"js"` or `"webgpu"`), `settings`,
 * `skippedSteps`, `accumulatedBatches`, `discardAccumulated()`, `averages` (option `ema`) and
 * `ready()` (option `threads`). A model saved with `model.save(handler, { includeOptimizer:
 * true })` keeps the moments too, and `tf.loadLayersModel` brings them back with the model (see
 * {@linkcode registerTfOptimizer}). Give each model its own optimizer: one given to two models
 * trains both under one step count, as tfjs's own optimizers do, so the second model's
 * variables start fresh at the count the first reached, their bias corrections late.
 *
 * @example Train a variable (`minimize` works too where tfjs's gradients are registered, as
 * tfjs-layers does)
 * ```ts
 * import * as tf from "@tensorflow/tfjs-core";
 * import "@tensorflow/tfjs-backend-cpu";
 * import { radam } from "@optim/radam";
 * import { tfOptimizer } from "@optim/radam/tfjs";
 * import assert from "node:assert/strict";
 *
 * await tf.setBackend("cpu");
 * const w = tf.variable(tf.tensor1d([3, -2]), true, "example/w");
 * const optimizer = tfOptimizer(radam({ lr: 0.1 }));
 * for (let i = 0; i < 100; i++) {
 *   const grad = tf.mul(w, 2); // the gradient of sum(w²)
 *   optimizer.applyGradients({ "example/w": grad });
 *   grad.dispose();
 * }
 * assert.ok([...w.dataSync()].every((x) => Math.abs(x) < 0.1)); // close to [0, 0]
 * optimizer.dispose();
 * ```
 *
 * @example Save the optimizer's state after `model.fit`, and resume in a new optimizer
 * ```ts
 * import * as tf from "@tensorflow/tfjs-core";
 * import "@tensorflow/tfjs-backend-cpu";
 * import * as tfl from "@tensorflow/tfjs-layers";
 * import { adamw, saveState } from "@optim/radam";
 * import { tfOptimizer } from "@optim/radam/tfjs";
 * import assert from "node:assert/strict";
 *
 * await tf.setBackend("cpu");
 * const model = tfl.sequential({ layers: [tfl.layers.dense({ units: 1, inputShape: [2] })] });
 * const x = tf.tensor2d([[0, 1], [1, 0]]), y = tf.tensor2d([[1], [-1]]);
 * const first = tfOptimizer(adamw({ lr: 1e-2 }));
 * model.compile({ optimizer: first, loss: "meanSquaredError" });
 * await model.fit(x, y, { epochs: 3, verbose: 0 });
 * const bytes = await saveState(first.state!); // moments and step count, by variable name
 *
 * const resumed = tfOptimizer(adamw({ lr: 1e-2 })); // later: a new optimizer, a checkpoint
 * await resumed.loadState(bytes);
 * model.compile({ optimizer: resumed, loss: "meanSquaredError" });
 * await model.fit(x, y, { epochs: 1, verbose: 0 });
 * assert.equal(resumed.iterations, 4); // step 4, from the moments of step 3
 * first.dispose();
 * resumed.dispose();
 * ```
 */
export function tfOptimizer(optimizer: SettingsHolder, options?: TfOptimizerOptions): TfOptimizer {
  return new TfOptimizer(optimizer, options);
}
