/**
 * The Deno KV store within a smaller budget of checks an atomic write (option `maxChecks`):
 * the self-hosted server (denoland/denokv) refuses a write of more than 10 checks, and a read
 * of more than 10 keys, where the Deno runtime takes 100; the store keeps within what it is
 * told, every call of it, on a view that refuses what that server refuses.
 */
import assert from "node:assert/strict";
import { radam, saveState, sgd, step } from "../mod.ts";
import {
  dataParallel,
  type DataParallelOptions,
  kvCheckpointStore,
  type StepCommit,
  type SubmitResult,
  type TrainingStore,
  verifyTrainingStore,
} from "../kv.ts";
import { dataParallelCase } from "./data_parallel_harness.ts";
import { limitedKv, PREFIX, randomBytes, withKv } from "./kv_fakes.ts";
import { storeView } from "./each_store.ts";

const N = 6;
const optimizer = radam({ lr: 0.05 });
const { init, request, checkStore, burst } = dataParallelCase(N, optimizer);

Deno.test("kv store: option maxChecks is an integer from 4 to 100; anything else is refused naming it", async () => {
  await withKv((kv) => {
    for (const bad of [3, 0, -1, 101, 2.5, NaN, Infinity]) {
      assert.throws(
        () => kvCheckpointStore(kv, PREFIX, { maxChecks: bad }),
        (e: Error) =>
          e instanceof RangeError &&
          e.message.startsWith("Option maxChecks must be an integer from 4 to 100") &&
          e.message.includes(`got ${bad}`),
        String(bad),
      );
    }
    for (const bad of ["10", null, 10n, {}]) {
      assert.throws(
        () => kvCheckpointStore(kv, PREFIX, { maxChecks: bad as number }),
        (e: Error) => e instanceof TypeError && e.message.startsWith("Option maxChecks must be"),
        String(bad),
      );
    }
    // Its fresh ids: the checks left beside the head's, the version record's and the lease's.
    assert.equal(kvCheckpointStore(kv, PREFIX).maxFresh, 97);
    assert.equal(kvCheckpointStore(kv, PREFIX, { maxChecks: 10 }).maxFresh, 7);
    assert.equal(kvCheckpointStore(kv, PREFIX, { maxChecks: 4 }).maxFresh, 1);
    // A store of other limits is another store object, one of the same the same.
    const ten = kvCheckpointStore(kv, PREFIX, { maxChecks: 10 });
    assert.notEqual(ten, kvCheckpointStore(kv, PREFIX));
    assert.equal(ten, kvCheckpointStore(kv, PREFIX, { maxChecks: 10 }));
    assert.equal(kvCheckpointStore(kv, PREFIX), kvCheckpointStore(kv, PREFIX, { maxChecks: 100 }));
    return Promise.resolve();
  });
});

/** A commit of a chunked checkpoint under a lease, applying `fresh` ids of this process's. */
async function commitFresh(kv: Deno.Kv, maxChecks: number | undefined, fresh: number) {
  const store = kvCheckpointStore(kv, PREFIX, { chunkBytes: 64, maxChecks });
  let state = await sgd({ backend: "js" }).init({ w: new Float32Array(64) });
  const nothing = { expected: null, step: 0, seq: 0, applied: [], refused: [], fresh: [] };
  const first = await store.commit({ ...nothing, checkpoint: await saveState(state) });
  const lease = await store.acquire("holder", 60_000, false);
  state = step(state);
  const ids = Array.from({ length: fresh }, (_, i) => `f${i}`);
  const commit: StepCommit = {
    ...nothing,
    checkpoint: await saveState(state), // in chunks: the version record is checked too
    expected: first!.version,
    step: 1,
    seq: 1,
    lease: lease!,
    next: { token: "holder", ms: 60_000 },
    applied: ids.map((id) => ({ id, base: 0, samples: 1 })),
    fresh: ids,
  };
  return { store, commit, ids, version: first!.version };
}

Deno.test("kv store: a commit of maxFresh fresh ids keeps within maxChecks; one of more is refused with a RangeError, nothing written", async () => {
  await withKv(async (kv) => {
    const limited = limitedKv(kv);
    const { store, commit, ids } = await commitFresh(limited, 10, 7);
    const done = await store.commit(commit);
    assert.notEqual(done, null);
    assert.equal(limited.most.checks, 10);
    for (const id of ids) assert.deepEqual(await store.request(id), { state: "applied", step: 1 });
  });
  await withKv(async (kv) => {
    const { store, commit, version } = await commitFresh(kv, 10, 8);
    await assert.rejects(
      store.commit(commit),
      (e: Error) =>
        e instanceof RangeError &&
        e.message.includes("at most 7 fresh ids") && e.message.includes("maxChecks of 10") &&
        e.message.includes("got 8"),
    );
    assert.equal((await store.head())?.version, version);
    assert.equal(await store.request("f0"), null);
    assert.equal((await store.acquire("holder", 60_000, false))?.token, "holder");
  });
  // Without the option, the server refuses the write the runtime takes.
  await withKv(async (kv) => {
    const { store, commit } = await commitFresh(limitedKv(kv), undefined, 8);
    await assert.rejects(store.commit(commit), /Too many checks \(max 10\)/);
  });
});

Deno.test("kv store: with maxChecks 10, every clause of the conformance kit holds on a database that refuses more than 10 checks or 10 keys a request", async () => {
  await withKv(async (kv) => {
    const limited = limitedKv(kv);
    let n = 0;
    const report = await verifyTrainingStore(
      () => kvCheckpointStore(limited, ["limited", ++n], { maxChecks: 10, chunkBytes: 4096 }),
      { largestCheckpoint: 200_000 },
    );
    assert.ok(report.passed.includes("store.maxFold"));
    assert.ok(report.passed.includes("commit.large"));
    assert.ok(
      limited.most.checks <= 10 && limited.most.checks >= 9,
      `at most ${limited.most.checks} checks`,
    );
    assert.ok(limited.most.ranges <= 10, `${limited.most.ranges} keys a read`);
  });
});

/**
 * `processes` trainers, each on its own store object over `view(kv)`, sending `each` requests
 * at once (`more`: further options of the trainers); the answers, once all are in, the ids
 * refused (as too stale), and how many contributions the trainers stored (each a write of its
 * gradient) for a fold.
 */
async function run(
  kv: Deno.Kv,
  view: (kv: Deno.Kv) => Deno.Kv,
  maxChecks: number | undefined,
  processes: number,
  each: number,
  staleness = 1000,
  more: Partial<DataParallelOptions> = {},
) {
  const options = { optimizer, init, pollMs: 2, leaseMs: 2000, staleness, ...more };
  let stored = 0;
  const counted = (store: TrainingStore): TrainingStore =>
    storeView(store, {
      submit: (info, bytes) => {
        stored++;
        return store.submit(info, bytes);
      },
    });
  const trainers = Array.from(
    { length: processes },
    () => dataParallel(counted(kvCheckpointStore(view(kv), ["dp"], { maxChecks })), options),
  );
  await request(trainers[0], 0); // the first checkpoint
  const { answers, refused } = await burst(trainers, each);
  return { answers, refused, stored };
}

/**
 * Asserts that all `n` contributions of a run on `kv` were applied, each once in the journal
 * (besides the first checkpoint's request), `what` naming the run.
 */
async function appliedOnce(kv: Deno.Kv, answers: Map<string, SubmitResult>, n: number, what = "") {
  assert.equal(answers.size, n, what);
  for (const [id, a] of answers) assert.equal(a.status, "applied", `${what} ${id}`);
  const journal = await checkStore(kvCheckpointStore(kv, ["dp"]), answers);
  assert.equal(
    journal.flatMap((r) => r.entries).length,
    n + 1,
    `${what}: each once, the first too`,
  );
}

Deno.test("data parallel on Deno KV: several processes with many contributions each, under the self-hosted server's 10 checks, train as on the runtime's 100", async () => {
  for (const [view, maxChecks] of [[(kv: Deno.Kv) => kv, undefined], [limitedKv, 10]] as const) {
    await withKv(async (kv) => {
      const { answers, refused } = await run(kv, view, maxChecks, 3, 24);
      assert.deepEqual(refused, []);
      await appliedOnce(kv, answers, 72);
    });
  }
  // Without the option, a holder's fold of more than 7 of its own is refused at every commit.
  await withKv(async (kv) => {
    const store = kvCheckpointStore(limitedKv(kv), ["dp"]);
    const trainer = dataParallel(store, { optimizer, init, pollMs: 2 });
    await request(trainer, 0);
    const answers = await Promise.allSettled(
      Array.from({ length: 20 }, (_, i) => request(trainer, 1 + i)),
    );
    const failed = answers.filter((a) => a.status === "rejected");
    assert.ok(failed.length > 0, "some fold of the holder's own failed");
    assert.match(String((failed[0] as PromiseRejectedResult).reason.cause), /Too many checks/);
    await trainer.close().catch(() => {});
  });
});

Deno.test("data parallel on Deno KV: under a small maxChecks, a burst of one process's own contributions past what a commit checks is all applied within the default staleness", async () => {
  // The holder's fold checks maxFresh of its own (7 under 10 checks, 1 under 4): those its next
  // folds would not reach within the staleness bound (8 steps) are stored for them, which take
  // them without a check each, up to maxFold; kept waiting instead, they would be refused. Under
  // the runtime's 100 a fold takes maxFold (64) of them: none is stored, as before.
  const cases = [[limitedKv, 10], [limitedKv, 4], [(kv: Deno.Kv) => kv, undefined]] as const;
  for (const [view, maxChecks] of cases) {
    await withKv(async (kv) => {
      const { answers, refused, stored } = await run(kv, view, maxChecks, 1, 150, 8);
      assert.equal(refused.length, 0, `maxChecks ${maxChecks}: ${refused.length} refused`);
      if (maxChecks === undefined) assert.equal(stored, 0, "no gradient written");
      else assert.ok(stored > 0, `maxChecks ${maxChecks}: the surplus stored`);
      await appliedOnce(kv, answers, 150);
    });
  }
});

Deno.test("data parallel on Deno KV: under a small maxChecks, a burst of the holder's own contributions that its next steps fold within staleness writes no gradient, with handoffMs: Infinity as by default", async () => {
  // 40 at once, 7 a step under 10 checks (1 under 4): 6 steps (40) at most, well within the
  // staleness of 1000. The holder stored all but the 7 its next fold took, each a write of its
  // gradient, though handoffMs: Infinity says a process folds its own.
  for (const maxChecks of [10, 4]) {
    for (const more of [{ handoffMs: Infinity }, {}]) {
      await withKv(async (kv) => {
        const { answers, refused, stored } = await run(kv, limitedKv, maxChecks, 1, 40, 1000, more);
        assert.deepEqual(refused, []);
        const rule = "handoffMs" in more ? "handoffMs: Infinity" : "default";
        assert.equal(stored, 0, `maxChecks ${maxChecks}, ${rule}: none stored`);
        await appliedOnce(kv, answers, 40);
      });
    }
  }
});

Deno.test("data parallel on Deno KV: under a small maxChecks, bursts of several processes' own contributions are all applied within staleness, the lease handed on between their folds", async () => {
  // Each holder folds maxFresh of its own a step (7 under 10 checks, 1 under 4), then hands the
  // lease on to a process waiting for it: the rest of its burst waits for its turn to come back
  // while the others' folds step. Kept for its own folds (as if it held the lease throughout),
  // many passed the staleness bound (8 steps) and were refused; stored, the folds take them.
  for (const maxChecks of [10, 4]) {
    for (const more of [{}, { handoffMs: Infinity }]) {
      await withKv(async (kv) => {
        const { answers, refused } = await run(kv, limitedKv, maxChecks, 3, 30, 8, more);
        const rule = "handoffMs" in more ? "handoffMs: Infinity" : "default";
        assert.deepEqual(refused, [], `maxChecks ${maxChecks}, ${rule}`);
        await appliedOnce(kv, answers, 90);
      });
    }
  }
});

Deno.test("kv store: under 10 checks, a gradient and a checkpoint in many chunks are stored, read and removed", async () => {
  await withKv(async (kv) => {
    const limited = limitedKv(kv);
    const store = kvCheckpointStore(limited, PREFIX, { chunkBytes: 100, maxChecks: 10 });
    const v1 = await store.save(randomBytes(150_000, 1), null); // 1500 chunks
    const v2 = await store.save(randomBytes(150_000, 2), v1);
    assert.deepEqual((await store.load())?.bytes, randomBytes(150_000, 2));
    assert.equal(
      await store.submit({ id: "g", base: 0, samples: 1 }, randomBytes(70_000, 3)),
      null,
    );
    const [p] = await store.pending(1);
    assert.deepEqual(await store.gradient(p), randomBytes(70_000, 3));
    const done = await store.commit({
      checkpoint: null,
      expected: v2,
      step: 1,
      seq: 1,
      applied: [],
      refused: [{ id: "g", reason: "test", ref: p.ref }],
      fresh: [],
    });
    assert.notEqual(done, null);
    assert.equal(await store.sweep(), 0);
    let keys = 0;
    for await (const _ of kv.list({ prefix: [...PREFIX, "grads"] })) keys++;
    assert.equal(keys, 0, "the gradient's chunks removed");
    assert.ok(limited.most.checks <= 2 && limited.most.ranges <= 2, JSON.stringify(limited.most));
  });
});
