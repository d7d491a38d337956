/**
 * The adapter's registration with TensorFlow.js's serialization, which `tf.loadLayersModel`
 * needs to rebuild a saved model's optimizer.
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs-core";
import { TfOptimizer } from "./optimizer.ts";

/**
 * Registers the adapter's optimizer class with TensorFlow.js (`tf.serialization.registerClass`)
 * under the name saved models hold it by, `"RadamTfOptimizer"` (`class_name` of the
 * `optimizer_config` in `model.json`), so that `tf.loadLayersModel` rebuilds it. Idempotent:
 * calling it again does nothing.
 *
 * Importing the adapter registers it too. Call it yourself, before `tf.loadLayersModel`, in code
 * that only loads a saved model: there nothing else of the adapter is used, and a bundler may
 * drop an import kept only for its side effects (esbuild does, for a package that says
 * `"sideEffects": false`); `tf.loadLayersModel` then fails with `Unknown layer:
 * RadamTfOptimizer`.
 *
 * @example Load a model saved with its optimizer
 * ```ts
 * import * as tf from "@tensorflow/tfjs-core";
 * import "@tensorflow/tfjs-backend-cpu";
 * import * as tfl from "@tensorflow/tfjs-layers";
 * import { radam } from "@optim/radam";
 * import { registerTfOptimizer, tfOptimizer } from "@optim/radam/tfjs";
 * import assert from "node:assert/strict";
 *
 * registerTfOptimizer(); // before tf.loadLayersModel, in code that only loads
 * await tf.setBackend("cpu");
 * // A model saved with its optimizer: here in memory ("indexeddb://…", files and URLs alike).
 * const model = tfl.sequential({ layers: [tfl.layers.dense({ units: 1, inputShape: [1] })] });
 * model.compile({ optimizer: tfOptimizer(radam()), loss: "meanSquaredError" });
 * let saved: tf.io.ModelArtifacts | undefined;
 * await model.save(
 *   tf.io.withSaveHandler((artifacts) => {
 *     saved = artifacts;
 *     const info = { dateSaved: new Date(), modelTopologyType: "JSON" as const };
 *     return Promise.resolve({ modelArtifactsInfo: info });
 *   }),
 *   { includeOptimizer: true },
 * );
 * const loaded = await tfl.loadLayersModel(tf.io.fromMemory(saved!));
 * assert.equal(loaded.optimizer.getClassName(), "RadamTfOptimizer");
 * ```
 */
export function registerTfOptimizer(): void {
  const known = tf.serialization.SerializationMap.getMap().classNameMap[TfOptimizer.className];
  if (known?.[0] === TfOptimizer) return;
  tf.serialization.registerClass(TfOptimizer);
}
