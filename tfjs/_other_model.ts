/**
 * The check of the first step after `setWeights` or `loadState` given another model's optimizer
 * weights: those of model A's optimizer given to model B's, while A lives. Every weight then fits
 * a trainable variable registered with TensorFlow.js (A's), so the load takes them; but the state
 * is keyed by variable name, and B's variables have other names (tfjs-layers numbers its layers:
 * `dense_Dense1` for A, `dense_Dense3` for the same layer of B), so without this check every
 * variable of B started from zero moments at A's step count (its bias corrections late), A's
 * moments kept aside and saved with B, silently. tfjs's own optimizers take them by position.
 * A variable of A is told from one of B's by shape and by name but for its digits (tfjs-layers'
 * numbers): weights of variables named otherwise, which the step leaves out (a custom loop's
 * `encoder/kernel` resumed by a step of `decoder/kernel` alone, of the same shape), are this
 * model's, kept aside for their variable's later step. Private to the adapter.
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs-core";
import type { GradItem } from "./gradients.ts";
import { baseName, type KeptStates } from "./kept.ts";
import { shapeText } from "./layout.ts";
import { someNames } from "./matching.ts";

/**
 * Throws a RangeError where `items`, the gradients of a step that makes the state from what
 * `kept` holds (loaded by `setWeights` or `loadState`, none taken yet), take none of it, and
 * every state loaded is that of another trainable variable alive, not in the step, of the shape
 * and the name but for its digits of a variable of the step (each its own): another model of the
 * same layers (or more), as tfjs-layers numbers them (`dense_Dense1/kernel` for A,
 * `dense_Dense3/kernel` for B). Nothing is changed. Passes where a state was taken by a step
 * since the load, where some loaded state has the name or base name of a variable of the step
 * (kept.ts), or is of no live trainable variable (a frozen layer's: the step trains the others),
 * or of a variable of the step, or of a variable named otherwise than each of the step's of its
 * shape but for digits (this model's other variables, which the step leaves out:
 * `encoder/kernel` where it trains `decoder/kernel`).
 *
 * @example
 * ```ts
 * import * as tf from "@tensorflow/tfjs-core";
 * import "@tensorflow/tfjs-backend-cpu";
 * import { checkNotOtherModels } from "./_other_model.ts";
 * import { KeptStates } from "./kept.ts";
 * import { entryOf } from "./layout.ts";
 * import assert from "node:assert/strict";
 *
 * const a = tf.variable(tf.zeros([2]), true, "other-model-doc/dense1");
 * const b = tf.variable(tf.zeros([2]), true, "other-model-doc/dense2");
 * const c = tf.variable(tf.zeros([2]), true, "other-model-doc/bias");
 * const kept = new KeptStates();
 * const m = new Float32Array(2);
 * kept.replace(new Map([[a.name, { entry: entryOf(a.name, [2], false), sections: [, , m] }]]), 5, 0);
 * const items = [{ name: b.name, variable: b, tensor: tf.onesLike(b) }];
 * assert.throws(() => checkNotOtherModels(kept, items), /"other-model-doc\/dense1"/);
 * checkNotOtherModels(kept, [{ name: a.name, variable: a, tensor: tf.onesLike(a) }]);
 * // (Of another name but for digits: this model's variable, which the step leaves out.)
 * checkNotOtherModels(kept, [{ name: c.name, variable: c, tensor: tf.onesLike(c) }]);
 * ```
 */
export function checkNotOtherModels(kept: KeptStates, items: readonly GradItem[]): void {
  const loaded = kept.loadedNames();
  if (loaded.length === 0 || loaded.length !== kept.names().length) return;
  // (By name or base name alone, as the step matches them: no state is read or copied.)
  const bases = new Set(items.map((i) => baseName(i.name)));
  if (loaded.some((name) => bases.has(baseName(name)))) return;
  const registered = tf.engine().registeredVariables;
  const stepped = new Set(items.map((i) => i.name));
  const twins = items.map((i) => twinKey(i.name, i.variable.shape));
  for (const name of loaded) {
    const v = Object.hasOwn(registered, name) ? registered[name] : undefined;
    if (v === undefined || v.isDisposed || !v.trainable || stepped.has(name)) return;
    const at = twins.indexOf(twinKey(name, v.shape));
    if (at < 0) return;
    twins.splice(at, 1);
  }
  throw new RangeError(
    `The optimizer's weights (given to setWeights or loadState) are those of other variables, ` +
      `${someNames(loaded)} (trainable and alive: another model's?), none of this step's, ` +
      `${someNames(items.map((i) => i.name))}: each would start from zero moments at the ` +
      `weights' step count, ${kept.steps}, theirs kept aside. Moments go to the variable of ` +
      "their name, not by position as tfjs's own optimizers take them: give this model's " +
      "optimizer weights, or name each weight for its variable here (the name before " +
      '"/<moment>"), then setWeights them again; or, where they are of this model\'s variables ' +
      "that this step leaves out (a model trained a part at a time), freeze those for it " +
      "(variable.trainable = false): their moments wait for them. The step was not taken, " +
      "nothing changed",
  );
}

/**
 * What a variable of model A shares with the variable of the same place in model B, built alike:
 * its shape, and its name without digits (tfjs-layers numbers the layers of each model it builds:
 * `dense_Dense1/kernel`, `dense_Dense3/kernel`).
 */
function twinKey(name: string, shape: readonly number[]): string {
  return `${name.replace(/[0-9]+/g, "")} ${shapeText(shape)}`;
}
