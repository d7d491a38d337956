/**
 * The optimizer state value and the operations on it: `init`, `readParams`, `dispose`; `step`
 * in core/state_step.ts.
 *
 * A state value is a thin handle on a core (configuration, backend, step count). `step`
 * advances the core in place, since the buffers are reused, and returns a fresh handle; the
 * handle it was given is consumed, and any later use of it throws.
 *
 * @module
 */
import { described } from "../base/_errors.ts";
import {
  type CheckpointCalls,
  DISPOSED_STATE_MESSAGE,
  READ_ONLY_STATE_KEYS,
  readOnlyStateMessage,
  stateCloneMessage,
  stateHint,
  stateJsonMessage,
} from "../base/_state_errors.ts";
import { disposeMethodMessage, lrSetMessage, zeroGradMessage } from "../base/_method_hints.ts";
import type { ArenaLayout } from "../base/arena.ts";
import { gradAssignMessage, paramAssignMessage, placeOf } from "../base/_state_slots.ts";
import type { AnyBackend, DeviceBackend, HostBackend } from "../base/backend.ts";
import type { BackendName } from "../base/options.ts";
import type { Hyperparameters } from "../base/rule.ts";
import { blockCount, HEADER, zeroScalars } from "../base/scalars.ts";
import type { Settings } from "../base/settings.ts";
import { originOf } from "./origins.ts";
import type { ScalarBlocks } from "./step_scalars.ts";
import { layoutIndices } from "./plan.ts";

// The plan of a state's arena (core/plan.ts), as the TensorFlow.js adapter and checkpoints
// import it from here.
export { groupsOf, inLayoutOrder, planNamedState, planState } from "./plan.ts";

/**
 * How a held state (core/held.ts) is saved and resumed, by its backend (one per line of states),
 * as the errors of its `JSON.stringify` and structured clone write the calls.
 */
export const heldCalls: WeakMap<object, CheckpointCalls> = new WeakMap();

/**
 * Who holds a held state (core/held.ts), by its backend, and the call that frees it, as the
 * state's `dispose()` method names them (the function `dispose` refuses a held state).
 */
export const heldDisposers: WeakMap<
  object,
  { readonly name: string; readonly disposeWith: string }
> = new WeakMap();

/**
 * The state of an optimizer over a set of tensors, as returned by `init` and `step`.
 *
 * `params` and `grads` are views into the memory the kernel runs on: write gradients into
 * `grads` and call `step(state)` to step without copying anything. The views stay valid, and
 * are the same objects, across every state that `step` derives from this one.
 *
 * `console.log(state)` (Deno, Node) shows its optimizer, backend, step count, tensors,
 * parameters and states format, or that it was consumed or disposed; on WebGPU without reading
 * the GPU (the step count is then {@linkcode OptimizerState.step}'s). `JSON.stringify(state)`
 * throws a TypeError (a state is no JSON, which would write it as `{}`): its checkpoint,
 * `await saveState(state)`, is bytes to keep, as base64 where text is needed. In Deno a
 * structured clone of a state throws too (`kv.set(key, state)`, `postMessage(state)`: a
 * TypeError; `structuredClone(state)`: a DataCloneError), where it would copy `{}`.
 *
 * A state takes no properties of its own: what it reports cannot be redefined
 * (`Object.defineProperty(state, "step", …)` is a TypeError), and a property added to it is a
 * TypeError in strict code (modules), ignored in sloppy code; keep your own data beside it.
 *
 * @example
 * ```ts
 * import { type OptimizerState, radam, step } from "@optim/radam";
 * import assert from "node:assert/strict";
 * let state: OptimizerState = await radam().init({ w: new Float32Array(3) });
 * state.grads.w.set([0.1, 0.2, 0.3]);
 * state = step(state);
 * assert.equal(state.step, 1);
 * assert.equal(state.skippedSteps, 0);
 * ```
 */
export interface OptimizerState<T = Float32Array> {
  /**
   * The optimizer that made this state: "radam", "adam", "adamw", "lion", "sgd", "ranger", or
   * "lookahead(…)" of one of them but ranger.
   */
  readonly optimizer: string;
  /** The backend the state lives on. */
  readonly backend: BackendName;
  /**
   * How many steps have been taken (PyTorch's `step`); the next step is `step + 1`. On WebGPU
   * the device counts them: this is its last report plus the steps submitted since (assumed
   * taken), exact after `await readParams(state)`. A number, not a method: a state is stepped by
   * the function, `state = step(state, grads)`. `state.step(grads)` fails as JavaScript's own
   * "state.step is not a function" (TypeScript's "This expression is not callable"): the call
   * never reaches the library, which cannot add a hint to it.
   */
  readonly step: number;
  /** Names of the tensors, in arena order (a frozen array: the order of the slots). */
  readonly names: readonly string[];
  /**
   * Parameter views, by name (live: each step updates them; write into them, not over them). On
   * WebGPU, GPU buffer ranges (`GpuTensor`) with no elements to index: `state.params.w[i]` is a
   * TypeError saying to read them with `await readParams(state)`.
   */
  readonly params: Readonly<Record<string, T>>;
  /**
   * Gradient slots, by name: write gradients into them for a zero-copy `step(state)`. (A slot
   * cannot be replaced: `state.grads.w = g` is a TypeError saying how to give `g`.) On WebGPU,
   * GPU buffer ranges: `state.grads.w[i] = …` is a TypeError saying to pass a Float32Array to
   * `step(state, { w: g })` or to write into the slot's buffer.
   */
  readonly grads: Readonly<Record<string, T>>;
  /**
   * Steps skipped because a gradient was NaN or ±Infinity (option `nonFinite: "skip"`); on
   * WebGPU as of the device's last report (exact after `await readParams(state)`).
   */
  readonly skippedSteps: number;
  /**
   * Global L2 norm of the gradients of the last step (taken or skipped), computed in float64
   * before clipping and centralization, where the step computes it: with `clipGradNorm`. NaN
   * before the first step, after `loadState` until the next step (checkpoints do not store it),
   * and on the CPU backends without `clipGradNorm`: there the non-finite check (`nonFinite:
   * "skip"`, the default, or `"throw"`) only tests the gradients' exponent bits, which costs a
   * read of them rather than an f64 reduction, and `"propagate"` checks nothing. (Not computed
   * later on reading either: by then the gradient slots may hold the next step's gradients, or
   * centralized ones.) Take `Math.hypot` of your gradients, or set
   * `clipGradNorm: Number.MAX_VALUE` (which never clips), where you want the norm of every step.
   * On WebGPU the norm is computed in f32 on the device whenever the check runs, and reported
   * with the step count (NaN where a gradient is NaN, else Infinity where one is ±Infinity, as
   * on the CPU; a norm of finite gradients past f32's range reads Infinity there, though
   * clipped as on the CPU).
   */
  readonly lastGradNorm: number;
  /**
   * Threads the step runs on: 1, or the `threads` option where the state is at least
   * `threadThreshold` parameters (then `threads - 1` workers run until `dispose(state)`).
   */
  readonly threads: number;
}

/**
 * What a state handle points at. Shared by all handles of one line of states. (Its scalar
 * blocks: see core/step_scalars.ts.)
 */
export interface Core extends ScalarBlocks {
  readonly backend: AnyBackend;
  steps: number;
  skipped: number;
  lastNorm: number;
  /** Gradient-centralization segments: element offset, rows, cols (flat triples). */
  readonly gcSegments: readonly number[];
  /** Each tensor's shape, as given at init (rank 1 for bare arrays). */
  readonly shapes: readonly (readonly number[])[];
  /** The names in the order given to `init` (an 8-bit arena may not keep it; a checkpoint's). */
  readonly order: readonly string[];
  /** The layout's index of each name of `order`: gradients are checked in that order. */
  readonly visit: readonly number[];
  /**
   * The gradients of the step being taken, as its check read them from the caller's record
   * (once each), in layout order; emptied when the step ends. Reused: a step allocates no list.
   */
  readonly given: unknown[];
  /** The handle that may still be used; every other handle of this core is consumed. */
  current: StateHandle | undefined;
  /** Set by `dispose`: every handle of this core is then unusable. */
  disposed?: boolean;
  /** True while `step` runs: the user code it calls (a schedule, getters) may not use the state. */
  stepping: boolean;
}

/** Whether the backend's memory is host memory (else it decides on the device: WebGPU). */
export function onHost(backend: AnyBackend): backend is HostBackend {
  return backend.kind === "host";
}

/**
 * Why the last step on `backend` failed half way, leaving part of it in the arena (a threaded
 * state whose worker failed as the step ran); `undefined` where none did.
 */
export function halfStepOf(backend: AnyBackend): string | undefined {
  return onHost(backend) ? backend.halfStepped?.() : undefined;
}

/** The TypeError's message of a state that `step` consumed. */
export const CONSUMED_MESSAGE =
  "This optimizer state was consumed by step(); use the state that step() returned";

const STEPPING_MESSAGE = "A step of this optimizer state is in progress: its learning-rate " +
  "schedule or a gradient getter cannot step, read, save or dispose the state";

// deno-lint-ignore no-explicit-any
export class StateHandle implements OptimizerState<any> {
  readonly #core: Core;

  constructor(core: Core) {
    this.#core = core;
    core.current = this;
    // No property of its own, ever: `Object.defineProperty(state, "step", …)` would otherwise
    // shadow what the state reports (its step count, tensors, backend) with anything.
    Object.preventExtensions(this);
  }

  /** The core, if this handle is the live one; else throws. */
  live(): Core {
    if (this.#core.disposed) throw new TypeError(DISPOSED_STATE_MESSAGE);
    if (this.#core.current !== this) throw new TypeError(CONSUMED_MESSAGE);
    return this.#core;
  }

  /** The core, live or consumed (for `dispose`, which any handle of a line may call). */
  anyCore(): Core {
    return this.#core;
  }

  get optimizer(): string {
    return this.live().config.name;
  }
  get backend(): BackendName {
    return this.live().backend.name;
  }
  get step(): number {
    const { backend, steps } = this.live();
    return onHost(backend) ? steps : backend.counter.steps;
  }
  get names(): readonly string[] {
    return this.live().backend.layout.names;
  }
  // deno-lint-ignore no-explicit-any
  get params(): Readonly<Record<string, any>> {
    return this.live().backend.params;
  }
  /** Refuses `state.params = values`, saying how a state goes on from other values. */
  // deno-lint-ignore no-explicit-any
  set params(_: Readonly<Record<string, any>>) {
    throw new TypeError(paramAssignMessage(undefined, placeOf(this.#core.backend)));
  }
  // deno-lint-ignore no-explicit-any
  get grads(): Readonly<Record<string, any>> {
    return this.live().backend.grads;
  }
  /** Refuses `state.grads = grads`, saying how gradients are given. */
  // deno-lint-ignore no-explicit-any
  set grads(_: Readonly<Record<string, any>>) {
    throw new TypeError(gradAssignMessage(undefined, placeOf(this.#core.backend)));
  }
  get skippedSteps(): number {
    const { backend, skipped } = this.live();
    return onHost(backend) ? skipped : backend.counter.skipped;
  }
  get lastGradNorm(): number {
    const { backend, lastNorm } = this.live();
    return onHost(backend) ? lastNorm : backend.counter.lastNorm;
  }
  get threads(): number {
    const backend = this.live().backend;
    return onHost(backend) ? backend.threads : 1;
  }

  /** Refuses `state.lr = x`, which would otherwise change nothing, silently. */
  set lr(_: unknown) {
    throw new TypeError(lrSetMessage("A state", "lr"));
  }
  /** Refuses `state.learningRate = x` (tfjs's name), as `lr`. */
  set learningRate(_: unknown) {
    throw new TypeError(lrSetMessage("A state", "learningRate"));
  }

  /**
   * Refuses `state.dispose()`, as a TensorFlow.js tensor is disposed (JavaScript's "is not a
   * function" before): a state is freed by the function `dispose(state)`, a held one (the
   * adapter's `optimizer.state`) by its holder's call.
   */
  dispose(): never {
    throw new TypeError(disposeMethodMessage(heldDisposers.get(this.#core.backend)));
  }

  /** Refuses `state.zero_grad()`, as PyTorch's optimizer's: nothing needs zeroing. */
  zero_grad(): never {
    throw new TypeError(zeroGradMessage("A state", "zero_grad"));
  }
  /** Refuses `state.zeroGrad()`, as `zero_grad()`. */
  zeroGrad(): never {
    throw new TypeError(zeroGradMessage("A state", "zeroGrad"));
  }

  /**
   * Refuses `JSON.stringify(state)` (and of anything holding a state), which would otherwise
   * write `{}` silently: a state's checkpoint is `await saveState(state)`.
   */
  toJSON(): never {
    throw new TypeError(stateJsonMessage(heldCalls.get(this.#core.backend)));
  }

  /**
   * Refuses a structured clone of a state in Deno (`structuredClone(state)`, `postMessage`,
   * `kv.set(key, state)`, and of anything holding a state), which would otherwise copy `{}`
   * silently: V8's serializer takes a class instance's own enumerable properties only, and a
   * state has none. Deno's serializer asks an object that has this method (Deno's mark of an
   * object that says how it is cloned, as its Blob has) for what to copy: it throws instead.
   * (No own property shows it; elsewhere it is an unused symbol-keyed method.)
   */
  [Symbol.for("Deno.core.hostObject")](): never {
    throw new TypeError(stateCloneMessage(heldCalls.get(this.#core.backend)));
  }

  /**
   * What `console.log(state)` shows, in Deno and Node: its optimizer, backend, step count,
   * tensors, parameters and states format (or that it was consumed or disposed), from what the
   * host holds (no GPU memory read, no permission needed).
   */
  #summary(): object | string {
    const core = this.#core;
    if (core.disposed) return "<disposed>";
    if (core.current !== this) return "<consumed by step(): use the state it returned>";
    const { layout } = core.backend;
    return {
      optimizer: this.optimizer,
      backend: this.backend,
      step: this.step,
      tensors: layout.names.length,
      parameters: layout.lengths.reduce((a, b) => a + b, 0),
      states: core.config.run.states,
    };
  }

  /** The inspection Node's `util.inspect` calls, and Deno's `console.log` and `inspect` too. */
  [Symbol.for("nodejs.util.inspect.custom")](
    _depth: number,
    options?: unknown,
    inspect?: (value: unknown, options?: unknown) => string,
  ): string {
    const summary = this.#summary();
    const shown = typeof summary === "string"
      ? summary
      : inspect
      ? inspect(summary, options)
      : JSON.stringify(summary);
    return `OptimizerState ${shown}`;
  }
}

// What a state reports (state.step, state.backend, …) is read-only: an assignment is a TypeError
// saying what to write instead, where a sloppy-mode script's changed nothing, silently.
for (const key of READ_ONLY_STATE_KEYS) {
  const { get } = Object.getOwnPropertyDescriptor(StateHandle.prototype, key)!;
  Object.defineProperty(StateHandle.prototype, key, {
    get,
    set() {
      throw new TypeError(readOnlyStateMessage(key));
    },
    configurable: true,
  });
}

/**
 * Makes a host backend for a layout. `fill`, where given, is called on it synchronously, before
 * the factory's first await, where the runtime lets its arena be made at once (the caller's
 * values then reach it as they are at the call), or not at all (the caller fills it once the
 * Promise resolves); a `fill` that throws makes the factory reject with its error, having
 * released what it made.
 */
export type BackendFactory = (
  layout: ArenaLayout,
  fill?: (backend: HostBackend) => void,
) => Promise<HostBackend>;

/** Counters and shapes of a state being restored (all optional). */
export interface RestoreInfo {
  steps?: number;
  skipped?: number;
  shapes?: readonly (readonly number[])[];
  /** The tensors' names in the order the user gave them (default: the layout's). */
  order?: readonly string[];
}

/**
 * A state on a backend whose sections were already filled (init, or a checkpoint restore):
 * at step `info.steps` (default 0). Shapes default to rank 1.
 */
export function restoreState<T>(
  config: Settings<unknown>,
  backend: HostBackend | DeviceBackend<T>,
  info: RestoreInfo = {},
): OptimizerState<T> {
  const layout = backend.layout;
  const shapes = info.shapes ?? layout.lengths.map((n) => [n]);
  const gcSegments: number[] = [];
  if (config.loop.gc) {
    for (let i = 0; i < layout.names.length; i++) {
      const length = layout.lengths[i];
      if (shapes[i].length > 1 && length > 0) {
        gcSegments.push(layout.offsets[i], shapes[i][0], length / shapes[i][0]);
      }
    }
  }
  const order = info.order ?? layout.names;
  const visit = layoutIndices(layout, order);
  if (!onHost(backend)) {
    backend.planCentralize(gcSegments); // a tensor it cannot centralize is refused now
    backend.counter.start(info.steps ?? 0, info.skipped ?? 0, visit);
  }
  // The blocks the kernels read: one per group up to the largest a run uses.
  const groups = config.loop.groups.slice(0, blockCount(layout.segments) - 1);
  const hyper = config.hyperparameters as Hyperparameters;
  const { rule, tag } = originOf(config);
  const blocks = [hyper, ...groups].map(() => {
    const block = zeroScalars();
    block[HEADER.rule] = tag;
    return block;
  });
  return new StateHandle({
    config: config as Settings,
    rule,
    backend,
    steps: info.steps ?? 0,
    skipped: info.skipped ?? 0,
    lastNorm: NaN,
    gcSegments,
    shapes,
    order,
    visit,
    groupHypers: [hyper, ...groups.map((g) => ({ ...hyper, weightDecay: g.weightDecay }))],
    groupLrScales: [1, ...groups.map((g) => g.lrScale)],
    groupScalars: blocks,
    given: layout.names.map(() => undefined),
    current: undefined,
    stepping: false,
    scalarsAt: 0,
  });
}

/** What a checkpoint reads from a live state (for core/checkpoint.ts only). */
export interface StateInternals {
  readonly config: Settings;
  readonly backend: AnyBackend;
  readonly steps: number;
  readonly skipped: number;
  readonly shapes: readonly (readonly number[])[];
  /** The names in the order given to `init` (or a checkpoint's): errors name tensors in it. */
  readonly order: readonly string[];
}

/** The configuration, backend and counters of a live state; throws if it was consumed. */
export function stateInternals(state: OptimizerState<unknown>): StateInternals {
  const core = coreOf(state);
  const { config, backend, shapes, order } = core;
  return { config, backend, steps: state.step, skipped: state.skippedSteps, shapes, order };
}

/** The core of a live state that no step is running on; else throws. */
export function coreOf(state: unknown): Core {
  if (!(state instanceof StateHandle)) throw notAState(state);
  const core = state.live();
  if (core.stepping) throw new TypeError(STEPPING_MESSAGE);
  return core;
}

/** The error for a value given where an optimizer state was expected (`hint`: else stateHint's). */
export function notAState(value: unknown, hint = stateHint(value)): TypeError {
  return new TypeError(
    `Expected an optimizer state made by init() or step(), got ${described(value)}${hint}`,
  );
}

/** Copies of the parameters; see `readParams` in mod.ts. */
export function readSection(
  state: OptimizerState<unknown>,
  section: number,
): Promise<Record<string, Float32Array<ArrayBuffer>>> {
  try {
    return coreOf(state).backend.readSection(section);
  } catch (error) {
    return Promise.reject(error); // a consumed or disposed state: rejected, as other failures
  }
}

/**
 * Releases a state's workers (threaded states) and makes every handle of its line unusable;
 * see `dispose` in mod.ts. Idempotent; any handle of the line, even a consumed one, may be given.
 */
export function disposeState(state: OptimizerState<unknown>): void {
  if (!(state instanceof StateHandle)) throw notAState(state);
  const core = state.anyCore();
  if (core.disposed) return;
  if (core.stepping) throw new TypeError(STEPPING_MESSAGE);
  core.disposed = true;
  core.current = undefined;
  core.backend.dispose();
}
