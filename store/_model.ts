/**
 * The caller's model, and the states of it the store makes: a new one from `init`, or one
 * loaded from a checkpoint, each checked to be of that model. Private to store/.
 *
 * @module
 */
import {
  CheckpointError,
  dispose,
  type LoadOptions,
  loadState,
  type Optimizer,
  type OptimizerState,
  type Params,
} from "../mod.ts";

/** Tensors by name, in order, and the optimizer's name: a state's or stored parameters'. */
interface Tensors {
  readonly optimizer?: string;
  readonly names: readonly string[];
  readonly params: Readonly<Record<string, unknown>>;
}

/** What a checkpoint must be: of this optimizer (by name), with these tensors. */
export interface ModelSpec {
  readonly optimizer: Optimizer;
  readonly tensors?: Readonly<Record<string, number>>;
  readonly init: () => Params | Promise<Params>;
  readonly loadOptions?: LoadOptions;
}

/**
 * How the tensors `names` (of `lengthOf(name)` values each) differ from `tensors`, or null
 * when they do not.
 */
function tensorMismatch(
  names: readonly string[],
  lengthOf: (name: string) => number,
  tensors: Readonly<Record<string, number>>,
): string | null {
  const expected = Object.keys(tensors);
  for (const name of names) {
    if (!Object.hasOwn(tensors, name)) {
      return `it has a tensor ${JSON.stringify(name)}, expected only ${
        expected.map((n) => JSON.stringify(n)).join(", ")
      }`;
    }
    const length = lengthOf(name);
    if (length !== tensors[name]) {
      return `tensor ${JSON.stringify(name)} has ${length} values, expected ${tensors[name]}`;
    }
  }
  const missing = expected.find((name) => !names.includes(name));
  return missing === undefined ? null : `it lacks the tensor ${JSON.stringify(missing)}`;
}

/**
 * Refuses a loaded state or stored parameters that are not of `spec`'s model (another
 * optimizer, or other tensors than the option `tensors` says), naming the store.
 */
export function checkModel(params: Tensors, spec: ModelSpec, store: string): void {
  if (params.optimizer !== undefined && params.optimizer !== spec.optimizer.name) {
    throw new CheckpointError(
      `Checkpoint ${store} is of another model: optimizer ${
        JSON.stringify(params.optimizer)
      }, expected ${JSON.stringify(spec.optimizer.name)}`,
    );
  }
  if (spec.tensors === undefined) return;
  const lengthOf = (name: string) => (params.params[name] as Float32Array).length;
  const why = tensorMismatch(params.names, lengthOf, spec.tensors);
  if (why !== null) throw new CheckpointError(`Checkpoint ${store} is of another model: ${why}`);
}

/**
 * A new state from `spec.init`; a RangeError, the state freed, when its tensors are not
 * those of the option `tensors` (saved, it would be a checkpoint every later request refuses).
 */
export async function newState(spec: ModelSpec): Promise<OptimizerState> {
  const state = await spec.optimizer.init(await spec.init());
  if (spec.tensors === undefined) return state;
  const lengthOf = (name: string) => (state.params[name] as Float32Array).length;
  const why = tensorMismatch(state.names, lengthOf, spec.tensors);
  if (why === null) return state;
  dispose(state);
  throw new RangeError(`Option init gave parameters that do not match option tensors: ${why}`);
}

/**
 * The options `loadState` resumes a checkpoint with: `spec.loadOptions`, and, unless they
 * name an lr, the optimizer's learning-rate schedule when it has one (a checkpoint cannot hold
 * a function, so one saved with a schedule needs it given again; the optimizer has it).
 */
function loadOptionsOf(spec: ModelSpec): LoadOptions | undefined {
  const lr = (spec.optimizer.settings?.hyperparameters as { lr?: unknown } | undefined)?.lr;
  if (typeof lr !== "function" || spec.loadOptions?.lr !== undefined) return spec.loadOptions;
  return { ...spec.loadOptions, lr: lr as LoadOptions["lr"] };
}

/**
 * The state of a stored checkpoint, checked to be of `spec`'s model; a CheckpointError naming
 * the store when it is damaged or of another model (nothing kept).
 */
export async function storedState(
  bytes: Uint8Array,
  spec: ModelSpec,
  store: string,
): Promise<OptimizerState> {
  let state: OptimizerState;
  try {
    state = await loadState(bytes, loadOptionsOf(spec));
  } catch (error) {
    if (!(error instanceof CheckpointError)) throw error;
    throw new CheckpointError(`Checkpoint ${store}: ${error.message}`);
  }
  try {
    checkModel(state, spec, store);
  } catch (error) {
    dispose(state);
    throw error;
  }
  return state;
}
