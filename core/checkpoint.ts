/**
 * Checkpoints: an optimizer state written as a safetensors file and read back, on any backend.
 *
 * Tensors, all F32, named as PyTorch users know them: each parameter under its own name, and
 * `<name>.<moment>` for each moment its rule keeps (`exp_avg`, `exp_avg_sq` for RAdam/Adam,
 * `exp_avg` for Lion), `<name>.slow` for LookAhead's slow weights. `__metadata__` (strings
 * only) holds:
 *
 * - `format`: `"radam.checkpoint"`, `format_version`: `"1"`
 * - `optimizer`: a name of the registry (core/registry.ts: `"radam"`, `"adam"`, `"adamw"`,
 *   `"lion"`, `"ranger"`), or `"lookahead(<name>)"` (`"lookahead(ranger)"`, as 0.1.0 named
 *   Ranger, reads as `"ranger"`)
 * - `hyperparameters`: JSON of the optimizer's options (as passed to its factory), as the
 *   schemas store them (the rule's, then the training-loop features'), with `lr` `null` when it
 *   was a schedule, and `lr_schedule`: `"true"` or `"false"`
 * - `step`, `skipped_steps`: decimal integers
 * - `tensor_order`: JSON array of the parameter names in arena order
 *
 * Loading validates the whole file before allocating the arena: see {@linkcode loadCheckpoint}.
 *
 * @module
 */
import { type ArenaLayout, EXP_AVG, PARAMS, SLOW } from "../base/arena.ts";
import { described } from "../base/_errors.ts";
import type { AnyBackend } from "../base/backend.ts";
import type { BackendChoice, LearningRate } from "../base/options.ts";
import {
  checkDuplicateKeys,
  CheckpointError,
  parseSafetensors,
  type TensorOut,
  writeSafetensors,
} from "../base/safetensors.ts";
import { checkLearningRate, checkNumber, requiredKeys, storeSchema } from "../base/schema.ts";
import type { Settings } from "../base/settings.ts";
import { checkTensorNames } from "../base/tensors.ts";
import {
  BACKENDS,
  checkThreads,
  LOOP_OPTIONS,
  resolveLookahead,
  resolveOptions,
} from "./options.ts";
import { momentsOf, type Origin, originOf } from "./origins.ts";
import REGISTRY from "./registry.ts";
import { groupsOf, type OptimizerState, planFor, restoreState, stateInternals } from "./state.ts";

/** Value of the `format` metadata. */
export const FORMAT = "radam.checkpoint";
/** Value of the `format_version` metadata this code writes and reads. */
export const FORMAT_VERSION = "1";

/**
 * The per-parameter tensors of a checkpoint: name suffix and arena section (the parameters, the
 * rule's moments, LookAhead's slow weights where the configuration has them).
 */
interface StateTensor {
  readonly suffix: string;
  readonly section: number;
  /** Values must be ≥ 0 (second moments). */
  readonly nonNegative: boolean;
}

function stateTensors(config: Settings): readonly StateTensor[] {
  const kinds: StateTensor[] = [{ suffix: "", section: PARAMS, nonNegative: false }];
  momentsOf(config).forEach((m, k) =>
    kinds.push({ suffix: `.${m.name}`, section: EXP_AVG + k, nonNegative: m.nonNegative })
  );
  if (config.lookahead) kinds.push({ suffix: ".slow", section: SLOW, nonNegative: false });
  return kinds;
}

/** The options that rebuild `config` through its factory (schedules become `null`). */
export function optionsOf(config: Settings<unknown>): Record<string, unknown> {
  const options: Record<string, unknown> = {
    ...storeSchema(originOf(config).options, config.hyperparameters as Record<string, unknown>),
    ...storeSchema(LOOP_OPTIONS, config.loop as unknown as Readonly<Record<string, unknown>>),
  };
  // Groups are stored by their settings; which tensor is in which goes in `tensor_groups`.
  const groups = config.loop.groups;
  if (groups.length > 0) {
    options.groups = groups.map((g) => ({ lrScale: g.lrScale, weightDecay: g.weightDecay }));
  }
  if (config.lookahead) options.lookahead = { ...config.lookahead };
  return options;
}

/** Writes a state as safetensors bytes; see `saveState` in mod.ts. */
export async function saveCheckpoint(state: OptimizerState<unknown>): Promise<Uint8Array> {
  // Where the device counts the steps, wait until it has reported every step submitted.
  const first = stateInternals(state).backend;
  if (first.kind !== "host") await first.counter.settle();
  const { config, backend, steps, skipped, shapes } = stateInternals(state);
  const layout = backend.layout;
  const kinds = stateTensors(config);
  // Host arenas are read in place (the file is then the only copy); others are read back, every
  // read started before the first await so that they all see the same step. No await follows
  // until the file is written, so the views cannot change underneath.
  const sections = backend.kind === "host"
    ? kinds.map((k) => backend.viewSection(k.section))
    : await Promise.all(kinds.map((k) => backend.readSection(k.section)));
  const tensors: TensorOut[] = [];
  for (let i = 0; i < layout.names.length; i++) {
    const name = layout.names[i];
    kinds.forEach((k, j) => {
      const data = sections[j][name];
      const bad = firstBadValue(data, k.nonNegative);
      if (bad >= 0) {
        // It would be refused on load: say so now, while the run can still be inspected.
        throw new RangeError(
          `Cannot checkpoint: ${JSON.stringify(name + k.suffix)}[${bad}] is ${data[bad]}; ` +
            `checkpoints hold only finite values${k.nonNegative ? " (≥ 0)" : ""}`,
        );
      }
      tensors.push({ name: name + k.suffix, shape: [...shapes[i]], data });
    });
  }
  const metadata = {
    format: FORMAT,
    format_version: FORMAT_VERSION,
    optimizer: config.name,
    hyperparameters: JSON.stringify(optionsOf(config)),
    lr_schedule: String(typeof config.hyperparameters.lr === "function"),
    step: String(steps),
    skipped_steps: String(skipped),
    tensor_order: JSON.stringify(layout.names),
    ...(config.loop.groups.length > 0
      ? { tensor_groups: JSON.stringify(groupsOf(config, layout.names)) }
      : {}),
  };
  return writeSafetensors(tensors, metadata);
}

/**
 * Options of `loadState`.
 *
 * @example
 * ```ts
 * import { type LoadOptions, loadState, radam, saveState } from "../mod.ts";
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
   * The GPU device to resume on: with backend `"auto"` (or `"webgpu"`), the state is restored
   * into GPU buffers on this device.
   */
  device?: GPUDevice;
}

/** Makes the backend a state resumes on. */
export type BackendMaker = (
  config: Settings,
) => (layout: ArenaLayout) => Promise<AnyBackend>;

function meta(metadata: Readonly<Record<string, string>>, key: string): string {
  const value = Object.hasOwn(metadata, key) ? metadata[key] : undefined;
  if (value === undefined) throw new CheckpointError(`Checkpoint metadata lacks ${key}`);
  return value;
}

function parseCount(metadata: Readonly<Record<string, string>>, key: string): number {
  const text = meta(metadata, key);
  const value = Number(text);
  if (!/^(0|[1-9][0-9]*)$/.test(text) || !Number.isSafeInteger(value)) {
    throw new CheckpointError(
      `Checkpoint metadata ${key} must be a non-negative integer, got ${JSON.stringify(text)}`,
    );
  }
  return value;
}

function parseJsonMeta(metadata: Readonly<Record<string, string>>, key: string): unknown {
  const text = meta(metadata, key);
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
  const { lookahead, groups, ...rest } = stored;
  // Ranger always has LookAhead (0.1.0 stored it as "lookahead(ranger)").
  const slow = wrapped !== null || origin.lookahead;
  if (slow && (typeof lookahead !== "object" || lookahead === null)) {
    throw new CheckpointError("Checkpoint hyperparameters lack lookahead");
  }
  if (!slow && lookahead !== undefined) {
    throw new CheckpointError("Checkpoint hyperparameters have lookahead, but the optimizer not");
  }
  try {
    const settings = resolveOptions(origin, {
      ...rest,
      ...(groups === undefined ? {} : { groups: groupsFrom(groups, metadata) }),
      ...(origin.lookahead ? lookahead as Record<string, unknown> : {}),
      lr,
      backend: options.backend ?? "auto",
      ...(options.threads === undefined ? {} : { threads: options.threads }),
      ...(options.threadThreshold === undefined
        ? {}
        : { threadThreshold: options.threadThreshold }),
    });
    return slow && !origin.lookahead ? resolveLookahead(settings, lookahead) : settings;
  } catch (e) {
    if (e instanceof CheckpointError) throw e;
    throw new CheckpointError(
      `Checkpoint hyperparameters are invalid: ${(e as Error).message}`,
    );
  }
}

/** Throws a CheckpointError unless the metadata names this format and version. */
function checkFormat(metadata: Readonly<Record<string, string>>): void {
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

/** Validates the options of `loadState` that are not the checkpoint's (backend, threads). */
function checkLoadOptions(options: LoadOptions): void {
  if (options.backend !== undefined && !BACKENDS.includes(options.backend)) {
    throw new RangeError(
      `Option backend must be one of ${BACKENDS.join(", ")}, got ${described(options.backend)}`,
    );
  }
  checkThreads(options.threads, options.backend ?? "auto");
  if (options.threadThreshold !== undefined) {
    checkNumber("threadThreshold", options.threadThreshold, 0, Infinity, true);
  }
}

/**
 * Parameter groups from their stored settings and the stored tensor → group map: group i
 * matches exactly the tensors the map puts in it.
 */
function groupsFrom(
  groups: unknown,
  metadata: Readonly<Record<string, string>>,
): { match: (name: string) => boolean; lrScale: unknown; weightDecay: unknown }[] {
  if (!Array.isArray(groups) || !groups.every((g) => typeof g === "object" && g !== null)) {
    throw new CheckpointError("Checkpoint hyperparameters groups must be an array of objects");
  }
  const order = parseJsonMeta(metadata, "tensor_order");
  const map = parseJsonMeta(metadata, "tensor_groups");
  if (
    !Array.isArray(order) || !Array.isArray(map) || map.length !== order.length ||
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

/** Index of the first non-finite element (or negative one, with `nonNegative`), or -1. */
function firstBadValue(data: Float32Array, nonNegative: boolean): number {
  if (nonNegative) {
    for (let i = 0; i < data.length; i++) {
      const x = data[i];
      if (!(x >= 0 && x !== Infinity)) return i;
    }
  } else {
    for (let i = 0; i < data.length; i++) {
      const x = data[i];
      if (x - x !== 0) return i;
    }
  }
  return -1;
}

/**
 * Reads a checkpoint into a new state on the chosen backend; see `loadState` in mod.ts.
 *
 * Everything is validated before the arena is allocated: the container (see
 * base/safetensors.ts), the metadata (format and version, optimizer, hyperparameters, step
 * counts, tensor order), that exactly the expected tensors are present with one shape per
 * parameter, and that every value is finite (second moments also ≥ 0). Damage throws a
 * {@linkcode CheckpointError}; a missing schedule a TypeError.
 */
export async function loadCheckpoint(
  bytes: Uint8Array,
  options: LoadOptions | undefined,
  makeBackend: BackendMaker,
): Promise<OptimizerState<unknown>> {
  if (options === undefined) options = {};
  if (typeof options !== "object" || options === null) {
    throw new TypeError(`Options of loadState must be an object, got ${described(options)}`);
  }
  const file = parseSafetensors(bytes);
  const { metadata } = file;
  const config = configOf(metadata, options);
  const steps = parseCount(metadata, "step");
  // Skipped steps are not counted in `step` (a skipped step leaves the count as it was).
  const skipped = parseCount(metadata, "skipped_steps");
  const names = tensorOrder(metadata);
  const kinds = stateTensors(config);
  const { lengths, shapes, data } = readTensors(bytes, file, names, kinds);
  // Everything is valid: only now allocate and fill.
  const layout = planFor(config, names, lengths);
  const backend = await makeBackend(config)(layout);
  kinds.forEach((k, j) => backend.writeSection(k.section, data[j]));
  return restoreState(config, backend, { steps, skipped, shapes });
}

/** The metadata's `tensor_order`: distinct names a record can hold. */
function tensorOrder(metadata: Readonly<Record<string, string>>): string[] {
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
 * The tensors of a parsed file, checked: exactly those of `names` and `kinds` (parameters,
 * moments, slow weights), one shape per parameter, every value valid. By kind, then name: views
 * of `bytes` where aligned (as this library writes them), else copies.
 */
function readTensors(
  bytes: Uint8Array,
  file: ReturnType<typeof parseSafetensors>,
  names: readonly string[],
  kinds: readonly StateTensor[],
): { lengths: number[]; shapes: number[][]; data: Record<string, Float32Array>[] } {
  const { tensors } = file;
  const expected = new Set(names.flatMap((n) => kinds.map((k) => n + k.suffix)));
  for (const tensorName of tensors.keys()) {
    if (!expected.has(tensorName)) {
      throw new CheckpointError(
        `Checkpoint has an unexpected tensor ${JSON.stringify(tensorName)}`,
      );
    }
  }
  if (expected.size !== names.length * kinds.length) {
    throw new CheckpointError(
      "Checkpoint metadata tensor_order has names whose tensors collide (e.g. a and a.exp_avg)",
    );
  }
  const lengths: number[] = [];
  const shapes: number[][] = [];
  // Null-prototype records: a tensor may be named "__proto__".
  const data: Record<string, Float32Array>[] = kinds.map(() => Object.create(null));
  for (const name of names) {
    const shape = tensors.get(name)?.shape.join(",");
    kinds.forEach((kind, j) => {
      const tensorName = name + kind.suffix;
      const entry = tensors.get(tensorName);
      if (entry === undefined) {
        throw new CheckpointError(`Checkpoint lacks the tensor ${JSON.stringify(tensorName)}`);
      }
      if (entry.shape.join(",") !== shape) {
        throw new CheckpointError(
          `Tensor ${JSON.stringify(tensorName)} has shape [${entry.shape.join(",")}], unlike ${
            JSON.stringify(name)
          } [${shape}]`,
        );
      }
      data[j][name] = tensorValues(bytes, file.dataStart, entry, tensorName, kind.nonNegative);
    });
    lengths.push(data[0][name].length);
    shapes.push(tensors.get(name)!.shape.slice());
  }
  return { lengths, shapes, data };
}

/** A tensor's values, checked finite (and ≥ 0 with `nonNegative`). */
function tensorValues(
  bytes: Uint8Array,
  dataStart: number,
  entry: { readonly begin: number; readonly end: number },
  tensorName: string,
  nonNegative: boolean,
): Float32Array {
  const length = (entry.end - entry.begin) / 4;
  const at = bytes.byteOffset + dataStart + entry.begin;
  // A view when aligned (as this library writes them); else one copy of the tensor.
  const values = at % 4 === 0 ? new Float32Array(bytes.buffer, at, length) : new Float32Array(
    bytes.slice(at - bytes.byteOffset, at - bytes.byteOffset + length * 4).buffer,
  );
  const bad = firstBadValue(values, nonNegative);
  if (bad >= 0) {
    throw new CheckpointError(
      `Tensor ${JSON.stringify(tensorName)}[${bad}] is ${values[bad]}; expected a finite${
        nonNegative ? " non-negative" : ""
      } number`,
    );
  }
  return values;
}
