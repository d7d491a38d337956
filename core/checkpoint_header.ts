/**
 * A checkpoint's header as a state of given settings and tensors writes it: its metadata, the
 * tensors it holds in file order, and whether it fits the cap on a header's length, which is
 * checked when a state is made (`init`, `loadState`, the TensorFlow.js adapter's first step),
 * so that a state that trains can always be saved.
 *
 * @module
 */
import type { ArenaLayout } from "../base/arena.ts";
import { blocksOf, Q8_VERSION } from "../base/q8.ts";
import { headerCap } from "../base/_json_bounds.ts";
import { headerJsonLength, paddedHeaderLength, type TensorPlan } from "../base/safetensors.ts";
import { utf8Length } from "../base/_utf8.ts";
import { storeSchema } from "../base/schema.ts";
import type { Settings } from "../base/settings.ts";
import { stateTensors } from "./checkpoint_tensors.ts";
import { LOOP_OPTIONS } from "./options.ts";
import { originOf } from "./origins.ts";
import { groupsOf, layoutIndices } from "./plan.ts";

/** Value of the `format` metadata. */
export const FORMAT = "radam.checkpoint";
/** Value of the `format_version` metadata this code writes and reads. */
export const FORMAT_VERSION = "1";

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

/** The counters, tensor order and groups a checkpoint's metadata records. */
export interface HeaderCounts {
  readonly steps: number;
  readonly skipped: number;
  /**
   * The tensors' names in the order given to `init` (or a checkpoint's), as `tensor_order`
   * holds them (default: the layout's).
   */
  readonly order?: readonly string[];
  /** Each tensor's group, in the order of `order` (with parameter groups). */
  readonly groups: readonly number[] | undefined;
  /** Whether the file holds 8-bit codes. */
  readonly codes: boolean;
}

/** The metadata of a checkpoint of a state of `config` on `layout`. */
export function checkpointMetadata(
  config: Settings<unknown>,
  layout: ArenaLayout,
  counts: HeaderCounts,
): Record<string, string> {
  return {
    format: FORMAT,
    format_version: FORMAT_VERSION,
    optimizer: config.name,
    hyperparameters: JSON.stringify(optionsOf(config)),
    lr_schedule: String(typeof (config as Settings).hyperparameters.lr === "function"),
    step: String(counts.steps),
    skipped_steps: String(counts.skipped),
    tensor_order: JSON.stringify(counts.order ?? layout.names),
    ...(counts.groups ? { tensor_groups: JSON.stringify(counts.groups) } : {}),
    states: config.run.states,
    ...(counts.codes ? { q8: Q8_VERSION } : {}),
  };
}

/**
 * The length, in bytes, of what a checkpoint's header holds of `config` alone (its metadata
 * `optimizer`, `hyperparameters`, `lr_schedule` and `states`, written as the header writes
 * them): of two settings of a state that differ in their learning rate only, the one of the
 * longer text makes the longer header, by as many bytes (the rest of the header is the same).
 *
 * @example
 * ```ts
 * import { settingsTextLength } from "./checkpoint_header.ts";
 * import { adam } from "@optim/radam";
 * import assert from "node:assert/strict";
 *
 * const short = settingsTextLength(adam({ lr: 0.5 }).settings);
 * assert.equal(settingsTextLength(adam({ lr: 0.25 }).settings), short + 1);
 * // (A schedule: lr null, one byte more than 0.5, and lr_schedule "true", one less than "false".)
 * assert.equal(settingsTextLength(adam({ lr: () => 0.5 }).settings), short);
 * ```
 */
export function settingsTextLength(config: Settings<unknown>): number {
  const schedule = typeof (config as Settings).hyperparameters.lr === "function";
  return utf8Length(JSON.stringify({
    optimizer: config.name,
    hyperparameters: JSON.stringify(optionsOf(config)),
    lr_schedule: String(schedule),
    states: config.run.states,
  }));
}

/** A tensor of a checkpoint, planned: where its data comes from (see `checkpointTensors`). */
export interface PlannedTensor extends TensorPlan {
  /** The tensor of the layout it is of. */
  readonly index: number;
  /** Which of the rule's state tensors (`stateTensors`) it holds. */
  readonly kind: number;
  /** Its f32 values, or an 8-bit moment's codes or block scales. */
  readonly part: "values" | "codes" | "scales";
}

/**
 * The tensors a checkpoint of a state of `config` on `layout` holds, in file order (the F32
 * ones, then the 8-bit codes, each parameter's in `order`: its `tensor_order`, default the
 * layout's), without their data; `shapes` in layout order. `saveState` writes them so, and a
 * state is sized by them when it is made.
 */
export function checkpointTensors(
  config: Settings<unknown>,
  layout: ArenaLayout,
  shapes: readonly (readonly number[])[],
  order: readonly string[] = layout.names,
): { tensors: PlannedTensor[]; codes: boolean } {
  const kinds = stateTensors(config);
  const tensors: PlannedTensor[] = [];
  const bytes: PlannedTensor[] = [];
  for (const index of layoutIndices(layout, order)) {
    const name = layout.names[index];
    const n = layout.lengths[index];
    const shape = shapes[index];
    kinds.forEach((k, kind) => {
      const tensorName = name + k.suffix;
      if (layout.compact[index] && k.moment !== undefined) {
        const dtype = k.nonNegative ? "U8" : "I8";
        const blocks = blocksOf(n);
        const at = { index, kind };
        bytes.push({
          name: `${tensorName}.codes`,
          shape,
          dtype,
          byteLength: n,
          ...at,
          part: "codes",
        });
        tensors.push({
          name: `${tensorName}.scales`,
          shape: [blocks],
          dtype: "F32",
          byteLength: 4 * blocks,
          ...at,
          part: "scales",
        });
      } else {
        tensors.push({
          name: tensorName,
          shape,
          dtype: "F32",
          byteLength: 4 * n,
          index,
          kind,
          part: "values",
        });
      }
    });
  }
  return { tensors: [...tensors, ...bytes], codes: bytes.length > 0 };
}

/** What a state's holder saves beside it, planned (see {@linkcode checkSavableSize}). */
export interface SavedBeside {
  /** The F32 tensors, without their data. */
  readonly tensors: readonly TensorPlan[];
  /** The metadata entries, at their longest. */
  readonly metadata: Readonly<Record<string, string>>;
}

/**
 * Throws a RangeError unless every checkpoint of a state of `config` on `layout` (`shapes` in
 * layout order; its `tensor_order` `order`, default the layout's, which orders the file and so
 * the digits of its offsets) fits the cap on a header's length, whatever its step counts: a
 * state of too many tensors, or of too long names or shapes, trained but could not be saved.
 * `extra`: what its holder saves beside it (core/checkpoint_extras.ts), F32 tensors placed after
 * the state's F32 ones, as a save places them, and metadata entries, counted too. Returns the
 * length of that header's JSON before its padding (`headerJsonLength`): under settings that
 * differ in their learning rate only, it differs by as much as their `settingsTextLength`.
 *
 * @example
 * ```ts
 * import { checkSavableSize, settingsTextLength } from "./checkpoint_header.ts";
 * import { planState } from "./plan.ts";
 * import { planArena } from "../base/arena.ts";
 * import { radam } from "@optim/radam";
 * import assert from "node:assert/strict";
 *
 * const config = radam().settings;
 * const layout = planState(config, ["w"], [1]);
 * const json = checkSavableSize(config, layout, [[1]]); // (fits: its JSON's length)
 * const other = radam({ lr: 0.00125 }).settings; // (a rate 4 characters longer than 0.001)
 * const longer = settingsTextLength(other) - settingsTextLength(config);
 * assert.equal(checkSavableSize(other, layout, [[1]]), json + longer);
 * // (A name no tensor may have, which planState refuses first: the arena planned without it.)
 * const long = planArena(["w".repeat(40_000_000)], [1], { moments: 2 });
 * assert.throws(() => checkSavableSize(config, long, [[1]]), /above the cap of 100000000/);
 * ```
 */
export function checkSavableSize(
  config: Settings<unknown>,
  layout: ArenaLayout,
  shapes: readonly (readonly number[])[],
  order: readonly string[] = layout.names,
  extra: SavedBeside = { tensors: [], metadata: {} },
): number {
  const { tensors: own, codes } = checkpointTensors(config, layout, shapes, order);
  const cut = own.findIndex((t) => t.dtype !== "F32");
  const at = cut < 0 ? own.length : cut;
  const tensors = [...own.slice(0, at), ...extra.tensors, ...own.slice(at)];
  const widest = Number.MAX_SAFE_INTEGER; // the longest step counts a checkpoint records
  const groups = groupsOf(config, order);
  const metadata = checkpointMetadata(config, layout, {
    steps: widest,
    skipped: widest,
    order,
    groups,
    codes,
  });
  const json = headerJsonLength(tensors, { ...metadata, ...extra.metadata });
  const length = paddedHeaderLength(json);
  if (length > headerCap()) {
    const beside = extra.tensors.length > 0
      ? `, and ${extra.tensors.length} saved beside them (gradients accumulated, averages)`
      : "";
    const error = new RangeError(
      `The checkpoint of this state would have a header of ${length} bytes, above the cap of ` +
        `${headerCap()} (${layout.names.length} tensors${beside}): it could be trained but ` +
        `never saved; use fewer tensors (concatenate small ones) or shorter names`,
    );
    capRefusals.add(error);
    throw error;
  }
  return json;
}

/** The errors {@linkcode checkSavableSize} threw for the cap (marked where thrown, not by words). */
const capRefusals = new WeakSet<Error>();

/**
 * Whether `error` is the RangeError {@linkcode checkSavableSize} threw because a checkpoint's
 * header would pass the cap on its length (so is one of `checkSavableUnder`, which throws it):
 * told by a mark set where it is thrown, whatever its message says.
 *
 * @example
 * ```ts
 * import { checkSavableSize, isHeaderCapRefusal } from "./checkpoint_header.ts";
 * import { planArena } from "../base/arena.ts";
 * import { radam } from "@optim/radam";
 * import assert from "node:assert/strict";
 *
 * const long = planArena(["w".repeat(40_000_000)], [1], { moments: 2 });
 * assert.throws(() => checkSavableSize(radam().settings, long, [[1]]), (error: Error) => {
 *   assert.ok(isHeaderCapRefusal(error));
 *   return true;
 * });
 * assert.equal(isHeaderCapRefusal(new RangeError("a header of 9 bytes, above the cap of 8")), false);
 * ```
 */
export function isHeaderCapRefusal(error: unknown): error is RangeError {
  return error instanceof RangeError && capRefusals.has(error);
}
