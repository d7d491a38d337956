/**
 * The options and the resolved hyperparameters of the optimizers of the RAdam / Adam / AdamW
 * rule (rules/adam.ts): `radam`, `adam`, `adamw` and `ranger`.
 *
 * @module
 */
import type { CommonOptions, LookaheadOptions } from "../base/options.ts";
import type { CommonHyperparameters } from "../base/settings.ts";

/**
 * Options of {@linkcode adam} and {@linkcode adamw}: the common options, `eps` and the weight
 * decay mode.
 *
 * @example
 * ```ts
 * import { adam, type AdamOptions } from "@optim/radam";
 * import assert from "node:assert/strict";
 * const options: AdamOptions = { lr: 3e-4, betas: [0.9, 0.98], weightDecay: 1e-4 };
 * assert.equal(adam(options).settings.hyperparameters.beta2, 0.98);
 * ```
 */
export interface AdamOptions extends CommonOptions {
  /**
   * Coefficients `[β1, β2]` of the running averages of the gradient and its square. Default
   * `[0.9, 0.999]`.
   */
  betas?: readonly [number, number];
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
 * import { radam, type RAdamOptions } from "@optim/radam";
 * import assert from "node:assert/strict";
 * const options: RAdamOptions = { threshold: 4, degenerateToSgd: false };
 * assert.equal(radam(options).settings.hyperparameters.threshold, 4);
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
 * The hyperparameters {@linkcode adam} and {@linkcode adamw} resolve: their
 * `settings.hyperparameters`, typed (see {@linkcode Settings}).
 *
 * @example
 * ```ts
 * import { adamw, type AdamHyperparameters } from "@optim/radam";
 * import assert from "node:assert/strict";
 * const h: AdamHyperparameters = adamw({ lr: 3e-4 }).settings.hyperparameters;
 * assert.equal(h.eps * 10, 1e-7);
 * assert.equal(h.decoupledWeightDecay, true);
 * ```
 */
export interface AdamHyperparameters extends CommonHyperparameters {
  /** The first beta. */
  readonly beta1: number;
  /** The second beta. */
  readonly beta2: number;
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
 * import { radam } from "@optim/radam";
 * import assert from "node:assert/strict";
 * const { hyperparameters } = radam({ threshold: 4 }).settings;
 * const firstRectifiedAfter: number = hyperparameters.threshold + 1;
 * assert.equal(firstRectifiedAfter, 5);
 * assert.equal(hyperparameters.degenerateToSgd, true);
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
 * Options of {@linkcode ranger}: RAdam's, plus LookAhead's `k` and `alpha`.
 *
 * @example
 * ```ts
 * import { ranger, type RangerOptions } from "@optim/radam";
 * import assert from "node:assert/strict";
 * const options: RangerOptions = { lr: 3e-3, k: 5, alpha: 0.5, weightDecay: 1e-4 };
 * assert.deepEqual(ranger(options).settings.lookahead, { k: 5, alpha: 0.5 });
 * ```
 */
export interface RangerOptions extends RAdamOptions, LookaheadOptions {}
