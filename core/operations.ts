/**
 * The operations on a state: `step`, `dispose`, the reads (`readParams`, `readMoments`,
 * `readSlowWeights`) and checkpoints (`saveState`, `loadState`). Each delegates to the
 * rule-agnostic machinery of core/state.ts and core/checkpoint.ts.
 *
 * @module
 */
import { awaitHinted, markRead, recordHinted } from "../base/_state_errors.ts";
import {
  extraStepArgumentMessage,
  readArgumentMessage,
  savePathMessage,
} from "../base/_call_hints.ts";
import { type ArenaLayout, EXP_AVG, PARAMS, SLOW } from "../base/arena.ts";
import type { DeviceBackend } from "../base/backend.ts";
import type { ParsedSafetensors } from "../base/safetensors.ts";
import type { Settings } from "../base/settings.ts";
import { loadCheckpoint, type LoadOptions, saveCheckpoint } from "./checkpoint.ts";
import { placement } from "./select.ts";
import { coreOf, disposeState, type OptimizerState, readSection, stateInternals } from "./state.ts";
import { stepState } from "./state_step.ts";
import type { GpuGrads, GpuTensor } from "../gpu/gpu_tensors.ts";
import { checkGpuConfig } from "./webgpu_checks.ts";
import { momentsOf } from "./origins.ts";
import { checkNotHeld, inHoldersTerms } from "./held.ts";

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
 * RangeError naming the tensor, and leave the state exactly as it was, still usable. A third
 * argument that is a learning rate (`step(state, grads, 1e-3)`) or tensors (`step(state, params,
 * grads)`) is a TypeError, as the state is left; an index a callback is given beside the two
 * (`gradsList.reduce(step, state)`) is ignored, and so is any integer ≥ 0 there, which cannot be
 * told from one: `step(state, grads, 1)` steps at the optimizer's learning rate, not at 1 (a
 * learning rate is an option, `radam({ lr: 1 })`, or a schedule's). The function is the step:
 * a state's `step` is its step count (`state.step(grads)` is JavaScript's "state.step is not a
 * function").
 *
 * A WebGPU state (`OptimizerState<GpuTensor>`) takes {@linkcode GpuGrads}: Float32Arrays (one
 * `writeBuffer` each), GPU tensors (copied on the GPU), or the state's own `state.grads` slots
 * (nothing copied); its step encodes and submits one fused dispatch, synchronously.
 *
 * @example
 * ```ts
 * import { radam, step } from "@optim/radam";
 * import assert from "node:assert/strict";
 *
 * let state = await radam().init({ w: new Float32Array(8) });
 * state.grads.w.fill(1); // zero-copy: fill the slot the kernel reads
 * state = step(state);
 * state = step(state, { w: new Float32Array(8).fill(0.5) }); // one copy into the arena
 * assert.equal(state.step, 2);
 * assert.throws(() => step(state, { v: new Float32Array(8) }), TypeError);
 * assert.equal(state.step, 2); // a bad call changes nothing
 * ```
 */
export function step<S extends OptimizerState<unknown>>(
  state: S,
  // (One signature, its gradients' type read off the state's: a CPU state's wrong gradients,
  // numbers in an Array, get TypeScript's short error naming Float32Array, not the error of
  // each overload, WebGPU's too. A state typed as either kind, any or never takes either's.)
  grads?: [S] extends [OptimizerState<infer T>] ? [T] extends [GpuTensor] ? GpuGrads
    : [T] extends [Float32Array] ? Float32Array | Readonly<Record<string, Float32Array>>
    : GpuGrads
    : GpuGrads,
): S {
  checkNotHeld(state, "step");
  // A third argument, which JavaScript drops: a learning rate, or the parameters, given there,
  // refused; a callback's index or key (grads.reduce(step, state)) dropped as before.
  const extra = arguments.length > 2 ? extraStepArgumentMessage(arguments[2]) : "";
  if (extra !== "") throw new TypeError(extra);
  return stepState(state, grads) as S;
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
 * import { dispose, radam, step } from "@optim/radam";
 * import assert from "node:assert/strict";
 *
 * let state = await radam({ threads: 2, threadThreshold: 0 }).init(new Float32Array(4096));
 * try {
 *   for (let t = 0; t < 10; t++) {
 *     state.grads[""].fill(0.1);
 *     state = step(state);
 *   }
 *   assert.equal(state.threads, 2);
 *   assert.equal(state.step, 10);
 * } finally {
 *   dispose(state);
 * }
 * assert.throws(() => state.step, TypeError);
 * ```
 */
export function dispose(state: OptimizerState<unknown>): void {
  checkNotHeld(state, "dispose");
  disposeState(state);
}

/**
 * Copies of the current parameters, by name (a one-tensor state made from a bare
 * `Float32Array` names it `""`). The copies do not change as later steps are taken, and are of
 * the state as it was at the call, though steps follow before they resolve: the CPU backends
 * copy at the call; WebGPU copies on the GPU at the call (one submission) and reads the copy
 * back once the GPU has reported every step before it (as {@linkcode readMoments} and
 * {@linkcode readSlowWeights} do). It takes the state alone: a second argument, as a tensor's
 * name (`readParams(state, "w")`), makes it reject with a TypeError saying how to take one from
 * the record (an index, as `states.map(readParams)` passes, is ignored, as is the key of an
 * object or a `Map` given third that holds the state there, as `_.mapValues(states, readParams)`
 * passes).
 *
 * @example
 * ```ts
 * import { radam, readParams } from "@optim/radam";
 * import assert from "node:assert/strict";
 *
 * const state = await radam().init({ w: new Float32Array([1, 2]) });
 * const { w } = await readParams(state);
 * assert.deepEqual(w, new Float32Array([1, 2]));
 * ```
 */
export function readParams(
  state: OptimizerState<unknown>,
): Promise<Record<string, Float32Array<ArrayBuffer>>> {
  // A tensor's name (or anything else) given as a second argument, which JavaScript drops.
  const more = arguments.length > 1
    ? readArgumentMessage("readParams", arguments[1], state, arguments[2])
    : "";
  if (more !== "") return markRead(Promise.reject(new TypeError(more)), "readParams");
  const read = held(state, "readParams", readSection(state, PARAMS));
  return recordHinted(read, "readParams", namesOf(state));
}

/** The names of `state`'s tensors, or none where it is no usable state (the read rejects). */
function namesOf(state: OptimizerState<unknown>): readonly string[] {
  try {
    return coreOf(state).backend.layout.names;
  } catch {
    return [];
  }
}

/**
 * `read`, which `call` of `state` began, rejecting in its holder's terms (see held.ts), and
 * marked as `call`'s (given where a state goes, the error names it).
 */
function held<T>(
  state: OptimizerState<unknown>,
  call: "readParams" | "readMoments" | "readSlowWeights" | "saveState",
  read: Promise<T>,
): Promise<T> {
  return markRead(read.catch((error) => Promise.reject(inHoldersTerms(state, call, error))), call);
}

/**
 * Copies of the optimizer's moments, by moment name then tensor name, as PyTorch names them:
 * `exp_avg` (m) and `exp_avg_sq` (v) for RAdam, Adam and AdamW; `exp_avg` alone for Lion;
 * `momentum_buffer` for SGD with momentum (none, `{}`, without). With `states: "8bit"` the
 * values are those the codes hold, decoded. It takes the state alone: a second argument, as a
 * moment's name (`readMoments(state, "exp_avg")`), makes it reject with a TypeError saying how
 * to take one from the record (an index, as `states.map(readMoments)` passes, is ignored, as is
 * the key of an object or a `Map` given third that holds the state there).
 *
 * @example
 * ```ts
 * import { adam, readMoments, step } from "@optim/radam";
 * import assert from "node:assert/strict";
 *
 * const state = step(await adam().init({ w: new Float32Array(2) }), { w: new Float32Array([1, 2]) });
 * const { exp_avg, exp_avg_sq } = await readMoments(state);
 * assert.deepEqual(exp_avg.w, new Float32Array([0.1, 0.2])); // (1 − β1)·g
 * assert.deepEqual(exp_avg_sq.w, new Float32Array([Math.fround(1 - 0.999), Math.fround(1 - 0.999) * 4]));
 * ```
 */
export function readMoments(
  state: OptimizerState<unknown>,
): Promise<Record<string, Record<string, Float32Array<ArrayBuffer>>>> {
  const more = arguments.length > 1
    ? readArgumentMessage("readMoments", arguments[1], state, arguments[2])
    : "";
  if (more !== "") return markRead(Promise.reject(new TypeError(more)), "readMoments");
  let names: readonly string[] = [];
  try {
    names = momentsOf(stateInternals(state).config).map((m) => m.name);
  } catch {
    // No usable state: the read rejects, saying why.
  }
  return recordHinted(held(state, "readMoments", momentsRead(state)), "readMoments", names);
}

async function momentsRead(
  state: OptimizerState<unknown>,
): Promise<Record<string, Record<string, Float32Array<ArrayBuffer>>>> {
  let moments;
  try {
    moments = momentsOf(stateInternals(state).config);
  } catch (error) {
    return Promise.reject(error);
  }
  // Every read starts before the first await, so they all see the same step.
  const reads = await Promise.all(moments.map((_, k) => readSection(state, EXP_AVG + k)));
  return Object.fromEntries(moments.map((m, k) => [m.name, reads[k]]));
}

/**
 * Copies of LookAhead's slow weights, by tensor name (states of `lookahead` and `ranger` only;
 * TypeError otherwise).
 *
 * @example
 * ```ts
 * import { adam, lookahead, readSlowWeights } from "@optim/radam";
 * import assert from "node:assert/strict";
 *
 * const state = await lookahead(adam()).init({ w: new Float32Array([1, 2]) });
 * assert.deepEqual((await readSlowWeights(state)).w, new Float32Array([1, 2]));
 * await assert.rejects(readSlowWeights(await adam().init({ w: new Float32Array(1) })), TypeError);
 * ```
 */
export function readSlowWeights(
  state: OptimizerState<unknown>,
): Promise<Record<string, Float32Array<ArrayBuffer>>> {
  const more = arguments.length > 1
    ? readArgumentMessage("readSlowWeights", arguments[1], state, arguments[2])
    : "";
  if (more !== "") return markRead(Promise.reject(new TypeError(more)), "readSlowWeights");
  try {
    if (!stateInternals(state).config.lookahead) {
      throw new TypeError(`The ${state.optimizer} optimizer keeps no slow weights`);
    }
  } catch (error) {
    return markRead(Promise.reject(error), "readSlowWeights");
  }
  const read = held(state, "readSlowWeights", readSection(state, SLOW));
  return recordHinted(read, "readSlowWeights", namesOf(state));
}

/**
 * Writes a state (parameters, moments, hyperparameters, step count) as a safetensors file:
 * F32 tensors `<name>`, `<name>.<moment>` (`exp_avg`, `exp_avg_sq`; Lion: `exp_avg`; SGD:
 * `momentum_buffer`), `<name>.slow` (LookAhead's slow weights), with `states: "8bit"` the
 * codes and scales of the compact tensors' moments (`<name>.<moment>.codes`, `.scales`), and
 * string `__metadata__`, and returns its bytes: it writes no file (a path given as a second
 * argument makes it reject with a TypeError saying how to write them). The state stays usable;
 * a state holding NaN or ±Infinity is refused (RangeError naming the tensor and index), and so
 * is a threaded state (option `threads`) whose step failed half way, its worker failing as
 * the step ran, which may hold part of that step (a TypeError saying so: resume from a
 * checkpoint saved before; one whose worker failed in a pass that only reads the gradients, or
 * between steps, is intact and saved; `readParams` and `readMoments` still read a half-stepped
 * one, to look at it). On the CPU backends the file is of the state as it was at the call,
 * even where steps are taken before the Promise is awaited (`saveState(state).then(write)`,
 * training on); on WebGPU, which first waits for the GPU to report its steps, await it before
 * the next step: a step taken before it has read the state makes it reject (a TypeError) rather
 * than write a file of two steps. A learning-rate schedule is not stored (functions cannot be):
 * pass it again to {@linkcode loadState}. A TensorFlow.js optimizer's state (`optimizer.state`)
 * also saves its gradients accumulated (`<name>.accum`, `accum_count`) and moving averages
 * (`<name>.average`), as they are at the call. See the README's "Checkpoints" section for the
 * format.
 *
 * @example Save at the end of one invocation, resume in the next
 * ```ts
 * import { loadState, radam, saveState, step } from "@optim/radam";
 * import assert from "node:assert/strict";
 *
 * let state = await radam({ lr: 1e-2 }).init({ w: new Float32Array([1, 2, 3]) });
 * state = step(state, { w: new Float32Array([0.1, 0.2, 0.3]) });
 * const bytes = await saveState(state); // e.g. write to object storage
 *
 * let resumed = await loadState(bytes, { backend: "js" });
 * resumed = step(resumed, { w: new Float32Array([0.1, 0.2, 0.3]) });
 * state = step(state, { w: new Float32Array([0.1, 0.2, 0.3]) });
 * assert.equal(resumed.step, 2);
 * assert.deepEqual(resumed.params.w, state.params.w); // bit for bit
 * ```
 */
export function saveState(state: OptimizerState<unknown>): Promise<Uint8Array<ArrayBuffer>> {
  // A path given as a second argument, which JavaScript drops: no file would be written.
  const path = arguments.length > 1 ? savePathMessage(arguments[1]) : "";
  if (path !== "") return Promise.reject(new TypeError(path));
  return held(state, "saveState", saveCheckpoint(state));
}

/**
 * Reads a checkpoint written by {@linkcode saveState} (from any backend) into a new state on
 * `options.backend` (default `"auto"`). Resuming is exact: on the CPU backends, N steps, save,
 * load, M steps gives bit-identical results to N + M steps.
 *
 * The whole file is validated before anything is allocated; a damaged, hostile or incompatible
 * file throws a `CheckpointError` (a RangeError whose `name` is `"CheckpointError"`) naming
 * what is wrong. Tensors `<name>.accum` and `<name>.average` that are no parameter (a TensorFlow.js
 * optimizer's gradients accumulated and moving averages, which its own `loadState` takes) are
 * ignored. A checkpoint saved with a schedule throws a TypeError unless `options.lr`
 * passes it again; a given `lr` replaces a stored constant. On the CPU backends the tensors are
 * copied from `bytes` during the call, as checked: later changes to `bytes` do not reach the
 * state. On WebGPU, from a SharedArrayBuffer, and on wasm where the kernel is not compiled yet
 * (a first load on backend `"auto"`) or is instantiated only asynchronously (a browser's main
 * thread), they are copied once the arena is made, after an await: leave `bytes` unchanged
 * until the Promise settles (the tensors are then checked again once copied: values written into it meanwhile that the file's
 * checks refuse, a NaN or a negative second moment, make it reject with a RangeError saying so,
 * and valid ones reach the state as copied; a buffer transferred meanwhile, posted to a worker,
 * makes it reject with a TypeError saying so).
 *
 * @example Resume with a schedule
 * ```ts
 * import { adamw, CheckpointError, loadState, saveState, step } from "@optim/radam";
 * import assert from "node:assert/strict";
 *
 * const lr = (t: number) => 1e-3 * Math.min(1, t / 100);
 * let state = await adamw({ lr }).init({ w: new Float32Array(4) });
 * state = step(state, { w: new Float32Array(4).fill(1) });
 * const bytes = await saveState(state);
 *
 * const resumed = await loadState(bytes, { lr }); // the schedule must be passed again
 * await assert.rejects(loadState(bytes), TypeError);
 * await assert.rejects(loadState(bytes.subarray(0, 100), { lr }), CheckpointError);
 * assert.equal(resumed.step, 1);
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
  return loadOf(bytes, options);
}

/**
 * {@linkcode loadState} of a checkpoint whose bytes the caller has parsed already (`file`, what
 * `parseSafetensors(bytes)` gave, to read more of the file: the TensorFlow.js adapter's sums and
 * averages), so that they are parsed once: the same checks, errors and state.
 *
 * @example
 * ```ts
 * import { loadParsedState } from "./operations.ts";
 * import { parseSafetensors } from "../base/safetensors.ts";
 * import { radam, saveState } from "@optim/radam";
 * import assert from "node:assert/strict";
 *
 * const bytes = await saveState(await radam().init({ w: new Float32Array(2) }));
 * const state = await loadParsedState(bytes, parseSafetensors(bytes), { backend: "js" });
 * assert.equal(state.backend, "js");
 * ```
 */
export function loadParsedState(
  bytes: Uint8Array,
  file: ParsedSafetensors,
  options?: LoadOptions,
): Promise<OptimizerState> {
  return loadOf(bytes, options, file);
}

/** `loadState`'s work (`file`: the bytes parsed, if they were). */
// deno-lint-ignore no-explicit-any
function loadOf(bytes: Uint8Array, options?: LoadOptions, file?: ParsedSafetensors): Promise<any> {
  const device = options?.device;
  const loading = loadCheckpoint(bytes, options, (config) => {
    const where = placement(config, device, false, "loadState");
    return where === "device" ? (layout) => restoreOnWebGpu(layout, device, config) : where;
  }, file);
  return awaitHinted(loading, "loadState");
}

/**
 * A WebGPU backend for a checkpoint being restored, the options checked before the WebGPU
 * backend is loaded (only now: apps that train on the CPU never load it).
 */
async function restoreOnWebGpu(
  layout: ArenaLayout,
  device: GPUDevice | undefined,
  config: Settings<unknown>,
): Promise<DeviceBackend<GpuTensor>> {
  checkGpuConfig(config);
  const { restoreWebGpuBackend } = await import("./webgpu_state.ts");
  return restoreWebGpuBackend(layout, device, config);
}
