/**
 * The gradients of one `applyGradients` call: checked against the variables tfjs has registered
 * before anything changes, and compared with the variables an optimizer holds.
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs-core";
import { describe, type Entry, sameShape, shapeText } from "./layout.ts";

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

/** The (name, gradient) pairs of a `NamedTensorMap` or a `NamedTensor[]`. */
function pairsOf(grads: unknown): [string, unknown][] {
  if (Array.isArray(grads)) {
    return grads.map((g, i) => {
      if (typeof g !== "object" || g === null || typeof g.name !== "string") {
        throw new TypeError(
          `Expected gradient ${i} to be a { name, tensor } (a NamedTensor), got ${describe(g)}`,
        );
      }
      return [g.name, g.tensor];
    });
  }
  if (typeof grads === "object" && grads !== null) return Object.entries(grads);
  throw new TypeError(
    `applyGradients expects a NamedTensorMap or a NamedTensor[], got ${describe(grads)}`,
  );
}

/** The registered, trainable float32 variable named `name` (`registered`: tfjs's registry). */
function variableOf(
  name: string,
  label: string,
  registered: Readonly<Record<string, tf.Variable>>,
): tf.Variable {
  if (name === "__proto__") {
    throw new TypeError('A variable may not be named "__proto__" (it cannot key a record)');
  }
  const variable = Object.hasOwn(registered, name) ? registered[name] : undefined;
  if (variable === undefined) {
    throw new TypeError(
      `No ${label} is registered with TensorFlow.js (was it disposed?); gradients must be keyed by variable name`,
    );
  }
  if (variable.isDisposed) throw new TypeError(`The ${label} was disposed`);
  if (!variable.trainable) {
    throw new TypeError(`The ${label} is not trainable; it cannot take a gradient step`);
  }
  if (variable.dtype !== "float32") {
    throw new TypeError(`The ${label} is ${variable.dtype}; this optimizer updates float32`);
  }
  return variable;
}

/** Checks `tensor` as the gradient of `variable`. */
function checkGradient(tensor: unknown, variable: tf.Variable, label: string): tf.Tensor {
  if (!(tensor instanceof tf.Tensor)) {
    throw new TypeError(
      `Expected the gradient of ${label} to be a tf.Tensor, got ${describe(tensor)}`,
    );
  }
  if (tensor.isDisposed) throw new TypeError(`The gradient of ${label} was disposed`);
  if (tensor.dtype !== "float32") {
    throw new TypeError(`Expected the gradient of ${label} to be float32, got ${tensor.dtype}`);
  }
  if (!sameShape(tensor.shape, variable.shape)) {
    throw new RangeError(
      `Expected the gradient of ${label} to have the variable's shape ${
        shapeText(variable.shape)
      }, got ${shapeText(tensor.shape)}`,
    );
  }
  return tensor;
}

/**
 * Validates the gradients of `applyGradients` (a `null` one leaves its variable out); returns
 * them with their variables. Throws a TypeError/RangeError naming the variable otherwise.
 */
export function checkGradients(grads: unknown): GradItem[] {
  const registered = tf.engine().registeredVariables;
  const seen = new Set<string>();
  const items: GradItem[] = [];
  for (const [name, tensor] of pairsOf(grads)) {
    if (tensor === null || tensor === undefined) continue;
    const label = `variable ${JSON.stringify(name)}`;
    if (seen.has(name)) throw new TypeError(`Two gradients were given for ${label}`);
    seen.add(name);
    const variable = variableOf(name, label, registered);
    items.push({ name, tensor: checkGradient(tensor, variable, label), variable });
  }
  return items;
}

/** Whether `items` are exactly the variables of `entries` (same names, shapes and order). */
export function sameVariables(entries: readonly Entry[], items: readonly GradItem[]): boolean {
  if (entries.length !== items.length) return false;
  for (let i = 0; i < items.length; i++) {
    const e = entries[i];
    if (e.name !== items[i].name || !sameShape(e.shape, items[i].variable.shape)) return false;
  }
  return true;
}

/** The error of option `strict` for a step over other variables than `entries`. */
export function changeError(entries: readonly Entry[], items: readonly GradItem[]): RangeError {
  const names = new Set(items.map((i) => i.name));
  const gone = entries.find((e) => !names.has(e.name));
  if (gone) {
    return new RangeError(
      `The variable ${
        JSON.stringify(gone.name)
      } has no gradient in this step, but the optimizer holds its state (option strict: true refuses a change of the trained variables)`,
    );
  }
  const known = new Map(entries.map((e) => [e.name, e]));
  const item =
    items.find((i) =>
      !known.has(i.name) || !sameShape(known.get(i.name)!.shape, i.variable.shape)
    ) ?? items[0];
  return new RangeError(
    `The variable ${
      JSON.stringify(item.name)
    } was not among the variables of the first step, or changed shape (option strict: true refuses a change of the trained variables)`,
  );
}
