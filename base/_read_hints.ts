/**
 * Promises whose reads of the names they will resolve to hold throw, by a prototype shared by
 * every Promise of the same names (the reads `readParams` and its kin return: a model may have
 * tens of thousands of tensors, and a getter of its own for each, on each Promise, was a
 * function and a property per tensor per call). Private to the library (_state_errors.ts).
 *
 * @module
 */

/** Where a hinting prototype holds the message of the read of its k-th name. */
const HINT = Symbol("hint");

/** The prototypes made, by the names they refuse, then by the call that says to await. */
const PROTOTYPES = new WeakMap<readonly string[], Map<string, object>>();

/**
 * `promise`, its prototype one that refuses each read of `keys` (but those a Promise has
 * already: `then`, `constructor`, …) with a TypeError of `message(key)`: made once for these
 * `keys` (the same array) and `call`, then shared. It stays a Promise (`instanceof Promise`,
 * awaited as any), and holds nothing of its own.
 *
 * @example
 * ```ts
 * import { refusingReads } from "./_read_hints.ts";
 * import assert from "node:assert/strict";
 *
 * const keys = ["w", "then"];
 * const a = refusingReads(Promise.resolve(1), keys, "read", (key) => `await for ${key}`);
 * const b = refusingReads(Promise.resolve(2), keys, "read", (key) => `await for ${key}`);
 * assert.throws(() => (a as unknown as { w: unknown }).w, /^TypeError: await for w$/);
 * assert.equal(Object.getPrototypeOf(a), Object.getPrototypeOf(b));
 * assert.ok(a instanceof Promise);
 * assert.deepEqual(Object.keys(a), []);
 * assert.equal(await b, 2);
 * ```
 */
export function refusingReads<P extends Promise<unknown>>(
  promise: P,
  keys: readonly string[],
  call: string,
  message: (key: string) => string,
): P {
  let byCall = PROTOTYPES.get(keys);
  if (byCall === undefined) PROTOTYPES.set(keys, byCall = new Map());
  let prototype = byCall.get(call);
  if (prototype === undefined) byCall.set(call, prototype = refusing(keys, message));
  Object.setPrototypeOf(promise, prototype);
  return promise;
}

/** A Promise prototype whose k-th getter throws `message(keys[k])`. */
function refusing(keys: readonly string[], message: (key: string) => string): object {
  const prototype = Object.create(Promise.prototype);
  Object.defineProperty(prototype, HINT, { value: (k: number) => message(keys[k]) });
  keys.forEach((key, k) => {
    if (!(key in Promise.prototype) && !Object.hasOwn(prototype, key)) {
      Object.defineProperty(prototype, key, refusalAt(k));
    }
  });
  return prototype;
}

/** The getters of every prototype's k-th name, made once each. */
const REFUSALS: PropertyDescriptor[] = [];

function refusalAt(k: number): PropertyDescriptor {
  for (let i = REFUSALS.length; i <= k; i++) {
    REFUSALS.push({
      configurable: true,
      get(this: { readonly [HINT]: (k: number) => string }) {
        throw new TypeError(this[HINT](i));
      },
    });
  }
  return REFUSALS[k];
}
