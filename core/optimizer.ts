/**
 * Optimizer values: an optimizer's settings and a way to start a state, made from its settings
 * ({@linkcode optimizerOf}; the registry's factories, core/registry.ts, call {@linkcode make}),
 * and `lookahead`, which wraps any of them. `init` places a state (core/select.ts) and starts it.
 *
 * @module
 */
import { described } from "../base/_errors.ts";
import { factoryHint, optimizerNameHint, swappedOptimizerHint } from "../base/_call_hints.ts";
import { lrSetMessage, optimizerStepMessage, zeroGradMessage } from "../base/_method_hints.ts";
import { awaitHinted } from "../base/_state_errors.ts";
import type { LookaheadOptions } from "../base/options.ts";
import { checkKeys } from "../base/schema.ts";
import type { CommonHyperparameters, Settings } from "../base/settings.ts";
import type { Params } from "../base/tensors.ts";
import type { GpuParams, GpuTensor } from "../gpu/gpu_tensors.ts";
import { factoryOptionHintOf, resolveLookahead, resolveOptions } from "./options.ts";
import type { Origin } from "./origins.ts";
import { deviceOfFrom, type InitOptions, startFrom, startFromOnDevice } from "./carry.ts";
import { placement } from "./select.ts";
import { initState, type Start } from "./init_state.ts";
import type { OptimizerState } from "./state.ts";
import { checkWebGpuInit, type GpuInitOptions, hasGpuParams } from "./webgpu_checks.ts";

/**
 * An optimizer: its resolved settings and a way to start a state from parameters.
 *
 * @example Make one and start a state
 * ```ts
 * import { adamw } from "@optim/radam";
 * import assert from "node:assert/strict";
 *
 * const opt = adamw({ lr: 3e-4 });
 * const state = await opt.init({ "fc.weight": new Float32Array(6), "fc.bias": new Float32Array(2) });
 * assert.equal(opt.name, "adamw");
 * assert.equal(state.step, 0);
 * ```
 */
export interface Optimizer<H = CommonHyperparameters> {
  /** "radam", "adam", "adamw", "lion", "sgd", "ranger", or "lookahead(…)" of one of them. */
  readonly name: string;
  /**
   * The settings in force: the options given, with the defaults filled in, nested as the rule's
   * `hyperparameters`, `run` and `loop` (and `lookahead`). The rule's hyperparameters `H` are
   * typed ({@linkcode RAdamHyperparameters} for `radam`).
   */
  readonly settings: Settings<H>;
  /**
   * Copies `params` into a new arena on the chosen backend and returns the state at step 0.
   * They are checked at the call. On the CPU backends they are copied during the call, as
   * checked: later changes to them do not reach the state. On WebGPU, from a WebGPU `from`, in a
   * SharedArrayBuffer, and on wasm where the kernel is not compiled yet (a first init on backend
   * `"auto"`) or is instantiated only asynchronously (a browser's main thread), they are copied
   * once the arena is made, after an await: leave them unchanged until the Promise settles
   * (values written meanwhile reach the state as copied; a NaN or an infinity written meanwhile
   * makes it reject with a RangeError, found in the copy, so that no state holds one unchecked;
   * a buffer transferred meanwhile, posted to a worker, makes it reject with a TypeError saying
   * so).
   *
   * `params` is a record of named `Float32Array`s, or one `Float32Array` (held under the name
   * `""`, `SINGLE_TENSOR_NAME`). Throws a TypeError for values that are not Float32Arrays and a
   * RangeError for an empty record or non-finite numbers, and a RangeError, before allocating
   * anything, when the model is too large for the backend. One array given under two names, or
   * views of overlapping bytes of one buffer, is a RangeError naming both (each would be copied
   * and updated apart). A parameter group (option `groups`) that takes none of the tensors, its
   * `match` accepting none of their names or only names an earlier group takes, is a TypeError
   * naming the group and the tensors' names (else it would silently do nothing).
   *
   * With a second argument (`{ device }`, or `{}`), the state is a WebGPU one when the backend
   * is `"webgpu"`, or `"auto"` with GPU params, a device or a WebGPU `from`: `params` may then also hold
   * `GPUBuffer`s (see {@linkcode GpuParams}; they are updated in place where the step kernel can
   * bind them) and the state's slots are {@linkcode GpuTensor}s.
   * An explicit `"webgpu"` where no adapter exists throws; it never falls back silently.
   *
   * With `{ from: state }` ({@linkcode InitOptions}), a state whose tensors that `state` holds
   * too take their moments, slow weights and step count from it (layers unfrozen, a head added
   * or dropped), on the CPU or on WebGPU.
   */
  init(params: Params): Promise<OptimizerState>;
  /** Starts a state from another one's moments and step count (see {@linkcode InitOptions}). */
  init(params: Params, options: Required<InitOptions>): Promise<OptimizerState>;
  /** Starts a WebGPU state on `device` (backend `"webgpu"` or `"auto"`). */
  init(params: GpuParams, options: { device: GPUDevice }): Promise<OptimizerState<GpuTensor>>;
  /** Starts a state on the GPU or the CPU as the backend choice says (see above). */
  // deno-lint-ignore no-explicit-any
  init(params: GpuParams, options: GpuInitOptions & InitOptions): Promise<OptimizerState<any>>;
}

/** The options `init` takes (see {@linkcode GpuInitOptions} and {@linkcode InitOptions}). */
const INIT_OPTIONS = Object.keys(
  { device: true, from: true } satisfies Record<keyof (GpuInitOptions & InitOptions), true>,
);

/**
 * The optimizer value of settings the library made; `H` is what their rule resolves (the schema
 * guarantees the fields, which TypeScript cannot see through it).
 */
export function optimizerOf<H>(settings: Settings<unknown>): Optimizer<H> {
  const optimizer = {
    name: settings.name,
    settings: settings as Settings<H>,
    init(
      params: GpuParams,
      options?: GpuInitOptions & InitOptions,
      // deno-lint-ignore no-explicit-any
    ): Promise<OptimizerState<any>> {
      return awaitHinted(initOf(settings, params, options), "init");
    },
  };
  // opt.lr = x (or learningRate, tfjs's name) is a TypeError saying how to change it, where it
  // was JavaScript's "object is not extensible" (in a sloppy-mode script nothing, silently).
  for (const key of ["lr", "learningRate"]) {
    Object.defineProperty(optimizer, key, {
      set() {
        throw new TypeError(lrSetMessage("An optimizer", key, settings.name));
      },
    });
  }
  // opt.step(), as PyTorch's optimizer.step(), or opt.update(grads, state), as optax's, is a
  // TypeError saying how a state is stepped, where it was JavaScript's "opt.step is not a
  // function".
  for (const method of ["step", "update"]) {
    Object.defineProperty(optimizer, method, {
      value() {
        throw new TypeError(optimizerStepMessage(settings.name, method));
      },
    });
  }
  // opt.zero_grad(), as PyTorch's, is a TypeError saying that nothing needs zeroing.
  for (const method of ["zero_grad", "zeroGrad"]) {
    Object.defineProperty(optimizer, method, {
      value() {
        throw new TypeError(zeroGradMessage("An optimizer", method));
      },
    });
  }
  return Object.freeze(optimizer);
}

/** What `init` returns: the call checked, then the state made (see {@linkcode Optimizer}). */
function initOf(
  settings: Settings<unknown>,
  params: GpuParams,
  options?: GpuInitOptions & InitOptions,
  // deno-lint-ignore no-explicit-any
): Promise<OptimizerState<any>> {
  let where, start: Start | undefined;
  try {
    options = checkKeys(
      options,
      INIT_OPTIONS,
      "init",
      undefined,
      (key) => factoryOptionHintOf(settings, key),
    ) as GpuInitOptions & InitOptions;
    // (A WebGPU from's device, as if given, with backend "webgpu" or "auto".)
    const choice = settings.run.backend;
    const device = options.device ??
      (choice === "webgpu" || choice === "auto" ? deviceOfFrom(options.from) : undefined);
    where = placement(settings, device, hasGpuParams(params), "init");
    // (Params in a WebGPU from's buffers, `init(state.params, { from: state })`: on its device.)
    if (where === "device") return initOnWebGpu(settings, params, { ...options, device });
    if (options.from !== undefined) start = startFrom(settings, options.from);
  } catch (error) {
    return Promise.reject(error);
  }
  return initState(settings, params as Params, where, start);
}

/**
 * A WebGPU state: the call checked now, the WebGPU backend loaded only now (a module, and a
 * bundler's chunk, of its own: apps that train on the CPU never load it).
 */
async function initOnWebGpu(
  settings: Settings<unknown>,
  params: unknown,
  options: GpuInitOptions & InitOptions,
): Promise<OptimizerState<GpuTensor>> {
  const checked = checkWebGpuInit(settings, params, options);
  const from = options.from === undefined ? undefined : startFromOnDevice(
    settings,
    options.from,
    checked.names,
    checked.shapes,
    options.device,
  );
  try {
    const { initCheckedWebGpuState } = await import("./webgpu_state.ts");
    return await initCheckedWebGpuState(settings, checked, options, undefined, from);
  } finally {
    from?.discard(); // (a WebGPU from's state held at the call: copied, or given up)
  }
}

/**
 * The optimizer of the registry's `origin` with `options` (a factory's body); `args`, the
 * factory's `arguments`, say what a number given for the options was followed by (`radam(0.001,
 * 0.9)`: its error shows them as the options object they stand for).
 */
export function make<H>(
  origin: Origin,
  options: unknown,
  args: ArrayLike<unknown> = [],
): Optimizer<H> {
  return optimizerOf(resolveOptions(origin, options, Array.prototype.slice.call(args, 1)));
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
 * import { lookahead, radam, readSlowWeights, step } from "@optim/radam";
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
    throw new TypeError(
      `lookahead() expects an optimizer made by this library, e.g. radam(), got ${
        described(inner)
      }${
        factoryHint(inner) || optimizerNameHint(inner, "lookahead") ||
        swappedOptimizerHint(inner, options, "lookahead")
      }`,
    );
  }
  if (typeof (inner as { applyGradients?: unknown }).applyGradients === "function") {
    throw new TypeError(
      "lookahead() was given a TensorFlow.js optimizer (what tfOptimizer() returns): wrap this " +
        "library's optimizer, then adapt it, tfOptimizer(lookahead(radam()))",
    );
  }
  return optimizerOf(
    resolveLookahead(inner.settings, options, Array.prototype.slice.call(arguments, 2)),
  );
}
