/**
 * How error messages word what they were given, in one place, so that every check of an option,
 * a tensor or a gradient says it the same way (`got a string "1e-3"`, `got -1`, `got
 * Float64Array`). Private to the library.
 *
 * @module
 */

/**
 * A value as an error message shows it after "got": numbers and booleans as themselves,
 * strings quoted and said to be strings, `null` and `undefined` by name, functions as such,
 * and other objects by their constructor's name (`Float64Array`, `Array`).
 *
 * @example
 * ```ts
 * import { described } from "./_errors.ts";
 * import assert from "node:assert/strict";
 *
 * assert.equal(described("1e-3"), 'a string "1e-3"');
 * assert.equal(described(NaN), "NaN");
 * assert.equal(described(new Float64Array(2)), "Float64Array");
 * ```
 */
export function described(value: unknown): string {
  switch (typeof value) {
    case "number":
    case "boolean":
      return String(value);
    case "bigint":
      return `a bigint ${value}n`;
    case "string":
      return `a string ${JSON.stringify(value.length > 40 ? `${value.slice(0, 40)}…` : value)}`;
    case "undefined":
      return "undefined";
    case "function":
      return "a function";
    case "symbol":
      return "a symbol";
  }
  if (value === null) return "null";
  return (value as object).constructor?.name ?? "an object";
}

/**
 * What to add to an error about a value that should have been a `Float32Array` (or a record of
 * them) when it is a TensorFlow.js tensor (an object with `dataSync()` and a `shape`): how to
 * pass its values instead, or to train through the adapter. Empty for anything else.
 *
 * @example
 * ```ts
 * import { tensorHint } from "./_errors.ts";
 * import assert from "node:assert/strict";
 *
 * assert.equal(tensorHint(new Float64Array(2)), "");
 * assert.match(tensorHint({ shape: [2], dataSync: () => [] }), /await tensor.data\(\)/);
 * ```
 */
export function tensorHint(value: unknown): string {
  const tensor = value as { dataSync?: unknown; shape?: unknown } | null;
  if (
    typeof tensor !== "object" || tensor === null || typeof tensor.dataSync !== "function" ||
    !Array.isArray(tensor.shape)
  ) {
    return "";
  }
  return " (a TensorFlow.js tensor: pass its values, `await tensor.data()`, or train through " +
    "tfOptimizer of @optim/radam/tfjs)";
}

/**
 * What to add to an error about a value that should have been an optimizer state when it is a
 * Promise: `init` and `loadState` return one, to be awaited. Empty for anything else.
 *
 * @example
 * ```ts
 * import { promiseHint } from "./_errors.ts";
 * import assert from "node:assert/strict";
 *
 * assert.equal(promiseHint({}), "");
 * assert.match(promiseHint(Promise.resolve()), /await/);
 * ```
 */
export function promiseHint(value: unknown): string {
  const then = typeof value === "object" && value !== null
    ? (value as { then?: unknown }).then
    : undefined;
  return typeof then === "function" ? " (init() and loadState() return a Promise: await it)" : "";
}

/**
 * The message of an option that fails its check: `Option <name> must be <expected>, got <what
 * it got>`.
 *
 * @example
 * ```ts
 * import { optionMessage } from "./_errors.ts";
 * import assert from "node:assert/strict";
 *
 * assert.equal(
 *   optionMessage("lr", "a finite number", "1e-3"),
 *   'Option lr must be a finite number, got a string "1e-3"',
 * );
 * ```
 */
export function optionMessage(name: string, expected: string, value: unknown): string {
  return `Option ${name} must be ${expected}, got ${described(value)}`;
}

/**
 * The error for an option that fails its check: a RangeError when it is of the right type but
 * out of range (`range`; by default, when it is a number: out of bounds, or not finite), else a
 * TypeError. Its message is {@linkcode optionMessage}'s.
 *
 * @example
 * ```ts
 * import { optionError } from "./_errors.ts";
 * import assert from "node:assert/strict";
 *
 * assert.ok(optionError("lr", "a finite number", "1e-3") instanceof TypeError);
 * assert.ok(optionError("lr", "≥ 0", -1) instanceof RangeError);
 * ```
 */
export function optionError(
  name: string,
  expected: string,
  value: unknown,
  range: boolean = typeof value === "number",
): Error {
  const message = optionMessage(name, expected, value);
  return range ? new RangeError(message) : new TypeError(message);
}
