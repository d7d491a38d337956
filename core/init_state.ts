/**
 * How a state starts: `initState` validates the params, builds the arena on a backend and
 * copies them in (at step 0, or from another state: `Start`): during the call where it can, else
 * checking that the caller's arrays did not change during its awaits.
 *
 * @module
 */
import { PARAMS, SLOW } from "../base/arena.ts";
import type { HostBackend } from "../base/backend.ts";
import type { Settings } from "../base/settings.ts";
import {
  checkParams,
  detachedError,
  label,
  type Params,
  SINGLE_TENSOR_NAME,
} from "../base/tensors.ts";
import { checkSavableSize } from "./checkpoint_header.ts";
import { firstBadValue } from "./checkpoint_tensors.ts";
import { checkGroupsMatch, inLayoutOrder, planNamedState } from "./plan.ts";
import { type BackendFactory, type OptimizerState, restoreState } from "./state.ts";

/**
 * How a new state starts other than fresh at step 0: from another state (init's option `from`,
 * core/carry.ts).
 */
export interface Start {
  /**
   * Called at the call with the checked tensors (names and shapes, in the order given): takes
   * what they start from (or throws, changing nothing).
   */
  readonly take: (names: readonly string[], shapes: readonly (readonly number[])[]) => Taking;
}

/** What a new state takes from another, being read: `ready`, then `counts` and `write`. */
export interface Taking {
  /**
   * Settles once it is read (a WebGPU state's is read back); undefined where it is read at the
   * call (a CPU state's), so that nothing is awaited before the new state's arena is made.
   */
  readonly ready: Promise<void> | undefined;
  /** The step counts the new state starts at. */
  readonly counts: () => { steps: number; skipped: number };
  /** Writes it into the new backend, once its params and slow weights are written. */
  readonly write: (backend: HostBackend) => void;
}

/**
 * Validates `params`, builds the arena on `makeBackend`'s backend and copies them in: at step 0
 * with zero moments, or as `start` says. Where nothing is to be read first (no `start`, or a
 * CPU one), the params are copied during the call as the backend makes its arena, where it
 * makes it at once (`fill`, core/state.ts `BackendFactory`): the values checked, in one pass.
 * Else (a WebGPU `start`, a kernel not yet compiled, params another thread may write at any
 * time) after the await, checked again once copied.
 */
export async function initState(
  config: Settings<unknown>,
  params: Params,
  makeBackend: BackendFactory,
  start?: Start,
): Promise<OptimizerState> {
  const tensors = checkParams(params);
  checkGroupsMatch(config, tensors.names);
  // (The names checked by checkParams: not measured again.)
  const layout = planNamedState(config, tensors.names, tensors.arrays.map((a) => a.length));
  const shapes = inLayoutOrder(layout, tensors.names, tensors.shapes);
  checkSavableSize(config, layout, shapes, tensors.names);
  const lengths = tensors.arrays.map((a) => a.length);
  const taking = start?.take(tensors.names, tensors.shapes);
  let copied = false;
  const fill = taking?.ready !== undefined || tensors.arrays.some(isShared)
    ? undefined
    : (made: HostBackend) => {
      writeStart(config, made, tensors, taking);
      copied = true;
    };
  if (taking?.ready !== undefined) await taking.ready;
  const backend = await makeBackend(layout, fill);
  try {
    if (!copied) {
      checkAttached(tensors, lengths);
      writeStart(config, backend, tensors, taking, true);
    }
    return restoreState(config, backend, { shapes, order: tensors.names, ...taking?.counts() });
  } catch (error) {
    backend.dispose(); // its workers: no state holds them
    throw error;
  }
}

/**
 * Writes the params (and slow weights) of `tensors` into `backend`, then what `taking` takes;
 * `recheck`: the copy is checked finite (made after an await: the caller may have written the
 * arrays meanwhile).
 */
function writeStart(
  config: Settings<unknown>,
  backend: HostBackend,
  tensors: { readonly names: readonly string[]; readonly arrays: readonly Float32Array[] },
  taking: Taking | undefined,
  recheck = false,
): void {
  const initial: Record<string, Float32Array> = {};
  for (let i = 0; i < tensors.names.length; i++) initial[tensors.names[i]] = tensors.arrays[i];
  backend.writeSection(PARAMS, initial);
  if (recheck) checkCopiedFinite(tensors.names, backend.viewSection(PARAMS));
  if (config.lookahead) backend.writeSection(SLOW, initial);
  taking?.write(backend);
}

/** Whether `array` lies in a SharedArrayBuffer (or one of another realm): others may write it. */
function isShared(array: Float32Array): boolean {
  return !(array.buffer instanceof ArrayBuffer);
}

/**
 * Throws where a tensor checked at `init`'s call was detached during its await (its buffer
 * transferred): its values would be read as none.
 */
export function checkAttached(
  tensors: { readonly names: readonly string[]; readonly arrays: readonly Float32Array[] },
  lengths: readonly number[],
): void {
  tensors.arrays.forEach((array, i) => {
    if (array.length === lengths[i]) return;
    const name = tensors.names[i];
    const copy = name === SINGLE_TENSOR_NAME
      ? "params.slice()"
      : `params[${JSON.stringify(name)}].slice()`;
    throw detachedError(`the values of ${label(name)}`, "init()", copy);
  });
}

/**
 * Throws a RangeError where the copy of a tensor (`copies`, by name) that init's call checked
 * finite holds a NaN or an infinity: the caller's array was changed during init's await. One
 * more pass over the params, cheaper than a copy of them at the call.
 */
export function checkCopiedFinite(
  names: readonly string[],
  copies: Readonly<Record<string, Float32Array>>,
): void {
  for (const name of names) {
    const bad = firstBadValue(copies[name], false);
    if (bad < 0) continue;
    throw new RangeError(
      `Expected ${label(name)} to hold finite numbers, got ${
        copies[name][bad]
      } at index ${bad} once init() copied it, after its checks: it was changed during init's ` +
        "await (leave the params unchanged until the Promise settles, or pass copies)",
    );
  }
}
