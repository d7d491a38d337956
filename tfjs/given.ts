/**
 * The tensors `getWeights` gives, which the optimizer owns, as tfjs's own optimizers own the
 * variables theirs give: tfjs-layers' `model.save` never disposes them, so the optimizer does,
 * and holds at most one set between calls; `setWeights` starts reading all of a set at once.
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs-core";
import type { NamedTensor } from "./gradients.ts";

/** A set of tensors given, and when (on the clock of {@linkcode GivenWeights}). */
interface GivenSet {
  readonly given: number;
  readonly tensors: readonly tf.Tensor[];
}

/**
 * The sets of tensors given by `getWeights` and not yet disposed. A set stays valid until a
 * call begun after it was given has given its own (a call refused meanwhile disposes nothing),
 * or until {@linkcode GivenWeights.disposeAll}: so where calls do not overlap, one set is held,
 * and of calls at once (two `model.save` under way) none disposes the set of another, which its
 * caller has yet to read. Disposing a set's tensors elsewhere first is harmless (tfjs's dispose
 * of a disposed tensor does nothing).
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
 * given.own(first, a); // calls at once: each set stays valid for its caller
 * assert.ok(!a[0].tensor.isDisposed && !b[0].tensor.isDisposed);
 * given.own(given.begin(), [{ name: "iter", tensor: tf.scalar(3, "int32") }]);
 * assert.ok(a[0].tensor.isDisposed && b[0].tensor.isDisposed);
 * given.disposeAll();
 * assert.equal(tf.memory().numTensors, 0);
 * ```
 *
 * @example As getWeights gives them: valid until its next call
 * ```ts
 * import * as tf from "@tensorflow/tfjs-core";
 * import "@tensorflow/tfjs-backend-cpu";
 * import { adam } from "@optim/radam";
 * import { tfOptimizer } from "@optim/radam/tfjs";
 * import assert from "node:assert/strict";
 *
 * await tf.setBackend("cpu");
 * const w = tf.variable(tf.tensor1d([1, 2, 3]), true, "owned/w");
 * const optimizer = tfOptimizer(adam({ lr: 1e-2 }));
 * const grad = tf.mul(w, 2);
 * optimizer.applyGradients({ [w.name]: grad });
 * const weights = await optimizer.getWeights(); // iter, owned/w/m, owned/w/v
 * const kept = weights.map(({ name, tensor }) => ({ name, tensor: tf.clone(tensor) }));
 * const tensors = tf.memory().numTensors;
 * for (let i = 0; i < 10; i++) await optimizer.getWeights(); // as model.save does
 * assert.equal(tf.memory().numTensors, tensors); // each call disposed the set before it
 * assert.ok(weights[1].tensor.isDisposed && !kept[1].tensor.isDisposed);
 *
 * const other = tfOptimizer(adam({ lr: 1e-2 }));
 * await other.setWeights(kept); // copies them
 * tf.dispose(kept.map((k) => k.tensor));
 * assert.equal(other.iterations, 1);
 * optimizer.dispose(); // disposes the set it gave last
 * other.dispose();
 * tf.dispose([w, grad]);
 * ```
 */
export class GivenWeights {
  /** Counts the calls begun and the sets given, in the order they happened. */
  #clock = 0;
  #sets: GivenSet[] = [];

  /** Numbers a call of `getWeights`, at its start. */
  begin(): number {
    return ++this.#clock;
  }

  /** Takes the tensors given by call `call`; disposes the sets given before that call began. */
  own(call: number, weights: readonly NamedTensor[]): void {
    const older = this.#sets.filter((set) => set.given < call);
    this.#sets = this.#sets.filter((set) => set.given > call);
    this.#sets.push({ given: ++this.#clock, tensors: weights.map((w) => w.tensor) });
    for (const set of older) tf.dispose(set.tensors as tf.Tensor[]);
  }

  /** Disposes every set held. */
  disposeAll(): void {
    for (const set of this.#sets) tf.dispose(set.tensors as tf.Tensor[]);
    this.#sets = [];
  }
}

/** Reads the values of a tensor given to `setWeights` (see {@linkcode startReads}). */
export type ReadTensor = (tensor: tf.Tensor) => Promise<tf.TypedArray>;

/**
 * Starts reading the values of every tensor of `weightValues` (`data()`), all at the call, and
 * gives the reads by tensor: the tensors a `getWeights` gave are disposed when its next call
 * gives its own, which may happen while `setWeights` reads them one after another. A read begun
 * has taken the values already on tfjs's cpu and wasm backends, and on webgpu of a tensor whose
 * values are on the CPU (those `getWeights` makes). Costs, until the reads are dropped, the
 * values of every tensor at once where reading copies them (wasm, or a tensor on the GPU): one
 * copy of the weights, where one tensor's was held before; none on cpu (its own arrays). A
 * tensor not read here (disposed already, or not a tensor) is read when asked, as it is.
 *
 * @example
 * ```ts
 * import "@tensorflow/tfjs-backend-cpu";
 * import * as tf from "@tensorflow/tfjs-core";
 * import { startReads } from "./given.ts";
 * import assert from "node:assert/strict";
 *
 * const tensor = tf.tensor1d([1, 2]);
 * const read = startReads([{ name: "w/m", tensor }]);
 * tensor.dispose(); // (as a later getWeights disposes the set before it)
 * assert.deepEqual(await read(tensor), new Float32Array([1, 2]));
 * ```
 */
export function startReads(weightValues: readonly unknown[]): ReadTensor {
  const reads = new Map<tf.Tensor, Promise<tf.TypedArray>>();
  for (const w of weightValues) {
    const tensor = typeof w === "object" && w !== null ? (w as { tensor?: unknown }).tensor : null;
    if (tensor instanceof tf.Tensor && !tensor.isDisposed && !reads.has(tensor)) {
      const read = tensor.data();
      read.catch(() => {}); // (its refusal is met where it is read, if it is)
      reads.set(tensor, read);
    }
  }
  return (tensor) => reads.get(tensor) ?? tensor.data();
}
