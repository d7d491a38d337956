/**
 * The TensorFlow.js optimizer class: a subclass of tfjs-core's `Optimizer` that keeps one state
 * of this library over the variables it is given, keyed by variable name.
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs-core";
import { type ArenaLayout, EXP_AVG, GRADS, hasSection, PARAMS, SLOW } from "../base/arena.ts";
import type { HostBackend } from "../base/backend.ts";
import { configOf, FORMAT, FORMAT_VERSION, optionsOf } from "../core/checkpoint.ts";

/** The `format` of the config {@linkcode TfOptimizer.getConfig} writes. */
const CONFIG_FORMAT = "radam.tfjs";
import type { LearningRate } from "../base/options.ts";
import type { Settings } from "../base/settings.ts";
import { withLearningRate } from "../core/options.ts";
import {
  groupsOf,
  type OptimizerState,
  planFor,
  restoreState,
  stateInternals,
} from "../core/state.ts";
import { createJsBackend } from "../cpu/js_backend.ts";
import { momentsOf, ruleOf } from "../core/origins.ts";
import { createWasmBackendSync, wasmSimdSupported } from "../cpu/wasm_backend.ts";
import { checkThreadSupport, createThreadedWasmBackend } from "../cpu/threaded_wasm_backend.ts";
import { dispose, loadState, readMoments, readSlowWeights, step } from "../core/operations.ts";
import { type Entry, entryOf, fromArena, shapeText, toArena } from "./layout.ts";
import { createGpuRunner, type GpuRunner } from "./gpu_path.ts";
import { HeapBackend, type TfjsWasmHeap, tfjsWasmHeap } from "./heap_backend.ts";

/**
 * Options of {@linkcode tfOptimizer}.
 *
 * @example Refuse any change of the trained variables
 * ```ts
 * import { radam } from "../mod.ts";
 * import { tfOptimizer, type TfOptimizerOptions } from "../tfjs.ts";
 *
 * const options: TfOptimizerOptions = { strict: true };
 * const optimizer = tfOptimizer(radam(), options);
 * ```
 */
export interface TfOptimizerOptions {
  /**
   * What a call of `applyGradients` with another set of variables than the last does. `false`
   * (default): the variables still there keep their state, new ones start fresh (zero moments,
   * slow weights = their value) at the optimizer's step count, and the state of those left out
   * (frozen layers) is kept aside, unchanged, until they come back. `true`: a RangeError naming
   * the first variable that differs, and nothing changes.
   */
  strict?: boolean;
}

/**
 * What {@linkcode TfOptimizer.getConfig} writes (the `config` of a saved model's
 * `optimizer_config`): the library optimizer's name, and its settings as base64 JSON (tfjs-layers
 * rewrites snake_case strings in configs when it loads them; base64 has no `_`).
 *
 * @example
 * ```ts
 * import { adam } from "../mod.ts";
 * import { tfOptimizer, type TfOptimizerConfig } from "../tfjs.ts";
 *
 * const config: TfOptimizerConfig = tfOptimizer(adam()).getConfig();
 * console.log(config.format, config.optimizer); // "radam.tfjs" "adam"
 * ```
 */
export type TfOptimizerConfig = {
  /** `"radam.tfjs"`. */
  format: string;
  /** The library optimizer's name, e.g. `"ranger"` or `"lookahead(adam)"`. */
  optimizer: string;
  /** Base64 of the JSON settings (hyperparameters, schedule flag, backend, threads, groups). */
  settings: string;
};

/** The optimizer value the adapter wraps: anything with the library's resolved settings. */
export interface SettingsHolder {
  /** The resolved settings, as on every optimizer of this library. */
  readonly settings: Readonly<Settings>;
}

/** The tfjs weight-name suffix of each state section, as tfjs names Adam's (`/m`, `/v`). */
const MOMENT_SUFFIX: Readonly<Record<string, string>> = { exp_avg: "m", exp_avg_sq: "v" };
/** The sections `layout` holds (those of its rule and LookAhead), by index. */
function heldSections(layout: ArenaLayout): number[] {
  return layout.sectionOffsets.flatMap((_, s) => hasSection(layout, s) ? [s] : []);
}

/**
 * Live views of the state sections of a host backend, by section index (undefined for the
 * params, the gradients and the sections its rule lacks).
 */
function stateViews(backend: HostBackend): (Readonly<Record<string, Float32Array>> | undefined)[] {
  return backend.layout.sectionOffsets.map((_, s) =>
    s === PARAMS || s === GRADS || !hasSection(backend.layout, s)
      ? undefined
      : backend.viewSection(s)
  );
}

/** The moments the rule of `config` keeps (see `readMoments`): name, tfjs suffix, section. */
function momentSections(
  config: Settings,
): { key: string; suffix: string; section: number }[] {
  return momentsOf(config).map((m, k) => ({
    key: m.name,
    suffix: MOMENT_SUFFIX[m.name] ?? m.name,
    section: EXP_AVG + k,
  }));
}
const SLOW_SUFFIX = "slow";

/** State kept aside for a variable not in the current state (frozen, or loaded by setWeights). */
interface Kept {
  /**
   * The variable as it was held. For state read from a checkpoint (`loadState`), where only the
   * arena shape is known, a placeholder: `arenaShape` then says which variables it fits.
   */
  readonly entry: Entry;
  readonly arenaShape?: readonly number[];
  /** By arena section (arena layout); undefined for PARAMS and GRADS. */
  readonly sections: (Float32Array | undefined)[];
}

/** Worker threads being started for the current state. */
interface ThreadsPending {
  done: Promise<void>;
  backend?: HostBackend;
  error?: unknown;
}

interface GradItem {
  readonly name: string;
  readonly tensor: tf.Tensor;
  readonly variable: tf.Variable;
}

/** A tensor with its name, as tfjs's optimizers take and give them (tfjs-core's `NamedTensor`). */
export interface NamedTensor {
  /** The name (a variable's, or `<variable>/<slot>` for optimizer weights). */
  name: string;
  /** The value. */
  tensor: tf.Tensor;
}

function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}

/** A lr schedule that was not stored: refuses to run until one is given again. */
function missingSchedule(): number {
  throw new TypeError(
    "This optimizer was restored from a config saved with a learning-rate schedule, which " +
      "cannot be stored; give it again with optimizer.setLearningRate(schedule) before training",
  );
}

function describe(x: unknown): string {
  if (x === null) return "null";
  if (typeof x !== "object") return typeof x;
  return (x as object).constructor?.name ?? "object";
}

/** Base64 of UTF-8 (no `_`, so tfjs-layers' snake-to-camel conversion of configs leaves it). */
function encodeConfig(value: unknown): string {
  const bytes = new TextEncoder().encode(JSON.stringify(value));
  let binary = "";
  for (const b of bytes) binary += String.fromCharCode(b);
  return btoa(binary);
}

function decodeConfig(text: unknown): Record<string, unknown> {
  if (typeof text !== "string") {
    throw new TypeError(
      `Expected the optimizer config's settings to be a string, got ${typeof text}`,
    );
  }
  const binary = atob(text);
  const bytes = Uint8Array.from(binary, (c) => c.charCodeAt(0));
  const value = JSON.parse(new TextDecoder().decode(bytes));
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new TypeError("Expected the optimizer config's settings to encode an object");
  }
  return value;
}

/**
 * A TensorFlow.js optimizer running one of this library's optimizers. Made by
 * {@linkcode tfOptimizer}; registered with `tf.serialization.registerClass`, so that
 * `model.save(..., { includeOptimizer: true })` and `tf.loadLayersModel` restore it.
 *
 * (Left out of the generated docs with `@ignore`: `deno doc --lint` counts tfjs-core's types,
 * which this class extends and takes, as private to this package, denoland/deno#27364. Its
 * methods are those of `tf.Optimizer` plus `state`, `backend`, `settings`, `skippedSteps`,
 * `ready()`, `setLearningRate()` and `loadState()`; see the README's "TensorFlow.js" section.)
 *
 * @example
 * ```ts
 * import * as tf from "@tensorflow/tfjs-core";
 * import "@tensorflow/tfjs-backend-cpu";
 * import { adamw } from "../mod.ts";
 * import { TfOptimizer, tfOptimizer } from "../tfjs.ts";
 *
 * await tf.setBackend("cpu");
 * const optimizer = tfOptimizer(adamw({ lr: 1e-2 }));
 * console.log(optimizer instanceof TfOptimizer, optimizer instanceof tf.Optimizer); // true true
 * const w = tf.variable(tf.tensor1d([1, 2, 3]), true, "w");
 * optimizer.minimize(() => tf.sum(tf.square(w)));
 * console.log(optimizer.iterations); // 1
 * ```
 *
 * @ignore
 */
export class TfOptimizer extends tf.Optimizer {
  /** The name tfjs serializes this class under (`class_name` in a saved model's JSON). */
  static get className(): string {
    return "RadamTfOptimizer";
  }

  #config: Settings;
  readonly #strict: boolean;
  /** The library state over `#entries`, when made. */
  #state: OptimizerState<unknown> | undefined;
  #entries: Entry[] = [];
  /** Variables whose state is kept aside (not in `#state`), by name. */
  readonly #kept = new Map<string, Kept>();
  /** Steps taken and skipped where no state holds them (before the first, after setWeights). */
  #steps = 0;
  #skipped = 0;
  /** Set when the state must be remade at the next step (new settings). */
  #stale = false;
  /**
   * A threaded backend being started for the current state (option `threads`): the state starts
   * on one thread (workers cannot start inside a synchronous call) and moves to it, bit for bit
   * the same, at the first step after it is ready.
   */
  #threads: ThreadsPending | undefined;
  /**
   * Per entry of the CPU state: the data id its variable had when the state last gave it its
   * parameters (or read them); another id means the variable was assigned since (setWeights).
   */
  #assigned: object[] = [];
  /** The tfjs backend that ran when the CPU state was made. */
  #builtOn: tf.KernelBackend | undefined;
  /** The WebGPU path, when tfjs runs on webgpu (see gpu_path.ts). */
  #gpu: GpuRunner | undefined;

  /**
   * Use {@linkcode tfOptimizer}. `optimizer` is an optimizer value of this library (only its
   * `settings` are read).
   */
  constructor(optimizer: SettingsHolder, options: TfOptimizerOptions = {}) {
    super();
    if (
      typeof optimizer !== "object" || optimizer === null ||
      typeof optimizer.settings !== "object" || optimizer.settings === null
    ) {
      throw new TypeError(
        `tfOptimizer() expects an optimizer made by this library, e.g. radam(), got ${
          describe(optimizer)
        }`,
      );
    }
    if (typeof options !== "object" || options === null) {
      throw new TypeError(`Options of tfOptimizer must be an object, got ${describe(options)}`);
    }
    if (options.strict !== undefined && typeof options.strict !== "boolean") {
      throw new TypeError(`Option strict must be a boolean, got ${typeof options.strict}`);
    }
    this.#config = optimizer.settings as Settings;
    this.#strict = options.strict ?? false;
    this.iterations_ = 0;
  }

  /** The library optimizer's name, e.g. `"adam"`, `"ranger"` or `"lookahead(adam)"`. */
  get optimizerName(): string {
    return this.#config.name;
  }

  /** The settings in force (the library's resolved options). */
  get settings(): Readonly<Settings> {
    return this.#config;
  }

  /**
   * The library state the updates run on (undefined before the first step): pass it to
   * `saveState`, `readParams`, `readMoments`. Its tensors are named by variable, in the order
   * of the last `applyGradients`; under `gc`, variables of rank > 1 are held transposed (last
   * axis first, see the README). Do not `step` or `dispose` it yourself.
   */
  get state(): OptimizerState<unknown> | undefined {
    return this.#gpu?.state ?? this.#state;
  }

  /** Where the update runs: `"wasm"`, `"js"` or `"webgpu"` (undefined before the first step). */
  get backend(): string | undefined {
    return this.state?.backend;
  }

  /** Steps skipped for non-finite gradients (option `nonFinite: "skip"`). */
  get skippedSteps(): number {
    return this.state?.skippedSteps ?? this.#skipped;
  }

  /**
   * Resolves when the worker threads of option `threads` have started (the first steps run on
   * one thread meanwhile, with the same results); the next step then runs on them. A failure to
   * start them is thrown by the next step.
   */
  async ready(): Promise<void> {
    await this.#threads?.done;
  }

  /**
   * Replaces the learning rate (a number or a schedule of the 1-based step) from the next step
   * on; needed after loading a model saved with a schedule, which cannot be stored.
   */
  setLearningRate(lr: number | ((t: number) => number)): void {
    if (typeof lr !== "function" && (typeof lr !== "number" || !Number.isFinite(lr) || lr < 0)) {
      throw new RangeError(
        `Option lr must be a finite number ≥ 0 or a schedule, got ${String(lr)}`,
      );
    }
    this.#config = withLearningRate(this.#config, lr);
    this.#stale = true;
  }

  /**
   * One step of the library optimizer over the given gradients (a `NamedTensorMap`, or a
   * `NamedTensor[]` as `minimize` passes with a `varList`), keyed by variable name. A `null`
   * gradient leaves its variable out of this step, as tfjs's optimizers do.
   *
   * Everything is checked before anything changes: an unknown, disposed or non-trainable
   * variable, a gradient that is not a float32 tensor of the variable's shape, or a disposed
   * one, throws a TypeError/RangeError naming the variable, and so does a non-finite gradient
   * under `nonFinite: "throw"`; no variable or moment is then changed.
   */
  override applyGradients(variableGradients: tf.NamedTensorMap | NamedTensor[]): void {
    const items = this.#checkGradients(variableGradients);
    if (items.length === 0) return;
    if (this.#onWebGpu()) {
      this.#gpuStep(items);
      return;
    }
    if (this.#gpu !== undefined) {
      throw new TypeError(
        `This optimizer's state is on the GPU (tfjs backend webgpu) but TensorFlow.js now runs on ${
          JSON.stringify(tf.getBackend())
        }; keep the webgpu backend, or save the model with its optimizer and load it there`,
      );
    }
    if (this.#state !== undefined && this.#stale) this.#keepAll();
    const heap = this.#heapBackend();
    if (heap !== undefined && !heap.usable()) {
      if (heap.lost) {
        // (Kept-aside state of frozen variables is on the JS heap, and stays.)
        const internals = stateInternals(this.#state!);
        this.#steps = internals.steps;
        this.#skipped = internals.skipped;
        dispose(this.#state!);
        this.#state = undefined;
        this.#entries = [];
        throw new TypeError(
          "The TensorFlow.js wasm backend that held this optimizer's state was disposed, and the state with it (moments, slow weights); the next step starts them afresh from the variables",
        );
      }
      // TensorFlow.js now runs on another backend: the state moves off tfjs's heap.
      this.#keepAll();
    } else if (
      heap === undefined && this.#state !== undefined && this.#builtOn !== tf.backend() &&
      this.#heapCandidate(stateInternals(this.#state).backend.layout.total) !== undefined
    ) {
      // Made while tfjs ran another backend, and tfjs now runs on wasm: onto its heap.
      this.#keepAll();
    }
    if (this.#state === undefined || !this.#sameVariables(this.#entries, items)) {
      this.#rebuild(items);
    }
    this.#cpuStep(items);
  }

  /** Validates the gradients; returns them with their variables, nothing changed. */
  #checkGradients(grads: unknown): GradItem[] {
    let pairs: [string, unknown][];
    if (Array.isArray(grads)) {
      pairs = grads.map((g, i) => {
        if (typeof g !== "object" || g === null || typeof g.name !== "string") {
          throw new TypeError(
            `Expected gradient ${i} to be a { name, tensor } (a NamedTensor), got ${describe(g)}`,
          );
        }
        return [g.name, g.tensor];
      });
    } else if (typeof grads === "object" && grads !== null) {
      pairs = Object.entries(grads);
    } else {
      throw new TypeError(
        `applyGradients expects a NamedTensorMap or a NamedTensor[], got ${describe(grads)}`,
      );
    }
    const registered = tf.engine().registeredVariables;
    const seen = new Set<string>();
    const items: GradItem[] = [];
    for (const [name, tensor] of pairs) {
      if (tensor === null || tensor === undefined) continue;
      const label = `variable ${JSON.stringify(name)}`;
      if (seen.has(name)) throw new TypeError(`Two gradients were given for ${label}`);
      seen.add(name);
      if (name === "__proto__") {
        throw new TypeError('A variable may not be named "__proto__" (it cannot key a record)');
      }
      const variable = Object.hasOwn(registered, name) ? registered[name] : undefined;
      if (variable === undefined) {
        throw new TypeError(
          `No ${label} is registered with TensorFlow.js (was it disposed?); gradients must be keyed by variable name`,
        );
      }
      if (variable.isDisposed) throw new TypeError(`The ${label} was disposed`);
      if (!variable.trainable) {
        throw new TypeError(`The ${label} is not trainable; it cannot take a gradient step`);
      }
      if (variable.dtype !== "float32") {
        throw new TypeError(`The ${label} is ${variable.dtype}; this optimizer updates float32`);
      }
      if (!(tensor instanceof tf.Tensor)) {
        throw new TypeError(
          `Expected the gradient of ${label} to be a tf.Tensor, got ${describe(tensor)}`,
        );
      }
      if (tensor.isDisposed) throw new TypeError(`The gradient of ${label} was disposed`);
      if (tensor.dtype !== "float32") {
        throw new TypeError(
          `Expected the gradient of ${label} to be float32, got ${tensor.dtype}`,
        );
      }
      if (!sameShape(tensor.shape, variable.shape)) {
        throw new RangeError(
          `Expected the gradient of ${label} to have the variable's shape ${
            shapeText(variable.shape)
          }, got ${shapeText(tensor.shape)}`,
        );
      }
      items.push({ name, tensor, variable });
    }
    return items;
  }

  /** Whether `items` are exactly the variables of `entries` (same names and shapes, any order). */
  #sameVariables(entries: readonly Entry[], items: readonly GradItem[]): boolean {
    if (entries.length !== items.length) return false;
    for (let i = 0; i < items.length; i++) {
      const e = entries[i];
      if (e.name !== items[i].name || !sameShape(e.shape, items[i].variable.shape)) {
        return false;
      }
    }
    return true;
  }

  #changeError(entries: readonly Entry[], items: readonly GradItem[]): RangeError {
    const names = new Set(items.map((i) => i.name));
    const gone = entries.find((e) => !names.has(e.name));
    if (gone) {
      return new RangeError(
        `The variable ${
          JSON.stringify(gone.name)
        } has no gradient in this step, but the optimizer holds its state (option strict: true refuses a change of the trained variables)`,
      );
    }
    const known = new Map(entries.map((e) => [e.name, e]));
    const item = items.find((i) =>
      !known.has(i.name) ||
      !sameShape(known.get(i.name)!.shape, i.variable.shape)
    ) ?? items[0];
    return new RangeError(
      `The variable ${
        JSON.stringify(item.name)
      } was not among the variables of the first step, or changed shape (option strict: true refuses a change of the trained variables)`,
    );
  }

  /** Moves the whole state into `#kept` (then there is no state). */
  #keepAll(): void {
    const state = this.#state!;
    const internals = stateInternals(state);
    const backend = internals.backend as HostBackend;
    this.#steps = internals.steps;
    this.#skipped = internals.skipped;
    const views = stateViews(backend);
    for (const entry of this.#entries) {
      this.#kept.set(entry.name, { entry, sections: views.map((v) => v?.[entry.name].slice()) });
    }
    dispose(state);
    this.#dropThreads();
    this.#state = undefined;
    this.#entries = [];
    this.#stale = false;
  }

  /** Makes the CPU state over `items`, from kept state where there is one (else fresh). */
  #rebuild(items: readonly GradItem[]): void {
    if (this.#config.run.threads > 1) checkThreadSupport(this.#config.run.threads);
    this.#dropThreads();
    if (this.#state !== undefined) {
      if (this.#strict) throw this.#changeError(this.#entries, items);
      this.#keepAll();
    }
    if (this.#renameOnLoad) this.#matchLoadedNames(items);
    const config = this.#config;
    const entries = items.map((i) => entryOf(i.name, i.variable.shape, config.loop.gc));
    const names = entries.map((e) => e.name);
    const layout = planFor(config, names, entries.map((e) => e.size));
    const backend = this.#cpuBackend(layout, entries, items);
    const params: Record<string, Float32Array> = {};
    entries.forEach((e, i) => {
      const data = new Float32Array(e.size);
      toArena(e, readHost(items[i].variable), data);
      params[e.name] = data;
    });
    backend.writeSection(PARAMS, params);
    for (const s of heldSections(layout)) {
      if (s === PARAMS || s === GRADS) continue;
      const data: Record<string, Float32Array> = {};
      for (const e of entries) {
        const kept = this.#kept.get(e.name);
        const saved = kept && this.#fits(kept, e.shape) ? kept.sections[s] : undefined;
        data[e.name] = saved ?? (s === SLOW ? params[e.name] : new Float32Array(e.size));
      }
      backend.writeSection(s, data);
    }
    for (const e of entries) this.#kept.delete(e.name);
    this.#state = restoreState(config, backend, {
      steps: this.#steps,
      skipped: this.#skipped,
      shapes: entries.map((e) => e.arenaShape),
    });
    this.#entries = entries;
    this.#assigned = items.map((i) => i.variable.dataId);
    this.#builtOn = tf.backend();
    if (
      backend.name === "wasm" && config.run.threads > 1 &&
      layout.total >= config.run.threadThreshold
    ) {
      const pending: ThreadsPending = { done: Promise.resolve() };
      pending.done = createThreadedWasmBackend(layout, config.run.threads).then(
        (b) => {
          if (this.#threads === pending) pending.backend = b;
          else b.dispose?.();
        },
        (error) => {
          if (this.#threads === pending) pending.error = error;
        },
      );
      this.#threads = pending;
    }
  }

  /** At a step: moves the state to its started threads (same layout, same bits). */
  #moveToThreads(): void {
    const pending = this.#threads;
    if (pending === undefined) return;
    if (pending.error !== undefined) {
      this.#threads = undefined;
      throw pending.error;
    }
    const target = pending.backend;
    if (target === undefined) return;
    this.#threads = undefined;
    const internals = stateInternals(this.#state!);
    const source = internals.backend as HostBackend;
    for (const s of heldSections(source.layout)) {
      if (s !== GRADS) target.writeSection(s, source.viewSection(s));
    }
    dispose(this.#state!);
    this.#state = restoreState(this.#config, target, {
      steps: internals.steps,
      skipped: internals.skipped,
      shapes: internals.shapes,
    });
  }

  #cpuBackend(
    layout: ReturnType<typeof planFor>,
    entries: readonly Entry[],
    items: readonly GradItem[],
  ): HostBackend {
    const choice = this.#config.run.backend;
    if (choice === "js" || (choice === "auto" && !wasmSimdSupported())) {
      return createJsBackend(layout, ruleOf(this.#config));
    }
    if (choice === "webgpu" && tf.getBackend() !== "webgpu") {
      throw new TypeError(
        `The optimizer's backend is "webgpu" but TensorFlow.js runs on ${
          JSON.stringify(tf.getBackend())
        }; use tf.setBackend("webgpu"), or backend "auto"`,
      );
    }
    // On tfjs-backend-wasm, one thread: the state on tfjs's own heap, the parameters updated in
    // their variables' data (heap_backend.ts). With threads, the kernel's own (shared) memory.
    const heap = this.#heapCandidate(layout.total);
    if (heap !== undefined) {
      const external = entries.map((e) => !e.transposed);
      const { clipGradNorm, nonFinite } = this.#config.loop;
      const copies = clipGradNorm !== undefined || nonFinite === "propagate";
      const backend = HeapBackend.create(heap, layout, external, items, copies);
      if (backend !== undefined) return backend;
    }
    return createWasmBackendSync(layout);
  }

  /** tfjs's wasm heap, when a state of `total` parameters is to be made on it. */
  #heapCandidate(total: number): TfjsWasmHeap | undefined {
    const config = this.#config;
    if (config.run.backend !== "auto" && config.run.backend !== "wasm") return undefined;
    if (config.run.threads > 1 && total >= config.run.threadThreshold) return undefined;
    return wasmSimdSupported() ? tfjsWasmHeap() : undefined;
  }

  /** The current state's backend when it is on tfjs's wasm heap. */
  #heapBackend(): HeapBackend | undefined {
    if (this.#state === undefined) return undefined;
    const backend = stateInternals(this.#state).backend;
    return backend instanceof HeapBackend ? backend : undefined;
  }

  /** Whether the update runs on the GPU: tfjs on webgpu, and backend "auto" or "webgpu". */
  #onWebGpu(): boolean {
    const choice = this.#config.run.backend;
    return tf.getBackend() === "webgpu" && (choice === "auto" || choice === "webgpu");
  }

  /** A step on the WebGPU path, making its state at the first (synchronously). */
  #gpuStep(items: readonly GradItem[]): void {
    let gpu = this.#gpu;
    if (gpu !== undefined && this.#stale) {
      throw new TypeError(
        "setLearningRate on the webgpu backend takes effect in a new optimizer only: save the model with its optimizer, load it, then set the learning rate before training",
      );
    }
    if (gpu !== undefined && !this.#sameVariables(gpu.entries, items)) {
      const error = this.#changeError(gpu.entries, items);
      throw this.#strict ? error : new RangeError(
        `${
          error.message.replace(/ \(option strict.*\)$/, "")
        }; on the webgpu backend the optimizer keeps the variables of its first step: make a new tfOptimizer, or train on a CPU backend (which keeps the state of the variables still there)`,
      );
    }
    if (gpu === undefined) {
      if (this.#state !== undefined) this.#keepAll();
      if (this.#renameOnLoad) this.#matchLoadedNames(items);
      const entries = items.map((i) => entryOf(i.name, i.variable.shape, false));
      const kept = new Map<string, (Float32Array | undefined)[]>();
      for (const e of entries) {
        const k = this.#kept.get(e.name);
        if (k && this.#fits(k, e.shape)) {
          // The layout it was held in: as this optimizer holds it on the CPU.
          const held = k.arenaShape ? entryOf(e.name, e.shape, this.#config.loop.gc) : k.entry;
          kept.set(e.name, k.sections.map((d) => d && fromArena(held, d)));
        }
      }
      gpu = createGpuRunner(this.#config, entries, items.map((i) => i.variable), kept, {
        steps: this.#steps,
        skipped: this.#skipped,
      });
      for (const e of entries) this.#kept.delete(e.name);
      this.#gpu = gpu;
    }
    gpu.step(items);
    this.iterations_ = gpu.state.step;
  }

  /** One step on the CPU state: gradients in, the kernel, parameters out. */
  #cpuStep(items: readonly GradItem[]): void {
    this.#moveToThreads();
    let state = this.#state!;
    const entries = this.#entries;
    const heap = this.#heapBackend();
    heap?.attach(items);
    // A variable assigned since the last step (model.setWeights, loading weights) is stepped from
    // its new value, as tfjs's own optimizers do (on tfjs's heap the step reads it anyway).
    let params: Readonly<Record<string, Float32Array>> | undefined;
    for (let i = 0; i < items.length; i++) {
      const variable = items[i].variable;
      if (variable.dataId === this.#assigned[i] || heap?.external(i)) continue;
      params ??= state.params as Readonly<Record<string, Float32Array>>;
      toArena(entries[i], readHost(variable), params[entries[i].name]);
      this.#assigned[i] = variable.dataId;
    }
    // Gradients in the tfjs layout go straight to the step: on tfjs's heap it reads them where
    // they are, elsewhere it copies them into its slots with the non-finite check fused; a
    // kernel held transposed goes through its slot. On the heap, a gradient the step cannot
    // read where it is (made on another tfjs backend, or another variable's data) is first
    // copied into a tensor of its own (before any view is taken: that may grow tfjs's memory).
    const tensors = items.map((item) => item.tensor);
    let values = tensors.map(readHost);
    const moved: tf.Tensor[] = [];
    if (heap !== undefined) {
      for (let i = 0; i < tensors.length; i++) {
        if (entries[i].transposed || heap.readsInPlace(i, values[i])) continue;
        tensors[i] = tf.tensor(values[i].slice(), tensors[i].shape, "float32");
        moved.push(tensors[i]);
      }
      if (moved.length > 0) values = tensors.map(readHost);
    }
    const slots = state.grads as Readonly<Record<string, Float32Array>>;
    const given: Record<string, Float32Array> = {};
    for (let i = 0; i < items.length; i++) {
      const e = entries[i];
      if (e.transposed) toArena(e, values[i], slots[e.name]);
      given[e.name] = e.transposed ? slots[e.name] : values[i];
    }
    const skipped = state.skippedSteps;
    try {
      state = step(state as OptimizerState, given);
    } finally {
      tf.dispose(moved);
    }
    this.#state = state;
    this.iterations_ = state.step;
    if (state.skippedSteps !== skipped) return;
    let stepped: Readonly<Record<string, Float32Array>> | undefined;
    // Parameters on tfjs's heap were updated in their variables' data. The others get new data
    // by assign, as tfjs's own optimizers give it (the wasm backend copies a tensor's values
    // into its heap at once; others may keep the array).
    const wasm = tf.getBackend() === "wasm";
    for (let i = 0; i < items.length; i++) {
      if (heap?.external(i)) continue;
      const e = entries[i];
      stepped ??= state.params as Readonly<Record<string, Float32Array>>;
      const view = stepped[e.name];
      const values = e.transposed ? fromArena(e, view) : wasm ? view : view.slice();
      const t = tf.tensor(values, e.shape as number[], "float32");
      items[i].variable.assign(t);
      this.#assigned[i] = items[i].variable.dataId;
      t.dispose();
    }
  }

  /**
   * The optimizer's weights as tfjs orders its own: `iter` (the steps taken), then per moment
   * the library keeps (`exp_avg` → `<variable>/m`, `exp_avg_sq` → `<variable>/v`), one tensor
   * per variable, then LookAhead's slow weights (`<variable>/slow`), all in the tfjs layout.
   * Variables whose state is kept aside (frozen) come after those of the last step.
   */
  override async getWeights(): Promise<NamedTensor[]> {
    const state = this.state;
    const out: NamedTensor[] = [];
    const steps = state?.step ?? this.#steps;
    const entries = this.#gpu?.entries ?? this.#entries;
    const layoutOf = (e: Entry) => this.#gpu ? entryOf(e.name, e.shape, false) : e;
    const sections: { suffix: string; section: number; data?: Record<string, Float32Array> }[] = [];
    if (state !== undefined) {
      const moments = await readMoments(state) as Record<string, Record<string, Float32Array>>;
      for (const m of momentSections(this.#config)) {
        sections.push({ suffix: m.suffix, section: m.section, data: moments[m.key] });
      }
      if (this.#config.lookahead) {
        sections.push({ suffix: SLOW_SUFFIX, section: SLOW, data: await readSlowWeights(state) });
      }
    } else {
      for (const m of momentSections(this.#config)) {
        sections.push({ suffix: m.suffix, section: m.section });
      }
      if (this.#config.lookahead) sections.push({ suffix: SLOW_SUFFIX, section: SLOW });
    }
    out.push({ name: "iter", tensor: tf.scalar(steps, "int32") });
    for (const s of sections) {
      if (s.data) {
        for (const e of entries) {
          const values = fromArena(layoutOf(e), s.data[e.name]);
          out.push({
            name: `${e.name}/${s.suffix}`,
            tensor: tf.tensor(values, e.shape as number[]),
          });
        }
      }
      for (const kept of this.#kept.values()) {
        const data = kept.sections[s.section];
        if (data === undefined) continue;
        // (State read by loadState and not yet matched to a variable: in its checkpoint layout.)
        out.push({
          name: `${kept.entry.name}/${s.suffix}`,
          tensor: tf.tensor(
            fromArena(kept.entry, data),
            (kept.arenaShape ?? kept.entry.shape) as number[],
          ),
        });
      }
    }
    return out;
  }

  /**
   * Restores weights written by {@linkcode getWeights} (or saved with a model): by name, not by
   * position. The state is remade at the next step from the variables' values then and these
   * moments; a variable without saved moments starts fresh. Throws a TypeError naming a weight
   * that is not `iter` or `<variable>/<m | v | slow>`, or whose shapes disagree.
   */
  override async setWeights(weightValues: NamedTensor[]): Promise<void> {
    if (!Array.isArray(weightValues)) {
      throw new TypeError(`setWeights expects a NamedTensor[], got ${describe(weightValues)}`);
    }
    const suffixes = new Map<string, number>(
      momentSections(this.#config).map((m) => [m.suffix, m.section]),
    );
    suffixes.set(SLOW_SUFFIX, SLOW);
    let steps: number | undefined;
    const byVariable = new Map<string, { shape: number[]; sections: Map<number, tf.Tensor> }>();
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
      const cut = w.name.lastIndexOf("/");
      const section = cut > 0 ? suffixes.get(w.name.slice(cut + 1)) : undefined;
      if (section === undefined) {
        throw new TypeError(
          `Unexpected optimizer weight ${JSON.stringify(w.name)}: expected "iter" or "<variable>/<${
            [...suffixes.keys()].join(" | ")
          }>"`,
        );
      }
      if (section === SLOW && !this.#config.lookahead) {
        throw new TypeError(
          `Unexpected optimizer weight ${
            JSON.stringify(w.name)
          }: ${this.#config.name} keeps no slow weights`,
        );
      }
      if (w.tensor.dtype !== "float32") {
        throw new TypeError(
          `Expected weight ${JSON.stringify(w.name)} to be float32, got ${w.tensor.dtype}`,
        );
      }
      const name = w.name.slice(0, cut);
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
    const kept = new Map<string, Kept>();
    for (const [name, v] of byVariable) {
      const entry = entryOf(name, v.shape, this.#config.loop.gc);
      const sections: (Float32Array | undefined)[] = [];
      for (const [section, tensor] of v.sections) {
        const data = new Float32Array(entry.size);
        toArena(entry, await tensor.data() as Float32Array, data);
        sections[section] = data;
      }
      kept.set(name, { entry, sections });
    }
    // Nothing has changed so far; now replace the state.
    this.#dropState();
    for (const [name, k] of kept) this.#kept.set(name, k);
    this.#steps = steps ?? 0;
    this.#skipped = 0;
    this.iterations_ = this.#steps;
    this.#renameOnLoad = true;
  }

  /** Whether kept state fits a variable of `shape` (same shape, or same arena shape). */
  #fits(kept: Kept, shape: readonly number[]): boolean {
    if (kept.arenaShape === undefined) {
      return kept.entry.size === shape.reduce((a, b) => a * b, 1) &&
        sameShape(kept.entry.shape, shape);
    }
    const entry = entryOf(kept.entry.name, shape, this.#config.loop.gc);
    return entry.size === kept.entry.size && sameShape(entry.arenaShape, kept.arenaShape);
  }

  /**
   * Takes the moments, slow weights and step counts of a library checkpoint (`saveState` bytes,
   * e.g. of another `TfOptimizer`'s `state`): the way back from `saveState`. Matched by tensor
   * name to the variables of the next step (as `setWeights`), each in the layout this optimizer
   * holds it in (a kernel under `gc` transposed, as `state` and its checkpoints have it); a
   * tensor that fits no variable is kept aside. The parameters are the variables' own: load the
   * model's weights as usual. The checkpoint's hyperparameters are not taken, this optimizer's
   * stay. Rejects with the library's `CheckpointError` for a damaged file; nothing changes then.
   */
  async loadState(bytes: Uint8Array): Promise<void> {
    const state = await loadState(bytes, {
      backend: "js",
      lr: this.#config.hyperparameters.lr as LearningRate,
    });
    const kept = new Map<string, Kept>();
    let steps: number, skipped: number;
    try {
      const internals = stateInternals(state);
      const backend = internals.backend as HostBackend;
      const layout = backend.layout;
      steps = internals.steps;
      skipped = internals.skipped;
      const views = stateViews(backend);
      layout.names.forEach((name, i) => {
        const arenaShape = internals.shapes[i];
        kept.set(name, {
          entry: entryOf(name, [layout.lengths[i]], false),
          arenaShape,
          sections: views.map((v) => v?.[name].slice()),
        });
      });
    } finally {
      dispose(state);
    }
    this.#dropState();
    for (const [name, k] of kept) this.#kept.set(name, k);
    this.#steps = steps;
    this.#skipped = skipped;
    this.iterations_ = steps;
    this.#renameOnLoad = true;
  }

  /** After setWeights: saved names may differ from the variables' by tfjs's `_<n>` suffix. */
  #renameOnLoad = false;

  /**
   * tfjs-layers names a loaded model's variables `<name>_<n>` where `<name>` is taken (the saved
   * model still alive in the process), and a saved model's may carry such a suffix too. A kept
   * state whose name has no variable goes to the one variable of the same base name and shape
   * that has no kept state of its own; where that is not one variable, nothing is moved (the
   * variable starts fresh), so nothing is ever mis-assigned.
   */
  #matchLoadedNames(items: readonly GradItem[]): void {
    this.#renameOnLoad = false;
    const names = new Set(items.map((i) => i.name));
    const orphans = [...this.#kept.keys()].filter((k) => !names.has(k));
    for (const orphan of orphans) {
      const kept = this.#kept.get(orphan)!;
      const candidates = items.filter((i) =>
        !this.#kept.has(i.name) && baseName(i.name) === baseName(orphan) &&
        this.#fits(kept, i.variable.shape)
      );
      const others = orphans.filter((o) => o !== orphan && baseName(o) === baseName(orphan));
      if (candidates.length !== 1 || others.length > 0) continue;
      this.#kept.delete(orphan);
      this.#kept.set(candidates[0].name, {
        ...kept,
        entry: { ...kept.entry, name: candidates[0].name },
      });
    }
  }

  /** Stops workers being started for a state that is going away. */
  #dropThreads(): void {
    this.#threads?.backend?.dispose?.();
    this.#threads = undefined;
  }

  #dropState(): void {
    this.#dropThreads();
    if (this.#state) dispose(this.#state);
    this.#state = undefined;
    this.#entries = [];
    this.#gpu?.destroy();
    this.#gpu = undefined;
    this.#kept.clear();
  }

  /** tfjs serialization: the library optimizer's settings (see {@linkcode fromConfig}). */
  override getConfig(): TfOptimizerConfig {
    const c = this.#config;
    const names = [...this.#entries.map((e) => e.name), ...this.#kept.keys()];
    if (c.loop.groups.length > 0 && names.length === 0) {
      throw new TypeError(
        "getConfig of an optimizer with parameter groups needs its variables: call it after the first step",
      );
    }
    const settings = {
      hyperparameters: optionsOf(c),
      lrSchedule: typeof c.hyperparameters.lr === "function",
      backend: c.run.backend,
      threads: c.run.threads,
      threadThreshold: c.run.threadThreshold,
      strict: this.#strict,
      ...(c.loop.groups.length > 0 ? { tensorOrder: names, tensorGroups: groupsOf(c, names) } : {}),
    };
    return { format: CONFIG_FORMAT, optimizer: c.name, settings: encodeConfig(settings) };
  }

  /** tfjs deserialization: the optimizer {@linkcode getConfig} described. */
  static override fromConfig<T extends tf.serialization.Serializable>(
    cls: tf.serialization.SerializableConstructor<T>,
    config: tf.serialization.ConfigDict,
  ): T {
    if (config.format !== CONFIG_FORMAT || typeof config.optimizer !== "string") {
      throw new TypeError(
        `Not a config of this library's tfjs optimizer: format ${JSON.stringify(config.format)}`,
      );
    }
    const s = decodeConfig(config.settings);
    const metadata: Record<string, string> = {
      format: FORMAT,
      format_version: FORMAT_VERSION,
      optimizer: config.optimizer,
      hyperparameters: JSON.stringify(s.hyperparameters),
      lr_schedule: String(s.lrSchedule === true),
      ...(s.tensorOrder === undefined ? {} : {
        tensor_order: JSON.stringify(s.tensorOrder),
        tensor_groups: JSON.stringify(s.tensorGroups),
      }),
    };
    const settings = configOf(metadata, {
      backend: s.backend as Settings["run"]["backend"],
      threads: s.threads as number,
      threadThreshold: s.threadThreshold as number,
      ...(s.lrSchedule === true ? { lr: missingSchedule } : {}),
    });
    // deno-lint-ignore no-explicit-any
    return new (cls as any)({ settings }, { strict: s.strict === true });
  }

  /** Releases the library state (workers, GPU buffers) and tfjs's iteration counter. */
  override dispose(): void {
    this.#dropState();
    super.dispose();
  }
}

/** A tensor's values on the host, copying as little as the tfjs backend allows. */
function readHost(tensor: tf.Tensor): Float32Array {
  // tfjs-backend-wasm's dataSync copies out of its heap; read the heap in place instead.
  return (tf.getBackend() === "wasm" ? wasmHeapOf(tensor) : undefined) ??
    tensor.dataSync() as Float32Array;
}

/** The tfjs-backend-wasm heap view of a tensor's data (read only), or undefined if not there. */
function wasmHeapOf(tensor: tf.Tensor): Float32Array | undefined {
  // deno-lint-ignore no-explicit-any
  const backend = tf.backend() as any;
  const info = backend.dataIdMap?.get(tensor.dataId);
  const heap = backend.wasm?.HEAPU8;
  if (!info || typeof info.memoryOffset !== "number" || !(heap instanceof Uint8Array)) {
    return undefined;
  }
  return new Float32Array(heap.buffer, heap.byteOffset + info.memoryOffset, tensor.size);
}

/** Ties a name from a saved model to a variable of the same base name (tfjs's `_<n>` suffix). */
export function baseName(name: string): string {
  return name.replace(/_\d+$/, "");
}
