/**
 * Frozen records whose assignments throw TypeErrors of the caller's words (a state's
 * `state.grads` and `state.params`, _state_slots.ts), and the test that tells their prototype
 * from a class's. Private to the library.
 *
 * @module
 */

/**
 * `views` as a frozen record whose entries are accessors: reading one gives its view,
 * assigning one throws a TypeError of `message(name)` (where the assignment to a frozen
 * record's property was JavaScript's own "Cannot assign to read only property", and in a
 * sloppy-mode script changed nothing, silently), and assigning a key it does not hold (a name,
 * a symbol, `__proto__`) throws one of `unknown(key)`, where given (it was JavaScript's "object
 * is not extensible", V8's "trap returned falsish" for a symbol, or nothing, silently: the
 * record's prototype, one for every record, catches the assignment). Its keys, spread and
 * `console.log` are those of `views`, not `[Getter/Setter]`. (No Proxy. The accessors are the
 * same functions in every record, the k-th entry's reading the k-th view held under a symbol:
 * records of the same names share one hidden class, and a read of `grads.w[i]` in a loop is
 * inlined and hoisted as a frozen record's was. Closures of each record's own made reads of every record after the
 * first 15 times slower there.) `Object.defineProperty`, `delete` and `Object.setPrototypeOf` on
 * a record reach no trap of the prototype's: only a Proxy of the record itself would have one,
 * and through one a loop of `grads.w[i]` ran some 80 times slower; they stay JavaScript's own
 * TypeErrors of a frozen object ("Cannot redefine property", "object is not extensible").
 *
 * @example
 * ```ts
 * import { refusingAssignment } from "./_refusing_record.ts";
 * import assert from "node:assert/strict";
 *
 * const record = refusingAssignment(
 *   { a: 1 },
 *   (name) => `no ${name}`,
 *   (key) => `no new ${String(key)}`,
 * ) as Record<string | symbol, number>;
 * assert.equal(record.a, 1);
 * assert.deepEqual({ ...record }, { a: 1 });
 * assert.throws(() => (record.a = 2), /^TypeError: no a$/);
 * assert.throws(() => (record.b = 2), /^TypeError: no new b$/);
 * assert.throws(() => (record[Symbol("c")] = 2), /^TypeError: no new Symbol\(c\)$/);
 * ```
 */
export function refusingAssignment<T>(
  views: Readonly<Record<string, T>>,
  message: (name: string) => string,
  unknown?: (key: string | symbol) => string,
): Readonly<Record<string, T>> {
  const names = Object.keys(views);
  const record = Object.create(ADDING);
  // Not frozen: the elements of a frozen array are not hoisted out of a loop (15 times slower).
  Object.defineProperty(record, VIEWS, { value: names.map((name) => views[name]) });
  Object.defineProperty(record, REFUSAL, { value: (k: number) => message(names[k]) });
  Object.defineProperty(record, ADDED, { value: unknown });
  inspectedAsPlain(record);
  names.forEach((name, k) => Object.defineProperty(record, name, accessorsAt(k)));
  return Object.freeze(record) as unknown as Readonly<Record<string, T>>;
}

/** Where a record of {@linkcode refusingAssignment} holds its views, in the order of its keys. */
const VIEWS = Symbol("views");
/** Where a record of {@linkcode refusingAssignment} holds the message of its k-th entry's. */
const REFUSAL = Symbol("refusal");
/** Where a record of {@linkcode refusingAssignment} holds the message of a name it has not. */
const ADDED = Symbol("added");

/**
 * The prototype of every record of {@linkcode refusingAssignment}: `Object.prototype` behind a
 * Proxy whose `set` an assignment of a name the record has not reaches (a frozen record's own
 * names never do), which throws the record's TypeError for it. Reads go to `Object.prototype`
 * (a Proxy of it: a Proxy of an object of its own in the chain made a read of a name the record
 * lacks twice as slow), and so does the chain: `state.grads instanceof Object`, as a plain
 * record's (the Proxy stands in `Object.prototype`'s place; without the trap, the chain went on
 * from there to `Object.prototype`'s own, null, and was not).
 */
const ADDING = new Proxy(Object.prototype, {
  set(target, key, value, receiver) {
    const unknown = (receiver as { [ADDED]?: (key: string | symbol) => string })[ADDED];
    if (unknown !== undefined) throw new TypeError(unknown(key));
    return Reflect.set(target, key, value, receiver);
  },
  // (Where Object.prototype was frozen, as by a hardened runtime, a Proxy's must be its own.)
  getPrototypeOf: (target) => Object.isExtensible(target) ? target : null,
});

/** The method Node's `util.inspect`, and Deno's `console.log`, call. */
const INSPECT = Symbol.for("nodejs.util.inspect.custom");

interface Refusing {
  readonly [VIEWS]: readonly unknown[];
  readonly [REFUSAL]: (k: number) => string;
}

/** The accessors of every record's k-th entry, made once each. */
const ACCESSORS: PropertyDescriptor[] = [];

function accessorsAt(k: number): PropertyDescriptor {
  for (let i = ACCESSORS.length; i <= k; i++) {
    ACCESSORS.push({
      enumerable: true,
      get(this: Refusing) {
        return this[VIEWS][i];
      },
      set(this: Refusing) {
        throw new TypeError(this[REFUSAL](i));
      },
    });
  }
  return ACCESSORS[k];
}

/**
 * Makes Node's `util.inspect` and Deno's `console.log` show `value` as a plain record of its own
 * enumerable entries (a refusing record's views, a guarded WebGPU slot's binding), not through
 * the Proxy in its prototype chain.
 */
export function inspectedAsPlain(value: object): void {
  Object.defineProperty(value, INSPECT, { value: inspectPlain });
}

/** An object's inspection: that of a plain record of its own enumerable entries. */
function inspectPlain(
  this: Record<string, unknown>,
  _depth: number,
  options: unknown,
  inspect?: (value: unknown, options: unknown) => string,
): string {
  const plain = { ...this };
  return inspect ? inspect(plain, options) : `{ ${Object.keys(plain).join(", ")} }`;
}

/**
 * Whether `proto` is the prototype of the records of {@linkcode refusingAssignment}: a record
 * of it is a plain record of its entries (base/tensors.ts `isRecord`), not a class's instance.
 *
 * @example
 * ```ts
 * import { isRefusingPrototype, refusingAssignment } from "./_refusing_record.ts";
 * import assert from "node:assert/strict";
 *
 * const record = refusingAssignment({ a: 1 }, (name) => `no ${name}`);
 * assert.ok(isRefusingPrototype(Object.getPrototypeOf(record)));
 * assert.ok(!isRefusingPrototype(Object.prototype));
 * ```
 */
export function isRefusingPrototype(proto: unknown): boolean {
  return proto === ADDING;
}
