/**
 * Tensors that the holder of a state saves beside it in its checkpoints (the TensorFlow.js
 * adapter's partial gradient sums, `<name>.accum`, and moving averages of the weights,
 * `<name>.average`): a registry the holder fills, keyed by the state's line (its backend, which
 * `step` keeps), that `saveState` reads at its call. `loadState` checks such tensors as the
 * holder saves them (core/extra_tensors.ts), then leaves them: they are the holder's to read back
 * (the adapter's `optimizer.loadState`).
 *
 * @module
 */
import type { TensorOut } from "../base/safetensors.ts";
import { type OptimizerState, stateInternals } from "./state.ts";

export { EXTRA_SUFFIXES, isExtraTensor, withExtraTensors } from "./extra_tensors.ts";

/** What a holder saves beside a state: metadata entries and F32 tensors. */
export interface CheckpointExtras {
  /** Entries added to the checkpoint's `__metadata__` (e.g. `accum_count`). */
  readonly metadata: Readonly<Record<string, string>>;
  /** The tensors (F32), read from the holder's values as they were at the call. */
  readonly tensors: Promise<readonly TensorOut[]>;
}

/** The holders' sources of extras, by the backend of the line of states they hold. */
const sources = new WeakMap<object, () => CheckpointExtras | undefined>();

/**
 * Makes `source` the extras saved with `state` and every state of its line (those `step` makes
 * from it), replacing any given before; returns `state`. A state that is not live is left alone.
 *
 * @example
 * ```ts
 * import { addCheckpointExtras } from "./checkpoint_extras.ts";
 * import { loadState, radam, saveState } from "../mod.ts";
 * import assert from "node:assert/strict";
 *
 * const state = await radam().init({ w: new Float32Array(2) });
 * addCheckpointExtras(state, () => ({
 *   metadata: { note: "kept" },
 *   tensors: Promise.resolve([{ name: "w.average", shape: [2], data: new Float32Array(2) }]),
 * }));
 * const bytes = await saveState(state);
 * assert.equal((await loadState(bytes)).step, 0); // loadState ignores the extra tensor
 * ```
 */
export function addCheckpointExtras<S extends OptimizerState<unknown> | undefined>(
  state: S,
  source: () => CheckpointExtras | undefined,
): S {
  if (state === undefined) return state;
  let backend: object;
  try {
    backend = stateInternals(state).backend;
  } catch {
    return state;
  }
  sources.set(backend, source);
  return state;
}

/**
 * The extras of `state`'s holder, taken now (undefined where it has none, or `state` is not
 * live: `saveState`'s own checks then say so). Their tensors' Promise is marked handled: a save
 * refused before it awaits them leaves no unhandled rejection.
 *
 * @example
 * ```ts
 * import { addCheckpointExtras, extrasOf } from "./checkpoint_extras.ts";
 * import { radam } from "../mod.ts";
 * import assert from "node:assert/strict";
 *
 * const state = await radam().init({ w: new Float32Array(2) });
 * assert.equal(extrasOf(state), undefined);
 * addCheckpointExtras(state, () => ({ metadata: {}, tensors: Promise.resolve([]) }));
 * assert.deepEqual(await extrasOf(state)!.tensors, []);
 * ```
 */
export function extrasOf(state: OptimizerState<unknown>): CheckpointExtras | undefined {
  let source;
  try {
    source = sources.get(stateInternals(state).backend);
  } catch {
    return undefined;
  }
  const extras = source?.();
  extras?.tensors.catch(() => {});
  return extras;
}
