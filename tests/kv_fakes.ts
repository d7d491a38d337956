/**
 * Test helpers of the Deno KV store's tests: database views that crash or answer "database is
 * locked", and checks of what the database holds.
 *
 * @module
 */
import assert from "node:assert/strict";
import { formatKvKey } from "../kv.ts";
import { keyBytes } from "../kv/limits.ts";
import { prng } from "./util.ts";

export const PREFIX = ["models", "m"];

export class Crash extends Error {
  constructor() {
    super("simulated crash");
  }
}

/**
 * A view of `kv` on which the first `allowed` writes (atomic commits, sets and deletes) go through
 * and every operation after them throws a Crash; `pause`, when set, is awaited before each
 * write, with the write's index.
 */
export function crashingKv(
  kv: Deno.Kv,
  allowed: number,
  pause?: (write: number) => Promise<void>,
): Deno.Kv & { writes: number } {
  let writes = 0;
  let dead = false;
  const gate = async () => {
    const index = writes;
    if (pause) await pause(index);
    if (dead || index >= allowed) {
      dead = true;
      throw new Crash();
    }
    writes++;
  };
  const alive = () => {
    if (dead) throw new Crash();
  };
  const view = viewOf(kv, alive, async (f) => {
    await gate();
    return f();
  });
  Object.defineProperty(view, "writes", { get: () => writes });
  return view as Deno.Kv & { writes: number };
}

/**
 * A view of `kv` on which the first `allowed` writes (atomic commits, sets and deletes) go
 * through, and the next goes through too but throws a Crash, as a process that dies (or a client
 * whose request times out) once its write landed; every operation after it throws a Crash.
 */
export function crashingAfterKv(kv: Deno.Kv, allowed: number): Deno.Kv {
  let writes = 0;
  let dead = false;
  return viewOf(kv, () => {
    if (dead) throw new Crash();
  }, async (f) => {
    if (dead) throw new Crash();
    const result = await f();
    if (writes++ >= allowed) {
      dead = true;
      throw new Crash();
    }
    return result;
  });
}

/**
 * A view of `kv` that answers "database is locked", as a database file shared by processes
 * does: with probability `rate` before an operation (not done), and for writes also with
 * probability `rate` after it (done, but the caller is told otherwise).
 */
export function busyKv(kv: Deno.Kv, rate: number, seed = 1): Deno.Kv & { busy: number } {
  const rand = prng(seed);
  const counts = { busy: 0 };
  const locked = () => {
    counts.busy++;
    return new TypeError("database is locked");
  };
  const maybe = () => {
    if (rand() < rate) throw locked();
  };
  const write = async <T>(f: () => Promise<T>) => {
    maybe();
    const result = await f();
    maybe();
    return result;
  };
  const view = viewOf(kv, maybe, write);
  Object.defineProperty(view, "busy", { get: () => counts.busy });
  return view as Deno.Kv & { busy: number };
}

/**
 * A view of `kv` whose writes (atomic commits, sets and deletes) of the indexes in `after` go through
 * and are then answered "database is locked", as a database file shared by processes may answer
 * a write it did; `meanwhile`, when given, is awaited between the write and the answer (what
 * another process does before this one looks again).
 */
export function busyAfterKv(
  kv: Deno.Kv,
  after: readonly number[],
  meanwhile?: () => Promise<unknown>,
): Deno.Kv {
  let writes = 0;
  return viewOf(kv, () => {}, async (f) => {
    const index = writes++;
    const result = await f();
    if (after.includes(index)) {
      await meanwhile?.();
      throw new TypeError("database is locked");
    }
    return result;
  });
}

/**
 * A view of `kv` whose writes (atomic commits, sets and deletes) of the indexes in `before` are
 * answered "database is locked" without going through, as a database file shared by processes
 * answers while another holds its lock.
 */
export function busyBeforeKv(kv: Deno.Kv, before: readonly number[]): Deno.Kv {
  let writes = 0;
  return viewOf(kv, () => {}, (f) => {
    const index = writes++;
    if (before.includes(index)) return Promise.reject(new TypeError("database is locked"));
    return f();
  });
}

/** The limits of one request that {@linkcode limitedKv} enforces. */
export interface KvLimits {
  /** The most checks of an atomic write. */
  readonly checks: number;
  /** The most keys one `getMany` reads (ranges of one read). */
  readonly ranges: number;
  /** The most entries one list's batch reads. */
  readonly entries: number;
}

/** The self-hosted Deno KV server's limits (denoland/denokv, proto/limits.rs). */
export const DENOKV_LIMITS: KvLimits = { checks: 10, ranges: 10, entries: 1000 };

/**
 * A view of `kv` that refuses what a server of smaller limits refuses (denoland/denokv answers
 * an atomic write of more than 10 checks, a read of more than 10 ranges, with an error, and
 * does nothing of it), throwing before anything is done; `most` holds the most checks and
 * ranges it was asked for at once, and `writes` how many atomic writes it passed.
 */
export function limitedKv(
  kv: Deno.Kv,
  limits: KvLimits = DENOKV_LIMITS,
): Deno.Kv & { most: { checks: number; ranges: number }; writes: number } {
  const most = { checks: 0, ranges: 0 };
  let writes = 0;
  const view = {
    get: (key: Deno.KvKey, options?: { consistency?: Deno.KvConsistencyLevel }) =>
      kv.get(key, options),
    getMany: (keys: Deno.KvKey[], options?: { consistency?: Deno.KvConsistencyLevel }) => {
      most.ranges = Math.max(most.ranges, keys.length);
      if (keys.length > limits.ranges) {
        return Promise.reject(new TypeError(`Too many ranges (max ${limits.ranges})`));
      }
      return kv.getMany(keys, options);
    },
    list: (selector: Deno.KvListSelector, options?: Deno.KvListOptions) => {
      const batch = options?.batchSize ?? Math.min(options?.limit ?? 500, 500);
      if (batch > limits.entries) {
        throw new TypeError(`Too many entries (max ${limits.entries})`);
      }
      return kv.list(selector, options);
    },
    set: (key: Deno.KvKey, value: unknown, options?: { expireIn?: number }) =>
      kv.set(key, value, options),
    delete: (key: Deno.KvKey) => kv.delete(key),
    atomic: () => {
      const op = kv.atomic();
      let checks = 0;
      const wrapped = {
        check: (...c: Deno.AtomicCheck[]) => (checks += c.length, op.check(...c), wrapped),
        set: (key: Deno.KvKey, value: unknown, options?: { expireIn?: number }) => (
          op.set(key, value, options), wrapped
        ),
        delete: (key: Deno.KvKey) => (op.delete(key), wrapped),
        commit: () => {
          most.checks = Math.max(most.checks, checks);
          if (checks > limits.checks) {
            return Promise.reject(new TypeError(`Too many checks (max ${limits.checks})`));
          }
          writes++;
          return op.commit();
        },
      };
      return wrapped;
    },
    close: () => kv.close(),
    most,
  };
  Object.defineProperty(view, "writes", { get: () => writes });
  return view as unknown as Deno.Kv & { most: typeof most; writes: number };
}

/** Deno Deploy's limit on the total size of the keys of one atomic operation: 90 KiB. */
export const DEPLOY_MAX_KEYS_BYTES = 92_160;

/**
 * A view of `kv` whose atomic writes refuse, as Deno Deploy does, more than `max` bytes of keys
 * (as Deno KV encodes them) in all: checked, set, deleted, and those an enqueue names; nothing
 * of such a write is done. The local database counts only those set, up to 81 920 bytes.
 */
export function keyBudgetKv(kv: Deno.Kv, max = DEPLOY_MAX_KEYS_BYTES): Deno.Kv {
  return atomicView(kv, (op) => {
    let bytes = 0;
    const count = (...keys: Deno.KvKey[]) => {
      for (const key of keys) bytes += keyBytes(key);
    };
    const view: Deno.AtomicOperation = new Proxy(op, {
      get(o, n) {
        if (n === "commit") {
          return () =>
            bytes > max
              ? Promise.reject(new TypeError(`Total key size too large (max ${max} bytes)`))
              : o.commit();
        }
        const f = Reflect.get(o, n);
        if (typeof f !== "function") return f;
        return (...a: unknown[]) => {
          if (n === "check") count(...(a as Deno.AtomicCheck[]).map((c) => c.key));
          else if (n === "enqueue") {
            count(...((a[1] as { keysIfUndelivered?: Deno.KvKey[] })?.keysIfUndelivered ?? []));
          } else count(a[0] as Deno.KvKey); // set, delete, sum, min, max
          f.apply(o, a);
          return view;
        };
      },
    });
    return view;
  });
}

/**
 * A view of `kv` whose `atomic()` gives `wrap` of the database's own atomic operation; every
 * other member is the database's.
 */
export function atomicView(
  kv: Deno.Kv,
  wrap: (op: Deno.AtomicOperation) => Deno.AtomicOperation,
): Deno.Kv {
  return new Proxy(kv, {
    get(target, name) {
      if (name === "atomic") return () => wrap(target.atomic());
      const value = Reflect.get(target, name);
      return typeof value === "function" ? value.bind(target) : value;
    },
  });
}

/**
 * A view of `kv` that calls `read()` before each read (get, list) and passes each write (a set,
 * a delete, an atomic commit) through `write`; sets keep their options (`expireIn`).
 */
function viewOf(
  kv: Deno.Kv,
  read: () => void,
  write: <T>(f: () => Promise<T>) => Promise<T>,
): Deno.Kv {
  const view = {
    get: (key: Deno.KvKey, options?: { consistency?: Deno.KvConsistencyLevel }) => {
      read();
      return kv.get(key, options);
    },
    getMany: (keys: Deno.KvKey[], options?: { consistency?: Deno.KvConsistencyLevel }) => {
      read();
      return kv.getMany(keys, options);
    },
    list: (selector: Deno.KvListSelector, options?: Deno.KvListOptions) => {
      read();
      return kv.list(selector, options);
    },
    set: (key: Deno.KvKey, value: unknown, options?: { expireIn?: number }) =>
      write(() => kv.set(key, value, options)),
    delete: (key: Deno.KvKey) => write(() => kv.delete(key)),
    atomic: () => {
      const op = kv.atomic();
      const wrapped = {
        check: (...checks: Deno.AtomicCheck[]) => (op.check(...checks), wrapped),
        set: (key: Deno.KvKey, value: unknown, options?: { expireIn?: number }) => (
          op.set(key, value, options), wrapped
        ),
        delete: (key: Deno.KvKey) => (op.delete(key), wrapped),
        commit: () => write(() => op.commit()),
      };
      return wrapped;
    },
  };
  return view as unknown as Deno.Kv;
}

/** Every key under the prefix, as text, sorted. */
export async function keysOf(kv: Deno.Kv): Promise<string[]> {
  const keys: string[] = [];
  for await (const e of kv.list({ prefix: PREFIX })) keys.push(formatKvKey(e.key));
  return keys.sort();
}

/**
 * Checks that the store holds exactly one version, with `chunks` chunks (0: the bytes are in
 * the head), and nothing else.
 */
export async function assertOnlyCurrent(kv: Deno.Kv, chunks: number): Promise<void> {
  const keys = await keysOf(kv);
  const head = (await kv.get<{ id: string; chunks: number }>([...PREFIX, "head"])).value!;
  assert.equal(head.chunks, chunks);
  const expected = [
    formatKvKey([...PREFIX, "head"]),
    ...(chunks === 0 ? [] : [formatKvKey([...PREFIX, "versions", head.id])]),
    ...Array.from({ length: chunks }, (_, i) => formatKvKey([...PREFIX, "chunks", head.id, i])),
  ].sort();
  assert.deepEqual(keys, expected, "only the current version's keys remain");
}

/** How many chunks a checkpoint of `size` bytes takes (0: it goes in the head). */
export const chunksOf = (size: number, chunkBytes: number) =>
  size <= chunkBytes ? 0 : Math.ceil(size / chunkBytes);

/** `length` random bytes from `seed` (the same bytes for the same seed). */
export function randomBytes(length: number, seed: number): Uint8Array {
  const rand = prng(seed);
  return Uint8Array.from({ length }, () => Math.floor(rand() * 256));
}

export async function withKv(fn: (kv: Deno.Kv) => Promise<void>): Promise<void> {
  const kv = await Deno.openKv(":memory:");
  try {
    await fn(kv);
  } finally {
    kv.close();
  }
}

export async function rejectsWith(
  p: Promise<unknown>,
  type: abstract new (...args: never[]) => Error,
  ...parts: string[]
) {
  await assert.rejects(p, (e: Error) => {
    assert.ok(e instanceof type, `${e.name}: ${e.message}`);
    for (const part of parts) assert.ok(e.message.includes(part), `"${e.message}" lacks ${part}`);
    return true;
  });
}
