/**
 * The machinery of the store conformance kit (store/conformance.ts): a clause, the error a
 * broken one throws, and the comparisons its checks make. No Deno APIs, no test framework.
 *
 * @module
 */
import { saveState, sgd } from "../mod.ts";

/** What a check may use besides fresh stores: the caller's clock, and how many race. */
export interface KitContext {
  /** Moves the clock the stores read by `ms`; absent: clauses needing time are skipped. */
  readonly advance?: (ms: number) => void | Promise<void>;
  /** The clock the stores stamp a lease's end with, when not `Date.now`. */
  readonly now?: () => number | Promise<number>;
  /** How long the stores remember request ids, in ms, when the caller said. */
  readonly rememberMs?: number;
  /** How many concurrent callers a race check starts. */
  readonly racers: number;
  /** The largest checkpoint the stores must hold, in bytes. */
  readonly largestCheckpoint: number;
}

/** One clause of a store contract and the check that a store keeps it. */
export interface Clause<S> {
  /** Its stable name, as the report and errors give it (e.g. `"save.race"`). */
  readonly id: string;
  /** What it promises, in a few words. */
  readonly promise: string;
  /** What it needs that the caller may not give: it is skipped without. */
  readonly needs?: "advance" | "advance and rememberMs" | "maxFold";
  /** Runs the check on fresh stores made by `make`; throws {@linkcode Broken} when broken. */
  run(make: () => Promise<S>, context: KitContext): Promise<void>;
}

/** A clause found broken: what the check did, what the contract expects, what the store did. */
export class Broken extends Error {
  constructor(readonly did: string, readonly expected: string, readonly got: string) {
    super(`${did}: expected ${expected}, the store gave ${got}`);
    this.name = "Broken";
  }
}

/** A value as a broken clause's message shows it (bytes by length and first values). */
export function show(value: unknown): string {
  const tag = Object.prototype.toString.call(value).slice(8, -1);
  if (value instanceof Uint8Array || ArrayBuffer.isView(value) && tag === "Uint8Array") {
    const bytes = value as Uint8Array;
    const head = [...bytes.subarray(0, 8)].join(", ");
    return `Uint8Array(${bytes.length}) [${head}${bytes.length > 8 ? ", …" : ""}]`;
  }
  if (value instanceof Error) return `${value.name}: ${value.message}`;
  if (isBuffer(value)) {
    return `${tag}(${(value as ArrayBuffer).byteLength}) (not a Uint8Array)`;
  }
  if (ArrayBuffer.isView(value)) {
    return `${tag}(${value.byteLength} bytes) (not a Uint8Array)`;
  }
  if (value === undefined) return "undefined";
  try {
    const text = JSON.stringify(
      value,
      (_k, v) =>
        v instanceof Uint8Array || isBuffer(v) || ArrayBuffer.isView(v)
          ? show(v)
          : v === Infinity
          ? "Infinity"
          : v,
    );
    return text.length > 300 ? `${text.slice(0, 300)}…` : text;
  } catch {
    return String(value);
  }
}

/**
 * Whether `a` and `b` are the same data: bytes by content, arrays by element, plain objects
 * by key (a key whose value is undefined counts as absent).
 */
export function same(a: unknown, b: unknown): boolean {
  if (Object.is(a, b)) return true;
  if (a instanceof Uint8Array || b instanceof Uint8Array) {
    return a instanceof Uint8Array && b instanceof Uint8Array && a.length === b.length &&
      a.every((x, i) => x === b[i]);
  }
  if (typeof a !== "object" || typeof b !== "object" || a === null || b === null) return false;
  if (Array.isArray(a) !== Array.isArray(b)) return false;
  const keys = (o: object) =>
    Object.keys(o).filter((k) => (o as Record<string, unknown>)[k] !== undefined).sort();
  const ka = keys(a), kb = keys(b);
  return same(ka.join("\0"), kb.join("\0")) &&
    ka.every((k) => same((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k]));
}

/** Throws {@linkcode Broken} unless `got` is the same data as `expected`. */
export function expectSame(did: string, got: unknown, expected: unknown): void {
  if (!same(got, expected)) throw new Broken(did, show(expected), show(got));
}

/** Throws {@linkcode Broken} unless `ok`; `expected` says what the contract wants. */
export function expect(ok: boolean, did: string, expected: string, got: unknown): void {
  if (!ok) throw new Broken(did, expected, show(got));
}

/** What `call` resolves to, or throws {@linkcode Broken} saying what it rejected with. */
export async function answer<T>(did: string, call: () => Promise<T>): Promise<T> {
  try {
    return await call();
  } catch (error) {
    if (error instanceof Broken) throw error;
    throw new Broken(did, "an answer", `a rejection (${show(error)})`);
  }
}

/** Throws {@linkcode Broken} unless `call` rejects with an error of class `kind`. */
export async function expectRejects(
  did: string,
  kind: typeof TypeError | typeof RangeError,
  call: () => Promise<unknown>,
): Promise<void> {
  let answer: Promise<unknown>;
  try {
    answer = call();
  } catch (error) {
    // Against the contract, as a value answered for a promise is: the library takes a throw as
    // it would the rejection, but other code calling the store with .then or .catch would not.
    throw new Broken(
      did,
      `a rejection with a ${kind.name}`,
      `a synchronous throw (${show(error)}), not a rejection: a store's methods answer with a ` +
        "promise, failures included (make the method async, or return Promise.reject(error))",
    );
  }
  let got: unknown;
  try {
    got = await answer;
  } catch (error) {
    if (error instanceof kind) return;
    throw new Broken(did, `a rejection with a ${kind.name}`, `a rejection (${show(error)})`);
  }
  throw new Broken(did, `a rejection with a ${kind.name}`, `an answer ${show(got)}`);
}

/** The answers of `n` calls made at once (each told its index). */
export const race = <T>(n: number, call: (i: number) => Promise<T>): Promise<T[]> =>
  Promise.all(Array.from({ length: n }, (_, i) => call(i)));

/** Bytes of `length` that differ from those of another `seed`. */
export function bytesOf(seed: number, length = 16): Uint8Array {
  return Uint8Array.from({ length }, (_, i) => (seed * 31 + i * 7) & 255);
}

/** A checkpoint of one small tensor (what `loadParams` reads), with `w` = [seed, seed + 1]. */
export async function checkpointOf(seed: number): Promise<Uint8Array> {
  const state = await sgd({ backend: "js" }).init({ w: Float32Array.of(seed, seed + 1) });
  return await saveState(state);
}

/**
 * Whether `value` is an object whose fields a view can pick (not an array, bytes or a buffer:
 * those are shown as they are, so that an answer of the wrong shape says which).
 */
const isObject = (value: unknown): value is Record<string, unknown> =>
  typeof value === "object" && value !== null && !Array.isArray(value) &&
  !ArrayBuffer.isView(value) && !isBuffer(value);

/** Whether `value` is an ArrayBuffer or a SharedArrayBuffer (of any realm). */
const isBuffer = (value: unknown): boolean =>
  /^\[object (Shared)?ArrayBuffer\]$/.test(Object.prototype.toString.call(value));

/**
 * `store` whose calls to the contract's `methods` throw {@linkcode Broken} when one returns
 * something other than a Promise (a thenable): the contract's methods are async, and callers
 * chain on what they return.
 */
export function promising<S extends object>(store: S, methods: readonly string[]): S {
  // (Over an empty target, not `store`: a frozen store's methods cannot be answered otherwise.)
  const target = store;
  return new Proxy({} as S, {
    has: (_, key) => Reflect.has(target, key),
    get(_, key) {
      const value = Reflect.get(target, key);
      if (typeof key !== "string" || !methods.includes(key) || typeof value !== "function") {
        return value;
      }
      return (...args: unknown[]) => {
        const got = value.apply(target, args);
        if (typeof (got as { then?: unknown } | null)?.then === "function") return got;
        throw new Broken(
          `${key}(…)`,
          `a Promise (the contract's methods are async: declare ${key} async, or return ` +
            "Promise.resolve(value))",
          `${show(got)}, returned as it is`,
        );
      };
    },
  });
}

/**
 * The fields `names` of `value` (an object; else `value` itself): what a check compares of an
 * answer, so that a binding may answer with more (a row's own columns, say).
 */
export function pick(value: unknown, ...names: string[]): unknown {
  return isObject(value) ? Object.fromEntries(names.map((n) => [n, value[n]])) : value;
}

/** A checkpoint, head, request record or commit result, as checks compare them. */
export const asLoaded = (v: unknown): unknown => pick(v, "bytes", "version", "meta");
export const asHead = (v: unknown): unknown => pick(v, "version", "step");
export const asRecord = (v: unknown): unknown => pick(v, "state", "step", "reason");
export const asResult = (v: unknown): unknown =>
  isObject(v) ? { version: v.version, lease: isObject(v.lease) ? v.lease.token : v.lease } : v;

/** Journal records (and pending contributions' infos) as checks compare them. */
export const asJournal = (records: unknown): unknown =>
  Array.isArray(records)
    ? records.map((r) =>
      isObject(r) ? { ...pick(r, "step", "seq") as object, entries: asInfos(r.entries) } : r
    )
    : records;
export const asInfos = (infos: unknown): unknown =>
  Array.isArray(infos) ? infos.map((e) => pick(e, "id", "base", "samples")) : infos;
