/**
 * The state a TensorFlow.js optimizer's `loadState` read, kept as loaded so that
 * `optimizer.state` gives it until a step makes the state anew (or `setWeights`, another load or
 * `dispose` ends it): an invocation that loads and takes no step saves back what it loaded.
 *
 * @module
 */
import type { Settings } from "../base/settings.ts";
import { disposeState, type OptimizerState } from "../core/state.ts";
import { holdState } from "../core/held.ts";
import { stateUnder } from "../core/new_settings.ts";
import { ADAPTER_HOLDER } from "./_hints.ts";

/**
 * The state of the last load, held as `optimizer.state` is (a `step` or `dispose` of it
 * refused), under the optimizer's settings (a save of it writes them, as a save after a step
 * would), until {@linkcode LoadedState.end}. A state laid out otherwise than those settings lay
 * it out (other moments, states format, groups or `gc`) is not kept: the step makes the state.
 *
 * @example
 * ```ts
 * import { LoadedState } from "./loaded_state.ts";
 * import { radam, saveState } from "@optim/radam";
 * import assert from "node:assert/strict";
 *
 * const loaded = new LoadedState();
 * loaded.keep(await radam().init({ w: new Float32Array(2) }), radam({ lr: 0.5 }).settings);
 * assert.ok((await saveState(loaded.state!)).length > 0);
 * loaded.settings(radam({ lr: 0.1 }).settings); // (setLearningRate: saved from now on)
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

  /** Keeps `state` under `config` (one kept before is disposed); where it cannot, disposes it. */
  keep(state: OptimizerState<unknown>, config: Settings): void {
    this.end();
    const under = stateUnder(state, config);
    if (under === undefined) disposeState(state);
    else this.#state = holdState(under, ADAPTER_HOLDER);
  }

  /** The optimizer's settings changed (its learning rate): the state kept is saved under them. */
  settings(config: Settings): void {
    const state = this.#state;
    if (state === undefined) return;
    this.#state = undefined;
    const under = stateUnder(state, config);
    if (under === undefined) disposeState(state); // (the same layout: not expected)
    else this.#state = holdState(under, ADAPTER_HOLDER);
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
