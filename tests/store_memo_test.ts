/**
 * What a process keeps per store object: `kvCheckpointStore` gives one object per database, key
 * prefix and options, and a different one for every other prefix (numbers JSON cannot write
 * included: NaN, Infinity and -Infinity are three key parts of Deno KV, not one); `init`, asked
 * for the tensor names of a stored model, is called once per store object, also when requests
 * come at once.
 */
import assert from "node:assert/strict";
import { radam } from "../mod.ts";
import { dataParallel, kvCheckpointStore, optimisticStep } from "../kv.ts";
import { busyKv, PREFIX, withKv } from "./kv_fakes.ts";

const init = () => ({ w: new Float32Array(4), b: new Float32Array(1) });
const ones = (state: { grads: Record<string, Float32Array> }) => {
  for (const g of Object.values(state.grads)) g.fill(1);
};

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

Deno.test("store memo: requests at once on a new store object of a stored model call init once", async () => {
  await withKv(async (kv) => {
    await optimisticStep(kvCheckpointStore(kv, PREFIX), {
      optimizer: radam(),
      init,
      gradient: ones,
    });
    const slowInit = (count: { calls: number }) => async () => {
      count.calls++;
      await new Promise((r) => setTimeout(r, 20));
      return init();
    };
    // Data-parallel: 8 requests read the parameters at once in a new process.
    const dp = { calls: 0 };
    const trainer = dataParallel(kvCheckpointStore(busyKv(kv, 0), PREFIX), {
      optimizer: radam(),
      init: slowInit(dp),
    });
    await Promise.all(Array.from({ length: 8 }, () => trainer.params()));
    await trainer.close();
    assert.equal(dp.calls, 1, "init calls of the data-parallel trainer");
    // Optimistic, attempts not taking turns: 4 requests at once in another new process.
    const opt = { calls: 0 };
    const store = kvCheckpointStore(busyKv(kv, 0), PREFIX);
    const optimizer = radam();
    await Promise.all(Array.from({ length: 4 }, (_, i) =>
      optimisticStep(store, {
        optimizer,
        init: slowInit(opt),
        gradient: ones,
        serialize: false,
        id: `r${i}`,
      })));
    assert.equal(opt.calls, 1, "init calls of the optimistic steps");
    // An init that failed is asked again by the next request, not its failure kept.
    let fails = 1;
    const flaky = () => {
      if (fails-- > 0) throw new Error("weights not reachable");
      return init();
    };
    const fresh = kvCheckpointStore(busyKv(kv, 0), PREFIX);
    const options = { optimizer, init: flaky, gradient: ones };
    await assert.rejects(() => optimisticStep(fresh, options), /weights not reachable/);
    assert.equal((await optimisticStep(fresh, options)).duplicate, false);
  });
});

const gc = (globalThis as { gc?: () => void }).gc;

/** The heap in use after the finalizers of what is unreachable ran (needs `gc`). */
async function heapUsed(): Promise<number> {
  for (let i = 0; i < 3; i++) {
    await new Promise((r) => setTimeout(r, 0)); // (objects a WeakRef saw live to the job's end)
    gc!();
  }
  return Deno.memoryUsage().heapUsed;
}

Deno.test({
  name: "store memo: the stores of many prefixes, made once each and dropped, are not all kept",
  // Needs `gc` (the test task passes --v8-flags=--expose-gc); skipped without it.
  ignore: typeof gc !== "function",
  fn: async () => {
    await withKv(async (kv) => {
      const before = await heapUsed();
      // One model a user, each store made by one request: a process that lives for many.
      for (let i = 0; i < 20_000; i++) kvCheckpointStore(kv, ["users", `u${i}`, "model"]);
      const kept = (await heapUsed()) - before;
      // Each store held for good is about 4 KB (80 MB for these); a few MB of slack.
      assert.ok(kept < 16e6, `${(kept / 1e6).toFixed(1)} MB kept by 20 000 dropped stores`);
      // A store in use is still the one object (what the process keeps per store is shared).
      const store = kvCheckpointStore(kv, PREFIX);
      await heapUsed();
      assert.equal(kvCheckpointStore(kv, PREFIX), store);
    });
  },
});
