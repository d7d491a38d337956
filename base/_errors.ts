/**
 * How error messages word what they were given, in one place, so that every check of an option,
 * a tensor or a gradient says it the same way (`got a string "1e-3"`, `got -1`, `got
 * Float64Array`). Private to the library. The hints errors add, by what they are about, are
 * beside it and word values with it: `_state_errors.ts` (optimizer states), `_input_hints.ts`
 * (tensors and bytes), `_call_hints.ts` (the library's makers called the wrong way),
 * `_method_hints.ts` (other libraries' methods called on an optimizer or a state).
 *
 * @module
 */

/**
 * A value as an error message shows it after "got": numbers and booleans as themselves,
 * strings quoted and said to be strings, `null` and `undefined` by name, functions as such,
 * arrays with their length (`Array(3)`: an array of the wrong length says so), and other objects
 * by their constructor's name (`Float64Array`); a typed array of another realm (another
 * window's, an iframe's, a `node:vm` context's: not an instance of this realm's class of its
 * name) says so, or the error would read "must be a Float32Array, got Float32Array".
 *
 * @example
 * ```ts
 * import { described } from "./_errors.ts";
 * import assert from "node:assert/strict";
 *
 * assert.equal(described("1e-3"), 'a string "1e-3"');
 * assert.equal(described(NaN), "NaN");
 * assert.equal(described(new Float64Array(2)), "Float64Array");
 * assert.equal(described([0.9, 0.99, 0.1]), "Array(3)");
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
  if (Array.isArray(value)) return `Array(${value.length})`;
  if (isStateLike(value)) return "an optimizer state";
  const name = (value as object).constructor?.name;
  if (typeof name !== "string" || name === "") return "an object"; // ("": a generator's)
  const own = (globalThis as Record<string, unknown>)[name];
  return ArrayBuffer.isView(value) && typeof own === "function" && !(value instanceof own)
    ? `a ${name} of another realm (another window's, an iframe's or a vm context's)`
    : name;
}

/**
 * A number as an error message shows it where its sign matters: as `String` gives it, but −0 as
 * `-0` (which `String` gives as `0`).
 *
 * @example
 * ```ts
 * import { signedNumber } from "./_errors.ts";
 * import assert from "node:assert/strict";
 *
 * assert.equal(signedNumber(-0), "-0");
 * assert.equal(signedNumber(0.5), "0.5");
 * ```
 */
export function signedNumber(value: number): string {
  return Object.is(value, -0) ? "-0" : String(value);
}

/**
 * What to add to an error about `value` where it is a Promise (or another thenable): an `await`
 * was forgotten. Empty for anything else.
 *
 * @example
 * ```ts
 * import { promiseHint } from "./_errors.ts";
 * import assert from "node:assert/strict";
 *
 * assert.equal(promiseHint(Promise.resolve()), " (a Promise: await it)");
 * assert.equal(promiseHint({}), "");
 * ```
 */
export function promiseHint(value: unknown): string {
  return isThenable(value) ? " (a Promise: await it)" : "";
}

/**
 * Whether `value` is a Promise or another thenable (an object with a `then` method).
 *
 * @example
 * ```ts
 * import { isThenable } from "./_errors.ts";
 * import assert from "node:assert/strict";
 *
 * assert.ok(isThenable(Promise.resolve()));
 * assert.ok(!isThenable({ then: 1 }));
 * ```
 */
export function isThenable(value: unknown): boolean {
  return typeof value === "object" && value !== null &&
    typeof (value as { then?: unknown }).then === "function";
}

/**
 * Marks `value`, where it is a Promise (or another thenable) the library refuses, as handled: a
 * no-op rejection handler is attached, so that its rejection is not reported as unhandled (which
 * ends a Deno or Node process, and is logged in browsers). A `then` that throws is ignored.
 *
 * @example
 * ```ts
 * import { markHandled } from "./_errors.ts";
 *
 * markHandled(Promise.reject(new Error("refused, and never awaited")));
 * markHandled(3); // not a thenable: nothing to do
 * ```
 */
export function markHandled(value: unknown): void {
  if (!isThenable(value)) return;
  try {
    (value as PromiseLike<unknown>).then(undefined, () => {});
  } catch {
    // A thenable whose `then` throws has no rejection to leave unhandled.
  }
}

/**
 * What to add to the error for `value` given where `expected` (a number, an integer, a boolean)
 * goes, when it is that value as text (read from a form, a URL, a config file, an environment
 * variable): how to convert it. Empty for anything else.
 *
 * @example
 * ```ts
 * import { textHint } from "./_errors.ts";
 * import assert from "node:assert/strict";
 *
 * assert.equal(textHint("a finite number", "1e-3"), " (a number as text: convert it, Number(value))");
 * assert.equal(textHint("a boolean", "true"), ' (a boolean as text: convert it, value === "true")');
 * assert.match(textHint("a boolean", "False"), /value\.trim\(\)\.toLowerCase\(\) === "true"/);
 * assert.equal(textHint("a finite number", "fast"), "");
 * assert.equal(textHint("one of skip, throw", "1"), "");
 * ```
 */
export function textHint(expected: string, value: unknown): string {
  if (typeof value !== "string") return "";
  const text = value.trim();
  if (/\bboolean\b/.test(expected) && /^(true|false)$/i.test(text)) {
    // ("True", Python's text of a boolean, or " true": value === "true" would be false.)
    const read = /^(true|false)$/.test(value) ? "value" : "value.trim().toLowerCase()";
    return ` (a boolean as text: convert it, ${read} === "true")`;
  }
  if (text === "" || !Number.isFinite(Number(text))) return "";
  return /\b(number|integer)\b/.test(expected)
    ? " (a number as text: convert it, Number(value))"
    : "";
}

/**
 * The message of an option that fails its check: `Option <name> must be <expected>, got <what
 * it got>`, and for the text of a number or a boolean, to convert it; for 1 or 0 given for a
 * boolean, the boolean to write.
 *
 * @example
 * ```ts
 * import { optionMessage } from "./_errors.ts";
 * import assert from "node:assert/strict";
 *
 * assert.equal(
 *   optionMessage("lr", "a finite number", "1e-3"),
 *   'Option lr must be a finite number, got a string "1e-3" (a number as text: convert it, Number(value))',
 * );
 * assert.equal(optionMessage("lr", "a finite number", true), "Option lr must be a finite number, got true");
 * ```
 */
export function optionMessage(name: string, expected: string, value: unknown): string {
  return `Option ${name} must be ${expected}, got ${described(value)}${
    optionValueHint(name, expected, value)
  }`;
}

/**
 * What an option's error adds after the value `value` given as option `name` (`expected`: what
 * it must be): for the text of a number or a boolean, to convert it ({@linkcode textHint}); for
 * 1 or 0 given for a boolean, the boolean to write. Empty for anything else. (The store's option
 * errors, which word values by their own `described`, add it too.)
 *
 * @example
 * ```ts
 * import { optionValueHint } from "./_errors.ts";
 * import assert from "node:assert/strict";
 *
 * assert.equal(optionValueHint("maximize", "a boolean", 1), " (a number: write maximize: true)");
 * assert.match(optionValueHint("maximize", "a boolean", "true"), /^ \(a boolean as text/);
 * assert.equal(optionValueHint("maximize", "a boolean", 2), "");
 * assert.equal(optionValueHint("lr", "a finite number", 1), "");
 * ```
 */
export function optionValueHint(name: string, expected: string, value: unknown): string {
  return textHint(expected, value) || bitHint(name, expected, value);
}

/**
 * What to add to the error for `value` given as option `name` where `expected` is a boolean,
 * when it is 1 or 0 (a flag as C, Python's `int` or a config file writes it): the boolean to
 * write. Empty for anything else.
 */
function bitHint(name: string, expected: string, value: unknown): string {
  if (!/\bboolean\b/.test(expected) || (value !== 0 && value !== 1)) return "";
  const write = value === 1 ? "true" : "false";
  return ` (a number: write ${isIdentifier(name) ? `${name}: ${write}` : write})`;
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

/**
 * The words of a file (a checkpoint, a stored one) cut short: `truncated: expected at least
 * <expected> bytes (<what>), got <got>`, where `what` says what those bytes hold.
 *
 * @example
 * ```ts
 * import { truncatedMessage } from "./_errors.ts";
 * import assert from "node:assert/strict";
 *
 * assert.equal(
 *   `Checkpoint ${truncatedMessage(8, "its header length", 3)}`,
 *   "Checkpoint truncated: expected at least 8 bytes (its header length), got 3",
 * );
 * ```
 */
export function truncatedMessage(expected: number | bigint, what: string, got: number): string {
  return `truncated: expected at least ${expected} bytes (${what}), got ${got}`;
}

/**
 * Whether `value` is an optimizer state, of this copy of the library or of another: its class
 * has a state's getters (asked of its class, not of it: a state's getters throw once it is
 * consumed or disposed).
 *
 * @example
 * ```ts
 * import { isStateLike } from "./_errors.ts";
 * import assert from "node:assert/strict";
 *
 * class Foreign {
 *   get optimizer() { return "radam"; }
 *   get names() { return []; }
 *   get params() { return {}; }
 *   get grads() { return {}; }
 * }
 * assert.ok(isStateLike(new Foreign()));
 * assert.ok(!isStateLike({ optimizer: "radam", names: [], params: {}, grads: {} }));
 * ```
 */
export function isStateLike(value: unknown): boolean {
  if (typeof value !== "object" || value === null) return false;
  const type = Object.getPrototypeOf(value);
  const getter = (name: string) =>
    typeof Object.getOwnPropertyDescriptor(type ?? {}, name)?.get === "function";
  return ["optimizer", "names", "params", "grads"].every(getter);
}

/**
 * Whether `value` is an optimizer value (what `radam()` returns: its `settings` and `init`),
 * given where something else was meant.
 *
 * @example
 * ```ts
 * import { isOptimizerValue } from "./_errors.ts";
 * import assert from "node:assert/strict";
 *
 * assert.ok(isOptimizerValue({ settings: {}, init: () => {} }));
 * assert.ok(!isOptimizerValue({ settings: null, init: () => {} }));
 * ```
 */
export function isOptimizerValue(value: unknown): boolean {
  if (typeof value !== "object" || value === null) return false;
  const { settings, init } = value as { settings?: unknown; init?: unknown };
  return typeof settings === "object" && settings !== null && typeof init === "function";
}

/**
 * Whether `name` is a JavaScript identifier (ASCII), written bare in code that a message shows.
 *
 * @example
 * ```ts
 * import { isIdentifier } from "./_errors.ts";
 * import assert from "node:assert/strict";
 *
 * assert.ok(isIdentifier("w"));
 * assert.ok(!isIdentifier("fc1.weight"));
 * ```
 */
export function isIdentifier(name: string): boolean {
  return /^[A-Za-z_$][\w$]*$/.test(name);
}

/**
 * `name` as a property access in code that a message shows: `.w`, or `["fc1.weight"]`.
 *
 * @example
 * ```ts
 * import { memberAccess } from "./_errors.ts";
 * import assert from "node:assert/strict";
 *
 * assert.equal(memberAccess("w"), ".w");
 * assert.equal(memberAccess("fc1.weight"), '["fc1.weight"]');
 * ```
 */
export function memberAccess(name: string): string {
  return isIdentifier(name) ? `.${name}` : `[${JSON.stringify(name)}]`;
}

/**
 * `name` as an object literal's key in code that a message shows: `w`, or `"fc1.weight"`.
 *
 * @example
 * ```ts
 * import { literalKey } from "./_errors.ts";
 * import assert from "node:assert/strict";
 *
 * assert.equal(literalKey("fc1.weight"), '"fc1.weight"');
 * ```
 */
export function literalKey(name: string): string {
  return isIdentifier(name) ? name : JSON.stringify(name);
}
