/**
 * The Deno KV checkpoint store, on in-memory databases (no permissions; `--unstable-kv`).
 * Crashes are simulated by a database wrapper that fails every operation from a chosen one on,
 * as a killed process would stop.
 */
import assert from "node:assert/strict";
import fc from "fast-check";
import { adam, CheckpointError, radam, saveState, step } from "../mod.ts";
import { INLINE_BYTES } from "../kv/format.ts";
import {
  formatKvKey,
  KV_MAX_CHUNK_BYTES,
  kvCheckpointStore,
  MAX_META_BYTES,
  optimisticStep,
} from "../kv.ts";
import {
  assertOnlyCurrent,
  chunksOf,
  Crash,
  crashingKv,
  keysOf,
  PREFIX,
  randomBytes,
  rejectsWith,
  withKv,
} from "./kv_fakes.ts";

Deno.test("kv store: any size and chunk size round-trips, and only the current version is kept", async () => {
  await fc.assert(
    fc.asyncProperty(
      fc.array(fc.integer({ min: 1, max: 2500 }), { minLength: 1, maxLength: 4 }),
      fc.integer({ min: 16, max: 700 }),
      fc.option(fc.string({ maxLength: 40 }), { nil: undefined }),
      (sizes, chunkBytes, meta) =>
        withKv(async (kv) => {
          const store = kvCheckpointStore(kv, PREFIX, { chunkBytes });
          let version: string | null = null;
          for (const [i, size] of sizes.entries()) {
            const bytes = randomBytes(size, i + 1);
            version = await store.save(bytes, version, meta);
            assert.equal(typeof version, "string");
            const loaded = await store.load();
            assert.deepEqual(loaded?.bytes, bytes);
            assert.equal(loaded?.version, version);
            assert.equal(loaded?.meta, meta);
            await assertOnlyCurrent(kv, chunksOf(size, chunkBytes));
          }
        }),
    ),
    { numRuns: 40 },
  );
});

Deno.test("kv store: a full 64 KiB chunk, an empty store, and bad arguments", async () => {
  await withKv(async (kv) => {
    const store = kvCheckpointStore(kv, PREFIX);
    assert.equal(await store.load(), null);
    const bytes = randomBytes(3 * KV_MAX_CHUNK_BYTES + 5, 7);
    const v = await store.save(bytes, null);
    assert.deepEqual((await store.load())?.bytes, bytes);
    await assertOnlyCurrent(kv, 4);
    await rejectsWith(store.save(new Uint8Array(0), v), TypeError, "non-empty Uint8Array");
    await rejectsWith(store.save(bytes, 3 as unknown as string), TypeError, "Expected version");
    await rejectsWith(store.save(bytes, v, "x".repeat(40000)), RangeError, "metadata");
  });
  const kv = await Deno.openKv(":memory:");
  try {
    assert.throws(() => kvCheckpointStore({} as Deno.Kv, PREFIX), TypeError);
    assert.throws(() => kvCheckpointStore(kv, "m" as unknown as Deno.KvKey), TypeError);
    assert.throws(() => kvCheckpointStore(kv, PREFIX, { chunkBytes: 65537 }), /chunkBytes/);
    assert.throws(() => kvCheckpointStore(kv, PREFIX, { chunkBytes: 0.5 }), RangeError);
    assert.throws(() => kvCheckpointStore(kv, PREFIX, { staleAfterMs: -1 }), /staleAfterMs/);
    assert.throws(() => kvCheckpointStore(kv, PREFIX, { model: 3 as unknown as string }), /model/);
  } finally {
    kv.close();
  }
});

Deno.test("kv store: a stale version is refused, and of concurrent saves exactly one wins", async () => {
  await withKv(async (kv) => {
    const store = kvCheckpointStore(kv, PREFIX, { chunkBytes: 50 });
    const v1 = await store.save(randomBytes(300, 1), null);
    const v2 = await store.save(randomBytes(300, 2), v1);
    assert.equal(await store.save(randomBytes(300, 3), v1), null);
    assert.equal(await store.save(randomBytes(300, 3), null), null);
    assert.deepEqual((await store.load())?.bytes, randomBytes(300, 2));
    // Eight writers from the same version, interleaved: one wins, the others leave nothing.
    const results = await Promise.all(
      Array.from({ length: 8 }, (_, i) => store.save(randomBytes(260 + i, 10 + i), v2)),
    );
    const winners = results.flatMap((v, i) => v === null ? [] : [i]);
    assert.equal(winners.length, 1, `winners ${winners}`);
    const loaded = await store.load();
    assert.equal(loaded?.version, results[winners[0]]);
    assert.deepEqual(loaded?.bytes, randomBytes(260 + winners[0], 10 + winners[0]));
    await assertOnlyCurrent(kv, chunksOf(260 + winners[0], 50));
  });
});

Deno.test("kv store: a truncated chunk is an error naming it, never a partial checkpoint", async () => {
  await withKv(async (kv) => {
    const store = kvCheckpointStore(kv, PREFIX, { chunkBytes: 64 });
    await store.save(randomBytes(200, 1), null);
    const { id } = (await kv.get<{ id: string }>([...PREFIX, "head"])).value!;
    const key = [...PREFIX, "chunks", id, 1];
    const chunk = (await kv.get<Uint8Array>(key)).value!;
    await kv.set(key, chunk.subarray(0, 10));
    await rejectsWith(store.load(), CheckpointError, formatKvKey(key), "truncated");
    // The last chunk too, and a chunk that is not bytes.
    await kv.set(key, chunk);
    const last = [...PREFIX, "chunks", id, 3];
    await kv.set(last, new Uint8Array(7));
    await rejectsWith(store.load(), CheckpointError, formatKvKey(last), "holds 7 bytes");
    await kv.set(last, "text");
    await rejectsWith(store.load(), CheckpointError, formatKvKey(last), "not bytes");
    // Same length, other bytes: the digest says so.
    await kv.set(last, new Uint8Array(8));
    await rejectsWith(store.load(), CheckpointError, "SHA-256", formatKvKey([...PREFIX, "head"]));
    // An extra chunk past the end.
    await kv.set(last, randomBytes(200, 1).subarray(192));
    const extra = [...PREFIX, "chunks", id, 4];
    await kv.set(extra, new Uint8Array(3));
    await rejectsWith(store.load(), CheckpointError, formatKvKey(extra), "past the 4 chunks");
    await kv.delete(extra);
    assert.deepEqual((await store.load())?.bytes, randomBytes(200, 1), "repaired, it loads");
  });
});

Deno.test("kv store: a head pointing at missing chunks is an error naming the chunk", async () => {
  await withKv(async (kv) => {
    const store = kvCheckpointStore(kv, PREFIX, { chunkBytes: 64 });
    await store.save(randomBytes(200, 1), null);
    const headKey = [...PREFIX, "head"];
    const head = (await kv.get<Record<string, unknown>>(headKey)).value!;
    const missing = [...PREFIX, "chunks", head.id as string, 2];
    await kv.delete(missing);
    await rejectsWith(store.load(), CheckpointError, formatKvKey(missing), "missing");
    const first = [...PREFIX, "chunks", head.id as string, 0];
    await kv.delete(first);
    await rejectsWith(store.load(), CheckpointError, formatKvKey(first), "missing");
    // A head pointing at a version that was never written.
    const other = crypto.randomUUID();
    await kv.set(headKey, { ...head, id: other, recent: [other] });
    await rejectsWith(store.load(), CheckpointError, formatKvKey([...PREFIX, "chunks", other, 0]));
    // A save over a broken head still works (it checks the head's versionstamp only).
    const entry = await kv.get(headKey);
    await store.save(randomBytes(90, 5), entry.versionstamp);
    assert.deepEqual((await store.load())?.bytes, randomBytes(90, 5));
  });
});

Deno.test("kv store: hostile head records are errors naming the head key", async () => {
  await withKv(async (kv) => {
    const store = kvCheckpointStore(kv, PREFIX, { chunkBytes: 64 });
    await store.save(randomBytes(200, 1), null);
    const headKey = [...PREFIX, "head"];
    const head = (await kv.get<Record<string, unknown>>(headKey)).value!;
    const bad: [unknown, string][] = [
      [42, "is not a head record"],
      [new Uint8Array(4), "is not a head record"],
      [null, "is not a head record"],
      [{ ...head, format: "other" }, "format"],
      [{ ...head, formatVersion: 3 }, "format version"],
      [{ ...head, formatVersion: 2 }, "layout"], // version 2 without its fields
      [{ ...head, formatVersion: 2, layout: "params-first", step: -1 }, "step"],
      [{ ...head, id: "../x" }, "version id"],
      [{ ...head, chunkBytes: 70000 }, "chunk size"],
      [{ ...head, chunkBytes: 0 }, "chunk size"],
      [{ ...head, byteLength: -1 }, "byte length"],
      [{ ...head, byteLength: 1e300 }, "byte length"],
      [{ ...head, chunks: 2 }, "chunks"],
      [{ ...head, byteLength: 2000 }, "chunks"],
      [{ ...head, sha256: "00" }, "SHA-256"],
      [{ ...head, model: 5 }, "model"],
      [{ ...head, meta: {} }, "metadata"],
      [{ ...head, meta: new Uint8Array([0xc3]) }, "not UTF-8"],
      [{ ...head, meta: new Uint8Array(MAX_META_BYTES + 1) }, "metadata"],
      [{ ...head, data: new Uint8Array(200) }, "data as well as chunks"],
      [{ ...head, chunks: 0 }, "holds no 200 bytes"],
      [{ ...head, chunks: 0, data: new Uint8Array(199) }, "holds no 200 bytes"],
      [{ ...head, chunks: 0, data: "x".repeat(200) }, "holds no 200 bytes"],
      [{ ...head, chunks: 0, data: new Uint8Array(200) }, "SHA-256"],
      [{ ...head, recent: [] }, "recent versions"],
      [{ ...head, recent: [crypto.randomUUID()] }, "recent versions"],
      [{ ...head, recent: "x" }, "recent versions"],
    ];
    for (const [value, what] of bad) {
      await kv.set(headKey, value);
      await rejectsWith(store.load(), CheckpointError, formatKvKey(headKey), what);
      assert.equal(await store.sweep(), 0, "a damaged head makes sweep remove nothing");
    }
    await kv.set(headKey, head);
    assert.deepEqual((await store.load())?.bytes, randomBytes(200, 1));
  });
});

Deno.test("kv store: a checkpoint of another model is refused naming the key", async () => {
  await withKv(async (kv) => {
    const a = kvCheckpointStore(kv, PREFIX, { model: "a" });
    await a.save(randomBytes(100, 1), null);
    const b = kvCheckpointStore(kv, PREFIX, { model: "b" });
    await rejectsWith(b.load(), CheckpointError, formatKvKey([...PREFIX, "head"]), '"a"', '"b"');
    assert.deepEqual((await a.load())?.bytes, randomBytes(100, 1));
    // Without a model name nothing is checked.
    assert.deepEqual((await kvCheckpointStore(kv, PREFIX).load())?.bytes, randomBytes(100, 1));

    // In the optimistic step: another optimizer, other tensors, or bytes that are no checkpoint.
    const store = kvCheckpointStore(kv, ["models", "n"]);
    const state = step(await adam().init({ w: new Float32Array(3) }), { w: new Float32Array(3) });
    const version = await store.save(await saveState(state), null);
    const options = {
      optimizer: radam(),
      init: () => ({ w: new Float32Array(3) }),
      gradient: () => 0,
    };
    await rejectsWith(
      optimisticStep(store, options),
      CheckpointError,
      store.name,
      "another model",
      '"adam"',
    );
    const v2 = await store.save(
      await saveState(await radam().init({ v: new Float32Array(3) })),
      version,
    );
    await rejectsWith(
      optimisticStep(store, { ...options, tensors: { w: 3 } }),
      CheckpointError,
      store.name,
      'tensor "v"',
    );
    const v3 = await store.save(
      await saveState(await radam().init({ w: new Float32Array(4) })),
      v2,
    );
    await rejectsWith(
      optimisticStep(store, { ...options, tensors: { w: 3 } }),
      CheckpointError,
      store.name,
      "4 values, expected 3",
    );
    await rejectsWith(
      optimisticStep(store, { ...options, tensors: { w: 4, b: 1 } }),
      CheckpointError,
      store.name,
      'lacks the tensor "b"',
    );
    await store.save(randomBytes(500, 3), v3);
    await rejectsWith(optimisticStep(store, options), CheckpointError, store.name);
    assert.deepEqual((await store.load())?.bytes, randomBytes(500, 3), "nothing was saved");
  });
});

Deno.test("kv store: a crash between the chunk writes and the head write leaves the previous checkpoint current", async () => {
  await withKv(async (kv) => {
    const old = randomBytes(1000, 1);
    const v1 = await kvCheckpointStore(kv, PREFIX, { chunkBytes: 40 }).save(old, null);
    // 25 chunks of 40 bytes for the new one: 3 writes (the first with the version's record),
    // then the head.
    for (const allowed of [0, 1, 2, 3]) {
      const crashing = kvCheckpointStore(crashingKv(kv, allowed), PREFIX, { chunkBytes: 40 });
      await assert.rejects(crashing.save(randomBytes(1000, 2), v1), Crash);
      // The restarted process sees the old checkpoint, bit for bit, under its version.
      const restarted = kvCheckpointStore(kv, PREFIX, { chunkBytes: 40 });
      const loaded = await restarted.load();
      assert.deepEqual(loaded?.bytes, old);
      assert.equal(loaded?.version, v1);
    }
    // The garbage of unfinished saves is kept while they might be in progress…
    const keys = await keysOf(kv);
    assert.ok(keys.length > 2 + 25, `garbage: ${keys.length} keys`);
    const patient = kvCheckpointStore(kv, PREFIX, { chunkBytes: 40 });
    assert.equal(await patient.sweep(), 0);
    // …and removed by a later save once they are older than staleAfterMs.
    const later = kvCheckpointStore(kv, PREFIX, { chunkBytes: 40, staleAfterMs: 0 });
    await later.save(randomBytes(120, 3), v1);
    await assertOnlyCurrent(kv, 3);
  });
});

Deno.test("kv store: a crash after the head write leaves the new checkpoint current and garbage a later save removes", async () => {
  await withKv(async (kv) => {
    const store = kvCheckpointStore(kv, PREFIX, { chunkBytes: 40 });
    const v1 = await store.save(randomBytes(1000, 1), null);
    // 3 chunk writes, the head: then the crash, in the removal of the old version.
    for (const round of [0, 1, 2]) {
      const version = (await store.load())!.version;
      const bytes = randomBytes(1000, 10 + round);
      const crashing = kvCheckpointStore(crashingKv(kv, 4), PREFIX, { chunkBytes: 40 });
      const saved = await crashing.save(bytes, version);
      assert.equal(typeof saved, "string", "the save is done once the head is written");
      const loaded = await store.load();
      assert.deepEqual(loaded?.bytes, bytes);
      assert.equal(loaded?.version, saved);
      assert.notEqual(saved, v1);
    }
    assert.equal((await keysOf(kv)).length, 1 + 4 * 26, "three old versions left");
    // Committed versions that are no longer current are removed whatever their age.
    assert.equal(await store.sweep(), 3);
    await assertOnlyCurrent(kv, 25);
  });
});

Deno.test("kv store: a save slower than staleAfterMs is refused, never made current", async () => {
  await withKv(async (kv) => {
    const store = kvCheckpointStore(kv, PREFIX, { chunkBytes: 40 });
    const v1 = await store.save(randomBytes(1000, 1), null);
    let release!: () => void;
    const held = new Promise<void>((resolve) => release = resolve);
    let reached!: () => void;
    const atChunks = new Promise<void>((resolve) => reached = resolve);
    // Pauses before its third chunk write.
    const slowKv = crashingKv(kv, Infinity, async (write) => {
      if (write === 2) {
        reached();
        await held;
      }
    });
    const slow = kvCheckpointStore(slowKv, PREFIX, { chunkBytes: 40 }).save(
      randomBytes(1000, 2),
      v1,
    );
    await atChunks;
    assert.equal(await kvCheckpointStore(kv, PREFIX, { staleAfterMs: 0 }).sweep(), 1);
    release();
    assert.equal(await slow, null);
    assert.deepEqual((await store.load())?.bytes, randomBytes(1000, 1));
    await assertOnlyCurrent(kv, 25);
  });
});

Deno.test("kv store: a version of more chunks than one atomic operation deletes is removed in steps", async () => {
  await withKv(async (kv) => {
    const store = kvCheckpointStore(kv, PREFIX, { chunkBytes: 16 });
    const big = randomBytes(16 * 2100 + 3, 1); // 2101 chunks: three deletes
    const v1 = await store.save(big, null);
    assert.deepEqual((await store.load())?.bytes, big);
    const v2 = await store.save(randomBytes(100, 2), v1);
    await assertOnlyCurrent(kv, 7);
    // A crash while removing one: what is left is marked dead, and a later sweep removes it.
    const v3 = await store.save(big, v2);
    const crashing = kvCheckpointStore(crashingKv(kv, 3), PREFIX, { chunkBytes: 16 });
    // Its writes: 7 chunks (0), the head (1), the removal of v3's first 998 chunks (2), crash.
    assert.equal(typeof await crashing.save(randomBytes(100, 3), v3), "string");
    const records: string[] = [];
    for await (const e of kv.list<{ state: string }>({ prefix: [...PREFIX, "versions"] })) {
      records.push(e.value.state);
    }
    assert.deepEqual(records.sort(), ["committed", "dead"]);
    assert.deepEqual((await store.load())?.bytes, randomBytes(100, 3));
    assert.equal(await store.sweep(), 1);
    await assertOnlyCurrent(kv, 7);
  });
});

Deno.test("kv store: save and submit keep the bytes given at the call, whatever the caller does with its array after", async () => {
  // The chunks were written from the caller's array over several writes, and the head's digest
  // taken after them: an array refilled meanwhile (save not awaited yet) made a head whose
  // chunks do not match its digest, committed, and every load after it threw. The in-process
  // store keeps a copy; so does this one now (shared memory too, which Deno KV's values and
  // SubtleCrypto refuse).
  await withKv(async (kv) => {
    const bytes = randomBytes(30 * 64 + 5, 1); // 31 chunks: four chunk writes
    let array: Uint8Array = bytes.slice();
    const paused = crashingKv(kv, Infinity, (write) => {
      if (write === 1) array.fill(0); // after the first chunk write
      return Promise.resolve();
    });
    const store = kvCheckpointStore(paused, PREFIX, { chunkBytes: 64 });
    const version = await store.save(array, null);
    assert.equal(typeof version, "string");
    assert.deepEqual((await store.load())?.bytes, bytes);
    array = new Uint8Array(new SharedArrayBuffer(200));
    array.set(bytes.subarray(0, 200));
    await store.save(array, version);
    assert.deepEqual((await store.load())?.bytes, bytes.subarray(0, 200));
    // A stored contribution's gradient likewise (else refused as damaged when folded).
    const gradient = randomBytes(70_000, 2); // past the pending record: in chunks
    array = gradient.slice();
    const submitted = store.submit({ id: "g", base: 0, samples: 1 }, array);
    array.fill(0);
    assert.equal(await submitted, null);
    const [pending] = await store.pending(1);
    const stored = await store.gradient(pending);
    assert.equal(stored.length, gradient.length);
    assert.equal(stored.findIndex((b, i) => b !== gradient[i]), -1, "the bytes given");
  });
});

Deno.test("kv store: under random interleavings and crashes, load gives the last committed checkpoint", async () => {
  await fc.assert(
    fc.asyncProperty(
      fc.array(
        fc.record({
          writers: fc.integer({ min: 1, max: 4 }),
          crashAt: fc.array(fc.option(fc.integer({ min: 0, max: 12 }), { nil: undefined }), {
            minLength: 4,
            maxLength: 4,
          }),
          size: fc.integer({ min: 1, max: 900 }),
        }),
        { minLength: 1, maxLength: 6 },
      ),
      (rounds) =>
        withKv(async (kv) => {
          const opts = { chunkBytes: 64, staleAfterMs: 0 };
          let committed: Uint8Array | null = null;
          let seed = 1;
          for (const round of rounds) {
            const version = (await kvCheckpointStore(kv, PREFIX, opts).load())?.version ?? null;
            const attempts = Array.from({ length: round.writers }, (_, w) => {
              const bytes = randomBytes(round.size + w, seed++);
              const crash = round.crashAt[w];
              const db = crash === undefined ? kv : crashingKv(kv, crash);
              return kvCheckpointStore(db, PREFIX, opts).save(bytes, version).then(
                (v) => ({ v, bytes }),
                (e) => {
                  if (!(e instanceof Crash)) throw e;
                  return { v: null, bytes };
                },
              );
            });
            const results = await Promise.all(attempts);
            const winners = results.filter((r) => r.v !== null);
            assert.ok(winners.length <= 1, "at most one save from one version");
            if (winners.length === 1) committed = winners[0].bytes;
            const loaded = await kvCheckpointStore(kv, PREFIX, opts).load();
            assert.deepEqual(loaded?.bytes ?? null, committed);
            if (winners.length === 1) assert.equal(loaded?.version, winners[0].v);
          }
          if (committed !== null) {
            const store = kvCheckpointStore(kv, PREFIX, opts);
            await store.sweep();
            await assertOnlyCurrent(kv, chunksOf(committed.length, 64));
          }
        }),
    ),
    { numRuns: 60 },
  );
});

/** A deterministic gradient for request `i`. */

Deno.test("kv store: a contribution stored by an earlier version of the library, keyed by time, is still listed and folded", async () => {
  // Stored contributions are keyed by base step, id and submission now, where an earlier
  // version keyed them by the storing process's millisecond and id: those waiting when a
  // process is redeployed are folded too, not left waiting for good.
  await withKv(async (kv) => {
    const store = kvCheckpointStore(kv, PREFIX);
    assert.equal(await store.submit({ id: "new", base: 1, samples: 1 }, new Uint8Array(8)), null);
    assert.equal(await store.submit({ id: "old", base: 0, samples: 2 }, new Uint8Array(8)), null);
    const [stored] = (await store.pending(10)).filter((p) => p.id === "old");
    const { key, value } = stored.ref as { key: Deno.KvKey; value: unknown };
    const legacy = [...PREFIX, "pending", 1_700_000_000_000, "old"];
    await kv.atomic().delete(key).set(legacy, value).commit();
    const listed = await store.pending(10);
    // In its place by base step (0), before "new" (1).
    assert.deepEqual(listed.map((p) => [p.id, p.samples]), [["old", 2], ["new", 1]]);
    const done = await store.commit({
      checkpoint: null,
      expected: null,
      step: 0,
      seq: 0,
      applied: [],
      refused: listed.map(({ id, ref }) => ({ id, reason: "stale", ref })),
      fresh: [],
    });
    assert.notEqual(done, null);
    assert.deepEqual(await store.pending(10), []);
    assert.equal((await kv.get(legacy)).versionstamp, null);
    assert.equal((await store.request("old"))?.state, "refused");
  });
});

Deno.test("kv store: contributions stored by an earlier version of the library take their place by base step among the new ones, where they listed after every new one", async () => {
  // Under sustained load (more new contributions waiting than a fold takes), those keyed by the
  // storing process's millisecond (a number far past any base step) were never listed, and
  // waited until refused as stale: as during a rolling upgrade.
  // Also under a prefix that holds a bigint (and bytes), which JSON cannot write.
  for (const prefix of [PREFIX, [...PREFIX, 7n, new Uint8Array([1, 2])]]) {
    await withKv(async (kv) => {
      const store = kvCheckpointStore(kv, prefix);
      const submit = (id: string, base: number) =>
        store.submit({ id, base, samples: 1 }, new Uint8Array(8));
      for (let base = 0; base < 6; base++) assert.equal(await submit(`n${base}`, base), null);
      // Re-keyed as an earlier version wrote them: "late" stored before "old" by its clock.
      for (
        const [id, base, at] of [["old", 0, 1_700_000_000_000], ["late", 4, 1_600_000_000_000]]
      ) {
        assert.equal(await submit(id as string, base as number), null);
        const [stored] = (await store.pending(100)).filter((p) => p.id === id);
        const { key, value } = stored.ref as { key: Deno.KvKey; value: unknown };
        await kv.atomic().delete(key).set([...prefix, "pending", at, id as string], value).commit();
      }
      const ids = async (limit: number) => (await store.pending(limit)).map((p) => p.id);
      assert.deepEqual(await ids(3), ["n0", "old", "n1"]);
      assert.deepEqual(await ids(100), ["n0", "old", "n1", "n2", "n3", "late", "n4", "n5"]);
      for (let limit = 1; limit <= 8; limit++) {
        assert.deepEqual(await ids(limit), (await ids(100)).slice(0, limit), `limit ${limit}`);
      }
    });
  }
});

/**
 * Runs `fn` with the monotonic clock (`performance.now`, on which a sweep judges an unfinished
 * write stale) answering `clock.now`, a time the test moves.
 */
async function withMonotonic<T>(clock: { now: number }, fn: () => Promise<T>): Promise<T> {
  Object.defineProperty(performance, "now", { value: () => clock.now, configurable: true });
  try {
    return await fn();
  } finally {
    delete (performance as { now?: unknown }).now;
  }
}

/**
 * Runs `fn` with `Date.now` `skewMs` off this process's clock, until `until` (default: `fn`'s
 * promise) settles, as a process whose clock is off would run it.
 */
async function skewed<T>(
  skewMs: number,
  fn: () => Promise<T>,
  until?: Promise<unknown>,
): Promise<{ running: Promise<T> }> {
  const real = Date.now;
  Date.now = () => real() + skewMs;
  const running = fn();
  try {
    await (until ?? running);
  } finally {
    Date.now = real;
  }
  return { running };
}

Deno.test("kv store: a sweep judges an unfinished save stale on its own clock, not by the writer's, so a save of a process whose clock is behind is not refused", async () => {
  // A sweep compared the time a writer recorded, on its clock, with its own: every save in
  // progress of a process whose clock was behind by more than staleAfterMs was removed (and so
  // refused) by the next sweep of another process, whatever its own age.
  await withKv(async (kv) => {
    const store = kvCheckpointStore(kv, PREFIX, { chunkBytes: 40 });
    const v1 = await store.save(randomBytes(1000, 1), null);
    let release!: () => void;
    const held = new Promise<void>((resolve) => release = resolve);
    let reached!: () => void;
    const atChunks = new Promise<void>((resolve) => reached = resolve);
    // Pauses before its third chunk write: its version record is written.
    const slowKv = crashingKv(kv, Infinity, async (write) => {
      if (write === 2) {
        reached();
        await held;
      }
    });
    const writer = kvCheckpointStore(slowKv, PREFIX, { chunkBytes: 40 });
    const clock = { now: 1000 };
    await withMonotonic(clock, async () => {
      // Its version record is written on its clock, 30 s behind.
      const { running: slow } = await skewed(
        -30_000,
        () => writer.save(randomBytes(1000, 2), v1),
        atChunks,
      );
      const sweeper = kvCheckpointStore(kv, PREFIX, { staleAfterMs: 10_000 });
      assert.equal(await sweeper.sweep(), 0, "first seen now");
      clock.now += 9_999;
      assert.equal(await sweeper.sweep(), 0, "seen for less than staleAfterMs");
      clock.now += 1;
      // Seen unchanged for staleAfterMs: removed; the save is refused, never made current.
      assert.equal(await sweeper.sweep(), 1);
      release();
      assert.equal(await slow, null);
    });
    assert.deepEqual((await store.load())?.bytes, randomBytes(1000, 1));
    await assertOnlyCurrent(kv, 25);
  });
});

Deno.test("kv store: the garbage of a crashed save or gradient write is removed once a sweep has seen it for staleAfterMs, or at once when created long before by its clock", async () => {
  await withKv(async (kv) => {
    const v1 = await kvCheckpointStore(kv, PREFIX, { chunkBytes: 40 }).save(
      randomBytes(1000, 1),
      null,
    );
    const clock = { now: 0 };
    await withMonotonic(clock, async () => {
      for (const skew of [0, -(10_000 + 60_001)]) {
        // A save that crashed after its first chunk write, and a gradient's storing after it.
        const crashing = kvCheckpointStore(crashingKv(kv, 1), PREFIX, { chunkBytes: 40 });
        await skewed(skew, () => assert.rejects(crashing.save(randomBytes(1000, 2), v1), Crash));
        const storing = kvCheckpointStore(crashingKv(kv, 1), PREFIX, { chunkBytes: 40 });
        const info = { id: `g${skew}`, base: 0, samples: 1 };
        const gradient = randomBytes(INLINE_BYTES + 40, 3);
        await skewed(skew, () => assert.rejects(storing.submit(info, gradient), Crash));
        const sweeper = kvCheckpointStore(kv, PREFIX, { chunkBytes: 40, staleAfterMs: 10_000 });
        if (skew === 0) {
          assert.equal(await sweeper.sweep(), 0, "first seen now");
          clock.now += 10_000;
        }
        assert.equal(await sweeper.sweep(), 2, `skew ${skew}`);
        await assertOnlyCurrent(kv, 25);
      }
    });
  });
});
