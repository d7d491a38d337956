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
  SINGLE_TENSOR_NAME,
} from "../mod.ts";
import { checkpointMetadata, ofStore } from "./layout.ts";

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

/** A store, as the model's checks know it: its name, and itself as the key of what they learn. */
export interface StoreOf {
  readonly name: string;
}

/** The tensor names an `init` gave: the one call's promise, which requests at once share. */
interface Learned {
  readonly init: ModelSpec["init"];
  readonly names: Promise<readonly string[]>;
}

/**
 * The tensor names `init` gives, per store object (see {@linkcode checkInitNames}), with the
 * `init` that gave them (forgotten if the call rejects).
 */
const initNames = new WeakMap<StoreOf, Learned>();

/** The names of the tensors of `params`, as `init` of a state names them. */
function namesOf(params: Params): readonly string[] {
  if (params instanceof Float32Array) return [SINGLE_TENSOR_NAME];
  return typeof params === "object" && params !== null ? Object.keys(params) : [];
}

/** Calls `spec.init` for the names of its tensors, remembered for `store`. */
function askInit(spec: ModelSpec, store: StoreOf): Promise<readonly string[]> {
  const learned = { init: spec.init, names: (async () => namesOf(await spec.init()))() };
  initNames.set(store, learned);
  learned.names.catch(() => initNames.get(store) === learned && initNames.delete(store));
  return learned.names;
}

/** How the stored tensors `names` differ from those `init` gives, `expected`; null if not. */
function namesMismatch(names: readonly string[], expected: readonly string[]): string | null {
  const quoted = (list: readonly string[]) => list.map((n) => JSON.stringify(n)).join(", ");
  const extra = names.find((name) => !expected.includes(name));
  const missing = expected.find((name) => !names.includes(name));
  if (extra === undefined && missing === undefined) return null;
  return extra !== undefined
    ? `it has a tensor ${JSON.stringify(extra)}, the parameters init gives have ${quoted(expected)}`
    : `it lacks the tensor ${JSON.stringify(missing)} that init gives`;
}

/**
 * Without the option `tensors`: refuses stored tensors whose names are not those `init`
 * gives, naming the first that differs (a redeploy that renamed, added or removed a tensor
 * would otherwise train the stored weights under the code's new names, or fail inside the
 * caller's gradient). `init` is called for it once per store object (its names remembered);
 * where they differ and were learned from another `init` (another trainer of the same store
 * object: `kvCheckpointStore` gives one object per database and prefix), this one is asked
 * before refusing, so that no `init` is judged by another's names. Its tensors' lengths are not
 * compared (a model may take its size from the request that makes it): the option `tensors`
 * checks them.
 */
export async function checkInitNames(
  names: readonly string[],
  spec: ModelSpec,
  store: StoreOf,
): Promise<void> {
  if (spec.tensors !== undefined) return;
  const learned = initNames.get(store);
  let why = namesMismatch(names, await (learned?.names ?? askInit(spec, store)));
  if (why !== null && learned !== undefined && learned.init !== spec.init) {
    why = namesMismatch(names, await askInit(spec, store));
  }
  if (why !== null) {
    throw new CheckpointError(`Checkpoint ${store.name} is of another model: ${why}`);
  }
}

/**
 * The tensor names each trainer's `init` gave, by the trainer's options (one `init` for the
 * trainer's life): see {@linkcode checkTrainerInitNames}.
 */
const trainerNames = new WeakMap<ModelSpec, Promise<readonly string[]>>();

/**
 * {@linkcode checkInitNames} for a trainer (`spec`, its options, for the trainer's life): its
 * own `init` is asked once, unless the store object's names were learned from that very `init`,
 * so that a trainer is never let through on another `init`'s names either (one with a renamed
 * tensor, made in a process whose store object learned the right names first, read the stored
 * model and only failed at its submit, on its gradient's names).
 */
export async function checkTrainerInitNames(
  names: readonly string[],
  spec: ModelSpec,
  store: StoreOf,
): Promise<void> {
  if (spec.tensors !== undefined) return;
  let own = trainerNames.get(spec);
  if (own === undefined) {
    const learned = initNames.get(store);
    own = learned?.init === spec.init ? learned.names : askInit(spec, store);
    const asked = own;
    trainerNames.set(spec, asked);
    asked.catch(() => trainerNames.get(spec) === asked && trainerNames.delete(spec));
  }
  const why = namesMismatch(names, await own);
  if (why !== null) {
    throw new CheckpointError(`Checkpoint ${store.name} is of another model: ${why}`);
  }
}

/**
 * A new state from `spec.init`; a RangeError, the state freed, when its tensors are not
 * those of the option `tensors` (saved, it would be a checkpoint every later request refuses).
 */
export async function newState(spec: ModelSpec, store: StoreOf): Promise<OptimizerState> {
  return await stateOf(spec, await initParams(spec, store));
}

/** What `spec.init` gives (its tensors' names learned for `store`, as by `newState`). */
export async function initParams(spec: ModelSpec, store: StoreOf): Promise<Params> {
  const params = await spec.init();
  if (spec.tensors === undefined && !initNames.has(store)) {
    initNames.set(store, { init: spec.init, names: Promise.resolve(namesOf(params)) });
  }
  return params;
}

/**
 * A new state of the parameters `params` gave by `spec.init` (copied: the state does not
 * share them), checked as by `newState`.
 */
export async function stateOf(spec: ModelSpec, params: Params): Promise<OptimizerState> {
  const state = await spec.optimizer.init(params);
  if (spec.tensors === undefined) return state;
  const lengthOf = (name: string) => (state.params[name] as Float32Array).length;
  const why = tensorMismatch(state.names, lengthOf, spec.tensors);
  if (why === null) return state;
  dispose(state);
  throw new RangeError(`Option init gave parameters that do not match option tensors: ${why}`);
}

/** Whether a checkpoint says it was saved with a learning-rate schedule (false if unsure). */
function savedWithSchedule(bytes: Uint8Array): boolean {
  try {
    return checkpointMetadata(bytes).lr_schedule === "true";
  } catch {
    return false; // loadState says what is wrong with it
  }
}

/**
 * The options `loadState` resumes a checkpoint (`bytes`) with: `spec.loadOptions`, and for
 * what they do not say, the optimizer's:
 * - how the state is held and runs (`states`, `backend`, `threads`, `threadThreshold`: the
 *   settings a checkpoint does not store as options): a checkpoint of another moments' format
 *   is converted, so that an optimizer changed to `states: "8bit"` saves 8-bit moments from
 *   its first step on;
 * - its learning-rate schedule (a checkpoint cannot hold a function, so one saved with a
 *   schedule needs it given again), and its constant lr where the checkpoint was saved with a
 *   schedule (it holds no lr). A constant lr the checkpoint holds is kept, as its other
 *   hyperparameters are (as PyTorch's `load_state_dict` restores a param group's lr).
 */
function loadOptionsOf(spec: ModelSpec, bytes: Uint8Array): LoadOptions {
  const given = omitUndefined(spec.loadOptions ?? {});
  const settings = spec.optimizer.settings;
  if (settings === undefined) return given;
  const { backend, threads, threadThreshold, states } = settings.run;
  // threads go with the backend they were given for
  const options: LoadOptions = given.backend === undefined
    ? { backend, threads, threadThreshold, states }
    : { states };
  const lr = settings.hyperparameters.lr;
  if (given.lr === undefined && (typeof lr === "function" || savedWithSchedule(bytes))) {
    options.lr = lr;
  }
  return { ...options, ...given };
}

/** `options` without the keys whose value is undefined (they would hide the optimizer's). */
function omitUndefined(options: LoadOptions): LoadOptions {
  return Object.fromEntries(Object.entries(options).filter(([, v]) => v !== undefined));
}

/**
 * The state of a stored checkpoint, checked to be of `spec`'s model; a CheckpointError naming
 * the store when it is damaged or of another model (nothing kept).
 */
export async function storedState(
  bytes: Uint8Array,
  spec: ModelSpec,
  store: StoreOf,
): Promise<OptimizerState> {
  let state: OptimizerState;
  try {
    state = await loadState(bytes, loadOptionsOf(spec, bytes));
  } catch (error) {
    if (!(error instanceof CheckpointError)) throw error;
    throw ofStore(store.name, error);
  }
  try {
    checkModel(state, spec, store.name);
    await checkInitNames(state.names, spec, store);
  } catch (error) {
    dispose(state);
    throw error;
  }
  return state;
}
