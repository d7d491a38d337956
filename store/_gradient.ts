/**
 * A contribution's gradient: its values taken when `submit` is called (one copy, before the
 * first await, so that the caller may refill its arrays at once), and checked against the
 * stored model once that is known; and the check of what `optimisticStep`'s `gradient` callback
 * did with its state. Private to store/.
 *
 * @module
 */
import { type OptimizerState, SINGLE_TENSOR_NAME } from "../mod.ts";
import { isThenable } from "../base/_errors.ts";
import { described, float32Hint } from "./_checks.ts";
import type { StoredParams } from "./training.ts";

/** A gradient as it was at the call: its Float32Arrays' values in one array, the rest as given. */
export interface TakenGradient {
  /** Whatever was given, when it is not an object (refused once the model is known). */
  readonly given: unknown;
  /** The values of every Float32Array given, one after another. */
  readonly flat: Float32Array;
  /** Where each tensor given lies in `flat`, or its value when it is not a Float32Array. */
  readonly tensors: ReadonlyMap<string, { at: number; length: number } | { value: unknown }>;
}

/** Whether `v` is a record of tensors by name (not an array, a typed array, a Promise or null). */
const isRecord = (v: unknown): v is Readonly<Record<string, unknown>> =>
  typeof v === "object" && v !== null && !Array.isArray(v) && !ArrayBuffer.isView(v) &&
  !isThenable(v);

/**
 * The values of `gradient` now, in one copy: in the order of `order` (the model's tensors, as
 * far as this process knows them), then of the gradient's own keys. Each value is read once;
 * nothing is checked yet (see {@linkcode flatten}).
 */
export function takeGradient(gradient: unknown, order: readonly string[] = []): TakenGradient {
  const tensors = new Map<string, { at: number; length: number } | { value: unknown }>();
  if (!isRecord(gradient)) return { given: gradient, flat: new Float32Array(0), tensors };
  const record = gradient;
  const keys = Object.keys(record);
  // Sets, not includes: 40,000 tensors took 2.2 s a submit, each name looked up in each list.
  const given = new Set(keys);
  const ordered = new Set(order);
  const names = [...order.filter((n) => given.has(n)), ...keys.filter((k) => !ordered.has(k))];
  const values = names.map((name) => record[name]);
  let total = 0;
  for (const v of values) if (v instanceof Float32Array) total += v.length;
  const flat = new Float32Array(total);
  let at = 0;
  names.forEach((name, i) => {
    const v = values[i];
    if (!(v instanceof Float32Array)) return void tensors.set(name, { value: v });
    flat.set(v, at);
    tensors.set(name, { at, length: v.length });
    at += v.length;
  });
  return { given: gradient, flat, tensors };
}

/**
 * The gradient taken as one array in the model's order, checked against the model's tensors:
 * a TypeError for a tensor the model lacks or a value that is not a Float32Array, a
 * RangeError for one of another length or a value that is not finite. The array taken is
 * itself the result when it is already in the model's order (as it is once this process knows
 * the model); else the values are put in that order.
 */
export function flatten(taken: TakenGradient, params: StoredParams): Float32Array {
  if (!isRecord(taken.given)) {
    throw new TypeError(
      "A contribution's gradient must be an object of Float32Arrays by tensor name, got " +
        described(taken.given) + recordHint(taken.given, params.names),
    );
  }
  const known = new Set(params.names);
  for (const name of taken.tensors.keys()) {
    if (!known.has(name)) {
      throw new TypeError(
        `A contribution's gradient has a tensor ${JSON.stringify(name)} the model lacks; ` +
          `expected ${params.names.map((n) => JSON.stringify(n)).join(", ")}` +
          (isSingle(params.names) ? singleHint : ""),
      );
    }
  }
  let inOrder = true;
  let at = 0;
  for (const name of params.names) {
    const t = taken.tensors.get(name);
    const length = params.params[name].length;
    const g = t === undefined
      ? undefined
      : "value" in t
      ? t.value
      : taken.flat.subarray(t.at, t.at + t.length);
    if (!(g instanceof Float32Array) || g.length !== length) {
      // a Float32Array of the wrong length is a RangeError, as `step` says; anything else a TypeError
      throw new (g instanceof Float32Array ? RangeError : TypeError)(
        `A contribution's gradient ${JSON.stringify(name)} must be a Float32Array of ${length}, ` +
          `got ${described(g)}${float32Hint(g)}`,
      );
    }
    for (let i = 0; i < length; i++) {
      if (g[i] - g[i] !== 0) {
        throw new RangeError(`A contribution's gradient ${JSON.stringify(name)}[${i}] is ${g[i]}`);
      }
    }
    inOrder &&= (t as { at: number }).at === at;
    at += length;
  }
  if (inOrder && at === taken.flat.length) return taken.flat;
  const flat = new Float32Array(at);
  at = 0;
  for (const name of params.names) {
    const t = taken.tensors.get(name) as { at: number; length: number };
    flat.set(taken.flat.subarray(t.at, t.at + t.length), at);
    at += t.length;
  }
  return flat;
}

/** Whether `names` are those of a model of one bare tensor (`init` gave a Float32Array). */
const isSingle = (names: readonly string[]) =>
  names.length === 1 && names[0] === SINGLE_TENSOR_NAME;

/** How a one-tensor model's gradient is written. */
const singleHint = ' (init gave one Float32Array, a tensor named "": write gradient: ' +
  '{ "": values }, SINGLE_TENSOR_NAME of @optim/radam)';

/**
 * How a gradient given as one array (or anything else not a record) is written: by the model's
 * tensor names, `{ "": values }` for a model of one bare tensor; a conversion too, for what is
 * not a Float32Array.
 */
function recordHint(given: unknown, names: readonly string[]): string {
  const convert = given instanceof Float32Array ? "" : float32Hint(given);
  if (!(ArrayBuffer.isView(given) || Array.isArray(given))) return convert;
  if (isSingle(names)) return singleHint + convert;
  const keys = names.map((n) => `${JSON.stringify(n)}: …`).join(", ");
  return ` (one array for each of the model's tensors: write gradient: { ${keys} })${convert}`;
}

/**
 * Refuses, with a TypeError naming the option, a call of `optimisticStep`'s `gradient` that
 * stepped or disposed its state itself (a training loop's `step(state)` kept in it), or whose
 * value is evidently the gradient, returned instead of written into `state.grads`: a record of
 * exactly the state's tensors, each a Float32Array or an Array of numbers of the tensor's
 * length (none of them the state's own views), with a value other than 0, while every slot of
 * `state.grads` is still 0 (as a new state's are); for a one-tensor state, its bare array so.
 * Anything else (a loss, an object of other keys) costs a look at its keys only.
 */
export function checkGradientCall(result: unknown, state: OptimizerState): void {
  try {
    void state.step; // throws for a state that `gradient` stepped or disposed itself
  } catch {
    throw new TypeError(
      "Option gradient used up the state it was given (step(state) or dispose(state) in it): " +
        "it must only write the gradient into state.grads; optimisticStep takes the step and saves it",
    );
  }
  const { names, params, grads } = state;
  // A one-tensor state's gradient may be its bare array, as step(state, grads) takes it.
  const bare = names.length === 1 && names[0] === SINGLE_TENSOR_NAME &&
    (result instanceof Float32Array || Array.isArray(result));
  const record = bare ? { [SINGLE_TENSOR_NAME]: result } : result;
  if (!isRecord(record)) return;
  const keys = Object.keys(record);
  if (keys.length !== names.length || !names.every((name) => Object.hasOwn(record, name))) return;
  let nonZero = false;
  for (const name of names) {
    const v = record[name];
    const numbers = v instanceof Float32Array ||
      Array.isArray(v) && v.every((x) => typeof x === "number");
    if (!numbers || v.length !== grads[name].length || v === grads[name] || v === params[name]) {
      return;
    }
    for (let i = 0; i < v.length && !nonZero; i++) nonZero = v[i] !== 0;
  }
  if (!nonZero) return;
  for (const name of names) {
    const g = grads[name];
    for (let i = 0; i < g.length; i++) if (g[i] !== 0) return;
  }
  const what = bare ? described(result) : names.map((n) => JSON.stringify(n)).join(", ");
  const slot = bare ? 'state.grads[""]' : "state.grads[name]";
  throw new TypeError(
    `Option gradient returned a gradient (${what}) and wrote nothing into state.grads: write ` +
      `it there (${slot}.set(values)); what gradient returns is only handed back as \`result\``,
  );
}
