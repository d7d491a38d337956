/**
 * The weights given to `setWeights` (or loaded with a model) read into kept states: by name, not
 * by position (`iter`, `<variable>/m`, `<variable>/v`, `<variable>/slow`, weight_kinds.ts; a
 * moment held in 8 bits as `<variable>/m.codes` and `<variable>/m.scales`, codes.ts), checked
 * before anything changes.
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs-core";
import { described, promiseHint } from "../base/_errors.ts";
import { type CompactMoment, EXP_AVG, SLOW } from "../base/arena.ts";
import type { Settings } from "../base/settings.ts";
import { CODES, readCodes, SCALES } from "./codes.ts";
import { mixedOrders, unmarked } from "./code_order.ts";
import type { NamedTensor } from "./gradients.ts";
import { type ReadTensor, startReads } from "./given.ts";
import { stepsOf } from "./iter.ts";
import { formHint, tfjsWeightHint } from "./tfjs_weights.ts";
import type { Kept } from "./kept.ts";
import { entryOf, sameShape, shapeText, toArena } from "./layout.ts";
import { SLOW_SUFFIX, weightKinds } from "./weight_kinds.ts";
import { checkWeightLive } from "./_hints.ts";

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
 * import { keptFromWeights } from "./set_weights.ts";
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
  if (steps === undefined) throw missingIter(weightValues.length);
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
  return { steps, kept };
}

/**
 * The error of weights given without `iter` (`count` of them): the moments would be taken at
 * step 0, where their bias corrections (and a schedule) need the steps that made them. tfjs's
 * own optimizers read the first weight as `iter` whatever its name (and fail on none).
 */
function missingIter(count: number): TypeError {
  return new TypeError(
    `${
      count === 0 ? "setWeights was given no weights: " : ""
    }Optimizer weight "iter" is missing (the steps taken, which getWeights gives first and ` +
      `the moments' bias corrections need); give { name: "iter", tensor: tf.scalar(steps, ` +
      `"int32") } with them`,
  );
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
