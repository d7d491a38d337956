/**
 * The optimizer state value and the operations on it: `init`, `step`, `readParams`.
 *
 * A state value is a thin handle on a core (configuration, backend, step count). `step`
 * advances the core in place, since the buffers are reused, and returns a fresh handle; the
 * handle it was given is consumed, and any later use of it throws.
 *
 * @module
 */
import { type ArenaLayout, PARAMS, planArena } from "./arena.ts";
import type { Backend } from "./backend.ts";
import type { BackendName, ResolvedConfig } from "./options.ts";
import { computeScalars, emptyScalars, type StepScalars } from "./scalars.ts";
import { checkGrads, checkParams, type Params } from "./tensors.ts";

/**
 * The state of an optimizer over a set of tensors, as returned by `init` and `step`.
 *
 * `params` and `grads` are views into the memory the kernel runs on: write gradients into
 * `grads` and call `step(state)` to step without copying anything. The views stay valid, and
 * are the same objects, across every state that `step` derives from this one.
 *
 * `T` is the slot type: `Float32Array` on the CPU backends (`wasm`, `js`), `GpuTensor` (a
 * `GPUBufferBinding` with a `length`) on `webgpu`.
 */
export interface OptimizerState<T = Float32Array> {
  /** The optimizer that made this state: "radam", "adam" or "adamw". */
  readonly optimizer: string;
  /** The backend the state lives on. */
  readonly backend: BackendName;
  /** How many steps have been taken (PyTorch's `step`); the next step is `step + 1`. */
  readonly step: number;
  /** Names of the tensors, in arena order. */
  readonly names: readonly string[];
  /** Parameter views, by name (live: they change as steps are taken). */
  readonly params: Readonly<Record<string, T>>;
  /** Gradient slots, by name: write gradients here for a zero-copy `step(state)`. */
  readonly grads: Readonly<Record<string, T>>;
}

/** What a state handle points at. Shared by all handles of one line of states. */
interface Core {
  readonly config: ResolvedConfig;
  // deno-lint-ignore no-explicit-any
  readonly backend: Backend<any>;
  readonly scalars: StepScalars;
  steps: number;
  /** The handle that may still be used; every other handle of this core is consumed. */
  current: StateHandle | undefined;
}

const CONSUMED_MESSAGE =
  "This optimizer state was consumed by step(); use the state that step() returned";

// deno-lint-ignore no-explicit-any
class StateHandle implements OptimizerState<any> {
  readonly #core: Core;

  constructor(core: Core) {
    this.#core = core;
    core.current = this;
  }

  /** The core, if this handle is the live one; else throws. */
  live(): Core {
    if (this.#core.current !== this) throw new TypeError(CONSUMED_MESSAGE);
    return this.#core;
  }

  get optimizer(): string {
    return this.live().config.name;
  }
  get backend(): BackendName {
    return this.live().backend.name;
  }
  get step(): number {
    return this.live().steps;
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
}

/** Makes a backend of the chosen kind for a layout. */
export type BackendFactory = (layout: ArenaLayout) => Promise<Backend<Float32Array>>;

/** Validates `params`, builds the arena on `makeBackend`'s backend and copies them in. */
export async function initState(
  config: ResolvedConfig,
  params: Params,
  makeBackend: BackendFactory,
): Promise<OptimizerState> {
  const tensors = checkParams(params);
  const layout = planArena(tensors.names, tensors.arrays.map((a) => a.length));
  const backend = await makeBackend(layout);
  const data: Record<string, Float32Array> = {};
  for (let i = 0; i < tensors.names.length; i++) data[tensors.names[i]] = tensors.arrays[i];
  backend.writeSection(PARAMS, data);
  return startState(config, backend);
}

/** The state at step 0 on a backend whose parameters are already loaded. */
export function startState<T>(config: ResolvedConfig, backend: Backend<T>): OptimizerState<T> {
  return new StateHandle({
    config,
    backend,
    scalars: emptyScalars(),
    steps: 0,
    current: undefined,
  });
}

function coreOf(state: unknown): Core {
  if (!(state instanceof StateHandle)) {
    throw new TypeError("Expected an optimizer state made by init() or step()");
  }
  return state.live();
}

/** What a checkpoint reads from a live state (for core/checkpoint.ts only). */
export interface StateInternals {
  readonly config: ResolvedConfig;
  readonly backend: Backend<unknown>;
  readonly steps: number;
}

/** The configuration, backend and step count of a live state; throws if it was consumed. */
export function stateInternals(state: OptimizerState<unknown>): StateInternals {
  return coreOf(state);
}

/**
 * A state at step `steps` on a backend whose sections were already filled (checkpoint
 * restore). The gradient slots start as the backend left them.
 */
export function restoreState<T>(
  config: ResolvedConfig,
  backend: Backend<T>,
  steps: number,
): OptimizerState<T> {
  return new StateHandle({ config, backend, scalars: emptyScalars(), steps, current: undefined });
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
  const zeroCopy = grads === undefined || grads === backend.grads;
  if (!zeroCopy) {
    if (backend.checkGrads) backend.checkGrads(grads);
    else checkGrads(grads, backend.layout.names, backend.layout.lengths);
  }
  const t = core.steps + 1;
  const lr = learningRateAt(core.config, t);
  computeScalars(core.config, t, lr, core.scalars);
  // Nothing above has changed the state; from here on nothing can fail.
  if (!zeroCopy) backend.loadGrads(grads);
  backend.update(core.scalars);
  core.steps = t;
  return new StateHandle(core);
}

/** Copies of the parameters; see `readParams` in mod.ts. */
export function readSection(
  state: OptimizerState<unknown>,
  section: number,
): Promise<Record<string, Float32Array>> {
  return coreOf(state).backend.readSection(section);
}

/** The per-step scalars of the last step taken (for tests and diagnostics). */
export function lastScalars(state: OptimizerState<unknown>): Readonly<StepScalars> {
  return coreOf(state).scalars;
}
