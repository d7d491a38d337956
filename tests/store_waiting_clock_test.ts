/**
 * A process that waits for the lease while its wall clock is set back: it goes on noting that it
 * asks, on each store, so that the holder still hands the lease on to it.
 */
import assert from "node:assert/strict";
import { onEachStore, withWallClock } from "./each_store.ts";

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

Deno.test("stores: a process whose wall clock is set back an hour while it waits for the lease still notes that it asks, and the holder still names it", async () => {
  // Its note was written again only once its clock passed the time the note held (250 ms
  // after it): an hour on the in-process store, until the note expired (a minute) on Deno KV.
  // Meanwhile the holder, seeing the note unchanged for a second, judged that it had stopped
  // asking, and handed the lease on to no one.
  await withWallClock(async (wall) => {
    await onEachStore(async (store, name) => {
      const lease = (await store.acquire("A", 60_000))!;
      assert.equal(await store.acquire("B", 60_000, true), null, name);
      assert.equal(await store.waiting(lease), "B", `${name}: B waits`);
      wall.back += 3_600_000;
      for (let i = 0; i < 15; i++) {
        await sleep(100);
        assert.equal(await store.acquire("B", 60_000, true), null, name);
      }
      assert.equal(await store.waiting(lease), "B", `${name}: B still asks`);
      wall.back = 0;
    });
  });
});
