/**
 * The registry: every optimizer of the library by name, the rule it runs, the options it takes
 * and its defaults (the table, which checkpoints read to rebuild an optimizer by name), and its
 * factory with its documentation. Rules get their kernel tags from the table's order (see
 * `registryOf`, core/origins.ts). A new rule adds one line to the table and its factory here.
 *
 * mod.ts re-exports this module with `export *`: the factories and the rules' option and
 * hyperparameter types. The table is the module's default export, which `export *` leaves out:
 * it is internal.
 *
 * @module
 */
import { ADAM, RADAM_OPTIONS } from "../rules/adam.ts";
import type {
  AdamHyperparameters,
  AdamOptions,
  RAdamHyperparameters,
  RAdamOptions,
  RangerOptions,
} from "../rules/adam_options.ts";
import { LION, type LionHyperparameters, type LionOptions } from "../rules/lion.ts";
import { SGD, type SgdHyperparameters, type SgdOptions } from "../rules/sgd.ts";
import { make, type Optimizer } from "./optimizer.ts";
import { registryOf } from "./origins.ts";
import { optimizerFactory } from "../base/_call_hints.ts";

export type {
  AdamHyperparameters,
  AdamOptions,
  LionHyperparameters,
  LionOptions,
  RAdamHyperparameters,
  RAdamOptions,
  RangerOptions,
  SgdHyperparameters,
  SgdOptions,
};

const REGISTRY = registryOf({
  radam: { rule: ADAM, options: RADAM_OPTIONS },
  adam: { rule: ADAM },
  adamw: { rule: ADAM, defaults: { weightDecay: 1e-2, decoupledWeightDecay: true } },
  ranger: {
    rule: ADAM,
    options: RADAM_OPTIONS,
    lookahead: true,
    defaults: { betas: [0.95, 0.999], eps: 1e-5, decoupledWeightDecay: true, gc: true },
  },
  lion: { rule: LION },
  sgd: { rule: SGD },
});
export default REGISTRY;

/**
 * RAdam, Rectified Adam (Liu et al., "On the Variance of the Adaptive Learning Rate and
 * Beyond", 2019), with PyTorch's `torch.optim.RAdam` semantics.
 *
 * For the first steps, while the variance of the adaptive learning rate is intractable
 * (`ρt ≤ threshold`), it takes bias-corrected momentum-SGD steps (or none, with
 * `degenerateToSgd: false`); after that, Adam steps scaled by the rectifier `r`.
 * At the default β2 = 0.999 the first rectified step is step 6.
 *
 * Defaults: `lr = 1e-3`, `betas = [0.9, 0.999]`, `eps = 1e-8`, `weightDecay = 0` (coupled,
 * L2), `threshold = 5`, `degenerateToSgd = true`, `backend = "auto"`. Invalid options throw a
 * RangeError (or TypeError) naming the option.
 *
 * @example Train a tiny least-squares model
 * ```ts
 * import { radam, readParams, step } from "@optim/radam";
 * import assert from "node:assert/strict";
 *
 * const opt = radam({ lr: 0.1, weightDecay: 1e-4, decoupledWeightDecay: true });
 * let state = await opt.init({ w: new Float32Array([0, 0]) });
 * const target = [3, -1];
 * for (let t = 0; t < 200; t++) {
 *   const w = state.params.w;
 *   state = step(state, { w: new Float32Array([w[0] - target[0], w[1] - target[1]]) });
 * }
 * const { w } = await readParams(state);
 * assert.ok(Math.abs(w[0] - 3) < 0.05 && Math.abs(w[1] + 1) < 0.05);
 * ```
 */
export function radam(options?: RAdamOptions): Optimizer<RAdamHyperparameters> {
  return make(REGISTRY.optimizers.radam, options, arguments);
}

/**
 * Adam (Kingma & Ba, 2015) with PyTorch's `torch.optim.Adam` semantics (amsgrad off).
 *
 * Defaults: `lr = 1e-3`, `betas = [0.9, 0.999]`, `eps = 1e-8`, `weightDecay = 0` (coupled).
 *
 * @example The first step moves each parameter by about lr against its gradient
 * ```ts
 * import { adam, step } from "@optim/radam";
 * import assert from "node:assert/strict";
 *
 * let state = await adam({ lr: 1e-3 }).init(new Float32Array([1, -1]));
 * state = step(state, new Float32Array([0.5, -0.5]));
 * assert.ok(Math.abs(state.params[""][0] - (1 - 1e-3)) < 1e-6);
 * assert.ok(Math.abs(state.params[""][1] - (-1 + 1e-3)) < 1e-6);
 * ```
 */
export function adam(options?: AdamOptions): Optimizer<AdamHyperparameters> {
  return make(REGISTRY.optimizers.adam, options, arguments);
}

/**
 * AdamW (Loshchilov & Hutter, 2019): Adam with decoupled weight decay, PyTorch's
 * `torch.optim.AdamW` semantics. Same options as {@linkcode adam}; `weightDecay` defaults to
 * `1e-2` and is decoupled (`p = p · (1 − lr · wd)`).
 *
 * @example A zero gradient: only the decay acts
 * ```ts
 * import { adamw, step } from "@optim/radam";
 * import assert from "node:assert/strict";
 *
 * let state = await adamw({ lr: 1e-3, weightDecay: 0.1 }).init({ w: new Float32Array(4).fill(1) });
 * state = step(state, { w: new Float32Array(4) });
 * assert.equal(state.params.w[0], Math.fround(1 - 1e-3 * 0.1));
 * ```
 */
export function adamw(options?: AdamOptions): Optimizer<AdamHyperparameters> {
  return make(REGISTRY.optimizers.adamw, options, arguments);
}

/**
 * Lion (Chen et al. 2023, "Symbolic Discovery of Optimization Algorithms"), as optax's `lion`
 * and lucidrains' `lion-pytorch`: `c = β1·m + (1 − β1)·g`, `p = p·(1 − lr·wd) − lr·sign(c)`
 * (sign(0) = 0), `m = β2·m + (1 − β2)·g`. One moment (`exp_avg`), so its arena holds 12 bytes
 * a parameter (params, grads, m), and each step moves 20 bytes a parameter.
 *
 * Defaults: `lr = 1e-4`, `betas = [0.9, 0.99]`, `weightDecay = 0` (always decoupled). Every
 * common option applies (`maximize`, schedules, groups, clipping, the non-finite guard,
 * `threads`, `gc`), and {@linkcode lookahead} wraps it.
 *
 * @example Every coordinate moves by exactly lr on the first step
 * ```ts
 * import { lion, readMoments, step } from "@optim/radam";
 * import assert from "node:assert/strict";
 *
 * let state = await lion({ lr: 0.01 }).init({ w: new Float32Array([1, 1, 1]) });
 * state = step(state, { w: new Float32Array([2, -3, 0]) });
 * const lr = Math.fround(0.01);
 * assert.deepEqual([...state.params.w], [Math.fround(1 - lr), Math.fround(1 + lr), 1]);
 * const { exp_avg } = await readMoments(state);
 * assert.equal(exp_avg.w[0], Math.fround(1 - 0.99) * 2); // (1 − β2)·g
 * ```
 */
export function lion(options?: LionOptions): Optimizer<LionHyperparameters> {
  return make(REGISTRY.optimizers.lion, options, arguments);
}

/**
 * Ranger: LookAhead(RAdam) with gradient centralization, with Ranger's defaults: `lr = 1e-3`,
 * `betas = [0.95, 0.999]`, `eps = 1e-5`, `k = 6`, `alpha = 0.5`, threshold 5, decoupled weight
 * decay (default 0), `gc: true` (tensors given as `{ data, shape }` of rank > 1 have each row
 * of their gradient centralized; bare Float32Arrays are rank 1 and left alone).
 *
 * @example
 * ```ts
 * import { ranger, step } from "@optim/radam";
 * import assert from "node:assert/strict";
 *
 * let state = await ranger({ lr: 1e-3 }).init({
 *   "fc.weight": { data: new Float32Array(6), shape: [2, 3] },
 *   "fc.bias": new Float32Array(2),
 * });
 * state = step(state, { "fc.weight": new Float32Array(6).fill(1), "fc.bias": new Float32Array(2) });
 * assert.equal(state.optimizer, "ranger");
 * assert.equal(state.step, 1);
 * // a constant row is its own mean: centralized to zero, so the weights did not move
 * assert.deepEqual([...state.params["fc.weight"]], [0, 0, 0, 0, 0, 0]);
 * ```
 */
export function ranger(options?: RangerOptions): Optimizer<RAdamHyperparameters> {
  return make(REGISTRY.optimizers.ranger, options, arguments);
}

/**
 * SGD with momentum, PyTorch's `torch.optim.SGD`: `g = grad + wd·p` (L2 weight decay), then
 * with momentum μ a buffer `b = μ·b + (1 − τ)·g` (the first step sets `b = g`), and
 * `p = p − lr·b` (Nesterov: `p = p − lr·(g + μ·b)`); without momentum, `p = p − lr·g`.
 * `maximize` negates the gradient first. The buffer is checkpointed as `momentum_buffer`; with
 * momentum 0 the state keeps no moment (8 bytes a parameter: params and gradients).
 *
 * Defaults: `lr = 1e-3` (recent PyTorch's default; older releases required `lr`), `momentum = 0`,
 * `dampening = 0`, `weightDecay = 0`, `nesterov = false`, `maximize = false`. Nesterov needs
 * momentum > 0 and dampening 0, as PyTorch (RangeError otherwise). Every common option applies,
 * and {@linkcode lookahead} wraps it.
 *
 * @example Heavy-ball momentum: the first step is plain SGD, the second adds the buffer
 * ```ts
 * import { readMoments, sgd, step } from "@optim/radam";
 * import assert from "node:assert/strict";
 *
 * let state = await sgd({ lr: 0.1, momentum: 0.9 }).init({ w: new Float32Array([1]) });
 * state = step(state, { w: new Float32Array([1]) }); // b = 1, p = 1 − 0.1
 * state = step(state, { w: new Float32Array([1]) }); // b = 0.9 + 1, p = 0.9 − 0.19
 * assert.ok(Math.abs(state.params.w[0] - 0.71) < 1e-6);
 * const { momentum_buffer } = await readMoments(state);
 * assert.ok(Math.abs(momentum_buffer.w[0] - 1.9) < 1e-6);
 * ```
 */
export function sgd(options?: SgdOptions): Optimizer<SgdHyperparameters> {
  return make(REGISTRY.optimizers.sgd, options, arguments);
}

// Known given uncalled (step(radam): a factory's hint) by a mark, in this copy of the library
// and another's, not by their names, which an app's minified bundle renames (and a function of
// the caller's may share); radam.init(params) says to call the factory first.
optimizerFactory(radam, "radam");
optimizerFactory(adam, "adam");
optimizerFactory(adamw, "adamw");
optimizerFactory(lion, "lion");
optimizerFactory(ranger, "ranger");
optimizerFactory(sgd, "sgd");
