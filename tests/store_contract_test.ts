/**
 * The contract of a training store (store/training.ts), held by both stores alike: the
 * in-process one and the Deno KV one answer the same calls the same way.
 */
import assert from "node:assert/strict";
import { kvCheckpointStore, memoryCheckpointStore, type TrainingStore } from "../kv.ts";
import { PREFIX } from "./kv_fakes.ts";

/** Runs `fn` on each store: the in-process one, and one on a new Deno KV database. */
async function onEachStore(fn: (store: TrainingStore) => Promise<void>): Promise<void> {
  await fn(memoryCheckpointStore({ name: "in memory" }));
  const kv = await Deno.openKv(":memory:");
  try {
    await fn(kvCheckpointStore(kv, PREFIX));
  } finally {
    kv.close();
  }
}

/** Runs `fn` with `Date.now` answering `clock.now` (a clock the test moves). */
async function withClock<T>(clock: { now: number }, fn: () => Promise<T>): Promise<T> {
  const real = Date.now;
  Date.now = () => clock.now;
  try {
    return await fn();
  } finally {
    Date.now = real;
  }
}

Deno.test("store contract: pending lists the oldest first, those of one millisecond by id, in both stores", async () => {
  // Within one millisecond the in-process store listed contributions in the order they were
  // stored, the Deno KV store by id: a fold of the same submissions took them in another order
  // (another mean, bit for bit, and another journal) on each. Both now order by id there, as
  // Deno KV orders strings: by their UTF-8 bytes ("\uff00" before "\u{1f600}", which UTF-16
  // orders the other way).
  const gradient = new Uint8Array(8);
  const orders: string[][] = [];
  await onEachStore(async (store) => {
    const clock = { now: 1_700_000_000_000 };
    await withClock(clock, async () => {
      for (const id of ["b", "\u{1f600}", "a", "\uff00", "B"]) {
        assert.equal(await store.submit({ id, base: 0, samples: 1 }, gradient), null, id);
      }
      clock.now += 1;
      assert.equal(await store.submit({ id: "0-later", base: 0, samples: 1 }, gradient), null);
      clock.now -= 2; // a clock that went back: its millisecond still says where it goes
      assert.equal(await store.submit({ id: "z-earlier", base: 0, samples: 1 }, gradient), null);
    });
    const listed = (await store.pending(100)).map((p) => p.id);
    assert.deepEqual(
      listed,
      ["z-earlier", "B", "a", "b", "\uff00", "\u{1f600}", "0-later"],
      store.name,
    );
    assert.deepEqual((await store.pending(3)).map((p) => p.id), listed.slice(0, 3), store.name);
    orders.push(listed);
  });
  assert.deepEqual(orders[0], orders[1]);
});
