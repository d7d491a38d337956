/**
 * The slots a WebGPU state shows, `state.params[name]` and `state.grads[name]`: GPU buffer
 * ranges, whose elements a loop written for the CPU backends reads or writes (`g[i] = …`,
 * `state.params.w[i]`, `g.fill(0)`), once JavaScript's own `undefined` or "Cannot add property
 * 0, object is not extensible"; here a TypeError naming the slot, the backend and what to do
 * instead; so is a field of one assigned (`slot.offset = 256`), once V8's "Cannot assign to
 * read only property". (A name defined or deleted on one is V8's TypeError: a slot is a frozen
 * plain record, not a Proxy, so that it stays structured-cloneable.)
 * Private to the library.
 *
 * @module
 */
import { literalKey, memberAccess } from "../base/_errors.ts";
import { label } from "../base/tensors.ts";
import { inspectedAsPlain } from "../base/_refusing_record.ts";
import { type GpuTensor, markGuarded } from "./gpu_tensors.ts";

/** Which record of a state a slot is in. */
export type SlotRecord = "params" | "grads";

/** Where a guarded slot holds the message of a use of its element or method `what`. */
const MISUSE = Symbol("misuse");

/**
 * A Float32Array's methods and accessors that a loop written for the CPU calls on a slot
 * (README: Zero copy), `g.fill(0)`, `g.reduce(…)`, `g.byteLength`: every one of the typed
 * arrays' prototype that `Object.prototype` and a slot's own fields lack (so `toString`, and a
 * slot's `buffer` and `length`, are left as they are).
 */
const ARRAY_METHODS = new Set(
  Reflect.ownKeys(Object.getPrototypeOf(Float32Array.prototype)).filter((key) =>
    typeof key === "string" && !(key in Object.prototype) && key !== "buffer" && key !== "length"
  ),
);

/** What a misuse names for `Symbol.iterator`, read by `for...of`, spread and `Array.from`. */
const ITERATION = "[Symbol.iterator]";

/**
 * A guarded slot's `Symbol.iterator`: throws the slot's TypeError when called, as `for...of`,
 * spread and `Array.from` call it (reading it is no error: a probe of whether a value is
 * iterable, `x[Symbol.iterator]`, gets a function). Not an iteration of stand-ins for the
 * elements, which would let a test runner's deep equality (Jest's and Vitest's `toEqual`, which
 * iterate both values) compare two slots, but would also give `[...g].some(Number.isNaN)` or
 * `Array.from(g).includes(0)` an answer, `false`, that says nothing of the values: the error says
 * to compare two slots' fields, `{ ...a }` with `{ ...b }`.
 */
function iterateSlot(this: unknown): never {
  misuse(this, ITERATION);
  throw new TypeError("A WebGPU state's slot is a GPU buffer range: it has no elements here");
}

/** Whether `key` names an element (`"0"`, `"12"`, `"-1"`), as a typed array's index would. */
function isIndex(key: string | symbol): key is string {
  return typeof key === "string" && /^(?:0|-?[1-9][0-9]*)$/.test(key);
}

/**
 * The prototype of every guarded slot: `Object.prototype` behind a Proxy that only a name the
 * slot lacks reaches (its own `buffer`, `offset`, `size` and `length` never do, so the library's
 * reads of them cost what a plain record's do). An element read or written, or a Float32Array
 * method read, throws the slot's TypeError (an element asked for, `"0" in slot`, is there, so
 * that Array.prototype's methods called on a slot read it), and so does an iteration
 * (`for...of`, `[...slot]`, `Array.from(slot)`: a call of its `Symbol.iterator`,
 * {@linkcode iterateSlot}); `BYTES_PER_ELEMENT` is a Float32Array's, 4 (its `length` is the
 * tensor's, and `length * BYTES_PER_ELEMENT` its `size`); anything else is `Object.prototype`'s.
 */
const GUARD = new Proxy(Object.prototype, {
  get(target, key, receiver) {
    if (isIndex(key) || (typeof key === "string" && ARRAY_METHODS.has(key))) misuse(receiver, key);
    if (key === Symbol.iterator) return iterateSlot;
    if (key === "BYTES_PER_ELEMENT") return Float32Array.BYTES_PER_ELEMENT;
    return Reflect.get(target, key, receiver);
  },
  set(target, key, value, receiver) {
    if (isIndex(key)) misuse(receiver, key);
    // A name a slot lacks, set on the slot (frozen): refused with its words, not V8's "'set' on
    // proxy: trap returned falsish" (an object made on a slot, extensible, takes it).
    const set = Reflect.set(target, key, value, receiver);
    if (!set) misuse(receiver, key, true);
    return set;
  },
  // An element asked for (`"0" in slot`, as Array.prototype's methods called on a slot ask before
  // they read one: `Array.prototype.slice.call(slot)`, `.reduce.call(slot, f, 0)`) is said to be
  // there, so that its read throws the slot's TypeError (a `has` trap is not told which slot):
  // said absent, those methods skipped every element and returned holes, or `reduce`'s start.
  has: (target, key) => (isIndex(key) && Object.isExtensible(target)) || Reflect.has(target, key),
  // (Where Object.prototype was frozen, as by a hardened runtime, a Proxy's must be its own.)
  getPrototypeOf: (target) => Object.isExtensible(target) ? target : null,
});

/** How a guarded slot words a misuse: of its element or method `what`, or a set of it (`set`). */
type Misuse = (what: string | symbol, set?: boolean) => string;

/**
 * Throws the TypeError of `receiver`'s (a guarded slot's) element or method `key`, or, with
 * `set`, of `key` set on it.
 */
function misuse(receiver: unknown, key: string | symbol, set?: boolean): void {
  const message = (receiver as { [MISUSE]?: Misuse } | undefined)?.[MISUSE];
  if (message !== undefined) throw new TypeError(message(key, set));
}

/** A slot's own fields, which say where its tensor is. */
const FIELDS = ["buffer", "offset", "size", "length"] as const;

/**
 * The setters of a guarded slot's fields: a field assigned (`slot.offset = 256`, on the slot
 * or an object made on it) throws the slot's TypeError, not V8's "Cannot assign to read only
 * property". (Accessors, not a Proxy of the slot: a Proxy is no structured-cloneable value.)
 */
const SETTERS = new Map(FIELDS.map((key) => [key, function (this: unknown): void {
  misuse(this, key, true);
}]));

/**
 * `slot` (the slot of tensor `name` of a WebGPU state's `record`) as a frozen record of its
 * `buffer`, `offset`, `size` and `length` whose element reads and writes, Float32Array method
 * reads and iteration throw a TypeError of {@linkcode slotMisuseMessage}, and a name (a field
 * too, an accessor) set on it one of {@linkcode slotSetMessage} (`unguarded`, gpu_tensors.ts,
 * gives the library the plain `slot`). Its keys, spread, JSON, structured clone and inspection
 * are those of the plain record, its `length` the tensor's, its `BYTES_PER_ELEMENT` 4.
 *
 * @example
 * ```ts
 * import { guardedSlot } from "./_slot_guard.ts";
 * import { unguarded } from "./gpu_tensors.ts";
 * import assert from "node:assert/strict";
 *
 * const slot = { buffer: {} as GPUBuffer, offset: 0, size: 8, length: 2 };
 * const g = guardedSlot(slot, "grads", "w", 1);
 * assert.deepEqual(Object.keys(g), ["buffer", "offset", "size", "length"]);
 * assert.equal(unguarded(g), slot);
 * const elements = g as unknown as number[];
 * assert.throws(() => (elements[0] = 1), /^TypeError: Cannot use state\.grads\.w\[0\]/);
 * assert.throws(() => Math.max(...elements), /^TypeError: Cannot iterate state\.grads\.w \(for/);
 * assert.throws(() => [...elements], /compare their fields, \{ \.\.\.a \} with \{ \.\.\.b \}/);
 * assert.equal(g.length * (g as unknown as Float32Array).BYTES_PER_ELEMENT, g.size);
 * ```
 */
export function guardedSlot(
  slot: GpuTensor,
  record: SlotRecord,
  name: string,
  count: number,
): GpuTensor {
  const out = Object.create(GUARD);
  for (const key of FIELDS) {
    const value = slot[key];
    Object.defineProperty(out, key, { get: () => value, set: SETTERS.get(key), enumerable: true });
  }
  const message: Misuse = (what, set) =>
    set || typeof what === "symbol"
      ? slotSetMessage(record, name, what)
      : slotMisuseMessage(record, name, what, count);
  Object.defineProperty(out, MISUSE, { value: message });
  inspectedAsPlain(out);
  const guarded: GpuTensor = Object.freeze(out);
  markGuarded(guarded, slot);
  return guarded;
}

/**
 * The error of a use of a WebGPU state's slot `state[record][name]` as a Float32Array: its
 * element `what` (or method, or `[Symbol.iterator]`) read, written or called; that it is a GPU
 * buffer range, and how the values are read (`readParams`) or given (`step`'s Float32Arrays, or
 * a write into its buffer). `count` is the state's number of tensors (a bare Float32Array's
 * gradient is `g`).
 *
 * @example
 * ```ts
 * import { slotMisuseMessage } from "./_slot_guard.ts";
 * import assert from "node:assert/strict";
 *
 * assert.match(slotMisuseMessage("grads", "w", "0", 2), /^Cannot use state\.grads\.w\[0\]: /);
 * assert.match(slotMisuseMessage("params", "w", "fill", 2), /readParams\(state\)/);
 * ```
 */
export function slotMisuseMessage(
  record: SlotRecord,
  name: string,
  what: string,
  count: number,
): string {
  const slot = `state.${record}${memberAccess(name)}`;
  const use = isIndex(what)
    ? `use ${slot}[${what}]`
    : what === ITERATION
    ? `iterate ${slot} (for...of, spread, Array.from)`
    : `use ${slot}.${what}`;
  const start = `Cannot ${use}: on the webgpu backend ${slot} is a range of the state's GPU ` +
    "buffer ({ buffer, offset, size, length }), not a Float32Array, and has no elements here; ";
  if (record === "params") {
    const read = `(await readParams(state))${memberAccess(name)}`;
    return `${start}read the values as a copy, ${read}, and to go on from other values make a ` +
      "state of them that takes this one's moments and step count, " +
      "state = await opt.init(params, { from: state })" + (what === ITERATION ? COMPARE : "");
  }
  const given = count === 1 && name === "" ? "g" : `{ ${literalKey(name)}: g }`;
  return `${start}compute the gradient in a Float32Array g and pass it to step, ` +
    `state = step(state, ${given}) (one writeBuffer), or write it into the slot's buffer, ` +
    `a shader's output or device.queue.writeBuffer(${slot}.buffer, ${slot}.offset, g), ` +
    "then state = step(state)" + (what === ITERATION ? COMPARE : "");
}

/**
 * The error of `key` set on the slot `state[record][name]` of a WebGPU state: one of its fields,
 * which say where the state keeps that tensor, and how to step from another range (`step`'s GPU
 * tensor) or go on from other values (`init`'s `from`); or a name it lacks (a symbol, a string that
 * names no element): the slot is frozen, its binding's fields alone, and what is attached to it is
 * kept in a WeakMap keyed by it (as for the records, `state.grads`).
 *
 * @example
 * ```ts
 * import { slotSetMessage } from "./_slot_guard.ts";
 * import assert from "node:assert/strict";
 *
 * const tagged = slotSetMessage("grads", "w", Symbol("tag"));
 * assert.match(tagged, /^Cannot set state\.grads\.w\[Symbol\(tag\)\]: /);
 * assert.match(slotSetMessage("params", "b.x", "id"), /^Cannot set state\.params\["b\.x"\]\.id/);
 * const moved = slotSetMessage("grads", "w", "offset");
 * assert.match(moved, /^Cannot set state\.grads\.w\.offset: .*step\(state, \{ w: \{ buffer,/);
 * ```
 */
export function slotSetMessage(
  record: SlotRecord,
  name: string,
  key: string | symbol,
): string {
  const slot = `state.${record}${memberAccess(name)}`;
  const member = typeof key === "symbol" ? `[${String(key)}]` : memberAccess(key);
  const start = `Cannot set ${slot}${member}: on the webgpu backend ${slot} is a ` +
    "frozen range of the state's GPU buffer";
  if (!(FIELDS as readonly (string | symbol)[]).includes(key)) {
    return `${start}, its { buffer, offset, size, length } and nothing else; keep what you ` +
      "attach to it in a WeakMap keyed by it";
  }
  const where = `, where the state keeps ${label(name)}'s ${
    record === "params" ? "values" : "gradient"
  }, and its fields cannot change; `;
  return start + where +
    (record === "params"
      ? "to go on from other values, make a state of them that takes this one's moments and " +
        "step count, state = await opt.init(params, { from: state })"
      : `to step from another range, pass it to step as a GPU tensor of your own, state = ` +
        `step(state, { ${literalKey(name)}: { buffer, offset, length } })`);
}

/** What an iteration's error adds: a test runner's deep equality (`toEqual`) iterates both. */
const COMPARE = "; to compare two slots (a test's toEqual iterates both), compare their " +
  "fields, { ...a } with { ...b }";
