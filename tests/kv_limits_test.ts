/**
 * The Deno KV store within Deno KV's limits (a value of 64 KiB, a key of 2048 bytes, and per
 * atomic write 100 checks, 1000 mutations, 80 KiB of keys set locally and 90 KiB of all keys on
 * Deno Deploy, and 800 KiB of keys and values),
 * on in-memory databases: what the store accepts, it writes.
 */
import assert from "node:assert/strict";
import { kvCheckpointStore, MAX_META_BYTES } from "../kv.ts";
import { dispose, saveState, sgd, step } from "../mod.ts";
import { MAX_LOCAL } from "../store/_fold.ts";
import type { StepCommit } from "../store/training.ts";
import { keyBudgetKv, PREFIX, randomBytes, withKv } from "./kv_fakes.ts";
import { keyBytes, REQUEST_RECORD_BYTES } from "../kv/limits.ts";
import { serialize } from "node:v8";

/** A commit of nothing: no checkpoint, no outcomes, no lease. */
const nothing: StepCommit = {
  checkpoint: null,
  expected: null,
  step: 0,
  seq: 0,
  applied: [],
  refused: [],
  fresh: [],
};

Deno.test("kv store: metadata of up to MAX_META_BYTES of UTF-8 is kept, however V8 holds the string", async () => {
  // V8 stores a string two bytes a UTF-16 unit when it holds it so: one with a "€" in it, or
  // ASCII sliced from one. Such a string of 32 KiB of UTF-8 took 64 KiB in the head: "Value
  // too large", from a save the contract accepts, chunked or in the head.
  const metas = [
    "a".repeat(MAX_META_BYTES - 3) + "€",
    ("€" + "a".repeat(MAX_META_BYTES)).slice(1),
    "é".repeat(MAX_META_BYTES / 2),
    "a".repeat(16_000) + "€",
    "€".repeat(16_384 / 3 | 0),
  ];
  await withKv(async (kv) => {
    const store = kvCheckpointStore(kv, PREFIX);
    let version: string | null = null;
    for (const meta of metas) {
      assert.ok(new TextEncoder().encode(meta).length <= MAX_META_BYTES);
      for (const size of [100, 27_000, 43_000, 200_000]) {
        const bytes = randomBytes(size, size);
        version = await store.save(bytes, version, meta);
        const loaded = await store.load();
        assert.equal(loaded?.meta, meta);
        assert.deepEqual(loaded?.bytes, bytes);
      }
    }
  });
});

Deno.test("kv store: under a long key prefix, an old version of many chunks is removed too", async () => {
  // 998 chunk keys under a prefix of 900 bytes pass the 800 KiB of keys and values one atomic
  // write takes: every removal threw (the sweep's error swallowed), and each save left its
  // predecessor's chunks in the database for good.
  await withKv(async (kv) => {
    const prefix = ["p".repeat(900)];
    const store = kvCheckpointStore(kv, prefix, { chunkBytes: 100 });
    const v1 = await store.save(randomBytes(150_000, 1), null); // 1500 chunks
    await store.save(randomBytes(150_000, 2), v1);
    assert.equal(await store.sweep(), 0);
    let chunks = 0;
    for await (const _ of kv.list({ prefix: [...prefix, "chunks"] })) chunks++;
    assert.equal(chunks, 1500, "only the current version's chunks remain");
    assert.deepEqual((await store.load())?.bytes, randomBytes(150_000, 2));
  });
});

Deno.test("kv store: a model name longer than every head can hold beside the rest is a RangeError naming the option", async () => {
  await withKv(async (kv) => {
    // A name of 70 000 characters made every save throw Deno KV's "Value too large"; one of
    // 2000 "€" only the saves whose checkpoint fits in the head.
    for (const model of ["m".repeat(70_000), "€".repeat(1025)]) {
      assert.throws(
        () => kvCheckpointStore(kv, PREFIX, { model }),
        (e: Error) =>
          e instanceof RangeError &&
          /Option model must be at most 1024 characters \(UTF-16 units\), got \d+/.test(e.message),
      );
    }
    // The longest name, held two bytes a unit, fits beside the largest checkpoint a head holds
    // and the ids of the 64 versions it keeps.
    const store = kvCheckpointStore(kv, PREFIX, { model: "€".repeat(1024) });
    let version: string | null = null;
    for (let i = 0; i < 66; i++) {
      version = await store.save(randomBytes(60_000, i), version);
      assert.notEqual(version, null);
    }
    const meta = "ū".repeat(16_384); // metadata the head holds as a string, two bytes a unit
    version = await store.save(randomBytes(60_000 - 2 * meta.length, 1), version, meta);
    assert.equal((await store.load())?.meta, meta);
  });
});

/**
 * On `kv` under `prefix`, a fold's largest commit: `store.maxFold` contributions of the longest
 * ids (64 UTF-16 units held two bytes a unit), `fresh` of them this process's own (each id
 * checked), the others stored (each stored form deleted); `refuse`, each with a reason of the
 * longest kept, else applied. The store, and whether the commit was made.
 */
async function largestCommit(kv: Deno.Kv, prefix: Deno.KvKey, fresh: number, refuse = false) {
  const store = kvCheckpointStore(kv, prefix, { chunkBytes: 64 });
  let state = await sgd({ backend: "js" }).init({ w: new Float32Array(64) });
  const first = await store.commit({ ...nothing, checkpoint: await saveState(state), step: 0 });
  const id = (i: number) => `${i}`.padStart(4, "0") + "€".repeat(60); // 64 UTF-16 units
  const stored = store.maxFold! - fresh;
  for (let i = 0; i < stored; i++) {
    assert.equal(
      await store.submit({ id: id(i), base: 0, samples: 1 }, randomBytes(256, i)),
      null,
    );
  }
  const pending = await store.pending(stored);
  const local = Array.from(
    { length: fresh },
    (_, i) => ({ id: id(stored + i), base: 0, samples: 1 }),
  );
  const lease = await store.acquire("holder", 60_000, false);
  state = step(state);
  const bytes = await saveState(state);
  assert.ok(bytes.length > 64); // in chunks: the version record is checked too
  const reason = "€".repeat(600); // cut to the longest kept
  const done = await store.commit({
    ...nothing,
    checkpoint: bytes,
    expected: first!.version,
    step: 1,
    seq: 1,
    lease: lease!,
    next: { token: "holder", ms: 60_000 },
    applied: refuse ? [] : [...pending, ...local],
    refused: refuse ? pending.map((p) => ({ id: p.id, reason, ref: p.ref })) : [],
    fresh: refuse ? [] : local.map((l) => l.id),
  });
  dispose(state);
  if (done !== null) {
    assert.equal(done.lease?.token, "holder");
    for (let i = 0; i < (refuse ? stored : store.maxFold!); i++) {
      assert.equal((await store.request(id(i)))?.state, refuse ? "refused" : "applied");
    }
    assert.deepEqual(await store.pending(1), []);
  }
  return { store, done: done !== null };
}

Deno.test("kv store: a fold's largest commit (its own contributions' fresh ids, the rest stored) stays within Deno KV's 100 checks", async () => {
  // Each fresh id is a check that its request is still unknown, beside those of the head, the
  // version record and the lease: a fold that took more of its own than MAX_LOCAL, or a commit
  // that checked more, failed with Deno KV's "Too many checks", every fold of a busy process.
  await withKv(async (kv) => {
    assert.ok((await largestCommit(kv, PREFIX, MAX_LOCAL)).done);
  });
});

Deno.test("kv store: a fold's largest commit keeps all its keys, checked, set and deleted, within Deno Deploy's 90 KiB, under any prefix", async () => {
  // Its budget counted only the keys set (the request records), as the Deno runtime does: under
  // the longest prefix a fold of 37 stored contributions also deleted 37 keys of 2048 bytes,
  // 150 KiB of keys in all, which Deno Deploy refuses (every fold of a full queue).
  for (const prefix of [PREFIX, ["p".repeat(500)], ["p".repeat(1796)]]) {
    for (const fresh of [0, 1]) {
      await withKv(async (kv) => {
        const { store, done } = await largestCommit(keyBudgetKv(kv), prefix, fresh);
        assert.ok(done, `${store.maxFold} under ${keyBytes(prefix)} bytes, ${fresh} fresh`);
      });
    }
  }
});

Deno.test("kv store: a fold's largest commit of refusals, each with the longest reason kept, stays within the 800 KiB of an atomic write", async () => {
  // 1114 bytes a record at most (REQUEST_RECORD_BYTES), beside its keys, the head and the
  // journal record: within the bound by arithmetic (see foldLimit), and so written.
  const reason = "€".repeat(512);
  const record = { state: "refused", step: 2 ** 53, reason, by: crypto.randomUUID() };
  assert.ok(serialize(record).length <= REQUEST_RECORD_BYTES, `${serialize(record).length}`);
  for (const prefix of [["dp"], ["p".repeat(1796)]]) {
    await withKv(async (kv) => {
      assert.ok((await largestCommit(keyBudgetKv(kv), prefix, 0, true)).done);
    });
  }
});

Deno.test("kv store: under a key prefix of 60 bytes, a version of many chunks is removed in writes of at most 90 KiB of keys", async () => {
  // 998 chunk keys a removal's write, 116 bytes each: 113 KiB of keys deleted, which Deno Deploy
  // refuses; each removal failed there, and the old chunks stayed for good.
  await withKv(async (kv) => {
    const prefix = ["p".repeat(58)];
    const store = kvCheckpointStore(keyBudgetKv(kv), prefix, { chunkBytes: 100 });
    const v1 = await store.save(randomBytes(150_000, 1), null); // 1500 chunks
    await store.save(randomBytes(150_000, 2), v1);
    assert.equal(await store.sweep(), 0);
    let chunks = 0;
    for await (const _ of kv.list({ prefix: [...prefix, "chunks"] })) chunks++;
    assert.equal(chunks, 1500, "only the current version's chunks remain");
  });
});
