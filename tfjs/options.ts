/**
 * The options of the TensorFlow.js adapter, and the checks of what `tfOptimizer` is given.
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs-core";
import type { Settings } from "../base/settings.ts";
import { described, optionError, promiseHint } from "../base/_errors.ts";
import {
  factoryHint,
  heldStandInHint,
  optimizerNameHint,
  scheduleStandIn,
  swappedOptimizerHint,
} from "../base/_call_hints.ts";
import { checkKeys } from "../base/schema.ts";
import { factoryOptionHintOf } from "../core/options.ts";
import { checkEma, type EmaOptions, type EmaSettings } from "./ema.ts";

/**
 * Options of {@linkcode tfOptimizer}.
 *
 * @example Refuse any change of the trained variables; no warning at a skipped step
 * ```ts
 * import { radam } from "@optim/radam";
 * import { tfOptimizer, type TfOptimizerOptions } from "@optim/radam/tfjs";
 *
 * const options: TfOptimizerOptions = { strict: true, warnOnSkip: false };
 * const optimizer = tfOptimizer(radam(), options);
 * ```
 */
export interface TfOptimizerOptions {
  /**
   * What a call of `applyGradients` with another set of variables than the last does. `false`
   * (default): the variables still there keep their state, new ones start fresh (zero moments,
   * slow weights = their value) at the optimizer's step count, and the state of those left out
   * (frozen layers) is kept aside, unchanged, until they come back. `true`: a RangeError naming
   * the first variable that differs, and nothing changes.
   */
  strict?: boolean;
  /**
   * Whether the first step skipped for a non-finite gradient (option `nonFinite: "skip"`, the
   * default) prints a warning with `console.warn`, once per optimizer. Default `true`.
   */
  warnOnSkip?: boolean;
  /**
   * N, the `applyGradients` calls whose gradients make one step (an integer from 1 to 2³¹ − 1,
   * default 1: each call steps): a large batch's step from N small ones, as Keras's
   * `gradient_accumulation_steps`. Calls 1 to N − 1 add their gradients into a sum per variable
   * and change no variable or moment; the N-th adds its own and steps the mean, `sum / N`
   * (computed as `tf.div(sum, N)` of the sums `tf.add` made, in call order: the same bits as one
   * call given that mean). A variable absent from some calls steps with its sum over those it
   * was in, over N; one disposed meanwhile is left out. The step count (`iterations`, the `iter`
   * weight, a schedule's `t`) counts steps, not calls, as Keras's `iterations` does since Keras
   * 3.5 (a Keras schedule, though, is given the calls); `accumulatedBatches` gives the calls
   * summed so far, and `discardAccumulated()` drops their sums (the moments and step count
   * kept). A call with no gradient (`{}`, or every one `null`) adds nothing and is not one of the
   * N, as it takes no step without accumulation (Keras refuses such a call).
   *
   * The N-th call ends the accumulation where its step is taken or skipped (for a non-finite
   * gradient in any of the N calls under `nonFinite: "skip"`: variables and moments unchanged,
   * one step counted skipped, the sums dropped); `clipGradNorm` clips the mean, at the step.
   * A call refused changes nothing: a gradient of the wrong shape; under `strict`, other variables
   * than the state's or, before the first step, than the calls before; under `"throw"`, a
   * non-finite gradient, or finite ones whose sum overflows float32 (a RangeError naming the
   * variable and index, at the call giving it: on cpu and wasm, calls 1 to N − 1 read their new
   * sums for it, one read a variable; on webgpu, where the check runs on the device, at a later
   * call, as without accumulation); and an N-th call whose step throws, which leaves the sums and
   * their count as they were. One refused because the state's checkpoint, with the sums saved
   * beside it, would pass the cap on a header's length (too many variables, or too long names)
   * would be refused so again: its RangeError says how to drop the sums
   * (`optimizer.discardAccumulated()`, which drops them only, or `loadState`).
   *
   * Memory: one float32 tensor the size of each variable, on tfjs's backend (the JS heap on
   * `cpu`, tfjs's wasm heap on `wasm`, a GPU buffer on `webgpu`: no readback), plus the mean's
   * at the N-th call; the first call's gradient is held as a `tf.clone` of it, which shares its
   * data (no copy; its disposal, as `model.fit` makes, takes nothing from the sum). `getWeights`
   * gives the sums (`<variable>/accum` and the int32 `accum_count`, only between steps) and
   * `setWeights` takes them back, so `model.save` with `includeOptimizer` resumes
   * mid-accumulation; so does a checkpoint of `state` (`<variable>.accum`, `accum_count` in its
   * metadata), which `optimizer.loadState` takes back, checked as `setWeights` checks them (a call
   * that sums makes `state` where there is none, so that it can be saved).
   * `setWeights` refuses, changing nothing, a sum of another shape than the variables of its name
   * (or base name), with a RangeError naming it and both shapes, and under `"throw"` a non-finite
   * one (under `"skip"` and `"propagate"` it is taken: the step it ends is skipped, or propagates
   * it, as in the run that summed it).
   *
   * @example Four batches of 8 make one step of 32
   * ```ts
   * import * as tf from "@tensorflow/tfjs-core";
   * import "@tensorflow/tfjs-backend-cpu";
   * import { radam } from "@optim/radam";
   * import { tfOptimizer } from "@optim/radam/tfjs";
   * import assert from "node:assert/strict";
   *
   * await tf.setBackend("cpu");
   * const w = tf.variable(tf.tensor1d([1, 2]), true, "accumulated/w");
   * const optimizer = tfOptimizer(radam({ lr: 0.1 }), { gradientAccumulationSteps: 4 });
   * for (let batch = 0; batch < 8; batch++) {
   *   const grad = tf.mul(w, 2);
   *   optimizer.applyGradients({ [w.name]: grad });
   *   grad.dispose();
   * }
   * assert.equal(optimizer.iterations, 2); // 8 calls, 2 steps
   * optimizer.dispose();
   * ```
   */
  gradientAccumulationSteps?: number;
  /**
   * An exponential moving average of the trained variables (Polyak averaging), as Keras's
   * `use_ema`: `true` (Keras's `use_ema=True`: momentum 0.99, never overwriting), or
   * `{ momentum, overwriteFrequency }` (Keras's `ema_momentum`, `ema_overwrite_frequency`).
   * Off by default. Kept as one float32 tensor per variable on tfjs's backend (no readback on
   * webgpu), updated after each step taken, in `optimizer.averages`: `swap()` puts them into
   * the variables for evaluation and back, `finalize()` writes them into the variables at the
   * end of training (Keras's `finalize_variable_values`, which Keras's `fit` calls and tfjs's
   * cannot), and `emaCallback` swaps them in at each epoch's end. `getWeights` gives them as
   * `<variable>/average` and `setWeights` takes them, so `model.save` with `includeOptimizer`
   * resumes them bit for bit; weights without them (an older save) start them from the
   * variables at the next step. A checkpoint of `state` holds them too (`<variable>.average`),
   * and `optimizer.loadState` takes them back; one without them starts them afresh at the next
   * step. See `WeightAverages` for the rule and its edge cases.
   */
  ema?: boolean | EmaOptions;
}

/** The names of the adapter's options. */
const ADAPTER_OPTIONS = ["strict", "warnOnSkip", "gradientAccumulationSteps", "ema"] as const;

/** The largest N of option `gradientAccumulationSteps` (its count is saved as an int32). */
const MAX_ACCUMULATION = 2 ** 31 - 1;

/** The adapter's options with their defaults (what its config stores). */
export type AdapterOptions = Readonly<
  Required<Omit<TfOptimizerOptions, "ema">> & { ema: EmaSettings | undefined }
>;

/** The optimizer value the adapter wraps: anything with the library's resolved settings. */
export interface SettingsHolder {
  /** The resolved settings, as on every optimizer of this library. */
  readonly settings: Readonly<Settings>;
}

/**
 * A lr schedule that was not stored, held by an optimizer restored from a config saved with one:
 * refuses to run until one is given again; given as a schedule (`setLearningRate`, an
 * optimizer's `lr`, `loadState`'s, a part of `chain()`), it is refused at once. The adapter's
 * constructor takes settings that hold it (`fromConfig`'s): the optimizer then says to set it.
 *
 * @example
 * ```ts
 * import { MISSING_SCHEDULE } from "./options.ts";
 * import { adam } from "@optim/radam";
 * import assert from "node:assert/strict";
 *
 * assert.throws(() => MISSING_SCHEDULE(1), /optimizer\.setLearningRate\(schedule\)/);
 * assert.throws(() => adam({ lr: MISSING_SCHEDULE }), /got the stand-in that a TensorFlow\.js/);
 * ```
 */
export const MISSING_SCHEDULE: (t: number) => number = scheduleStandIn(
  Object.freeze(function missingSchedule(_t: number): number {
    throw new TypeError(
      "This optimizer was restored from a config saved with a learning-rate schedule, which " +
        "cannot be stored; give it again with optimizer.setLearningRate(schedule) before training",
    );
  }),
  "the stand-in that a TensorFlow.js optimizer restored from a config saved with a schedule " +
    "holds for it (its learningRate)",
);

/**
 * Checks the arguments of the constructor (settings whose lr is a stand-in for a schedule that
 * was not stored, `checkpointInfo`'s, refused: it would throw at the first step); returns the
 * options with their defaults.
 */
export function checkArguments(
  optimizer: SettingsHolder,
  options: TfOptimizerOptions | undefined,
): AdapterOptions {
  if (
    typeof optimizer !== "object" || optimizer === null ||
    typeof optimizer.settings !== "object" || optimizer.settings === null
  ) {
    throw new TypeError(
      `tfOptimizer() expects an optimizer made by this library, e.g. radam(), got ${
        described(optimizer)
      }${swappedOptimizerHint(optimizer, options, "tfOptimizer") || notAnOptimizerHint(optimizer)}`,
    );
  }
  if (isTfOptimizer(optimizer)) {
    throw new TypeError(
      "tfOptimizer() was given what tfOptimizer() returns, already a tf.Optimizer: pass it to " +
        "model.compile as it is ({ optimizer }); wrapped again it would be a second optimizer " +
        "with a state of its own, which the one you hold (its learningRate, loadState, " +
        "skippedSteps) would not reach",
    );
  }
  // (checkpointInfo's settings of a file saved with a schedule: refused here, not at a step;
  // the adapter's own stand-in, of settings restored from its config, is held, and says so.)
  const held = optimizer.settings as { hyperparameters?: { lr?: unknown } } | null;
  const restored = held?.hyperparameters?.lr === MISSING_SCHEDULE;
  const standIn = restored ? "" : heldStandInHint(optimizer.settings);
  if (standIn !== "") throw new TypeError(`tfOptimizer() was given settings ${standIn}`);
  const { name } = optimizer.settings as { name?: unknown };
  // (checkKeys gives {} for undefined: the constructor's options are optional.)
  const given: TfOptimizerOptions = checkKeys(
    options,
    ADAPTER_OPTIONS,
    "tfOptimizer",
    (lr) =>
      `pass a learning rate as ${
        lrCall(lr, typeof name === "string" && /^\w+$/.test(name) ? name : undefined)
      }`,
    (key) =>
      factoryOptionHintOf(optimizer.settings, key, (call) => `tfOptimizer(${call})`) ||
      deviceHint(key),
  );
  return adapterOptions(given);
}

/**
 * The adapter's options checked (given to `tfOptimizer`, or read from a saved config), with their
 * defaults; a TypeError or RangeError naming the first that is wrong.
 */
export function adapterOptions(options: TfOptimizerOptions): AdapterOptions {
  for (const key of ["strict", "warnOnSkip"] as const) {
    if (options[key] !== undefined && typeof options[key] !== "boolean") {
      throw optionError(key, "a boolean", options[key], false);
    }
  }
  const steps = options.gradientAccumulationSteps ?? 1;
  if (!Number.isInteger(steps) || steps < 1 || steps > MAX_ACCUMULATION) {
    throw optionError("gradientAccumulationSteps", "an integer from 1 to 2³¹ − 1", steps);
  }
  return {
    strict: options.strict ?? false,
    warnOnSkip: options.warnOnSkip ?? true,
    gradientAccumulationSteps: steps,
    ema: checkEma(options.ema),
  };
}

/** Whether `value` is a TensorFlow.js optimizer (what `tfOptimizer` returns has settings too). */
function isTfOptimizer(value: object): boolean {
  const tfjs = value as { applyGradients?: unknown; getClassName?: unknown };
  return typeof tfjs.applyGradients === "function" && typeof tfjs.getClassName === "function";
}

/** For an option `device`: the adapter steps on TensorFlow.js's own device. Else empty. */
function deviceHint(key: string): string {
  return key === "device"
    ? ' (the adapter steps on TensorFlow.js\'s own device: tf.setBackend("webgpu"), no device option)'
    : "";
}

/**
 * What to add to the error for `value` given where this library's optimizer goes: a learning
 * rate, a TensorFlow.js optimizer (`tfOptimizer(tf.train.adam(1e-3))`) or its maker
 * (`tf.train.adam`), says which call to write (for tfjs's Adam, SGD and momentum, this
 * library's of the same rule); options alone (`tfOptimizer({ lr })`), that they go to a
 * factory; a Promise, to await it.
 */
function notAnOptimizerHint(value: unknown): string {
  if (typeof value === "number") return ` (pass a learning rate as ${lrCall(value)})`;
  if (typeof value === "function") return factoryHint(value) || tfMakerHint(value);
  if (typeof value === "string") return optimizerNameHint(value, "tfOptimizer");
  const given = (value as { lr?: unknown } | null)?.lr;
  if (typeof given === "number" && Object.getPrototypeOf(value) === Object.prototype) {
    return ` (options: they go to the optimizer's factory, ${lrCall(given, "radam")})`;
  }
  const tfjs = value as {
    applyGradients?: unknown;
    getClassName?: unknown;
    learningRate?: unknown;
    momentum?: unknown;
  };
  if (
    typeof value !== "object" || value === null || typeof tfjs.applyGradients !== "function" ||
    typeof tfjs.getClassName !== "function"
  ) {
    return promiseHint(value);
  }
  const lr = typeof tfjs.learningRate === "number" ? tfjs.learningRate : 0.001;
  const call = {
    Adam: `tfOptimizer(adam({ lr: ${lr}, eps: 1e-7 })), which is tf.train.adam(${lr})`,
    SGD: `tfOptimizer(sgd({ lr: ${lr} }))`,
    Momentum: `tfOptimizer(sgd({ lr: ${lr}, momentum: ${tfjs.momentum} }))`,
  }[String(tfjs.getClassName())];
  return ` (a TensorFlow.js optimizer: wrap one of this library's, e.g. ${call ?? lrCall(lr)})`;
}

/**
 * What to add where `value`, given for this library's optimizer, is one of TensorFlow.js's
 * makers of its own (`tf.train.adam`, uncalled): which call to write. Empty for anything else.
 */
function tfMakerHint(value: object): string {
  const name = Object.entries(tf.train).find(([, maker]) => maker === value)?.[0];
  if (name === undefined) return "";
  const call = name === "momentum"
    ? "tfOptimizer(sgd({ lr: 0.01, momentum: 0.9 }))"
    : lrCall(name === "sgd" ? 0.01 : 0.001, name === "sgd" ? "sgd" : "adam");
  return ` (tf.train.${name}, TensorFlow.js's maker of its own optimizer: wrap one of this ` +
    `library's, e.g. ${call})`;
}

/**
 * The adapter's call with a learning rate `lr` (of the factory `factory`, by default adam), as a
 * tfjs user who wrote `tf.train.adam(lr)` means it.
 */
function lrCall(lr: number, factory = "adam"): string {
  return `tfOptimizer(${factory}({ lr: ${lr} }))`;
}
