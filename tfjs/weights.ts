/**
 * The optimizer's state in and out: its weights as tfjs names them (`getWeights`/`setWeights`,
 * saved with a model: `iter`, `<variable>/m`, `<variable>/v`, `<variable>/slow`), and the way
 * back from this library's checkpoints (`loadState`).
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs-core";
import { EXP_AVG, SLOW } from "../base/arena.ts";
import type { HostBackend } from "../base/backend.ts";
import type { LearningRate } from "../base/options.ts";
import type { Settings } from "../base/settings.ts";
import { type OptimizerState, stateInternals } from "../core/state.ts";
import { momentsOf } from "../core/origins.ts";
import { dispose, loadState, readMoments, readSlowWeights } from "../core/operations.ts";
import type { NamedTensor } from "./gradients.ts";
import type { Kept, KeptStates } from "./kept.ts";
import { stateViews } from "./kept.ts";
import {
  describe,
  type Entry,
  entryOf,
  fromArena,
  sameShape,
  shapeText,
  toArena,
} from "./layout.ts";

/** The tfjs weight-name suffix of each state section, as tfjs names Adam's (`/m`, `/v`). */
const MOMENT_SUFFIX: Readonly<Record<string, string>> = { exp_avg: "m", exp_avg_sq: "v" };
const SLOW_SUFFIX = "slow";

/** One kind of weight: its name suffix, arena section, and the library's moment name. */
interface WeightKind {
  readonly suffix: string;
  readonly section: number;
  /** The moment's name in `readMoments`; undefined for the slow weights. */
  readonly moment?: string;
}

/** The weights `config` keeps per variable: its rule's moments, then LookAhead's slow weights. */
function weightKinds(config: Settings): WeightKind[] {
  const kinds: WeightKind[] = momentsOf(config).map((m, k) => ({
    suffix: MOMENT_SUFFIX[m.name] ?? m.name,
    section: EXP_AVG + k,
    moment: m.name,
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
 * live state, then those kept aside (frozen; or read by loadState and not yet matched to a
 * variable: in its checkpoint layout).
 */
export async function weightsOf(
  config: Settings,
  live: Live | undefined,
  kept: KeptStates,
): Promise<NamedTensor[]> {
  const kinds = weightKinds(config);
  const data: (Record<string, Float32Array> | undefined)[] = [];
  if (live !== undefined) {
    const moments = await readMoments(live.state) as Record<string, Record<string, Float32Array>>;
    for (const kind of kinds) {
      data.push(
        kind.moment === undefined ? await readSlowWeights(live.state) : moments[kind.moment],
      );
    }
  }
  const out: NamedTensor[] = [
    { name: "iter", tensor: tf.scalar(live?.state.step ?? kept.steps, "int32") },
  ];
  kinds.forEach((kind, k) => {
    for (const e of live?.entries ?? []) {
      const values = fromArena(e, data[k]![e.name]);
      out.push({
        name: `${e.name}/${kind.suffix}`,
        tensor: tf.tensor(values, e.shape as number[]),
      });
    }
    for (const held of kept.values()) {
      const values = held.sections[kind.section];
      if (values === undefined) continue;
      out.push({
        name: `${held.entry.name}/${kind.suffix}`,
        tensor: tf.tensor(
          fromArena(held.entry, values),
          (held.arenaShape ?? held.entry.shape) as number[],
        ),
      });
    }
  });
  return out;
}

/** The weights of one variable given to setWeights: their shape, and tensor by section. */
interface Given {
  readonly shape: number[];
  readonly sections: Map<number, tf.Tensor>;
}

/** The section a weight named `name` fills (undefined for `iter`); throws for an unknown one. */
function sectionOf(config: Settings, name: string, suffixes: Map<string, number>): number {
  const cut = name.lastIndexOf("/");
  const section = cut > 0 ? suffixes.get(name.slice(cut + 1)) : undefined;
  if (section === undefined) {
    throw new TypeError(
      `Unexpected optimizer weight ${JSON.stringify(name)}: expected "iter" or "<variable>/<${
        [...suffixes.keys()].join(" | ")
      }>"`,
    );
  }
  if (section === SLOW && !config.lookahead) {
    throw new TypeError(
      `Unexpected optimizer weight ${JSON.stringify(name)}: ${config.name} keeps no slow weights`,
    );
  }
  return section;
}

/** Checks the weights given to setWeights; groups them by variable; reads `iter`. */
async function givenWeights(
  config: Settings,
  weightValues: readonly NamedTensor[],
): Promise<{ steps?: number; byVariable: Map<string, Given> }> {
  const suffixes = new Map<string, number>(weightKinds(config).map((k) => [k.suffix, k.section]));
  suffixes.set(SLOW_SUFFIX, SLOW);
  let steps: number | undefined;
  const byVariable = new Map<string, Given>();
  for (const w of weightValues) {
    if (typeof w !== "object" || w === null || !(w.tensor instanceof tf.Tensor)) {
      throw new TypeError(`Expected { name, tensor } weights, got ${describe(w)}`);
    }
    if (w.name === "iter") {
      const value = (await w.tensor.data())[0];
      if (!Number.isSafeInteger(value) || value < 0) {
        throw new RangeError(`Expected weight "iter" to be an integer ≥ 0, got ${value}`);
      }
      steps = value;
      continue;
    }
    const section = sectionOf(config, w.name, suffixes);
    if (w.tensor.dtype !== "float32") {
      throw new TypeError(
        `Expected weight ${JSON.stringify(w.name)} to be float32, got ${w.tensor.dtype}`,
      );
    }
    const name = w.name.slice(0, w.name.lastIndexOf("/"));
    let v = byVariable.get(name);
    if (v === undefined) byVariable.set(name, v = { shape: w.tensor.shape, sections: new Map() });
    if (!sameShape(v.shape, w.tensor.shape)) {
      throw new RangeError(
        `The optimizer weights of variable ${JSON.stringify(name)} disagree in shape: ${
          shapeText(v.shape)
        } and ${shapeText(w.tensor.shape)}`,
      );
    }
    if (v.sections.has(section)) {
      throw new TypeError(`Optimizer weight ${JSON.stringify(w.name)} is given twice`);
    }
    v.sections.set(section, w.tensor);
  }
  return { steps, byVariable };
}

/**
 * Reads the weights given to `setWeights` into kept states, in the arena layout of `config`
 * (changing nothing): by name, not by position. Throws a TypeError naming a weight that is not
 * `iter` or `<variable>/<m | v | slow>`, or whose shapes disagree.
 */
export async function keptFromWeights(
  config: Settings,
  weightValues: unknown,
): Promise<{ steps: number; kept: Map<string, Kept> }> {
  if (!Array.isArray(weightValues)) {
    throw new TypeError(`setWeights expects a NamedTensor[], got ${describe(weightValues)}`);
  }
  const { steps, byVariable } = await givenWeights(config, weightValues);
  const kept = new Map<string, Kept>();
  for (const [name, v] of byVariable) {
    const entry = entryOf(name, v.shape, config.loop.gc);
    const sections: (Float32Array | undefined)[] = [];
    for (const [section, tensor] of v.sections) {
      const data = new Float32Array(entry.size);
      toArena(entry, await tensor.data() as Float32Array, data);
      sections[section] = data;
    }
    kept.set(name, { entry, sections });
  }
  return { steps: steps ?? 0, kept };
}

/**
 * Reads a library checkpoint's moments, slow weights and step counts into kept states, each in
 * the arena layout it was saved in (changing nothing). Rejects with the library's
 * `CheckpointError` for a damaged file.
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
    const backend = internals.backend as HostBackend;
    const layout = backend.layout;
    const views = stateViews(backend);
    const kept = new Map<string, Kept>();
    layout.names.forEach((name, i) => {
      kept.set(name, {
        entry: entryOf(name, [layout.lengths[i]], false),
        arenaShape: internals.shapes[i],
        sections: views.map((v) => v?.[name].slice()),
      });
    });
    return { steps: internals.steps, skipped: internals.skipped, kept };
  } finally {
    dispose(state);
  }
}
