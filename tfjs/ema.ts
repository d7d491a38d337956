/**
 * The exponential moving average of the trained variables (option `ema`, Keras's `use_ema`):
 * one float32 tensor per variable on tfjs's own backend, updated after each step taken; swapped
 * into the variables for evaluation and back, or written into them at the end of training
 * (Keras's `finalize_variable_values`); given by `getWeights` as `<variable>/average` and taken
 * back by `setWeights`.
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs-core";
import { optionError } from "../base/_errors.ts";
import { checkKeys } from "../base/schema.ts";
import type { GradItem, NamedTensor } from "./gradients.ts";
import { baseName } from "./kept.ts";
import type { DeviceDecision } from "./_step_decision.ts";
import { floatVariables } from "./matching.ts";
import { sameShape } from "./layout.ts";

/**
 * Option `ema` of `tfOptimizer`: Keras's `use_ema` with `ema_momentum` and
 * `ema_overwrite_frequency`.
 *
 * @example Keras's `use_ema=True, ema_momentum=0.999, ema_overwrite_frequency=100`
 * ```ts
 * import { adam } from "@optim/radam";
 * import { type EmaOptions, tfOptimizer } from "@optim/radam/tfjs";
 *
 * const ema: EmaOptions = { momentum: 0.999, overwriteFrequency: 100 };
 * const optimizer = tfOptimizer(adam(), { ema });
 * ```
 */
export interface EmaOptions {
  /**
   * The momentum `m` of `average = m · average + (1 − m) · variable`, a number from 0 to 1.
   * Default 0.99.
   */
  momentum?: number;
  /**
   * Every this many steps (an integer from 1 to 2³¹ − 1), the variables are overwritten with
   * their averages after the step's update of them, as Keras does (counted in steps taken, as
   * `iterations` counts them, a skipped one left out: on webgpu as the device counts them, with
   * no readback, before it reports them); absent (default): never during training, call
   * `averages.finalize()` at its end.
   */
  overwriteFrequency?: number;
}

/**
 * Option `ema` with its defaults, as `averages.settings` gives it and the config stores it.
 *
 * @example
 * ```ts
 * import { adam } from "@optim/radam";
 * import { type EmaSettings, tfOptimizer } from "@optim/radam/tfjs";
 *
 * const settings: EmaSettings = tfOptimizer(adam(), { ema: true }).averages!.settings;
 * console.log(settings.momentum, settings.overwriteFrequency); // 0.99 undefined
 * ```
 */
export interface EmaSettings {
  /** The momentum. */
  readonly momentum: number;
  /** The steps between overwrites of the variables; absent: never. */
  readonly overwriteFrequency?: number;
}

/** The suffix of a variable's average among the optimizer's weights. */
export const AVERAGE_SUFFIX = "/average";

/** Checks option `ema`; returns it with its defaults, or undefined where it is off. */
export function checkEma(ema: unknown): EmaSettings | undefined {
  if (ema === undefined || ema === false) return undefined;
  if (ema === true) return { momentum: 0.99 };
  if (typeof ema !== "object" || ema === null || Array.isArray(ema)) {
    const { message } = optionError("ema", "a boolean or { momentum, overwriteFrequency }", ema);
    // (Not 0 and 1, false and true as numbers?, nor a number no momentum takes.)
    const momentum = typeof ema === "number" && ema > 0 && ema < 1;
    const hint = momentum ? ` (a momentum: ema: { momentum: ${ema} })` : "";
    throw new TypeError(message + hint);
  }
  // Keras's ema_momentum; decay, as other libraries name it.
  checkKeys(
    ema,
    ["momentum", "overwriteFrequency"],
    "ema",
    undefined,
    (key) => /^(decay|ema_?momentum)$/i.test(key) ? ` (${key} is momentum here)` : "",
  );
  const { momentum = 0.99, overwriteFrequency } = ema as EmaOptions;
  if (typeof momentum !== "number" || !(momentum >= 0 && momentum <= 1)) {
    throw optionError("ema.momentum", "a number from 0 to 1", momentum);
  }
  if (overwriteFrequency === undefined) return { momentum };
  const f = overwriteFrequency;
  if (!Number.isInteger(f) || f < 1 || f > 2 ** 31 - 1) {
    throw optionError("ema.overwriteFrequency", "an integer from 1 to 2³¹ − 1", f);
  }
  return { momentum, overwriteFrequency: f };
}

/** One variable's average; its variable unknown for one loaded by `setWeights` until bound. */
interface Held {
  variable: tf.Variable | undefined;
  average: tf.Tensor;
  /**
   * Where the device decides whether a step was taken (webgpu): a boolean scalar on it, whether
   * a step of the variable was taken since its average was made (until then the average is the
   * variable's value, and the first step taken makes it the variable's); else undefined.
   */
  started?: tf.Tensor;
}

/** Disposes an average and its flag. */
function drop(held: Held): void {
  held.average.dispose();
  held.started?.dispose();
}

/**
 * A copy of `t` in new data (a `tf.clone` would share it, which a step may write in place).
 *
 * @example
 * ```ts
 * import * as tf from "@tensorflow/tfjs-core";
 * import "@tensorflow/tfjs-backend-cpu";
 * import { copyOf } from "./ema.ts";
 * import assert from "node:assert/strict";
 *
 * await tf.setBackend("cpu");
 * const t = tf.tensor1d([1, 2]);
 * const copy = copyOf(t);
 * t.dispose();
 * assert.deepEqual([...copy.dataSync()], [1, 2]);
 * copy.dispose();
 * ```
 */
export function copyOf(t: tf.Tensor): tf.Tensor {
  return tf.tile(t, t.shape.map(() => 1));
}

/**
 * The moving averages of an optimizer's variables (option `ema`), `optimizer.averages`. Updated
 * after each step taken, as Keras's `_update_model_variables_moving_average`: at a variable's
 * first step its average is its value after that step (Keras: momentum 0 at iteration 0), then
 * `average = m · average + (1 − m) · variable` in float32 tfjs ops (`m` and `1 − m` rounded to
 * float32, as Keras casts them). With `gradientAccumulationSteps`, once per step, not per call
 * (Keras 3 updates it at every call, so that calls 1 to N − 1 pull it N − 1 more times towards
 * variables they left unchanged); a step skipped for a non-finite gradient (`nonFinite: "skip"`)
 * leaves it unchanged (on webgpu, where the device decides, by the step kernel's own decision, a
 * flag on the device: no readback; there, a step not taken for any reason, a halted state's too,
 * leaves it, and a first step skipped does not start it, as on the CPU). A variable
 * left out of a step (frozen) keeps its average as it was, and goes on from it when it comes
 * back (one loaded for it while it is frozen too); a new one starts from its value after its
 * first step; one disposed (or loaded, fitting no variable registered any more) is dropped at the
 * next step.
 *
 * @example Evaluate with the averages, then keep them
 * ```ts
 * import * as tf from "@tensorflow/tfjs-core";
 * import "@tensorflow/tfjs-backend-cpu";
 * import { sgd } from "@optim/radam";
 * import { tfOptimizer } from "@optim/radam/tfjs";
 * import assert from "node:assert/strict";
 *
 * await tf.setBackend("cpu");
 * const w = tf.variable(tf.tensor1d([1]), true, "ema-doc/w");
 * const optimizer = tfOptimizer(sgd({ lr: 0.5 }), { ema: { momentum: 0.5 } });
 * for (let i = 0; i < 2; i++) optimizer.applyGradients({ [w.name]: tf.ones([1]) });
 * // w: 1 → 0.5 → 0; average: 0.5 (first step), then 0.5·0.5 + 0.5·0 = 0.25
 * optimizer.averages!.swap(); // the averages into the variables, for evaluation
 * assert.deepEqual([...w.dataSync()], [0.25]);
 * optimizer.averages!.swap(); // and back
 * assert.deepEqual([...w.dataSync()], [0]);
 * optimizer.averages!.finalize(); // the end of training: the variables take their averages
 * assert.deepEqual([...w.dataSync()], [0.25]);
 * optimizer.dispose();
 * w.dispose();
 * ```
 */
export interface EmaAverages {
  /** The option's settings, with their defaults. */
  readonly settings: EmaSettings;
  /**
   * Whether `swap()` put the averages into the variables (until it is called again, or `dispose`
   * drops the averages: the variables keep what they hold).
   */
  readonly swapped: boolean;
  /** The names of the variables with an average, in the order first stepped (or loaded). */
  names(): string[];
  /**
   * Swaps each average with its variable's value, bit for bit (copies: nothing shared with the
   * variables); called again, swaps them back. For evaluation (`model.evaluate`,
   * `model.predict`) or a save of the averaged model. Averages loaded by `setWeights` and not yet
   * stepped are bound first to the trainable variables registered with TensorFlow.js, by name
   * (or base name: a loaded model's `<name>_<n>`); after a `model.fit` step since the load (a
   * `minimize` call with a `varList`), to the model's trainable weights only (the last call's),
   * not to a layer's made with `trainable: false`, whose variables tfjs leaves marked trainable
   * (before any step nothing tells them apart: freeze such a layer after it is built,
   * `layer.trainable = false`, for a swap to leave it); where several could be an average's (a
   * model loaded beside the one it was saved from), a TypeError naming them, nothing changed. A
   * step while swapped is refused with a TypeError, nothing changed (it would train the
   * averages): swap back first. Once the optimizer is disposed, a TypeError, as its own methods.
   * While swapped, `getWeights` (a `model.save`) gives the averages both as the variables and as
   * `<variable>/average`: training resumed from it goes on from the averages; `setWeights` and
   * `loadState` are refused with a TypeError, nothing changed (they would drop the training
   * weights the swap holds aside, the variables left holding the old averages): swap back
   * first; and `dispose` ends the swap with the averages left in the variables.
   */
  swap(): void;
  /**
   * Overwrites the variables with their averages, as Keras's `finalize_variable_values` at the
   * end of `fit` (tfjs's `model.fit` has no such hook: call it after training, or use
   * `emaCallback`). The averages are kept (a later step goes on averaging). Where `swap()` put
   * the averages into the variables, they stay there, and the swap ends. Averages loaded and not
   * yet stepped are bound as by `swap()`. Once the optimizer is disposed, a TypeError.
   */
  finalize(): void;
}

/** The moving averages of option `ema` (see {@linkcode EmaAverages}). */
export class WeightAverages implements EmaAverages {
  /** The option's settings. */
  readonly settings: EmaSettings;
  readonly #held = new Map<string, Held>();
  readonly #live: () => void;
  #swapped = false;
  /**
   * The variables the last `minimize` call was given (`varList`: under `model.fit`, the model's
   * trainable weights), kept after it; undefined before one, after one without a `varList`, after
   * an `applyGradients` call of the caller's own, and after the averages are replaced or dropped
   * (`setWeights`, `loadState`, `dispose`: those loaded may be of other variables). Where known,
   * an average loaded goes to one of them only at `swap()` and `finalize()` (not to a layer made
   * with `trainable: false`, whose variables tfjs leaves trainable but `model.fit` trains not).
   */
  trained: readonly tf.Variable[] | undefined;

  /**
   * The averages of option `ema` (made by the optimizer); `live` throws the TypeError of a
   * disposed optimizer, at each `swap()` and `finalize()`.
   */
  constructor(settings: EmaSettings, live: () => void = () => {}) {
    this.settings = settings;
    this.#live = live;
  }

  /** Whether `swap()` put the averages into the variables (until it is called again). */
  get swapped(): boolean {
    return this.#swapped;
  }

  /**
   * Throws a TypeError while `swap()` holds the averages in the variables: of a step (it would
   * train the averages), or of the call `load` (`setWeights`, `loadState`: it would replace the
   * averages, and the training weights the swap holds aside, the variables left with the old
   * averages).
   */
  checkNotSwapped(load?: string): void {
    if (!this.#swapped) return;
    throw new TypeError(
      "The moving averages are swapped into the variables (averages.swap()): " +
        (load === undefined
          ? "a step now would train the averages; call averages.swap() again before training"
          : `${load} now would drop the training weights the swap holds aside, the variables ` +
            "left holding the averages; call averages.swap() again first (nothing changed)"),
    );
  }

  /** The names of the variables with an average, in the order first stepped (or loaded). */
  names(): string[] {
    return [...this.#held.keys()];
  }

  /** Whether a step over other variables keeps an average of `name` (a frozen variable's). */
  keeps(name: string): boolean {
    const held = this.#held.get(name);
    if (held?.variable !== undefined) return !held.variable.isDisposed;
    return held !== undefined && this.#claimable()(name, held);
  }

  /**
   * After a step over `items`' variables: each average updated (or started), those of disposed
   * variables dropped; then, every `overwriteFrequency` steps (`steps`: the count now), the
   * variables overwritten with their averages. `device` is the device's decision where only the
   * device knows whether the step was taken, and at which count (webgpu): then it, not `steps`,
   * says whether to overwrite. (The optimizer calls it for the steps it knows are taken.)
   */
  update(items: readonly GradItem[], steps: number, device?: DeviceDecision): void {
    const taken = device?.taken;
    this.#bind(items.map((i) => i.variable));
    const m = Math.fround(this.settings.momentum);
    const rest = Math.fround(1 - m);
    for (const { name, variable } of items) {
      if (variable.isDisposed) continue;
      const held = this.#held.get(name);
      if (held === undefined || held.variable !== variable) {
        if (held !== undefined) drop(held);
        this.#held.delete(name); // (a variable made again under the name: anew, last)
        // (A step the device may have skipped: the variable as it is either way, and a flag.)
        const started = taken && tf.keep(tf.clone(taken));
        this.#held.set(name, { variable, average: tf.keep(copyOf(variable)), started });
        continue;
      }
      const [next, started] = tf.tidy(() => {
        const moved = tf.add(tf.mul(held.average, m), tf.mul(variable, rest));
        if (taken === undefined) return [moved, undefined];
        const from = held.started === undefined ? moved : tf.where(held.started, moved, variable);
        const started = held.started && tf.logicalOr(held.started, taken);
        return [tf.where(taken, from, held.average), started];
      });
      drop(held);
      held.average = tf.keep(next);
      held.started = started && tf.keep(started);
    }
    const claimed = this.#claimable();
    for (const [name, held] of this.#held) {
      if (held.variable?.isDisposed || (held.variable === undefined && !claimed(name, held))) {
        drop(held);
        this.#held.delete(name);
      }
    }
    const f = this.settings.overwriteFrequency;
    const names = () => items.map((i) => i.name);
    // (On webgpu, where the device took the step at a multiple of f steps taken, as on the CPU.)
    if (device?.overwrite !== undefined) this.#overwrite(names(), device.overwrite);
    else if (device === undefined && f !== undefined && steps % f === 0) this.#overwrite(names());
  }

  /**
   * Whether an average loaded under `name`, not bound, could still be a float32 variable's
   * registered with TensorFlow.js (a frozen one's too, whose average waits for it to train
   * again): one of its name, or of its base name without an average of its own, and of its shape. One that could not (a model loaded again under new names, whose step
   * started their averages anew where several of one base name could not be told apart; another
   * model's) is dropped at the step, as a sum is: else every `getWeights` saved it again.
   */
  #claimable(): (name: string, held: Held) => boolean {
    const byBase = new Map<string, tf.Variable[]>();
    if ([...this.#held.values()].some((h) => h.variable === undefined)) {
      // Frozen ones too (trainable false): their averages are kept for when they train again.
      for (const v of floatVariables(false)) {
        const base = baseName(v.name);
        if (byBase.has(base)) byBase.get(base)!.push(v);
        else byBase.set(base, [v]);
      }
    }
    return (name, held) =>
      (byBase.get(baseName(name)) ?? []).some((v) =>
        sameShape(v.shape, held.average.shape) && (v.name === name || !this.#held.has(v.name))
      );
  }

  /**
   * The variables of `names` overwritten with copies of their averages; with `when` (a boolean
   * scalar on the device), only where it is true.
   */
  #overwrite(names: readonly string[], when?: tf.Tensor): void {
    for (const name of names) {
      const held = this.#held.get(name);
      if (held?.variable === undefined || held.variable.isDisposed) continue;
      const { average, variable } = held;
      const values = when ? tf.where(when, average, variable) : copyOf(average);
      held.variable.assign(values);
      values.dispose();
    }
  }

  /**
   * Throws a TypeError, before anything changes, where an average loaded by `setWeights` and not
   * yet bound could be that of several of `variables` (all those registered with TensorFlow.js:
   * a model loaded beside the one it was saved from has its variables as `<name>_<n>`, and the
   * other one's of the average's own name). After a step, its variables tell.
   */
  #checkBindable(variables: readonly tf.Variable[]): void {
    for (const [name, held] of this.#held) {
      if (held.variable !== undefined) continue;
      const could = variables.filter((v) =>
        !v.isDisposed && sameShape(v.shape, held.average.shape) &&
        baseName(v.name) === baseName(name) && (v.name === name || !this.#held.has(v.name))
      );
      if (could.length < 2) continue;
      throw new TypeError(
        `The moving average ${JSON.stringify(name + AVERAGE_SUFFIX)} loaded by setWeights ` +
          `could be that of any of the variables ${could.map((v) => JSON.stringify(v.name))} ` +
          "(models of the same names registered with TensorFlow.js); refused, nothing changed: " +
          "take a step of the model first, or dispose the other model",
      );
    }
  }

  /**
   * Binds averages loaded by `setWeights` to `variables`: by name and shape, else by base name
   * (a loaded model's variables may be `<name>_<n>`) where exactly one variable of that base name
   * and shape has no average and no other loaded average has that base name.
   */
  #bind(variables: readonly tf.Variable[]): void {
    const loaded = [...this.#held].filter(([, h]) => h.variable === undefined);
    for (const [name, held] of loaded) {
      const fits = (v: tf.Variable) => !v.isDisposed && sameShape(v.shape, held.average.shape);
      const exact = variables.find((v) => v.name === name && fits(v));
      if (exact !== undefined) {
        held.variable = exact;
        continue;
      }
      const base = baseName(name);
      const others = loaded.filter(([o]) => o !== name && baseName(o) === base);
      const candidates = variables.filter((v) =>
        fits(v) && !this.#held.has(v.name) && baseName(v.name) === base
      );
      if (candidates.length !== 1 || others.length > 0) continue;
      const renamed = [...this.#held].map(([n, h]) =>
        [n === name ? candidates[0].name : n, h] as const
      );
      this.#held.clear();
      for (const [n, h] of renamed) this.#held.set(n, h);
      held.variable = candidates[0];
    }
  }

  /**
   * Binds the averages loaded to the trainable variables registered (of `trained`, where known),
   * where that can be told.
   */
  #bindRegistered(): void {
    const trained = this.trained;
    const variables = floatVariables(true).filter((v) => trained?.includes(v) ?? true);
    this.#checkBindable(variables);
    this.#bind(variables);
  }

  /** See {@linkcode EmaAverages.swap}. */
  swap(): void {
    this.#live();
    if (!this.#swapped) this.#bindRegistered(); // (back: only those swapped in)
    for (const held of this.#held.values()) {
      const variable = held.variable;
      if (variable === undefined || variable.isDisposed) continue;
      const into = copyOf(held.average);
      const out = tf.keep(copyOf(variable));
      variable.assign(into);
      into.dispose();
      held.average.dispose();
      held.average = out;
    }
    this.#swapped = !this.#swapped;
  }

  /** See {@linkcode EmaAverages.finalize}. */
  finalize(): void {
    this.#live();
    if (this.#swapped) {
      for (const held of this.#held.values()) {
        if (held.variable === undefined || held.variable.isDisposed) continue;
        held.average.dispose();
        held.average = tf.keep(copyOf(held.variable));
      }
      this.#swapped = false;
      return;
    }
    this.#bindRegistered();
    this.#overwrite([...this.#held.keys()]);
  }

  /**
   * The averages as weights, copies the caller owns: `<variable>/average` per variable (while
   * swapped, the variables hold them). Where a copy fails, those made are disposed.
   */
  weights(): NamedTensor[] {
    const weights: NamedTensor[] = [];
    try {
      for (const [name, held] of this.#held) {
        const source = this.#swapped && held.variable !== undefined && !held.variable.isDisposed
          ? held.variable
          : held.average;
        weights.push({ name: name + AVERAGE_SUFFIX, tensor: copyOf(source) });
      }
    } catch (error) {
      tf.dispose(weights.map((w) => w.tensor)); // (a backend short of memory: none is left)
      throw error;
    }
    return weights;
  }

  /** Replaces the averages with `loaded` (taken: disposed with these); none: start afresh. */
  load(loaded: ReadonlyMap<string, tf.Tensor>): void {
    this.clear();
    for (const [name, average] of loaded) this.#held.set(name, { variable: undefined, average });
  }

  /**
   * Drops every average (and a swap: the variables keep what they hold), and the variables of the
   * last `minimize` call (`trained`): averages loaded next bind by name until the next one.
   */
  clear(): void {
    for (const held of this.#held.values()) drop(held);
    this.#held.clear();
    this.#swapped = false;
    this.trained = undefined;
  }
}
