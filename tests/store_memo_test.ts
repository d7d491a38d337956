/**
 * What a process keeps per store object: `kvCheckpointStore` gives one object per database, key
 * prefix and options, and a different one for every other prefix (numbers JSON cannot write
 * included: NaN, Infinity and -Infinity are three key parts of Deno KV, not one).
 */
import assert from "node:assert/strict";
import { kvCheckpointStore } from "../kv.ts";
import { withKv } from "./kv_fakes.ts";

Deno.test("store memo: prefixes that differ only in a number JSON cannot write are distinct stores", async () => {
  await withKv(async (kv) => {
    const parts = [NaN, Infinity, -Infinity, 0, -0];
    const stores = parts.map((part) => kvCheckpointStore(kv, ["models", part]));
    for (const [i, store] of stores.entries()) {
      assert.ok(Object.is(store.key[1], parts[i]), `${store.name}: key ${String(store.key[1])}`);
    }
    assert.equal(new Set(stores).size, parts.length);
    // What one saves, the others do not hold.
    const version = await stores[1].save(new Uint8Array([1, 2, 3]), null);
    assert.equal(typeof version, "string");
    for (const [i, store] of stores.entries()) {
      assert.equal(await store.load() === null, i !== 1, store.name);
    }
    // The same prefix again is the same object.
    assert.equal(kvCheckpointStore(kv, ["models", NaN]), stores[0]);
  });
});
