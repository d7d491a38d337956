/**
 * The optimizer's state in and out: its weights as tfjs names them (`getWeights`/`setWeights`,
 * saved with a model: `iter`, `<variable>/m`, `<variable>/v`, `<variable>/slow`; a moment held in
 * 8 bits as `<variable>/m.codes` and `<variable>/m.scales`, see codes.ts), and the way back from
 * this library's checkpoints (`loadState`).
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs-core";
import { described, promiseHint } from "../base/_errors.ts";
import { type CompactMoment, EXP_AVG, SLOW } from "../base/arena.ts";
import { holdsCodes, type HostBackend } from "../base/backend.ts";
import type { LearningRate } from "../base/options.ts";
import type { Settings } from "../base/settings.ts";
import { type OptimizerState, stateInternals } from "../core/state.ts";
import { momentsOf } from "../core/origins.ts";
import { dispose, loadState, readMoments, readSlowWeights } from "../core/operations.ts";
import { firstBadScale, firstBadValue } from "../core/checkpoint_tensors.ts";
import { CODES, codeWeights, readCodes, SCALES } from "./codes.ts";
import { codesName, mixedOrders, unmarked } from "./code_order.ts";
import type { NamedTensor } from "./gradients.ts";
import { type ReadTensor, startReads } from "./given.ts";
import { iterTensor, stepsOf } from "./iter.ts";
import { formHint, tfjsWeightHint } from "./tfjs_weights.ts";
import {
  arenaFits,
  baseName,
  compactCopies,
  inTfjsOrder,
  type Kept,
  type KeptStates,
  stateViews,
} from "./kept.ts";
import { type Entry, entryOf, fromArena, sameShape, shapeText, toArena } from "./layout.ts";
import { checkSameKinds, inTfjsLayout } from "./matching.ts";
import { checkWeightLive } from "./_hints.ts";

/** The tfjs weight-name suffix of each state section, as tfjs names Adam's (`/m`, `/v`). */
const MOMENT_SUFFIX: Readonly<Record<string, string>> = { exp_avg: "m", exp_avg_sq: "v" };
const SLOW_SUFFIX = "slow";

/** One kind of weight: its name suffix, arena section, and the library's moment name. */
interface WeightKind {
  readonly suffix: string;
  readonly section: number;
  /** The moment's name in `readMoments`; undefined for the slow weights. */
  readonly moment?: string;
  /** Whether the moment is never negative (its codes are unsigned). */
  readonly nonNegative?: boolean;
}

/** The weights `config` keeps per variable: its rule's moments, then LookAhead's slow weights. */
function weightKinds(config: Settings): WeightKind[] {
  const kinds: WeightKind[] = momentsOf(config).map((m, k) => ({
    suffix: MOMENT_SUFFIX[m.name] ?? m.name,
    section: EXP_AVG + k,
    moment: m.name,
    nonNegative: m.nonNegative,
  }));
  if (config.lookahead) kinds.push({ suffix: SLOW_SUFFIX, section: SLOW });
  return kinds;
}

/** A live state and the variables it holds. */
export interface Live {
  readonly state: OptimizerState<unknown>;
  readonly entries: readonly Entry[];
}

/**
 * The weights of `getWeights`: `iter`, then per kind of weight, one tensor per variable of the
 * live state (two for a moment held in 8 bits: its codes and scales), then those kept aside
 * (frozen; or read by loadState and not yet matched to a variable), all in the tfjs layout (state
 * read by loadState: that of the registered variable it fits, see {@linkcode tfjsEntryOf}).
 * Throws a RangeError naming the weight and index where a value is one that setWeights would
 * refuse (not finite; a negative `v`), making no tensor.
 */
export async function weightsOf(
  config: Settings,
  live: Live | undefined,
  kept: KeptStates,
): Promise<NamedTensor[]> {
  const kinds = weightKinds(config);
  const data: (Record<string, Float32Array> | undefined)[] = [];
  let codes: Record<string, CompactMoment>[] = [];
  const state = live?.state;
  let steps = state?.step ?? kept.steps;
  // (Taken now: setWeights or loadState may replace them while the state is read.)
  const keptNow = [...kept.values()];
  const backend = state && stateInternals(state).backend;
  const onDevice = backend !== undefined && backend.kind !== "host";
  // On a device, the count at the call takes the steps not yet reported as taken; the reads
  // wait for those reports, and a step the device skipped among them was not taken.
  const counter = onDevice ? backend.counter : undefined;
  const skipped = counter?.skipped ?? 0;
  if (state !== undefined) {
    // Every read of the state starts here, before the first await, so that all see its step
    // (a step taken meanwhile reaches none of them).
    const [moments, slow, held] = await Promise.all([
      readMoments(state) as Promise<Record<string, Record<string, Float32Array>>>,
      config.lookahead ? readSlowWeights(state) : undefined,
      codesOf(config, state),
    ]);
    for (const kind of kinds) data.push(kind.moment === undefined ? slow : moments[kind.moment]);
    codes = held;
    if (counter !== undefined) steps -= counter.skipped - skipped;
  }
  const out: NamedTensor[] = [{ name: "iter", tensor: iterTensor(steps) }];
  const gc = config.loop.gc;
  // Codes are given in the order the state holds them: marked where a kernel under gc is held
  // transposed (a CPU state's); a state on webgpu holds every variable in the tfjs order.
  const keptEntries = new Map(keptNow.map((held) => [held, tfjsEntryOf(held, gc)]));
  const give = (name: string, kind: WeightKind, entry: Entry, values: Float32Array) => {
    const tfjs = fromArena(entry, values);
    checkSavable(name, tfjs, kind.nonNegative === true);
    out.push({ name, tensor: tf.tensor(tfjs, entry.shape as number[]) });
  };
  // (Marked where they hold a kernel transposed: code_order.ts.)
  const giveCodes = (moment: string, held: CompactMoment, transposed: boolean) => {
    const name = codesName(moment, transposed);
    const bad = firstBadScale(held.scales);
    if (bad >= 0) throw notSavable(`${name}.${SCALES}`, bad, held.scales[bad], false);
    out.push(...codeWeights(name, held));
  };
  try {
    kinds.forEach((kind, k) => {
      for (const e of live?.entries ?? []) {
        const name = `${e.name}/${kind.suffix}`;
        const held = kind.moment === undefined ? undefined : codes[k]?.[e.name];
        if (held !== undefined) giveCodes(name, held, e.transposed);
        else give(name, kind, e, data[k]![e.name]);
      }
      for (const held of keptNow) {
        const name = `${held.entry.name}/${kind.suffix}`;
        const entry = keptEntries.get(held)!;
        const heldCodes = kind.moment === undefined ? undefined : held.codes?.[k];
        // (In the order given to setWeights; else as `entry` holds them: a checkpoint's of a
        // webgpu state under gc, in the tfjs order, not transposed.)
        const transposed = held.codesTransposed?.[k] ?? entry.transposed;
        if (heldCodes !== undefined) giveCodes(name, heldCodes, transposed);
        const values = held.sections[kind.section];
        if (heldCodes === undefined && values !== undefined) give(name, kind, entry, values);
      }
    });
  } catch (error) {
    tf.dispose(out.map((w) => w.tensor));
    throw error;
  }
  return out;
}

/**
 * Throws the RangeError of {@linkcode notSavable} unless `values`, the weight `name`'s, are
 * finite (and ≥ 0 for a non-negative moment).
 */
function checkSavable(name: string, values: Float32Array, nonNegative: boolean): void {
  const bad = firstBadValue(values, nonNegative);
  if (bad >= 0) throw notSavable(name, bad, values[bad], nonNegative);
}

/**
 * The error of weights that `setWeights` (and so `tf.loadLayersModel`) would refuse, as
 * `saveState` refuses a state that `loadState` would: said when they are asked for, while the
 * run can still be inspected, rather than when a saved model is loaded.
 */
function notSavable(name: string, i: number, value: number, nonNegative: boolean): RangeError {
  return new RangeError(
    `Cannot give the optimizer's weights: ${JSON.stringify(name)}[${i}] is ${value}, and ` +
      `setWeights (so tf.loadLayersModel) takes only finite values${
        nonNegative ? " (≥ 0)" : ""
      }, as checkpoints hold (a non-finite gradient reached the state under nonFinite: ` +
      `"propagate", or a moment overflowed); read the state with readMoments(optimizer.state), ` +
      `or save the model without includeOptimizer`,
  );
}

/**
 * How kept state `held` is laid out in the tfjs layout. State read by loadState is held in its
 * checkpoint's layout (a kernel under `gc` transposed, `[out, rest]`), which gives no tfjs shape:
 * that of the trainable variable registered with TensorFlow.js that it fits (by name, else by
 * base name where the variables that fit have one shape), as the next step matches it; where
 * none fits, the checkpoint's layout.
 */
function tfjsEntryOf(held: Kept, gc: boolean): Entry {
  const arenaShape = held.arenaShape;
  if (arenaShape === undefined) return held.entry;
  const name = held.entry.name;
  const fits = (v: tf.Variable) => arenaFits(held, v.shape, gc);
  const variables = Object.values(tf.engine().registeredVariables).filter((v) =>
    v.trainable && v.dtype === "float32" && !v.isDisposed &&
    baseName(v.name) === baseName(name) && fits(v)
  );
  const own = variables.find((v) => v.name === name);
  const shapes = own ? [own.shape] : variables.map((v) => v.shape);
  if (shapes.length > 0 && shapes.every((shape) => sameShape(shape, shapes[0]))) {
    return entryOf(name, shapes[0], gc && !inTfjsOrder(held, shapes[0], gc));
  }
  return { ...held.entry, shape: [...arenaShape] };
}

/**
 * The codes and scales of a state's moments held in 8 bits (copies, by moment, then variable):
 * from a host state's arena; from a device's (WebGPU), reads started at the call, as every other
 * read of `weightsOf` (a step taken before they resolve reaches none of them).
 */
function codesOf(
  config: Settings,
  state: OptimizerState<unknown>,
): Promise<Record<string, CompactMoment>[]> {
  if (config.run.states !== "8bit") return Promise.resolve([]);
  const backend = stateInternals(state).backend;
  if (holdsCodes(backend)) return Promise.resolve(compactCopies(backend));
  const layout = backend.layout;
  if (backend.kind === "host" || !layout.compact.includes(true)) return Promise.resolve([]);
  return Promise.all(layout.unsignedCodes.map((_, k) => backend.readCompact(k)));
}

/** The weights of one variable given to setWeights: their shape, and tensor by section. */
interface Given {
  /** The shape of its f32 weights (none where it has only codes). */
  shape?: number[];
  readonly sections: Map<number, tf.Tensor>;
  /** By moment section: the weights of a moment held in 8 bits, the codes' name, their order. */
  readonly codes: Map<
    number,
    { name: string; transposed: boolean; codes?: tf.Tensor; scales?: tf.Tensor }
  >;
}

/**
 * What a weight's name says: its section, and `"codes"`/`"scales"` for a moment in 8 bits,
 * which `transposed` holds in the transposed order (code_order.ts).
 */
interface WeightName {
  readonly variable: string;
  readonly section: number;
  readonly part?: typeof CODES | typeof SCALES;
  readonly transposed?: boolean;
}

/** What a weight named `name` fills (`iter` aside); throws for an unknown one. */
function parseName(config: Settings, name: string, suffixes: Map<string, number>): WeightName {
  const cut = name.lastIndexOf("/");
  const tail = cut > 0 ? name.slice(cut + 1) : "";
  const part = /\.(codes|scales)$/.exec(tail)?.[1] as WeightName["part"];
  const [moment, transposed] = part ? unmarked(tail.slice(0, -part.length - 1)) : [tail, false];
  const section = suffixes.get(moment);
  if (section === undefined || (part && section === SLOW)) {
    const kept = weightKinds(config).map((k) => k.suffix).join(" | ");
    const expected = kept === "" ? `"iter" only (it keeps no state by variable)` : `"iter" or ` +
      `"<variable>/<${kept}>" (a moment in 8 bits: "<variable>/<moment>.codes" and ".scales", ` +
      `or ".transposed.codes" and ".transposed.scales")`;
    throw new TypeError(
      `Unexpected optimizer weight ${JSON.stringify(name)}: ${config.name} expects ${expected}${
        tfjsWeightHint(moment)
      }`,
    );
  }
  if (section === SLOW && !config.lookahead) {
    throw new TypeError(
      `Unexpected optimizer weight ${JSON.stringify(name)}: ${config.name} keeps no slow weights`,
    );
  }
  return { variable: name.slice(0, cut), section, ...(part ? { part, transposed } : {}) };
}

/** Checks the weights given to setWeights; groups them by variable; reads `iter`. */
async function givenWeights(
  config: Settings,
  weightValues: readonly NamedTensor[],
  read: ReadTensor,
): Promise<{ steps?: number; byVariable: Map<string, Given> }> {
  const suffixes = new Map<string, number>(weightKinds(config).map((k) => [k.suffix, k.section]));
  suffixes.set(SLOW_SUFFIX, SLOW);
  let steps: number | undefined;
  const byVariable = new Map<string, Given>();
  for (const w of weightValues) {
    if (typeof w !== "object" || w === null || !(w.tensor instanceof tf.Tensor)) {
      throw new TypeError(`Expected { name, tensor } weights, got ${described(w)}${formHint(w)}`);
    }
    checkWeightLive(w);
    if (w.name === "iter") {
      if (steps !== undefined) throw new TypeError('Optimizer weight "iter" is given twice');
      steps = await stepsOf(w.tensor, read);
      continue;
    }
    const { variable, section, part, transposed } = parseName(config, w.name, suffixes);
    let v = byVariable.get(variable);
    if (v === undefined) {
      byVariable.set(variable, v = { sections: new Map(), codes: new Map() });
    }
    const twice = () => new TypeError(`Optimizer weight ${JSON.stringify(w.name)} is given twice`);
    if (part !== undefined) {
      // (Its dtype and shape are checked with its pair's, in keptFromWeights.)
      const held = v.codes.get(section) ??
        { name: w.name.replace(/scales$/, CODES), transposed: transposed === true };
      if (held[part] !== undefined || v.sections.has(section)) throw twice();
      if (held.transposed !== transposed) {
        throw mixedOrders(held.codes ? held.name : held.name.replace(/codes$/, SCALES), w.name);
      }
      held[part] = w.tensor;
      v.codes.set(section, held);
      continue;
    }
    if (w.tensor.dtype !== "float32") {
      throw new TypeError(
        `Expected weight ${JSON.stringify(w.name)} to be float32, got ${w.tensor.dtype}`,
      );
    }
    v.shape ??= w.tensor.shape;
    if (!sameShape(v.shape, w.tensor.shape)) {
      throw new RangeError(
        `The optimizer weights of variable ${JSON.stringify(variable)} disagree in shape: ${
          shapeText(v.shape)
        } and ${shapeText(w.tensor.shape)}`,
      );
    }
    if (v.sections.has(section) || v.codes.has(section)) throw twice();
    v.sections.set(section, w.tensor);
  }
  return { steps, byVariable };
}

/**
 * Reads the weights given to `setWeights` into kept states, in the arena layout of `config`
 * (changing nothing): by name, not by position. Throws a TypeError naming a weight that is not
 * `iter` or `<variable>/<m | v | slow>` (or a moment's `.codes` and `.scales`), or whose shapes
 * disagree; a RangeError for codes or scales out of range, or for f32 values that are not finite
 * (or, of `v`, negative).
 *
 * @example
 * ```ts
 * import "@tensorflow/tfjs-backend-cpu";
 * import * as tf from "@tensorflow/tfjs-core";
 * import { keptFromWeights } from "./weights.ts";
 * import { EXP_AVG } from "../base/arena.ts";
 * import { adam } from "@optim/radam";
 * import assert from "node:assert/strict";
 *
 * const settings = adam().settings;
 * const { steps, kept } = await keptFromWeights(settings, [
 *   { name: "iter", tensor: tf.scalar(3) },
 *   { name: "w/m", tensor: tf.tensor1d([1, 2]) },
 * ]);
 * assert.equal(steps, 3);
 * assert.deepEqual(kept.get("w")!.sections[EXP_AVG], new Float32Array([1, 2]));
 * const unknown = [{ name: "w/x", tensor: tf.tensor1d([1]) }];
 * await assert.rejects(keptFromWeights(settings, unknown), TypeError);
 * ```
 */
export async function keptFromWeights(
  config: Settings,
  weightValues: unknown,
): Promise<{ steps: number; kept: Map<string, Kept> }> {
  if (!Array.isArray(weightValues)) {
    throw new TypeError(
      `setWeights expects a NamedTensor[], got ${described(weightValues)}` +
        promiseHint(weightValues) + formHint(weightValues),
    );
  }
  const read = startReads(weightValues);
  const { steps, byVariable } = await givenWeights(config, weightValues, read);
  const kinds = weightKinds(config);
  const kept = new Map<string, Kept>();
  for (const [name, v] of byVariable) {
    const compact = await givenCodes(config, name, v, read);
    const entry = entryOf(name, v.shape ?? [compact?.sizes[1] ?? 0], config.loop.gc);
    const sections: (Float32Array | undefined)[] = [];
    for (const [section, tensor] of v.sections) {
      const values = await read(tensor) as Float32Array;
      const kind = kinds.find((k) => k.section === section);
      checkValues(`${name}/${kind?.suffix ?? SLOW_SUFFIX}`, values, kind?.nonNegative === true);
      const data = new Float32Array(entry.size);
      toArena(entry, values, data);
      sections[section] = data;
    }
    if (compact === undefined) kept.set(name, { entry, sections });
    else {
      // Codes kept as given, in their order, until a step takes the variable (KeptStates.fitting
      // reorders those of another order then, code_order.ts): weights asked for before are the
      // ones given, not f32 (decoded, 4 bytes an element) nor in another order.
      const { codes, transposed: codesTransposed, sizes } = compact;
      const unknown = v.shape === undefined ? { sizes } : {};
      kept.set(name, { entry, sections, codes, codesTransposed, ...unknown });
    }
  }
  return { steps: steps ?? 0, kept };
}

/**
 * Throws a RangeError naming weight `name` unless its values are finite (and ≥ 0 for a
 * non-negative moment), as a checkpoint's must be: a state from them would step to NaN.
 */
function checkValues(name: string, values: Float32Array, nonNegative: boolean): void {
  for (let i = 0; i < values.length; i++) {
    const x = values[i];
    if (nonNegative ? !(x >= 0 && x !== Infinity) : x - x !== 0) {
      throw new RangeError(
        `Expected weight ${JSON.stringify(name)}[${i}] to be a finite number${
          nonNegative ? " ≥ 0" : ""
        }, got ${described(x)}`,
      );
    }
  }
}

/**
 * The moments of variable `name` given in 8 bits, checked (codes.ts), by moment, and whether each
 * is in the transposed order; with the sizes the variable may have (its own where its f32
 * weights give its shape). Undefined where none.
 */
async function givenCodes(
  config: Settings,
  name: string,
  v: Given,
  read: ReadTensor,
): Promise<
  | { codes: (CompactMoment | undefined)[]; transposed: boolean[]; sizes: [number, number] }
  | undefined
> {
  if (v.codes.size === 0) return undefined;
  const kinds = weightKinds(config);
  const size = v.shape?.reduce((a, b) => a * b, 1);
  let sizes: [number, number] = [0, Infinity];
  const codes: (CompactMoment | undefined)[] = [], transposed: boolean[] = [];
  for (const [section, held] of v.codes) {
    if (held.codes === undefined || held.scales === undefined) {
      const missing = held.codes === undefined ? held.name : held.name.replace(/codes$/, SCALES);
      throw new TypeError(
        `Optimizer weight ${JSON.stringify(missing)} is missing (its pair is given)`,
      );
    }
    const signed = !kinds.find((k) => k.section === section)!.nonNegative;
    const got = await readCodes(held.name, held.codes, held.scales, signed, read);
    sizes = [Math.max(sizes[0], got.sizes[0]), Math.min(sizes[1], got.sizes[1])];
    codes[section - EXP_AVG] = got.moment;
    transposed[section - EXP_AVG] = held.transposed;
  }
  if (sizes[0] > sizes[1] || (size !== undefined && (size < sizes[0] || size > sizes[1]))) {
    throw new RangeError(
      `The optimizer weights of variable ${JSON.stringify(name)} disagree in size: ${
        size === undefined ? "" : `${size} elements, `
      }codes for ${sizes[0]} to ${sizes[1]}`,
    );
  }
  return { codes, transposed, sizes: size === undefined ? sizes : [size, size] };
}

/**
 * Reads a library checkpoint's moments, slow weights and step counts into kept states, each in
 * the arena layout it was saved in (changing nothing). Rejects with the library's
 * `CheckpointError` for a damaged file.
 *
 * @example
 * ```ts
 * import { keptFromCheckpoint } from "./weights.ts";
 * import { adam, CheckpointError, saveState } from "@optim/radam";
 * import assert from "node:assert/strict";
 *
 * const optimizer = adam({ states: "8bit" });
 * const state = await optimizer.init({ w: new Float32Array(4096) });
 * const bytes = await saveState(state);
 * const { steps, kept } = await keptFromCheckpoint(optimizer.settings, bytes);
 * assert.equal(steps, 0);
 * assert.equal(kept.get("w")!.codes!.length, 2); // both moments, as codes and scales
 * await assert.rejects(keptFromCheckpoint(optimizer.settings, bytes.subarray(1)), CheckpointError);
 * ```
 */
export async function keptFromCheckpoint(
  config: Settings,
  bytes: Uint8Array,
): Promise<{ steps: number; skipped: number; kept: Map<string, Kept> }> {
  const state = await loadState(bytes, {
    backend: "js",
    lr: config.hyperparameters.lr as LearningRate,
  });
  try {
    const internals = stateInternals(state);
    checkSameKinds(config, internals.config);
    const backend = internals.backend as HostBackend;
    const layout = backend.layout;
    const views = stateViews(backend);
    const compact = compactCopies(backend);
    const kept = new Map<string, Kept>();
    layout.names.forEach((name, i) => {
      const codes = compact.map((c) => c[name]);
      const read: Kept = {
        entry: entryOf(name, [layout.lengths[i]], false),
        arenaShape: internals.shapes[i],
        sections: views.map((v) => v?.[name]?.slice()),
        ...(codes.some((c) => c) ? { codes } : {}),
      };
      const gc = internals.config.loop.gc;
      kept.set(name, gc === config.loop.gc ? read : inTfjsLayout(read, gc));
    });
    return { steps: internals.steps, skipped: internals.skipped, kept };
  } finally {
    dispose(state);
  }
}
