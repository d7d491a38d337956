/**
 * The gradients of one `applyGradients` call: checked against the variables tfjs has registered
 * before anything changes, and compared with the variables an optimizer holds.
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs-core";
import { described, isThenable, promiseHint } from "../base/_errors.ts";
import { type Entry, sameShape, sameVariable, shapeText, takesState } from "./layout.ts";
import { checkHasTensor, checkNotOneNamedTensor, nameHint } from "./_hints.ts";

/** A variable and its gradient of one step (checked). */
export interface GradItem {
  readonly name: string;
  readonly tensor: tf.Tensor;
  readonly variable: tf.Variable;
}

/** A tensor with its name, as tfjs's optimizers take and give them (tfjs-core's `NamedTensor`). */
export interface NamedTensor {
  /** The name (a variable's, or `<variable>/<slot>` for optimizer weights). */
  name: string;
  /** The value. */
  tensor: tf.Tensor;
}

/** How an error message names the variable `name`. */
function labelOf(name: string): string {
  return `variable ${JSON.stringify(name)}`;
}

/**
 * The names and tensors of a `NamedTensor[]`, each element, name and tensor read once; checks
 * that every element is a `{ name, tensor }` before anything else.
 */
function readNamedTensors(grads: readonly unknown[]): { names: string[]; tensors: unknown[] } {
  const names: string[] = [];
  const tensors: unknown[] = [];
  const count = grads.length;
  for (let i = 0; i < count; i++) {
    const g = grads[i] as { name?: unknown; tensor?: unknown } | null;
    const name = typeof g === "object" && g !== null ? g.name : undefined;
    if (typeof name !== "string") {
      throw new TypeError(
        `Expected gradient ${i} to be a { name, tensor } (a NamedTensor), got ${described(g)}` +
          nameHint(g),
      );
    }
    checkHasTensor(g!, i, name);
    names.push(name);
    tensors.push(g!.tensor);
  }
  return { names, tensors };
}

/** The registered, trainable float32 variable named `name` (`registered`: tfjs's registry). */
function variableOf(
  name: string,
  registered: Readonly<Record<string, tf.Variable>>,
): tf.Variable {
  if (name === "__proto__") {
    throw new TypeError('A variable may not be named "__proto__" (it cannot key a record)');
  }
  const variable = Object.hasOwn(registered, name) ? registered[name] : undefined;
  if (variable === undefined) {
    throw new TypeError(
      `No ${
        labelOf(name)
      } is registered with TensorFlow.js (was it disposed?); gradients must be keyed by variable name`,
    );
  }
  if (variable.isDisposed) throw new TypeError(`The ${labelOf(name)} was disposed`);
  if (!variable.trainable) {
    throw new TypeError(`The ${labelOf(name)} is not trainable; it cannot take a gradient step`);
  }
  if (variable.dtype !== "float32") {
    throw new TypeError(
      `The ${labelOf(name)} is ${variable.dtype}; this optimizer updates float32`,
    );
  }
  return variable;
}

/** Checks `tensor` as the gradient of `variable`, named `name`. */
function checkGradient(tensor: unknown, variable: tf.Variable, name: string): tf.Tensor {
  if (!(tensor instanceof tf.Tensor)) {
    throw new TypeError(
      `Expected the gradient of ${labelOf(name)} to be a tf.Tensor, got ${described(tensor)}` +
        promiseHint(tensor),
    );
  }
  if (tensor.isDisposed) throw new TypeError(`The gradient of ${labelOf(name)} was disposed`);
  if (tensor.dtype !== "float32") {
    throw new TypeError(
      `Expected the gradient of ${labelOf(name)} to be float32, got ${tensor.dtype}`,
    );
  }
  if (!sameShape(tensor.shape, variable.shape)) {
    throw new RangeError(
      `Expected the gradient of ${labelOf(name)} to have the variable's shape ${
        shapeText(variable.shape)
      }, got ${shapeText(tensor.shape)}`,
    );
  }
  return tensor;
}

/** Appends the checked gradient `tensor` of the variable `name` to `items` (none for `null`). */
function addItem(
  items: GradItem[],
  registered: Readonly<Record<string, tf.Variable>>,
  name: string,
  tensor: unknown,
): void {
  if (tensor === null || tensor === undefined) return;
  const variable = variableOf(name, registered);
  items.push({ name, tensor: checkGradient(tensor, variable, name), variable });
}

/**
 * Throws a TypeError where `map` is what `tf.variableGrads` returns, `{ value, grads }` (its
 * `grads` a record, not a tensor), given whole: its `value` would be taken for the gradient of
 * a variable named "value", refused as not registered, a message that does not say what to do.
 */
function checkNotValueAndGrads(map: Readonly<Record<string, unknown>>): void {
  const inner = Object.hasOwn(map, "grads") ? map.grads : undefined;
  if (
    Object.hasOwn(map, "value") && typeof inner === "object" && inner !== null &&
    !(inner instanceof tf.Tensor)
  ) {
    throw new TypeError(
      "applyGradients was given { value, grads }, what tf.variableGrads returns: pass its " +
        "grads, e.g. optimizer.applyGradients(tf.variableGrads(f).grads)",
    );
  }
}

/**
 * What to add to the error for `grads` given to `applyGradients` where it is a tensor (its keys,
 * `shape`, `dtype`…, would be taken for variable names) or a `Map` (a record of no key: the step
 * would do nothing): how to key the gradients. Empty for anything else.
 */
function notARecordHint(grads: unknown): string {
  if (grads instanceof tf.Tensor) {
    return " (one tensor: key each gradient by its variable's name, " +
      "optimizer.applyGradients({ [variable.name]: grad }))";
  }
  return grads instanceof Map
    ? " (a Map's entries are not a record's keys: pass Object.fromEntries(map))"
    : "";
}

/**
 * Validates the gradients of `applyGradients` (a `null` one leaves its variable out); returns
 * them with their variables. Throws a TypeError/RangeError naming the variable otherwise. For
 * a `NamedTensorMap` (what `minimize` and `model.fit` pass) it allocates only the items it
 * returns: a variable's name is worded only for an error.
 */
export function checkGradients(grads: unknown): GradItem[] {
  const registered = tf.engine().registeredVariables;
  const items: GradItem[] = [];
  if (Array.isArray(grads)) {
    // Each element read once: what is checked is what the step reads.
    const { names, tensors } = readNamedTensors(grads);
    const seen = new Set<string>();
    for (let i = 0; i < names.length; i++) {
      const name = names[i], tensor = tensors[i];
      if (tensor === null || tensor === undefined) continue;
      if (seen.has(name)) throw new TypeError(`Two gradients were given for ${labelOf(name)}`);
      seen.add(name);
      addItem(items, registered, name, tensor);
    }
  } else if (
    typeof grads === "object" && grads !== null && !isThenable(grads) &&
    !(grads instanceof tf.Tensor) && !(grads instanceof Map)
  ) {
    // (A record's keys are distinct.)
    const map = grads as Readonly<Record<string, unknown>>;
    checkNotValueAndGrads(map);
    checkNotOneNamedTensor(map);
    for (const name in map) {
      if (Object.hasOwn(map, name)) addItem(items, registered, name, map[name]);
    }
  } else {
    throw new TypeError(
      `applyGradients expects a NamedTensorMap or a NamedTensor[], got ${described(grads)}` +
        promiseHint(grads) + notARecordHint(grads),
    );
  }
  return items;
}

/**
 * `items` in the order of `entries` where they name the same variables in another order (a
 * gradient map built in another order, `minimize` with a reordered `varList`); else `items`,
 * the same list (no allocation where they are in order, as every step but a reordered one).
 */
export function inOrderOf(
  entries: readonly Entry[],
  items: readonly GradItem[],
): readonly GradItem[] {
  if (entries.length !== items.length) return items;
  let k = 0;
  while (k < items.length && items[k].name === entries[k].name) k++;
  if (k === items.length) return items;
  const byName = new Map(items.map((i) => [i.name, i]));
  const ordered: GradItem[] = [];
  for (const e of entries) {
    const item = byName.get(e.name);
    if (item === undefined) return items;
    ordered.push(item);
  }
  return ordered;
}

/**
 * Whether `items` are exactly the variables of `entries` (same names, shapes and order, and the
 * same `tf.Variable`s: one made again under a name, the one before disposed, is another).
 */
export function sameVariables(entries: readonly Entry[], items: readonly GradItem[]): boolean {
  if (entries.length !== items.length) return false;
  for (let i = 0; i < items.length; i++) {
    const e = entries[i], v = items[i].variable;
    if (e.name !== items[i].name || !takesState(e, v.shape, v.id)) return false;
  }
  return true;
}

/** Gradients matched to the variables of a state ({@linkcode matchedTo}). */
export interface Matched {
  /** The gradients as given. */
  readonly given: readonly GradItem[];
  /** The gradients in the state's order where they are its variables in another order. */
  readonly items: readonly GradItem[];
  /** Whether they are exactly its variables ({@linkcode sameVariables} of `items`). */
  readonly same: boolean;
}

/**
 * `items` matched to the variables of a state, `entries` ({@linkcode inOrderOf}, then
 * {@linkcode sameVariables}): worked out once a step, which each part of it goes by.
 *
 * @example
 * ```ts
 * import * as tf from "@tensorflow/tfjs-core";
 * import "@tensorflow/tfjs-backend-cpu";
 * import { matchedTo } from "./gradients.ts";
 * import { entryOf } from "./layout.ts";
 * import assert from "node:assert/strict";
 *
 * await tf.setBackend("cpu");
 * const a = tf.variable(tf.zeros([2]), true, "matched-doc/a");
 * const b = tf.variable(tf.zeros([3]), true, "matched-doc/b");
 * const entries = [a, b].map((v) => entryOf(v.name, v.shape, false, v.id));
 * const given = [b, a].map((v) => ({ name: v.name, tensor: v, variable: v }));
 * const match = matchedTo(entries, given);
 * assert.ok(match.same && match.given === given);
 * assert.deepEqual(match.items.map((i) => i.name), [a.name, b.name]);
 * assert.equal(matchedTo(entries, given.slice(1)).same, false);
 * tf.dispose([a, b]);
 * ```
 */
export function matchedTo(entries: readonly Entry[], items: readonly GradItem[]): Matched {
  const ordered = inOrderOf(entries, items);
  return { given: items, items: ordered, same: sameVariables(entries, ordered) };
}

/** What the errors of option `strict` add: why it refuses. */
const STRICT_WHY = " (option strict: true refuses a change of the trained variables)";

/** The error of option `strict` for a step over other variables than `entries`. */
export function changeError(entries: readonly Entry[], items: readonly GradItem[]): RangeError {
  const names = new Set(items.map((i) => i.name));
  const gone = entries.find((e) => !names.has(e.name));
  if (gone) {
    return new RangeError(
      `The variable ${
        JSON.stringify(gone.name)
      } has no gradient in this step, but the optimizer holds its state${STRICT_WHY}`,
    );
  }
  const known = new Map(entries.map((e) => [e.name, e]));
  const made = items.find((i) => {
    const e = known.get(i.name);
    return e !== undefined && sameShape(e.shape, i.variable.shape) &&
      !sameVariable(e, i.variable.id);
  });
  if (made) {
    return new RangeError(
      `The variable ${
        JSON.stringify(made.name)
      } is a new tf.Variable under the name of one the optimizer holds state for (that one was disposed), which would start fresh${STRICT_WHY}`,
    );
  }
  const item =
    items.find((i) =>
      !known.has(i.name) || !sameShape(known.get(i.name)!.shape, i.variable.shape)
    ) ?? items[0];
  return new RangeError(
    `The variable ${
      JSON.stringify(item.name)
    } was not among the variables of the first step, or changed shape${STRICT_WHY}`,
  );
}
