/**
 * The state a TensorFlow.js optimizer's `loadState` read, kept as loaded so that
 * `optimizer.state` gives it until a step makes the state anew (or `setWeights`, another load or
 * `dispose` ends it): an invocation that loads and takes no step saves back what it loaded.
 *
 * @module
 */
import { disposeState, type OptimizerState } from "../core/state.ts";
import { holdState } from "../core/held.ts";
import { ADAPTER_HOLDER } from "./_hints.ts";

/**
 * The state of the last load, held as `optimizer.state` is (a `step` or `dispose` of it
 * refused), until {@linkcode LoadedState.end}.
 *
 * @example
 * ```ts
 * import { LoadedState } from "./loaded_state.ts";
 * import { radam, saveState } from "@optim/radam";
 * import assert from "node:assert/strict";
 *
 * const loaded = new LoadedState();
 * loaded.keep(await radam().init({ w: new Float32Array(2) }));
 * assert.ok((await saveState(loaded.state!)).length > 0);
 * loaded.end(); // disposed: a save of it now rejects
 * assert.equal(loaded.state, undefined);
 * ```
 */
export class LoadedState {
  #state: OptimizerState<unknown> | undefined;

  /** The state kept, if any. */
  get state(): OptimizerState<unknown> | undefined {
    return this.#state;
  }

  /** Keeps `state` (one kept before is disposed). */
  keep(state: OptimizerState<unknown>): void {
    this.end();
    this.#state = holdState(state, ADAPTER_HOLDER);
  }

  /** Disposes the state kept (a `saveState` of it under way or later rejects saying so). */
  end(): void {
    const state = this.#state;
    this.#state = undefined;
    if (state !== undefined) disposeState(state);
  }
}

/**
 * Runs `checks` on a state just loaded: where they throw, the state is disposed and the error
 * thrown; else resolves with it.
 *
 * @example
 * ```ts
 * import { checkedLoad } from "./loaded_state.ts";
 * import { radam, saveState } from "@optim/radam";
 * import assert from "node:assert/strict";
 *
 * const state = await radam().init({ w: new Float32Array(2) });
 * await assert.rejects(checkedLoad(state, () => Promise.reject(new TypeError("no"))), TypeError);
 * await assert.rejects(saveState(state)); // disposed
 * ```
 */
export async function checkedLoad<S extends OptimizerState<unknown>>(
  state: S,
  checks: () => Promise<void>,
): Promise<S> {
  try {
    await checks();
  } catch (error) {
    disposeState(state);
    throw error;
  }
  return state;
}
