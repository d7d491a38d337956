/**
 * A `model.fit` callback for option `ema`, as Keras's `SwapEMAWeights(swap_on_epoch=True)`:
 * the moving averages swapped into the model at each epoch's end, for the callbacks after it,
 * and written into it at the end of training, as Keras's `fit` does.
 *
 * @module
 */
import { described, optionError } from "../base/_errors.ts";
import { checkKeys } from "../base/schema.ts";
import type { TfOptimizer } from "./optimizer.ts";
import { modelGivenHint, refuseUncalled } from "./_hints.ts";

/**
 * Options of {@linkcode emaCallback}.
 *
 * @example
 * ```ts
 * import type { EmaCallbackOptions } from "@optim/radam/tfjs";
 *
 * const options: EmaCallbackOptions = { finalize: false }; // the training weights after fit
 * ```
 */
export interface EmaCallbackOptions {
  /**
   * Whether the model holds the averages once `fit` ends (`averages.finalize()`, as Keras's
   * `fit` calls `finalize_variable_values`); else its training weights. Default `true`.
   */
  finalize?: boolean;
}

/**
 * A `model.fit` callback (tfjs-layers' `CustomCallbackArgs`): see {@linkcode emaCallback}.
 *
 * @example
 * ```ts
 * import { radam } from "@optim/radam";
 * import { type EmaCallback, emaCallback, tfOptimizer } from "@optim/radam/tfjs";
 *
 * const callback: EmaCallback = emaCallback(tfOptimizer(radam(), { ema: true }));
 * ```
 */
export interface EmaCallback {
  /** Swaps the training weights back in, where the last epoch's end swapped them out. */
  onEpochBegin(epoch: number): void;
  /** Swaps the averages into the model. */
  onEpochEnd(epoch: number): void;
  /** Writes the averages into the model (option `finalize`), or swaps back. */
  onTrainEnd(): void;
}

/**
 * A `model.fit` callback for an optimizer with option `ema`: at each epoch's end it swaps the
 * moving averages into the model's variables, so that the callbacks given after it (a save of
 * the model, a `model.evaluate` of yours) see the averaged model; at the next epoch's start it
 * swaps the training weights back; at the end of `fit` the model keeps the averages (option
 * `finalize`, default `true`, as Keras's `fit`) or gets its training weights back. tfjs's `fit`
 * runs its validation (`validationData`) within the epoch's last batch, with no callback between
 * (tfjs-layers has no `onTestBegin`): its `val_` metrics are of the training weights; for those of
 * the averages, evaluate in a callback after this one. Throws a TypeError for an optimizer
 * without option `ema`, or another value.
 *
 * @example The model after fit holds the averages
 * ```ts
 * import * as tf from "@tensorflow/tfjs-core";
 * import "@tensorflow/tfjs-backend-cpu";
 * import * as tfl from "@tensorflow/tfjs-layers";
 * import { adam } from "@optim/radam";
 * import { emaCallback, tfOptimizer } from "@optim/radam/tfjs";
 * import assert from "node:assert/strict";
 *
 * await tf.setBackend("cpu");
 * const model = tfl.sequential({ layers: [tfl.layers.dense({ units: 1, inputShape: [1] })] });
 * const optimizer = tfOptimizer(adam({ lr: 0.1 }), { ema: { momentum: 0.9 } });
 * model.compile({ optimizer, loss: "meanSquaredError" });
 * const x = tf.tensor2d([[1], [2], [3], [4]]), y = tf.tensor2d([[2], [4], [6], [8]]);
 * const swapped: boolean[] = [];
 * await model.fit(x, y, {
 *   epochs: 3,
 *   verbose: 0,
 *   callbacks: [emaCallback(optimizer), {
 *     onEpochEnd: () => { // sees the averaged model (a save, an evaluate)
 *       swapped.push(optimizer.averages!.swapped);
 *     },
 *   }],
 * });
 * assert.deepEqual(swapped, [true, true, true]);
 * assert.equal(optimizer.averages!.swapped, false); // finalized: the model holds the averages
 * ```
 */
export function emaCallback(optimizer: TfOptimizer, options?: EmaCallbackOptions): EmaCallback {
  const averages = (optimizer as { averages?: unknown } | null)?.averages;
  const held = averages as { swap?: unknown; finalize?: unknown } | null | undefined;
  if (
    typeof optimizer !== "object" || optimizer === null || !("averages" in optimizer) ||
    (averages !== undefined &&
      (typeof held !== "object" || held === null || typeof held.swap !== "function" ||
        typeof held.finalize !== "function"))
  ) {
    throw new TypeError(
      `emaCallback() expects an optimizer made by tfOptimizer(), got ${described(optimizer)}${
        modelGivenHint(optimizer, "emaCallback")
      }`,
    );
  }
  if (averages === undefined) {
    throw new TypeError(
      "emaCallback() needs an optimizer with moving averages: tfOptimizer(optimizer, { ema: true })",
    );
  }
  // checkKeys gives {} for undefined options.
  const finalize = checkKeys(options, ["finalize"], "emaCallback").finalize ?? true;
  if (typeof finalize !== "boolean") throw optionError("finalize", "a boolean", finalize, false);
  const { averages: ours } = optimizer as { averages: NonNullable<TfOptimizer["averages"]> };
  // (tfjs-layers calls these without `this`: closures, not methods reading `this`.)
  return {
    onEpochBegin: () => {
      if (ours.swapped) ours.swap();
    },
    onEpochEnd: () => {
      if (!ours.swapped) ours.swap();
    },
    onTrainEnd: () => {
      if (finalize) ours.finalize();
      else if (ours.swapped) ours.swap();
    },
  };
}

refuseUncalled(emaCallback, "emaCallback");
