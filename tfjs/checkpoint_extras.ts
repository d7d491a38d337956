/**
 * The gradients accumulated (option `gradientAccumulationSteps`) and the moving averages (option
 * `ema`) in the checkpoints of `optimizer.state`: written beside the state by `saveState`
 * (core/checkpoint_extras.ts: `<variable>.accum` with `accum_count` in the metadata, and
 * `<variable>.average`, F32 in the variable's shape), and read back, checked, by the optimizer's
 * `loadState`.
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs-core";
import {
  CheckpointError,
  type ParsedSafetensors,
  parseSafetensors,
  type TensorOut,
} from "../base/safetensors.ts";
import { type CheckpointExtras, isExtraTensor } from "../core/checkpoint_extras.ts";
import { firstBadValue } from "../core/checkpoint_tensors.ts";
import { type Accumulator, type LoadedSums, SUM_SUFFIX } from "./accumulate.ts";
import { ACCUM_COUNT_KEY } from "../core/extra_tensors.ts";
import { AVERAGE_SUFFIX, type WeightAverages } from "./ema.ts";
import { checkLoadedShapes } from "./matching.ts";
import type { GradItem, NamedTensor } from "./gradients.ts";
import type { Settings } from "../base/settings.ts";
import { checkSavableSize, type SavedBeside } from "../core/checkpoint_header.ts";
import { parseJsonMeta } from "../core/checkpoint_meta.ts";
import { inLayoutOrder, planState } from "../core/plan.ts";
import { type Entry, entryOf } from "./layout.ts";

/** A checkpoint's suffix of a partial sum, and of a moving average. */
const SUM_TENSOR = ".accum", AVERAGE_TENSOR = ".average";

/** How the refusal of a save of a non-finite sum or average ends (see `extrasSource`). */
const SAVE_REFUSED = "optimizer.loadState would refuse it; on webgpu the step it goes into " +
  "halts, as a later call says); not saved";

/** A checkpoint tensor's values, copied, with its shape. */
interface Values {
  readonly shape: readonly number[];
  readonly data: Float32Array;
}

/** What `loadState` takes of a checkpoint besides the state, checked. */
export interface ExtrasRead {
  /** The partial sums and their count, if the checkpoint holds some. */
  readonly sums: { count: number; sums: Map<string, Values> } | undefined;
  /** The moving averages by variable name (none: empty). */
  readonly averages: Map<string, Values>;
}

/**
 * The weights of the sums (`accum_count`, `<variable>/accum`) then of the averages
 * (`<variable>/average`), copies the caller owns; where one fails to be made (a backend short of
 * memory), those made are disposed and its error thrown.
 *
 * @example
 * ```ts
 * import { extraWeights } from "./checkpoint_extras.ts";
 * import { Accumulator } from "./accumulate.ts";
 * import assert from "node:assert/strict";
 *
 * assert.deepEqual(extraWeights(new Accumulator(4), undefined), []); // nothing summed
 * ```
 */
export function extraWeights(
  accumulator: Accumulator,
  averages: WeightAverages | undefined,
): NamedTensor[] {
  const sums = accumulator.weights();
  try {
    return sums.concat(averages?.weights() ?? []);
  } catch (error) {
    tf.dispose(sums.map((w) => w.tensor));
    throw error;
  }
}

/**
 * The source of the extras `saveState(optimizer.state)` writes (see core/checkpoint_extras.ts):
 * copies of the sums and averages taken at the call, read, then disposed. None: undefined (the
 * checkpoint is then that of the state alone, byte for byte). Where `finiteOnly()` at the call
 * (option `nonFinite: "throw"`), the tensors reject with a RangeError naming one and the index of
 * a non-finite value, as `loadState` would refuse it (on webgpu calls 1 to N − 1 of an
 * accumulation are checked on the device only, where the step of their mean halts): no
 * checkpoint is written that cannot be loaded.
 *
 * @example
 * ```ts
 * import { extrasSource } from "./checkpoint_extras.ts";
 * import { Accumulator } from "./accumulate.ts";
 * import assert from "node:assert/strict";
 *
 * assert.equal(extrasSource(new Accumulator(4), undefined)(), undefined); // nothing summed
 * ```
 */
export function extrasSource(
  accumulator: Accumulator,
  averages: WeightAverages | undefined,
  finiteOnly: () => boolean = () => false,
): () => CheckpointExtras | undefined {
  return () => {
    const weights = extraWeights(accumulator, averages);
    if (weights.length === 0) return undefined;
    const count = weights.filter((w) => w.name === ACCUM_COUNT_KEY);
    tf.dispose(count.map((w) => w.tensor));
    const rest = weights.filter((w) => w.name !== ACCUM_COUNT_KEY);
    const finite = finiteOnly();
    const tensors = Promise.all(rest.map(async ({ name, tensor }): Promise<TensorOut> => {
      const out: TensorOut = {
        name: name.endsWith(SUM_SUFFIX)
          ? name.slice(0, -SUM_SUFFIX.length) + SUM_TENSOR
          : name.slice(0, -AVERAGE_SUFFIX.length) + AVERAGE_TENSOR,
        shape: tensor.shape,
        data: await tensor.data<"float32">(),
      };
      if (finite) checkFinite(out.name, out.data as Float32Array, SAVE_REFUSED);
      return out;
    })).finally(() => tf.dispose(rest.map((w) => w.tensor)));
    const metadata: Record<string, string> = count.length > 0
      ? { [ACCUM_COUNT_KEY]: String(accumulator.count) }
      : {};
    return { metadata, tensors };
  };
}

/**
 * Reads and checks the sums and averages of a checkpoint (`bytes`; the state's own checks refuse
 * a damaged file first: {@linkcode extrasAtCall}), for an optimizer accumulating `steps` calls, under `nonFinite:
 * "throw"` where `finiteOnly`. A tensor named `<name>.accum` or `<name>.average` that is no
 * tensor of the state (not in `tensor_order`) is one. Throws, before anything changes, a
 * `CheckpointError` naming one that is not F32, sums without `accum_count` (or the count without
 * sums: saying what is missing), or a count that is not an integer from 1 to N − 1 (none where N
 * is 1: an optimizer that does not accumulate); a RangeError naming one of another shape than
 * the variables of its name (or base name), or, with `finiteOnly`, one and the index of a
 * non-finite value. `parsed`: the bytes parsed already (`parseSafetensors(bytes)`), if they were.
 *
 * @example
 * ```ts
 * import { readCheckpointExtras } from "./checkpoint_extras.ts";
 * import { radam, saveState } from "@optim/radam";
 * import assert from "node:assert/strict";
 *
 * const bytes = await saveState(await radam().init({ w: new Float32Array(2) }));
 * const { sums, averages } = readCheckpointExtras(bytes, 4, false);
 * assert.equal(sums, undefined);
 * assert.equal(averages.size, 0);
 * ```
 */
export function readCheckpointExtras(
  bytes: Uint8Array,
  steps: number,
  finiteOnly: boolean,
  parsed?: ParsedSafetensors,
): ExtrasRead {
  const file = parsed ?? parseSafetensors(bytes);
  const order = new Set(parseJsonMeta(file.metadata, "tensor_order") as string[]);
  const sums = new Map<string, Values>(), averages = new Map<string, Values>();
  for (const [name, entry] of file.tensors) {
    if (!isExtraTensor(name) || order.has(name)) continue;
    const sum = name.endsWith(SUM_TENSOR);
    const what = sum ? "a gradient accumulated" : "a moving average";
    if (entry.dtype !== "F32") {
      throw new CheckpointError(
        `Checkpoint tensor ${JSON.stringify(name)} (${what}) must be F32, got ${entry.dtype}`,
      );
    }
    const at = bytes.byteOffset + file.dataStart + entry.begin;
    const copy = new Uint8Array(bytes.buffer, at, entry.end - entry.begin).slice();
    const values = { shape: entry.shape, data: new Float32Array(copy.buffer) };
    if (finiteOnly) checkFinite(name, values.data);
    (sum ? sums : averages).set(name.slice(0, -(sum ? SUM_TENSOR : AVERAGE_TENSOR).length), values);
  }
  const count = countOf(file.metadata, sums.size, steps);
  checkLoadedShapes(sums, SUM_TENSOR, "a gradient accumulated", "Checkpoint tensor");
  checkLoadedShapes(averages, AVERAGE_TENSOR, "a moving average", "Checkpoint tensor");
  return { sums: count === undefined ? undefined : { count, sums }, averages };
}

/**
 * {@linkcode readCheckpointExtras} run at the call of `loadState`, on its bytes as they are then
 * (the caller may transfer or reuse them before its await ends: the state's tensors are copied
 * during the call too), its answer, or its error, given by the function returned: called once the
 * state's own checks passed, so that theirs (a damaged file's) come first. `parsed`: as
 * {@linkcode readCheckpointExtras}'s.
 *
 * @example
 * ```ts
 * import { extrasAtCall } from "./checkpoint_extras.ts";
 * import { radam, saveState } from "@optim/radam";
 * import assert from "node:assert/strict";
 *
 * const bytes = await saveState(await radam().init({ w: new Float32Array(2) }));
 * const read = extrasAtCall(bytes, 4, false);
 * bytes.fill(0); // read already
 * assert.equal(read().sums, undefined);
 * assert.throws(extrasAtCall(bytes, 4, false)); // (not a checkpoint: thrown when asked)
 * ```
 */
export function extrasAtCall(
  bytes: Uint8Array,
  steps: number,
  finiteOnly: boolean,
  parsed?: ParsedSafetensors,
): () => ExtrasRead {
  try {
    const read = readCheckpointExtras(bytes, steps, finiteOnly, parsed);
    return () => read;
  } catch (error) {
    return () => {
      throw error;
    };
  }
}

/**
 * The checkpoint's `accum_count` (none: undefined), checked against its `sums` and N: a
 * `CheckpointError` naming it and what was expected where it is missing, or not from 1 to N − 1.
 */
function countOf(
  metadata: Readonly<Record<string, string>>,
  sums: number,
  steps: number,
): number | undefined {
  const text = Object.hasOwn(metadata, ACCUM_COUNT_KEY) ? metadata[ACCUM_COUNT_KEY] : undefined;
  if (text === undefined && sums === 0) return undefined;
  if (text === undefined || sums === 0) {
    throw new CheckpointError(
      `Checkpoint lacks ${
        text === undefined
          ? `the count of its ${sums} gradients accumulated, the metadata "${ACCUM_COUNT_KEY}"`
          : `the gradients accumulated that its metadata "${ACCUM_COUNT_KEY}" counts (${
            JSON.stringify(text)
          }): no tensor <variable>${SUM_TENSOR}`
      } (they are saved together)`,
    );
  }
  const n = /^[0-9]{1,15}$/.test(text) ? Number(text) : NaN;
  if (!(n >= 1 && n < steps)) {
    throw new CheckpointError(
      `Checkpoint metadata "${ACCUM_COUNT_KEY}" must be ${
        steps === 1 ? "absent" : `an integer from 1 to ${steps - 1}`
      } (option gradientAccumulationSteps is ${steps}), got ${JSON.stringify(text)}`,
    );
  }
  return n;
}

/**
 * Under `nonFinite: "throw"`: a RangeError naming tensor `name` and its first non-finite index
 * (`outcome`: what is refused; default a `loadState`).
 */
function checkFinite(
  name: string,
  data: Float32Array,
  outcome = "the step it goes into would throw); refused, nothing changed",
): void {
  const i = firstBadValue(data, false);
  if (i < 0) return;
  throw new RangeError(
    `Checkpoint tensor ${JSON.stringify(name)}[${i}] is ${data[i]}; expected a finite number ` +
      `(option nonFinite: "throw": ${outcome}`,
  );
}

/**
 * Replaces the sums of `accumulator` and the averages of `averages` (none: they are ignored) with
 * those of `read`, as tensors on tfjs's backend.
 */
export function loadExtras(
  read: ExtrasRead,
  accumulator: Accumulator,
  averages: WeightAverages | undefined,
): void {
  const tensor = ({ shape, data }: Values) => tf.tensor(data, [...shape], "float32");
  if (read.sums !== undefined) {
    const sums = new Map([...read.sums.sums].map(([n, v]) => [n, tensor(v)]));
    accumulator.load({ count: read.sums.count, sums } satisfies LoadedSums);
  }
  if (averages !== undefined) {
    averages.load(new Map([...read.averages].map(([n, v]) => [n, tensor(v)])));
  }
}

/**
 * What `saveState(optimizer.state)` writes beside a state loaded, now, planned as a save places
 * it: the sums `accumulator` holds with their count (those loaded, and what calls summed since),
 * then `averages`, the variables and shapes of the averages loaded (none where the optimizer
 * keeps none); to check that the state, kept so, can be saved (`checkSavableSize`).
 *
 * @example
 * ```ts
 * import { besideLoaded } from "./checkpoint_extras.ts";
 * import { Accumulator } from "./accumulate.ts";
 * import assert from "node:assert/strict";
 *
 * const accumulator = new Accumulator(4); // (nothing summed)
 * const beside = besideLoaded(accumulator, [["w", [2]]]);
 * assert.deepEqual(beside.tensors.map((t) => [t.name, t.byteLength]), [["w.average", 8]]);
 * assert.deepEqual(besideLoaded(accumulator, []), { tensors: [], metadata: {} });
 * ```
 */
export function besideLoaded(
  accumulator: Accumulator,
  averages: readonly (readonly [string, readonly number[]])[],
): SavedBeside {
  const planned = (suffix: string) => ([name, shape]: readonly [string, readonly number[]]) =>
    plannedF32(name + suffix, shape);
  const sums = accumulator.sumShapes();
  return {
    tensors: [...sums.map(planned(SUM_TENSOR)), ...averages.map(planned(AVERAGE_TENSOR))],
    metadata: sums.length === 0 ? {} : { [ACCUM_COUNT_KEY]: String(accumulator.count) },
  };
}

/** An F32 tensor `name` of `shape`, planned as a save places it beside the state. */
function plannedF32(name: string, shape: readonly number[]): SavedBeside["tensors"][number] {
  return { name, shape, dtype: "F32", byteLength: 4 * shape.reduce((a, b) => a * b, 1) };
}

/** What an optimizer saves beside its state: sums of N calls (1: none), and averages or not. */
export interface SavedExtras {
  /** Option `gradientAccumulationSteps`. */
  readonly steps: number;
  /** Whether option `ema` is on. */
  readonly averages: boolean;
  /**
   * Whether an average of the variable of a name is held that a step over others keeps (a
   * frozen variable's: ema.ts `keeps`); absent: none is.
   */
  readonly keeps?: (name: string) => boolean;
}

/**
 * Throws the RangeError of a state over `items`' variables whose checkpoint's header, with what
 * `saved` says is saved beside it (`<variable>.accum` with `accum_count` where N > 1, and
 * `<variable>.average` with option `ema`, each F32 in the variable's shape), would pass the cap,
 * and a TypeError where a variable is named as another's sum or average (`w` and `w.accum`; or
 * `w.average` beside a frozen `w` whose average is kept), which a checkpoint would hold twice:
 * either would train, then fail to save mid-accumulation or with its averages. Nothing to save
 * beside it: nothing checked (the path that makes the state checks the state's own).
 *
 * @example
 * ```ts
 * import * as tf from "@tensorflow/tfjs-core";
 * import "@tensorflow/tfjs-backend-cpu";
 * import { checkSavableBeside } from "./checkpoint_extras.ts";
 * import { adam } from "@optim/radam";
 * import type { Settings } from "../base/settings.ts";
 *
 * await tf.setBackend("cpu");
 * const variable = tf.variable(tf.zeros([2]), true, "beside-doc/w");
 * const items = [{ name: variable.name, variable, tensor: variable }];
 * checkSavableBeside(adam().settings as Settings, items, { steps: 4, averages: true });
 * variable.dispose();
 * ```
 */
export function checkSavableBeside(
  config: Settings,
  items: readonly GradItem[],
  saved: SavedExtras,
): void {
  const suffixes = suffixesOf(saved);
  if (suffixes.length === 0) return;
  const entries = items.map((i) => entryOf(i.name, i.variable.shape, config.loop.gc));
  const names = entries.map((e) => e.name);
  checkBesideNames(names, suffixes, saved.keeps);
  const layout = planState(config, names, entries.map((e) => e.size));
  const shapes = inLayoutOrder(layout, names, entries.map((e) => e.arenaShape));
  checkSavableSize(config, layout, shapes, names, besideStepped(entries, saved));
}

/** The suffixes of what `saved` says is saved beside a state: sums, then averages. */
function suffixesOf(saved: SavedExtras): string[] {
  return [...saved.steps > 1 ? [SUM_TENSOR] : [], ...saved.averages ? [AVERAGE_TENSOR] : []];
}

/**
 * What a checkpoint of a state over the variables `entries` holds beside it at most, planned as a
 * save places it, where `saved` says what is saved (`<variable>.accum` with the widest
 * `accum_count`, N − 1, where N > 1; `<variable>.average` with option `ema`; each F32 in the
 * variable's shape): what the step that makes such a state counts against the cap.
 *
 * @example
 * ```ts
 * import { besideStepped } from "./checkpoint_extras.ts";
 * import { type Entry, entryOf } from "./layout.ts";
 * import assert from "node:assert/strict";
 *
 * const beside = besideStepped([entryOf("w", [2], false)], { steps: 12, averages: true });
 * assert.deepEqual(beside.tensors.map((t) => t.name), ["w.accum", "w.average"]);
 * assert.deepEqual(beside.metadata, { accum_count: "11" });
 * ```
 */
export function besideStepped(entries: readonly Entry[], saved: SavedExtras): SavedBeside {
  const tensors = suffixesOf(saved).flatMap((suffix) =>
    entries.map((e) => plannedF32(e.name + suffix, e.shape))
  );
  const metadata: Record<string, string> = saved.steps > 1
    ? { [ACCUM_COUNT_KEY]: String(saved.steps - 1) }
    : {};
  return { tensors, metadata };
}

/**
 * Throws a TypeError where a variable of `names` is named as what is saved beside another
 * (`<variable><suffix>`, `suffixes` those saved): of one of `names`, or, an average, of a frozen
 * variable whose average is kept (`keeps`): a checkpoint would hold the name twice.
 */
function checkBesideNames(
  names: readonly string[],
  suffixes: readonly string[],
  keeps: (name: string) => boolean = () => false,
): void {
  const taken = new Set(names);
  for (const suffix of suffixes) {
    const saved = (base: string) => taken.has(base) || (suffix === AVERAGE_TENSOR && keeps(base));
    const twin = names.find((n) => n.endsWith(suffix) && saved(n.slice(0, -suffix.length)));
    if (twin === undefined) continue;
    const name = twin.slice(0, -suffix.length);
    const what = suffix === SUM_TENSOR
      ? "gradients accumulated (option gradientAccumulationSteps)"
      : "moving average (option ema)";
    throw new TypeError(
      `A checkpoint of this optimizer would hold ${JSON.stringify(twin)} twice, as a ` +
        `variable and as the ${what} of the variable ${JSON.stringify(name)}: it could be ` +
        "trained but never saved; rename the variable",
    );
  }
}
