/**
 * Whether a checkpoint that `loadState` read, or the weights given to `setWeights`, belong to the
 * model: at least one of their tensors must fit a variable registered with TensorFlow.js, by the
 * rules the next step matches them by (kept.ts). A checkpoint (or weights) none of whose tensors
 * fits is another model's: taking its step count alone would start every variable from zero
 * moments at a late step, where Adam's first update is several times the learning rate; and none
 * may meet only variables of its name (or base name) of another shape (another version of the
 * model: its other tensors would load, that variable silently starting fresh). And
 * whether a checkpoint's moments are this optimizer's, by name, and its tensors in the tfjs
 * layout where it was saved under another `gc`.
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs-core";
import type { Settings } from "../base/settings.ts";
import { momentsOf } from "../core/origins.ts";
import { baseName, type Kept, keptFits, type Wanted } from "./kept.ts";
import { entryOf, fromArena, sameShape, shapeText } from "./layout.ts";

/** How many names an error lists of each side. */
const LISTED = 3;

/**
 * `names`, the first few quoted, then how many more.
 *
 * @example
 * ```ts
 * import { someNames } from "./matching.ts";
 * import assert from "node:assert/strict";
 *
 * assert.equal(someNames(["a", "b", "c", "d", "e"]), '"a", "b", "c" and 2 more');
 * ```
 */
export function someNames(names: readonly string[]): string {
  const shown = names.slice(0, LISTED).map((n) => JSON.stringify(n)).join(", ");
  return names.length > LISTED ? `${shown} and ${names.length - LISTED} more` : shown;
}

/**
 * The float32 variables registered with TensorFlow.js and not disposed: those an optimizer may
 * hold state for; with `trainable`, only the trainable ones (those a step may update).
 *
 * @example
 * ```ts
 * import * as tf from "@tensorflow/tfjs-core";
 * import "@tensorflow/tfjs-backend-cpu";
 * import { floatVariables } from "./matching.ts";
 * import assert from "node:assert/strict";
 *
 * await tf.setBackend("cpu");
 * const w = tf.variable(tf.zeros([2]), true, "float/trained");
 * const frozen = tf.variable(tf.zeros([2]), false, "float/frozen");
 * assert.ok(floatVariables(true).includes(w) && !floatVariables(true).includes(frozen));
 * assert.ok(floatVariables(false).includes(frozen));
 * tf.dispose([w, frozen]);
 * ```
 */
export function floatVariables(trainable: boolean): tf.Variable[] {
  return Object.values(tf.engine().registeredVariables).filter((v) =>
    (v.trainable || !trainable) && v.dtype === "float32" && !v.isDisposed
  );
}

/** The trainable float32 variables registered with TensorFlow.js: those a step may update. */
function registeredVariables(): Wanted[] {
  return floatVariables(true).map((v) => ({ name: v.name, shape: v.shape }));
}

/**
 * The names of the trainable float32 variables registered with TensorFlow.js, in the order of
 * their registration: those a step may update.
 *
 * @example
 * ```ts
 * import * as tf from "@tensorflow/tfjs-core";
 * import "@tensorflow/tfjs-backend-cpu";
 * import { trainableNames } from "./matching.ts";
 * import assert from "node:assert/strict";
 *
 * await tf.setBackend("cpu");
 * const w = tf.variable(tf.zeros([2]), true, "matching/trainable");
 * const frozen = tf.variable(tf.zeros([2]), false, "matching/frozen");
 * assert.ok(trainableNames().includes(w.name));
 * assert.ok(!trainableNames().includes(frozen.name));
 * tf.dispose([w, frozen]);
 * ```
 */
export function trainableNames(): string[] {
  return registeredVariables().map((v) => v.name);
}

/**
 * The names of the float32 variables registered with TensorFlow.js, trainable or not, in the
 * order of their registration. (A Sequential model's `compile` sets every variable of its
 * layers trainable again, a frozen layer's too, though no step updates those: tfjs-layers
 * keeps a layer's freezing on the layer, not on its variables.)
 *
 * @example
 * ```ts
 * import * as tf from "@tensorflow/tfjs-core";
 * import "@tensorflow/tfjs-backend-cpu";
 * import { floatVariableNames } from "./matching.ts";
 * import assert from "node:assert/strict";
 *
 * await tf.setBackend("cpu");
 * const w = tf.variable(tf.zeros([2]), true, "matching/trained");
 * const frozen = tf.variable(tf.zeros([2]), false, "matching/frozen");
 * const count = tf.variable(tf.zeros([1], "int32"), false, "matching/count");
 * assert.ok(floatVariableNames().includes(w.name));
 * assert.ok(floatVariableNames().includes(frozen.name));
 * assert.ok(!floatVariableNames().includes(count.name));
 * tf.dispose([w, frozen, count]);
 * ```
 */
export function floatVariableNames(): string[] {
  return floatVariables(false).map((v) => v.name);
}

/**
 * The variables a config of an optimizer with parameter groups names (`getConfig`): those of its
 * state and kept aside, `names`; before the first step (none), each trainable variable
 * registered with TensorFlow.js (a TypeError where there is none); then each other float32
 * variable registered whose base name none of those has (a frozen layer's).
 */
export function groupedNames(names: string[]): string[] {
  if (names.length === 0) names = trainableNames();
  if (names.length === 0) {
    throw new TypeError(
      "getConfig of an optimizer with parameter groups needs its variables: build the model first (no trainable variable is registered with TensorFlow.js)",
    );
  }
  const listed = new Set(names.map(baseName));
  return [...names, ...floatVariableNames().filter((name) => !listed.has(baseName(name)))];
}

/**
 * Refuses, with a RangeError naming a few tensors of the file and a few variables, a checkpoint
 * (read into `kept`, at step `steps`) none of whose tensors fits a trainable float32 variable
 * registered with TensorFlow.js: same name, or the same base name (without tfjs's `_<n>`
 * suffix), and the shape it was held in (`gc`: kernels transposed). A base name several
 * registered variables share (two loaded copies of a model, `<name>_1` and `<name>_2`) fits
 * here: the step, which sees only its own variables, decides which one takes it. And refuses, with
 * a RangeError naming it and both shapes, one whose variables of its name or base name (trainable
 * or not) are all of another shape: another model's, or another version of the model (the others
 * would load, that variable silently starting fresh). With `weights`, the names of the weights
 * given to `setWeights` that `kept` was read from, the errors are worded for them and name those.
 * Changes nothing.
 *
 * @example
 * ```ts
 * import * as tf from "@tensorflow/tfjs-core";
 * import "@tensorflow/tfjs-backend-cpu";
 * import { checkSomeTensorFits } from "./matching.ts";
 * import { entryOf } from "./layout.ts";
 * import assert from "node:assert/strict";
 *
 * await tf.setBackend("cpu");
 * const w = tf.variable(tf.zeros([2]), true, "matching/w");
 * const kept = (name: string) =>
 *   new Map([[name, { entry: entryOf(name, [2], false), arenaShape: [2], sections: [] }]]);
 * checkSomeTensorFits(kept("matching/w_1"), 5, false); // the same base name and shape: fits
 * assert.throws(() => checkSomeTensorFits(kept("other/w"), 5, false), RangeError);
 * assert.throws(() => checkSomeTensorFits(kept("other/w"), 5, false, ["other/w/m"]), /"other\/w\/m"/);
 * w.dispose();
 * ```
 */
export function checkSomeTensorFits(
  kept: ReadonlyMap<string, Kept>,
  steps: number,
  gc: boolean,
  weights?: readonly string[],
): void {
  const wanted = registeredVariables();
  for (const [name, k] of kept) {
    const base = baseName(name);
    if (wanted.some((w) => baseName(w.name) === base && keptFits(k, w.shape, gc))) {
      return checkNoMisfit(kept, gc, weights);
    }
  }
  const variables = wanted.length === 0
    ? "none is registered: build or load the model first"
    : `the model has ${someNames(wanted.map((w) => w.name))}`;
  const [given, rule, whose] = weights === undefined
    ? [
      `No tensor of this checkpoint fits a trainable variable of the model: it holds ${
        someNames([...kept.keys()])
      }`,
      "A tensor goes to the variable of its name",
      "is it another model's checkpoint?",
    ]
    : [
      `No optimizer weight given to setWeights fits a trainable variable of the model: they are ${
        someNames(weights)
      }`,
      'A weight "<variable>/<moment>" goes to the variable of its name',
      "are they another model's weights?",
    ];
  throw new RangeError(
    `${given}; ${variables}. ${rule}, or of its base name (without tfjs's "_<n>" suffix) where ` +
      `that is one variable, of the same shape. It would start every variable from zero ` +
      `moments at step ${steps}: refused, nothing changed (${whose})`,
  );
}

/**
 * Throws a TypeError where a checkpoint of the optimizer `file` holds a state that `config` does
 * not keep under its name: a moment of another name in its place (SGD's `momentum_buffer` where
 * Adam keeps `exp_avg`), one more (Adam's `exp_avg_sq` for Lion), or slow weights without
 * LookAhead. Its values would be taken by position, as another moment's, or dropped; `setWeights`
 * refuses such weights by name.
 *
 * @example
 * ```ts
 * import { checkSameKinds } from "./matching.ts";
 * import { adam, lion, radam, ranger, sgd } from "@optim/radam";
 * import assert from "node:assert/strict";
 *
 * checkSameKinds(adam().settings, radam().settings); // the same moments
 * checkSameKinds(ranger().settings, radam().settings); // its slow weights start at the params
 * assert.throws(() => checkSameKinds(adam().settings, sgd({ momentum: 0.9 }).settings), TypeError);
 * assert.throws(() => checkSameKinds(lion().settings, adam().settings), /exp_avg_sq/);
 * assert.throws(() => checkSameKinds(radam().settings, ranger().settings), /slow weights/);
 * ```
 */
export function checkSameKinds(config: Settings, file: Settings): void {
  const ours = momentsOf(config).map((m) => m.name);
  const theirs = momentsOf(file).map((m) => m.name);
  const other = theirs.findIndex((name, k) => ours[k] !== name);
  const what = other >= 0
    ? `moment ${theirs[other]}`
    : file.lookahead && !config.lookahead
    ? "slow weights"
    : undefined;
  if (what === undefined) return;
  throw new TypeError(
    `This checkpoint is of ${file.name}, whose ${what} this ${config.name} does not keep (it keeps ${
      [...ours, ...(config.lookahead ? ["slow weights"] : [])].join(", ") || "no state"
    }): load it into an optimizer that keeps them; nothing was changed`,
  );
}

/**
 * The state of a tensor read from a checkpoint saved under another `gc` than this optimizer's,
 * flat in the tfjs order, so that it fits a variable of its size as a checkpoint of a webgpu
 * state does (and is transposed when taken where this optimizer centralizes). Saved without
 * `gc`, a tensor of rank > 1 is in the tfjs order already; saved under `gc` (`fileGc`), one of
 * rank 2 is a kernel held transposed, `[out, rest]`: its f32 values are put back in the tfjs
 * order, and its 8-bit moments are kept as they are, marked as in the transposed order (as
 * `setWeights` keeps `<variable>/m.transposed.codes`): the step that takes them reorders them
 * (code_order.ts), and `getWeights` before it gives them back as codes. Taken by the shape it
 * was saved in, a square kernel's moments went to the transposed elements, and any other's were
 * refused as another model's.
 *
 * @example
 * ```ts
 * import { inTfjsLayout } from "./matching.ts";
 * import { entryOf } from "./layout.ts";
 * import assert from "node:assert/strict";
 *
 * const m = new Float32Array([1, 2, 3, 4, 5, 6]); // [out 2, rest 3], held transposed under gc
 * const read = { entry: entryOf("k", [6], false), arenaShape: [2, 3], sections: [, , m] };
 * const flat = inTfjsLayout(read, true);
 * assert.deepEqual(flat.arenaShape, [6]);
 * assert.deepEqual(flat.sections[2], new Float32Array([1, 4, 2, 5, 3, 6])); // [rest 3, out 2]
 * assert.deepEqual(inTfjsLayout({ ...read, arenaShape: [3, 2] }, false).sections[2], m);
 * // 8-bit moments stay codes, in the order they were saved in, marked so.
 * const codes = { codes: new Int8Array(6), scales: new Float32Array(1) };
 * const coded = inTfjsLayout({ ...read, sections: [], codes: [codes] }, true);
 * assert.equal(coded.codes![0], codes);
 * assert.deepEqual(coded.codesTransposed, [true]);
 * ```
 */
export function inTfjsLayout(read: Kept, fileGc: boolean): Kept {
  const held = read.arenaShape!;
  const size = read.entry.size;
  if (held.length < 2) return read;
  if (!fileGc) return { ...read, arenaShape: [size] };
  // Held as [cols, rows] of a tfjs [rows, cols]: the arena layout of a transposed entry.
  const entry = entryOf(read.entry.name, [held[1], held[0]], true);
  const sections = read.sections.map((s) => s && fromArena(entry, s));
  const codes = read.codes && { codes: read.codes, codesTransposed: read.codes.map(() => true) };
  return { entry: read.entry, arenaShape: [size], sections, ...codes };
}

/**
 * Throws a RangeError naming the first tensor of `kept` (or, with `weights`, its first weight)
 * whose variable is registered with TensorFlow.js (by its name or base name, trainable or not)
 * but with a shape it does not fit: another model's state, or another version of the model,
 * which the step would leave aside, that variable starting fresh at the loaded step count.
 */
function checkNoMisfit(
  kept: ReadonlyMap<string, Kept>,
  gc: boolean,
  weights?: readonly string[],
): void {
  const byBase = new Map<string, tf.Variable[]>();
  for (const v of floatVariables(false)) {
    const base = baseName(v.name);
    byBase.set(base, [...byBase.get(base) ?? [], v]);
  }
  for (const [name, k] of kept) {
    const named = byBase.get(baseName(name)) ?? [];
    if (named.length === 0 || named.some((v) => keptFits(k, v.shape, gc))) continue;
    const v = named.find((v) => v.name === name) ?? named[0];
    const held = k.sizes
      ? `codes for ${k.sizes[0]} to ${k.sizes[1]} elements`
      : `of shape ${shapeText(k.arenaShape ?? k.entry.shape)}`;
    const what = weights === undefined
      ? `The checkpoint's tensor ${JSON.stringify(name)} is ${held}`
      : `Optimizer weight ${
        JSON.stringify(weights.find((w) => w.startsWith(`${name}/`)) ?? name)
      } is ${held}`;
    throw new RangeError(
      `${what}, but the model's variable ${JSON.stringify(v.name)} is ${
        shapeText(v.shape)
      }: it would start from zero moments (are they another model's ${
        weights === undefined ? "state" : "weights"
      }, or another version of it?); refused, nothing changed`,
    );
  }
}

/**
 * Checks weights that `setWeights` took per variable name (`loaded`; `suffix`, their names'
 * ending; `what`, what they hold) against the float32 variables registered with TensorFlow.js:
 * a RangeError naming the weight and both shapes where the variables of its name or base name
 * (trainable or not) are all of another shape, as a moment's: it would be dropped at the next
 * call. Weights of no such variable pass (kept, as moments are, until one comes). `kind` names
 * what they were given as (a checkpoint's tensors: `"Checkpoint tensor"`).
 */
export function checkLoadedShapes(
  loaded: Iterable<readonly [string, { readonly shape: readonly number[] }]>,
  suffix: string,
  what: string,
  kind = "Optimizer weight",
): void {
  let variables: tf.Variable[] | undefined;
  for (const [name, t] of loaded) {
    variables ??= floatVariables(false);
    const named = variables.filter((v) => baseName(v.name) === baseName(name));
    if (named.length === 0 || named.some((v) => sameShape(v.shape, t.shape))) continue;
    const v = named.find((v) => v.name === name) ?? named[0];
    throw new RangeError(
      `${kind} ${JSON.stringify(name + suffix)} (${what}) is of shape ` +
        `${shapeText(t.shape)}, but the model's variable ${JSON.stringify(v.name)} is ` +
        `${shapeText(v.shape)} (are they another model's weights, or another version of it?); ` +
        "refused, nothing changed",
    );
  }
}
