/**
 * The conformance kit's messages tell an author of a binding what to change where the contract
 * is easy to miss (found writing examples/sqlite_store.ts from the docs alone): a lease's end is
 * stamped by `Date.now`, and a commit that applies nothing journals nothing.
 */
import assert from "node:assert/strict";
import {
  memoryCheckpointStore,
  StoreConformanceError,
  type TrainingStore,
  verifyTrainingStore,
} from "../store.ts";

/** The failures `verifyTrainingStore` reports of `make`'s stores, by clause: their messages. */
async function failures(make: () => TrainingStore): Promise<Map<string, string>> {
  try {
    await verifyTrainingStore(make);
  } catch (error) {
    assert.ok(error instanceof StoreConformanceError, String(error));
    return new Map(error.failures.map((f) => [f.clause, error.message]));
  }
  return new Map();
}

Deno.test("conformance: a store whose leases end by another clock than Date.now is told to stamp them with Date.now", async () => {
  // As a store whose wall clock is the database server's, 5 s ahead of this process's.
  const found = await failures(() => {
    const store = memoryCheckpointStore();
    const acquire: TrainingStore["acquire"] = async (token, ms, queue) => {
      const lease = await store.acquire(token, ms, queue);
      return lease && { ...lease, expires: lease.expires + 5000 };
    };
    return { ...store, acquire, name: store.name };
  });
  const message = found.get("lease.exclusive");
  assert.ok(message !== undefined, [...found.keys()].join());
  assert.match(message, /by this process's clock \(Date\.now: /);
  assert.match(message, /not the database's own clock, nor another injected one/);
});

Deno.test("conformance: a store that journals a commit applying nothing is told that such a commit journals nothing", async () => {
  const found = await failures(() => {
    const store = memoryCheckpointStore();
    // As a store that writes a journal record at every commit, the first checkpoint's included.
    const journal: TrainingStore["journal"] = async (from, limit) => {
      const records = await store.journal(from, limit);
      return (await store.head()) === null || from > 1
        ? records
        : [{ step: 1, seq: 1, entries: [] }, ...records].slice(0, limit);
    };
    return { ...store, journal, name: store.name };
  });
  const message = found.get("commit.applies");
  assert.ok(message !== undefined, [...found.keys()].join());
  assert.match(message, /a commit that applies none, as a first checkpoint's, journals nothing/);
});

Deno.test("conformance: a store whose listing throws synchronously for a bad limit is told to reject instead", async () => {
  const found = await failures(() => {
    const store = memoryCheckpointStore();
    // As a binding over a synchronous database driver, checking its arguments before any await.
    const journal: TrainingStore["journal"] = (from, limit) => {
      if (!(limit === Infinity || (Number.isInteger(limit) && limit >= 0))) {
        throw new RangeError(`journal's limit must be an integer ≥ 0 or Infinity, got ${limit}`);
      }
      return store.journal(from, limit);
    };
    return { ...store, journal, name: store.name };
  });
  const message = found.get("listing.arguments");
  assert.ok(message !== undefined, [...found.keys()].join());
  assert.match(message, /a synchronous throw \(.*\), not a rejection: a store's methods answer/);
});
