/**
 * Optimizer values and their factories: each factory resolves its options through its rule's
 * schema (rules/registry.ts names the rule and the factory's defaults) and returns a frozen
 * value whose `init` places a state (core/select.ts) and starts it. `lookahead` wraps any of
 * them.
 *
 * @module
 */
import type {
  AdamHyperparameters,
  AdamOptions,
  LionHyperparameters,
  LionOptions,
  LookaheadOptions,
  RAdamHyperparameters,
  RAdamOptions,
  ResolvedConfig,
  SettingsOf,
} from "./options.ts";
import { resolveLookahead, resolveOptions } from "./options.ts";
import { placement } from "./select.ts";
import { initState, type OptimizerState } from "./state.ts";
import type { Params } from "./tensors.ts";
import { OPTIMIZERS } from "../rules/registry.ts";
import type { GpuParams, GpuTensor } from "../gpu/gpu_tensors.ts";
import { type GpuInitOptions, hasGpuParams, initWebGpuState } from "../gpu/webgpu_state.ts";

/**
 * An optimizer: its resolved settings and a way to start a state from parameters.
 *
 * @example Make one and start a state
 * ```ts
 * import { adamw } from "../mod.ts";
 * import assert from "node:assert/strict";
 *
 * const opt = adamw({ lr: 3e-4 });
 * const state = await opt.init({ "fc.weight": new Float32Array(6), "fc.bias": new Float32Array(2) });
 * assert.equal(opt.name, "adamw");
 * assert.equal(state.step, 0);
 * ```
 */
export interface Optimizer<H = Readonly<Record<string, unknown>>> {
  /** "radam", "adam", "adamw", "ranger", "lion", or "lookahead(…)" of one of them. */
  readonly name: string;
  /**
   * The settings in force: the options given, with the defaults filled in, split into the rule's
   * `hyperparameters`, `run` and `loop` (and, flat, every field of the three). The rule's
   * hyperparameters `H` are typed ({@linkcode RAdamHyperparameters} for `radam`).
   */
  readonly settings: Readonly<SettingsOf<H>>;
  /**
   * Copies `params` into a new arena on the chosen backend and returns the state at step 0.
   *
   * `params` is a record of named `Float32Array`s, or one `Float32Array` (held under the name
   * `""`, `SINGLE_TENSOR_NAME`). Throws a TypeError for values that are not Float32Arrays and a
   * RangeError for an empty record or non-finite numbers, and a RangeError, before allocating
   * anything, when the model is too large for the backend.
   *
   * With a second argument (`{ device }`, or `{}`), the state is a WebGPU one when the backend
   * is `"webgpu"`, or `"auto"` with GPU params or a device: `params` may then also hold
   * `GPUBuffer`s (see {@linkcode GpuParams}; they are updated in place where the step kernel can
   * bind them) and the state's slots are {@linkcode GpuTensor}s.
   * An explicit `"webgpu"` where no adapter exists throws; it never falls back silently.
   */
  init(params: Params): Promise<OptimizerState>;
  /** Starts a WebGPU state on `device` (backend `"webgpu"` or `"auto"`). */
  init(params: GpuParams, options: { device: GPUDevice }): Promise<OptimizerState<GpuTensor>>;
  /** Starts a state on the GPU or the CPU as the backend choice says (see above). */
  // deno-lint-ignore no-explicit-any
  init(params: GpuParams, options: GpuInitOptions): Promise<OptimizerState<any>>;
}

/**
 * The optimizer value of a resolved configuration; `H` is what the caller's rule resolves (the
 * schema guarantees the fields, which TypeScript cannot see through it).
 */
function optimizerOf<H>(settings: ResolvedConfig): Optimizer<H> {
  return Object.freeze({
    name: settings.name,
    settings: settings as SettingsOf<H>,
    init(
      params: GpuParams,
      options?: GpuInitOptions,
      // deno-lint-ignore no-explicit-any
    ): Promise<OptimizerState<any>> {
      let where;
      try {
        where = placement(settings, options?.device, hasGpuParams(params), "init");
      } catch (error) {
        return Promise.reject(error);
      }
      if (where === "device") return initWebGpuState(settings, params, options);
      return initState(settings, params as Params, where);
    },
  });
}

/** The optimizer `name` of rules/registry.ts with `options`. */
function make<H>(name: string, options: unknown): Optimizer<H> {
  const { rule, defaults } = OPTIMIZERS[name];
  return optimizerOf(resolveOptions(rule, name, options, defaults));
}

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
 * import { radam, readParams, step } from "../mod.ts";
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
  return make("radam", options);
}

/**
 * Adam (Kingma & Ba, 2015) with PyTorch's `torch.optim.Adam` semantics (amsgrad off).
 *
 * Defaults: `lr = 1e-3`, `betas = [0.9, 0.999]`, `eps = 1e-8`, `weightDecay = 0` (coupled).
 *
 * @example The first step moves each parameter by about lr against its gradient
 * ```ts
 * import { adam, step } from "../mod.ts";
 * import assert from "node:assert/strict";
 *
 * let state = await adam({ lr: 1e-3 }).init(new Float32Array([1, -1]));
 * state = step(state, new Float32Array([0.5, -0.5]));
 * assert.ok(Math.abs(state.params[""][0] - (1 - 1e-3)) < 1e-6);
 * assert.ok(Math.abs(state.params[""][1] - (-1 + 1e-3)) < 1e-6);
 * ```
 */
export function adam(options?: AdamOptions): Optimizer<AdamHyperparameters> {
  return make("adam", options);
}

/**
 * AdamW (Loshchilov & Hutter, 2019): Adam with decoupled weight decay, PyTorch's
 * `torch.optim.AdamW` semantics. Same options as {@linkcode adam}; `weightDecay` defaults to
 * `1e-2` and is decoupled (`p = p · (1 − lr · wd)`).
 *
 * @example A zero gradient: only the decay acts
 * ```ts
 * import { adamw, step } from "../mod.ts";
 * import assert from "node:assert/strict";
 *
 * let state = await adamw({ lr: 1e-3, weightDecay: 0.1 }).init({ w: new Float32Array(4).fill(1) });
 * state = step(state, { w: new Float32Array(4) });
 * assert.equal(state.params.w[0], Math.fround(1 - 1e-3 * 0.1));
 * ```
 */
export function adamw(options?: AdamOptions): Optimizer<AdamHyperparameters> {
  return make("adamw", options);
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
 * import { lion, readMoments, step } from "../mod.ts";
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
  return make("lion", options);
}

/**
 * LookAhead (Zhang et al. 2019) around any optimizer of this library: an optimizer value in,
 * an optimizer value out. The state keeps slow weights (initially the parameters) next to the
 * others; after every `k`-th inner step, `slow += α (p − slow)` and `p = slow`, fused into that
 * step's kernel call. Skipped steps (`nonFinite: "skip"`) do not count. Options: `k` (integer
 * ≥ 1, default 6), `alpha` (0 ≤ α ≤ 1, default 0.5); RangeError otherwise.
 *
 * @example The parameters equal the slow weights after a sync
 * ```ts
 * import { lookahead, radam, readSlowWeights, step } from "../mod.ts";
 * import assert from "node:assert/strict";
 *
 * let state = await lookahead(radam({ lr: 1e-2 }), { k: 5 }).init({ w: new Float32Array(3) });
 * for (let t = 0; t < 5; t++) state = step(state, { w: new Float32Array([1, 1, 1]) });
 * assert.deepEqual(state.params.w, (await readSlowWeights(state)).w);
 * assert.ok(state.params.w[0] < 0);
 * ```
 */
export function lookahead<H>(
  inner: Optimizer<H>,
  options?: LookaheadOptions,
): Optimizer<H> {
  if (typeof inner !== "object" || inner === null || typeof inner.settings !== "object") {
    throw new TypeError("lookahead() expects an optimizer made by this library, e.g. radam()");
  }
  return optimizerOf(resolveLookahead(inner.settings, options));
}

/**
 * Options of {@linkcode ranger}: RAdam's, plus LookAhead's `k` and `alpha`.
 *
 * @example
 * ```ts
 * import { ranger, type RangerOptions } from "../mod.ts";
 * import assert from "node:assert/strict";
 * const options: RangerOptions = { lr: 3e-3, k: 5, alpha: 0.5, weightDecay: 1e-4 };
 * assert.deepEqual(ranger(options).settings.lookahead, { k: 5, alpha: 0.5 });
 * ```
 */
export interface RangerOptions extends RAdamOptions, LookaheadOptions {}

/**
 * Ranger: LookAhead(RAdam) with gradient centralization, with Ranger's defaults: `lr = 1e-3`,
 * `betas = [0.95, 0.999]`, `eps = 1e-5`, `k = 6`, `alpha = 0.5`, threshold 5, decoupled weight
 * decay (default 0), `gc: true` (tensors given as `{ data, shape }` of rank > 1 have each row
 * of their gradient centralized; bare Float32Arrays are rank 1 and left alone).
 *
 * @example
 * ```ts
 * import { ranger, step } from "../mod.ts";
 * import assert from "node:assert/strict";
 *
 * let state = await ranger({ lr: 1e-3 }).init({
 *   "fc.weight": { data: new Float32Array(6), shape: [2, 3] },
 *   "fc.bias": new Float32Array(2),
 * });
 * state = step(state, { "fc.weight": new Float32Array(6).fill(1), "fc.bias": new Float32Array(2) });
 * assert.equal(state.optimizer, "lookahead(ranger)");
 * assert.equal(state.step, 1);
 * // a constant row is its own mean: centralized to zero, so the weights did not move
 * assert.deepEqual([...state.params["fc.weight"]], [0, 0, 0, 0, 0, 0]);
 * ```
 */
export function ranger(options?: RangerOptions): Optimizer<RAdamHyperparameters> {
  const { k, alpha, ...rest } = options ?? {};
  const { rule, defaults } = OPTIMIZERS.ranger;
  return optimizerOf(resolveLookahead(resolveOptions(rule, "ranger", rest, defaults), {
    ...(k === undefined ? {} : { k }),
    ...(alpha === undefined ? {} : { alpha }),
  }));
}
