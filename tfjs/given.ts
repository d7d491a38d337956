/**
 * The tensors `getWeights` gives, which the optimizer owns, as tfjs's own optimizers own the
 * variables theirs give: tfjs-layers' `model.save` never disposes them, so the optimizer does,
 * and holds at most one set between calls.
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs-core";
import type { NamedTensor } from "./gradients.ts";

/** A set of tensors given, and the number of the call that made it. */
interface GivenSet {
  readonly call: number;
  readonly tensors: readonly tf.Tensor[];
}

/**
 * The sets of tensors given by `getWeights` and not yet disposed. A set stays valid until a
 * call made after its own has given its set (a call refused meanwhile disposes nothing), or
 * until {@linkcode GivenWeights.disposeAll}: so where calls do not overlap, one set is held.
 * Disposing a set's tensors elsewhere first is harmless (tfjs's dispose of a disposed tensor
 * does nothing).
 *
 * @example
 * ```ts
 * import "@tensorflow/tfjs-backend-cpu";
 * import * as tf from "@tensorflow/tfjs-core";
 * import { GivenWeights } from "./given.ts";
 * import assert from "node:assert/strict";
 *
 * const given = new GivenWeights();
 * const first = given.begin(), second = given.begin();
 * const a = [{ name: "iter", tensor: tf.scalar(1, "int32") }];
 * const b = [{ name: "iter", tensor: tf.scalar(2, "int32") }];
 * given.own(second, b);
 * given.own(first, a); // made before b's call: b stays valid
 * assert.ok(!a[0].tensor.isDisposed && !b[0].tensor.isDisposed);
 * given.own(given.begin(), [{ name: "iter", tensor: tf.scalar(3, "int32") }]);
 * assert.ok(a[0].tensor.isDisposed && b[0].tensor.isDisposed);
 * given.disposeAll();
 * assert.equal(tf.memory().numTensors, 0);
 * ```
 */
export class GivenWeights {
  #calls = 0;
  #sets: GivenSet[] = [];

  /** Numbers a call of `getWeights`, at its start. */
  begin(): number {
    return ++this.#calls;
  }

  /** Takes the tensors given by call `call`; disposes the sets of calls made before it. */
  own(call: number, weights: readonly NamedTensor[]): void {
    const older = this.#sets.filter((set) => set.call < call);
    this.#sets = this.#sets.filter((set) => set.call > call);
    this.#sets.push({ call, tensors: weights.map((w) => w.tensor) });
    for (const set of older) tf.dispose(set.tensors as tf.Tensor[]);
  }

  /** Disposes every set held. */
  disposeAll(): void {
    for (const set of this.#sets) tf.dispose(set.tensors as tf.Tensor[]);
    this.#sets = [];
  }
}
