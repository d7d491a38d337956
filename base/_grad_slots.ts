/**
 * The record of a state's gradient slots, `state.grads`, whose assignments say what to write
 * instead: `state.grads.w = g` was JavaScript's own "Cannot assign to read only property" (and,
 * in sloppy-mode scripts, changed nothing, silently). Private to the library.
 *
 * @module
 */

/** Where a state's slots are: in host memory (Float32Arrays) or on the GPU (GPU tensors). */
export type SlotsPlace = "host" | "device";

/**
 * `views` (the slots of a state's gradients, by tensor name) as a frozen record whose entries
 * are accessors: reading one gives its slot, assigning one throws a TypeError saying how a
 * gradient is given ({@linkcode gradAssignMessage}). (No Proxy: a read is a getter's, which the
 * engine inlines; `console.log` shows the slots, not `[Getter/Setter]`.)
 *
 * @example
 * ```ts
 * import { gradSlots } from "./_grad_slots.ts";
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
  const slots: Record<string, T> = {};
  const names = Object.keys(views);
  for (const name of names) {
    const view = views[name];
    Object.defineProperty(slots, name, {
      enumerable: true,
      get: () => view,
      set: () => {
        throw new TypeError(gradAssignMessage(name, names.length, place));
      },
    });
  }
  Object.defineProperty(slots, Symbol.for("nodejs.util.inspect.custom"), {
    value: (_depth: number, options: unknown, inspect?: (v: unknown, o: unknown) => string) =>
      inspect ? inspect({ ...views }, options) : `{ ${names.join(", ")} }`,
  });
  return Object.freeze(slots);
}

/**
 * The error of an assignment to a state's gradient slot, `state.grads[name] = g` (or, without
 * a name, to `state.grads` itself) of a state of `count` tensors: that a slot is the state's
 * own memory, which cannot be replaced, and the two ways a gradient is given: to `step` (copied
 * in), or written into the slot itself before `step(state)` (computed there, never copied).
 *
 * @example
 * ```ts
 * import { gradAssignMessage } from "./_grad_slots.ts";
 * import assert from "node:assert/strict";
 *
 * assert.match(gradAssignMessage("w", 1, "host"), /^Cannot assign state\.grads\.w: /);
 * assert.match(gradAssignMessage(undefined, 2, "host"), /state = step\(state, grads\)/);
 * ```
 */
export function gradAssignMessage(
  name: string | undefined,
  count: number,
  place: SlotsPlace,
): string {
  const one = name !== undefined;
  const slot = one ? `state.grads${member(name)}` : "state.grads[name]";
  const given = !one ? "grads" : count === 1 && name === "" ? "g" : `{ ${key(name)}: g }`;
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

/** `name` as a property access: `.w`, or `["fc1.weight"]`. */
function member(name: string): string {
  return /^[A-Za-z_$][\w$]*$/.test(name) ? `.${name}` : `[${JSON.stringify(name)}]`;
}

/** `name` as an object literal's key: `w`, or `"fc1.weight"`. */
function key(name: string): string {
  return /^[A-Za-z_$][\w$]*$/.test(name) ? name : JSON.stringify(name);
}
