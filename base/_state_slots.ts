/**
 * The records of a state's gradient slots, `state.grads`, and of its parameters,
 * `state.params`, whose assignments say what to write instead: `state.grads.w = g` was
 * JavaScript's own "Cannot assign to read only property" (and, in sloppy-mode scripts, changed
 * nothing, silently). Private to the library.
 *
 * @module
 */
import { literalKey, memberAccess } from "./_errors.ts";
import { refusingAssignment } from "./_refusing_record.ts";
import { NEW_TENSOR_HINT } from "./tensors.ts";

/** Where a state's slots are: in host memory (Float32Arrays) or on the GPU (GPU tensors). */
export type SlotsPlace = "host" | "device";

/**
 * Where the slots of a state on `backend` are: its `kind`, `"host"` for the CPU backends,
 * `"device"` for WebGPU.
 *
 * @example
 * ```ts
 * import { placeOf } from "./_state_slots.ts";
 * import assert from "node:assert/strict";
 *
 * assert.equal(placeOf({ kind: "host" }), "host");
 * assert.equal(placeOf({ kind: "device" }), "device");
 * ```
 */
export function placeOf(backend: { readonly kind: string }): SlotsPlace {
  return backend.kind === "host" ? "host" : "device";
}

/**
 * `views` (a state's gradient slots, by tensor name) as a frozen record whose assignments say
 * how a gradient is given ({@linkcode gradAssignMessage}); see `refusingAssignment` (_refusing_record.ts).
 *
 * @example
 * ```ts
 * import { gradSlots } from "./_state_slots.ts";
 * import assert from "node:assert/strict";
 *
 * const w = new Float32Array(2);
 * const grads = gradSlots({ w }, "host") as Record<string, Float32Array>;
 * assert.equal(grads.w, w);
 * assert.deepEqual(Object.keys(grads), ["w"]);
 * assert.throws(() => (grads.w = new Float32Array(2)), /step\(state, \{ w: g \}\)/);
 * ```
 */
export function gradSlots<T>(
  views: Readonly<Record<string, T>>,
  place: SlotsPlace,
): Readonly<Record<string, T>> {
  const count = Object.keys(views).length;
  return refusingAssignment(
    views,
    (name) => gradAssignMessage(name, place, count),
    (name) => addMessage("grads", name, Object.keys(views)),
  );
}

/**
 * `views` (a state's parameters, by tensor name) as a frozen record whose assignments say how
 * a state goes on from other values ({@linkcode paramAssignMessage}); see `refusingAssignment` (_refusing_record.ts).
 *
 * @example
 * ```ts
 * import { paramViews } from "./_state_slots.ts";
 * import assert from "node:assert/strict";
 *
 * const params = paramViews({ w: new Float32Array(2) }, "host") as Record<string, Float32Array>;
 * assert.throws(() => (params.w = new Float32Array(2)), /state\.params\.w\.set\(values\)/);
 * ```
 */
export function paramViews<T>(
  views: Readonly<Record<string, T>>,
  place: SlotsPlace,
): Readonly<Record<string, T>> {
  return refusingAssignment(
    views,
    (name) => paramAssignMessage(name, place),
    (name) => addMessage("params", name, Object.keys(views)),
  );
}

/**
 * The error of an assignment to a state's gradient slot, `state.grads[name] = g` (or, without
 * a name, to `state.grads` itself) of a state of `count` tensors: that a slot is the state's
 * own memory, which cannot be replaced, and the two ways a gradient is given: to `step` (copied
 * in), or written into the slot itself before `step(state)` (computed there, never copied).
 *
 * @example
 * ```ts
 * import { gradAssignMessage } from "./_state_slots.ts";
 * import assert from "node:assert/strict";
 *
 * assert.match(gradAssignMessage("w", "host", 1), /^Cannot assign state\.grads\.w: /);
 * assert.match(gradAssignMessage(undefined, "host"), /state = step\(state, grads\)/);
 * ```
 */
export function gradAssignMessage(
  name: string | undefined,
  place: SlotsPlace,
  count = 0,
): string {
  const one = name !== undefined;
  const slot = one ? `state.grads${memberAccess(name)}` : "state.grads[name]";
  const given = !one ? "grads" : count === 1 && name === "" ? "g" : `{ ${literalKey(name)}: g }`;
  const inPlace = place === "host"
    ? `${one ? "it" : "each"} into ${one ? "the" : "its"} slot in place, ${slot}.set(g), then ` +
      `state = step(state) (computed in the slot, ${slot}[i] = …, a gradient is never copied)`
    : `${one ? "it" : "each"} into ${one ? "the" : "its"} slot's buffer in place ` +
      `(${slot}.buffer at ${slot}.offset, by a shader or device.queue.writeBuffer), then ` +
      "state = step(state) (nothing is copied)";
  const memory = place === "host"
    ? "views of the state's memory"
    : "ranges of the state's GPU buffer";
  return `Cannot assign ${one ? slot : "state.grads"}: the gradient slots are ${memory}, which ` +
    `step reads, and cannot be replaced; pass the gradient${one ? "" : "s"} to step, ` +
    `state = step(state, ${given}), or write ${inPlace}`;
}

/**
 * The error of an assignment to a state's parameter, `state.params[name] = values` (or, without
 * a name, to `state.params` itself): that it is the state's own memory, which cannot be
 * replaced, and how a state goes on from other values: on the CPU written into its view in place
 * (the next step updates them, the moments kept); on the GPU, a state made of them that takes
 * this one's moments and step count, `init`'s option `from`.
 *
 * @example
 * ```ts
 * import { paramAssignMessage } from "./_state_slots.ts";
 * import assert from "node:assert/strict";
 *
 * assert.match(paramAssignMessage("w", "host"), /^Cannot assign state\.params\.w: /);
 * assert.match(paramAssignMessage(undefined, "host"), /state\.params\[name\]\.set\(values\)/);
 * assert.match(paramAssignMessage("w", "device"), /\{ from: state \}/);
 * ```
 */
export function paramAssignMessage(name: string | undefined, place: SlotsPlace): string {
  const one = name !== undefined;
  const view = one ? `state.params${memberAccess(name)}` : "state.params[name]";
  const start = `Cannot assign ${one ? view : "state.params"}: the parameters are `;
  const end = ", which each step updates, and cannot be replaced; to go on from other values, ";
  return place === "host"
    ? `${start}views of the state's memory${end}write ${
      one ? "them into it" : "each into its view"
    } in place, ${view}.set(values) (the next step updates them, the moments kept)`
    : `${start}ranges of the state's GPU buffers${end}make a state of them that takes this ` +
      "one's moments and step count, state = await opt.init(params, { from: state })";
}

/**
 * The error of an assignment to `state.params[name]` or `state.grads[name]` (`record`) of a name
 * the state does not hold (of `names`): which it holds, and how a tensor added to the model
 * trains; of a symbol, or of `__proto__`, which name no tensor, that the record is frozen and
 * holds the tensors alone (and, for a symbol, where to keep what is attached to it).
 *
 * @example
 * ```ts
 * import { addMessage } from "./_state_slots.ts";
 * import assert from "node:assert/strict";
 *
 * assert.match(addMessage("grads", "v", ["w"]), /^Cannot add state\.grads\.v: .*, only "w" /);
 * assert.match(addMessage("grads", Symbol("tag"), ["w"]), /^Cannot set state\.grads\[Symbol\(tag\)\]/);
 * ```
 */
export function addMessage(
  record: string,
  name: string | symbol,
  names: readonly string[],
): string {
  const shown = names.slice(0, 4).map((n) => JSON.stringify(n));
  const holds = names.length === 1 && names[0] === ""
    ? `the one given to init as a bare Float32Array, state.${record}[""]`
    : names.length > 4
    ? `${shown.join(", ")} and ${names.length - 4} more`
    : names.length > 1
    ? `${shown.slice(0, -1).join(", ")} and ${shown.at(-1)}`
    : shown[0];
  if (typeof name === "symbol" || name === "__proto__") {
    // (Not a tensor's name: something attached to the record, or its prototype replaced.)
    const key = typeof name === "symbol" ? `[${String(name)}]` : ".__proto__";
    return `Cannot set state.${record}${key}: state.${record} is frozen, the state's tensors by ` +
      `name, ${holds}, and nothing else${
        typeof name === "symbol" ? "; keep what you attach to it in a WeakMap keyed by it" : ""
      }`;
  }
  return `Cannot add state.${record}${memberAccess(name)}: the state has no tensor ` +
    `${JSON.stringify(name)}, only ${holds}${NEW_TENSOR_HINT}`;
}
