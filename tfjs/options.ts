/**
 * The options of the TensorFlow.js adapter, and the checks of what `tfOptimizer` is given.
 *
 * @module
 */
import type { Settings } from "../base/settings.ts";
import { described, optionError, promiseHint } from "../base/_errors.ts";
import { factoryHint, swappedOptimizerHint } from "../base/_call_hints.ts";
import { checkKeys } from "../base/schema.ts";
import { factoryOptionHintOf } from "../core/options.ts";

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
}

/** The names of the adapter's options. */
const ADAPTER_OPTIONS = ["strict", "warnOnSkip"] as const;

/** The adapter's options with their defaults (what its config stores). */
export type AdapterOptions = Readonly<Required<TfOptimizerOptions>>;

/** The optimizer value the adapter wraps: anything with the library's resolved settings. */
export interface SettingsHolder {
  /** The resolved settings, as on every optimizer of this library. */
  readonly settings: Readonly<Settings>;
}

/** Checks the arguments of the constructor; returns the options with their defaults. */
export function checkArguments(
  optimizer: SettingsHolder,
  options: TfOptimizerOptions,
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
  const { name } = optimizer.settings as { name?: unknown };
  checkKeys(
    options,
    ADAPTER_OPTIONS,
    "tfOptimizer",
    (lr) => lrCall(lr, typeof name === "string" && /^\w+$/.test(name) ? name : undefined),
    (key) =>
      factoryOptionHintOf(optimizer.settings, key, (call) => `tfOptimizer(${call})`) ||
      deviceHint(key),
  );
  for (const key of ADAPTER_OPTIONS) {
    if (options[key] !== undefined && typeof options[key] !== "boolean") {
      throw optionError(key, "a boolean", options[key], false);
    }
  }
  return { strict: options.strict ?? false, warnOnSkip: options.warnOnSkip ?? true };
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
 * rate, or a TensorFlow.js optimizer (`tfOptimizer(tf.train.adam(1e-3))`), says which call to
 * write (for tfjs's Adam, SGD and momentum, this library's of the same rule); a Promise, to
 * await it.
 */
function notAnOptimizerHint(value: unknown): string {
  if (typeof value === "number") return ` (pass a learning rate as ${lrCall(value)})`;
  if (typeof value === "function") return factoryHint(value);
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
 * The adapter's call with a learning rate `lr` (of the factory `factory`, by default adam), as a
 * tfjs user who wrote `tf.train.adam(lr)` means it.
 */
function lrCall(lr: number, factory = "adam"): string {
  return `tfOptimizer(${factory}({ lr: ${lr} }))`;
}
