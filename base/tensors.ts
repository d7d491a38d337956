/**
 * Checks and normalizes the tensors a caller hands in: parameters at `init`, gradients at
 * `step`. Every check runs before anything is copied, so a bad call changes nothing.
 *
 * @module
 */
import { described } from "./_errors.ts";
import { isRefusingPrototype } from "./_refusing_record.ts";
import {
  gradientListHint,
  nestedRecordHint,
  paramsListHint,
  stateParamsHint,
  tensorHint,
} from "./_input_hints.ts";
import { utf8Length } from "./_utf8.ts";

/**
 * Parameters: a record of named `Float32Array`s, or a single `Float32Array` (which the
 * optimizer then names {@linkcode SINGLE_TENSOR_NAME}).
 *
 * @example
 * ```ts
 * import { type Params, radam } from "@optim/radam";
 * const params: Params = { "fc.weight": new Float32Array(6), "fc.bias": new Float32Array(2) };
 * const state = await radam().init(params);
 * ```
 */
export type Params = Float32Array | Readonly<Record<string, Float32Array | ShapedTensor>>;

/**
 * A tensor with its shape (row-major): needed for gradient centralization of rank > 1.
 *
 * @example
 * ```ts
 * import { ranger, type ShapedTensor } from "@optim/radam";
 * const weight: ShapedTensor = { data: new Float32Array(6), shape: [2, 3] };
 * const state = await ranger().init({ "fc.weight": weight });
 * ```
 */
export interface ShapedTensor {
  /** The elements, row-major. */
  readonly data: Float32Array;
  /** The dimensions; their product must equal `data.length`. */
  readonly shape: readonly number[];
}

/**
 * The name under which a bare `Float32Array` passed as params is held: the empty string.
 *
 * @example
 * ```ts
 * import { radam, SINGLE_TENSOR_NAME } from "@optim/radam";
 * import assert from "node:assert/strict";
 * const state = await radam().init(new Float32Array([1, 2]));
 * assert.deepEqual(state.params[SINGLE_TENSOR_NAME], new Float32Array([1, 2]));
 * ```
 */
export const SINGLE_TENSOR_NAME = "";

/** Named tensors in a fixed order, as validated at init. */
export interface NamedTensors {
  readonly names: readonly string[];
  readonly arrays: readonly Float32Array[];
  /** Shapes (a bare Float32Array is rank 1: `[length]`). */
  readonly shapes: readonly (readonly number[])[];
}

/** How errors name a tensor. */
export function label(name: string): string {
  return name === SINGLE_TENSOR_NAME ? "the parameter tensor" : `parameter ${JSON.stringify(name)}`;
}

/**
 * Whether `value` is a record of tensors: a plain object (of any realm) or one without a
 * prototype, not an array nor an instance of a class (a `Map`, a TensorFlow.js tensor), whose
 * own keys would not be tensor names.
 *
 * @example
 * ```ts
 * import { isRecord } from "./tensors.ts";
 * import assert from "node:assert/strict";
 *
 * assert.ok(isRecord({ w: new Float32Array(2) }));
 * assert.ok(!isRecord(new Map([["w", new Float32Array(2)]])));
 * ```
 */
export function isRecord(value: unknown): value is Record<string, unknown> {
  if (typeof value !== "object" || value === null || Array.isArray(value)) return false;
  const proto = Object.getPrototypeOf(value);
  // (A state's state.grads and state.params: plain records whose assignments throw.)
  return proto === null || Object.getPrototypeOf(proto) === null || isRefusingPrototype(proto);
}

/**
 * What to add where a tensor was given as nested arrays of numbers (`[[1, 2], [3, 4]]`): how to
 * give it with its shape. Else empty.
 */
function nestedHint(value: unknown): string {
  if (!Array.isArray(value) || value.length === 0 || !value.every(Array.isArray)) return "";
  return " (nested arrays: flatten them with their shape, " +
    "{ data: new Float32Array(values.flat(Infinity)), shape: [rows, cols] })";
}

/** Validates the params given to `init` (TypeError/RangeError naming the tensor). */
export function checkParams(params: unknown): NamedTensors {
  if (params instanceof Float32Array) {
    checkFinite(SINGLE_TENSOR_NAME, params);
    return { names: [SINGLE_TENSOR_NAME], arrays: [params], shapes: [[params.length]] };
  }
  if (!isRecord(params)) {
    throw new TypeError(
      `Params must be a Float32Array or a record of named Float32Arrays, got ${described(params)}${
        tensorHint(params) || paramsListHint(params) || stateParamsHint(params)
      }`,
    );
  }
  const names = Object.keys(params);
  if (names.length === 0) {
    throw new RangeError("Params must hold at least one tensor, got an empty record");
  }
  checkTensorNames(names);
  const arrays: Float32Array[] = [];
  const shapes: (readonly number[])[] = [];
  for (const name of names) {
    const value = (params as Record<string, unknown>)[name];
    if (value instanceof Float32Array) {
      arrays.push(value);
      shapes.push([value.length]);
      continue;
    }
    const shaped = value as Partial<ShapedTensor> | null;
    // `data` and `shape` (and each dimension) read once: a getter answering differently on a
    // second read made a tensor whose length was not its shape's.
    const data = typeof shaped === "object" && shaped !== null ? shaped.data : undefined;
    if (!(data instanceof Float32Array)) {
      throw new TypeError(
        `Expected ${label(name)} to be a Float32Array or { data: Float32Array, shape }, got ${
          described(value)
        }${
          tensorHint(value) || nestedHint(value) || nestedRecordHint(name, value) ||
          (typeof shaped === "object" && shaped !== null && Object.hasOwn(shaped, "data")
            ? ` whose data is ${described(data)}${tensorHint(data)}`
            : "")
        }`,
      );
    }
    const given = shaped!.shape;
    const shape: unknown[] | undefined = Array.isArray(given) ? [...given] : undefined;
    // Safe integers only: a checkpoint holds none other (an empty tensor's other dimensions
    // may be anything, so that a larger one would be trained and saved, and never loaded).
    if (!shape?.every((d): d is number => Number.isSafeInteger(d) && (d as number) >= 0)) {
      throw new TypeError(
        `Expected the shape of ${label(name)} to be an array of integers from 0 to 2⁵³ − 1, got ${
          shape ? `[${shape.map(described).join(", ")}]` : described(given)
        }`,
      );
    }
    const size = shape.reduce((a: number, b: number) => a * b, 1);
    if (size !== data.length) {
      throw new RangeError(
        `The shape [${shape.join(", ")}] of ${
          label(name)
        } holds ${size} elements, but its data has ${data.length}`,
      );
    }
    arrays.push(data);
    shapes.push(shape);
  }
  for (let i = 0; i < names.length; i++) checkFinite(names[i], arrays[i]);
  checkDistinct(names, arrays);
  return { names, arrays, shapes };
}

/**
 * Throws a RangeError naming two tensors whose arrays share memory: the same Float32Array given
 * under two names, or views of overlapping bytes of one buffer. Each would be copied into the
 * state apart and get its own update from its own gradient, so the one weight array would have
 * two diverging copies (PyTorch refuses a parameter given twice, too). Empty arrays share
 * nothing; views of disjoint ranges of one buffer (a model's weights in one allocation) are fine.
 */
function checkDistinct(names: readonly string[], arrays: readonly Float32Array[]): void {
  const byBuffer = new Map<ArrayBufferLike, number[]>();
  arrays.forEach((a, i) => {
    if (a.length === 0) return;
    const same = byBuffer.get(a.buffer);
    if (same === undefined) byBuffer.set(a.buffer, [i]);
    else same.push(i);
  });
  for (const indices of byBuffer.values()) {
    indices.sort((i, j) => arrays[i].byteOffset - arrays[j].byteOffset);
    for (let k = 1; k < indices.length; k++) {
      const [i, j] = [indices[k - 1], indices[k]];
      const a = arrays[i], b = arrays[j];
      if (a.byteOffset + a.byteLength <= b.byteOffset) continue;
      const [first, second] = i < j ? [i, j] : [j, i];
      throw new RangeError(
        `Expected ${label(names[first])} and ${label(names[second])} to be distinct tensors, got ${
          a === b ? "the same Float32Array twice" : "views of overlapping bytes of one buffer"
        }: each would get its own update, two diverging copies of one weight (tied weights: give the tensor once, with the sum of its gradients)`,
      );
    }
  }
}

function checkFinite(name: string, data: Float32Array): void {
  for (let i = 0; i < data.length; i++) {
    if (!Number.isFinite(data[i])) {
      throw new RangeError(
        `Expected ${label(name)} to hold finite numbers, got ${data[i]} at index ${i}`,
      );
    }
  }
}

/**
 * The most bytes of UTF-8 a tensor's name may take: 64 KiB. A checkpoint's header holds each
 * name several times (in `tensor_order`, and in the key of each of its state tensors: a
 * parameter, up to two moments of codes and scales, LookAhead's slow weights), JSON-quoted (a
 * control character takes 6 bytes), and the whole header is capped at 100,000,000 bytes
 * (`MAX_HEADER_BYTES` in base/safetensors.ts, the reference implementation's cap): a
 * name at this limit takes at most a few MB of it, so hundreds of tensors of such names still
 * save, while a name of hundreds of millions of characters, which the header's building could
 * not hold (the process ran out of memory), is refused before anything is built from it. Real
 * names (module paths) are tens to hundreds of bytes.
 *
 * @example
 * ```ts
 * import { MAX_NAME_BYTES } from "./tensors.ts";
 * import { radam } from "@optim/radam";
 * import assert from "node:assert/strict";
 *
 * const name = "w".repeat(MAX_NAME_BYTES + 1);
 * await assert.rejects(() => radam().init({ [name]: new Float32Array(2) }), RangeError);
 * ```
 */
export const MAX_NAME_BYTES = 65_536;

/**
 * Refuses tensor names that cannot key a plain record: `"__proto__"` (assigning it sets the
 * record's prototype instead of adding a tensor, so the tensor would silently vanish from
 * `state.params`, `readParams` and checkpoints), a TypeError; and names longer than
 * {@linkcode MAX_NAME_BYTES} bytes of UTF-8, a RangeError naming the tensor by its index and the
 * start of its name.
 */
export function checkTensorNames(names: readonly string[]): void {
  if (names.includes("__proto__")) {
    throw new TypeError(
      'A tensor may not be named "__proto__" (it cannot key a plain record); rename it',
    );
  }
  for (let i = 0; i < names.length; i++) {
    const name = names[i];
    // UTF-8 takes 1 to 3 bytes a UTF-16 unit: most names are settled by their length alone.
    if (name.length <= MAX_NAME_BYTES / 3) continue;
    const over = name.length > MAX_NAME_BYTES; // (then not measured: it may be 300M units)
    const bytes = over ? name.length : utf8Length(name);
    if (bytes <= MAX_NAME_BYTES) continue;
    throw new RangeError(
      `The name of tensor #${i} (${described(name)}, ${name.length} characters) takes ${
        over ? "at least " : ""
      }${bytes} bytes of UTF-8, above the limit of ${MAX_NAME_BYTES} bytes for a tensor's name (a checkpoint's header holds it several times); use a shorter name`,
    );
  }
}

/**
 * Validates the gradients given to `step` against the tensors of the state: same names, each a
 * Float32Array of the parameter's length; throws TypeError/RangeError. Each gradient is read from
 * the record once, into `out` (a list the caller reuses, of at least `names.length` entries),
 * which it returns: the step loads those arrays, never the record again, so a getter or a Proxy
 * that answers differently on a second read cannot slip an unchecked array past the check.
 * `visit` (indices into `names`, each once) is the order they are read and checked in, so the
 * error names the first bad one in it (a state's: the order given to `init`); default `names`'.
 *
 * @example
 * ```ts
 * import { checkGrads } from "./tensors.ts";
 * import assert from "node:assert/strict";
 *
 * const w = new Float32Array(2);
 * const out: unknown[] = [undefined];
 * assert.equal(checkGrads({ w }, ["w"], [2], out)[0], w);
 * assert.throws(() => checkGrads({ w: new Float32Array(3) }, ["w"], [2], out), RangeError);
 * ```
 */
export function checkGrads(
  grads: unknown,
  names: readonly string[],
  lengths: readonly number[],
  out: unknown[],
  visit?: readonly number[],
): Float32Array[] {
  // The errors are built by functions of their own: a closure here over `names` (or another
  // argument) would make every call, and so every step, allocate a context for it.
  if (grads instanceof Float32Array) {
    if (names.length !== 1) throw bareGradientError(names);
    checkGradLength(names[0], grads, lengths[0]);
    out[0] = grads;
    return out as Float32Array[];
  }
  if (!isRecord(grads)) {
    throw new TypeError(
      `Grads must be a Float32Array or a record of named Float32Arrays, got ${described(grads)}${
        tensorHint(grads) || gradientListHint(grads, names)
      }`,
    );
  }
  const record = grads as Record<string, unknown>;
  for (let k = 0; k < names.length; k++) {
    const i = visit === undefined ? k : visit[k];
    const name = names[i];
    // Own enumerable keys only, as init takes the tensors (and as the count below sees them): a
    // gradient named "constructor" (or another name Object.prototype has) missing from a plain
    // record is missing, not that record's inherited function.
    if (!isEnumerable.call(record, name)) throw missingGradient(name, record, names);
    const value = record[name];
    if (!(value instanceof Float32Array)) {
      throw new TypeError(
        `Expected the gradient of ${label(name)} to be a Float32Array, got ${described(value)}${
          gradientHint(value)
        }`,
      );
    }
    checkGradLength(name, value, lengths[i]);
    out[i] = value;
  }
  let count = 0;
  for (const key in record) {
    if (Object.hasOwn(record, key)) count++;
  }
  if (count !== names.length) throw unexpectedGradient(record, names);
  return out as Float32Array[];
}

/** The error for a bare Float32Array given as the gradients of a state of several `names`. */
function bareGradientError(names: readonly string[]): TypeError {
  return new TypeError(
    `A bare Float32Array gradient needs a state with one tensor; this state has ${names.length}: pass a record keyed by ${
      names.map((n) => JSON.stringify(n)).join(", ")
    }`,
  );
}

/**
 * The error for a gradient in `record` under a key that is none of the state's `names`.
 *
 * @example
 * ```ts
 * import { unexpectedGradient } from "./tensors.ts";
 * import assert from "node:assert/strict";
 *
 * const error = unexpectedGradient({ w: new Float32Array(1), b: new Float32Array(1) }, ["w"]);
 * assert.match(error.message, /^Unexpected gradient "b": the state holds no parameter/);
 * ```
 */
export function unexpectedGradient(
  record: Record<string, unknown>,
  names: readonly string[],
): TypeError {
  const extra = Object.keys(record).filter((k) => !names.includes(k));
  return new TypeError(
    `Unexpected gradient ${
      JSON.stringify(extra[0])
    }: the state holds no parameter of that name${NEW_TENSOR_HINT}`,
  );
}

/** `Object.prototype.propertyIsEnumerable`, for records without a prototype too. */
const isEnumerable = Object.prototype.propertyIsEnumerable;

/**
 * The error for a gradient missing from `record`, naming the unexpected key it holds instead,
 * if any (a misspelled name is then reported as what it is), or saying that it holds the name
 * as a property that is not enumerable.
 */
export function missingGradient(
  name: string,
  record: Readonly<Record<string, unknown>>,
  names: readonly string[],
): TypeError {
  const unexpected = Object.keys(record).find((k) => !names.includes(k));
  const hidden = Object.hasOwn(record, name) && !isEnumerable.call(record, name)
    ? " (the record has it as a property that is not enumerable: make it an enumerable one)"
    : name === SINGLE_TENSOR_NAME && names.length === 1
    ? " (the state was made from a bare Float32Array: pass its gradient as a bare Float32Array)"
    : "";
  return new TypeError(
    `Missing gradient for ${label(name)}${hidden}${
      unexpected === undefined
        ? ""
        : `; got an unexpected ${JSON.stringify(unexpected)}${
          nestedRecordHint(unexpected, record[unexpected])
        }`
    }`,
  );
}

/**
 * The hint for a gradient of the wrong kind: a shaped tensor's `data`, or a tfjs tensor's values.
 *
 * @example
 * ```ts
 * import { gradientHint } from "./tensors.ts";
 * import assert from "node:assert/strict";
 *
 * assert.match(gradientHint({ data: new Float32Array(2), shape: [2] }), /pass its data/);
 * assert.equal(gradientHint(3), "");
 * ```
 */
export function gradientHint(value: unknown): string {
  const shaped = value as Partial<ShapedTensor> | null;
  if (typeof shaped === "object" && shaped !== null && shaped.data instanceof Float32Array) {
    return " (a gradient is a bare Float32Array, without its shape: pass its data)";
  }
  return tensorHint(value) ||
    (nestedHint(value) &&
      " (nested arrays: flatten them, new Float32Array(values.flat(Infinity)))");
}

/**
 * What an error about a gradient of a tensor the state does not hold (a name, or elements, added
 * to the model after `init`) adds: how to train it.
 */
export const NEW_TENSOR_HINT =
  " (a state's tensors, and their lengths, are those given to init: a " +
  "tensor, or rows, added to the model later train in a state of their own, " +
  "await opt.init({ name: values }), stepped beside this one, with its own step count, as " +
  "PyTorch counts each parameter's; or a new state of them all takes this one's moments and " +
  "step count for the tensors it holds, await opt.init(params, { from: state }))";

function checkGradLength(name: string, grad: Float32Array, expected: number): void {
  if (grad.length !== expected) {
    throw new RangeError(
      `Expected the gradient of ${label(name)} to have length ${expected}, got ${grad.length}${
        grad.length > expected ? NEW_TENSOR_HINT : ""
      }`,
    );
  }
}

/**
 * The error of an input that a call checked, then read after an await, and found detached: its
 * ArrayBuffer transferred (posted to a worker), or a resizable one shrunk. `what` names it (`the
 * params' tensor "w"`, `the checkpoint's bytes`), `call` the call (`init()`), `copy` a copy of it.
 *
 * @example
 * ```ts
 * import { detachedError } from "./tensors.ts";
 * import assert from "node:assert/strict";
 *
 * const error = detachedError("the checkpoint's bytes", "loadState()", "bytes.slice()");
 * assert.ok(error instanceof TypeError);
 * assert.match(error.message, /^The checkpoint's bytes were detached/);
 * ```
 */
export function detachedError(what: string, call: string, copy: string): TypeError {
  return new TypeError(
    `${what[0].toUpperCase()}${what.slice(1)} were detached (their ArrayBuffer transferred, or ` +
      `shrunk) before ${call} resolved: leave them unchanged until its Promise settles, and ` +
      `transfer a copy (${copy}) if they must go elsewhere meanwhile`,
  );
}
