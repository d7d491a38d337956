/**
 * Optimizer options: the public option types, their defaults (SPEC.md), and validation into
 * a resolved configuration that the step code reads.
 *
 * @module
 */

/** Which kernel implementation runs the step. */
export type BackendName = "wasm" | "js" | "webgpu";

/** A backend request: a specific backend, or `"auto"` to pick the fastest available. */
export type BackendChoice = BackendName | "auto";

/**
 * A learning rate: a fixed number, or a function of the 1-based step being taken that returns
 * one (a schedule). The function is called once per step, on the host.
 */
export type LearningRate = number | ((t: number) => number);

/** Options shared by every optimizer of this library. */
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
}

/** Options of {@linkcode radam}: the common options plus RAdam's rectification controls. */
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
}

/** Options of {@linkcode adam} and {@linkcode adamw}. */
export type AdamOptions = CommonOptions;

/** The update rule a resolved configuration describes. */
export type RuleKind = "radam" | "adam";

/** Options after defaults and validation; numbers are float64. */
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

const KNOWN_OPTIONS: Record<RuleKind, readonly string[]> = {
  adam: [
    "lr",
    "betas",
    "eps",
    "weightDecay",
    "decoupledWeightDecay",
    "maximize",
    "backend",
  ],
  radam: [
    "lr",
    "betas",
    "eps",
    "weightDecay",
    "decoupledWeightDecay",
    "maximize",
    "backend",
    "threshold",
    "degenerateToSgd",
  ],
};

/** Defaults that differ between optimizers. */
export interface Defaults {
  readonly weightDecay: number;
  readonly decoupledWeightDecay: boolean;
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
  const betas = o.betas ?? [0.9, 0.999];
  if (!Array.isArray(betas) || betas.length !== 2) {
    throw new TypeError("Option betas must be an array of two numbers [β1, β2]");
  }
  const backend = o.backend ?? "auto";
  if (!BACKENDS.includes(backend)) {
    throw new RangeError(
      `Option backend must be one of ${BACKENDS.join(", ")}, got ${String(backend)}`,
    );
  }
  return Object.freeze({
    kind,
    name,
    lr: checkLearningRate(o.lr ?? 1e-3),
    beta1: checkNumber("betas[0]", betas[0], 0, 1, false),
    beta2: checkNumber("betas[1]", betas[1], 0, 1, false),
    eps: checkNumber("eps", o.eps ?? 1e-8, 0, Infinity, true),
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
  });
}
