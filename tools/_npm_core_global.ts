/**
 * The npm package's `tfjs-core-global.js` (`@optim/radam/tfjs-core-global`): `@tensorflow/tfjs-core`
 * as the TensorFlow.js adapter uses it, taken from the global `tf` of a page that loads
 * TensorFlow.js as a classic script (`tf.min.js`). A page maps `@tensorflow/tfjs-core` to it in its
 * import map. It is made from the adapter's own list of what it uses ({@link TFJS_CORE_EXPORTS}),
 * so that it stays whole as the adapter changes: users once copied the list from the README, and a
 * later version that used another export broke their copy. Private to tools/.
 *
 * @module
 */
import { TFJS_CORE_EXPORTS } from "../tfjs/_core_check.ts";

/** The file's path in the package, and the subpath it is exported as (without `.js`). */
export const CORE_GLOBAL_FILE = "tfjs-core-global.js";

/**
 * The message of the file's `Error` where the page has no global `tf` (tf.min.js not loaded, or
 * loaded `async` or as a module, after the adapter).
 */
export const NO_GLOBAL_TF = "@optim/radam/tfjs-core-global: there is no global tf to take " +
  "tfjs-core's exports from. Load TensorFlow.js as a classic script, with a <script> tag " +
  '(not async or type="module") before the module that imports @optim/radam/tfjs, e.g. ' +
  '<script src="https://cdn.jsdelivr.net/npm/@tensorflow/tfjs@4.22.0/dist/tf.min.js"></script>';

/**
 * The text of {@link CORE_GLOBAL_FILE}: an ES module that exports each of
 * {@link TFJS_CORE_EXPORTS} from `globalThis.tf`, and throws an `Error` at import where there is
 * no global `tf` (where the adapter would fail with `Class extends value undefined`).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { coreGlobalModule } from "./_npm_core_global.ts";
 *
 * assert.match(coreGlobalModule(), /\} = globalThis\.tf;\n$/);
 * ```
 */
export function coreGlobalModule(): string {
  for (const name of TFJS_CORE_EXPORTS) {
    if (!/^[A-Za-z_$][\w$]*$/.test(name)) throw new Error(`no export name: ${name}`);
  }
  return [
    "// @optim/radam/tfjs-core-global: @tensorflow/tfjs-core's exports that the TensorFlow.js",
    "// adapter (@optim/radam/tfjs) uses, from the global tf of tfjs loaded as a classic script",
    '// (tf.min.js). Map "@tensorflow/tfjs-core" to this file in the page\'s import map. Made by',
    "// the package's build from the adapter's own list: it matches this version of the adapter.",
    'if (typeof globalThis.tf !== "object" || globalThis.tf === null) {',
    `  throw new Error(${JSON.stringify(NO_GLOBAL_TF)});`,
    "}",
    "export const {",
    ...TFJS_CORE_EXPORTS.map((name) => `  ${name},`),
    "} = globalThis.tf;",
    "",
  ].join("\n");
}
