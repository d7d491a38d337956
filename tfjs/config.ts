/**
 * The adapter's tfjs serialization config (`getConfig`/`fromConfig`, the `config` of a saved
 * model's `optimizer_config`): the library optimizer's settings as this library's checkpoints
 * store them (core/checkpoint.ts's `storeSettings`/`restoreSettings`), as readable JSON, and the
 * adapter's own options.
 *
 * tfjs-layers 4.22 rewrites a saved model's training config when it loads it
 * (`convertPythonicToTs`): every object key and every string value that holds a `_` is turned
 * to camelCase (`dense_Dense1/kernel` → `denseDense1/kernel`), except a string under a key
 * `name`, which it keeps as it is; numbers, booleans and `null` are kept. So this config holds
 * no key and no string with a `_` (the library's option names and values are camelCase), and
 * holds each variable name as `{ name }`. (0.1.0 wrote the settings as base64 JSON instead, for
 * the same reason; such configs still load.)
 *
 * @module
 */
import type * as tf from "@tensorflow/tfjs-core";
import { restoreSettings, type StoredSettings, storeSettings } from "../core/checkpoint.ts";
import type { BackendChoice, StatesFormat } from "../base/options.ts";
import type { Settings } from "../base/settings.ts";
import { CheckpointError } from "../base/safetensors.ts";
import { originOf, remember } from "../core/origins.ts";
import { holdingLearningRate, READ_ONLY_SCHEDULE } from "../core/options.ts";
import { baseName } from "./kept.ts";
import { described } from "../base/_errors.ts";
import {
  type AdapterOptions,
  adapterOptions,
  MISSING_SCHEDULE,
  type TfOptimizerOptions,
} from "./options.ts";
import { decodeUtf8 } from "../base/_utf8.ts";
import { decodeBase64 as base64Bytes } from "../base/_base64.ts";
import { threadsRunHere } from "../cpu/threaded_wasm_backend.ts";

/** The `format` of the config. */
const CONFIG_FORMAT = "radam.tfjs";
/** The `version` of the config this code writes (0.1.0's, base64, had none: version 1). */
const CONFIG_VERSION = 2;

/**
 * A JSON value, as a saved model's config holds them.
 *
 * @example
 * ```ts
 * import type { JsonValue } from "@optim/radam/tfjs";
 *
 * const value: JsonValue = { betas: [0.9, 0.999], lookahead: { k: 6, alpha: 0.5 } };
 * ```
 */
export type JsonValue = string | number | boolean | null | JsonValue[] | {
  [key: string]: JsonValue;
};

/**
 * What {@linkcode TfOptimizer.getConfig} writes (the `config` of a saved model's
 * `optimizer_config`, in `model.json`, under `class_name` `"RadamTfOptimizer"`): readable JSON
 * that tfjs-layers loads unchanged.
 *
 * @example
 * ```ts
 * import { adam } from "@optim/radam";
 * import { tfOptimizer, type TfOptimizerConfig } from "@optim/radam/tfjs";
 *
 * const config: TfOptimizerConfig = tfOptimizer(adam({ lr: 1e-3 })).getConfig();
 * console.log(config.optimizer, config.settings.hyperparameters.lr); // "adam" 0.001
 * ```
 */
export type TfOptimizerConfig = {
  /** `"radam.tfjs"`. */
  format: string;
  /** `2` (0.1.0 wrote none, and `settings` as base64 JSON: such configs load too). */
  version: number;
  /** The library optimizer's name, e.g. `"ranger"` or `"lookahead(adam)"`. */
  optimizer: string;
  /** The settings. */
  settings: {
    /**
     * The options that rebuild the optimizer through its factory, as a checkpoint's
     * `hyperparameters` (`lr` `null` when it was a schedule).
     */
    hyperparameters: { [key: string]: JsonValue };
    /** Whether the learning rate was a schedule (give it again with `setLearningRate`). */
    lrSchedule: boolean;
    /** Options `backend`, `threads`, `threadThreshold`. */
    backend: string;
    threads: number;
    threadThreshold: number;
    /** Option `states`: `"32bit"` or `"8bit"` (absent in configs written before 0.2.0: 32-bit). */
    states?: string;
    /** The adapter's options `strict` and `warnOnSkip`. */
    strict: boolean;
    warnOnSkip: boolean;
    /** The adapter's option `gradientAccumulationSteps`, where not 1 (older configs: absent). */
    gradientAccumulationSteps?: number;
    /** The adapter's option `ema` with its defaults, where set (older configs: absent). */
    ema?: { momentum: number; overwriteFrequency?: number };
    /**
     * With parameter groups: each variable's group (0 for none, else 1 + its index in
     * `hyperparameters.groups`), the variables in the optimizer's order.
     */
    tensors?: { name: string; group: number }[];
  };
};

/** The config of an optimizer of `settings` over variables `names` (needed with groups). */
export function writeConfig(
  settings: Settings,
  names: readonly string[],
  options: AdapterOptions,
): TfOptimizerConfig {
  const stored = storeSettings(settings, names);
  const tensors = stored.tensorOrder?.map((name, i) => ({
    name,
    group: stored.tensorGroups![i],
  }));
  return {
    format: CONFIG_FORMAT,
    version: CONFIG_VERSION,
    optimizer: stored.optimizer,
    settings: {
      // (As JSON: nothing tfjs-layers cannot read, such as an undefined, gets in.)
      hyperparameters: JSON.parse(JSON.stringify(stored.hyperparameters)),
      lrSchedule: stored.lrSchedule,
      backend: settings.run.backend,
      threads: settings.run.threads,
      threadThreshold: settings.run.threadThreshold,
      states: settings.run.states,
      strict: options.strict,
      warnOnSkip: options.warnOnSkip,
      ...(options.gradientAccumulationSteps === 1
        ? {}
        : { gradientAccumulationSteps: options.gradientAccumulationSteps }),
      ...(options.ema === undefined ? {} : { ema: { ...options.ema } }),
      ...(tensors === undefined ? {} : { tensors }),
    },
  };
}

/**
 * The stored option `threads`, or 1 where threads cannot run here (a model saved from a page that
 * is cross-origin isolated, loaded in one that is not, or under a Node before 20.16): threads are
 * how a state runs, not what it computes (the bits are those of one thread), and the code loading
 * a model cannot change a setting that comes from its `model.json`.
 */
function runnableThreads(threads: unknown): number {
  return typeof threads === "number" && threads > 1 && !threadsRunHere() ? 1 : threads as number;
}

/**
 * The settings and options of a config {@linkcode writeConfig} wrote (or 0.1.0's), as tfjs gives
 * it to `fromConfig` (with its own `customObjects` added). A config of something else is refused
 * with a TypeError; invalid settings with a `CheckpointError` saying what is wrong.
 */
export function readConfig(
  config: tf.serialization.ConfigDict,
): { settings: Settings; options: AdapterOptions } {
  if (config.format !== CONFIG_FORMAT || typeof config.optimizer !== "string") {
    throw new TypeError(
      `Not a config of this library's tfjs optimizer: format ${JSON.stringify(config.format)}`,
    );
  }
  if (config.version !== undefined && config.version !== CONFIG_VERSION) {
    throw new TypeError(
      `The optimizer config is version ${
        JSON.stringify(config.version)
      }; this version of the library reads ${CONFIG_VERSION} (and 0.1.0's, which has none)`,
    );
  }
  const s = typeof config.settings === "string"
    ? decodeBase64(config.settings)
    : objectOf(config.settings, "settings");
  const stored: StoredSettings = {
    optimizer: config.optimizer,
    hyperparameters: s.hyperparameters as StoredSettings["hyperparameters"],
    lrSchedule: s.lrSchedule === true,
    ...(typeof config.settings === "string" ? legacyTensors(s) : tensorsOf(s.tensors)),
  };
  let settings: Settings;
  try {
    settings = restoreSettings(stored, {
      backend: s.backend as BackendChoice,
      threads: runnableThreads(s.threads),
      threadThreshold: s.threadThreshold as number,
      states: (s.states ?? "32bit") as StatesFormat,
      ...(s.lrSchedule === true ? { lr: READ_ONLY_SCHEDULE } : {}),
    });
    // (Held as the stand-in, which no option takes: read with a schedule, as loadState is.)
    if (s.lrSchedule === true) settings = holdingLearningRate(settings, MISSING_SCHEDULE);
  } catch (e) {
    if (!(e instanceof CheckpointError)) throw e;
    throw new CheckpointError(`The saved RadamTfOptimizer config is invalid: ${e.message}`);
  }
  let options: AdapterOptions;
  try {
    options = adapterOptions({
      strict: s.strict === true,
      warnOnSkip: s.warnOnSkip !== false,
      gradientAccumulationSteps: s.gradientAccumulationSteps as number | undefined,
      ema: s.ema as TfOptimizerOptions["ema"],
    });
  } catch (e) {
    if (!(e instanceof TypeError || e instanceof RangeError)) throw e;
    throw new CheckpointError(`The saved RadamTfOptimizer config is invalid: ${e.message}`);
  }
  return { settings: loadedNames(settings, stored.tensorOrder ?? []), options };
}

/**
 * Restored groups hold the saved variables' names, and tfjs-layers names a loaded model's
 * variables `<name>_<n>` where `<name>` was taken before in the process (the saved model still
 * alive, or built or loaded earlier), and a saved model's names may carry such a suffix too: a
 * variable whose name was not saved takes the group of the saved names of its base name (where
 * they are all in one).
 */
function loadedNames(settings: Settings, saved: readonly string[]): Settings {
  if (settings.loop.groups.length === 0) return settings;
  const names = new Set(saved);
  const byBase = new Map<string, string[]>();
  for (const name of saved) {
    const base = baseName(name);
    byBase.set(base, [...byBase.get(base) ?? [], name]);
  }
  const groups = Object.freeze(settings.loop.groups.map((g) => {
    const match = g.match as (name: string) => boolean; // (restored: a function of the map)
    const ofBase = (name: string) => byBase.get(baseName(name))?.every(match) === true;
    return Object.freeze({
      ...g,
      match: (name: string) => names.has(name) ? match(name) : ofBase(name),
    });
  }));
  const copy = Object.freeze({ ...settings, loop: Object.freeze({ ...settings.loop, groups }) });
  return remember(copy, originOf(settings));
}

/** `value` as an object; a TypeError naming the config's `key` otherwise. */
function objectOf(value: unknown, key: string): Record<string, unknown> {
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new TypeError(
      `Expected the optimizer config's ${key} to be an object, got ${described(value)}`,
    );
  }
  return value as Record<string, unknown>;
}

/** The tensor → group map of a config's `tensors` (absent without groups). */
function tensorsOf(
  tensors: unknown,
): { tensorOrder?: string[]; tensorGroups?: number[] } {
  if (tensors === undefined) return {};
  if (
    !Array.isArray(tensors) ||
    !tensors.every((t) => typeof t?.name === "string" && Number.isInteger(t?.group))
  ) {
    throw new TypeError(
      "Expected the optimizer config's settings.tensors to be an array of { name, group }",
    );
  }
  return {
    tensorOrder: tensors.map((t) => t.name),
    tensorGroups: tensors.map((t) => t.group),
  };
}

/** The tensor → group map of a 0.1.0 config (`tensorOrder`, `tensorGroups`). */
function legacyTensors(s: Record<string, unknown>): Partial<StoredSettings> {
  return s.tensorOrder === undefined ? {} : {
    tensorOrder: s.tensorOrder as string[],
    tensorGroups: s.tensorGroups as number[],
  };
}

/** The settings 0.1.0 wrote: base64 of UTF-8 JSON (base64 has no `_`). */
function decodeBase64(text: string): Record<string, unknown> {
  const bytes = base64Bytes(text);
  const value = JSON.parse(decodeUtf8(bytes));
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new TypeError("Expected the optimizer config's settings to encode an object");
  }
  return value;
}
