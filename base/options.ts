/**
 * The option types every optimizer of this library shares (the rules' own are in rules/): the
 * backend, the learning rate, the training-loop features, parameter groups, LookAhead's options,
 * and the thread limits.
 *
 * @module
 */

/**
 * Which kernel implementation runs the step.
 *
 * @example
 * ```ts
 * import { type BackendName, radam } from "@optim/radam";
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
 * import { type BackendChoice, radam } from "@optim/radam";
 * import assert from "node:assert/strict";
 * const backend: BackendChoice = "auto";
 * const state = await radam({ backend }).init(new Float32Array(4));
 * // wasm where the runtime has SIMD and compiles WebAssembly at run time, else js
 * assert.ok(state.backend === "wasm" || state.backend === "js");
 * ```
 */
export type BackendChoice = BackendName | "auto";

/**
 * A learning rate: a fixed number, or a function of the 1-based step being taken that returns
 * one (a schedule). On the CPU backends the function is called on the host once for each `t`,
 * t = 1, 2, 3, … in order, after the step's gradients have passed their shape checks and before
 * the NaN/±Infinity check (`nonFinite`), so that gradients it writes are checked too: a step
 * skipped or refused by that check (the next step is at the same `t`) keeps its value for the
 * next, so a schedule that logs or counts sees each `t` once. A step its own value refuses (not a finite number ≥ 0, or past f32's range)
 * is not taken, and the next call asks again for the same `t`. On WebGPU, where the device
 * decides whether a step is taken, it is called ahead, for the next 64 values of `t` at once,
 * before the GPU has run them: there its result should depend on `t` alone. (A TensorFlow.js
 * optimizer whose trained variables change goes on with the values it has; where the new ones
 * take a parameter group listed after every one taken before, it asks again for every `t` the
 * GPU may be at, those of the steps it has not reported on yet: up to 1024 more.) It must
 * return its number synchronously: a Promise (an `async` function's) is refused at the step
 * with a TypeError, the step not taken (and the Promise's rejection, if any, is handled).
 *
 * @example
 * ```ts
 * import { type LearningRate, radam } from "@optim/radam";
 * const warm: LearningRate = (t) => 1e-3 * Math.min(1, t / 100);
 * const opt = radam({ lr: warm });
 * ```
 */
export type LearningRate = number | ((t: number) => number);

/**
 * How a state holds its moments (option `states`): `"32bit"` (the default), one f32 an element,
 * or `"8bit"`, one byte an element and one f32 scale per block of 256, for every tensor of 4096
 * elements or more (docs/SPEC.md, "Compact states"). Parameters, gradients and LookAhead's slow
 * weights are f32 either way.
 *
 * @example
 * ```ts
 * import { radam, type StatesFormat } from "@optim/radam";
 * import assert from "node:assert/strict";
 * const states: StatesFormat = "8bit";
 * assert.equal(radam({ states }).settings.run.states, "8bit");
 * ```
 */
export type StatesFormat = "32bit" | "8bit";

/**
 * Options shared by every optimizer of this library: those of the update rule that every rule
 * has (`lr`, `weightDecay`, `maximize`), how it runs (`backend`, `threads`, `threadThreshold`)
 * and the training-loop features (`clipGradNorm`, `nonFinite`, `gc`, `groups`).
 *
 * @example
 * ```ts
 * import { adamw, type CommonOptions } from "@optim/radam";
 * import assert from "node:assert/strict";
 * const options: CommonOptions = { lr: 1e-3, weightDecay: 0.01, clipGradNorm: 1 };
 * assert.equal(adamw(options).settings.loop.clipGradNorm, 1);
 * ```
 */
export interface CommonOptions {
  /** Learning rate, or a schedule `(t) => lr`. Default: the factory's (`1e-3`; Lion `1e-4`). */
  lr?: LearningRate;
  /** Weight decay coefficient (coupled or decoupled: see each factory). */
  weightDecay?: number;
  /** Maximize the objective instead of minimizing it (the gradient is negated). */
  maximize?: boolean;
  /**
   * Backend to run on. Default `"auto"`: WebGPU for a `device` or GPU params; else WASM SIMD where
   * the runtime runs it (it has SIMD and lets WebAssembly be compiled at run time, or was given
   * the kernel compiled: `setWasmModule`), else JS.
   */
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
   * one (a state that has skipped 2⁵³ − 1 throws as `"throw"` does, the count being as far as a
   * checkpoint holds; on webgpu as `"throw"` does there, see below). `"throw"`: a RangeError
   * naming the first such tensor (in the order given to `init`) and index, state untouched.
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
   * kernel call (a per-run scalar table). A group that takes no tensor at `init` (its `match`
   * accepts none of the names, or only names an earlier group takes) is a TypeError naming it, as
   * PyTorch refuses an empty group (the TensorFlow.js adapter, whose steps may leave frozen
   * variables out, does not check this).
   */
  groups?: readonly ParamGroup[];
  /**
   * Threads the wasm step runs on: an integer from 1 (the default: the main thread only, no
   * shared memory, no workers) to 256. With `threads > 1` the arena lives in a shared
   * `WebAssembly.Memory` and `threads - 1` Web Workers step their slices of it while the main
   * thread steps its own; `step` stays synchronous and the results are bit-identical to one
   * thread's. States smaller than `threadThreshold` parameters stay on one thread (no workers).
   * Needs SharedArrayBuffer (browsers: a cross-origin-isolated page, served with
   * `Cross-Origin-Opener-Policy: same-origin` and `Cross-Origin-Embedder-Policy: require-corp`)
   * and Web Workers (Deno, browsers; not Node.js): where they are missing, `init` rejects with a
   * TypeError saying which, rather than running on one thread (on a page,
   * `threads: globalThis.crossOriginIsolated ? 4 : 1` runs either way). Wasm backend only
   * (`"js"` and `"webgpu"` refuse it). Release the workers with `dispose(state)`.
   */
  threads?: number;
  /**
   * With `threads > 1`: the number of parameters below which a state stays on one thread,
   * since waking and waiting for the workers would cost more than they save. Default
   * {@linkcode DEFAULT_THREAD_THRESHOLD} (measured; see bench/ANALYSIS.md). 0 always splits.
   */
  threadThreshold?: number;
  /**
   * How the state holds the rule's moments: `"32bit"` (default) or `"8bit"` (see
   * {@linkcode StatesFormat}): 1 byte an element plus 4 bytes per 256 (2.03 bytes a parameter
   * for RAdam/Adam's two moments instead of 8), block-wise, for tensors of 4096 elements or more;
   * smaller tensors keep f32 moments. Each step decodes the moments, runs the rule's f32
   * arithmetic unchanged and encodes them again (rounded to 3 significant bits relative to their
   * block's largest value), so training follows the 32-bit run closely but not bit for bit. The
   * CPU backends (wasm, threads, js) agree bit for bit with each other; WebGPU runs it too,
   * within one code of them (WGSL's division and square root need not be correctly rounded),
   * and so does the TensorFlow.js adapter (`tfOptimizer`). Checkpoints hold the codes as they
   * are (a resume is exact). With a rule that keeps no moment (SGD without momentum) it changes
   * nothing.
   */
  states?: StatesFormat;
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
 * import { DEFAULT_THREAD_THRESHOLD, radam } from "@optim/radam";
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
 * import { adamw, type ParamGroup } from "@optim/radam";
 * const noDecay: ParamGroup = { match: /\.(bias|norm\.weight)$/, weightDecay: 0 };
 * const opt = adamw({ groups: [noDecay] });
 * ```
 */
export interface ParamGroup {
  /**
   * Which tensors, by name: a RegExp (tested) or a predicate, called at `init` and again by
   * `saveState` (the file says which tensor is in which group): a function of the name alone.
   */
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
 * import { type NonFinitePolicy, radam } from "@optim/radam";
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
 * import { lookahead, type LookaheadOptions, radam } from "@optim/radam";
 * const options: LookaheadOptions = { k: 5, alpha: 0.8 };
 * const opt = lookahead(radam(), options);
 * ```
 */
export interface LookaheadOptions {
  /**
   * Sync period: every `k` inner steps the slow weights move. An integer from 1 to 2⁵³ − 1 (the
   * step counts' exact range; a RangeError otherwise), default 6.
   */
  k?: number;
  /** Slow step size, 0 ≤ α ≤ 1, default 0.5. */
  alpha?: number;
}
