/**
 * Fast optimizer kernels for JavaScript: RAdam (Rectified Adam, Liu et al. 2019), Adam, AdamW,
 * Lion (Chen et al. 2023) and Ranger (LookAhead(RAdam) with gradient centralization), with
 * every tensor of a model packed into one arena and updated by one fused kernel per step:
 * WebAssembly SIMD on the CPU (on one thread or several), a plain TypeScript fallback that gives
 * bit-identical results, or WGSL on WebGPU. The update rules are in docs/SPEC.md.
 *
 * The API is functional: an optimizer is a small value built by a factory; `init` makes a
 * state from the parameters, and `step(state, grads)` returns the next state.
 *
 * ```ts
 * import { radam, readParams, step } from "./mod.ts";
 * import assert from "node:assert/strict";
 *
 * const opt = radam({ lr: 1e-2 });
 * let state = await opt.init({ w: new Float32Array([1, 2, 3]) });
 * for (let i = 0; i < 10; i++) {
 *   // gradient of ½‖w‖² is w itself: write it into the zero-copy slot and step
 *   state.grads.w.set(state.params.w);
 *   state = step(state);
 * }
 * const { w } = await readParams(state);
 * assert.ok(w.every((x, i) => Math.abs(x) < i + 1)); // closer to zero
 * ```
 *
 * Where things are: optimizer factories in core/optimizer.ts, the operations on states in
 * core/operations.ts, option types in core/options.ts, the rules in rules/, the backends in
 * cpu/ and gpu/, backend selection in core/select.ts.
 *
 * @module
 */

// Optimizers: factories and the wrapper.
export {
  adam,
  adamw,
  lion,
  lookahead,
  type Optimizer,
  radam,
  ranger,
  type RangerOptions,
} from "./core/optimizer.ts";

// Operations on states.
export {
  dispose,
  loadState,
  readMoments,
  readParams,
  readSlowWeights,
  saveState,
  step,
} from "./core/operations.ts";
export type { OptimizerState } from "./core/state.ts";

// Options and settings.
export {
  type AdamHyperparameters,
  type AdamOptions,
  type BackendChoice,
  type BackendName,
  type CommonHyperparameters,
  type CommonOptions,
  DEFAULT_THREAD_THRESHOLD,
  type LearningRate,
  type LionHyperparameters,
  type LionOptions,
  type LookaheadOptions,
  type LoopSettings,
  MAX_THREADS,
  type NonFinitePolicy,
  type ParamGroup,
  type RAdamHyperparameters,
  type RAdamOptions,
  type ResolvedConfig,
  type RunSettings,
  type SettingsOf,
} from "./core/options.ts";
export type { RuleKind } from "./core/rule.ts";

// Learning-rate schedules.
export {
  chain,
  constantLr,
  cosineDecay,
  linearWarmup,
  oneCycle,
  type Schedule,
} from "./core/schedules.ts";

// Tensors.
export { type Params, type ShapedTensor, SINGLE_TENSOR_NAME } from "./core/tensors.ts";

// Checkpoints.
export type { LoadOptions } from "./core/checkpoint.ts";
export { CheckpointError, MAX_HEADER_BYTES } from "./core/safetensors.ts";

// WebGPU.
export type { GpuGrads, GpuParams, GpuTensor, GpuTensorInput } from "./gpu/gpu_tensors.ts";
export type { GpuInitOptions } from "./gpu/webgpu_state.ts";
