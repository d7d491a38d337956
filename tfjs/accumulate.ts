/**
 * Gradient accumulation for the TensorFlow.js adapter (option `gradientAccumulationSteps`): the
 * gradients of N `applyGradients` calls summed per variable, in tensors on tfjs's own backend,
 * and their mean stepped through the normal step at the N-th call; the partial sums as optimizer
 * weights (`<variable>/accum` and `accum_count`) for `getWeights` and `setWeights` (those given
 * to `setWeights` sorted, checked and read by accum_weights.ts).
 *
 * @module
 */
import { isHeaderCapRefusal } from "../core/checkpoint_header.ts";
import { firstBadValue } from "../core/checkpoint_tensors.ts";
import { ACCUM_COUNT_KEY } from "../core/extra_tensors.ts";
import * as tf from "@tensorflow/tfjs-core";
import {
  changeError,
  type GradItem,
  inOrderOf,
  type NamedTensor,
  sameVariables,
} from "./gradients.ts";
import { type Entry, sameShape } from "./layout.ts";
import { baseName } from "./kept.ts";
import { readHost } from "./wasm_heap.ts";
import { floatVariables } from "./matching.ts";

/** The suffix of a variable's partial sum among the weights. */
export const SUM_SUFFIX = "/accum";

/** One variable's partial sum: its variable (unknown for a sum loaded by `setWeights`). */
interface Sum {
  variable: tf.Variable | undefined;
  sum: tf.Tensor;
}

/** Partial sums read from weights, to take once the weights' other checks passed. */
export interface LoadedSums {
  count: number;
  sums: Map<string, tf.Tensor>;
}

/**
 * The gradient accumulator of one optimizer: calls 1..N−1 add their gradients into per-variable
 * sums (the first's a `tf.clone`, which shares its data: no copy); the N-th steps the mean of
 * the sums and its own, `sum / N`, the sums then emptied where that step is taken (or skipped),
 * and left as they were where it throws.
 *
 * @example Four micro-batches make one step
 * ```ts
 * import * as tf from "@tensorflow/tfjs-core";
 * import "@tensorflow/tfjs-backend-cpu";
 * import { Accumulator } from "./accumulate.ts";
 * import assert from "node:assert/strict";
 *
 * await tf.setBackend("cpu");
 * const w = tf.variable(tf.zeros([2]), true, "accumulate-doc/w");
 * const accumulator = new Accumulator(4);
 * const means: number[][] = [];
 * for (let i = 1; i <= 8; i++) {
 *   const tensor = tf.fill([2], i);
 *   accumulator.run([{ name: w.name, variable: w, tensor }], [], false, (items) => {
 *     means.push([...items[0].tensor.dataSync()]);
 *   });
 *   tensor.dispose();
 * }
 * assert.deepEqual(means, [[2.5, 2.5], [6.5, 6.5]]);
 * assert.equal(accumulator.count, 0);
 * ```
 */
export class Accumulator {
  /** N: the calls whose mean makes one step. */
  readonly steps: number;
  #count = 0;
  readonly #sums = new Map<string, Sum>();
  /** Whether some sum was loaded by `setWeights` and has no variable yet. */
  #loaded = false;
  /** Whether some call summed since the last step was not checked finite (`run`'s `finite`). */
  #unchecked = false;
  /** Whether the N-th call's step runs (a schedule or callback it calls runs inside it). */
  #stepping = false;
  /**
   * The variables `minimize` was given (`varList`: under `model.fit`, the model's trainable
   * weights) while its call runs, else undefined: a sum loaded and given no gradient since goes
   * to one of them only (not to a layer's made with `trainable: false`, whose variables tfjs
   * leaves trainable, but `model.fit` does not train).
   */
  trained: readonly tf.Variable[] | undefined;

  /** An accumulator of `steps` calls (1: each call steps, nothing is held). */
  constructor(steps: number) {
    this.steps = steps;
  }

  /** The calls summed since the last step (0 to N − 1). */
  get count(): number {
    return this.#count;
  }

  /**
   * Whether every sum held is known finite: each call summed was checked (`run`'s `finite`, as
   * under `nonFinite: "throw"` on the CPU backends), and sums loaded were checked at their load
   * (`setWeights` and `loadState` check them under `"throw"`). False from a call summed unchecked
   * (on webgpu, which checks at the step only) until the sums are emptied or replaced.
   */
  get checked(): boolean {
    return !this.#unchecked;
  }

  /**
   * One call: with N = 1, `step(items)`; else adds `items` to the sums, and at the N-th call
   * steps their mean. `entries` are the state's variables, which option `strict` holds every call
   * to (and, before the first step, those of the accumulation under way); a call that differs
   * is then refused before anything changes, and so is one of calls 1 to N − 1 whose new sums
   * hold a non-finite number where `finite` (option `nonFinite: "throw"` on the CPU: a non-finite
   * gradient, or the overflow of finite ones, which would make every later N-th call throw; the
   * N-th call's step checks the mean). An N-th call whose step throws leaves the sums and count
   * as they were. Callers pass no call without gradients: it is not one of the N.
   */
  run(
    items: readonly GradItem[],
    entries: readonly Entry[],
    strict: boolean,
    step: (items: readonly GradItem[]) => void,
    finite = false,
  ): void {
    if (this.steps === 1) return step(items);
    this.#matchLoadedNames(items); // (a refused call may rename a sum: the same it would be later)
    if (strict) this.#checkSame(items, entries);
    if (this.#count + 1 < this.steps) {
      const added: tf.Tensor[] = [];
      try {
        for (const item of items) added.push(this.#added(item));
        if (finite) checkFinite(items, added, this.#count + 1);
      } catch (error) {
        tf.dispose(added);
        throw error;
      }
      items.forEach((item, i) => this.#take(item, added[i]));
      this.#count++;
      if (!finite) this.#unchecked = true;
      return;
    }
    const means = this.#means(items);
    this.#stepping = true;
    try {
      if (means.length > 0) step(means); // (none: every variable summed was disposed)
    } catch (error) {
      throw stuckError(error, this.#count);
    } finally {
      this.#stepping = false;
      tf.dispose(means.map((m) => m.tensor));
    }
    this.clear();
  }

  /** Under `strict`: throws the RangeError of a change where `items` are other variables. */
  #checkSame(items: readonly GradItem[], entries: readonly Entry[]): void {
    if (entries.length > 0) {
      if (!sameVariables(entries, inOrderOf(entries, items))) throw changeError(entries, items);
      return;
    }
    if (this.#count === 0) return;
    const other = items.find((i) => !fits(this.#sums.get(i.name), i.variable)) ??
      (items.length !== this.#sums.size ? items[0] : undefined);
    if (other === undefined) return;
    throw new RangeError(
      `The variable ${
        JSON.stringify(other.name)
      } is not among the variables of the gradients accumulated so far, or they had one it has not (option strict: true refuses a change of the trained variables)`,
    );
  }

  /**
   * A loaded model's variables may be named `<name>_<n>` (kept.ts): a loaded sum whose name no
   * gradient of `items` has goes to the one of them of its base name and shape without a sum of
   * its own, where exactly one is, and no other loaded sum has that base name; else it stays
   * (and is dropped at the step unless a call gives its variable a gradient).
   */
  #matchLoadedNames(items: readonly GradItem[]): void {
    if (!this.#loaded) return;
    const sums = this.#sums;
    const orphans = [...sums].filter(([name, s]) =>
      s.variable === undefined && !items.some((i) => i.name === name)
    );
    for (const [orphan, held] of orphans) {
      const base = baseName(orphan);
      const candidates = items.filter((i) =>
        !sums.has(i.name) && baseName(i.name) === base &&
        sameShape(i.variable.shape, held.sum.shape)
      );
      const others = orphans.filter(([o]) => o !== orphan && baseName(o) === base);
      if (candidates.length !== 1 || others.length > 0) continue;
      const renamed = [...sums].map(([n, s]) =>
        [n === orphan ? candidates[0].name : n, s] as const
      );
      sums.clear();
      for (const [n, s] of renamed) sums.set(n, s);
    }
  }

  /** One gradient added to its variable's sum, a new tensor (a variable made again: its clone). */
  #added(item: GradItem): tf.Tensor {
    const held = this.#sums.get(item.name);
    return tf.keep(
      fits(held, item.variable) ? tf.add(held!.sum, item.tensor) : tf.clone(item.tensor),
    );
  }

  /** Takes `sum` (from `#added`) as the sum of `item`'s variable (one made again: anew, last). */
  #take(item: GradItem, sum: tf.Tensor): void {
    const held = this.#sums.get(item.name);
    if (held !== undefined) held.sum.dispose();
    if (held === undefined || !fits(held, item.variable)) {
      this.#sums.delete(item.name);
      this.#sums.set(item.name, { variable: item.variable, sum });
      return;
    }
    held.sum = sum;
    held.variable = item.variable;
  }

  /**
   * The step's gradients: each sum with `items` (the N-th call's) added, divided by N (a variable
   * absent from some calls: its sum over those it was in, over N), the variables in the order
   * first seen (one made again under the name since: last, as a new one); sums of variables
   * disposed since, or trainable no more, are dropped, and so are sums loaded and given no
   * gradient since whose variable cannot be told (`#ownerOf`).
   * New tensors: the sums are left as they were (and where one fails to be made, none is left).
   */
  #means(items: readonly GradItem[]): GradItem[] {
    const given = new Map(items.map((i) => [i.name, i]));
    const means: GradItem[] = [];
    const mean = (variable: tf.Variable, name: string, total: () => tf.Tensor) => {
      if (variable.isDisposed || !variable.trainable) return;
      const tensor = tf.keep(tf.tidy(() => tf.div(total(), this.steps)));
      means.push({ name, variable, tensor });
    };
    try {
      for (const [name, held] of this.#sums) {
        const item = given.get(name);
        if (item === undefined) {
          const variable = held.variable ?? this.#ownerOf(name, held.sum, given);
          if (variable !== undefined) mean(variable, variable.name, () => held.sum);
        } else if (fits(held, item.variable)) {
          given.delete(name);
          mean(item.variable, name, () => tf.add(held.sum, item.tensor));
        }
      }
      for (const item of given.values()) mean(item.variable, item.name, () => item.tensor);
    } catch (error) {
      tf.dispose(means.map((m) => m.tensor)); // (a backend short of memory: none is left)
      throw error;
    }
    return means;
  }

  /**
   * The variable of `sum`, loaded under `name` by `setWeights` and given no gradient since (its
   * variable absent from the calls after a resume, as it was from some before): of the float32
   * variables registered with TensorFlow.js (in a `minimize` call, of its `varList`: `trained`)
   * of its base name (tfjs's `_<n>` aside) and shape, frozen ones counted (outside `minimize`, a
   * frozen variable and a live copy of it are two: the sum may be the frozen one's), the one
   * there is, where it is trainable; or, beside frozen ones only, the trainable one of the sum's
   * own name (its own variable: the frozen ones are copies, a target network's); with no sum of
   * its own nor a gradient among `given`, and no other such sum has that base name; else
   * undefined (a model loaded twice: whose it is cannot be told, and it is dropped).
   */
  #ownerOf(
    name: string,
    sum: tf.Tensor,
    given: ReadonlyMap<string, GradItem>,
  ): tf.Variable | undefined {
    const base = baseName(name);
    const rivals = [...this.#sums].filter(([n, s]) =>
      n !== name && s.variable === undefined && !given.has(n) && baseName(n) === base
    );
    const trained = this.trained;
    const candidates = floatVariables(false).filter((v) =>
      baseName(v.name) === base && sameShape(v.shape, sum.shape) &&
      (trained === undefined || trained.includes(v))
    );
    const live = candidates.filter((v) => v.trainable);
    const one = candidates.length === 1 || live[0]?.name === name;
    if (rivals.length > 0 || live.length !== 1 || !one) return undefined;
    const v = live[0];
    return given.has(v.name) || (v.name !== name && this.#sums.has(v.name)) ? undefined : v;
  }

  /** Drops the sums (a state replaced: `setWeights`, `loadState`; or disposed). */
  clear(): void {
    for (const { sum } of this.#sums.values()) sum.dispose();
    this.#sums.clear();
    this.#count = 0;
    this.#loaded = false;
    this.#unchecked = false;
  }

  /**
   * Drops the sums (the optimizer's `discardAccumulated`): the next call is the first of N.
   * Returns the calls they summed. Throws a TypeError, nothing dropped, while the N-th call's
   * step runs (from the learning-rate schedule it calls): that step is of them.
   */
  discard(): number {
    if (this.#stepping) {
      throw new TypeError(
        "discardAccumulated() was called while the step of the gradients accumulated runs (from " +
          "the learning-rate schedule it calls); nothing was dropped: call it between " +
          "applyGradients calls (under model.fit, from a callback's onBatchEnd)",
      );
    }
    const count = this.#count;
    this.clear();
    return count;
  }

  /**
   * The partial sums as weights, copies the caller owns (none between steps): `accum_count`
   * (int32 scalar) then `<variable>/accum` per variable, in the order first seen. Where a copy
   * fails, those made are disposed.
   */
  weights(): NamedTensor[] {
    if (this.#count === 0) return [];
    const weights: NamedTensor[] = [];
    try {
      weights.push({ name: ACCUM_COUNT_KEY, tensor: tf.scalar(this.#count, "int32") });
      for (const [name, { sum }] of this.#sums) {
        weights.push({ name: name + SUM_SUFFIX, tensor: tf.clone(sum) });
      }
    } catch (error) {
      tf.dispose(weights.map((w) => w.tensor)); // (a backend short of memory: none is left)
      throw error;
    }
    return weights;
  }

  /**
   * The variables summed and the shapes of their sums, in the order first seen (none between
   * steps): what `weights` gives, without a copy (a save planned before it is made).
   */
  sumShapes(): [string, readonly number[]][] {
    if (this.#count === 0) return [];
    return [...this.#sums].map(([name, { sum }]) => [name, sum.shape]);
  }

  /** Replaces the sums with `loaded` (taken: disposed with the accumulator). */
  load(loaded: LoadedSums): void {
    this.clear();
    for (const [name, sum] of loaded.sums) this.#sums.set(name, { variable: undefined, sum });
    this.#count = loaded.count;
    this.#loaded = true;
  }
}

/**
 * Under `nonFinite: "throw"`, calls 1 to N − 1: throws a RangeError where a sum of `sums` (those
 * `items` make, the `calls`-th call's) holds a non-finite number, naming the variable and index:
 * that of its gradient where the gradient holds one (as the step's check would have at the N-th
 * call), else that of the float32 overflow of the sum of finite gradients (whose every later
 * step would throw). One read of each new sum, as the step reads its gradients.
 */
function checkFinite(items: readonly GradItem[], sums: readonly tf.Tensor[], calls: number): void {
  items.forEach(({ name, tensor }, k) => {
    const at = firstBadValue(readHost(sums[k]), false);
    if (at < 0) return;
    const values = readHost(tensor);
    const i = firstBadValue(values, false);
    throw new RangeError(
      i >= 0
        ? `The gradient of variable ${JSON.stringify(name)} holds ${values[i]} at index ${i} ` +
          '(option nonFinite: "throw"); nothing was accumulated'
        : `The sum of the gradients of variable ${JSON.stringify(name)} over ${calls} calls ` +
          `overflows float32 at index ${at}, its step would hold ±Infinity (option nonFinite: ` +
          '"throw"); nothing was accumulated',
    );
  });
}

/**
 * The error of an N-th call whose step was refused, `error`: where the state's checkpoint, with
 * the sums saved beside it, would pass the cap on a header's length, a RangeError that says the
 * sums of the `count` calls before are kept, so that every N-th call would be refused so until
 * they are dropped, and how to drop them; else `error` itself.
 */
function stuckError(error: unknown, count: number): unknown {
  if (!isHeaderCapRefusal(error)) return error;
  return new RangeError(
    `${error.message}. Nothing changed: the gradients of the ${count} calls before ` +
      "(accumulatedBatches) are kept, and every N-th call over their variables is refused so " +
      "until they are dropped: `optimizer.discardAccumulated()` drops them (the moments and " +
      "step count kept), as `loadState` of a checkpoint saved before does; then step fewer " +
      "variables, or give them shorter names",
    { cause: error },
  );
}

/** Whether `held` is the sum of `variable` (one loaded: of its shape). */
function fits(held: Sum | undefined, variable: tf.Variable): boolean {
  if (held === undefined) return false;
  return held.variable === undefined
    ? sameShape(held.sum.shape, variable.shape)
    : held.variable === variable;
}
