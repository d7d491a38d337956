/**
 * The TensorFlow.js optimizer class: a subclass of tfjs-core's `Optimizer` that keeps one state
 * of this library over the variables it is given, keyed by variable name. A facade over its parts
 * (adapter_parts.ts: the CPU and WebGPU paths and the state kept aside for variables not in the
 * current one, state_paths.ts; the weights out, weights.ts, and in, set_weights.ts and
 * from_checkpoint.ts; the notes of skipped steps, skip_notes.ts) and the config (config.ts).
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs-core";
import { optionError } from "../base/_errors.ts";
import type { BackendName, LearningRate } from "../base/options.ts";
import type { Settings } from "../base/settings.ts";
import { withLearningRate } from "../core/options.ts";
import type { OptimizerState } from "../core/state.ts";
import { readConfig, type TfOptimizerConfig, writeConfig } from "./config.ts";
import { nextBackend } from "./backend_choice.ts";
import { checkGradients, type NamedTensor } from "./gradients.ts";
import { groupedNames } from "./matching.ts";
import {
  type AdapterOptions,
  checkArguments,
  type SettingsHolder,
  type TfOptimizerOptions,
} from "./options.ts";
import { checkTfjsCore } from "./_core_check.ts";
import type { EmaAverages } from "./ema.ts";
import { addCheckpointExtras } from "../core/checkpoint_extras.ts";
import { refuseLrSet, refuseReadOnlySets } from "./_hints.ts";
import { minimizing } from "./minimize.ts";
import { AdapterParts } from "./adapter_parts.ts";

/**
 * The steps `optimizer` skipped, as `skippedSteps` but never going back at a `loadState` (which
 * takes the checkpoint's count): so an epoch's `skippedStepsCallback` count is never negative.
 * (Set by the class's static block, which reads its private notes.)
 */
export let skippedStepsSeen: (optimizer: TfOptimizer) => number;

checkTfjsCore(tf); // before `extends tf.Optimizer`: an empty module (tf.min.js) says so

/**
 * A TensorFlow.js optimizer running one of this library's optimizers. Made by
 * {@linkcode tfOptimizer}; registered with `tf.serialization.registerClass` as
 * `"RadamTfOptimizer"`, so that `model.save(..., { includeOptimizer: true })` and
 * `tf.loadLayersModel` restore it.
 *
 * (Left out of the generated docs with `@ignore`: `deno doc --lint` counts tfjs-core's types,
 * which this class extends and takes, as private to this package, denoland/deno#27364. Its
 * methods are those of `tf.Optimizer` plus `state`, `backend`, `settings`, `skippedSteps`,
 * `accumulatedBatches`, `discardAccumulated()`, `averages`, `ready()`, `setLearningRate()` and
 * `loadState()`; see the README's "TensorFlow.js" section.)
 *
 * @example
 * ```ts
 * import * as tf from "@tensorflow/tfjs-core";
 * import "@tensorflow/tfjs-backend-cpu";
 * import { adamw } from "@optim/radam";
 * import { TfOptimizer, tfOptimizer } from "@optim/radam/tfjs";
 *
 * await tf.setBackend("cpu");
 * const optimizer = tfOptimizer(adamw({ lr: 1e-2 }));
 * console.log(optimizer instanceof TfOptimizer, optimizer instanceof tf.Optimizer); // true true
 * console.log(optimizer.backend); // "wasm": where its steps will run, known from the start
 * const w = tf.variable(tf.tensor1d([1, 2, 3]), true, "w");
 * const grad = tf.mul(w, 2); // the gradient of sum(w²)
 * optimizer.applyGradients({ w: grad });
 * console.log(optimizer.iterations, optimizer.state?.backend); // 1 "wasm"
 * ```
 *
 * @ignore
 */
export class TfOptimizer extends tf.Optimizer {
  /** The name tfjs serializes this class under (`class_name` in a saved model's JSON). */
  static get className(): string {
    return "RadamTfOptimizer";
  }

  static {
    skippedStepsSeen = (optimizer) => {
      const skipped = optimizer.skippedSteps;
      return #parts in optimizer ? optimizer.#parts.skips.seen(skipped) : skipped;
    };
  }

  #config: Settings;
  readonly #options: AdapterOptions;
  /** The paths, notes, sums, averages, weights given and state loaded (adapter_parts.ts). */
  readonly #parts: AdapterParts;

  /**
   * Use {@linkcode tfOptimizer}. `optimizer` is an optimizer value of this library (only its
   * `settings` are read).
   */
  constructor(optimizer: SettingsHolder, options?: TfOptimizerOptions) {
    super();
    this.#options = checkArguments(optimizer, options);
    this.#config = optimizer.settings as Settings;
    this.#parts = new AdapterParts(this.#options, {
      config: () => this.#config,
      state: () => this.state,
      skippedSteps: () => this.skippedSteps,
      iterations: () => this.iterations,
      setIterations: (steps) => {
        this.iterations_ = steps;
      },
    });
    this.iterations_ = 0;
  }

  /** The library optimizer's name, e.g. `"adam"`, `"ranger"` or `"lookahead(adam)"`. */
  get optimizerName(): string {
    return this.#config.name;
  }

  /**
   * The settings in force (the library's resolved options), frozen: set the learning rate with
   * `optimizer.learningRate = x` (or {@linkcode setLearningRate}). An assignment to one of the
   * hyperparameters (`settings.hyperparameters.lr = x`) is a TypeError that says so, in
   * sloppy-mode scripts too (the library's settings are made so), and changes nothing; one
   * deeper (`settings.loop.nonFinite`) is JavaScript's TypeError of a frozen object in strict-mode
   * code, and changes nothing, silently, in a sloppy-mode script. Assigning `settings` itself, as
   * `iterations`, `state`, `backend` and the other counts, is a TypeError in both modes.
   */
  get settings(): Readonly<Settings> {
    return this.#config;
  }

  /**
   * The library state the updates run on (for `saveState`, `readParams`, `readMoments`): made by a
   * step over the variables it is given (with `gradientAccumulationSteps`, by a call), so undefined
   * before the first (`model.fit`'s first batch) and after `setWeights` until the next;
   * `saveState` then says so, and `getWeights()` holds what the optimizer has. After `loadState`,
   * until the next step, the checkpoint as loaded (on backend "js"), under this optimizer's
   * settings and learning rate (`setLearningRate` too), saved back without a step as after it;
   * its parameters too: `readParams(optimizer.state)` then gives the checkpoint's, as saved, not
   * the variables' values now (read those from the model, `model.getWeights()`), which the next
   * step makes the state from;
   * undefined where its tensors are laid out otherwise (other moments, `gc` or states format).
   * Its tensors are named by variable, in the order of the step that made it (its checkpoints'
   * `tensor_order`; a later step giving them in another order keeps it); under `gc`, kernels are
   * held transposed. It holds the last step's variables only (the state kept aside for frozen
   * ones is in `getWeights()`). Do not step or dispose it. `setWeights`, `loadState` and
   * `dispose` end it: a `saveState` of it under way (webgpu) or called later rejects saying so.
   * Await it first, or save through `getWeights()`. Its checkpoints also hold the gradients
   * accumulated (`<variable>.accum`, with `accum_count` in the metadata) and the moving averages
   * (`<variable>.average`), as they are at the call, which {@linkcode loadState} takes back.
   */
  get state(): OptimizerState<unknown> | undefined {
    const parts = this.#parts;
    return addCheckpointExtras(parts.paths.state ?? parts.loaded.state, parts.extras);
  }

  /**
   * Where the update runs: `"wasm"`, `"js"` or `"webgpu"`. From the first step on, the backend
   * of the state (where the last step ran). Before, where the next step will run, from option
   * `backend` and TensorFlow.js's active backend now (`tf.getBackend()`): so it is known from
   * construction, or from the loading of a saved model, and final once tfjs's backend is set.
   * Backend `"auto"` is `"js"` where this library's wasm kernel cannot run (no WebAssembly SIMD,
   * a runtime that does not let WebAssembly be compiled at run time and was not given the kernel
   * compiled by `setWasmModule`, or compiles it only asynchronously, as a browser's main thread
   * may: the adapter steps synchronously). Undefined only while tfjs has not chosen a backend, or
   * where no step can run (option `backend: "webgpu"` while tfjs runs another; wasm asked for, by
   * option `backend` or `threads`, where it cannot run). A state moves only if tfjs later switches
   * to webgpu (onto the GPU).
   */
  get backend(): BackendName | undefined {
    const state = this.#parts.paths.state;
    return state !== undefined ? state.backend : nextBackend(this.#config);
  }

  /**
   * The steps taken: a step skipped for a non-finite gradient does not count (on webgpu, the
   * steps the device reported taken, plus those submitted since).
   */
  override get iterations(): number {
    return this.state?.step ?? this.iterations_;
  }

  /**
   * Steps skipped for non-finite gradients (option `nonFinite: "skip"`), over the optimizer's
   * life (on webgpu, as last reported by the device). See also `skippedStepsCallback`.
   */
  get skippedSteps(): number {
    return this.state?.skippedSteps ?? this.#parts.paths.kept.skipped;
  }

  /** The `applyGradients` calls summed towards the next step (option `gradientAccumulationSteps`). */
  get accumulatedBatches(): number {
    return this.#parts.accumulator.count;
  }

  /**
   * Drops the gradients accumulated towards the next step (option `gradientAccumulationSteps`),
   * and only them: the moments, step count (`iterations`), skipped steps and moving averages stay
   * as they were, and the next `applyGradients` call is the first of a new N. Returns the calls
   * dropped (`accumulatedBatches` before; 0 where none were, as without the option). The way out
   * of an N-th call refused because the state's checkpoint, with the sums saved beside it, would
   * pass the cap on a header's length (its RangeError names this call); or to start an epoch
   * afresh. A TypeError, nothing dropped, once the optimizer is disposed, or while the N-th
   * call's step runs (from the learning-rate schedule it calls).
   *
   * @example Drop a partial accumulation
   * ```ts
   * import * as tf from "@tensorflow/tfjs-core";
   * import "@tensorflow/tfjs-backend-cpu";
   * import { adam } from "@optim/radam";
   * import { tfOptimizer } from "@optim/radam/tfjs";
   * import assert from "node:assert/strict";
   *
   * await tf.setBackend("cpu");
   * const optimizer = tfOptimizer(adam({ lr: 0.1 }), { gradientAccumulationSteps: 3 });
   * const w = tf.variable(tf.zeros([2]), true, "discard-doc/w");
   * const grad = tf.ones([2]);
   * optimizer.applyGradients({ [w.name]: grad });
   * optimizer.applyGradients({ [w.name]: grad });
   * assert.equal(optimizer.discardAccumulated(), 2); // (two calls dropped)
   * assert.equal(optimizer.accumulatedBatches, 0);
   * optimizer.applyGradients({ [w.name]: grad }); // (the first of three again: no step)
   * assert.equal(optimizer.iterations, 0);
   * optimizer.dispose();
   * tf.dispose([w, grad]);
   * ```
   */
  discardAccumulated(): number {
    this.#parts.checkLive();
    return this.#parts.accumulator.discard();
  }

  /** The moving averages of the variables (option `ema`; else undefined): `EmaAverages`. */
  get averages(): EmaAverages | undefined {
    return this.#parts.averages;
  }

  /**
   * Resolves when the worker threads of option `threads` have started (the first steps run on
   * one thread meanwhile, with the same results); the next step then runs on them. A failure to
   * start them is thrown by the next step.
   */
  async ready(): Promise<void> {
    await this.#parts.paths.cpu.ready();
  }

  /**
   * The learning rate in force: a number, or a schedule of the 1-based step. tfjs's own
   * optimizers hold it as `learningRate`, which code written for them sets between epochs
   * (`model.optimizer.learningRate = 1e-4`): setting it here is {@linkcode setLearningRate},
   * checked the same way.
   */
  get learningRate(): LearningRate {
    return this.#config.hyperparameters.lr;
  }

  set learningRate(lr: LearningRate) {
    this.setLearningRate(lr);
  }

  /**
   * Replaces the learning rate (a number or a schedule of the 1-based step) from the next step
   * on; needed after loading a model saved with a schedule, which cannot be stored (its
   * `learningRate` is then a stand-in, which a step, and this, refuse). Once the state is on
   * the GPU (tfjs backend webgpu), a TypeError, and nothing changes: the learning rate is set in
   * a new optimizer there (save the model with its optimizer, load it, set it). Where a
   * checkpoint of the state (stepped, or loaded by `loadState`), with the sums and averages saved
   * beside it, would pass the cap on a header's length with the new rate (its digits in the
   * header), the RangeError the next step would throw, at once, and nothing changes.
   */
  setLearningRate(lr: number | ((t: number) => number)): void {
    if (typeof lr !== "function" && (typeof lr !== "number" || !Number.isFinite(lr) || lr < 0)) {
      throw optionError("lr", "a finite number ≥ 0 or a schedule", lr);
    }
    this.#parts.paths.gpu.checkNewLearningRate();
    const config = withLearningRate(this.#config, lr);
    this.#parts.paths.checkSettings(config); // (refused: nothing changed)
    this.#parts.loaded.settings(config); // (refused: nothing changed)
    this.#config = config;
    this.#parts.paths.markStale();
  }

  /**
   * One step of the library optimizer over the given gradients (a `NamedTensorMap`, or a
   * `NamedTensor[]` as `minimize` passes with a `varList`), keyed by variable name. A `null`
   * gradient leaves its variable out of this step, as tfjs's optimizers do; a call with no
   * gradient (`{}`, or every one `null`) takes no step, so `iterations` does not count it
   * (tfjs's own optimizers count one), nor is it one of option `gradientAccumulationSteps`' N.
   *
   * Everything is checked before anything changes: an unknown, disposed or non-trainable
   * variable, a gradient that is not a float32 tensor of the variable's shape, or a disposed
   * one, throws a TypeError/RangeError naming the variable, and so does a non-finite gradient
   * under `nonFinite: "throw"`; no variable or moment is then changed. Where the step makes the
   * library state anew (variables that appear, the first step after `setWeights` or `loadState`,
   * new settings) and is refused inside the kernel, everything stays as it was too: the same
   * `state` (or none), the weights `getWeights` gives, the counts.
   */
  override applyGradients(variableGradients: tf.NamedTensorMap | NamedTensor[]): void {
    this.#parts.checkLive();
    const items = checkGradients(variableGradients);
    if (items.length > 0) this.#parts.step(items);
  }

  /**
   * As tfjs's `minimize`, but a refused step disposes the gradients and loss it computed. With a
   * `varList` (`model.fit` gives the model's trainable weights), gradients accumulated and loaded
   * (`setWeights`, `loadState`) go to its variables only, and so do moving averages loaded at a
   * later `averages.swap()` or `finalize()`: not to a layer's frozen with `trainable: false`
   * before it was built, whose variables tfjs marks trainable.
   */
  override minimize(...args: Parameters<tf.Optimizer["minimize"]>): tf.Scalar | null {
    return this.#parts.minimizing(args[2], () => minimizing(this, ...args));
  }

  /**
   * The optimizer's weights as tfjs orders its own: `iter` (the steps taken: an int32 scalar;
   * past 2³¹ − 1 steps, where one int32 would wrap, the int32 pair `[steps mod 2³¹,
   * ⌊steps / 2³¹⌋]`, which `setWeights` takes back), then per moment the library keeps
   * (`exp_avg` → `<variable>/m`, `exp_avg_sq` → `<variable>/v`, SGD's `momentum_buffer` →
   * `<variable>/momentum_buffer`), one tensor per variable, then LookAhead's slow weights
   * (`<variable>/slow`), all in the tfjs layout; last, mid-accumulation (option
   * `gradientAccumulationSteps`), `accum_count` and each sum, `<variable>/accum`; then, with
   * option `ema`, each moving average, `<variable>/average` (which `setWeights` takes back, and
   * an optimizer without the option ignores).
   * With `states: "8bit"`, a moment held in 8 bits (a variable of 4096 elements or more) is two
   * tensors instead: `<variable>/m.codes` (int32, four codes to an int32) and
   * `<variable>/m.scales` (float32, one a block of 256), in the variable's order; those of a
   * kernel held transposed under `gc` are `<variable>/m.transposed.codes` and `.scales` (on
   * webgpu, which holds all in the tfjs order, unmarked; code_order.ts, and setWeights below).
   * Variables whose state is kept aside (frozen) come after those of the last step, in the order
   * the weights listed them before the step that left them out (so a resume by `setWeights` of
   * these weights lists them as the uninterrupted run does).
   *
   * The tensors are the optimizer's, as tfjs's own optimizers' weights are (their variables):
   * copies of the state at the call, valid until a later `getWeights` call has given its own or
   * the optimizer is disposed, which dispose them (`iter` included). So `model.save` with
   * `includeOptimizer`, which never disposes them, leaks nothing, however often it saves: one
   * set is held between calls. Read them (or pass them to `setWeights`, which copies them)
   * before the next call; to keep them longer, `tf.clone` them, or copy their data. Disposing
   * them yourself is harmless. Of calls at once (two `model.save` under way), none disposes the
   * set of another: each stays valid until a call begun after it was given gives its own.
   *
   * Rejects with a RangeError naming the weight and index where a value is not what
   * `setWeights` takes (not finite, or a negative `v`: a non-finite gradient reached the state
   * under `nonFinite: "propagate"`, or a moment overflowed; a sum of gradients accumulated under
   * `"throw"`, which webgpu checks at the step only), as `saveState` refuses a state
   * `loadState` would: so `model.save` with `includeOptimizer` does, rather than write a model
   * that `tf.loadLayersModel` refuses. On worker threads (`threads`), a state a step of which
   * failed half way (a worker failed as the step ran, which that step's error says) may hold
   * part of it: refused as `saveState` refuses it, with a TypeError naming the failure (and so
   * is a step over other variables, which would make a new state from it); go on with
   * `loadState` of a checkpoint saved before. A refused call leaves no tensor behind and disposes
   * nothing: the set given last stays valid (and held) until a later call gives one, or the
   * optimizer is disposed. A call still reading the state when the optimizer is disposed
   * rejects with the TypeError of a disposed optimizer, its tensors disposed. (An example:
   * given.ts's `GivenWeights`.)
   */
  override getWeights(): Promise<NamedTensor[]> {
    return this.#parts.weights();
  }

  /**
   * Restores weights written by {@linkcode getWeights} (or saved with a model): by name, not by
   * position. The state is remade at the next step from the variables' values then and these
   * moments; a variable without saved moments starts fresh. Every tensor's read starts at the call,
   * so that a `getWeights` that disposes them meanwhile takes none from it. Codes and scales are
   * taken as they are (a resume is exact); given to an optimizer of the other format, moments are
   * converted as `loadState` converts them (encoded, lossy, or decoded), and codes in the other
   * order than it holds the variable in are reordered (lossy), by the step that takes them: until
   * then `getWeights` (so `model.save`) gives the weights as given, byte for byte. Throws a
   * TypeError naming a weight that is not `iter` or `<variable>/<m | v | slow>` (or a moment's
   * `.codes` and `.scales`), or whose shapes disagree, and a RangeError for codes or scales out of
   * range, or for f32 values that are not finite (or, of `v`, negative), as a checkpoint's; and, as
   * `loadState`, a RangeError naming a few of the weights and of the model's variables when none of
   * them fits a trainable variable registered with TensorFlow.js (another model's weights: every
   * variable would start from zero moments at their step), and one naming the weight, its shape and
   * the variable's where the variables of its name (or base name) are all of another shape (another
   * model's weights, or another version of the model, which would leave that variable fresh);
   * nothing changes then. Weights of another model whose variables all live (model A's given to
   * model B's optimizer while A lives) load, but B's first step, which none of them fits, is a
   * RangeError naming both sides, nothing changed: they go by name, not by position (B's
   * variables told from A's by shape and name but for digits, tfjs-layers' layer numbers; where
   * they are this model's own that the step leaves out, freeze those for it). A loaded
   * model compiled again with a new optimizer keeps its moments only where that optimizer takes
   * them: `await optimizer.setWeights(await model.optimizer.getWeights())`
   * before `model.compile({ optimizer })` (or compile with `model.optimizer` itself; a new
   * optimizer alone starts fresh, as tfjs's own do). `iter` alone (what
   * tfjs saves of an optimizer that has not stepped) sets the step count; weights without it (an
   * empty array too) are a TypeError that says so, nothing changed: their moments need the steps
   * that made them (tfjs's own optimizers read the first weight as `iter`, whatever its name).
   * `skippedSteps` goes on counting from where it was: the weights carry no count of skipped
   * steps (a checkpoint does, which `loadState` takes). A step taken before it resolves (an
   * `await` forgotten) makes it reject with a TypeError, nothing loaded; so does a call while
   * `averages.swap()` holds the averages in the variables: swap back first.
   */
  override setWeights(weightValues: NamedTensor[]): Promise<void> {
    return this.#parts.loadWeights(weightValues);
  }

  /**
   * Takes the moments, slow weights and step counts of a library checkpoint (`saveState` bytes,
   * e.g. of another `TfOptimizer`'s `state`): the way back from `saveState`. Matched by tensor name
   * to the variables of the next step (as `setWeights`), each in the layout this optimizer holds it
   * in (a kernel under `gc` transposed, as `state` and its checkpoints have it); a tensor that fits
   * no variable is kept aside. The parameters are the variables' own: load the model's weights as
   * usual (until the next step, `optimizer.state` is the checkpoint as loaded, whose parameters,
   * which `readParams` gives, are the checkpoint's, not the variables'). The checkpoint's
   * hyperparameters are not taken, this optimizer's stay; its moments are taken by name, as
   * `setWeights` takes them: a checkpoint holding one this optimizer does not
   * keep (another rule's: SGD's `momentum_buffer` for Adam, Adam's `exp_avg_sq` for Lion), or slow
   * weights where it has no LookAhead, is refused with a TypeError naming it, and nothing changes.
   * One saved under another `gc` is taken in the tfjs order (each kernel's moments transposed where
   * either optimizer holds it `[out, rest]`). Rejects with the library's `CheckpointError` for a
   * damaged file (one holding no tensor among them), and with a RangeError naming a few of its
   * tensors and of the model's variables when none of its tensors fits a trainable variable
   * registered with TensorFlow.js (another model's checkpoint, or a model not built yet: every
   * variable would start from zero moments at the checkpoint's step), or naming a tensor whose
   * variables of its name (or base name) are all of another shape; nothing changes then (one
   * whose tensors are all of other live variables, another model's, loads, but the next step,
   * which none of them fits, is a RangeError, as after `setWeights`). A step taken before it
   * resolves (an `await` forgotten) makes it reject with a TypeError, nothing loaded: it would
   * have replaced that step's moments and step count under the update it made.
   * The gradients accumulated (`<variable>.accum`, `accum_count`) and moving averages
   * (`<variable>.average`) a checkpoint of `state` holds are taken too (an optimizer without
   * option `ema` ignores averages), checked first: one not F32, or a count (`accum_count`)
   * missing or not from 1 to N − 1 (sums given to an optimizer without accumulation included), is
   * refused with a `CheckpointError` naming it, one of another shape than the variables of its
   * name (or base name), or non-finite under `nonFinite: "throw"`, with a RangeError naming it,
   * nothing changed; so is a call while `averages.swap()` holds the averages in the variables (a
   * TypeError: swap back first).
   */
  loadState(bytes: Uint8Array): Promise<void> {
    return this.#parts.loadCheckpoint(bytes);
  }

  /**
   * tfjs serialization: the library optimizer's settings (see {@linkcode fromConfig}). With
   * parameter groups, the group of each variable of the state and kept aside; before the first
   * step (a model saved untrained), of each trainable variable registered with TensorFlow.js,
   * those the first step may update (a TypeError where there is none); then of each other
   * float32 variable registered with TensorFlow.js whose base name (without tfjs's `_<n>`
   * suffix) none of those has: a frozen layer's, which no step updated, so that unfrozen after
   * the model is loaded it takes its group (not those of another copy of the model).
   */
  override getConfig(): TfOptimizerConfig {
    const { paths } = this.#parts;
    const names = [...paths.entries.map((e) => e.name), ...paths.kept.names()];
    const grouped = this.#config.loop.groups.length > 0;
    return writeConfig(this.#config, grouped ? groupedNames(names) : names, this.#options);
  }

  /** tfjs deserialization: the optimizer {@linkcode getConfig} described. */
  static override fromConfig<T extends tf.serialization.Serializable>(
    cls: tf.serialization.SerializableConstructor<T>,
    config: tf.serialization.ConfigDict,
  ): T {
    const { settings, options } = readConfig(config);
    // deno-lint-ignore no-explicit-any
    return new (cls as any)({ settings }, options);
  }

  /**
   * Releases the library state (workers, GPU buffers) and tfjs's iteration counter. The
   * optimizer is then spent: a later `applyGradients`, `getWeights`, `setWeights` or
   * `loadState` throws a TypeError rather than start again from zero moments. Idempotent.
   */
  override dispose(): void {
    this.#parts.dispose();
    super.dispose();
  }
}

refuseLrSet(TfOptimizer.prototype); // optimizer.lr = x changed nothing: a TypeError
// optimizer.iterations = 5 (or state, backend, settings, ...) too, in sloppy mode as well.
refuseReadOnlySets(TfOptimizer.prototype);
