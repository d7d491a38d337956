/**
 * The check that `@tensorflow/tfjs-core`, as the adapter's import resolves it, is tfjs-core: on a
 * page with no bundler an import map says what it is, and a classic script there (`tf.min.js`,
 * which defines a global `tf` and exports nothing) gives the adapter an empty module.
 *
 * @module
 */

/**
 * The exports of `@tensorflow/tfjs-core` the adapter uses: what a module mapped in its place must
 * export. The npm package's `tfjs-core-global.js`, which takes them from `tf.min.js`'s global
 * `tf`, is made from this list (tools/_npm_core_global.ts).
 */
export const TFJS_CORE_EXPORTS: readonly string[] = [
  "Optimizer",
  "Tensor",
  "Variable",
  "abs",
  "add",
  "backend",
  "clone",
  "dispose",
  "div",
  "engine",
  "getBackend",
  "grads",
  "greaterEqual",
  "keep",
  "logicalOr",
  "max",
  "mean",
  "min",
  "mul",
  "notEqual",
  "scalar",
  "serialization",
  "setBackend",
  "sub",
  "tensor",
  "tensor1d",
  "tidy",
  "tile",
  "train",
  "variableGrads",
  "where",
];

/**
 * Throws a `TypeError` unless `namespace` (the adapter's `import * as tf from
 * "@tensorflow/tfjs-core"`) has every export in {@link TFJS_CORE_EXPORTS}: the message names the
 * missing ones and what to map `@tensorflow/tfjs-core` to, where tfjs would fail with `Class
 * extends value undefined` or `tf.… is not a function`.
 *
 * @example
 * ```ts
 * import * as tf from "@tensorflow/tfjs-core";
 * import { checkTfjsCore } from "./_core_check.ts";
 * import assert from "node:assert/strict";
 *
 * checkTfjsCore(tf); // tfjs-core itself
 * assert.throws(() => checkTfjsCore({}), /does not export Optimizer, Tensor/);
 * ```
 */
export function checkTfjsCore(namespace: object): void {
  const exports = namespace as Record<string, unknown>;
  const missing = TFJS_CORE_EXPORTS.filter((name) => exports[name] == null);
  if (missing.length === 0) return;
  throw new TypeError(
    `@optim/radam/tfjs: the module "@tensorflow/tfjs-core" resolves to does not export ${
      missing.join(", ")
    } ` + NOT_CORE,
  );
}

/** Why a module is no tfjs-core, and what to map instead. */
const NOT_CORE = "(it is no tfjs-core: a classic script such as tf.min.js or tf.js defines a " +
  "global tf and exports nothing). On a page that loads tf.min.js with a <script> tag, map " +
  '"@tensorflow/tfjs-core" in the import map to tfjs-core-global.js, the file beside tfjs.js ' +
  "in the npm package @optim/radam (of the same version), which exports these from the " +
  "global tf (or to tfjs-core's own ES module of tf.min.js's version, dist/tf-core.fesm.js, a " +
  "second copy: then call registerTfOptimizer(tf) before tf.loadLayersModel)";
