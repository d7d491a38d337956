/**
 * The Deno KV store's commits without a new checkpoint, answered "database is locked": they
 * write a receipt in the same atomic write, and are judged done by it alone, never by a lease
 * that changed or an outcome another process recorded since.
 */
import assert from "node:assert/strict";
import { commitOf, firstCommit } from "../store/_conformance_calls.ts";
import { kvCheckpointStore } from "../kv.ts";
import { checkpointOf } from "../store/_conformance_kit.ts";
import { atomicView, busyAfterKv, busyBeforeKv, PREFIX, withKv } from "./kv_fakes.ts";

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

Deno.test("kv store: a release of the lease answered busy before it went through is a conflict once the lease ran out and another process took it and moved the head, not answered made", async () => {
  // It was judged done because the lease had changed, and answered the version its check named
  // as current, though another process's step had replaced it.
  await withKv(async (kv) => {
    const b = kvCheckpointStore(kv, PREFIX);
    const first = await firstCommit(b);
    const a = kvCheckpointStore(busyBeforeKv(kv, [1]), PREFIX); // write 0: its acquire
    const held = (await a.acquire("A", 50))!;
    assert.equal(await b.acquire("B", 60_000, false), null);
    await sleep(80);
    const taken = (await b.acquire("B", 60_000, false))!;
    assert.equal(taken.token, "B");
    const byB = await b.commit(
      commitOf({
        checkpoint: await checkpointOf(2),
        expected: first,
        step: 2,
        seq: 2,
        lease: taken,
        next: { token: "B", ms: 60_000 },
      }),
    );
    assert.notEqual(byB, null);
    const byA = await a.commit(commitOf({ expected: first, lease: held }));
    assert.equal(byA, null, "a conflict: not made, and the head moved");
    assert.equal((await b.head())?.version, byB!.version);
    assert.equal((await kv.get<{ token: string }>([...PREFIX, "lease"])).value?.token, "B");
  });
});

Deno.test("kv store: a commit of outcomes whose answer was lost after it went through answers it made once, with the lease it wrote", async () => {
  // The write lands, the caller is told "database is locked": it finds its receipt and does not
  // write again (its fresh id's check would refuse that write: a conflict).
  await withKv(async (kv) => {
    const first = await firstCommit(kvCheckpointStore(kv, PREFIX));
    const a = kvCheckpointStore(busyAfterKv(kv, [1]), PREFIX); // write 0: its acquire
    const held = (await a.acquire("A", 60_000))!;
    const done = await a.commit(commitOf({
      expected: first,
      lease: held,
      next: { token: "A", ms: 60_000 },
      fresh: ["f"],
      refused: [{ id: "f", reason: "stale" }],
    }));
    assert.notEqual(done, null, "made");
    assert.equal(done!.version, first);
    const record = await kv.get([...PREFIX, "requests", "f"]);
    assert.deepEqual(record.value, { state: "refused", step: 1, reason: "stale" });
    const lease = await kv.get([...PREFIX, "lease"]);
    assert.equal(done!.lease?.ref, lease.versionstamp, "the lease it wrote");
    assert.equal(record.versionstamp, lease.versionstamp, "written once, by that write");
    const receipts = await Array.fromAsync(kv.list({ prefix: [...PREFIX, "receipts"] }));
    assert.equal(receipts.length, 1);
    assert.equal(receipts[0].versionstamp, lease.versionstamp);
    // The lease it answered is the one its caller holds: the next commit passes its check.
    const next = await kvCheckpointStore(kv, PREFIX).commit(
      commitOf({ expected: first, step: 2, seq: 2, lease: done!.lease! }),
    );
    assert.notEqual(next, null);
  });
});

/** `kv` whose first atomic write goes through and is then answered with `error`. */
function lostAnswerKv(kv: Deno.Kv, error: Error): Deno.Kv {
  let lost = false;
  return atomicView(kv, (op) => {
    const commit = op.commit.bind(op);
    op.commit = async () => {
      const result = await commit();
      if (lost) return result;
      lost = true;
      throw error;
    };
    return op;
  });
}

Deno.test("kv store: a release of the lease whose answer was lost to an error other than busy (a connection reset) once it went through answers it made", async () => {
  // The error was thrown: the caller, told nothing of the write, took the release as failed
  // (a data-parallel holder then dropped the lease and rejected its fold's own contributions as
  // perhaps applied).
  await withKv(async (kv) => {
    const first = await firstCommit(kvCheckpointStore(kv, PREFIX));
    const held = (await kvCheckpointStore(kv, PREFIX).acquire("A", 60_000))!;
    const a = kvCheckpointStore(lostAnswerKv(kv, new Error("connection reset")), PREFIX);
    const done = await a.commit(commitOf({ expected: first, lease: held }));
    assert.deepEqual(done, { version: first, lease: null }, "made");
    assert.equal((await kv.get([...PREFIX, "lease"])).versionstamp, null, "released");
  });
});

Deno.test("kv store: a commit without a checkpoint that failed with an error other than busy, not made, throws that error", async () => {
  await withKv(async (kv) => {
    const first = await firstCommit(kvCheckpointStore(kv, PREFIX));
    const held = (await kvCheckpointStore(kv, PREFIX).acquire("A", 60_000))!;
    const failing = atomicView(kv, (op) => {
      op.commit = () => Promise.reject(new Error("connection reset"));
      return op;
    });
    await assert.rejects(
      () => kvCheckpointStore(failing, PREFIX).commit(commitOf({ expected: first, lease: held })),
      /connection reset/,
    );
    assert.equal((await kv.get([...PREFIX, "lease"])).versionstamp, held.ref, "still held");
  });
});

/**
 * `kv` whose first atomic write goes through and is then answered "database is locked", and
 * whose first `reads` reads of a receipt after that fail with `error`.
 */
function unreadReceiptKv(kv: Deno.Kv, error: Error, reads: number): Deno.Kv {
  let lost = false;
  let failed = 0;
  const view = atomicView(kv, (op) => {
    const commit = op.commit.bind(op);
    op.commit = async () => {
      const result = await commit();
      if (lost) return result;
      lost = true;
      throw new TypeError("database is locked");
    };
    return op;
  });
  return new Proxy(view, {
    get(target, name) {
      if (name !== "get") return Reflect.get(target, name);
      return (key: Deno.KvKey, options?: { consistency?: Deno.KvConsistencyLevel }) => {
        if (lost && failed < reads && key.includes("receipts")) {
          failed++;
          return Promise.reject(error);
        }
        return kv.get(key, options);
      };
    },
  });
}

Deno.test("kv store: a commit of outcomes answered busy once it went through, whose receipt could not be read, throws: not answered a conflict", async () => {
  // The failed read was taken as no receipt: the commit was written again, its lease's check
  // failed (the lease it had renewed), and it was answered null, a conflict, though made.
  // (A read answered busy is tried again, BUSY_TRIES times: so many.)
  const cases = [[new Error("connection reset"), 1], [new TypeError("database is locked"), 30]];
  for (const [error, reads] of cases as [Error, number][]) {
    await withKv(async (kv) => {
      const first = await firstCommit(kvCheckpointStore(kv, PREFIX));
      const held = (await kvCheckpointStore(kv, PREFIX).acquire("A", 60_000))!;
      const a = kvCheckpointStore(unreadReceiptKv(kv, error, reads), PREFIX);
      await assert.rejects(
        () =>
          a.commit(commitOf({
            expected: first,
            lease: held,
            next: { token: "A", ms: 60_000 },
            refused: [{ id: "r", reason: "stale" }],
          })),
        /database is locked|connection reset/,
      );
      const lease = await kv.get<{ token: string }>([...PREFIX, "lease"]);
      assert.notEqual(lease.versionstamp, held.ref, "renewed: the commit was made");
      assert.equal((await kv.get([...PREFIX, "requests", "r"])).versionstamp, lease.versionstamp);
    });
  }
});
