/**
 * A checkpoint's metadata and the settings it holds: the format and version, the optimizer and
 * its options (as its schemas store them), the format of its moments, and the settings a state
 * resumes with (the metadata and the caller's `loadState` options).
 *
 * @module
 */
import { described, optionError } from "../base/_errors.ts";
import type { BackendChoice, LearningRate, StatesFormat } from "../base/options.ts";
import { checkDuplicateKeys, checkNesting, CheckpointError } from "../base/safetensors.ts";
import { checkLearningRate, checkNumber, keysOf, requiredKeys } from "../base/schema.ts";
import type { Settings } from "../base/settings.ts";
import { checkTensorNames } from "../base/tensors.ts";
import {
  BACKENDS,
  checkThreads,
  resolveLookahead,
  resolveOptions,
  RUN_OPTIONS,
  STATES,
} from "./options.ts";
import type { Origin } from "./origins.ts";
import { groupsOf } from "./plan.ts";
import REGISTRY from "./registry.ts";
import { FORMAT, FORMAT_VERSION, optionsOf } from "./checkpoint_header.ts";

export { FORMAT, FORMAT_VERSION, optionsOf };

/**
 * Options of `loadState`.
 *
 * @example
 * ```ts
 * import { type LoadOptions, loadState, radam, saveState } from "@optim/radam";
 * import assert from "node:assert/strict";
 *
 * const bytes = await saveState(await radam().init({ w: new Float32Array(2) }));
 * const options: LoadOptions = { backend: "js", lr: 1e-4 };
 * assert.equal((await loadState(bytes, options)).backend, "js");
 * ```
 */
export interface LoadOptions {
  /** Backend to resume on. Default `"auto"`. Any backend can load any backend's checkpoint. */
  backend?: BackendChoice;
  /**
   * Learning rate or schedule to resume with. Required when the checkpoint was saved with a
   * schedule (functions cannot be stored); when given, it replaces a stored constant.
   */
  lr?: LearningRate;
  /**
   * Threads the resumed state steps on (wasm only; see the optimizer option `threads`). Not
   * stored in checkpoints: a state saved on any number of threads resumes on any number.
   */
  threads?: number;
  /** See the optimizer option `threadThreshold`. */
  threadThreshold?: number;
  /**
   * How the resumed state holds its moments (see the optimizer option `states`). Default: as the
   * checkpoint holds them (its `states` metadata), so that a resume is exact. Another format
   * converts them, which is lossy one way: a checkpoint of 32-bit moments loaded with
   * `states: "8bit"` encodes each moment to its nearest 8-bit code; one of 8-bit moments loaded
   * with `states: "32bit"` decodes them (exactly the values the codes hold, which were rounded
   * when they were encoded).
   */
  states?: StatesFormat;
  /**
   * The GPU device to resume on: with backend `"auto"` (or `"webgpu"`), the state is restored
   * into GPU buffers on this device.
   */
  device?: GPUDevice;
}

export function meta(metadata: Readonly<Record<string, string>>, key: string): string {
  const value = Object.hasOwn(metadata, key) ? metadata[key] : undefined;
  if (value === undefined) throw new CheckpointError(`Checkpoint metadata lacks ${key}`);
  return value;
}

export function parseCount(metadata: Readonly<Record<string, string>>, key: string): number {
  const text = meta(metadata, key);
  const value = Number(text);
  if (!/^(0|[1-9][0-9]*)$/.test(text) || !Number.isSafeInteger(value)) {
    throw new CheckpointError(
      `Checkpoint metadata ${key} must be a non-negative integer, got ${JSON.stringify(text)}`,
    );
  }
  return value;
}

/**
 * The JSON a metadata string holds, parsed: a CheckpointError naming `key` where it is absent, is
 * not JSON, has a key twice, or nests deeper or has more keys than a valid file's (refused before
 * it is parsed: the header's own checks do not see into its strings).
 */
export function parseJsonMeta(metadata: Readonly<Record<string, string>>, key: string): unknown {
  const text = meta(metadata, key);
  checkNesting(text, `Checkpoint metadata ${key}`);
  try {
    const value = JSON.parse(text);
    checkDuplicateKeys(text, `Checkpoint metadata ${key}`);
    return value;
  } catch (e) {
    if (e instanceof CheckpointError) throw e;
    throw new CheckpointError(`Checkpoint metadata ${key} is not valid JSON`);
  }
}

/** The state's settings, from the metadata and the caller's options. */
export function configOf(
  metadata: Readonly<Record<string, string>>,
  options: LoadOptions,
): Settings {
  return readConfig(metadata, options).config;
}

/**
 * The state's settings ({@linkcode configOf}), and the metadata's `tensor_order`
 * ({@linkcode tensorOrder}) read once: with parameter groups the settings read it (their map
 * follows it), else `names` reads it when called, its errors then thrown.
 */
export function readConfig(
  metadata: Readonly<Record<string, string>>,
  options: LoadOptions,
): { config: Settings; names: () => string[] } {
  let order: string[] | undefined;
  const names = () => order ??= tensorOrder(metadata);
  return { config: settingsOf(metadata, options, names), names };
}

/** {@linkcode configOf}, with `names` giving the metadata's `tensor_order` (groups read it). */
function settingsOf(
  metadata: Readonly<Record<string, string>>,
  options: LoadOptions,
  names: () => string[],
): Settings {
  checkFormat(metadata);
  const fullName = meta(metadata, "optimizer");
  const wrapped = /^lookahead\((.*)\)$/.exec(fullName);
  const name = wrapped ? wrapped[1] : fullName;
  const optimizers: Readonly<Record<string, Origin>> = REGISTRY.optimizers;
  const origin = Object.hasOwn(optimizers, name) ? optimizers[name] : undefined;
  if (origin === undefined) {
    throw new CheckpointError(
      `Checkpoint of an unknown optimizer ${JSON.stringify(fullName)}; expected one of ${
        Object.keys(optimizers).join(", ")
      }`,
    );
  }
  const hyper = parseJsonMeta(metadata, "hyperparameters");
  if (typeof hyper !== "object" || hyper === null || Array.isArray(hyper)) {
    throw new CheckpointError("Checkpoint metadata hyperparameters must be a JSON object");
  }
  const schedule = meta(metadata, "lr_schedule");
  if (schedule !== "true" && schedule !== "false") {
    throw new CheckpointError('Checkpoint metadata lr_schedule must be "true" or "false"');
  }
  const stored = hyper as Record<string, unknown>;
  // How a state is held and runs is the caller's (loadState's options), never the file's: a
  // file holding threads would make loadState start workers.
  const run = keysOf(RUN_OPTIONS).find((key) => Object.hasOwn(stored, key));
  if (run !== undefined) {
    throw new CheckpointError(
      `Checkpoint hyperparameters hold ${run}, which checkpoints do not store ` +
        `(it is an option of loadState)`,
    );
  }
  if (schedule === "true" && options.lr === undefined) {
    throw new TypeError(
      "This checkpoint was saved with a learning-rate schedule, which cannot be stored; " +
        "pass it again as loadState(bytes, { lr })",
    );
  }
  checkLoadOptions(options);
  for (const key of requiredKeys(origin.options)) {
    if (!Object.hasOwn(stored, key)) {
      throw new CheckpointError(`Checkpoint hyperparameters lack ${key}`);
    }
  }
  if (schedule === "false" && typeof stored.lr !== "number") {
    throw new CheckpointError("Checkpoint hyperparameters lr must be a number");
  }
  const lr = options.lr === undefined ? stored.lr : checkLearningRate(options.lr);
  const states = options.states ?? statesOf(metadata);
  const { lookahead, groups, ...rest } = stored;
  // Ranger always has LookAhead (0.1.0 stored it as "lookahead(ranger)").
  const slow = wrapped !== null || origin.lookahead;
  checkStoredParts(metadata, rest, lookahead, groups, slow);
  try {
    const settings = resolveOptions(origin, {
      ...rest,
      ...(groups === undefined ? {} : { groups: groupsFrom(groups, metadata, names) }),
      ...(origin.lookahead ? lookahead as Record<string, unknown> : {}),
      lr,
      backend: options.backend ?? "auto",
      ...(options.threads === undefined ? {} : { threads: options.threads }),
      ...(options.threadThreshold === undefined
        ? {}
        : { threadThreshold: options.threadThreshold }),
      states,
    });
    return slow && !origin.lookahead ? resolveLookahead(settings, lookahead) : settings;
  } catch (e) {
    if (e instanceof CheckpointError) throw e;
    // The lr given to loadState, too large for a stored group's lrScale: the caller's mistake.
    if (options.lr !== undefined && /^Option lr /.test((e as Error).message)) throw e;
    throw new CheckpointError(
      `Checkpoint hyperparameters are invalid: ${(e as Error).message}`,
    );
  }
}

/**
 * Throws unless LookAhead's settings and the parameter groups are where and as checkpoints store
 * them: `lookahead` exactly where the optimizer has LookAhead, `k` and `alpha` in it alone, and
 * `groups` wherever `tensor_groups` maps tensors to them.
 */
function checkStoredParts(
  metadata: Readonly<Record<string, string>>,
  rest: Readonly<Record<string, unknown>>,
  lookahead: unknown,
  groups: unknown,
  slow: boolean,
): void {
  if (slow) checkStoredLookahead(lookahead);
  if (!slow && lookahead !== undefined) {
    throw new CheckpointError("Checkpoint hyperparameters have lookahead, but the optimizer not");
  }
  // Ranger's factory takes k and alpha beside its other options; checkpoints store them in
  // lookahead alone (one given twice would have been read from lookahead, the other ignored).
  const loose = ["k", "alpha"].find((key) => Object.hasOwn(rest, key));
  if (loose !== undefined) {
    throw new CheckpointError(
      `Checkpoint hyperparameters hold ${loose} outside lookahead, where checkpoints store it`,
    );
  }
  // A map of tensors to groups says the file had groups: their settings are not to be lost.
  if (groups === undefined && Object.hasOwn(metadata, "tensor_groups")) {
    throw new CheckpointError(
      "Checkpoint metadata has tensor_groups, but its hyperparameters lack groups",
    );
  }
}

/**
 * Throws unless `lookahead` is LookAhead's settings as checkpoints store them: `k` and `alpha`,
 * nothing else. (Ranger's are spread into its options, where another key would be taken as an
 * option of the file's: `threads` would start workers; and a setting left out would be
 * defaulted, not the one the state trained with.)
 */
function checkStoredLookahead(lookahead: unknown): void {
  if (typeof lookahead !== "object" || lookahead === null || Array.isArray(lookahead)) {
    throw new CheckpointError("Checkpoint hyperparameters lack lookahead");
  }
  checkExactKeys(lookahead as Record<string, unknown>, ["k", "alpha"], "lookahead");
}

/**
 * Throws unless the stored settings `value` (at `where` in the hyperparameters) hold exactly
 * `keys`: checkpoints store them resolved, so one left out would be defaulted on the way back,
 * and another would be taken as an option of the file's.
 */
function checkExactKeys(
  value: Readonly<Record<string, unknown>>,
  keys: readonly string[],
  where: string,
): void {
  const held = Object.keys(value);
  const other = held.find((key) => !keys.includes(key));
  const missing = keys.find((key) => !Object.hasOwn(value, key));
  if (other === undefined && missing === undefined) return;
  throw new CheckpointError(
    `Checkpoint hyperparameters ${where} must hold ${keys.join(" and ")} only: it ${
      other !== undefined ? `holds ${other}` : `lacks ${missing}`
    }, got ${held.join(", ") || "none"}`,
  );
}

/**
 * The format of the moments the metadata says the checkpoint holds (`states`; `"32bit"` where
 * absent, as in checkpoints older than the option).
 */
export function statesOf(metadata: Readonly<Record<string, string>>): StatesFormat {
  if (!Object.hasOwn(metadata, "states")) return "32bit";
  const states = metadata.states;
  if (!STATES.includes(states)) {
    throw new CheckpointError(
      `Checkpoint metadata states must be one of ${STATES.join(", ")}, got ${
        JSON.stringify(states)
      }`,
    );
  }
  return states as StatesFormat;
}

/** Throws a CheckpointError unless the metadata names this format and version. */
function checkFormat(metadata: Readonly<Record<string, string>>): void {
  if (!Object.hasOwn(metadata, "format")) {
    // Most often a safetensors file of a model's weights alone, with no metadata.
    throw new CheckpointError(
      `Not an optimizer checkpoint of this library: its metadata lacks format (saveState writes ${
        JSON.stringify(FORMAT)
      })`,
    );
  }
  const format = meta(metadata, "format");
  if (format !== FORMAT) {
    throw new CheckpointError(
      `Not an optimizer checkpoint of this library: format ${JSON.stringify(format)}`,
    );
  }
  const version = meta(metadata, "format_version");
  if (version !== FORMAT_VERSION) {
    throw new CheckpointError(
      `Checkpoint format version ${
        JSON.stringify(version)
      } is not supported; expected ${FORMAT_VERSION}`,
    );
  }
}

/** Validates the options of `loadState` that are not the checkpoint's (backend, threads, …). */
function checkLoadOptions(options: LoadOptions): void {
  if (options.backend !== undefined && !BACKENDS.includes(options.backend)) {
    throw new RangeError(
      `Option backend must be one of ${BACKENDS.join(", ")}, got ${described(options.backend)}`,
    );
  }
  if (options.states !== undefined && !STATES.includes(options.states)) {
    const states: unknown = options.states;
    throw optionError("states", `one of ${STATES.join(", ")}`, states, typeof states === "string");
  }
  checkThreads(options.threads, options.backend ?? "auto");
  if (options.threadThreshold !== undefined) {
    checkNumber("threadThreshold", options.threadThreshold, 0, Infinity, true);
  }
}

/**
 * An optimizer's settings as checkpoints store them, as plain values: what the metadata entries
 * `optimizer`, `hyperparameters`, `lr_schedule`, `tensor_order` and `tensor_groups` hold (before
 * JSON). For a format of another library that carries the settings beside its own data (the
 * TensorFlow.js adapter's model config): {@linkcode storeSettings} and
 * {@linkcode restoreSettings} are the way there and back, with a checkpoint's validation.
 */
export interface StoredSettings {
  /** The optimizer's name (`optimizer`). */
  readonly optimizer: string;
  /** The options that rebuild it through its factory (`hyperparameters`; see `optionsOf`). */
  readonly hyperparameters: Readonly<Record<string, unknown>>;
  /** Whether `lr` was a schedule, stored as `null` (`lr_schedule`). */
  readonly lrSchedule: boolean;
  /** With parameter groups: the tensors' names (`tensor_order`)... */
  readonly tensorOrder?: readonly string[];
  /** ...and the group of each, 0 for none, else 1 + the group's index (`tensor_groups`). */
  readonly tensorGroups?: readonly number[];
}

/**
 * The stored form of `config`; `names` are its tensors' names (read only with parameter groups,
 * whose tensor → group map is stored).
 */
export function storeSettings(config: Settings, names: readonly string[]): StoredSettings {
  return {
    optimizer: config.name,
    hyperparameters: optionsOf(config),
    lrSchedule: typeof config.hyperparameters.lr === "function",
    ...(config.loop.groups.length > 0
      ? { tensorOrder: [...names], tensorGroups: groupsOf(config, names) }
      : {}),
  };
}

/**
 * The settings of a stored form, checked as a checkpoint's metadata is (a
 * {@linkcode CheckpointError} for a bad one, a TypeError for a schedule not given again).
 */
export function restoreSettings(stored: StoredSettings, options: LoadOptions): Settings {
  const metadata: Record<string, string> = {
    format: FORMAT,
    format_version: FORMAT_VERSION,
    optimizer: String(stored.optimizer),
    hyperparameters: JSON.stringify(stored.hyperparameters) ?? "null",
    lr_schedule: String(stored.lrSchedule),
  };
  if (stored.tensorOrder !== undefined) metadata.tensor_order = JSON.stringify(stored.tensorOrder);
  if (stored.tensorGroups !== undefined) {
    metadata.tensor_groups = JSON.stringify(stored.tensorGroups);
  }
  return configOf(metadata, options);
}

/** The metadata's `tensor_order`: distinct names a record can hold. */
export function tensorOrder(metadata: Readonly<Record<string, string>>): string[] {
  const order = parseJsonMeta(metadata, "tensor_order");
  if (!Array.isArray(order) || order.length === 0 || !order.every((n) => typeof n === "string")) {
    throw new CheckpointError(
      "Checkpoint metadata tensor_order must be a non-empty array of names",
    );
  }
  const names = order as string[];
  try {
    checkTensorNames(names);
  } catch (error) {
    throw new CheckpointError(`Checkpoint metadata tensor_order: ${(error as Error).message}`);
  }
  if (new Set(names).size !== names.length) {
    throw new CheckpointError("Checkpoint metadata tensor_order names a tensor twice");
  }
  return names;
}

/**
 * Parameter groups from their stored settings and the stored tensor → group map (`names`: the
 * tensor order it follows): group i matches exactly the tensors the map puts in it.
 */
function groupsFrom(
  groups: unknown,
  metadata: Readonly<Record<string, string>>,
  names: () => string[],
): { match: (name: string) => boolean; lrScale: unknown; weightDecay: unknown }[] {
  if (!Array.isArray(groups) || !groups.every((g) => typeof g === "object" && g !== null)) {
    throw new CheckpointError("Checkpoint hyperparameters groups must be an array of objects");
  }
  // Stored resolved: each group's two settings, neither defaulted on the way back.
  groups.forEach((g: Record<string, unknown>, i) =>
    checkExactKeys(g, ["lrScale", "weightDecay"], `groups[${i}]`)
  );
  // (tensor_order checked first: a name given twice is its fault, not the map's.)
  const order = names();
  const map = parseJsonMeta(metadata, "tensor_groups");
  if (
    !Array.isArray(map) || map.length !== order.length ||
    !map.every((g) => Number.isInteger(g) && g >= 0 && g <= groups.length)
  ) {
    throw new CheckpointError(
      `Checkpoint metadata tensor_groups must give each tensor a group from 0 to ${groups.length}`,
    );
  }
  const groupOf = new Map(order.map((name, i) => [name, map[i] as number]));
  return groups.map((g, i) => ({
    match: (name: string) => groupOf.get(name) === i + 1,
    lrScale: (g as Record<string, unknown>).lrScale,
    weightDecay: (g as Record<string, unknown>).weightDecay,
  }));
}
