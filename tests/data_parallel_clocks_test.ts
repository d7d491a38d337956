/**
 * The data-parallel mode's lease across processes whose clocks differ: a process judges
 * another's lease by what it observed on its own clock (the record unchanged for its term),
 * never by comparing the end the writer recorded, with the writer's clock, with its own.
 */
import assert from "node:assert/strict";
import { kvCheckpointStore, type TrainingStore } from "../kv.ts";
import { withKv } from "./kv_fakes.ts";
import { onEachStore as eachStore } from "./each_store.ts";
import { pause } from "./data_parallel_harness.ts";
import { grantedSince } from "../store/_lease.ts";

/**
 * `kv` as a process whose clock is `skewMs` ahead of this one's (behind, when negative) uses
 * it: the lease records it writes end by its clock, and it reads the others' as its clock
 * would compare them.
 */
function leaseSkewedKv(kv: Deno.Kv, skewMs: number): Deno.Kv {
  const isLease = (key: Deno.KvKey) => key[key.length - 1] === "lease";
  const shift = (key: Deno.KvKey, value: unknown, by: number) => {
    const v = value as { expires?: number } | null;
    return isLease(key) && typeof v?.expires === "number"
      ? { ...v, expires: v.expires + by }
      : value;
  };
  const unshift = <T>(e: Deno.KvEntryMaybe<T>) => ({ ...e, value: shift(e.key, e.value, -skewMs) });
  return new Proxy(kv, {
    get(target, name) {
      if (name === "get") return async (key: Deno.KvKey) => unshift(await target.get(key));
      if (name === "getMany") {
        return async (keys: Deno.KvKey[]) => (await target.getMany(keys)).map(unshift);
      }
      if (name === "atomic") {
        return () => {
          const op = target.atomic();
          const view: Deno.AtomicOperation = new Proxy(op, {
            get(o, n) {
              if (n === "set") {
                return (key: Deno.KvKey, value: unknown, options?: { expireIn?: number }) => {
                  o.set(key, shift(key, value, skewMs), options);
                  return view;
                };
              }
              if (n === "commit") return () => o.commit();
              const v = Reflect.get(o, n);
              return typeof v === "function" ? (...a: unknown[]) => (v.apply(o, a), view) : v;
            },
          });
          return view;
        };
      }
      const value = Reflect.get(target, name);
      return typeof value === "function" ? value.bind(target) : value;
    },
  });
}

/**
 * `store` (the in-process one) as called by a process whose clock is `skewMs` ahead of this
 * one's: `Date.now()` reads so during each of its calls (made one at a time here).
 */
function clockSkewed(store: TrainingStore, skewMs: number): TrainingStore {
  const skewed = async <T>(call: () => Promise<T>): Promise<T> => {
    const real = Date.now;
    Date.now = () => real() + skewMs;
    try {
      return await call();
    } finally {
      Date.now = real;
    }
  };
  return {
    ...store,
    acquire: (token, ms, queue) => skewed(() => store.acquire(token, ms, queue)),
    commit: (c) => skewed(() => store.commit(c)),
    release: (lease) => skewed(() => store.release(lease)),
  };
}

/** Two processes on one fresh store of each kind: `plain`'s clock, and one `skewMs` off. */
const onEachStore = (
  skewMs: number,
  fn: (plain: TrainingStore, skewed: TrainingStore, kind: string) => Promise<void>,
) =>
  eachStore((plain, name, skewed) => fn(plain, skewed, `${name}, skew ${skewMs}`), {
    prefix: ["clocks"],
    other: {
      memory: (store) => clockSkewed(store, skewMs),
      kv: (kv) => leaseSkewedKv(kv, skewMs),
    },
  });

/** Asks for the lease as `token` on `store` every 20 ms until it comes; how long that took. */
async function takenAfter(store: TrainingStore, token: string, ms: number, limit = 5000) {
  const started = performance.now();
  while (performance.now() - started < limit) {
    if (await store.acquire(token, ms) !== null) return performance.now() - started;
    await pause(20);
  }
  return Infinity;
}

Deno.test("data parallel: a process whose clock is ahead does not take a lease still held, nor one handed on to another process", async () => {
  // A process compared the lease's end, written with its holder's clock, with its own: one
  // whose clock was ahead by more than what was left of it took it (a handed-on lease's first
  // term is 200 ms), so that the process it was handed to lost its turn.
  for (const skew of [5000, 11_000]) {
    await onEachStore(skew, async (plain, skewed, kind) => {
      const held = (await plain.acquire("holder", 10_000))!;
      assert.ok(held);
      assert.equal(await skewed.acquire("ahead", 10_000), null, `${kind}: held for 10 s`);
      await pause(50);
      assert.equal(await skewed.acquire("ahead", 10_000), null, `${kind}: held for 10 s, later`);
      // The holder hands it on to P for a first term of 200 ms.
      const result = await plain.commit({
        checkpoint: null,
        expected: null,
        step: 0,
        seq: 0,
        lease: held,
        next: { token: "P", ms: 200 },
        applied: [],
        refused: [],
        fresh: [],
      });
      assert.deepEqual(result, { version: null, lease: null });
      assert.equal(await skewed.acquire("ahead", 10_000), null, `${kind}: handed on to P`);
      const p = await plain.acquire("P", 10_000);
      assert.equal(p?.token, "P", `${kind}: P takes its turn`);
      assert.equal(await skewed.acquire("ahead", 10_000), null, `${kind}: P holds it`);
      await plain.release(p!);
    });
  }
});

Deno.test("data parallel: a lease not taken ends for each process its term after that process first saw it, whatever its clock", async () => {
  // A lease handed on to a process that stopped asking (or held by one that died) ends its
  // term after it was written; a process whose clock was behind waited for it that much
  // longer (seconds), one whose clock was ahead took it early. Now each takes it once it has
  // seen it unchanged for its term: at most a poll past that.
  for (const skew of [-5000, 0, 5000]) {
    await onEachStore(skew, async (plain, skewed, kind) => {
      const dead = (await plain.acquire("dead", 10_000))!;
      const result = await plain.commit({
        checkpoint: null,
        expected: null,
        step: 0,
        seq: 0,
        lease: dead,
        next: { token: "gone", ms: 300 },
        applied: [],
        refused: [],
        fresh: [],
      });
      assert.ok(result);
      const took = await takenAfter(skewed, "waiter", 10_000);
      assert.ok(took >= 280, `${kind}: taken after ${took} ms, before its term of 300 ms`);
      assert.ok(took < 3000, `${kind}: taken after ${took} ms`);
      const lease = await plain.acquire("another", 10_000);
      assert.equal(lease, null, `${kind}: now the waiter's`);
      await skewed.release("waiter");
    });
  }
});

Deno.test("data parallel: a lease whose end is long past by a process's clock is taken at once, not after a term", async () => {
  // A process that first reads a lease (of a holder that died long ago) does not wait its
  // whole term: the writer's clock is trusted that far (a minute).
  await onEachStore(-120_000, async (plain, old, kind) => {
    assert.ok(await old.acquire("died long ago", 10_000)); // ended 110 s ago by plain's clock
    const lease = await plain.acquire("newcomer", 10_000);
    assert.equal(lease?.token, "newcomer", kind);
    await plain.release(lease!);
  });
});

Deno.test("data parallel: on Deno KV, a lease record of an earlier version (no term) still ends at its end", async () => {
  // Written by a process not yet redeployed, during a rolling deploy: judged as it was.
  await withKv(async (kv) => {
    const store = kvCheckpointStore(kv, ["old lease"]);
    await kv.set(["old lease", "lease"], { token: "old", expires: Date.now() + 300 });
    assert.equal(await store.acquire("new", 10_000), null);
    const took = await takenAfter(store, "new", 10_000);
    assert.ok(took >= 200 && took < 3000, `taken after ${took} ms`);
    const stored = await kv.get<{ token: string; ms: number }>(["old lease", "lease"]);
    assert.deepEqual([stored.value?.token, stored.value?.ms], ["new", 10_000]);
  });
});

Deno.test("data parallel: a lease's grant, counted on the monotonic clock, falls within the call that got it, whatever the wall clock did meanwhile", () => {
  // The term was counted from the grant on the wall clock: a wall clock set back after the grant
  // counted the lease as held for less time than it was.
  const asked = { wall: 1_000_000, mono: 50 };
  const answered = { wall: 1_000_040, mono: 90 };
  // Stamped 10 ms into the call: 10 ms into it on the monotonic clock too.
  assert.equal(grantedSince(1_000_010 + 500, 500, asked, answered), 60);
  // Stamped outside the call (another clock): when it was made.
  assert.equal(grantedSince(2_000_000, 500, asked, answered), 50);
  // The wall clock set forward an hour during the call, before the stamp, 40 ms before the
  // answer: then 40 ms before it on the monotonic clock too. (It was placed at the answer: the
  // call's 40 ms not counted as held, the guard fired that much past half the term.)
  const forward = { wall: 1_000_000 + 3_600_000 + 40, mono: 90 };
  assert.equal(grantedSince(1_000_000 + 3_600_000 + 500, 500, asked, forward), 50);
  const laterStamp = 1_000_000 + 3_600_000 + 30;
  assert.equal(grantedSince(laterStamp + 500, 500, asked, forward), 80);
  // Set forward after the stamp (10 ms into the call): never after the grant.
  assert.ok(grantedSince(1_000_010 + 500, 500, asked, forward) <= 60);
  // Set back during the call: when it was made.
  assert.equal(grantedSince(999_990 + 500, 500, asked, { wall: 999_990, mono: 90 }), 50);
  // Set back 20 ms during the call: a stamp 10 ms into it on the wall clock was 10 ms (set back
  // after it) or 30 ms (before it) into it: placed no later than 10 ms.
  const back = { wall: 1_000_020, mono: 90 };
  assert.equal(grantedSince(1_000_010 + 500, 500, asked, back), 60);
});
