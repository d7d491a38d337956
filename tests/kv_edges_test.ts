/**
 * Edge cases of the training records, on Deno KV and in one process: a contribution's base step
 * of −0 (a key of its own to Deno KV).
 */
import assert from "node:assert/strict";
import { radam } from "../mod.ts";
import {
  dataParallel,
  kvCheckpointStore,
  memoryCheckpointStore,
  type TrainingStore,
} from "../kv.ts";
import { firstCommit } from "../store/_conformance_calls.ts";
import { PREFIX, withKv } from "./kv_fakes.ts";

const init = () => ({ w: new Float32Array(2) });
const optimizer = radam({ lr: 0.1 });

/** Each store of the library, on a fresh database: `run` with it. */
async function onEachStore(run: (store: TrainingStore, name: string) => Promise<void>) {
  await withKv((kv) => run(kvCheckpointStore(kv, PREFIX), "kv"));
  await run(memoryCheckpointStore(), "memory");
}

Deno.test("training stores: a contribution stored with a base of −0 is one of base 0, listed in the fold order among those", async () => {
  await onEachStore(async (store, name) => {
    await firstCommit(store);
    // Keyed by −0, "z" listed before "a": a fold of one took it, where the order says "a".
    assert.equal(await store.submit({ id: "z", base: -0, samples: 1 }, new Uint8Array(8)), null);
    assert.equal(await store.submit({ id: "a", base: 0, samples: 1 }, new Uint8Array(8)), null);
    const [first] = await store.pending(1);
    assert.equal(first.id, "a", `${name}: the lowest base, then by id`);
    const all = await store.pending(2);
    assert.deepEqual(all.map((p) => p.id), ["a", "z"]);
    assert.ok(all.every((p) => Object.is(p.base, 0)), `${name}: base 0, not −0`);
  });
  await withKv(async (kv) => {
    const store = kvCheckpointStore(kv, PREFIX);
    await firstCommit(store);
    await store.submit({ id: "z", base: -0, samples: 1 }, new Uint8Array(8));
    for await (const e of kv.list({ prefix: [...PREFIX, "pending"] })) {
      assert.ok(Object.is(e.key[PREFIX.length + 1], 0), `key ${String(e.key)}`);
    }
  });
});

Deno.test("data parallel: a contribution submitted with a base of −0 is applied and journaled as one of base 0", async () => {
  await onEachStore(async (store, name) => {
    const trainer = dataParallel(store, { optimizer, init });
    await trainer.params();
    const answer = await trainer.submit({
      id: "n",
      base: -0,
      gradient: { w: new Float32Array(2) },
    });
    assert.equal(answer.status, "applied");
    const entries = (await store.journal(0, 10)).flatMap((r) => r.entries);
    assert.equal(entries.length, 1);
    assert.ok(Object.is(entries[0].base, 0), `${name}: journaled as ${entries[0].base}`);
    await trainer.close();
  });
});
