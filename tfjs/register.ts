/**
 * The adapter's registration with TensorFlow.js's serialization, which `tf.loadLayersModel`
 * needs to rebuild a saved model's optimizer.
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs-core";
import { described } from "../base/_errors.ts";
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
 * `tfjs`, a TensorFlow.js namespace (default: the `@tensorflow/tfjs-core` the adapter imports),
 * is the one whose registry it goes in. Give it the tfjs that loads the model where a page has
 * two copies of tfjs-core: the adapter's, and the one in the `@tensorflow/tfjs` ES module or in
 * `tf.min.js` (its global `tf`), as from a CDN with an import map that points
 * `@tensorflow/tfjs-core` at tfjs-core's own file. Each keeps a registry of its own, and the
 * import registers the class only in the adapter's.
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
export function registerTfOptimizer(tfjs?: Pick<typeof tf, "serialization">): void {
  if (tfjs === undefined) tfjs = tf;
  const serialization = (tfjs as Partial<typeof tf> | null | undefined)?.serialization;
  if (
    typeof serialization?.registerClass !== "function" ||
    typeof serialization.SerializationMap?.getMap !== "function"
  ) {
    throw new TypeError(
      `registerTfOptimizer expects a TensorFlow.js namespace (import * as tf from "@tensorflow/tfjs", or tf.min.js's global tf), with its serialization, got ${
        described(tfjs)
      }`,
    );
  }
  const known = serialization.SerializationMap.getMap().classNameMap[TfOptimizer.className];
  if (known?.[0] === TfOptimizer) return;
  serialization.registerClass(TfOptimizer);
}
