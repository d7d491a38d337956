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
  if (typeof name !== "string") return "an object";
  const own = (globalThis as Record<string, unknown>)[name];
  return ArrayBuffer.isView(value) && typeof own === "function" && !(value instanceof own)
    ? `a ${name} of another realm (another window's, an iframe's or a vm context's)`
    : name;
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
 * The error of a disposed state used (stepped, read, saved): it says that `dispose` ended every
 * state of its line, and how to start one again.
 *
 * @example
 * ```ts
 * import { DISPOSED_STATE_MESSAGE } from "./_errors.ts";
 * import assert from "node:assert/strict";
 *
 * assert.match(DISPOSED_STATE_MESSAGE, /^This optimizer state was disposed \(/);
 * ```
 */
export const DISPOSED_STATE_MESSAGE = "This optimizer state was disposed (dispose ends it and " +
  "every state step() made from it: start again from await opt.init(params), or from a " +
  "checkpoint saved before, await loadState(bytes))";

/**
 * What to add to an error about `first`, given where `call`'s optimizer goes, when `second` is
 * the optimizer (an object with `settings` and `init`): the options came first. Empty else.
 *
 * @example
 * ```ts
 * import { swappedOptimizerHint } from "./_errors.ts";
 * import assert from "node:assert/strict";
 *
 * const optimizer = { settings: {}, init() {} };
 * assert.equal(
 *   swappedOptimizerHint({ k: 5 }, optimizer, "lookahead"),
 *   " (the options came first: lookahead takes the optimizer first, lookahead(optimizer, options))",
 * );
 * assert.equal(swappedOptimizerHint({ k: 5 }, undefined, "lookahead"), "");
 * ```
 */
export function swappedOptimizerHint(first: unknown, second: unknown, call: string): string {
  const s = second as { settings?: unknown; init?: unknown } | null;
  if (typeof first !== "object" || first === null || typeof s !== "object" || s === null) return "";
  if (typeof s.settings !== "object" || s.settings === null || typeof s.init !== "function") {
    return "";
  }
  return ` (the options came first: ${call} takes the optimizer first, ${call}(optimizer, options))`;
}

/** The library's factories that make an optimizer with no argument. */
const FACTORIES = ["radam", "adam", "adamw", "sgd", "lion", "ranger"];

/**
 * What to add to an error about `value` given where an optimizer goes: for one of the library's
 * factories given uncalled (`lookahead(radam)`), to call it. Empty for anything else.
 *
 * @example
 * ```ts
 * import { factoryHint } from "./_errors.ts";
 * import assert from "node:assert/strict";
 *
 * function radam() {}
 * assert.equal(factoryHint(radam), " (a factory: call it, radam())");
 * assert.equal(factoryHint(() => {}), "");
 * ```
 */
export function factoryHint(value: unknown): string {
  return typeof value === "function" && FACTORIES.includes(value.name)
    ? ` (a factory: call it, ${value.name}())`
    : "";
}

/** The library's schedule makers, each with a call of it that makes a schedule. */
const SCHEDULE_MAKERS = new WeakMap<object, string>();

/**
 * Records `maker`, a function of the library that makes a learning-rate schedule, with `call`,
 * an example call of it, for {@linkcode scheduleMakerHint}; returns `maker`.
 *
 * @example
 * ```ts
 * import { scheduleMaker, scheduleMakerHint } from "./_errors.ts";
 * import assert from "node:assert/strict";
 *
 * const halving = scheduleMaker((lr: number) => (t: number) => lr / t, "halving(1e-3)");
 * assert.match(scheduleMakerHint(halving), /call it, lr: halving\(1e-3\)/);
 * ```
 */
export function scheduleMaker<F extends (...args: never[]) => unknown>(maker: F, call: string): F {
  SCHEDULE_MAKERS.set(maker, call);
  return maker;
}

/**
 * What an error about `value` given as a learning rate says it got where it is one of the
 * library's schedule makers itself (`lr: linearWarmup`), not the schedule a call of it makes:
 * that, and to call it. Empty for anything else, a schedule of the caller's named alike included.
 *
 * @example
 * ```ts
 * import { scheduleMakerHint } from "./_errors.ts";
 * import assert from "node:assert/strict";
 *
 * assert.equal(scheduleMakerHint((t: number) => 1e-3 / t), "");
 * ```
 */
export function scheduleMakerHint(value: unknown): string {
  const call = typeof value === "function" ? SCHEDULE_MAKERS.get(value) : undefined;
  return call === undefined
    ? ""
    : `${call.slice(0, call.indexOf("("))} itself, which makes a schedule: call it, lr: ${call}`;
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
 * What to add to an error about a value that should have been a `Float32Array` (or a record of
 * them): for a TensorFlow.js tensor (an object with `dataSync()` and a `shape`), how to pass its
 * values instead, or to train through the adapter; for a Promise, to await it (`tensor.data()`
 * returns one); for numbers in an `Array` or in a typed array of another type, how to convert
 * them; for an `ArrayBuffer`, how to view it; for a `Map`, how to make it a record; for a GPU
 * tensor (a `GPUBuffer`, `{ buffer, length }`), that a webgpu state takes it. Empty for anything
 * else.
 *
 * @example
 * ```ts
 * import { tensorHint } from "./_errors.ts";
 * import assert from "node:assert/strict";
 *
 * assert.equal(tensorHint({ w: new Float64Array(2) }), "");
 * assert.match(tensorHint({ shape: [2], dataSync: () => [] }), /await tensor.data\(\)/);
 * assert.match(tensorHint(Promise.resolve()), /await it/);
 * assert.match(tensorHint(new Float64Array(2)), /new Float32Array\(values\)/);
 * assert.match(tensorHint([1, 2]), /new Float32Array\(values\)/);
 * assert.equal(tensorHint([new Float32Array(2)]), "");
 * assert.equal(tensorHint(new ArrayBuffer(8)), " (wrap it: new Float32Array(buffer))");
 * assert.match(tensorHint(new Map()), /Object\.fromEntries\(map\)/);
 * ```
 */
export function tensorHint(value: unknown): string {
  if (typeof value !== "object" || value === null) return "";
  if (isGpuTensorLike(value)) {
    return " (a GPU tensor: only a state on the webgpu backend takes those; init that state " +
      'with backend "webgpu" or "auto" and the device of your buffers, init(params, { device }))';
  }
  const tensor = value as { dataSync?: unknown; shape?: unknown };
  if (typeof tensor.dataSync === "function" && Array.isArray(tensor.shape)) {
    return " (a TensorFlow.js tensor: pass its values, `await tensor.data()`, or train through " +
      "tfOptimizer of @optim/radam/tfjs)";
  }
  if (isThenable(value)) return promiseHint(value);
  if (value instanceof ArrayBuffer) return " (wrap it: new Float32Array(buffer))";
  if (value instanceof Map) return " (a Map: pass a plain object, Object.fromEntries(map))";
  const numbers = Array.isArray(value)
    ? value.length > 0 && value.every((x) => typeof x === "number")
    : ArrayBuffer.isView(value) && !(value instanceof DataView) &&
      !(value instanceof BigInt64Array) && !(value instanceof BigUint64Array);
  return numbers ? convertHint("Float32Array") : "";
}

/**
 * Whether `value` is a GPUBuffer or `{ buffer: GPUBuffer, … }` (a GPU tensor, or a
 * `GPUBufferBinding` without its length, which a webgpu state's own checks then ask for).
 */
function isGpuTensorLike(value: object): boolean {
  if (typeof GPUBuffer === "undefined") return false;
  return value instanceof GPUBuffer || (value as { buffer?: unknown }).buffer instanceof GPUBuffer;
}

/** The hint for numbers given where a typed array of `type` belongs. */
function convertHint(type: string): string {
  return ` (convert it: new ${type}(values))`;
}

/**
 * What to add to an error about a value that should have been a checkpoint's bytes (a
 * `Uint8Array`): for an `ArrayBuffer`, how to wrap it; for a Promise, to await it (`saveState`
 * returns one); for numbers in an `Array`, how to convert them; for a `Uint8Array` of another
 * realm, how to copy it into this one; for what holds bytes to be read (a `Blob`, a `File`, a
 * `fetch` `Response`: an `arrayBuffer()` method), how to read them. Empty for anything else.
 *
 * @example
 * ```ts
 * import { bytesHint } from "./_errors.ts";
 * import assert from "node:assert/strict";
 *
 * assert.equal(bytesHint(new ArrayBuffer(8)), " (wrap it: new Uint8Array(buffer))");
 * assert.match(bytesHint(Promise.resolve()), /saveState\(\) returns a Promise/);
 * assert.equal(bytesHint([1, 2]), " (convert it: new Uint8Array(values))");
 * assert.equal(bytesHint("x"), "");
 * assert.equal(
 *   bytesHint(new Blob([])),
 *   " (a Blob: read its bytes, new Uint8Array(await blob.arrayBuffer()))",
 * );
 * ```
 */
export function bytesHint(value: unknown): string {
  if (value instanceof ArrayBuffer) return " (wrap it: new Uint8Array(buffer))";
  if (ArrayBuffer.isView(value) && value.constructor?.name === "Uint8Array") {
    return " (copy it into this realm: new Uint8Array(bytes))"; // (another realm's)
  }
  if (Array.isArray(value) && value.length > 0 && value.every((x) => typeof x === "number")) {
    return convertHint("Uint8Array");
  }
  if (isStateLike(value)) return " (a state: its checkpoint is await saveState(state))";
  const read = typeof value === "object" && value !== null
    ? (value as { arrayBuffer?: unknown }).arrayBuffer
    : undefined;
  if (typeof read === "function" && !isThenable(value)) {
    const name = described(value);
    const it = /^[A-Z]\w*$/.test(name) ? name[0].toLowerCase() + name.slice(1) : "it";
    return ` (a ${
      it === "it" ? "source of bytes" : name
    }: read its bytes, new Uint8Array(await ${it}.arrayBuffer()))`;
  }
  const then = typeof value === "object" && value !== null
    ? (value as { then?: unknown }).then
    : undefined;
  return typeof then === "function" ? " (saveState() returns a Promise: await it)" : "";
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
 * The hint of `undefined` given where an optimizer state goes: how a state is made, and why a
 * TensorFlow.js optimizer's `state` is undefined (no step has made it yet: before its first step,
 * and after its `loadState` or `setWeights` until the next) and how its state is saved then.
 */
export const UNDEFINED_STATE_HINT = " (no state yet: make one with await opt.init(params) or " +
  "await loadState(bytes); a TensorFlow.js optimizer's state, optimizer.state, is undefined until " +
  "its first step (applyGradients, or model.fit's first batch) makes it, and again after its " +
  "loadState or setWeights until the next step: until then, what it holds (its step count, " +
  "moments loaded) is in await optimizer.getWeights(), which model.save(handler, " +
  "{ includeOptimizer: true }) saves)";

/**
 * What to add to an error about a value that should have been an optimizer state: for a
 * Promise, to await it (`init` and `loadState` return one); for an optimizer (an object with
 * `init` and `settings`), to make its state; for `undefined`, {@linkcode UNDEFINED_STATE_HINT};
 * for a TensorFlow.js optimizer of this library (`applyGradients` and `state`), to pass its
 * `state`; for a state of another copy of the library (its class has a state's getters, but is
 * not this copy's: two versions in node_modules, a bundle beside the package), that it is one,
 * and how to move it across. Empty for anything else.
 *
 * @example
 * ```ts
 * import { stateHint } from "./_errors.ts";
 * import assert from "node:assert/strict";
 *
 * assert.equal(stateHint({}), "");
 * assert.match(stateHint(undefined), /optimizer\.state, is undefined until its first step/);
 * assert.match(stateHint({ applyGradients() {}, state: undefined }), /pass optimizer\.state/);
 * assert.match(stateHint(Promise.resolve()), /await/);
 * assert.match(stateHint({ init() {}, settings: {} }), /opt\.init\(params\)/);
 * class Foreign {
 *   get optimizer() { return "radam"; }
 *   get names() { return []; }
 *   get params() { return {}; }
 *   get grads() { return {}; }
 * }
 * assert.match(stateHint(new Foreign()), /another copy of this library/);
 * ```
 */
export function stateHint(value: unknown): string {
  if (value === undefined) return UNDEFINED_STATE_HINT;
  if (typeof value !== "object" || value === null) return "";
  const { then, init, settings, applyGradients } = value as Record<string, unknown>;
  if (typeof then === "function") return " (init() and loadState() return a Promise: await it)";
  if (typeof init === "function" && typeof settings === "object" && settings !== null) {
    return " (an optimizer: make its state with await opt.init(params))";
  }
  if (typeof applyGradients === "function" && "state" in value) {
    return " (a TensorFlow.js optimizer: pass optimizer.state, its library state, made by its " +
      "first step)";
  }
  if (isStateLike(value)) {
    return " (a state made by another copy of this library, loaded beside this one, e.g. another " +
      "version: use one copy, or carry the state across with that copy's saveState and this " +
      "one's loadState)";
  }
  return "";
}

/**
 * What to add to the error for `value` given where `expected` (a number, an integer) goes, when
 * it is the text of a finite number (read from a form, a URL, an environment variable): to
 * convert it. Empty for anything else.
 *
 * @example
 * ```ts
 * import { numberTextHint } from "./_errors.ts";
 * import assert from "node:assert/strict";
 *
 * assert.equal(numberTextHint("a finite number", "1e-3"), " (a number as text: convert it, Number(value))");
 * assert.equal(numberTextHint("a finite number", "fast"), "");
 * assert.equal(numberTextHint("one of skip, throw", "1"), "");
 * ```
 */
export function numberTextHint(expected: string, value: unknown): string {
  if (typeof value !== "string" || value.trim() === "" || !Number.isFinite(Number(value))) {
    return "";
  }
  return /\b(number|integer)\b/.test(expected)
    ? " (a number as text: convert it, Number(value))"
    : "";
}

/**
 * The message of an option that fails its check: `Option <name> must be <expected>, got <what
 * it got>`, and for the text of a number, to convert it.
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
    numberTextHint(expected, value)
  }`;
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
 * Whether `value` is an optimizer state, of this copy of the library or of another: its class
 * has a state's getters (asked of its class, not of it: a state's getters throw once it is
 * consumed or disposed).
 */
function isStateLike(value: unknown): boolean {
  if (typeof value !== "object" || value === null) return false;
  const type = Object.getPrototypeOf(value);
  const getter = (name: string) =>
    typeof Object.getOwnPropertyDescriptor(type ?? {}, name)?.get === "function";
  return ["optimizer", "names", "params", "grads"].every(getter);
}
