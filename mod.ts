/**
 * Fast optimizer kernels for JavaScript, with PyTorch's semantics: RAdam (Rectified Adam, Liu
 * et al. 2019), Adam, AdamW, Lion, SGD and Ranger (LookAhead of RAdam with gradient
 * centralization), in 32-bit or 8-bit states. Every tensor of a model is packed into one arena
 * and updated by one fused kernel a step: WebAssembly SIMD on the CPU (on one thread or several),
 * a plain TypeScript fallback that gives bit-identical results, or WGSL on WebGPU. The core needs
 * no permissions and runs in browsers, Deno, Node and edge runtimes.
 *
 * The API is functional: an optimizer is a small value built by a factory; `init` makes a
 * state from the parameters, and `step(state, grads)` returns the next state.
 *
 * ```ts
 * import { radam, readParams, step } from "@optim/radam";
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
 * The other entry points: `@optim/radam/tfjs` (these optimizers for TensorFlow.js models:
 * `model.compile`, `model.fit`, `model.save` with the optimizer), `@optim/radam/store`
 * (serverless training over any database with a conditional write) and `@optim/radam/kv` (its
 * Deno KV binding). Checkpoints are safetensors files (`saveState`, `loadState`). The update
 * rules, formats and tolerances are in the repository's docs/SPEC.md.
 *
 * @module
 */

// Optimizers: the factories of the registry (and their rules' option and hyperparameter
// types), and the LookAhead wrapper.
export * from "./core/registry.ts";
export { lookahead, type Optimizer } from "./core/optimizer.ts";

// A state made from another over a changed set of tensors (init's option from).
export type { InitOptions } from "./core/carry.ts";

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
  type BackendChoice,
  type BackendName,
  type CommonOptions,
  DEFAULT_THREAD_THRESHOLD,
  type LearningRate,
  type LookaheadOptions,
  MAX_THREADS,
  type NonFinitePolicy,
  type ParamGroup,
  type StatesFormat,
} from "./base/options.ts";
export type { CommonHyperparameters, Settings } from "./base/settings.ts";

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
export { type Params, type ShapedTensor, SINGLE_TENSOR_NAME } from "./base/tensors.ts";

// Checkpoints.
export type { LoadOptions } from "./core/checkpoint.ts";
export { type CheckpointInfo, checkpointInfo } from "./core/checkpoint_info.ts";
export { CheckpointError } from "./base/safetensors.ts";

// The wasm kernel as a compiled module (Cloudflare Workers).
export { setWasmModule } from "./cpu/wasm_module.ts";

// WebGPU.
export type { GpuGrads, GpuParams, GpuTensor, GpuTensorInput } from "./gpu/gpu_tensors.ts";
export type { GpuInitOptions } from "./core/webgpu_checks.ts";
