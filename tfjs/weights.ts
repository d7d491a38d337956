/**
 * The optimizer's weights out (`getWeights`, saved with a model): `iter`, then per kind of weight
 * (weight_kinds.ts) one tensor per variable, `<variable>/m`, `<variable>/v`, `<variable>/slow`; a
 * moment held in 8 bits as `<variable>/m.codes` and `<variable>/m.scales` (codes.ts). The way in
 * is set_weights.ts; that from this library's checkpoints (`loadState`), from_checkpoint.ts.
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs-core";
import type { CompactMoment } from "../base/arena.ts";
import { holdsCodes } from "../base/backend.ts";
import type { Settings } from "../base/settings.ts";
import { type OptimizerState, stateInternals } from "../core/state.ts";
import { readMoments, readSlowWeights } from "../core/operations.ts";
import { firstBadScale, firstBadValue } from "../core/checkpoint_tensors.ts";
import { codeWeights, SCALES } from "./codes.ts";
import { codesName } from "./code_order.ts";
import type { NamedTensor } from "./gradients.ts";
import { iterTensor } from "./iter.ts";
import { compactCopies } from "./host_state.ts";
import {
  arenaFits,
  baseName,
  checkWhole,
  inTfjsOrder,
  type Kept,
  type KeptStates,
} from "./kept.ts";
import { type Entry, entryOf, fromArena, sameShape } from "./layout.ts";
import { floatVariables } from "./matching.ts";
import { type WeightKind, weightKinds } from "./weight_kinds.ts";

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
  const state = live?.state;
  // (Taken now: setWeights or loadState may replace them while the state is read.)
  const keptNow = [...kept.values()];
  // (State kept aside from the GPU may still be read back: its reads began before this call.)
  const [{ data, codes, steps }] = await Promise.all([
    state === undefined
      ? { data: [], codes: [], steps: kept.steps }
      : readLive(config, kinds, state),
    ...keptNow.map((held) => held.ready),
  ]);
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

/** What {@linkcode weightsOf} reads of a live state. */
interface LiveValues {
  /** By kind of weight: the f32 values of each variable (the moments held in f32). */
  readonly data: readonly (Record<string, Float32Array> | undefined)[];
  /** By moment: the codes and scales of each variable holding it in 8 bits. */
  readonly codes: readonly Record<string, CompactMoment>[];
  /** The steps taken. */
  readonly steps: number;
}

/**
 * Reads the live state `state` for {@linkcode weightsOf}: every read starts at the call, before
 * the first await, so that all see its step (a step taken meanwhile reaches none of them).
 */
async function readLive(
  config: Settings,
  kinds: readonly WeightKind[],
  state: OptimizerState<unknown>,
): Promise<LiveValues> {
  checkWhole(state, "the weights getWeights gives (model.save with includeOptimizer)");
  let steps = state.step;
  const backend = stateInternals(state).backend;
  // On a device, the count at the call takes the steps not yet reported as taken; the reads
  // wait for those reports, and a step the device skipped among them was not taken.
  const counter = backend.kind !== "host" ? backend.counter : undefined;
  const skipped = counter?.skipped ?? 0;
  const [moments, slow, codes] = await Promise.all([
    readMoments(state) as Promise<Record<string, Record<string, Float32Array>>>,
    config.lookahead ? readSlowWeights(state) : undefined,
    codesOf(config, state),
  ]);
  const data = kinds.map((kind) => kind.moment === undefined ? slow : moments[kind.moment]);
  if (counter !== undefined) steps -= counter.skipped - skipped;
  return { data, codes, steps };
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
  const variables = floatVariables(true).filter((v) =>
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
