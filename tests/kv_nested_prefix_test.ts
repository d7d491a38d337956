/**
 * Stores whose key prefixes lie one under another's (`[...P, "journal", 3]` under `P`): each
 * keeps its own records, and none reads, sweeps, folds or hides the other's.
 */
import assert from "node:assert/strict";
import { sgd } from "../mod.ts";
import { dataParallel, kvCheckpointStore, type TrainingStore } from "../kv.ts";
import { randomBytes, withKv } from "./kv_fakes.ts";

Deno.test("kv store: a store whose prefix continues with a key name of another's keeps its records", async () => {
  // The store at ["n"] lists its versions under ["n", "versions"], its stored gradients under
  // ["n", "blobs"], its contributions under ["n", "pending"] and who waits for its lease under
  // ["n", "wants"]: a store whose prefix is one of those has its records there too. A sweep
  // removed their heads as versions or gradients of its own (their checkpoints lost: training
  // there started again from init), a fold took their contributions, and the lease was handed
  // to their processes.
  await withKv(async (kv) => {
    const outer = kvCheckpointStore(kv, ["n"]);
    const inner = ["versions", "blobs", "pending", "wants"].map((name) =>
      kvCheckpointStore(kv, ["n", name])
    );
    for (const [i, store] of inner.entries()) await store.save(randomBytes(50, i + 1), null);
    const pending = inner[2];
    assert.equal(await pending.submit({ id: "p1", base: 0, samples: 1 }, new Uint8Array(8)), null);
    const wants = inner[3];
    assert.ok(await wants.acquire("holder", 60_000));
    assert.equal(await wants.acquire("waiting", 60_000), null);

    const v1 = await outer.save(randomBytes(50, 9), null);
    await outer.save(randomBytes(50, 10), v1);
    assert.equal(await outer.sweep(), 0);
    for (const [i, store] of inner.entries()) {
      assert.deepEqual((await store.load())?.bytes, randomBytes(50, i + 1), store.name);
    }
    assert.deepEqual(await outer.pending(10), []);
    assert.equal((await pending.pending(10)).length, 1);
    const lease = await outer.acquire("outer", 60_000);
    assert.ok(lease);
    assert.equal(await outer.waiting(lease), null);
    assert.equal(await wants.waiting((await wants.acquire("holder", 60_000))!), "waiting");
  });
});

Deno.test('kv store: the records of a store whose prefix is [...P, "pending"] do not hide the contributions of the store at P', async () => {
  // Deno KV lists strings before numbers: the other store's records came first under
  // ["n", "pending"], filled the `limit` of a fold's listing and were left out after it, so a
  // fold of 64 saw none of the contributions stored at ["n"]: they were never applied.
  await withKv(async (kv) => {
    const other = kvCheckpointStore(kv, ["n", "pending"]);
    for (let i = 0; i < 70; i++) {
      assert.equal(
        await other.submit({ id: `o${i}`, base: 0, samples: 1 }, new Uint8Array(8)),
        null,
      );
    }
    const store = kvCheckpointStore(kv, ["n"]);
    const trainer = dataParallel(store, {
      optimizer: sgd({ lr: 1 }),
      init: () => ({ w: new Float32Array(2) }),
      pollMs: 5,
    });
    const { step } = await trainer.params();
    const x = new Uint8Array(Float32Array.of(1, 0).buffer);
    assert.equal(await store.submit({ id: "x", base: step, samples: 1 }, x), null);
    assert.deepEqual((await store.pending(64)).map((p) => p.id), ["x"]);
    const y = await trainer.submit({ id: "y", base: step, gradient: { w: Float32Array.of(0, 1) } });
    assert.deepEqual(y, { status: "applied", id: "y", step: 1, duplicate: false });
    assert.deepEqual(await store.request("x"), { state: "applied", step: 1 });
    assert.deepEqual([...(await trainer.params()).params.w], [-0.5, -0.5]);
    assert.equal((await other.pending(100)).length, 70, "the other store's are its own");
    await trainer.close();
  });
});

/** One step of `store` in the data-parallel mode, folding contributions of the given ids. */
async function steps(store: TrainingStore, ids: string[]): Promise<void> {
  const trainer = dataParallel(store, {
    optimizer: sgd({ lr: 1 }),
    init: () => ({ w: new Float32Array(2) }),
    pollMs: 5,
  });
  for (const id of ids) {
    const { step: base } = await trainer.params();
    const answer = await trainer.submit({ id, base, gradient: { w: Float32Array.of(1, 2) } });
    assert.equal(answer.status, "applied", id);
  }
  await trainer.close();
}

Deno.test('kv store: the journal of a store whose prefix is [...P, "journal", n] is not read as the journal of the store at P', async () => {
  // The journal is listed from [...P, "journal", from] to [...P, "journal", 2^53 - 1]: the
  // records of a store at [...P, "journal", 0] lie in that range. Its journal records were read
  // as P's (steps P never took, and ids P never applied), its other records made P's journal
  // throw a CheckpointError, and they took the places of P's within the limit.
  await withKv(async (kv) => {
    const outer = kvCheckpointStore(kv, ["n"]);
    const inner = [0, 2].map((n) => kvCheckpointStore(kv, ["n", "journal", n]));
    await steps(inner[0], ["i0", "i1", "i2"]);
    await steps(outer, ["o0", "o1"]);
    await steps(inner[1], ["j0"]);
    const ids = async (store: TrainingStore, from: number, limit: number) =>
      (await store.journal(from, limit)).flatMap((r) => r.entries.map((e) => e.id));
    assert.deepEqual(await ids(outer, 0, 100), ["o0", "o1"]);
    assert.deepEqual(await ids(outer, 0, 1), ["o0"]);
    assert.deepEqual(await ids(outer, 2, 100), ["o1"]);
    assert.deepEqual(await ids(inner[0], 0, 100), ["i0", "i1", "i2"]);
    assert.deepEqual(await ids(inner[1], 0, 100), ["j0"]);
  });
});

Deno.test('kv store: the records of a store whose prefix is [...P, "pending", n] do not take the places of the contributions of the store at P', async () => {
  // As for [...P, "pending"] (strings), but with a number: the other store's records lie among
  // P's contributions (before those stored after its number), and filled a fold's listing.
  await withKv(async (kv) => {
    const other = kvCheckpointStore(kv, ["n", "pending", 0]);
    for (let i = 0; i < 70; i++) {
      assert.equal(
        await other.submit({ id: `o${i}`, base: 0, samples: 1 }, new Uint8Array(8)),
        null,
      );
    }
    const store = kvCheckpointStore(kv, ["n"]);
    assert.equal(await store.submit({ id: "x", base: 0, samples: 1 }, new Uint8Array(8)), null);
    assert.deepEqual((await store.pending(64)).map((p) => p.id), ["x"]);
    assert.equal((await other.pending(100)).length, 70, "the other store's are its own");
  });
});
