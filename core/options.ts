/**
 * Optimizer options: the public option types, their defaults (SPEC.md), and validation into
 * a resolved configuration that the step code reads.
 *
 * @module
 */

/**
 * Which kernel implementation runs the step.
 *
 * @example
 * ```ts
 * import { type BackendName, radam } from "../mod.ts";
 * const state = await radam({ backend: "js" }).init(new Float32Array(4));
 * const name: BackendName = state.backend; // "js"
 * ```
 */
export type BackendName = "wasm" | "js" | "webgpu";

/**
 * A backend request: a specific backend, or `"auto"` to pick the fastest available.
 *
 * @example
 * ```ts
 * import { type BackendChoice, radam } from "../mod.ts";
 * const backend: BackendChoice = "auto";
 * console.log((await radam({ backend }).init(new Float32Array(4))).backend); // "wasm" where SIMD exists
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
 * Options shared by every optimizer of this library.
 *
 * @example
 * ```ts
 * import { adamw, type CommonOptions } from "../mod.ts";
 * const options: CommonOptions = { lr: 1e-3, weightDecay: 0.01, clipGradNorm: 1 };
 * const opt = adamw(options);
 * ```
 */
export interface CommonOptions {
  /** Learning rate, or a schedule `(t) => lr`. Default `1e-3`. */
  lr?: LearningRate;
  /** Coefficients `[β1, β2]` of the running averages of the gradient and its square. */
  betas?: readonly [number, number];
  /** Term added to the denominator for numerical stability. Default `1e-8`. */
  eps?: number;
  /** Weight decay coefficient. */
  weightDecay?: number;
  /**
   * Apply weight decay to the parameters directly (`p = p · (1 − lr · wd)`, "AdamW" style)
   * instead of adding `wd · p` to the gradient (L2, the default).
   */
  decoupledWeightDecay?: boolean;
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
 * const state = await radam({ threads: 2 }).init(new Float32Array(1000));
 * console.log(1000 < DEFAULT_THREAD_THRESHOLD, state.threads); // true 1
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
 * Options of {@linkcode radam}: the common options plus RAdam's rectification controls.
 *
 * @example
 * ```ts
 * import { radam, type RAdamOptions } from "../mod.ts";
 * const options: RAdamOptions = { threshold: 4, degenerateToSgd: false };
 * console.log(radam(options).settings.threshold); // 4
 * ```
 */
export interface RAdamOptions extends CommonOptions {
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
   * momentum-SGD steps (eps stays where SPEC puts it). Default false.
   */
  nesterov?: boolean;
}

/**
 * Options of {@linkcode adam} and {@linkcode adamw}.
 *
 * @example
 * ```ts
 * import { adam } from "../mod.ts";
 * const opt = adam({ lr: 3e-4, betas: [0.9, 0.98], weightDecay: 1e-4 });
 * console.log(opt.settings.beta2); // 0.98
 * ```
 */
export type AdamOptions = CommonOptions;

/**
 * The update rule a resolved configuration describes.
 *
 * @example
 * ```ts
 * import { adamw, type RuleKind } from "../mod.ts";
 * const kind: RuleKind = adamw().settings.kind; // "adam"
 * ```
 */
export type RuleKind = "radam" | "adam";

/**
 * Options after defaults and validation; numbers are float64.
 *
 * @example
 * ```ts
 * import { radam, type ResolvedConfig } from "../mod.ts";
 * const settings: ResolvedConfig = radam({ lr: 0.01 }).settings;
 * console.log(settings.eps, settings.beta2); // 1e-8 0.999
 * ```
 */
export interface ResolvedConfig {
  /** The update rule: "radam", or "adam" (Adam and AdamW). */
  readonly kind: RuleKind;
  /** The optimizer's public name: "radam", "adam" or "adamw". */
  readonly name: string;
  /** Learning rate or schedule. */
  readonly lr: LearningRate;
  /** β1, the first-moment coefficient. */
  readonly beta1: number;
  /** β2, the second-moment coefficient. */
  readonly beta2: number;
  /** Denominator term. */
  readonly eps: number;
  /** Weight decay coefficient. */
  readonly weightDecay: number;
  /** Whether weight decay is decoupled (AdamW style). */
  readonly decoupledWeightDecay: boolean;
  /** Whether the objective is maximized. */
  readonly maximize: boolean;
  /** RAdam's rectification threshold on ρt (strict >). */
  readonly threshold: number;
  /** RAdam: momentum-SGD steps before rectification (true) or none (false). */
  readonly degenerateToSgd: boolean;
  /** The backend requested. */
  readonly backend: BackendChoice;
  /** RAdam: Nesterov momentum (optax's variant). */
  readonly nesterov: boolean;
  /** Global-norm clipping threshold, or undefined when off. */
  readonly clipGradNorm: number | undefined;
  /** Policy for non-finite gradients. */
  readonly nonFinite: NonFinitePolicy;
  /** Whether `nonFinite` was given (else it is the default; checkpoints record only a given one). */
  readonly nonFiniteGiven: boolean;
  /** Whether gradients of rank > 1 tensors are centralized. */
  readonly gc: boolean;
  /** Parameter groups (may be empty). */
  readonly groups: readonly Required<ParamGroup>[];
  /** Threads the wasm step may run on (1: single-threaded). */
  readonly threads: number;
  /** Parameters below which a threaded state stays on one thread. */
  readonly threadThreshold: number;
  /** LookAhead's settings, when wrapped by `lookahead`. */
  readonly lookahead?: { readonly k: number; readonly alpha: number };
}

const BACKENDS: readonly string[] = ["auto", "wasm", "js", "webgpu"];

function isObject(x: unknown): x is Record<string, unknown> {
  return typeof x === "object" && x !== null;
}

/** Throws a RangeError unless `value` is a finite number inside the given bounds. */
export function checkNumber(
  name: string,
  value: unknown,
  min: number,
  max: number,
  maxInclusive: boolean,
): number {
  if (typeof value !== "number" || !Number.isFinite(value)) {
    throw new RangeError(`Option ${name} must be a finite number, got ${String(value)}`);
  }
  const above = maxInclusive ? value > max : value >= max;
  if (value < min || above) {
    const upper = max === Infinity ? "" : ` and ${maxInclusive ? "≤" : "<"} ${max}`;
    throw new RangeError(`Option ${name} must be ≥ ${min}${upper}, got ${value}`);
  }
  return value;
}

function checkBoolean(name: string, value: unknown, fallback: boolean): boolean {
  if (value === undefined) return fallback;
  if (typeof value !== "boolean") {
    throw new TypeError(`Option ${name} must be a boolean, got ${typeof value}`);
  }
  return value;
}

/** Validates a learning rate value (number or schedule). */
export function checkLearningRate(value: unknown): LearningRate {
  if (typeof value === "function") return value as (t: number) => number;
  return checkNumber("lr", value, 0, Infinity, true);
}

/**
 * The hyperparameters of the update rule itself, which a checkpoint must state (their defaults
 * differ between optimizers): those of Adam's rule, then those RAdam adds.
 */
export const RULE_HYPERPARAMETERS: Readonly<Record<RuleKind, readonly string[]>> = (() => {
  const adam = ["lr", "betas", "eps", "weightDecay", "decoupledWeightDecay", "maximize"];
  return { adam, radam: [...adam, "threshold", "degenerateToSgd"] };
})();

/** The options of how the rule runs (backend, threads) and of the training-loop features. */
const RUN_OPTIONS = [
  "backend",
  "clipGradNorm",
  "nonFinite",
  "gc",
  "groups",
  "threads",
  "threadThreshold",
];

const KNOWN_OPTIONS: Record<RuleKind, readonly string[]> = {
  adam: [...RULE_HYPERPARAMETERS.adam, ...RUN_OPTIONS],
  radam: [...RULE_HYPERPARAMETERS.radam, "nesterov", ...RUN_OPTIONS],
};

const NON_FINITE: readonly string[] = ["skip", "throw", "propagate"];

/** Defaults that differ between optimizers. */
export interface Defaults {
  readonly weightDecay: number;
  readonly decoupledWeightDecay: boolean;
  readonly betas?: readonly [number, number];
  readonly eps?: number;
  readonly gc?: boolean;
}

/**
 * Applies defaults and validates `options` (RangeError/TypeError naming the option).
 */
export function resolveOptions(
  kind: RuleKind,
  name: string,
  options: unknown,
  defaults: Defaults,
): ResolvedConfig {
  if (options === undefined) options = {};
  if (!isObject(options) || Array.isArray(options)) {
    throw new TypeError(`Options of ${name} must be an object, got ${typeof options}`);
  }
  for (const key of Object.keys(options)) {
    if (!KNOWN_OPTIONS[kind].includes(key)) {
      throw new TypeError(
        `Unknown option ${key} for ${name}; expected one of ${KNOWN_OPTIONS[kind].join(", ")}`,
      );
    }
  }
  const o = options as RAdamOptions;
  const betas = o.betas ?? defaults.betas ?? [0.9, 0.999];
  const nonFinite = o.nonFinite ?? "skip";
  if (!NON_FINITE.includes(nonFinite)) {
    throw new RangeError(
      `Option nonFinite must be one of ${NON_FINITE.join(", ")}, got ${String(nonFinite)}`,
    );
  }
  if (!Array.isArray(betas) || betas.length !== 2) {
    throw new TypeError("Option betas must be an array of two numbers [β1, β2]");
  }
  const backend = o.backend ?? "auto";
  if (!BACKENDS.includes(backend)) {
    throw new RangeError(
      `Option backend must be one of ${BACKENDS.join(", ")}, got ${String(backend)}`,
    );
  }
  const threads = checkThreads(o.threads, backend);
  return Object.freeze({
    kind,
    name,
    lr: checkLearningRate(o.lr ?? 1e-3),
    beta1: checkNumber("betas[0]", betas[0], 0, 1, false),
    beta2: checkNumber("betas[1]", betas[1], 0, 1, false),
    eps: checkNumber("eps", o.eps ?? defaults.eps ?? 1e-8, 0, Infinity, true),
    weightDecay: checkNumber(
      "weightDecay",
      o.weightDecay ?? defaults.weightDecay,
      0,
      Infinity,
      true,
    ),
    decoupledWeightDecay: checkBoolean(
      "decoupledWeightDecay",
      o.decoupledWeightDecay,
      defaults.decoupledWeightDecay,
    ),
    maximize: checkBoolean("maximize", o.maximize, false),
    threshold: o.threshold === undefined
      ? 5
      : checkNumber("threshold", o.threshold, 4, Infinity, true),
    degenerateToSgd: checkBoolean("degenerateToSgd", o.degenerateToSgd, true),
    backend,
    clipGradNorm: o.clipGradNorm === undefined
      ? undefined
      : checkNumber("clipGradNorm", o.clipGradNorm, 0, Infinity, true),
    nonFinite,
    nonFiniteGiven: o.nonFinite !== undefined,
    gc: checkBoolean("gc", o.gc, defaults.gc ?? false),
    nesterov: checkBoolean("nesterov", o.nesterov, false),
    groups: checkGroups(o.groups, o.weightDecay ?? defaults.weightDecay),
    threads,
    threadThreshold: o.threadThreshold === undefined
      ? DEFAULT_THREAD_THRESHOLD
      : checkNumber("threadThreshold", o.threadThreshold, 0, Infinity, true),
  });
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

function checkGroups(value: unknown, weightDecay: number): readonly Required<ParamGroup>[] {
  if (value === undefined) return Object.freeze([]);
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

/** Validates LookAhead's options and returns `inner` wrapped (RangeError naming the option). */
export function resolveLookahead(inner: ResolvedConfig, options: unknown): ResolvedConfig {
  if (options === undefined) options = {};
  if (!isObject(options) || Array.isArray(options)) {
    throw new TypeError(`Options of lookahead must be an object, got ${typeof options}`);
  }
  const o = options as LookaheadOptions;
  for (const key of Object.keys(o)) {
    if (key !== "k" && key !== "alpha") {
      throw new TypeError(`Unknown option ${key} for lookahead; expected one of k, alpha`);
    }
  }
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
