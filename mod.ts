/**
 * Fast optimizer kernels for JavaScript: RAdam (Rectified Adam, Liu et al. 2019), Adam and
 * AdamW, with every tensor of a model packed into one arena and updated by one fused kernel per
 * step: WebAssembly SIMD on the CPU, or a plain TypeScript fallback that gives bit-identical
 * results.
 *
 * The API is functional: an optimizer is a small value built by a factory; `init` makes a
 * state from the parameters, and `step(state, grads)` returns the next state.
 *
 * ```ts
 * import { radam, readParams, step } from "./mod.ts";
 *
 * const opt = radam({ lr: 1e-2 });
 * let state = await opt.init({ w: new Float32Array([1, 2, 3]) });
 * for (let i = 0; i < 10; i++) {
 *   // gradient of ½‖w‖² is w itself: write it into the zero-copy slot and step
 *   state.grads.w.set(state.params.w);
 *   state = step(state);
 * }
 * const { w } = await readParams(state);
 * console.log(w); // closer to zero
 * ```
 *
 * @module
 */
import { EXP_AVG, EXP_AVG_SQ, PARAMS, SLOW } from "./core/arena.ts";
import type { Backend } from "./core/backend.ts";
import {
  type AdamOptions,
  type BackendChoice,
  type BackendName,
  type CommonOptions,
  DEFAULT_THREAD_THRESHOLD,
  type Defaults,
  type LearningRate,
  type LookaheadOptions,
  MAX_THREADS,
  type NonFinitePolicy,
  type ParamGroup,
  type RAdamOptions,
  type ResolvedConfig,
  resolveLookahead,
  resolveOptions,
  type RuleKind,
} from "./core/options.ts";
import {
  disposeState,
  initState,
  type OptimizerState,
  readSection,
  stepState,
} from "./core/state.ts";
import { type Params, type ShapedTensor, SINGLE_TENSOR_NAME } from "./core/tensors.ts";
import type { ArenaLayout } from "./core/arena.ts";
import { loadCheckpoint, type LoadOptions, saveCheckpoint } from "./core/checkpoint.ts";
import { CheckpointError, MAX_HEADER_BYTES } from "./core/safetensors.ts";
import { createJsBackend } from "./cpu/js_backend.ts";
import { createWasmBackend, wasmSimdSupported } from "./cpu/wasm_backend.ts";
import { checkThreadSupport, createThreadedWasmBackend } from "./cpu/threaded_wasm_backend.ts";
import type { GpuGrads, GpuParams, GpuTensor, GpuTensorInput } from "./gpu/gpu_tensors.ts";
import {
  type GpuInitOptions,
  hasGpuParams,
  initWebGpuState,
  restoreWebGpuBackend,
} from "./gpu/webgpu_state.ts";

export type {
  AdamOptions,
  BackendChoice,
  BackendName,
  CommonOptions,
  LearningRate,
  LookaheadOptions,
  NonFinitePolicy,
  OptimizerState,
  ParamGroup,
  Params,
  RAdamOptions,
  ShapedTensor,
};
export {
  CheckpointError,
  DEFAULT_THREAD_THRESHOLD,
  MAX_HEADER_BYTES,
  MAX_THREADS,
  SINGLE_TENSOR_NAME,
};
export type { GpuGrads, GpuInitOptions, GpuParams, GpuTensor, GpuTensorInput, LoadOptions };
export {
  chain,
  constantLr,
  cosineDecay,
  linearWarmup,
  oneCycle,
  type Schedule,
} from "./core/schedules.ts";

/**
 * An optimizer: its resolved settings and a way to start a state from parameters.
 *
 * @example Make one and start a state
 * ```ts
 * import { adamw } from "./mod.ts";
 *
 * const opt = adamw({ lr: 3e-4 });
 * const state = await opt.init({ "fc.weight": new Float32Array(6), "fc.bias": new Float32Array(2) });
 * console.log(opt.name, state.backend, state.step); // "adamw" "wasm" 0
 * ```
 */
export interface Optimizer {
  /** "radam", "adam" or "adamw". */
  readonly name: string;
  /** The settings in force: the options given, with the defaults filled in. */
  readonly settings: Readonly<ResolvedConfig>;
  /**
   * Copies `params` into a new arena on the chosen backend and returns the state at step 0.
   *
   * `params` is a record of named `Float32Array`s, or one `Float32Array` (held under the name
   * `""`, {@linkcode SINGLE_TENSOR_NAME}). Throws a TypeError for values that are not
   * Float32Arrays and a RangeError for an empty record or non-finite numbers, and a RangeError,
   * before allocating anything, when the model is too large for the backend.
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

export type { ResolvedConfig, RuleKind };

function pickBackend(choice: BackendChoice, threads = 1): BackendName {
  if (choice === "js") return "js";
  if (choice === "webgpu") throw new Error("unreachable: webgpu states are made elsewhere");
  const simd = wasmSimdSupported();
  if ((choice === "wasm" || threads > 1) && !simd) {
    throw new Error(
      `The wasm backend${
        threads > 1 ? ` (option threads: ${threads})` : ""
      } needs WebAssembly SIMD, which this runtime lacks; use backend "js" or "auto"`,
    );
  }
  return simd ? "wasm" : "js";
}

function makeBackend(
  name: BackendName,
  config?: ResolvedConfig,
): (layout: ArenaLayout) => Promise<Backend> {
  if (name === "js") return (layout) => Promise.resolve(createJsBackend(layout));
  const threads = config?.threads ?? 1;
  if (threads === 1) return createWasmBackend;
  // Refused before anything is allocated, whatever the size, so that it never depends on it.
  checkThreadSupport(threads);
  return (layout) =>
    layout.total < config!.threadThreshold
      ? createWasmBackend(layout)
      : createThreadedWasmBackend(layout, threads);
}

function makeOptimizer(
  kind: RuleKind,
  name: string,
  options: unknown,
  defaults: Defaults,
): Optimizer {
  return optimizerOf(resolveOptions(kind, name, options, defaults));
}

function optimizerOf(settings: ResolvedConfig): Optimizer {
  const name = settings.name;
  return Object.freeze({
    name,
    settings,
    init(
      params: GpuParams,
      options?: GpuInitOptions,
      // deno-lint-ignore no-explicit-any
    ): Promise<OptimizerState<any>> {
      const choice = settings.backend;
      if (options?.device !== undefined && choice !== "webgpu" && choice !== "auto") {
        return Promise.reject(
          new TypeError(
            `A device was passed to init but the backend is ${
              JSON.stringify(choice)
            }; use backend "webgpu" or "auto"`,
          ),
        );
      }
      const gpu = choice === "webgpu" ||
        (choice === "auto" && (options?.device !== undefined || hasGpuParams(params)));
      if (gpu) return initWebGpuState(settings, params, options);
      let factory;
      try {
        factory = makeBackend(pickBackend(choice, settings.threads), settings);
      } catch (error) {
        return Promise.reject(error);
      }
      return initState(settings, params as Params, factory);
    },
  });
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
 * import { radam, readParams, step } from "./mod.ts";
 *
 * const opt = radam({ lr: 0.1, weightDecay: 1e-4, decoupledWeightDecay: true });
 * let state = await opt.init({ w: new Float32Array([0, 0]) });
 * const target = [3, -1];
 * for (let t = 0; t < 200; t++) {
 *   const w = state.params.w;
 *   state = step(state, { w: new Float32Array([w[0] - target[0], w[1] - target[1]]) });
 * }
 * console.log((await readParams(state)).w); // ≈ [3, -1]
 * ```
 */
export function radam(options?: RAdamOptions): Optimizer {
  return makeOptimizer("radam", "radam", options, {
    weightDecay: 0,
    decoupledWeightDecay: false,
  });
}

/**
 * Adam (Kingma & Ba, 2015) with PyTorch's `torch.optim.Adam` semantics (amsgrad off).
 *
 * Defaults: `lr = 1e-3`, `betas = [0.9, 0.999]`, `eps = 1e-8`, `weightDecay = 0` (coupled).
 *
 * @example
 * ```ts
 * import { adam, step } from "./mod.ts";
 *
 * let state = await adam({ lr: 1e-3 }).init(new Float32Array([1, -1]));
 * state = step(state, new Float32Array([0.5, -0.5]));
 * console.log(state.params[""]); // each moved by lr against its gradient
 * ```
 */
export function adam(options?: AdamOptions): Optimizer {
  return makeOptimizer("adam", "adam", options, { weightDecay: 0, decoupledWeightDecay: false });
}

/**
 * AdamW (Loshchilov & Hutter, 2019): Adam with decoupled weight decay, PyTorch's
 * `torch.optim.AdamW` semantics. Same options as {@linkcode adam}; `weightDecay` defaults to
 * `1e-2` and is decoupled (`p = p · (1 − lr · wd)`).
 *
 * @example
 * ```ts
 * import { adamw, step } from "./mod.ts";
 *
 * let state = await adamw({ lr: 1e-3, weightDecay: 0.1 }).init({ w: new Float32Array(4).fill(1) });
 * state = step(state, { w: new Float32Array(4) }); // zero gradient: only the decay acts
 * console.log(state.params.w[0]); // 1 - 1e-3 · 0.1
 * ```
 */
export function adamw(options?: AdamOptions): Optimizer {
  return makeOptimizer("adam", "adamw", options, { weightDecay: 1e-2, decoupledWeightDecay: true });
}

/**
 * LookAhead (Zhang et al. 2019) around any optimizer of this library: an optimizer value in,
 * an optimizer value out. The state keeps slow weights (initially the parameters) next to the
 * others; after every `k`-th inner step, `slow += α (p − slow)` and `p = slow`, fused into that
 * step's kernel call. Skipped steps (`nonFinite: "skip"`) do not count. Options: `k` (integer
 * ≥ 1, default 6), `alpha` (0 ≤ α ≤ 1, default 0.5); RangeError otherwise.
 *
 * @example
 * ```ts
 * import { lookahead, radam, readSlowWeights, step } from "./mod.ts";
 *
 * let state = await lookahead(radam({ lr: 1e-2 }), { k: 5 }).init({ w: new Float32Array(3) });
 * for (let t = 0; t < 5; t++) state = step(state, { w: new Float32Array([1, 1, 1]) });
 * console.log(state.params.w, (await readSlowWeights(state)).w); // equal after a sync
 * ```
 */
export function lookahead(inner: Optimizer, options?: LookaheadOptions): Optimizer {
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
 * import { ranger, type RangerOptions } from "./mod.ts";
 * const options: RangerOptions = { lr: 3e-3, k: 5, alpha: 0.5, weightDecay: 1e-4 };
 * const opt = ranger(options);
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
 * import { ranger, step } from "./mod.ts";
 *
 * let state = await ranger({ lr: 1e-3 }).init({
 *   "fc.weight": { data: new Float32Array(6), shape: [2, 3] },
 *   "fc.bias": new Float32Array(2),
 * });
 * state = step(state, { "fc.weight": new Float32Array(6).fill(1), "fc.bias": new Float32Array(2) });
 * console.log(state.optimizer, state.step); // "lookahead(ranger)" 1
 * ```
 */
export function ranger(options?: RangerOptions): Optimizer {
  const { k, alpha, ...rest } = options ?? {};
  const inner = resolveOptions("radam", "ranger", rest, {
    weightDecay: 0,
    decoupledWeightDecay: true,
    betas: [0.95, 0.999],
    eps: 1e-5,
    gc: true,
  });
  return optimizerOf(resolveLookahead(inner, {
    ...(k === undefined ? {} : { k }),
    ...(alpha === undefined ? {} : { alpha }),
  }));
}

/**
 * Copies of LookAhead's slow weights, by tensor name (states of {@linkcode lookahead} and
 * {@linkcode ranger} only; TypeError otherwise).
 *
 * @example
 * ```ts
 * import { lookahead, adam, readSlowWeights } from "./mod.ts";
 *
 * const state = await lookahead(adam()).init({ w: new Float32Array([1, 2]) });
 * console.log((await readSlowWeights(state)).w); // Float32Array [1, 2]
 * ```
 */
export function readSlowWeights(
  state: OptimizerState<unknown>,
): Promise<Record<string, Float32Array>> {
  try {
    if (!state.optimizer.startsWith("lookahead(")) {
      throw new TypeError(`The ${state.optimizer} optimizer keeps no slow weights`);
    }
  } catch (error) {
    return Promise.reject(error);
  }
  return readSection(state, SLOW);
}

/**
 * Takes one optimizer step and returns the next state.
 *
 * `grads` has the same names and lengths as the parameters (or is one `Float32Array` for a
 * one-tensor state). Each gradient is copied into the arena, except where it already is the
 * state's own slot: write gradients into `state.grads[name]` and call `step(state)` (or
 * `step(state, state.grads)`) to copy nothing.
 *
 * The buffers are reused: the state passed in is consumed, and any later use of it throws a
 * TypeError. Bad gradients (missing, extra, wrong type or length) throw a TypeError or
 * RangeError naming the tensor, and leave the state exactly as it was, still usable.
 *
 * @example
 * ```ts
 * import { radam, step } from "./mod.ts";
 *
 * let state = await radam().init({ w: new Float32Array(8) });
 * state.grads.w.fill(1); // zero-copy: fill the slot the kernel reads
 * state = step(state);
 * state = step(state, { w: new Float32Array(8).fill(0.5) }); // one copy into the arena
 * console.log(state.step); // 2
 * ```
 */
export function step(
  state: OptimizerState,
  grads?: Float32Array | Readonly<Record<string, Float32Array>>,
): OptimizerState;
/**
 * A step of a WebGPU state: encodes and submits one fused dispatch, synchronously. Gradients
 * may be Float32Arrays (one `writeBuffer` each), GPU tensors (copied on the GPU), or the
 * state's own `state.grads` slots (nothing copied).
 */
export function step(state: OptimizerState<GpuTensor>, grads?: GpuGrads): OptimizerState<GpuTensor>;
/** A step of a state of either kind (GPU or CPU). */
export function step(state: OptimizerState<unknown>, grads?: unknown): OptimizerState<unknown>;
export function step<T>(state: OptimizerState<T>, grads?: unknown): OptimizerState<T> {
  return stepState(state, grads);
}

/**
 * Releases a state: stops the workers of a threaded state (option `threads`), frees the GPU
 * buffers of a WebGPU state (caller-owned buffers are left alone), and makes the state, and
 * every other state of its line (those `step` derived from the same `init`), unusable: any
 * later use throws a TypeError. Idempotent. A single-threaded CPU state holds nothing but
 * memory, which the garbage collector reclaims anyway; disposing it is optional.
 *
 * Call it when done with a threaded state: Deno's test sanitizers report running workers as a
 * leak, and in browsers they live as long as the page. (A Deno script that forgets it still
 * exits: the workers do not keep the process alive.)
 *
 * @example Train on two threads, then release them
 * ```ts
 * import { dispose, radam, step } from "./mod.ts";
 *
 * let state = await radam({ threads: 2, threadThreshold: 0 }).init(new Float32Array(4096));
 * try {
 *   for (let t = 0; t < 10; t++) {
 *     state.grads[""].fill(0.1);
 *     state = step(state);
 *   }
 *   console.log(state.threads, state.step); // 2 10
 * } finally {
 *   dispose(state);
 * }
 * ```
 */
export function dispose(state: OptimizerState<unknown>): void {
  disposeState(state);
}

/**
 * Copies of the current parameters, by name (a one-tensor state made from a bare
 * `Float32Array` names it `""`). The copies do not change as later steps are taken.
 *
 * @example
 * ```ts
 * import { radam, readParams } from "./mod.ts";
 *
 * const state = await radam().init({ w: new Float32Array([1, 2]) });
 * const { w } = await readParams(state);
 * console.log(w); // Float32Array [1, 2]
 * ```
 */
export function readParams(state: OptimizerState<unknown>): Promise<Record<string, Float32Array>> {
  return readSection(state, PARAMS);
}

/**
 * Copies of the optimizer's moments, by tensor name: `exp_avg` (m) and `exp_avg_sq` (v), as
 * PyTorch names them.
 *
 * @example
 * ```ts
 * import { adam, readMoments, step } from "./mod.ts";
 *
 * const state = step(await adam().init({ w: new Float32Array(2) }), { w: new Float32Array([1, 2]) });
 * const { exp_avg, exp_avg_sq } = await readMoments(state);
 * console.log(exp_avg.w, exp_avg_sq.w); // 0.1·g and 0.001·g²
 * ```
 */
export async function readMoments(
  state: OptimizerState<unknown>,
): Promise<{ exp_avg: Record<string, Float32Array>; exp_avg_sq: Record<string, Float32Array> }> {
  // Both reads start before the first await, so they see the same step.
  const [exp_avg, exp_avg_sq] = await Promise.all([
    readSection(state, EXP_AVG),
    readSection(state, EXP_AVG_SQ),
  ]);
  return { exp_avg, exp_avg_sq };
}

/**
 * Writes a state (parameters, moments, hyperparameters, step count) as a safetensors file:
 * F32 tensors `<name>`, `<name>.exp_avg`, `<name>.exp_avg_sq`, and string `__metadata__`. The
 * state stays usable. A learning-rate schedule is not stored (functions cannot be): pass it
 * again to {@linkcode loadState}. See the README's "Checkpoints" section for the format.
 *
 * @example Save at the end of one invocation, resume in the next
 * ```ts
 * import { loadState, radam, saveState, step } from "./mod.ts";
 *
 * let state = await radam({ lr: 1e-2 }).init({ w: new Float32Array([1, 2, 3]) });
 * state = step(state, { w: new Float32Array([0.1, 0.2, 0.3]) });
 * const bytes = await saveState(state); // e.g. write to object storage
 *
 * let resumed = await loadState(bytes, { backend: "js" });
 * resumed = step(resumed, { w: new Float32Array([0.1, 0.2, 0.3]) });
 * console.log(resumed.step); // 2
 * ```
 */
export function saveState(state: OptimizerState<unknown>): Promise<Uint8Array> {
  return saveCheckpoint(state);
}

/**
 * Reads a checkpoint written by {@linkcode saveState} (from any backend) into a new state on
 * `options.backend` (default `"auto"`). Resuming is exact: on the CPU backends, N steps, save,
 * load, M steps gives bit-identical results to N + M steps.
 *
 * The whole file is validated before anything is allocated; a damaged, hostile or incompatible
 * file throws a {@linkcode CheckpointError} (a RangeError whose `name` is `"CheckpointError"`)
 * naming what is wrong. A checkpoint saved with a schedule throws a TypeError unless
 * `options.lr` passes it again; a given `lr` replaces a stored constant.
 *
 * @example Resume with a schedule
 * ```ts
 * import { adamw, CheckpointError, loadState, saveState, step } from "./mod.ts";
 *
 * const lr = (t: number) => 1e-3 * Math.min(1, t / 100);
 * let state = await adamw({ lr }).init({ w: new Float32Array(4) });
 * state = step(state, { w: new Float32Array(4).fill(1) });
 * const bytes = await saveState(state);
 *
 * const resumed = await loadState(bytes, { lr }); // the schedule must be passed again
 * try {
 *   await loadState(bytes.subarray(0, 100), { lr });
 * } catch (e) {
 *   console.log(e instanceof CheckpointError, (e as Error).message); // true "Checkpoint ..."
 * }
 * console.log(resumed.step); // 1
 * ```
 */
export function loadState(
  bytes: Uint8Array,
  options: LoadOptions & { device: GPUDevice },
): Promise<OptimizerState<GpuTensor>>;
/** Reads a checkpoint into a new state on the CPU (or, with `backend: "webgpu"`, the GPU). */
export function loadState(bytes: Uint8Array, options?: LoadOptions): Promise<OptimizerState>;
// deno-lint-ignore no-explicit-any
export function loadState(bytes: Uint8Array, options?: LoadOptions): Promise<OptimizerState<any>> {
  const device = options?.device;
  return loadCheckpoint(bytes, options, (config) => {
    const choice = config.backend;
    if (device !== undefined && choice !== "webgpu" && choice !== "auto") {
      throw new TypeError(
        `A device was passed to loadState but the backend is ${
          JSON.stringify(choice)
        }; use backend "webgpu" or "auto"`,
      );
    }
    if (choice === "webgpu" || (choice === "auto" && device !== undefined)) {
      return (layout) => restoreWebGpuBackend(layout, device, config);
    }
    return makeBackend(pickBackend(choice, config.threads), config);
  });
}
