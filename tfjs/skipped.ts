/**
 * A `model.fit` callback for the steps skipped under `nonFinite: "skip"` (the default), which
 * gives a tfjs user no other sign than NaN losses: besides `optimizer.skippedSteps` and the
 * one-time warning of the optimizer (skip_notes.ts), each epoch's count in its logs.
 *
 * @module
 */
import { stateInternals } from "../core/state.ts";
import { described } from "../base/_errors.ts";
import { skippedStepsSeen, type TfOptimizer } from "./optimizer.ts";
import { modelGivenHint, refuseUncalled } from "./_hints.ts";

/**
 * A `model.fit` callback (tfjs-layers' `CustomCallbackArgs`): see
 * {@linkcode skippedStepsCallback}.
 *
 * @example
 * ```ts
 * import { radam } from "@optim/radam";
 * import { type SkippedStepsCallback, skippedStepsCallback, tfOptimizer } from "@optim/radam/tfjs";
 *
 * const callback: SkippedStepsCallback = skippedStepsCallback(tfOptimizer(radam()));
 * ```
 */
export interface SkippedStepsCallback {
  /** Notes the count at the start of an epoch. */
  onEpochBegin(epoch: number): Promise<void>;
  /** Writes `skipped_steps`, the steps skipped in the epoch, into its logs. */
  onEpochEnd(epoch: number, logs?: Record<string, unknown>): Promise<void>;
}

/**
 * The skipped steps seen (see `skippedStepsSeen`), once a WebGPU state's device has reported
 * every step submitted.
 */
async function settledSkips(optimizer: TfOptimizer): Promise<number> {
  const state = optimizer.state;
  if (state !== undefined) {
    const backend = stateInternals(state).backend;
    if (backend.kind !== "host") await backend.counter.settle();
  }
  return skippedStepsSeen(optimizer);
}

/**
 * A `model.fit` callback that writes into each epoch's logs `skipped_steps`: the steps
 * `optimizer` skipped in that epoch for a gradient holding NaN or ±Infinity (option
 * `nonFinite: "skip"`, the default). The `History` that `model.fit` returns then has them
 * (`history.history.skipped_steps`), and so do the callbacks given after this one. (On webgpu,
 * where the device decides whether a step is taken, the callback waits at each epoch's end
 * until it has reported every step.) An epoch with a `loadState`, which replaces
 * `optimizer.skippedSteps` by its checkpoint's count, counts the steps skipped before and after
 * it, not the difference of the two counts.
 *
 * @example Count the steps a NaN batch skips
 * ```ts
 * import * as tf from "@tensorflow/tfjs-core";
 * import "@tensorflow/tfjs-backend-cpu";
 * import * as tfl from "@tensorflow/tfjs-layers";
 * import { radam } from "@optim/radam";
 * import { skippedStepsCallback, tfOptimizer } from "@optim/radam/tfjs";
 * import assert from "node:assert/strict";
 *
 * await tf.setBackend("cpu");
 * const model = tfl.sequential({ layers: [tfl.layers.dense({ units: 1, inputShape: [1] })] });
 * const optimizer = tfOptimizer(radam(), { warnOnSkip: false });
 * model.compile({ optimizer, loss: "meanSquaredError" });
 * const x = tf.tensor2d([[1], [NaN], [2], [3]]); // the second batch of 2 gives a NaN gradient
 * const y = tf.tensor2d([[1], [2], [3], [4]]);
 * const history = await model.fit(x, y, {
 *   epochs: 2,
 *   batchSize: 2,
 *   shuffle: false,
 *   verbose: 0,
 *   callbacks: [skippedStepsCallback(optimizer)],
 * });
 * assert.deepEqual(history.history.skipped_steps, [1, 1]);
 * assert.equal(optimizer.skippedSteps, 2);
 * ```
 */
export function skippedStepsCallback(optimizer: TfOptimizer): SkippedStepsCallback {
  if (typeof optimizer !== "object" || optimizer === null || !("skippedSteps" in optimizer)) {
    throw new TypeError(
      `skippedStepsCallback() expects an optimizer made by tfOptimizer(), got ${
        described(optimizer)
      }${modelGivenHint(optimizer, "skippedStepsCallback")}`,
    );
  }
  let atBegin = 0;
  // (tfjs-layers calls these without `this`: closures, not methods reading `this`.)
  return {
    onEpochBegin: async () => {
      atBegin = await settledSkips(optimizer);
    },
    onEpochEnd: async (_epoch, logs) => {
      const skipped = await settledSkips(optimizer);
      if (logs !== undefined) logs.skipped_steps = skipped - atBegin;
    },
  };
}

refuseUncalled(skippedStepsCallback, "skippedStepsCallback");
