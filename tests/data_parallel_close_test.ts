/**
 * The data-parallel trainer's ends: `close()` leaves nothing running, and a submit settles by
 * its wait limit whatever the database does.
 */
import assert from "node:assert/strict";
import { radam } from "../mod.ts";
import { dataParallel, memoryCheckpointStore, type TrainingStore } from "../store.ts";
import { dataParallelCase, liveWorkers, pause } from "./data_parallel_harness.ts";

const optimizer = radam({ lr: 0.05 });
const { init, gradientAt } = dataParallelCase(4, optimizer);

/** A promise and the function that resolves it. */
function signal(): { promise: Promise<void>; resolve: () => void } {
  let resolve!: () => void;
  const promise = new Promise<void>((r) => resolve = r);
  return { promise, resolve };
}

Deno.test("data parallel: a contribution queued while the fold loop gives the lease up is folded before close() returns; nothing runs after it", async () => {
  // The loop that ends gives the lease up; a contribution queued meanwhile started a new loop
  // once it ended, which close() did not wait for: it acquired the lease and folded after close
  // had returned (with the state close freed), and its store calls outlived the trainer.
  const store = memoryCheckpointStore();
  const released = signal(), gate = signal();
  let closed = false;
  const late: string[] = [];
  let holdRelease = false;
  const watched: TrainingStore = Object.create(store);
  for (
    const method of [
      "head",
      "load",
      "loadParams",
      "commit",
      "request",
      "pending",
      "acquire",
      "waiting",
    ] as const
  ) {
    // deno-lint-ignore no-explicit-any
    (watched as any)[method] = (...args: unknown[]) => {
      if (closed) late.push(method);
      // deno-lint-ignore no-explicit-any
      return (store as any)[method](...args);
    };
  }
  watched.release = async (lease) => {
    if (closed) late.push("release");
    if (holdRelease) released.resolve(), await gate.promise;
    return await store.release(lease);
  };
  const trainer = dataParallel(watched, { optimizer, init, pollMs: 5 });
  const { step: base, params } = await trainer.params();
  holdRelease = true;
  const a = await trainer.submit({ id: "a", base, gradient: gradientAt(0, params) });
  assert.equal(a.status, "applied");
  await released.promise; // the loop has no more work: it is giving the lease up
  holdRelease = false;
  const b = trainer.submit({ id: "b", base, gradient: gradientAt(1, params) });
  await pause(200); // b is queued (its two reads answered at once)
  const closing = trainer.close();
  gate.resolve();
  await closing;
  closed = true;
  const settled = await Promise.race([b.then(() => true, () => true), pause(0).then(() => false)]);
  assert.ok(settled, "b was not settled when close() returned");
  assert.deepEqual(await b, { status: "applied", id: "b", step: 2, duplicate: false });
  await pause(100);
  assert.deepEqual(late, []);
  assert.equal(await store.acquire("someone else", 1000, false) !== null, true, "lease left free");
});

Deno.test("data parallel: a submit still reading the store when close() is called is refused as closed, nothing stored", async () => {
  const store = memoryCheckpointStore({ latencyMs: 20 });
  const trainer = dataParallel(store, { optimizer, init, pollMs: 5 });
  const { step: base, params } = await trainer.params();
  const c = trainer.submit({ id: "c", base, gradient: gradientAt(0, params) })
    .catch((e: Error) => e);
  await trainer.close(); // c is still asking the store whether its id is known
  const refused = await c;
  assert.ok(refused instanceof TypeError && /closed/.test(refused.message), String(refused));
  await assert.rejects(
    trainer.params(),
    (e: Error) => e instanceof TypeError && /closed/.test(e.message),
  );
  await pause(100);
  assert.equal(await store.request("c"), null);
  assert.deepEqual(await store.pending(10), []);
  assert.equal((await store.head())?.step, 0);
});

Deno.test("data parallel: a closed trainer's params() and submit() say close() ended it and to make a new one", async () => {
  const trainer = dataParallel(memoryCheckpointStore(), { optimizer, init });
  const { step: base, params } = await trainer.params();
  await trainer.close();
  const closed = {
    name: "TypeError",
    message:
      "This trainer is closed (its close() was called): make a new one, dataParallel(store, options)",
  };
  await assert.rejects(() => trainer.params(), closed);
  await assert.rejects(
    async () => await trainer.submit({ id: "late", base, gradient: gradientAt(0, params) }),
    closed,
  );
});

/** Whether `p` settles within `ms` (a bound far above what it should take: it hung before). */
const settlesWithin = (p: Promise<unknown>, ms: number) =>
  Promise.race([p.then(() => true, () => true), pause(ms).then(() => false)]);

Deno.test("data parallel: a commit the database never answers leaves no submit waiting past waitMs: each says its outcome is unknown", async () => {
  // The submits a fold had taken waited for the fold to end, and the fold for the commit: a
  // database call that never returned kept their requests open for ever.
  const store = memoryCheckpointStore();
  const gate = signal();
  const hung: TrainingStore = Object.create(store);
  hung.commit = async (c) => {
    if (c.applied.length > 0) await gate.promise; // never answers (until the test ends)
    return await store.commit(c);
  };
  const trainer = dataParallel(hung, { optimizer, init, waitMs: 1000, pollMs: 5 });
  const { step: base, params } = await trainer.params();
  const submits = [0, 1].map((i) =>
    trainer.submit({ id: `h${i}`, base, gradient: gradientAt(i, params) })
      .catch((e: Error) => e) // both end at once: each handled from the start
  );
  for (const s of submits) {
    assert.ok(await settlesWithin(s, 5000), "a submit still waits for the hung commit");
    const e = await s;
    assert.ok(
      e instanceof Error && /within waitMs \(1000 ms\).*same id/.test(e.message),
      String(e),
    );
  }
  gate.resolve(); // the commit lands late: the ids say so, each applied once
  await trainer.close();
  assert.deepEqual(await store.request("h0"), { state: "applied", step: 1 });
  assert.deepEqual(await store.request("h1"), { state: "applied", step: 1 });
});

Deno.test("data parallel: a read the database never answers fails a submit after leaseMs, nothing stored", async () => {
  const store = memoryCheckpointStore();
  const gate = signal();
  const hung: TrainingStore = Object.create(store);
  hung.request = async (id) => (await gate.promise, await store.request(id));
  const trainer = dataParallel(hung, { optimizer, init, leaseMs: 100, pollMs: 5 });
  const { step: base, params } = await trainer.params();
  const s = trainer.submit({ id: "r", base, gradient: gradientAt(0, params) });
  assert.ok(await settlesWithin(s, 5000), "the submit still waits for the hung read");
  await assert.rejects(s, (e: Error) => /within leaseMs.*nothing of it was stored/.test(e.message));
  gate.resolve();
  await trainer.close();
  assert.equal(await store.request("r"), null);
  assert.equal((await store.head())?.step, 0);
});

Deno.test("data parallel: a contribution whose submit gave up while its fold was held is not folded again beside the same id sent again", async () => {
  // A submit that gave up (waitMs passed in a fold) left its contribution to the fold; when the
  // fold's commit was refused it went back to the queue, with no submit waiting for it. The id
  // sent again was then queued a second time, and the next fold applied it twice: one
  // journal record with the id twice, its gradient counted twice.
  const store = memoryCheckpointStore();
  const atCommit = signal(), gate = signal();
  let held = true;
  const refusing: TrainingStore = Object.create(store);
  refusing.commit = async (c) => {
    if (held && c.applied.length > 0) {
      held = false;
      atCommit.resolve();
      await gate.promise;
      return null; // refused, as when the lease was lost meanwhile
    }
    return await store.commit(c);
  };
  const trainer = dataParallel(refusing, { optimizer, init, waitMs: 1000, pollMs: 5 });
  const { step: base, params } = await trainer.params();
  const gradient = gradientAt(0, params);
  const first = trainer.submit({ id: "x", base, gradient }).catch((e: Error) => e);
  await atCommit.promise;
  assert.ok((await first) instanceof Error, "the first submit gave up");
  const again = trainer.submit({ id: "x", base, gradient });
  await pause(100); // sent again, and queued, while the first is held
  gate.resolve();
  const answer = await again;
  assert.equal(answer.status, "applied");
  await trainer.close();
  const journal = await store.journal(0, 100);
  assert.deepEqual(journal.flatMap((r) => r.entries.map((e) => e.id)), ["x"]);
});

Deno.test("data parallel: with waitMs 0 a contribution is stored at once and answered pending", async () => {
  // Submit and go: the reads before it is queued are not held to waitMs (only the wait for
  // the step is), so that a store that answers in a few ms still takes it.
  const store = memoryCheckpointStore({ latencyMs: 5 });
  const trainer = dataParallel(store, { optimizer, init, waitMs: 0, pollMs: 5 });
  const holder = (await store.acquire("another process", 10_000))!;
  const { step: base, params } = await trainer.params();
  const answer = await trainer.submit({ id: "z", base, gradient: gradientAt(0, params) });
  assert.deepEqual(answer, { status: "pending", id: "z" });
  assert.deepEqual(await store.request("z"), { state: "pending" });
  await store.release(holder);
  await trainer.close();
});

Deno.test("data parallel: a threaded state the trainer made and does not keep is freed: meta or the first commit throwing, a fold of refusals only", async () => {
  // Their workers lived on until garbage collection: the first checkpoint's state when meta or
  // the commit threw, and the state made for a store with no checkpoint when a fold refused all.
  const threaded = radam({ lr: 0.05, threads: 2, threadThreshold: 0 });
  const failing = (store: TrainingStore, meta?: () => string) => async () => {
    const trainer = dataParallel(store, { optimizer: threaded, init, meta, pollMs: 5 });
    await assert.rejects(trainer.params(), /no meta|no commit/);
    await trainer.close();
  };
  const noCommit: TrainingStore = Object.create(memoryCheckpointStore());
  noCommit.commit = () => Promise.reject(new Error("no commit"));
  assert.equal(await liveWorkers(failing(noCommit)), 0);
  const noMeta = () => {
    throw new Error("no meta");
  };
  assert.equal(await liveWorkers(failing(memoryCheckpointStore(), noMeta)), 0);
  assert.equal(
    await liveWorkers(async () => {
      const store = memoryCheckpointStore();
      await store.submit({ id: "short", base: 0, samples: 1 }, new Uint8Array(8)); // 2 values
      const trainer = dataParallel(store, { optimizer: threaded, init, pollMs: 5 });
      const gradient = { w: new Float32Array(4), b: new Float32Array(1) };
      await assert.rejects(
        trainer.submit({ id: "short", base: 0, gradient }),
        /its gradient has 2 values, the model 5/,
      );
      await trainer.close();
    }),
    0,
  );
});

Deno.test("data parallel: the first checkpoint made by a params() call close() did not wait for leaves no threaded state behind", async () => {
  // close() freed the state cached when it ran; the params() call in flight cached one after.
  const threaded = radam({ lr: 0.05, threads: 2, threadThreshold: 0 });
  const live = await liveWorkers(async () => {
    const trainer = dataParallel(memoryCheckpointStore({ latencyMs: 50 }), {
      optimizer: threaded,
      init,
    });
    const params = trainer.params();
    await pause(10);
    await trainer.close();
    assert.equal((await params).step, 0);
  });
  assert.equal(live, 0);
});

Deno.test("data parallel: a stored id watched with waitMs past 2³¹ ms waits for its fold, not answered pending at once", async () => {
  // The watch's timer was a bare setTimeout, which takes a delay past 2³¹ - 1 ms as none.
  const store = memoryCheckpointStore();
  const other = dataParallel(store, { optimizer, init, waitMs: 0, pollMs: 5 });
  const trainer = dataParallel(store, { optimizer, init, waitMs: 2 ** 31, pollMs: 5 });
  const holder = (await store.acquire("another process", 10_000))!;
  const { step: base, params } = await other.params();
  const stored = await other.submit({ id: "z", base, gradient: gradientAt(0, params) });
  assert.deepEqual(stored, { status: "pending", id: "z" });
  let answered = false;
  const answer = trainer.submit({ id: "z", base, gradient: gradientAt(0, params) })
    .finally(() => answered = true);
  await pause(100);
  assert.equal(answered, false, "it waits while another process holds the lease");
  await store.release(holder);
  assert.deepEqual(await answer, { status: "applied", id: "z", step: base + 1, duplicate: true });
  await Promise.all([other.close(), trainer.close()]);
});

Deno.test("data parallel: close() during a fold call the database never answers rejects after waitMs + leaseMs, and frees the state once the call returns", async () => {
  // close() waited for the fold loop, and the loop for the call: it never settled.
  const store = memoryCheckpointStore();
  const gate = signal(), entered = signal();
  let closed = false, releasedAfter = false;
  const late: string[] = [];
  const hung: TrainingStore = Object.create(store);
  for (const method of ["head", "load", "loadParams", "request", "pending", "acquire"] as const) {
    // deno-lint-ignore no-explicit-any
    (hung as any)[method] = (...args: unknown[]) => {
      if (closed) late.push(method);
      // deno-lint-ignore no-explicit-any
      return (store as any)[method](...args);
    };
  }
  hung.commit = async (c) => {
    if (c.applied.length > 0) entered.resolve(), await gate.promise; // answers when told
    return await store.commit(c);
  };
  hung.release = async (lease) => {
    if (closed) releasedAfter = true;
    return await store.release(lease);
  };
  const trainer = dataParallel(hung, { optimizer, init, waitMs: 100, leaseMs: 100, pollMs: 5 });
  const { step: base, params } = await trainer.params();
  const s = trainer.submit({ id: "c", base, gradient: gradientAt(0, params) }).catch((e) => e);
  await entered.promise;
  const close = trainer.close().then(() => "resolved", (e: Error) => e);
  assert.ok(await settlesWithin(close, 5000), "close() still waits for the hung commit");
  const e = await close;
  assert.ok(
    e instanceof Error && /did not answer a call of its fold within waitMs \+ leaseMs \(200 ms\)/
      .test(e.message),
    String(e),
  );
  assert.ok((await s) instanceof Error); // its outcome unknown: send it again
  closed = true;
  gate.resolve(); // the commit lands: the fold ends, folding nothing more, and gives the lease up
  await pause(100);
  assert.deepEqual(late, []);
  assert.ok(releasedAfter, "the lease was not given up once the fold ended");
  assert.deepEqual(await store.request("c"), { state: "applied", step: 1 });
  await trainer.close(); // nothing runs now: a second close resolves
});

Deno.test("data parallel: close() during a hand-off waits for its store call and settles its submit", async () => {
  // A contribution handed off (another process holds the lease) left the queue before it was
  // stored and was watched only once stored: meanwhile the fold loop found no work and ended,
  // and close() returned at once, its submit unsettled and its store call still running.
  const store = memoryCheckpointStore();
  const storing = signal();
  let closed = false;
  const late: string[] = [];
  const slow: TrainingStore = Object.create(store);
  slow.submit = async (info, gradient) => {
    storing.resolve();
    await pause(100);
    if (closed) late.push("submit");
    return await store.submit(info, gradient);
  };
  const trainer = dataParallel(slow, { optimizer, init, pollMs: 5, waitMs: 300 });
  const { step: base, params } = await trainer.params();
  const holder = (await store.acquire("another process", 10_000))!;
  const s = trainer.submit({ id: "h", base, gradient: gradientAt(0, params) });
  await storing.promise;
  await trainer.close();
  closed = true;
  assert.ok(await settlesWithin(s, 0), "the handed-off submit was not settled by close()");
  assert.deepEqual(await s, { status: "pending", id: "h" }); // stored, the holder did not fold
  assert.deepEqual(late, []);
  assert.deepEqual(await store.request("h"), { state: "pending" });
  await store.release(holder);
});
