/**
 * The state a TensorFlow.js optimizer's `loadState` read, kept as loaded so that
 * `optimizer.state` gives it until a step makes the state anew (or `setWeights`, another load or
 * `dispose` ends it): an invocation that loads and takes no step saves back what it loaded.
 *
 * @module
 */
import type { Settings } from "../base/settings.ts";
import type { SavedBeside } from "../core/checkpoint_header.ts";
import { coreOf, disposeState, type OptimizerState } from "../core/state.ts";
import { holdState } from "../core/held.ts";
import { checkSavableUnder, stateUnder } from "../core/new_settings.ts";
import { ADAPTER_HOLDER } from "./_hints.ts";

/**
 * The state of the last load, held as `optimizer.state` is (a `step` or `dispose` of it
 * refused), under the optimizer's settings (a save of it writes them, as a save after a step
 * would), until {@linkcode LoadedState.end}. A state laid out otherwise than those settings lay
 * it out (other moments, states format, groups or `gc`), or whose checkpoint under them, with
 * what the optimizer saves beside it (its sums and averages loaded; and the sums of calls since,
 * {@linkcode LoadedState.summed}), would pass the cap on a header's length, is not kept: the step
 * makes the state (or refuses it, as it refuses one it makes that could never be saved).
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
  /** What is saved beside the state kept, now (its sums and averages loaded, sums added). */
  #beside: (() => SavedBeside) | undefined;

  /** The state kept, if any. */
  get state(): OptimizerState<unknown> | undefined {
    return this.#state;
  }

  /**
   * Keeps `state` under `config` (one kept before is disposed), saved with what `beside` gives
   * (what the optimizer saves beside it at the time: see `checkSavableSize`); where it cannot,
   * disposes it.
   */
  keep(state: OptimizerState<unknown>, config: Settings, beside?: () => SavedBeside): void {
    this.end();
    let under;
    try {
      under = stateUnder(state, config, beside?.());
    } catch (error) {
      if (error instanceof RangeError) under = undefined; // (a checkpoint past the cap: not kept)
      else {
        disposeState(state);
        throw error;
      }
    }
    if (under === undefined) disposeState(state);
    else [this.#state, this.#beside] = [holdState(under, ADAPTER_HOLDER), beside];
  }

  /**
   * The optimizer's settings are to change (its learning rate): the state kept is saved under
   * `config` from now on. Where a checkpoint of it under `config` would pass the cap on a
   * header's length (a longer `lr` in it), the RangeError of `checkSavableSize`, and nothing
   * changes: the caller keeps its settings.
   */
  settings(config: Settings): void {
    const state = this.#state;
    if (state === undefined) return;
    const under = stateUnder(state, config, this.#beside?.());
    this.#state = undefined;
    if (under === undefined) disposeState(state); // (the same layout: not expected)
    else this.#state = holdState(under, ADAPTER_HOLDER);
  }

  /**
   * A call summed its gradients and made no state (one past the cap, with the sums, refused):
   * where a checkpoint of the state kept, with what is saved beside it now, would pass the cap
   * on a header's length, the state ends, as one loaded so is not kept (a save of it would fail
   * at the file's write; the step refuses it). Whether a state is still kept.
   */
  summed(): boolean {
    const state = this.#state;
    if (state === undefined) return false;
    try {
      checkSavableUnder(state, coreOf(state).config, this.#beside?.());
    } catch (error) {
      if (!(error instanceof RangeError)) throw error;
      this.end();
      return false;
    }
    return true;
  }

  /** Disposes the state kept (a `saveState` of it under way or later rejects saying so). */
  end(): void {
    const state = this.#state;
    this.#state = undefined;
    this.#beside = undefined;
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
