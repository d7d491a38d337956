/**
 * The Deno KV store when the database answers "database is locked" after a write went through
 * (as a file shared by processes may): the first write of a checkpoint's or a gradient's chunks,
 * which creates their record, is found done, not taken for a sweep's removal of it; a waiting
 * note is written again.
 */
import assert from "node:assert/strict";
import { INLINE_BYTES } from "../kv/format.ts";
import { kvCheckpointStore } from "../kv.ts";
import { commitOf, firstCommit } from "../store/_conformance_calls.ts";
import {
  assertOnlyCurrent,
  atomicView,
  busyAfterKv,
  busyBeforeKv,
  keysOf,
  PREFIX,
  randomBytes,
  withKv,
} from "./kv_fakes.ts";

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

/**
 * A view of `kv` whose atomic writes pass through `around`, with whether the write deletes
 * keys and whether it sets the head.
 */
function aroundWrites(
  kv: Deno.Kv,
  around: (
    write: { deletes: boolean; setsHead: boolean },
    commit: () => Promise<Deno.KvCommitResult | Deno.KvCommitError>,
  ) => Promise<Deno.KvCommitResult | Deno.KvCommitError>,
): Deno.Kv {
  const head = JSON.stringify([...PREFIX, "head"]);
  return atomicView(kv, (op) => {
    const write = { deletes: false, setsHead: false };
    const wrapped = {
      check: (...checks: Deno.AtomicCheck[]) => (op.check(...checks), wrapped),
      set: (key: Deno.KvKey, value: unknown) => {
        if (JSON.stringify(key) === head) write.setsHead = true;
        return (op.set(key, value), wrapped);
      },
      delete: (key: Deno.KvKey) => (write.deletes = true, op.delete(key), wrapped),
      commit: () => around(write, () => op.commit()),
    };
    return wrapped as unknown as Deno.AtomicOperation;
  });
}

Deno.test("kv store: the removal of a save that lost its race, answered busy after its first delete went through, removes all of it", async () => {
  // Its first operation (checked against the version's record, which it marks dead) was tried
  // again and refused: the removal stopped there, leaving the dead record and the chunks past
  // the first 998 for a later sweep.
  await withKv(async (kv) => {
    const other = kvCheckpointStore(kv, PREFIX, { chunkBytes: 16 });
    const small = randomBytes(100, 2);
    let raced = false, answered = false;
    const view = aroundWrites(kv, async (write, commit) => {
      if (write.setsHead && !raced) {
        raced = true; // another save is made current first: this one's head write is refused
        assert.notEqual(await other.save(small, null), null);
      }
      const result = await commit();
      if (write.deletes && !answered) {
        answered = true;
        throw new TypeError("database is locked");
      }
      return result;
    });
    const store = kvCheckpointStore(view, PREFIX, { chunkBytes: 16 });
    const big = randomBytes(16 * 2100 + 3, 1); // 2101 chunks: three deletes
    assert.equal(await store.save(big, null), null, "refused: the other save came first");
    assert.ok(raced && answered);
    assert.deepEqual((await other.load())?.bytes, small);
    await assertOnlyCurrent(kv, Math.ceil(100 / 16));
  });
});

Deno.test("kv store: a submission whose gradient a sweep (judging it stale) begins to remove is refused, not stored without the chunks removed", async () => {
  // The first of the removal's operations left the gradient's record as it was: the
  // submission, going on, passed its checks and was stored, and the rest of the removal then
  // took the other chunks and the record, so that the contribution acknowledged as stored
  // could not be read. (A sweeper judges a live write stale only when the clocks are far
  // apart: `staleAfterMs: 0` stands for that here.)
  await withKv(async (kv) => {
    let resumeWriter!: () => void, resumeSweeper!: () => void, writerPaused!: () => void;
    const writerGate = new Promise<void>((r) => resumeWriter = r);
    const sweeperGate = new Promise<void>((r) => resumeSweeper = r);
    const paused = new Promise<void>((r) => writerPaused = r);
    let writes = 0, deletes = 0;
    const writer = aroundWrites(kv, async (_, commit) => {
      if (writes++ === 1) (writerPaused(), await writerGate); // its record and first chunks written
      return commit();
    });
    const sweeping = aroundWrites(kv, async (write, commit) => {
      const result = await commit();
      if (write.deletes && deletes++ === 0) (resumeWriter(), await sweeperGate);
      return result;
    });
    const store = kvCheckpointStore(writer, PREFIX, { chunkBytes: 16 });
    const sweeper = kvCheckpointStore(sweeping, PREFIX, { chunkBytes: 16, staleAfterMs: 0 });
    const gradient = randomBytes(INLINE_BYTES + 16 * 1000, 3); // over 998 chunks: two deletes
    const submitted = store.submit({ id: "g", base: 0, samples: 1 }, gradient)
      .then(() => null, (error: Error) => error);
    await paused;
    const swept = sweeper.sweep();
    const error = await submitted;
    resumeSweeper();
    await swept;
    assert.ok(error instanceof Error, "refused");
    assert.match(error.message, /swept as garbage/);
    assert.equal(await store.request("g"), null, "nothing stored");
    assert.deepEqual(await store.pending(10), []);
    assert.deepEqual(await keysOf(kv), [], "nothing left");
  });
});

Deno.test("kv store: a process refused the lease notes that it waits, its note's write answered busy after it went through", async () => {
  // The note is a plain set, asked again after the busy answer: the holder hands the lease on to
  // it. (This file's views of the database once had no set, and every refused process's note
  // threw.)
  await withKv(async (kv) => {
    const lease = await kvCheckpointStore(kv, PREFIX).acquire("A", 60_000, true);
    const other = kvCheckpointStore(busyAfterKv(kv, [0]), PREFIX);
    assert.equal(await other.acquire("B", 60_000, true), null);
    assert.equal(await kvCheckpointStore(kv, PREFIX).waiting(lease!), "B");
  });
});

Deno.test("kv store: a free lease whose taking was answered busy before it went through is taken, not refused as held", async () => {
  // acquire answered null, as for a lease another process holds: the caller waited a poll, and
  // handed its contributions off to a holder there was none of.
  await withKv(async (kv) => {
    const lease = await kvCheckpointStore(busyBeforeKv(kv, [0]), PREFIX).acquire("A", 60_000);
    assert.equal(lease?.token, "A");
    const held = await kvCheckpointStore(kv, PREFIX).acquire("B", 60_000, false);
    assert.equal(held, null, "A holds it");
  });
});

Deno.test("kv store: a commit that renews the lease alone, answered busy after it went through, answers the renewed lease", async () => {
  // Written again, its check of the lease it renewed was refused: null, a conflict, though it
  // was made (and the lease its caller held was gone).
  await withKv(async (kv) => {
    const direct = kvCheckpointStore(kv, PREFIX);
    const first = await firstCommit(direct);
    for (const next of [{ token: "A", ms: 60_000 }, undefined]) {
      const held = (await direct.acquire("A", 60_000))!; // taken again by its holder
      const store = kvCheckpointStore(busyAfterKv(kv, [0]), PREFIX);
      const done = await store.commit(
        commitOf({ expected: first, lease: held, ...(next === undefined ? {} : { next }) }),
      );
      assert.notEqual(done, null, "made");
      if (next === undefined) {
        assert.equal(done!.lease, null);
        assert.equal((await kv.get([...PREFIX, "lease"])).versionstamp, null, "released");
      } else {
        assert.equal(done!.lease?.token, "A");
        const now = await kv.get([...PREFIX, "lease"]);
        assert.equal(done!.lease?.ref, now.versionstamp, "the renewed lease's ref");
      }
    }
  });
});
