/**
 * The Deno KV store when the database answers "database is locked" after a write went through
 * (as a file shared by processes may): the first write of a checkpoint's or a gradient's chunks,
 * which creates their record, is found done, not taken for a sweep's removal of it.
 */
import assert from "node:assert/strict";
import { INLINE_BYTES } from "../kv/format.ts";
import { kvCheckpointStore } from "../kv.ts";
import { assertOnlyCurrent, busyAfterKv, PREFIX, randomBytes, withKv } from "./kv_fakes.ts";

Deno.test("kv store: a save whose first chunk write was answered busy after it went through is made current, not refused as a conflict", async () => {
  // The write was tried again, and its check (no record yet) refused: the save returned null,
  // "another save came first", on an empty store that no one else wrote.
  await withKv(async (kv) => {
    const bytes = randomBytes(1000, 1);
    const store = kvCheckpointStore(busyAfterKv(kv, [0]), PREFIX, { chunkBytes: 64 });
    const version = await store.save(bytes, null);
    assert.notEqual(version, null, "made current");
    const loaded = await kvCheckpointStore(kv, PREFIX, { chunkBytes: 64 }).load();
    assert.deepEqual(loaded?.bytes, bytes);
    assert.equal(loaded?.version, version);
    await assertOnlyCurrent(kv, Math.ceil(1000 / 64));
  });
});

Deno.test("kv store: a gradient whose first chunk write was answered busy after it went through is stored, not refused as swept", async () => {
  // The submit threw "its gradient was swept as garbage while it was written".
  await withKv(async (kv) => {
    const store = kvCheckpointStore(busyAfterKv(kv, [0]), PREFIX);
    const gradient = randomBytes(INLINE_BYTES + 40, 2);
    assert.equal(await store.submit({ id: "g", base: 0, samples: 1 }, gradient), null, "stored");
    assert.deepEqual(await store.request("g"), { state: "pending" });
    const [pending] = await store.pending(10);
    assert.equal(pending.id, "g");
    assert.deepEqual(await store.gradient(pending), gradient);
  });
});
