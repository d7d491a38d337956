/**
 * The weights of TensorFlow.js's own optimizers, as `setWeights` may be given them by code moving
 * from `tf.train.*` to this adapter: what an error about one of their names adds. tfjs's Adam
 * names its moments as this adapter does (`<variable>/m`, `<variable>/v`: the same values, taken
 * as they are); its momentum optimizer names its buffer `<variable>/momentum`, which this
 * library's SGD keeps as `<variable>/momentum_buffer` (the same values: `buf = momentum · buf +
 * grad`, with dampening 0, PyTorch's default); RMSProp, Adagrad and Adadelta keep state no
 * optimizer of this library keeps. And what an error about weights given in another form than
 * `NamedTensor[]` adds.
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs-core";

/** The weight suffixes of tfjs's RMSProp, Adagrad and Adadelta, by optimizer. */
const OTHERS: Readonly<Record<string, string>> = {
  rms: "RMSProp",
  mg: "RMSProp",
  accumulator: "Adagrad",
  accum_grad: "Adadelta",
  accum_var: "Adadelta",
};

/**
 * What an error about an unexpected weight whose name ends `/<suffix>` adds where that is the
 * name a TensorFlow.js optimizer gives its state (tfjs's momentum buffer: its name here; another
 * optimizer's state: whose it is); `""` otherwise.
 *
 * @example
 * ```ts
 * import { tfjsWeightHint } from "./tfjs_weights.ts";
 * import assert from "node:assert/strict";
 *
 * assert.match(tfjsWeightHint("momentum"), /momentum_buffer/);
 * assert.match(tfjsWeightHint("rms"), /RMSProp/);
 * assert.equal(tfjsWeightHint("x"), "");
 * ```
 */
export function tfjsWeightHint(suffix: string): string {
  if (suffix === "momentum") {
    return `; "<variable>/momentum" is how tf.train.momentum (and RMSProp) names its buffer: ` +
      `this library's SGD keeps tf.train.momentum's as "<variable>/momentum_buffer" (the ` +
      `same values, with dampening 0): rename the weights to give them to ` +
      `tfOptimizer(sgd({ lr, momentum }))`;
  }
  const owner = OTHERS[suffix];
  if (owner === undefined) return "";
  return `; "<variable>/${suffix}" is a weight of TensorFlow.js's ${owner} optimizer, whose ` +
    `state no optimizer of this library keeps`;
}

/**
 * What an error about `given`, where `setWeights` takes a `NamedTensor[]` or one of its
 * elements, adds where it is a tensor (a model's weights, `model.getWeights()`, are tensors; the
 * optimizer's are named) or a record of tensors (a `NamedTensorMap`): what to give. `""`
 * otherwise.
 *
 * @example
 * ```ts
 * import "@tensorflow/tfjs-backend-cpu";
 * import * as tf from "@tensorflow/tfjs-core";
 * import { formHint } from "./tfjs_weights.ts";
 * import assert from "node:assert/strict";
 *
 * const t = tf.scalar(1);
 * assert.match(formHint(t), /model\.getWeights\(\)/);
 * assert.match(formHint({ iter: t }), /Object\.entries/);
 * assert.equal(formHint(3), "");
 * ```
 */
export function formHint(given: unknown): string {
  if (given instanceof tf.Tensor) {
    return " (the optimizer's weights are named, { name, tensor }, as optimizer.getWeights() " +
      "gives them; a model's, model.getWeights(), are not the optimizer's)";
  }
  if (typeof given !== "object" || given === null || Array.isArray(given)) return "";
  const values = Object.values(given);
  return values.length > 0 && values.every((v) => v instanceof tf.Tensor)
    ? " (a NamedTensorMap: give Object.entries(map).map(([name, tensor]) => ({ name, tensor })))"
    : "";
}
