/**
 * The adapter on the tfjs webgpu backend: the library's WebGPU state on tfjs's own `GPUDevice`,
 * gradients taken with `dataToGPU()`, parameters kept in buffers of the adapter's that the step
 * kernel updates in place, and handed back to tfjs as GPU tensors: no CPU readback per step.
 *
 * Copies per variable and step, all on the GPU: `dataToGPU` (tfjs copies the gradient into a
 * buffer of its own), the library's copy of it into its arena, and `tf.tensor({ buffer })`
 * (tfjs copies the parameters into the variable's new buffer: the variable never aliases a
 * buffer that a later step writes). The adapter's parameter buffers (_param_buffers.ts) are the
 * master copy of the parameters, updated in place by the step kernel; a variable assigned
 * between steps (`model.setWeights`, loaded weights) is copied into its buffer first, on the
 * GPU, so that the step updates its new value, as on the CPU backends.
 *
 * With `states: "8bit"` the settings go to the WebGPU state as they are: it holds the moments in
 * 8 bits where it can, and refuses them with a TypeError where it cannot (then nothing is made).
 * Codes kept aside (a state moved off the CPU, weights set) are decoded into f32 moments and
 * written into the WebGPU state, which encodes them again (a decoded block encodes back to the
 * same codes: its largest value is its scale); getWeights reads its codes and scales back
 * from the GPU (weights.ts).
 *
 * A step over other variables than the last makes the state again, as the CPU path does: those
 * still there keep their state (copied on the GPU), those left out keep theirs aside (read back
 * once, at the change), new ones start fresh, and the step count goes on as the device keeps it
 * (its words copied on the GPU: a skip not yet reported counts as one; gpu_change.ts).
 *
 * Gradient centralization (`gc`) runs as tfjs ops here (the gradient minus its mean over every
 * axis but the last, a mean that does not overflow where the CPU backends' does not:
 * centralize_ops.ts), before the gradient is handed over; so `clipGradNorm` together with `gc`,
 * whose norm the library takes before centralization, is refused on this backend.
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs-core";
import { EXP_AVG, SLOW } from "../base/arena.ts";
import type { DeviceBackend } from "../base/backend.ts";
import type { Settings } from "../base/settings.ts";
import { decodeTensor } from "../base/q8_tensor.ts";
import { inLayoutOrder, type OptimizerState, restoreState, stateInternals } from "../core/state.ts";
import type { GpuTensor } from "../gpu/gpu_tensors.ts";
import { initWebGpuStateSync } from "../core/webgpu_state.ts";
// (Not operations.ts' step and dispose: they refuse the state (held) that optimizer.state gives.)
import { disposeState as dispose } from "../core/state.ts";
import { stepState as step } from "../core/state_step.ts";
import { holdState } from "../core/held.ts";
import { ADAPTER_HOLDER } from "./_hints.ts";
import { assignStepped } from "./_assign.ts";
import { changeError, type GradItem, type Matched } from "./gradients.ts";
import type { KeptStates } from "./kept.ts";
import { type Entry, entryOf, fromArena } from "./layout.ts";
import {
  continueCount,
  copyHeld,
  gpuBackendOf,
  type Pending,
  readKeptAside,
} from "./gpu_change.ts";
import { onGpu, ParamBuffers } from "./_param_buffers.ts";
import { type DeviceDecision, StepDecision } from "./_step_decision.ts";
import { centralized as centralize } from "./centralize_ops.ts";

/** What tfjs-backend-webgpu exposes that the adapter uses. */
interface TfWebGpuBackend {
  readonly device: GPUDevice;
  commandEncoder?: GPUCommandEncoder | null;
  submitQueue?(): void;
  endComputePassEncoder?(): void;
}

/** The WebGPU path of one optimizer over a fixed set of variables. */
export class GpuRunner {
  #state: OptimizerState<GpuTensor>;
  /** Per variable: the parameters the step kernel updates in place (see ParamBuffers). */
  readonly #buffers: ParamBuffers;
  readonly #tf: TfWebGpuBackend;
  readonly #config: Settings;
  /**
   * Per variable: the data id it had when the last step gave it its parameters (or the state
   * read them); another id means it was assigned since.
   */
  readonly #assigned: object[];
  /** The device's decision of each step, for option `ema` (`decided`). */
  readonly #decision: StepDecision;

  constructor(
    readonly entries: readonly Entry[],
    state: OptimizerState<GpuTensor>,
    buffers: ParamBuffers,
    backend: TfWebGpuBackend,
    config: Settings,
    variables: readonly tf.Variable[],
  ) {
    this.#state = state;
    this.#buffers = buffers;
    this.#tf = backend;
    this.#config = config;
    this.#assigned = variables.map((v) => v.dataId);
    this.#decision = new StepDecision(backend.device);
  }

  /** The library state (WebGPU). */
  get state(): OptimizerState<GpuTensor> {
    return this.#state;
  }

  /** One step: gradients to the GPU, the fused dispatch, the parameters back to the variables. */
  step(items: readonly GradItem[]): void {
    const backend = this.#tf;
    if (backend.commandEncoder && backend.submitQueue) {
      // Whatever tfjs recorded (the gradients) runs before the step.
      backend.endComputePassEncoder?.();
      backend.submitQueue();
    }
    this.#readAssigned(items);
    const grads: Record<string, Float32Array | { buffer: GPUBuffer; length: number }> = {};
    const refs: tf.Tensor[] = [];
    try {
      for (let i = 0; i < items.length; i++) {
        const e = this.entries[i];
        let g = items[i].tensor;
        let centralized: tf.Tensor | undefined;
        // (tfjs's webgpu mean of no elements fails to dispatch; there is nothing to centralize.)
        if (this.#config.loop.gc && g.rank > 1 && g.size > 0) centralized = g = centralize(g);
        try {
          const gpu = onGpu(g);
          if (gpu) {
            refs.push(gpu.tensorRef);
            grads[e.name] = { buffer: gpu.buffer, length: e.size };
          } else {
            // Held on the CPU by tfjs: its values are read without a GPU readback.
            grads[e.name] = g.dataSync() as Float32Array;
          }
        } finally {
          centralized?.dispose();
        }
      }
      this.#decision.clear(gpuBackendOf(this.#state).counter.control);
      this.#state = step(this.#state, grads) as OptimizerState<GpuTensor>;
    } finally {
      for (const r of refs) r.dispose();
    }
    const outs = this.#buffers.out(this.entries);
    for (let i = 0; i < items.length; i++) {
      const shape = this.entries[i].shape as number[];
      const t = tf.tensor({ buffer: outs[i], zeroCopy: false }, shape, "float32");
      this.#assigned[i] = assignStepped(items[i].variable, t);
    }
  }

  /**
   * Whether the device took the last step (`decide`, gpu/control.ts), and with `every`, whether
   * it took it at a multiple of `every` steps taken (`overwrite`, absent where it cannot have):
   * boolean scalars on the device, which the caller disposes; no readback (_step_decision.ts).
   */
  decided(every?: number): DeviceDecision {
    return this.#decision.decided(gpuBackendOf(this.#state).counter, every);
  }

  /**
   * A variable assigned since the last step (model.setWeights, loaded weights) is stepped from
   * its new value, as tfjs's own optimizers do: copied into its parameter buffer, on the GPU.
   */
  #readAssigned(items: readonly GradItem[]): void {
    const assigned = this.#assigned;
    let changed: tf.Variable[] | undefined;
    for (let i = 0; i < items.length; i++) {
      if (items[i].variable.dataId === assigned[i]) continue;
      (changed ??= new Array(items.length))[i] = items[i].variable;
      assigned[i] = items[i].variable.dataId;
    }
    if (changed !== undefined) this.#buffers.fill(this.entries, changed);
  }

  /** Frees the state's GPU buffers and the parameter buffers. */
  destroy(): void {
    dispose(this.#state);
    this.#buffers.destroy();
    this.#decision.destroy();
  }
}

/**
 * Makes the WebGPU state for `entries` on tfjs's device, synchronously: one parameter buffer per
 * variable (filled from the variable on the GPU, then updated in place by the step kernel), the
 * sections in `kept` (tfjs layout, by section; zeros or the parameters where absent) and the
 * step counts.
 */
export function createGpuRunner(
  config: Settings,
  entries: readonly Entry[],
  variables: readonly tf.Variable[],
  kept: ReadonlyMap<string, readonly (Float32Array | undefined)[]>,
  counts: { steps: number; skipped: number },
): GpuRunner {
  if (config.loop.gc && config.loop.clipGradNorm !== undefined) {
    throw new TypeError(
      "Options gc and clipGradNorm together are not supported on the tfjs webgpu backend (the norm must be taken before centralization, which runs in tfjs there); drop clipGradNorm or train on a CPU backend",
    );
  }
  const backend = tf.backend() as unknown as TfWebGpuBackend;
  const device = backend.device;
  const buffers = new ParamBuffers(device, entries);
  let first: OptimizerState<GpuTensor> | undefined;
  try {
    // The parameters: copied on the GPU from the variables (before init: LookAhead's slow
    // weights start as a copy of them).
    buffers.fill(entries, variables);
    const params: Record<string, { buffer: GPUBuffer; length: number }> = {};
    entries.forEach((e, i) => params[e.name] = { buffer: buffers.params[i], length: e.size });
    first = initWebGpuStateSync(config, params, device);
    const stateBackend = stateInternals(first).backend as DeviceBackend<GpuTensor>;
    const sections = new Set<number>();
    for (const k of kept.values()) k.forEach((d, s) => d && sections.add(s));
    for (const section of sections) {
      const data: Record<string, Float32Array> = {};
      for (const e of entries) {
        // (Slow weights without kept ones stay those init made: the parameters.)
        const held = kept.get(e.name)?.[section];
        if (held !== undefined || section !== SLOW) data[e.name] = held ?? new Float32Array(e.size);
      }
      stateBackend.writeSection(section, data);
    }
    // The shapes its checkpoints record: the variables' own, as on the CPU backends (without
    // them, a rank > 1 variable saved here fitted no variable when loaded); under gc flat, so
    // that the library does not centralize again what tfjs centralized.
    const shapes = entries.map((e) => config.loop.gc ? [e.size] : [...e.shape]);
    const state = restoreState<GpuTensor>(config, stateBackend, {
      ...counts,
      shapes: inLayoutOrder(stateBackend.layout, entries.map((e) => e.name), shapes),
      // (The variables' order, which its checkpoints' tensor_order holds, as init's size check
      // took it.)
      order: stateInternals(first).order,
    });
    return new GpuRunner(entries, state, buffers, backend, config, variables);
  } catch (error) {
    // (The state made, if any, with its GPU buffers: nothing is left of the runner.)
    if (first !== undefined) dispose(first);
    buffers.destroy();
    throw error;
  }
}

/**
 * The WebGPU path of one optimizer: its runner, made at its first step over that step's
 * variables, from the kept-aside states that fit them (else fresh) and the kept step counts;
 * made again where a step's variables differ, from the state before (gpu_change.ts).
 */
export class GpuPath {
  #runner: GpuRunner | undefined;
  readonly #kept: KeptStates;
  /** The reads of the state under way (`reading`). */
  readonly #reads = new Set<Promise<unknown>>();
  /**
   * The variables whose state kept aside is still being read back from a state before a change,
   * by name: that state (kept until the read ends) and the variable as it held it.
   */
  readonly #pending = new Map<string, Pending>();
  /**
   * A halt of a state replaced at a change (a non-finite gradient under `nonFinite: "throw"`),
   * found by the read of its state kept aside: thrown by the next call (`throwFault`).
   */
  #fault: unknown;
  /** Counts `destroy`s: a halt found after one is of a state dropped with it, not thrown. */
  #generation = 0;

  /** A path with no state yet, taking state kept aside in `kept`. */
  constructor(kept: KeptStates) {
    this.#kept = kept;
  }

  /** The library state (WebGPU), when made. */
  get state(): OptimizerState<GpuTensor> | undefined {
    return holdState(this.#runner?.state, ADAPTER_HOLDER);
  }

  /** The variables of the state, in its order (none before it is made). */
  get entries(): readonly Entry[] {
    return this.#runner?.entries ?? [];
  }

  /**
   * One step over checked gradients, making the state at the first, and again where the
   * variables changed (as the CPU path: the state of those left out kept aside), or refusing,
   * changing nothing, under `strict`.
   */
  step(config: Settings, strict: boolean, match: Matched, makeOnly = false): void {
    if (!makeOnly) this.throwFault(); // (said by a step: one that only makes the state catches)
    const before = this.#runner;
    // (The same variables in another order are those of the state; with none, as given.)
    const items = before !== undefined ? match.items : match.given;
    if (before !== undefined && match.same) {
      if (!makeOnly) before.step(items);
      return;
    }
    if (before !== undefined && strict) throw changeError(before.entries, items);
    const runner = this.#create(config, items, before);
    if (makeOnly) return this.#taken(runner, before);
    const made = runner.state;
    try {
      runner.step(items);
    } catch (error) {
      // A step refused (by the rule): the state stays the one before. (One taken: it is kept.)
      if (runner.state === made) runner.destroy();
      else this.#taken(runner, before);
      throw error;
    }
    this.#taken(runner, before);
  }

  /**
   * The runner over the variables of `items`. Made instead of `before` (the set changed): it
   * takes, on the GPU, the state of the variables still there and of those whose state kept
   * aside is still being read back from an earlier state; once it has stepped, the state of
   * those left out is kept aside (gpu_change.ts), `before` is freed once that read, and every
   * other under way, has ended, and what was kept under their names is forgotten
   * (`#taken`). Where it cannot be made, or its step fails, nothing changes.
   */
  #create(config: Settings, items: readonly GradItem[], before?: GpuRunner): GpuRunner {
    const entries = items.map((i) => entryOf(i.name, i.variable.shape, false, i.variable.id));
    const fitting = this.#kept.fitting(entries, config.loop.gc, tf.engine().registeredVariables);
    // In the tfjs layout (gc runs in tfjs here, not on transposed kernels).
    const sections = new Map<string, (Float32Array | undefined)[]>();
    for (const [name, k] of fitting) {
      const held = [...k.sections];
      k.codes?.forEach((c, m) => {
        if (c === undefined) return;
        decodeTensor(c.codes, c.scales, held[EXP_AVG + m] = new Float32Array(k.entry.size));
      });
      sections.set(name, held.map((d) => d && fromArena(k.entry, d)));
    }
    // (At a change, the count of the state before it goes on instead, as its device keeps it.)
    const counts = { steps: this.#kept.steps, skipped: this.#kept.skipped };
    const vars = items.map((i) => i.variable);
    const runner = createGpuRunner(config, entries, vars, sections, counts);
    try {
      if (before !== undefined) continueCount(runner.state, before.state);
      copyHeld(runner.state, entries, before, this.#pending);
    } catch (error) {
      runner.destroy();
      throw error;
    }
    return runner;
  }

  /**
   * Once `runner`, made instead of `before` (if any), has stepped: it is the state, `before` is
   * retired, and what was kept under the names of its variables forgotten.
   */
  #taken(runner: GpuRunner, before: GpuRunner | undefined): void {
    const entries = runner.entries;
    this.#runner = runner;
    if (before !== undefined) this.#retire(before, entries);
    this.#kept.forgetTaken(entries, tf.engine().registeredVariables);
    for (const e of entries) this.#pending.delete(e.name);
  }

  /**
   * Keeps aside the state of the variables of `before` that `entries` leaves out (read back from
   * the GPU now, see gpu_change.ts), and frees `before` once that read, and every other read
   * under way, has ended.
   */
  #retire(before: GpuRunner, entries: readonly Entry[]): void {
    const names = new Set(entries.map((e) => e.name));
    const leaving = before.entries.filter((e) => !names.has(e.name));
    const source = gpuBackendOf(before.state);
    const generation = this.#generation;
    const { kept, done } = readKeptAside(source, leaving, (error) => {
      if (this.#generation === generation) this.#fault ??= error;
    });
    for (const e of leaving) this.#pending.set(e.name, { source, entry: e });
    this.#kept.keepFirst(kept);
    // (Also where none is left out: the read, which tells a halt, ends first.)
    Promise.allSettled([done, ...this.#reads]).then(() => {
      for (const e of leaving) {
        if (this.#pending.get(e.name)?.source === source) this.#pending.delete(e.name);
      }
      before.destroy();
    });
  }

  /**
   * Whether the device took the last step, and with `every`, whether at a multiple of `every`
   * steps taken (boolean scalars on it, which the caller disposes; no readback): where a step
   * was made, after it.
   */
  decided(every?: number): DeviceDecision {
    if (this.#runner === undefined) throw new Error("No step was made on the GPU");
    return this.#runner.decided(every);
  }

  /**
   * Throws, once, the halt of a state replaced at a change (a non-finite gradient under
   * `nonFinite: "throw"` in a step before it), where its read found one: the call after, as the
   * state would have thrown it had it gone on.
   */
  throwFault(): void {
    const fault = this.#fault;
    if (fault === undefined) return;
    this.#fault = undefined;
    throw fault;
  }

  /**
   * Throws a TypeError, changing nothing, where the state is made: its learning rate cannot
   * change (the device holds the scalars of the next steps, and its own step count).
   */
  checkNewLearningRate(): void {
    if (this.#runner === undefined) return;
    throw new TypeError(
      "setLearningRate on the webgpu backend takes effect in a new optimizer only (this one goes on with its learning rate): save the model with its optimizer, load it, then set the learning rate before training; to change it during training (an epoch's callback), give lr as a schedule from the start, tfOptimizer(radam({ lr: (t) => … })), or one reading a variable of yours, lr: () => lr (the GPU's steps read it up to 64 steps ahead)",
    );
  }

  /**
   * Throws a TypeError where the state is on the GPU while TensorFlow.js now runs on another
   * backend (a step there cannot reach it).
   */
  checkOffGpu(): void {
    if (this.state === undefined) return;
    throw new TypeError(
      `This optimizer's state is on the GPU (tfjs backend webgpu) but TensorFlow.js now runs on ${
        JSON.stringify(tf.getBackend())
      }; keep the webgpu backend, or save the model with its optimizer and load it there`,
    );
  }

  /**
   * Resolves once the device has reported every step submitted to the state, if any, so that
   * its `skippedSteps` counts them all (before a `loadState` replaces it). Never rejects: where
   * the device does not report, the count stays as last reported.
   */
  async settled(): Promise<void> {
    const state = this.state;
    if (state === undefined) return;
    const backend = stateInternals(state).backend as DeviceBackend<GpuTensor>;
    await backend.counter.settle().catch(() => {});
  }

  /** `read`, begun on the state now: a state replaced meanwhile is kept until it ends. */
  reading<T>(read: Promise<T>): Promise<T> {
    this.#reads.add(read);
    const done = () => this.#reads.delete(read);
    read.then(done, done);
    return read;
  }

  /**
   * Frees the state's GPU buffers (then there is none): at once, or with `afterReads` (the
   * state is replaced) once the reads begun on it have ended, which then give its values.
   */
  destroy(afterReads = false): void {
    const runner = this.#runner;
    this.#runner = undefined;
    this.#pending.clear();
    this.#fault = undefined;
    this.#generation++;
    if (afterReads && this.#reads.size > 0) {
      Promise.allSettled([...this.#reads]).then(() => runner?.destroy());
    } else runner?.destroy();
  }
}
