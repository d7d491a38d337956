/**
 * The work of a run counted by the built-ins it goes through (an array method weighed by the
 * array's length: a scan of all the names for each name counts n² where one lookup each counts
 * n), so that tests can tell work linear in the tensors from more without timing it; and the
 * check that counts at n, 2n and 4n tensors grow linearly.
 */
import assert from "node:assert/strict";

/** Counted work by what did it (`Array.includes`, `JSON.parse`, …) during {@linkcode counted}. */
export type Work = Map<string, number>;

/** Array methods, weighed by the length of the array each runs on. */
const ARRAY_METHODS = [
  "includes",
  "indexOf",
  "lastIndexOf",
  "find",
  "findIndex",
  "some",
  "every",
  "filter",
  "map",
  "forEach",
  "flatMap",
  "flat",
  "slice",
  "join",
  "concat",
  "sort",
  "reduce",
  "splice",
  "fill",
  "values",
] as const;

/** Replaces `owner[key]` by a function that adds `weight` of each call made while `on()`. */
function spy(
  owner: Record<string, unknown>,
  key: string,
  label: string,
  weight: (self: unknown, result: unknown) => number,
  work: Work,
  on: { now: boolean },
): () => void {
  const original = owner[key] as (...args: unknown[]) => unknown;
  owner[key] = function (this: unknown, ...args: unknown[]) {
    const result = Reflect.apply(original, this, args);
    if (on.now) {
      on.now = false; // (what the weighing calls is not counted)
      work.set(label, (work.get(label) ?? 0) + weight(this, result));
      on.now = true;
    }
    return result;
  };
  return () => owner[key] = original;
}

/** The work `run` does, counted (the built-ins put back after, whatever it throws). */
export async function counted(run: () => Promise<void>): Promise<Work> {
  const work: Work = new Map();
  const on = { now: false };
  const restore = spies(work, on);
  try {
    on.now = true;
    await run();
  } finally {
    on.now = false;
    restore.forEach((put) => put());
  }
  return work;
}

/** The whole work a synchronous `run` does, counted as {@linkcode counted} does, summed. */
export function workDone(run: () => void): number {
  const work: Work = new Map();
  const on = { now: false };
  const restore = spies(work, on);
  try {
    on.now = true;
    run();
  } finally {
    on.now = false;
    restore.forEach((put) => put());
  }
  return [...work.values()].reduce((a, b) => a + b, 0);
}

/** Spies on the built-ins counted, adding to `work` while `on.now`; the functions that put back. */
function spies(work: Work, on: { now: boolean }): (() => void)[] {
  const length = (self: unknown) => (self as { length?: number })?.length ?? 0;
  const size = (_: unknown, result: unknown) => Array.isArray(result) ? result.length : 1;
  const one = () => 1;
  return [
    ...ARRAY_METHODS.map((k) => spy(Array.prototype as never, k, `Array.${k}`, length, work, on)),
    ...["has", "get", "set", "delete"].map((k) =>
      spy(Map.prototype as never, k, `Map.${k}`, one, work, on)
    ),
    ...["has", "add", "delete"].map((k) =>
      spy(Set.prototype as never, k, `Set.${k}`, one, work, on)
    ),
    ...["keys", "entries", "values", "fromEntries", "assign", "defineProperty"].map((k) =>
      spy(Object as never, k, `Object.${k}`, size, work, on)
    ),
    ...["stringify", "parse"].map((k) => spy(JSON as never, k, `JSON.${k}`, one, work, on)),
  ];
}

/**
 * Asserts that the counts `a`, `b`, `c` of runs at n, 2n and 4n tensors grow linearly: as much
 * from 2n to 4n as twice from n to 2n (a few calls of slack); a term of n² adds 6n² to the first.
 */
export function assertLinear(a: Work, b: Work, c: Work, n: number): void {
  for (const key of new Set([...a.keys(), ...b.keys(), ...c.keys()])) {
    const [x, y, z] = [a.get(key) ?? 0, b.get(key) ?? 0, c.get(key) ?? 0];
    assert.ok(z - y <= 2 * (y - x) + 8, `${key}: ${x}, ${y}, ${z} at ${n}, ${2 * n}, ${4 * n}`);
  }
}

/** Constructors whose objects {@linkcode made} counts, by the global name each is reached by. */
const MADE = ["Set", "Map", "Uint8Array", "Float32Array", "DataView"] as const;

/**
 * The objects `run` makes by `new` of the globals in `MADE` (`new Set`, `new Uint8Array`, …),
 * counted by constructor: what it leaves to the collector, told without measuring the heap.
 * Each global is a Proxy of itself while `run` runs (`instanceof` still holds), put back after.
 */
export async function made(run: () => Promise<void>): Promise<Work> {
  const work: Work = new Map();
  const g = globalThis as unknown as Record<string, unknown>;
  const originals = MADE.map((name) => g[name] as new (...args: unknown[]) => object);
  MADE.forEach((name, i) => {
    g[name] = new Proxy(originals[i], {
      construct(target, args, newTarget) {
        work.set(name, (work.get(name) ?? 0) + 1);
        return Reflect.construct(target, args, newTarget === g[name] ? target : newTarget);
      },
    });
  });
  try {
    await run();
  } finally {
    MADE.forEach((name, i) => g[name] = originals[i]);
  }
  return work;
}
