/**
 * Optimizer options: the public option types, the schemas of the options every rule shares (how
 * a state runs, the training-loop features), and their validation, with the rule's own schema
 * (rules/), into the resolved configuration that the step code reads (docs/SPEC.md).
 *
 * @module
 */
import type { Rule, RuleKind } from "./rule.ts";
import {
  booleanOption,
  checkKeys,
  checkNumber,
  choiceOption,
  keysOf,
  numberOption,
  resolveSchema,
  type Schema,
} from "./schema.ts";

/**
 * Which kernel implementation runs the step.
 *
 * @example
 * ```ts
 * import { type BackendName, radam } from "../mod.ts";
 * import assert from "node:assert/strict";
 * const state = await radam({ backend: "js" }).init(new Float32Array(4));
 * const name: BackendName = state.backend;
 * assert.equal(name, "js");
 * ```
 */
export type BackendName = "wasm" | "js" | "webgpu";

/**
 * A backend request: a specific backend, or `"auto"` to pick the fastest available.
 *
 * @example
 * ```ts
 * import { type BackendChoice, radam } from "../mod.ts";
 * import assert from "node:assert/strict";
 * const backend: BackendChoice = "auto";
 * const state = await radam({ backend }).init(new Float32Array(4));
 * assert.ok(state.backend === "wasm" || state.backend === "js"); // wasm where SIMD exists
 * ```
 */
export type BackendChoice = BackendName | "auto";

/**
 * A learning rate: a fixed number, or a function of the 1-based step being taken that returns
 * one (a schedule). The function is called once per step, on the host.
 *
 * @example
 * ```ts
 * import { type LearningRate, radam } from "../mod.ts";
 * const warm: LearningRate = (t) => 1e-3 * Math.min(1, t / 100);
 * const opt = radam({ lr: warm });
 * ```
 */
export type LearningRate = number | ((t: number) => number);

/**
 * Options shared by every optimizer of this library: those of the update rule that every rule
 * has (`lr`, `betas`, `weightDecay`, `maximize`), how it runs (`backend`, `threads`,
 * `threadThreshold`) and the training-loop features (`clipGradNorm`, `nonFinite`, `gc`,
 * `groups`).
 *
 * @example
 * ```ts
 * import { adamw, type CommonOptions } from "../mod.ts";
 * import assert from "node:assert/strict";
 * const options: CommonOptions = { lr: 1e-3, weightDecay: 0.01, clipGradNorm: 1 };
 * assert.equal(adamw(options).settings.clipGradNorm, 1);
 * ```
 */
export interface CommonOptions {
  /** Learning rate, or a schedule `(t) => lr`. Default `1e-3` (Lion: `1e-4`). */
  lr?: LearningRate;
  /**
   * Coefficients `[β1, β2]`: of the running averages of the gradient and its square (Adam,
   * RAdam), or of Lion's update interpolation and its moment.
   */
  betas?: readonly [number, number];
  /** Weight decay coefficient. */
  weightDecay?: number;
  /** Maximize the objective instead of minimizing it (the gradient is negated). */
  maximize?: boolean;
  /** Backend to run on. Default `"auto"`: WASM SIMD when the runtime supports it, else JS. */
  backend?: BackendChoice;
  /**
   * Clip gradients by their global L2 norm over all tensors (PyTorch's `clip_grad_norm_`
   * without its 1e-6): the step scales every gradient by `min(1, clipGradNorm / norm)`. The
   * norm is taken (in float64) before gradient centralization. Off by default.
   */
  clipGradNorm?: number;
  /**
   * What to do when a gradient holds NaN or ±Infinity. `"skip"` (default): the step changes
   * nothing (params, moments, slow weights, step count) and `state.skippedSteps` grows by
   * one. `"throw"`: a RangeError naming the first such tensor, state untouched.
   * `"propagate"`: no check, as PyTorch. On the CPU backends the check of `"skip"` and
   * `"throw"` tests the gradients' exponent bits: one read of them, fused into the copy when
   * they are copied in, and no norm (`state.lastGradNorm` is NaN) unless `clipGradNorm` needs
   * the f64 norm, which then also serves as the check.
   * On the webgpu backend the check runs on the GPU and the device counts the steps, so
   * `step` stays synchronous: `state.step`, `skippedSteps` and `lastGradNorm` there are as of
   * the GPU's last report (exact after `await readParams(state)`), and `"throw"`'s RangeError
   * comes from the first `step`/`readParams`/`saveState` call after the GPU ran the bad step
   * (that step, and any submitted before the report, are not taken).
   */
  nonFinite?: NonFinitePolicy;
  /**
   * Gradient centralization: for each tensor of rank > 1 (given as `{ data, shape }`), subtract
   * from each row of its gradient (first axis) its mean over the other axes. Default off;
   * {@linkcode ranger} turns it on.
   */
  gc?: boolean;
  /**
   * Parameter groups: per-tensor hyperparameters chosen by name. Each tensor takes the first
   * group whose `match` (a RegExp tested on the name, or a predicate) accepts it; tensors no
   * group matches keep the optimizer's own settings. All groups are stepped in the same single
   * kernel call (a per-run scalar table).
   */
  groups?: readonly ParamGroup[];
  /**
   * Threads the wasm step runs on: an integer from 1 (the default: the main thread only, no
   * shared memory, no workers) to 256. With `threads > 1` the arena lives in a shared
   * `WebAssembly.Memory` and `threads - 1` Web Workers step their slices of it while the main
   * thread steps its own; `step` stays synchronous and the results are bit-identical to one
   * thread's. States smaller than `threadThreshold` parameters stay on one thread (no workers).
   * Needs SharedArrayBuffer (browsers: a cross-origin-isolated page) and Web Workers (Deno,
   * browsers; not Node.js): where they are missing, `init` throws rather than running on one
   * thread. Wasm backend only (`"js"` and `"webgpu"` refuse it). Release the workers with
   * `dispose(state)`.
   */
  threads?: number;
  /**
   * With `threads > 1`: the number of parameters below which a state stays on one thread,
   * since waking and waiting for the workers would cost more than they save. Default
   * {@linkcode DEFAULT_THREAD_THRESHOLD} (measured; see bench/ANALYSIS.md). 0 always splits.
   */
  threadThreshold?: number;
}

/**
 * Parameters below which a state asked for `threads > 1` still runs on one thread (option
 * `threadThreshold`'s default), measured by bench/thread_threshold.ts on a 2-core VM (figures in
 * bench/ANALYSIS.md): with the workers asleep between steps, as in a loop that computes
 * gradients between them, 2 threads beat 1 from 1M parameters (1.17× at 1M, 0.92× at 512K);
 * with steps back to back, from 128K. Lower it for such loops, or on machines with cheap wakes.
 *
 * @example
 * ```ts
 * import { DEFAULT_THREAD_THRESHOLD, radam } from "../mod.ts";
 * import assert from "node:assert/strict";
 * const state = await radam({ threads: 2 }).init(new Float32Array(1000));
 * assert.ok(1000 < DEFAULT_THREAD_THRESHOLD);
 * assert.equal(state.threads, 1);
 * ```
 */
export const DEFAULT_THREAD_THRESHOLD = 1_048_576;

/** Most threads a state may ask for. */
export const MAX_THREADS = 256;

/**
 * One parameter group: which tensors, and the hyperparameters that differ for them.
 *
 * @example
 * ```ts
 * import { adamw, type ParamGroup } from "../mod.ts";
 * const noDecay: ParamGroup = { match: /\.(bias|norm\.weight)$/, weightDecay: 0 };
 * const opt = adamw({ groups: [noDecay] });
 * ```
 */
export interface ParamGroup {
  /** Which tensors, by name: a RegExp (tested) or a predicate. */
  readonly match: RegExp | ((name: string) => boolean);
  /** Multiplier of the learning rate for these tensors (default 1). */
  readonly lrScale?: number;
  /** Weight decay for these tensors (default: the optimizer's), coupled or not as it is. */
  readonly weightDecay?: number;
}

/**
 * Policy for gradients holding NaN or ±Infinity; see {@linkcode CommonOptions.nonFinite}.
 *
 * @example
 * ```ts
 * import { type NonFinitePolicy, radam } from "../mod.ts";
 * const nonFinite: NonFinitePolicy = "throw";
 * const opt = radam({ nonFinite });
 * ```
 */
export type NonFinitePolicy = "skip" | "throw" | "propagate";

/**
 * LookAhead's settings (Zhang et al. 2019).
 *
 * @example
 * ```ts
 * import { lookahead, type LookaheadOptions, radam } from "../mod.ts";
 * const options: LookaheadOptions = { k: 5, alpha: 0.8 };
 * const opt = lookahead(radam(), options);
 * ```
 */
export interface LookaheadOptions {
  /** Sync period: every `k` inner steps the slow weights move. Integer ≥ 1, default 6. */
  k?: number;
  /** Slow step size, 0 ≤ α ≤ 1, default 0.5. */
  alpha?: number;
}

/**
 * Options of {@linkcode adam} and {@linkcode adamw}: the common options, `eps` and the weight
 * decay mode.
 *
 * @example
 * ```ts
 * import { adam, type AdamOptions } from "../mod.ts";
 * import assert from "node:assert/strict";
 * const options: AdamOptions = { lr: 3e-4, betas: [0.9, 0.98], weightDecay: 1e-4 };
 * assert.equal(adam(options).settings.beta2, 0.98);
 * ```
 */
export interface AdamOptions extends CommonOptions {
  /** Term added to the denominator for numerical stability. Default `1e-8`. */
  eps?: number;
  /**
   * Apply weight decay to the parameters directly (`p = p · (1 − lr · wd)`, "AdamW" style)
   * instead of adding `wd · p` to the gradient (L2, the default of Adam and RAdam).
   */
  decoupledWeightDecay?: boolean;
}

/**
 * Options of {@linkcode radam}: Adam's plus RAdam's rectification controls.
 *
 * @example
 * ```ts
 * import { radam, type RAdamOptions } from "../mod.ts";
 * import assert from "node:assert/strict";
 * const options: RAdamOptions = { threshold: 4, degenerateToSgd: false };
 * assert.equal(radam(options).settings.threshold, 4);
 * ```
 */
export interface RAdamOptions extends AdamOptions {
  /**
   * Rectify the adaptive step when `ρt > threshold` (strict). Default 5, as PyTorch and fastai;
   * the paper uses 4. Must be ≥ 4: the rectifier is undefined for ρt ≤ 4.
   */
  threshold?: number;
  /**
   * Before rectification starts, take a bias-corrected momentum-SGD step (`true`, PyTorch's
   * behaviour and the default), or leave the parameters untouched (`false`, the official
   * repository's default); the moments are updated either way.
   */
  degenerateToSgd?: boolean;
  /**
   * Nesterov momentum, as optax's `radam(nesterov=True)`: `m̂ = β1 m / (1 − β1^(t+1)) +
   * (1 − β1) g / (1 − β1^t)` in place of `m / (1 − β1^t)`, in both the rectified and the
   * momentum-SGD steps (eps stays where docs/SPEC.md puts it). Default false.
   */
  nesterov?: boolean;
}

/**
 * Options of {@linkcode lion}: the common options (defaults `lr = 1e-4`, `betas = [0.9, 0.99]`,
 * `weightDecay = 0`, always decoupled).
 *
 * @example
 * ```ts
 * import { lion, type LionOptions } from "../mod.ts";
 * import assert from "node:assert/strict";
 * const options: LionOptions = { lr: 3e-5, weightDecay: 0.1 };
 * assert.equal(lion(options).settings.beta2, 0.99);
 * ```
 */
export type LionOptions = CommonOptions;

/**
 * The hyperparameters {@linkcode adam} and {@linkcode adamw} resolve: `settings.hyperparameters`,
 * and the same fields flat on `settings`, typed (see {@linkcode SettingsOf}).
 *
 * @example
 * ```ts
 * import { adamw, type AdamHyperparameters } from "../mod.ts";
 * import assert from "node:assert/strict";
 * const h: AdamHyperparameters = adamw({ lr: 3e-4 }).settings.hyperparameters;
 * assert.equal(h.eps * 10, 1e-7);
 * assert.equal(h.decoupledWeightDecay, true);
 * ```
 */
export interface AdamHyperparameters extends CommonHyperparameters {
  /** The term added to the denominator. */
  readonly eps: number;
  /** Whether the decay is decoupled (AdamW). */
  readonly decoupledWeightDecay: boolean;
}

/**
 * The hyperparameters {@linkcode radam} (and {@linkcode ranger}) resolve: Adam's and the
 * rectification's.
 *
 * @example
 * ```ts
 * import { radam } from "../mod.ts";
 * import assert from "node:assert/strict";
 * const { settings } = radam({ threshold: 4 });
 * const firstRectifiedAfter: number = settings.threshold + 1;
 * assert.equal(firstRectifiedAfter, 5);
 * assert.equal(settings.hyperparameters.degenerateToSgd, true);
 * ```
 */
export interface RAdamHyperparameters extends AdamHyperparameters {
  /** Rectify when ρt exceeds it. */
  readonly threshold: number;
  /** Momentum-SGD steps before rectification (or none). */
  readonly degenerateToSgd: boolean;
  /** Nesterov momentum. */
  readonly nesterov: boolean;
}

/**
 * The hyperparameters every rule resolves (from {@linkcode CommonOptions}), typed on every
 * optimizer's settings, flat and in `hyperparameters`.
 *
 * @example
 * ```ts
 * import { lion, radam, type CommonHyperparameters } from "../mod.ts";
 * import assert from "node:assert/strict";
 * const all: CommonHyperparameters[] = [radam().settings, lion().settings.hyperparameters];
 * assert.deepEqual(all.map((h) => h.beta1 + h.weightDecay), [0.9, 0.9]);
 * ```
 */
export interface CommonHyperparameters {
  /** The learning rate, or the schedule given. */
  readonly lr: LearningRate;
  /** The first beta. */
  readonly beta1: number;
  /** The second beta. */
  readonly beta2: number;
  /** The weight-decay factor. */
  readonly weightDecay: number;
  /** Whether the objective is maximized. */
  readonly maximize: boolean;
}

/**
 * The hyperparameters {@linkcode lion} resolves: the common ones (its decay is always
 * decoupled).
 *
 * @example
 * ```ts
 * import { lion } from "../mod.ts";
 * import assert from "node:assert/strict";
 * const beta2: number = lion().settings.hyperparameters.beta2;
 * assert.equal(beta2, 0.99);
 * ```
 */
export type LionHyperparameters = CommonHyperparameters;

/**
 * The settings of an optimizer whose rule resolves the hyperparameters `H`: a
 * {@linkcode ResolvedConfig} whose `hyperparameters`, and the same fields flat, have `H`'s
 * types (a field of another rule reads as `unknown`).
 *
 * @example
 * ```ts
 * import { radam, type RAdamHyperparameters, type SettingsOf } from "../mod.ts";
 * import assert from "node:assert/strict";
 * const settings: SettingsOf<RAdamHyperparameters> = radam().settings;
 * assert.equal(settings.eps / settings.hyperparameters.eps, 1);
 * ```
 */
export type SettingsOf<H> = ResolvedConfig & H & { readonly hyperparameters: H };

export type { RuleKind };

/** How a state runs: its backend and threads. */
export interface RunSettings {
  /** The backend requested. */
  readonly backend: BackendChoice;
  /** Threads the wasm step may run on (1: single-threaded). */
  readonly threads: number;
  /** Parameters below which a threaded state stays on one thread. */
  readonly threadThreshold: number;
}

/** The training-loop features around the rule's step (docs/SPEC.md). */
export interface LoopSettings {
  /** Global-norm clipping threshold, or undefined when off. */
  readonly clipGradNorm: number | undefined;
  /** Policy for non-finite gradients. */
  readonly nonFinite: NonFinitePolicy;
  /** Whether gradients of rank > 1 tensors are centralized. */
  readonly gc: boolean;
  /** Parameter groups (may be empty). */
  readonly groups: readonly Required<ParamGroup>[];
}

/**
 * Options after defaults and validation; numbers are float64. Split in three: the rule's
 * `hyperparameters` (what a checkpoint must state), `run` (backend, threads) and `loop` (the
 * training-loop features), plus LookAhead's settings when wrapped. For backward compatibility
 * every field of the three is also a field of the configuration itself (`settings.beta2`,
 * `settings.threads`, `settings.gc`).
 *
 * @example
 * ```ts
 * import { radam, type ResolvedConfig } from "../mod.ts";
 * import assert from "node:assert/strict";
 * const settings: ResolvedConfig = radam({ lr: 0.01 }).settings;
 * assert.equal(settings.hyperparameters.eps, 1e-8);
 * assert.equal(settings.beta2, 0.999);
 * assert.equal(settings.run.backend, "auto");
 * ```
 */
export interface ResolvedConfig extends RunSettings, LoopSettings, CommonHyperparameters {
  /** The optimizer's public name: "radam", "adam", "adamw", "ranger", "lion", "lookahead(…)". */
  readonly name: string;
  /** The update rule: "radam", "adam" (Adam and AdamW) or "lion". */
  readonly kind: RuleKind;
  /** The rule's hyperparameters, as its schema resolves them (e.g. `beta1`, `beta2`). */
  readonly hyperparameters: Readonly<Record<string, unknown>>;
  /** How the state runs. */
  readonly run: RunSettings;
  /** The training-loop features. */
  readonly loop: LoopSettings;
  /** LookAhead's settings, when wrapped by `lookahead`. */
  readonly lookahead?: { readonly k: number; readonly alpha: number };
  /** Every hyperparameter, flat (`lr`, `beta1`, `beta2`, `eps`, `threshold`, …). */
  readonly [hyperparameter: string]: unknown;
}

function isObject(x: unknown): x is Record<string, unknown> {
  return typeof x === "object" && x !== null;
}

/**
 * Validates option `threads` (default 1): an integer from 1 to MAX_THREADS, and > 1 only on a
 * backend that can use it (wasm, or auto).
 */
export function checkThreads(value: unknown, backend: unknown): number {
  if (value === undefined) return 1;
  if (typeof value !== "number") {
    throw new TypeError(`Option threads must be a number, got ${typeof value}`);
  }
  if (!Number.isInteger(value) || value < 1 || value > MAX_THREADS) {
    throw new RangeError(
      `Option threads must be an integer from 1 to ${MAX_THREADS}, got ${String(value)}`,
    );
  }
  if (value > 1 && backend !== "wasm" && backend !== "auto") {
    throw new TypeError(
      `Option threads: ${value} needs the wasm backend (backend "wasm" or "auto"), got backend ${
        JSON.stringify(backend)
      }`,
    );
  }
  return value;
}

/** The backends a configuration may ask for. */
export const BACKENDS: readonly string[] = ["auto", "wasm", "js", "webgpu"];

/** How a state runs (not stored in checkpoints). */
export const RUN_OPTIONS: Schema = [
  choiceOption("backend", BACKENDS, "auto", "never"),
  {
    key: "threads",
    default: 1,
    stored: "never",
    check: (value, resolved) => checkThreads(value, resolved.backend),
  },
  numberOption("threadThreshold", DEFAULT_THREAD_THRESHOLD, "never"),
];

/** The training-loop features every rule has. */
export const LOOP_OPTIONS: Schema = [
  numberOption("clipGradNorm", undefined, "unlessDefault"),
  choiceOption("nonFinite", ["skip", "throw", "propagate"], "skip", "unlessDefault"),
  booleanOption("gc", false, "always"),
  // Stored by core/checkpoint.ts, with the map of tensors to groups.
  {
    key: "groups",
    default: Object.freeze([]),
    stored: "never",
    check: (value, resolved) => checkGroups(value, resolved.weightDecay as number),
  },
];

function checkGroups(value: unknown, weightDecay: number): readonly Required<ParamGroup>[] {
  if (!Array.isArray(value)) {
    throw new TypeError(`Option groups must be an array of { match, lrScale?, weightDecay? }`);
  }
  return Object.freeze(value.map((g: unknown, i: number) => {
    if (!isObject(g)) throw new TypeError(`Option groups[${i}] must be an object`);
    const match = g.match;
    if (!(match instanceof RegExp) && typeof match !== "function") {
      throw new TypeError(`Option groups[${i}].match must be a RegExp or a function of the name`);
    }
    return Object.freeze({
      match: match as RegExp | ((name: string) => boolean),
      lrScale: checkNumber(`groups[${i}].lrScale`, g.lrScale ?? 1, 0, Infinity, true),
      weightDecay: checkNumber(
        `groups[${i}].weightDecay`,
        g.weightDecay ?? weightDecay,
        0,
        Infinity,
        true,
      ),
    });
  }));
}

/** The options an optimizer of `rule` takes. */
export function knownOptions(rule: Rule): string[] {
  return [...keysOf(rule.options), ...keysOf(RUN_OPTIONS), ...keysOf(LOOP_OPTIONS)];
}

/**
 * Applies defaults (the factory's `defaults`, then the schemas') and validates `options`
 * (RangeError/TypeError naming the option) for an optimizer named `name` running `rule`.
 */
export function resolveOptions(
  rule: Rule,
  name: string,
  options: unknown,
  defaults: Readonly<Record<string, unknown>> = {},
): ResolvedConfig {
  const given = checkKeys(options, knownOptions(rule), name);
  const hyperparameters = Object.freeze(resolveSchema(rule.options, given, defaults));
  const run = Object.freeze(resolveSchema(RUN_OPTIONS, given, defaults)) as unknown as RunSettings;
  const loop = Object.freeze(
    resolveSchema(LOOP_OPTIONS, given, defaults, hyperparameters),
  ) as unknown as LoopSettings;
  for (const key of COMMON_HYPERPARAMETERS) {
    if (!(key in hyperparameters)) {
      throw new Error(`Internal error: the rule of ${name} resolves no ${key}`);
    }
  }
  return Object.freeze({
    ...hyperparameters as unknown as CommonHyperparameters,
    ...run,
    ...loop,
    name,
    kind: rule.kind,
    hyperparameters,
    run,
    loop,
  });
}

const COMMON_HYPERPARAMETERS = ["lr", "beta1", "beta2", "weightDecay", "maximize"] as const;

/** Validates LookAhead's options and returns `inner` wrapped (RangeError naming the option). */
export function resolveLookahead(inner: ResolvedConfig, options: unknown): ResolvedConfig {
  const o = checkKeys(options, ["k", "alpha"], "lookahead") as LookaheadOptions;
  if (inner.lookahead) {
    throw new TypeError("lookahead() was given an optimizer that already has LookAhead");
  }
  const k = o.k ?? 6;
  if (!Number.isInteger(k) || k < 1) {
    throw new RangeError(`Option k must be an integer ≥ 1, got ${String(k)}`);
  }
  const alpha = checkNumber("alpha", o.alpha ?? 0.5, 0, 1, true);
  return Object.freeze({
    ...inner,
    name: `lookahead(${inner.name})`,
    lookahead: Object.freeze({ k, alpha }),
  });
}

/** `config` with the learning rate `lr` (already validated) in place of its own. */
export function withLearningRate(config: ResolvedConfig, lr: LearningRate): ResolvedConfig {
  return Object.freeze({
    ...config,
    lr,
    hyperparameters: Object.freeze({ ...config.hyperparameters, lr }),
  });
}
