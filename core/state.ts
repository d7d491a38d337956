/**
 * The optimizer state value and the operations on it: `init`, `step`, `readParams`.
 *
 * A state value is a thin handle on a core (configuration, backend, step count). `step`
 * advances the core in place, since the buffers are reused, and returns a fresh handle; the
 * handle it was given is consumed, and any later use of it throws.
 *
 * @module
 */
import { type ArenaLayout, PARAMS, planArena, SLOW } from "./arena.ts";
import type { Backend, DeviceCounter } from "./backend.ts";
import type { BackendName, ResolvedConfig } from "./options.ts";
import { computeScalars, emptyScalars, type StepScalars } from "./scalars.ts";
import { checkGrads, checkParams, label, type Params } from "./tensors.ts";

/**
 * The state of an optimizer over a set of tensors, as returned by `init` and `step`.
 *
 * `params` and `grads` are views into the memory the kernel runs on: write gradients into
 * `grads` and call `step(state)` to step without copying anything. The views stay valid, and
 * are the same objects, across every state that `step` derives from this one.
 *
 * @example
 * ```ts
 * import { type OptimizerState, radam, step } from "../mod.ts";
 * let state: OptimizerState = await radam().init({ w: new Float32Array(3) });
 * state.grads.w.set([0.1, 0.2, 0.3]);
 * state = step(state);
 * console.log(state.step, state.skippedSteps, state.backend); // 1 0 "wasm"
 * ```
 */
export interface OptimizerState<T = Float32Array> {
  /** The optimizer that made this state: "radam", "adam" or "adamw". */
  readonly optimizer: string;
  /** The backend the state lives on. */
  readonly backend: BackendName;
  /**
   * How many steps have been taken (PyTorch's `step`); the next step is `step + 1`. On WebGPU
   * the device counts them: this is its last report plus the steps submitted since (assumed
   * taken), exact after `await readParams(state)`.
   */
  readonly step: number;
  /** Names of the tensors, in arena order. */
  readonly names: readonly string[];
  /** Parameter views, by name (live: they change as steps are taken). */
  readonly params: Readonly<Record<string, T>>;
  /** Gradient slots, by name: write gradients here for a zero-copy `step(state)`. */
  readonly grads: Readonly<Record<string, T>>;
  /**
   * Steps skipped because a gradient was NaN or ±Infinity (option `nonFinite: "skip"`); on
   * WebGPU as of the device's last report (exact after `await readParams(state)`).
   */
  readonly skippedSteps: number;
  /**
   * Global L2 norm of the gradients of the last step (taken or skipped), computed in float64
   * before clipping and centralization, where the step computes it: with `clipGradNorm`. NaN
   * before the first step and on the CPU backends without `clipGradNorm`: there the non-finite
   * check (`nonFinite: "skip"`, the default, or `"throw"`) only tests the gradients' exponent
   * bits, which costs a read of them rather than an f64 reduction, and `"propagate"` checks
   * nothing. (Not computed later on reading either: by then the gradient slots may hold the next
   * step's gradients, or centralized ones.) Take `Math.hypot` of your gradients, or set
   * `clipGradNorm: Number.MAX_VALUE` (which never clips), where you want the norm of every step.
   * On WebGPU the norm is computed in f32 on the device whenever the check runs, and reported
   * with the step count (a non-finite norm need not match the CPU's NaN-or-Infinity).
   */
  readonly lastGradNorm: number;
  /**
   * Threads the step runs on: 1, or the `threads` option where the state is at least
   * `threadThreshold` parameters (then `threads - 1` workers run until `dispose(state)`).
   */
  readonly threads: number;
}

/** What a state handle points at. Shared by all handles of one line of states. */
interface Core {
  readonly config: ResolvedConfig;
  // deno-lint-ignore no-explicit-any
  readonly backend: Backend<any>;
  readonly scalars: StepScalars;
  steps: number;
  skipped: number;
  lastNorm: number;
  /** Per parameter group (index 0: the optimizer's own settings): its config and lr scale. */
  readonly groupConfigs: readonly ResolvedConfig[];
  readonly groupLrScales: readonly number[];
  readonly groupScalars: readonly StepScalars[];
  /** Gradient-centralization segments: element offset, rows, cols (flat triples). */
  readonly gcSegments: readonly number[];
  /** Each tensor's shape, as given at init (rank 1 for bare arrays). */
  readonly shapes: readonly (readonly number[])[];
  /** The handle that may still be used; every other handle of this core is consumed. */
  current: StateHandle | undefined;
  /** Set by `dispose`: every handle of this core is then unusable. */
  disposed?: boolean;
}

const CONSUMED_MESSAGE =
  "This optimizer state was consumed by step(); use the state that step() returned";
const DISPOSED_MESSAGE = "This optimizer state was disposed";

// deno-lint-ignore no-explicit-any
class StateHandle implements OptimizerState<any> {
  readonly #core: Core;

  constructor(core: Core) {
    this.#core = core;
    core.current = this;
  }

  /** The core, if this handle is the live one; else throws. */
  live(): Core {
    if (this.#core.disposed) throw new TypeError(DISPOSED_MESSAGE);
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
    const core = this.live();
    return core.backend.counter?.steps ?? core.steps;
  }
  get names(): readonly string[] {
    return this.live().backend.layout.names;
  }
  // deno-lint-ignore no-explicit-any
  get params(): Readonly<Record<string, any>> {
    return this.live().backend.params;
  }
  // deno-lint-ignore no-explicit-any
  get grads(): Readonly<Record<string, any>> {
    return this.live().backend.grads;
  }
  get skippedSteps(): number {
    const core = this.live();
    return core.backend.counter?.skipped ?? core.skipped;
  }
  get lastGradNorm(): number {
    const core = this.live();
    return core.backend.counter?.lastNorm ?? core.lastNorm;
  }
  get threads(): number {
    return this.live().backend.threads ?? 1;
  }
}

/** Makes a backend of the chosen kind for a layout. */
export type BackendFactory = (layout: ArenaLayout) => Promise<Backend<Float32Array>>;

/**
 * The group (0: none, else 1 + index into `config.groups`) of each tensor: the first group
 * whose `match` accepts its name. Undefined when the configuration has no groups.
 */
export function groupsOf(config: ResolvedConfig, names: readonly string[]): number[] | undefined {
  const groups = config.groups;
  if (groups.length === 0) return undefined;
  return names.map((name) =>
    1 +
    groups.findIndex((g) =>
      g.match instanceof RegExp ? (g.match.lastIndex = 0, g.match.test(name)) : g.match(name)
    )
  );
}

/** Lays out the arena a configuration needs (slow weights, parameter groups). */
export function planFor(
  config: ResolvedConfig,
  names: readonly string[],
  lengths: readonly number[],
): ArenaLayout {
  return planArena(names, lengths, {
    slow: config.lookahead !== undefined,
    groups: groupsOf(config, names),
  });
}

/** Validates `params`, builds the arena on `makeBackend`'s backend and copies them in. */
export async function initState(
  config: ResolvedConfig,
  params: Params,
  makeBackend: BackendFactory,
): Promise<OptimizerState> {
  const tensors = checkParams(params);
  const layout = planFor(config, tensors.names, tensors.arrays.map((a) => a.length));
  const backend = await makeBackend(layout);
  const initial: Record<string, Float32Array> = {};
  for (let i = 0; i < tensors.names.length; i++) initial[tensors.names[i]] = tensors.arrays[i];
  backend.writeSection(PARAMS, initial);
  if (config.lookahead) backend.writeSection(SLOW, initial);
  return restoreState(config, backend, { shapes: tensors.shapes });
}

/** The state at step 0 on a backend whose parameters are already loaded. */
export function startState<T>(config: ResolvedConfig, backend: Backend<T>): OptimizerState<T> {
  return restoreState(config, backend);
}

/** Counters and shapes of a state being restored (all optional). */
export interface RestoreInfo {
  steps?: number;
  skipped?: number;
  shapes?: readonly (readonly number[])[];
}

/**
 * A state on a backend whose sections were already filled (init, or a checkpoint restore):
 * at step `info.steps` (default 0). Shapes default to rank 1.
 */
export function restoreState<T>(
  config: ResolvedConfig,
  backend: Backend<T>,
  info: RestoreInfo = {},
): OptimizerState<T> {
  const layout = backend.layout;
  const shapes = info.shapes ?? layout.lengths.map((n) => [n]);
  const gcSegments: number[] = [];
  if (config.gc) {
    for (let i = 0; i < layout.names.length; i++) {
      const length = layout.lengths[i];
      if (shapes[i].length > 1 && length > 0) {
        gcSegments.push(layout.offsets[i], shapes[i][0], length / shapes[i][0]);
      }
    }
  }
  const groups = config.groups;
  backend.counter?.start(info.steps ?? 0, info.skipped ?? 0);
  return new StateHandle({
    config,
    backend,
    scalars: emptyScalars(),
    steps: info.steps ?? 0,
    skipped: info.skipped ?? 0,
    lastNorm: NaN,
    gcSegments,
    shapes,
    groupConfigs: [config, ...groups.map((g) => ({ ...config, weightDecay: g.weightDecay }))],
    groupLrScales: [1, ...groups.map((g) => g.lrScale)],
    groupScalars: [emptyScalars(), ...groups.map(() => emptyScalars())],
    current: undefined,
  });
}

/** What a checkpoint reads from a live state (for core/checkpoint.ts only). */
export interface StateInternals {
  readonly config: ResolvedConfig;
  readonly backend: Backend<unknown>;
  readonly steps: number;
  readonly skipped: number;
  readonly shapes: readonly (readonly number[])[];
}

/** The configuration, backend and counters of a live state; throws if it was consumed. */
export function stateInternals(state: OptimizerState<unknown>): StateInternals {
  const core = coreOf(state);
  return {
    config: core.config,
    backend: core.backend,
    steps: state.step,
    skipped: state.skippedSteps,
    shapes: core.shapes,
  };
}

function coreOf(state: unknown): Core {
  if (!(state instanceof StateHandle)) {
    throw new TypeError("Expected an optimizer state made by init() or step()");
  }
  return state.live();
}

/** The learning rate of step `t`, checked. */
function learningRateAt(config: ResolvedConfig, t: number): number {
  const lr = typeof config.lr === "function" ? config.lr(t) : config.lr;
  if (typeof lr !== "number" || !Number.isFinite(lr) || lr < 0) {
    throw new RangeError(
      `The learning-rate schedule returned ${
        String(lr)
      } at step ${t}; expected a finite number ≥ 0`,
    );
  }
  return lr;
}

/** One optimizer step; see `step` in mod.ts. */
export function stepState<T>(
  state: OptimizerState<T>,
  grads?: unknown,
): OptimizerState<T> {
  const core = coreOf(state);
  const backend = core.backend;
  backend.checkUsable?.();
  const counter = backend.counter;
  const fault = counter?.takeFault();
  if (fault) throw fault;
  const zeroCopy = grads === undefined || grads === backend.grads;
  if (!zeroCopy) {
    if (backend.checkGrads) backend.checkGrads(grads);
    else checkGrads(grads, backend.layout.names, backend.layout.lengths);
  }
  if (counter) return stepOnDevice(core, counter, zeroCopy ? undefined : grads);
  const t = core.steps + 1;
  const lr = learningRateAt(core.config, t);
  computeScalars(core.config, t, lr, core.scalars);
  // Nothing above has changed the state (params, moments, slow weights, counts).
  const config = core.config;
  // Without clipping, "skip" and "throw" need no norm: a test of the exponent bits (fused into
  // the copy when the gradients are copied in), and lastGradNorm is NaN.
  const checkOnly = config.clipGradNorm === undefined && config.nonFinite !== "propagate" &&
    backend.gradsNonFinite !== undefined;
  if (checkOnly) {
    const found = zeroCopy
      ? backend.gradsNonFinite!()
      : backend.loadGradsChecked
      ? backend.loadGradsChecked(grads)
      : (backend.loadGrads(grads), backend.gradsNonFinite!());
    core.lastNorm = NaN;
    if (found) {
      if (config.nonFinite === "throw") throw nonFiniteError(backend);
      core.skipped++;
      return new StateHandle(core);
    }
  } else if (!zeroCopy) backend.loadGrads(grads);
  if (
    !checkOnly &&
    backend.gradSumSquares &&
    (config.clipGradNorm !== undefined || config.nonFinite !== "propagate")
  ) {
    // One f64 read of every gradient: non-finite iff some gradient is (no f32 overflow).
    const norm = Math.sqrt(backend.gradSumSquares());
    if (!Number.isFinite(norm) && config.nonFinite !== "propagate") {
      if (config.nonFinite === "throw") throw nonFiniteError(backend);
      core.lastNorm = norm;
      core.skipped++;
      return new StateHandle(core);
    }
    core.lastNorm = norm;
    const max = config.clipGradNorm;
    if (max !== undefined && norm > max) core.scalars.gradScale *= max / norm;
  }
  const segments = backend.layout.segments;
  if (segments.length > 0 && backend.segmentScalars) {
    const table = backend.segmentScalars;
    computeGroupScalars(core, t, lr);
    for (let k = 0; k < segments.length; k++) {
      const s = core.groupScalars[segments[k].group];
      table[k * 8 + 2] = s.stepSize;
      table[k * 8 + 3] = s.paramDecay;
      table[k * 8 + 4] = s.coupledDecay;
    }
  }
  centralizeGradients(core);
  backend.update(core.scalars);
  core.steps = t;
  return new StateHandle(core);
}

/**
 * A step where the device counts the steps (WebGPU): the scalars of the largest t the device
 * can be at (every step submitted and not yet reported taken) go into its ring if not there
 * yet, then one submission; the device skips, halts or takes the step by itself.
 */
function stepOnDevice(
  core: Core,
  counter: DeviceCounter,
  grads: unknown,
): StateHandle {
  const backend = core.backend;
  const t = counter.steps + 1;
  if (!counter.hasScalars(t)) {
    // The scalars of t and of the next steps, written last to first: those of a later step
    // that fails (a schedule that throws there) are left out, computed again at their step.
    for (let k = t + counter.scalarsAhead - 1; k >= t; k--) {
      try {
        const lr = learningRateAt(core.config, k);
        computeScalars(core.config, k, lr, core.scalars);
        if (backend.layout.segments.length > 0) computeGroupScalars(core, k, lr);
        counter.writeScalars(k, core.scalars, core.groupScalars);
      } catch (error) {
        if (k === t) throw error;
      }
    }
  }
  // Nothing above has changed the state (params, moments, slow weights, counts).
  if (grads !== undefined) backend.loadGrads(grads);
  centralizeGradients(core);
  backend.update(core.scalars);
  return new StateHandle(core);
}

/** Each parameter group's scalars of step `t` (group 0: the optimizer's own settings). */
function computeGroupScalars(core: Core, t: number, lr: number): void {
  for (let g = 0; g < core.groupConfigs.length; g++) {
    computeScalars(core.groupConfigs[g], t, lr * core.groupLrScales[g], core.groupScalars[g]);
  }
}

/** Gradient centralization of every rank > 1 tensor (with `gc`), before the update. */
function centralizeGradients(core: Core): void {
  const gc = core.gcSegments;
  for (let i = 0; i < gc.length; i += 3) core.backend.centralize!(gc[i], gc[i + 1], gc[i + 2]);
}

/** The error for `nonFinite: "throw"`, naming the first tensor with a NaN or ±Infinity. */
function nonFiniteError(backend: Backend<Float32Array>): RangeError {
  for (const name of backend.layout.names) {
    const g = backend.grads[name];
    for (let i = 0; i < g.length; i++) {
      if (!Number.isFinite(g[i])) {
        return new RangeError(
          `The gradient of ${label(name)} holds ${g[i]} at index ${i}; the step was not taken`,
        );
      }
    }
  }
  return new RangeError("A gradient holds a non-finite number; the step was not taken");
}

/** Copies of the parameters; see `readParams` in mod.ts. */
export function readSection(
  state: OptimizerState<unknown>,
  section: number,
): Promise<Record<string, Float32Array>> {
  try {
    return coreOf(state).backend.readSection(section);
  } catch (error) {
    // A consumed or disposed state: a rejection, as every other failure of a read.
    return Promise.reject(error);
  }
}

/**
 * Releases a state's workers (threaded states) and makes every handle of its line unusable;
 * see `dispose` in mod.ts. Idempotent; any handle of the line, even a consumed one, may be given.
 */
export function disposeState(state: OptimizerState<unknown>): void {
  if (!(state instanceof StateHandle)) {
    throw new TypeError("Expected an optimizer state made by init() or step()");
  }
  const core = state.anyCore();
  if (core.disposed) return;
  core.disposed = true;
  core.current = undefined;
  core.backend.dispose?.();
}

/** The per-step scalars of the last step taken (for tests and diagnostics). */
export function lastScalars(state: OptimizerState<unknown>): Readonly<StepScalars> {
  return coreOf(state).scalars;
}
