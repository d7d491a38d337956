/**
 * States that another object holds and steps (the TensorFlow.js adapter's, `optimizer.state`):
 * the public `step` and `dispose` refuse them, changing nothing, where they would consume or end
 * the holder's state and leave it failing at its next step with advice meant for a state of
 * one's own ("use the state that step() returned", "start again from init"). The holder steps
 * and disposes them through `stepState` and `disposeState`, which do not look here. A read or
 * save of one that the holder ended meanwhile (it replaced or disposed it) says so in the
 * holder's terms ({@linkcode inHoldersTerms}), not with a state of one's own's advice.
 *
 * @module
 */
import { DISPOSED_STATE_MESSAGE } from "../base/_state_errors.ts";
import type { CheckpointCalls } from "../base/_state_errors.ts";
import { coreOf, heldCalls, heldDisposers, type OptimizerState, StateHandle } from "./state.ts";

/** The backends of held states (one per line of states: `step` keeps it), with their holder. */
const held = new WeakMap<object, Holder>();

/** Who holds a state, as the errors name it, and the calls to use instead. */
export interface Holder {
  /** The holder, e.g. "a TensorFlow.js optimizer's (optimizer.state of tfOptimizer)". */
  readonly name: string;
  /** What steps it, e.g. "the optimizer's applyGradients (model.fit, minimize)". */
  readonly stepWith: string;
  /** What frees it, e.g. "optimizer.dispose()". */
  readonly disposeWith: string;
  /** What ends a state it holds, e.g. "replaced (setWeights, loadState) or disposed it". */
  readonly endedBy: string;
  /** How to read or save its state instead, e.g. "await optimizer.getWeights()". */
  readonly readWith: string;
  /**
   * How its state is saved and resumed, as a refused `JSON.stringify` or structured clone of
   * it says (by default `await saveState(state)` and `await loadState(bytes)`).
   */
  readonly checkpointWith?: CheckpointCalls;
}

/**
 * The backend of `state`, or undefined where it is no live state (its own checks then say so).
 * (Read off its core: `stateInternals` would make an object at every step.)
 */
function backendOf(state: OptimizerState<unknown>): object | undefined {
  try {
    return coreOf(state).backend;
  } catch {
    return undefined;
  }
}

/**
 * Marks `state` (and every state `step` makes from it) as held by `holder`; returns it.
 *
 * @example
 * ```ts
 * import { holdState, checkNotHeld } from "./held.ts";
 * import { radam } from "../mod.ts";
 * import assert from "node:assert/strict";
 *
 * const state = await radam().init({ w: new Float32Array(2) });
 * const holder = {
 *   name: "a test's",
 *   stepWith: "its step",
 *   disposeWith: "its dispose",
 *   endedBy: "ended it",
 *   readWith: "ask it",
 * };
 * holdState(state, holder);
 * assert.throws(() => checkNotHeld(state, "step"), TypeError);
 * ```
 */
export function holdState<S extends OptimizerState<unknown> | undefined>(
  state: S,
  holder: Holder,
): S {
  const backend = state && backendOf(state);
  if (backend !== undefined && !held.has(backend)) {
    held.set(backend, holder);
    heldDisposers.set(backend, holder);
    if (holder.checkpointWith) heldCalls.set(backend, holder.checkpointWith);
  }
  return state;
}

/**
 * `error`, which `call` of `state` threw, in its holder's terms where it says that the state
 * was disposed and the state is held: the holder ended it (a TypeError with `error` as its
 * cause). Else `error` itself.
 *
 * @example
 * ```ts
 * import { holdState, inHoldersTerms } from "./held.ts";
 * import { DISPOSED_STATE_MESSAGE } from "../base/_state_errors.ts";
 * import { radam } from "../mod.ts";
 * import assert from "node:assert/strict";
 *
 * const state = await radam().init({ w: new Float32Array(2) });
 * const holder = {
 *   name: "a test's",
 *   stepWith: "its step",
 *   disposeWith: "its dispose",
 *   endedBy: "ended it",
 *   readWith: "ask it",
 * };
 * holdState(state, holder);
 * const error = inHoldersTerms(state, "saveState", new TypeError(DISPOSED_STATE_MESSAGE));
 * assert.equal(
 *   (error as Error).message,
 *   "This optimizer state was a test's, which ended it before saveState read it: ask it",
 * );
 * ```
 */
export function inHoldersTerms(state: unknown, call: string, error: unknown): unknown {
  if (!(error instanceof TypeError) || error.message !== DISPOSED_STATE_MESSAGE) return error;
  const holder = state instanceof StateHandle ? held.get(state.anyCore().backend) : undefined;
  if (holder === undefined) return error;
  return new TypeError(
    `This optimizer state was ${holder.name}, which ${holder.endedBy} before ${call} read it: ` +
      holder.readWith,
    { cause: error },
  );
}

/**
 * Throws a TypeError, changing nothing, where `state` is held (see {@linkcode holdState}) and
 * the user calls `call` on it: `step` or `dispose`.
 *
 * @example
 * ```ts
 * import { checkNotHeld } from "./held.ts";
 * import { radam } from "../mod.ts";
 *
 * checkNotHeld(await radam().init({ w: new Float32Array(2) }), "step"); // a state of one's own
 * ```
 */
export function checkNotHeld(state: OptimizerState<unknown>, call: "step" | "dispose"): void {
  const backend = backendOf(state);
  const holder = backend && held.get(backend);
  if (holder === undefined) return;
  throw new TypeError(
    `This optimizer state is ${holder.name}: ${
      call === "step"
        ? `step it through ${holder.stepWith}, not with step()`
        : `free it with ${holder.disposeWith}, not dispose(state)`
    }`,
  );
}
