/**
 * What errors add about a value given where tensors or a checkpoint's bytes go: how to convert,
 * wrap, await or read it. Private to the library; values are worded by `_errors.ts`.
 *
 * @module
 */
import { described, isStateLike, isThenable, promiseHint } from "./_errors.ts";

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
 * import { tensorHint } from "./_input_hints.ts";
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
  return numbers ? float32ConvertHint(value) : "";
}

/**
 * The hint for numbers (an `Array`, a typed array of another type) given where a `Float32Array`
 * belongs: how to convert them; for a `Uint8Array` of a whole number of f32 (as a Node.js
 * `Buffer` read from a file is), how to take its bytes as f32 too, which converting it would not.
 *
 * @example
 * ```ts
 * import { float32ConvertHint } from "./_input_hints.ts";
 * import assert from "node:assert/strict";
 *
 * assert.equal(float32ConvertHint([1, 2]), " (convert it: new Float32Array(values))");
 * assert.match(float32ConvertHint(new Uint8Array(8)), /new Uint8Array\(bytes\)\.buffer/);
 * ```
 */
export function float32ConvertHint(value: unknown): string {
  if (!(value instanceof Uint8Array && value.byteLength % 4 === 0)) {
    return convertHint("Float32Array");
  }
  return " (convert it: new Float32Array(values); or, where it holds float32 bytes, as a Buffer " +
    "read with node:fs does, new Float32Array(new Uint8Array(bytes).buffer))";
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
 * import { bytesHint } from "./_input_hints.ts";
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
 * What to add where the tensor (or gradient) `name` was given as a record of tensors, a model's
 * nested layers (`{ fc1: { weight, bias } }`, or deeper, `{ encoder: { fc1: { weight } } }`):
 * that a state holds each tensor under one name, its path (`"fc1.weight"`), as PyTorch's
 * `named_parameters()` names them. Empty for anything else (a tensor given with its shape,
 * `{ data, shape }`, whatever its `data`, too).
 *
 * @example
 * ```ts
 * import { nestedRecordHint } from "./_input_hints.ts";
 * import assert from "node:assert/strict";
 *
 * const layer = { weight: new Float32Array(4), bias: new Float32Array(2) };
 * assert.equal(
 *   nestedRecordHint("fc1", layer),
 *   ' (a record of tensors: name each by its path, { "fc1.weight": …, "fc1.bias": … })',
 * );
 * assert.match(nestedRecordHint("encoder", { fc1: layer }), /"encoder\.fc1\.weight"/);
 * assert.equal(nestedRecordHint("w", { data: [1] }), "");
 * assert.equal(nestedRecordHint("w", { data: { data: new Float32Array(2) }, shape: [2] }), "");
 * ```
 */
export function nestedRecordHint(name: string, value: unknown): string {
  if (!isLayer(value)) return "";
  const found: string[] = [];
  tensorPaths(name, value, found, new Set());
  if (found.length === 0) return "";
  const paths = found.slice(0, 2).map((path) => `${JSON.stringify(path)}: …`);
  if (found.length > 2) paths.push("…");
  return ` (a record of tensors: name each by its path, { ${paths.join(", ")} })`;
}

/**
 * Whether `value` may be a layer's record: an object, not an array nor a typed array, nor a
 * tensor given with its shape (`{ data, shape }`, its data of another type or itself a shaped
 * tensor: one tensor, whose `data` is no layer to name "w.data").
 */
function isLayer(value: unknown): value is object {
  return typeof value === "object" && value !== null && !Array.isArray(value) &&
    !ArrayBuffer.isView(value) && !("data" in value);
}

/**
 * Pushes to `found` the paths (`"encoder.fc1.weight"`) of the tensors under `record` at
 * `prefix`, depth first, up to three (the hint shows two, and "…" for more); `seen`, the
 * records gone through, so that a record that refers back (a layer's `parent`) is gone through
 * once.
 */
function tensorPaths(prefix: string, record: object, found: string[], seen: Set<object>): void {
  seen.add(record);
  for (const key of Object.keys(record)) {
    if (found.length > 2) return;
    const value = (record as Record<string, unknown>)[key];
    if (isTensor(value)) found.push(`${prefix}.${key}`);
    else if (isLayer(value) && !seen.has(value)) {
      tensorPaths(`${prefix}.${key}`, value, found, seen);
    }
  }
}

/**
 * Whether `value` is a tensor `init` takes: a Float32Array, `{ data: Float32Array }`, or a GPU
 * tensor (a webgpu state's).
 */
function isTensor(value: unknown): boolean {
  return value instanceof Float32Array ||
    (typeof value === "object" && value !== null &&
      ((value as { data?: unknown }).data instanceof Float32Array || isGpuTensorLike(value)));
}

/**
 * What to add where a step was given a list of gradients (`[gw, gb]`, as PyTorch's
 * `p.grad for p in model.parameters()`; Float32Arrays or GPU tensors), a `Set` of them, or an
 * iterator of them: to give each under its tensor's name, the state's `names` (the first three
 * shown); for a state of one tensor given bare to `init` (named `""`), to pass its gradient bare.
 * For a list of Promises (an `await Promise.all` forgotten), to await them first; for a function
 * (as PyTorch's `optimizer.step(closure)` takes one), to call it and pass what it returns; for a
 * number (a loss, or a learning rate), what the gradients are. Empty for anything else.
 *
 * @example
 * ```ts
 * import { gradientListHint } from "./_input_hints.ts";
 * import assert from "node:assert/strict";
 *
 * assert.equal(
 *   gradientListHint([new Float32Array(2)], ["w", "b"]),
 *   ' (a list: give each gradient under its tensor\'s name, { "w": …, "b": … })',
 * );
 * assert.match(gradientListHint(new Set([new Float32Array(2)]), ["w"]), /^ \(a Set: give each/);
 * assert.match(gradientListHint([new Float32Array(2)], [""]), /pass its gradient bare/);
 * assert.match(gradientListHint([Promise.resolve()], ["w"]), /await Promise\.all\(list\)/);
 * assert.match(gradientListHint(() => ({}), ["w"]), /^ \(a function: step takes the gradients/);
 * assert.match(gradientListHint(0.5, ["w"]), /^ \(a number: step takes the gradients/);
 * assert.equal(gradientListHint([1, 2], ["w"]), "");
 * ```
 */
export function gradientListHint(value: unknown, names: readonly string[]): string {
  if (typeof value === "number") {
    const each = names.length === 1 && names[0] === ""
      ? "a Float32Array of the tensor's length"
      : `a Float32Array of each tensor's length under its name, { ${
        shownNames(names).join(", ")
      } }`;
    return ` (a number: step takes the gradients, ${each}; not a loss, and a learning rate is the ` +
      "optimizer's option, as in radam({ lr }))";
  }
  if (typeof value === "function") {
    return " (a function: step takes the gradients themselves, not a function that computes " +
      "them, as PyTorch's optimizer.step(closure) does; call it and pass what it returns, " +
      "step(state, computeGrads()), awaited where it returns a Promise)";
  }
  // (An iterator is not read: that would use it up.)
  const ofPromises = isIterator(value) ? "" : listOf(value, isThenable);
  const promises = ofPromises !== "";
  const found = ofPromises || listOf(value, isGradient);
  if (found === "") return "";
  const what = found === "a Set" ? found : "a list"; // (an iterator of gradients too)
  // (a state of one tensor given bare to init holds it under the name "": its gradient is bare)
  if (names.length === 1 && names[0] === "") {
    return ` (${what}: this state holds one tensor, given bare to init: pass its gradient bare, ` +
      `not in ${what})`;
  }
  const shown = shownNames(names);
  return promises
    ? ` (${what} of Promises: await them, await Promise.all(list), and give each gradient under ` +
      `its tensor's name, { ${shown.join(", ")} })`
    : ` (${what}: give each gradient under its tensor's name, { ${shown.join(", ")} })`;
}

/** `"name": …` for the first three of `names`, and "…" for any more. */
function shownNames(names: readonly string[]): string[] {
  const shown = names.slice(0, 3).map((name) => `${JSON.stringify(name)}: …`);
  if (names.length > 3) shown.push("…");
  return shown;
}

/**
 * What to add where `init` was given a list of tensors (Float32Arrays, `{ data, shape }` or GPU
 * tensors), a `Set` of them, or an iterator (a generator's), as PyTorch's `model.parameters()`:
 * that each needs a name. Empty for anything else.
 *
 * @example
 * ```ts
 * import { paramsListHint } from "./_input_hints.ts";
 * import assert from "node:assert/strict";
 *
 * assert.match(paramsListHint([new Float32Array(2)]), /^ \(a list, as PyTorch's/);
 * assert.match(paramsListHint(new Set([new Float32Array(2)])), /^ \(a Set, as PyTorch's/);
 * assert.equal(paramsListHint([1, 2]), "");
 * ```
 */
export function paramsListHint(value: unknown): string {
  const what = listOf(value, isTensor);
  return what === "" ? "" : ` (${what}, as PyTorch's model.parameters(): name each, as its ` +
    'named_parameters() does, { "fc.weight": w, "fc.bias": b }: a state and its checkpoints ' +
    "hold each tensor by name)";
}

/**
 * What `value` is, where it holds tensors but names none: "a list" (an `Array` of at least one,
 * each `item`), "a Set" (likewise), "an iterator" (a generator's, or `array.values()`: not read,
 * which would use it up), or "" for anything else, and where reading an item throws.
 */
function listOf(value: unknown, item: (value: unknown) => boolean): string {
  try {
    if (Array.isArray(value)) return value.length > 0 && value.every(item) ? "a list" : "";
    if (value instanceof Set) return value.size > 0 && [...value].every(item) ? "a Set" : "";
    return isIterator(value) ? "an iterator" : "";
  } catch {
    return ""; // an item whose getter throws (its then, data or buffer): no hint, the same error
  }
}

/** Whether `value` is an iterator, as a generator gives (`next` and `Symbol.iterator`). */
function isIterator(value: unknown): boolean {
  if (typeof value !== "object" || value === null) return false;
  const it = value as { next?: unknown; [Symbol.iterator]?: unknown };
  return typeof it.next === "function" && typeof it[Symbol.iterator] === "function";
}

/** Whether `value` is a gradient a step takes: a Float32Array, or a GPU tensor. */
function isGradient(value: unknown): boolean {
  return value instanceof Float32Array ||
    (typeof value === "object" && value !== null && isGpuTensorLike(value));
}

/**
 * What to add where `init` was given an optimizer state for its tensors (`opt.init(state)`):
 * that a state's parameters are `state.params`, and how a state that goes on from its moments
 * and step count is made. Empty for anything else.
 *
 * @example
 * ```ts
 * import { stateParamsHint } from "./_input_hints.ts";
 * import assert from "node:assert/strict";
 *
 * assert.equal(stateParamsHint({ w: new Float32Array(1) }), "");
 * ```
 */
export function stateParamsHint(value: unknown): string {
  return isStateLike(value)
    ? " (init takes tensors: a state's parameters are state.params, await " +
      "opt.init(state.params) starts afresh from them; a state of these tensors that goes on " +
      "from its moments and step count is await opt.init(state.params, { from: state }))"
    : "";
}
