/**
 * What a store binding answers for `TrainingStore.loadParams`, from a checkpoint's bytes.
 *
 * @module
 */
import { described, promiseHint } from "../base/_errors.ts";
import { type ParamsView, readParamsPrefix, readStoredParams } from "./layout.ts";

/**
 * The parameters of a checkpoint (as `saveState` made it, and a store keeps it), without its
 * moments: its step, optimizer name, parameter names in its `tensor_order`, their shapes and
 * float32 values (copies). What `TrainingStore.loadParams` answers is this and the
 * checkpoint's version: a binding that keeps the checkpoint as saved calls it on the current
 * bytes, so it parses no safetensors header of its own.
 *
 * It takes the whole checkpoint (it checks that all the data its header describes is there): a
 * checkpoint as saved holds each parameter next to its own moments, so its parameters end
 * little before its last byte, and a binding over chunked values reads every chunk, as for
 * `load`. (The library's own stores keep a reordered copy whose parameters come first.)
 *
 * For the rest of what the checkpoint holds, from its header alone (its optimizer's settings:
 * the lr and other hyperparameters a resume keeps unless `loadOptions` changes them; the skipped
 * steps, the format of its moments), use `checkpointInfo(bytes)` of `@optim/radam`.
 *
 * Throws a TypeError when `bytes` is not a Uint8Array, and a CheckpointError naming the problem
 * when they are not a checkpoint of this library (truncated, a damaged header, no `tensor_order`
 * or `step`, a parameter that is not F32 or whose values are not finite), which the library
 * passes on as damaged stored data; `store`, the store's name, is then named in its message (as
 * the library's own stores name theirs).
 *
 * @example
 * ```ts
 * import { radam, saveState, step } from "@optim/radam";
 * import { checkpointParams, type StoredParams } from "@optim/radam/store";
 * import assert from "node:assert/strict";
 *
 * let state = await radam({ lr: 1e-2 }).init({ w: new Float32Array([1, 2]) });
 * state = step(state, { w: new Float32Array([1, 1]) });
 * const bytes = await saveState(state); // what a binding keeps as its current checkpoint
 *
 * // A binding's loadParams: the checkpoint's parameters, with its version.
 * const answer: StoredParams = { ...checkpointParams(bytes, "my-store"), version: "7" };
 * assert.equal(answer.step, 1);
 * assert.deepEqual(answer.names, ["w"]);
 * assert.deepEqual(answer.shapes.w, [2]);
 * assert.ok(answer.params.w[0] < 1);
 * assert.throws(() => checkpointParams(bytes.subarray(0, 12), "my-store"), /my-store truncated/);
 * ```
 */
export function checkpointParams(bytes: Uint8Array, store?: string): ParamsView {
  if (!(bytes instanceof Uint8Array)) {
    throw new TypeError(
      `checkpointParams takes a checkpoint's bytes as a Uint8Array, got ${described(bytes)}` +
        promiseHint(bytes),
    );
  }
  if (store !== undefined && typeof store !== "string") {
    throw new TypeError(
      `checkpointParams takes the store's name as a string, got ${described(store)}`,
    );
  }
  return store === undefined
    ? readParamsPrefix(bytes, bytes.length, true)
    : readStoredParams(store, bytes, bytes.length, true);
}
