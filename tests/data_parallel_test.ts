/**
 * The data-parallel mode of the store, in one process, on the in-process store and on Deno KV
 * in memory: folds equal a replay of the journal bit for bit, ids are applied at most once,
 * stale contributions are refused, a dead holder's lease expires, and a crash at any write
 * loses no acknowledged contribution.
 */
import assert from "node:assert/strict";
import { CheckpointError, loadState, radam, readParams, saveState, step } from "../mod.ts";
import {
  ContributionRefusedError,
  dataParallel,
  kvCheckpointStore,
  meanOfContributions,
  memoryCheckpointStore,
  type SubmitResult,
  type TrainingStore,
} from "../kv.ts";
import { crashingKv, withKv } from "./kv_fakes.ts";
import { edit } from "./checkpoint_files.ts";
import { dataParallelCase } from "./data_parallel_harness.ts";
import { onEachStore as eachStore } from "./each_store.ts";

const N = 6;
const optimizer = radam({ lr: 0.05 });
const { init, gradientAt, request, checkStore, crashAtAnyWrite } = dataParallelCase(N, optimizer);

/** Stores of both kinds, fresh, for `fn`. */
const onEachStore = (fn: (store: TrainingStore) => Promise<void>) =>
  eachStore(fn, { memory: { latencyMs: 1 }, kv: { chunkBytes: 64 } });

Deno.test("data parallel: concurrent requests fold k at a time, equal to the journal's replay", async () => {
  await onEachStore(async (store) => {
    const trainer = dataParallel(store, { optimizer, init });
    const answers = new Map<string, SubmitResult>();
    await Promise.all(Array.from({ length: 48 }, async (_, i) => {
      await new Promise((r) => setTimeout(r, i % 7));
      answers.set(`r${i}`, await request(trainer, i));
    }));
    assert.ok([...answers.values()].every((a) => a.status === "applied" && !a.duplicate));
    const journal = await checkStore(store, answers);
    assert.equal(journal.flatMap((r) => r.entries).length, 48);
    assert.ok(journal.length < 48 && journal.some((r) => r.entries.length > 1), "folds of k > 1");
    // Sent again: answered with the step that applied it, not applied again.
    const again = await request(trainer, 5);
    assert.deepEqual(again, { ...answers.get("r5"), duplicate: true });
    assert.equal((await store.journal(0, 1000)).length, journal.length);
    const params = await trainer.params();
    assert.equal(params.step, journal.length);
    await trainer.close();
  });
});

Deno.test("data parallel: a gradient buffer refilled right after submit (not awaited) contributes what it held at the call", async () => {
  await onEachStore(async (store) => {
    const trainer = dataParallel(store, { optimizer, init });
    const { step, params } = await trainer.params();
    // The natural loop: one buffer, refilled for each request, submit not awaited.
    const buffer = { w: new Float32Array(N), b: new Float32Array(1) };
    const sent: Promise<SubmitResult>[] = [];
    for (let i = 0; i < 3; i++) {
      const g = gradientAt(i, params);
      buffer.w.set(g.w);
      buffer.b.set(g.b);
      sent.push(
        trainer.submit({ id: `r${i}`, base: step, samples: 1 + (i % 3), gradient: buffer }),
      );
    }
    buffer.w.fill(0.5);
    buffer.b.fill(-0.5);
    // A second process that has not read the model yet, given its tensors in another order.
    const other = dataParallel(store, { optimizer, init });
    const g3 = gradientAt(3, params);
    const reordered = { b: g3.b, w: g3.w };
    sent.push(other.submit({ id: "r3", base: step, samples: 1, gradient: reordered }));
    g3.w.fill(0.25);
    g3.b.fill(0.25);
    const answers = new Map((await Promise.all(sent)).map((a, i) => [`r${i}`, a]));
    assert.ok([...answers.values()].every((a) => a.status === "applied" && !a.duplicate));
    const journal = await checkStore(store, answers);
    assert.equal(journal.flatMap((r) => r.entries).length, 4);
    await trainer.close();
    await other.close();
  });
});

Deno.test("data parallel: two processes on one store, each id applied once", async () => {
  await onEachStore(async (store) => {
    const a = dataParallel(store, { optimizer, init, pollMs: 2 });
    const b = dataParallel(store, { optimizer, init, pollMs: 2 });
    const answers = new Map<string, SubmitResult>();
    await Promise.all(Array.from({ length: 40 }, async (_, i) => {
      // Ids 0..9 are sent to both processes at once: one applies it, the other says so.
      const trainers = i < 10 ? [a, b] : [i % 2 ? a : b];
      const results = await Promise.all(trainers.map((t) => request(t, i, 1)));
      const applied = results.filter((r) => r.status === "applied" && !r.duplicate);
      assert.equal(applied.length, 1, `r${i} applied by one`);
      answers.set(`r${i}`, applied[0]);
      const steps = results.map((r) => r.status === "applied" && r.step);
      assert.ok(steps.every((s) => s === steps[0]), `r${i}: ${steps}`);
    }));
    await checkStore(store, answers);
    await a.close();
    await b.close();
  });
});

Deno.test("data parallel: a contribution more than `staleness` steps behind is refused, never applied", async () => {
  await onEachStore(async (store) => {
    const trainer = dataParallel(store, { optimizer, init, staleness: 1 });
    const old = await trainer.params();
    for (let i = 0; i < 3; i++) await request(trainer, i);
    await assert.rejects(
      trainer.submit({ id: "late", base: old.step, gradient: gradientAt(9, old.params) }),
      (e: Error) => {
        assert.ok(e instanceof ContributionRefusedError);
        assert.match(
          e.message,
          /"late" was refused, never applied: computed at step 0, 3 steps behind the current step 3; the bound \(option staleness\) is 1/,
        );
        return true;
      },
    );
    // One stored by another process, found too stale when folded: recorded as refused.
    await store.submit({ id: "stored", base: 0, samples: 1 }, new Uint8Array(4 * (N + 1)));
    const answer = await request(trainer, 3);
    assert.equal(answer.status === "applied" && answer.step, 4);
    assert.deepEqual(await store.request("stored"), {
      state: "refused",
      step: 4, // the step whose fold refused it
      reason:
        "computed at step 0, 3 steps behind the current step 3; the bound (option staleness) is 1",
    });
    const now = await trainer.params();
    await assert.rejects(
      trainer.submit({ id: "stored", base: now.step, gradient: gradientAt(1, now.params) }),
      ContributionRefusedError,
    );
    const journal = await store.journal(0, 100);
    const ids = journal.flatMap((r) => r.entries.map((e) => e.id));
    assert.deepEqual(ids, ["r0", "r1", "r2", "r3"]);
    await trainer.close();
  });
});

Deno.test("data parallel: bad contributions are errors naming what is wrong, nothing applied", async () => {
  const store = memoryCheckpointStore();
  const trainer = dataParallel(store, { optimizer, init });
  const { step, params } = await trainer.params();
  const good = gradientAt(1, params);
  const cases: [unknown, RegExp][] = [
    [{ id: "", base: step, gradient: good }, /id must be a string of 1 to 64/],
    // Deno KV keeps each lone surrogate as U+FFFD: "a\ud800" and "a\ud801" were one id there,
    // the second contribution answered as the first's duplicate (lost), not on the other store.
    [
      { id: "a\ud800", base: step, gradient: good },
      /id must be text: .*surrogate \(\\ud800\) at 1/,
    ],
    [{ id: "a", base: -1, gradient: good }, /base must be a step/],
    [{ id: "a", base: step + 5, gradient: good }, /computed at step 5, after the current step 0/],
    [{ id: "a", base: step, samples: 0, gradient: good }, /samples must be an integer ≥ 1/],
    [{ id: "a", base: step, gradient: { ...good, v: good.b } }, /tensor "v" the model lacks/],
    [
      { id: "a", base: step, gradient: { w: good.w } },
      /gradient "b" must be a Float32Array of 1, got undefined$/,
    ],
    [
      { id: "a", base: step, gradient: { ...good, w: new Float32Array(2) } },
      /"w" must be a Float32Array of 6, got a Float32Array of 2$/,
    ],
    [
      { id: "a", base: step, gradient: { ...good, w: [...good.w] } },
      /"w" must be a Float32Array of 6, got Array\(6\) \(convert it: new Float32Array\(values\)\)$/,
    ],
    // first mistakes of a handler that reads a contribution from a request: each says what it got
    // and what to do (before, a string base was shown as a number, "got 0", and a gradient
    // whose computation was not awaited as a tensor "got undefined")
    [
      { id: "a", base: String(step), gradient: good },
      /base must be a step \(an integer ≥ 0\), got a string "0"$/,
    ],
    [
      { id: "a", base: step, samples: "32", gradient: good },
      /samples must be an integer ≥ 1, got a string "32"$/,
    ],
    [
      { id: "a", base: step, gradient: Promise.resolve(good) },
      /gradient must be an object of Float32Arrays by tensor name, got Promise \(a Promise: await it\)$/,
    ],
    [
      { id: "a", base: step, gradient: { ...good, w: Promise.resolve(good.w) } },
      /"w" must be a Float32Array of 6, got Promise \(a Promise: await it\)$/,
    ],
    [
      // Its float32 bytes, as a Node Buffer read from a file holds them.
      { id: "a", base: step, gradient: { ...good, w: new Uint8Array(good.w.buffer) } },
      /"w" must be a Float32Array of 6, got Uint8Array \(convert it: new Float32Array\(values\); or, where it holds float32 bytes, as a Buffer read with node:fs does, new Float32Array\(new Uint8Array\(bytes\)\.buffer\)\)$/,
    ],
    [
      { id: "a", base: step, gradient: { ...good, w: new Float64Array(good.w) } },
      /"w" must be a Float32Array of 6, got Float64Array \(convert it: new Float32Array\(values\)\)$/,
    ],
    [{ id: "a", base: step, gradient: { ...good, b: new Float32Array([NaN]) } }, /"b"\[0\] is NaN/],
    [
      { id: "a", base: step, gradient: good.w },
      /by tensor name, got a Float32Array of 6 \(one array for each of the model's tensors: write gradient: \{ "w": …, "b": … \}\)$/,
    ],
  ];
  for (const [c, message] of cases) {
    await assert.rejects(trainer.submit(c as never), message);
  }
  // the wrong length is a RangeError, the wrong type a TypeError (as step's)
  const gradient = (w: unknown) => ({ id: "a", base: step, gradient: { ...good, w } }) as never;
  await assert.rejects(trainer.submit(gradient(new Float32Array(2))), RangeError);
  await assert.rejects(trainer.submit(gradient([...good.w])), TypeError);
  // a base or sample count of the wrong type is a TypeError, out of range a RangeError
  const info = (base: unknown, samples?: unknown) =>
    ({ id: "a", base, samples, gradient: good }) as never;
  await assert.rejects(trainer.submit(info(String(step))), TypeError);
  await assert.rejects(trainer.submit(info(undefined)), TypeError);
  await assert.rejects(trainer.submit(info(-1)), RangeError);
  await assert.rejects(trainer.submit(info(step, "1")), TypeError);
  await assert.rejects(trainer.submit(info(step, 0)), RangeError);
  assert.equal((await store.journal(0, 10)).length, 0);
  assert.equal(await store.request("a"), null);
  assert.throws(
    () => dataParallel({} as TrainingStore, { optimizer, init }),
    /TrainingStore.*no load/,
  );
  assert.throws(() => dataParallel(store, { optimizer, init, staleness: -1 }), /staleness/);
  assert.throws(() => dataParallel(store, { optimizer, init, leaseMs: 0 }), /leaseMs/);
  await trainer.close();
});

Deno.test("meanOfContributions: a scratch shorter than the output is a RangeError, not a NaN mean", () => {
  const parts = [{ samples: 1, gradient: new Float32Array([1, 2, 3]) }];
  const out = new Float32Array(3);
  // before, the sums past the scratch's end were dropped and the mean there was NaN, silently
  assert.throws(
    () => meanOfContributions(parts, out, new Float64Array(1)),
    /The scratch holds 1 values, expected 3 or more/,
  );
  assert.deepEqual([...out], [0, 0, 0]); // nothing written
  meanOfContributions(parts, out, new Float64Array(4)); // a longer one is fine
  assert.deepEqual([...out], [1, 2, 3]);
});

Deno.test("data parallel: a lease held by a process that died expires, then training goes on", async () => {
  await onEachStore(async (store) => {
    const trainer = dataParallel(store, { optimizer, init, pollMs: 5 });
    await request(trainer, 0);
    const dead = await store.acquire("a process that died", 300);
    assert.ok(dead);
    const start = Date.now();
    const answer = await request(trainer, 1);
    assert.equal(answer.status === "applied" && answer.step, 2);
    assert.ok(Date.now() - start >= 250, "it waited for the lease to expire");
    await trainer.close();
  });
});

Deno.test("data parallel: past waitMs a contribution is stored; a later fold applies it, and its id says where", async () => {
  await onEachStore(async (store) => {
    const trainer = dataParallel(store, { optimizer, init, waitMs: 1000, pollMs: 5 });
    await request(trainer, 0);
    const holder = (await store.acquire("another process", 10_000))!;
    const answer = await request(trainer, 1);
    assert.deepEqual(answer, { status: "pending", id: "r1" });
    assert.deepEqual(await store.request("r1"), { state: "pending" });
    await store.release(holder);
    const next = await request(trainer, 2);
    assert.equal(next.status, "applied");
    const r1 = await request(trainer, 1);
    assert.equal(r1.status === "applied" && r1.duplicate, true);
    const answers = new Map<string, SubmitResult>([["r1", r1], ["r2", next]]);
    const journal = await checkStore(store, answers);
    assert.deepEqual(journal.flatMap((r) => r.entries.map((e) => e.id)), ["r0", "r1", "r2"]);
    await trainer.close();
  });
});

Deno.test("data parallel: a contribution whose id another process stored while it was being folded takes no other request's place", async () => {
  const store = memoryCheckpointStore();
  let reached!: () => void;
  const atCommit = new Promise<void>((resolve) => reached = resolve);
  let open!: () => void;
  const gate = new Promise<void>((resolve) => open = resolve);
  const held: TrainingStore = Object.create(store);
  held.commit = async (c) => {
    if (c.applied.length > 0) reached(), await gate;
    return await store.commit(c);
  };
  const trainer = dataParallel(held, { optimizer, init, waitMs: 1000, pollMs: 5 });
  const { step: base, params } = await trainer.params();
  const x = trainer.submit({ id: "x", base, gradient: gradientAt(0, params) })
    .catch((e: Error) => e); // its waitMs passes while the commit is held: outcome unknown
  await atCommit; // x is being folded; another process stores a contribution of the same id
  const bytes = new Uint8Array(
    Float32Array.from(Object.values(gradientAt(0, params)).flatMap((a) => [...a])).buffer,
  );
  assert.equal(await store.submit({ id: "x", base, samples: 1 }, bytes), null);
  await new Promise((resolve) => setTimeout(resolve, 1100)); // x's waitMs passes
  const y = trainer.submit({ id: "y", base, gradient: gradientAt(1, params) });
  await new Promise((resolve) => setTimeout(resolve, 20));
  open(); // the commit is refused (x is known now): x waits for the stored one, y is folded
  const first = await x; // its waitMs passed while its fold was held at the commit
  assert.ok(first instanceof Error && /may yet be applied/.test(first.message), String(first));
  assert.deepEqual(await y, { status: "applied", id: "y", step: 1, duplicate: false });
  const journal = await store.journal(0, 100);
  assert.deepEqual(journal.flatMap((r) => r.entries.map((e) => e.id)).sort(), ["x", "y"]);
  await trainer.close();
});

Deno.test("data parallel: a finite gradient too large for the moments is refused alone, the contributions folded with it applied", async () => {
  // With g = 1e30, Adam's exp_avg_sq passes float32's range, and a checkpoint holds only finite
  // values: every fold with it threw, the stored one stayed pending and was taken again by
  // each later fold, so that no contribution was ever applied again.
  await onEachStore(async (store) => {
    const trainer = dataParallel(store, { optimizer, init, pollMs: 5 });
    const { step: base, params } = await trainer.params();
    const huge = gradientAt(0, params);
    huge.w[0] = 1e30;
    const bytes = new Uint8Array(Float32Array.from([...huge.w, ...huge.b]).buffer);
    assert.equal(await store.submit({ id: "stored", base, samples: 1 }, bytes), null);
    const answers = await Promise.allSettled(
      [1, 2, 3].map((i) =>
        trainer.submit({ id: `r${i}`, base, gradient: i === 2 ? huge : gradientAt(i, params) })
      ),
    );
    assert.deepEqual(answers.map((a) => a.status), ["fulfilled", "rejected", "fulfilled"]);
    const refused = (answers[1] as PromiseRejectedResult).reason;
    assert.ok(refused instanceof ContributionRefusedError, String(refused));
    assert.match(refused.message, /"r2".*exp_avg_sq/);
    const record = await store.request("stored");
    assert.equal(record?.state, "refused");
    const journal = await store.journal(0, 100);
    assert.deepEqual(journal.flatMap((r) => r.entries.map((e) => e.id)).sort(), ["r1", "r3"]);
    assert.deepEqual(journal.map((r) => r.step), journal.map((_, i) => i + 1));
    assert.equal((await request(trainer, 4)).status, "applied", "training goes on");
    await trainer.close();
  });
});

Deno.test("data parallel on Deno KV: a crash at any write loses no acknowledged contribution, applies none twice", async () => {
  await crashAtAnyWrite({ writes: 40, stride: 3, requests: 8, chunkBytes: 16 });
});

Deno.test("a store written in format version 1 (checkpoint as saved) loads, and both modes go on from it", async () => {
  await withKv(async (kv) => {
    const store = kvCheckpointStore(kv, ["old"], { chunkBytes: 64 });
    // What the store's `save` writes is format version 1, as every store before version 2.
    let state = step(await optimizer.init(init()), gradientAt(0, init()));
    const v1 = await store.save(await saveState(state), null);
    const head = (await kv.get<{ formatVersion: number; step?: number }>(["old", "head"])).value!;
    assert.equal(head.formatVersion, 1);
    assert.deepEqual(await store.head(), { version: v1, step: null });
    const params = (await store.loadParams())!;
    assert.deepEqual({ ...params.params }, await readParams(state));
    assert.equal(params.step, 1);
    const trainer = dataParallel(store, { optimizer, init });
    const answer = await request(trainer, 1);
    assert.equal(answer.status === "applied" && answer.step, 2);
    state = step(state, gradientAt(1, await readParams(state)));
    const stored = (await store.load())!;
    assert.deepEqual(stored.bytes, await saveState(state), "stepped on from the old checkpoint");
    const now = (await kv.get<{ formatVersion: number; step: number }>(["old", "head"])).value!;
    assert.deepEqual([now.formatVersion, now.step], [2, 2]);
    assert.equal((await loadState(stored.bytes)).step, 2);
    await trainer.close();
  });
});

Deno.test("data parallel on Deno KV: a stored contribution whose gradient is damaged is refused, naming it", async () => {
  await withKv(async (kv) => {
    const store = kvCheckpointStore(kv, ["dp"]);
    const trainer = dataParallel(store, { optimizer, init });
    await request(trainer, 0);
    await store.submit({ id: "bad", base: 1, samples: 1 }, new Uint8Array(4 * (N + 1)));
    const [pending] = await store.pending(10);
    const { key, value } = pending.ref as { key: Deno.KvKey; value: Record<string, unknown> };
    await kv.set(key, { ...value, data: new Uint8Array(4 * (N + 1)).fill(1) }); // other bytes
    const answer = await request(trainer, 1);
    assert.equal(answer.status === "applied" && answer.step, 2);
    const record = await store.request("bad");
    assert.equal(record?.state, "refused");
    assert.match(
      (record as { reason: string }).reason,
      /stored gradient is damaged: Stored contribution \["dp","pending",\d+,"bad","[0-9a-f-]{36}"\]: its gradient does not match its SHA-256 digest/,
    );
    const journal = await store.journal(0, 10);
    assert.deepEqual(journal.flatMap((r) => r.entries.map((e) => e.id)), ["r0", "r1"]);
    await trainer.close();
  });
});

Deno.test("a stored checkpoint whose parameter shape has negative dimensions is refused, not read", async () => {
  await onEachStore(async (store) => {
    const state = step(await optimizer.init(init()), gradientAt(0, init()));
    // [-1, -6] holds 6 elements, as [6] does: only the signs are wrong
    const bytes = edit(await saveState(state), (h) => h.w.shape = [-1, -N]);
    await store.save(bytes, null);
    await assert.rejects(
      store.loadParams(),
      (e: Error) =>
        e instanceof CheckpointError && /shape \[-1,-6\] for the parameter "w"/.test(e.message),
    );
  });
});

Deno.test("data parallel on Deno KV: a fold settles no more than one atomic write holds, whatever maxFold and the key prefix", async () => {
  // Each settled contribution sets its request record and deletes its stored form, in the
  // commit that also writes the head, the version, the lease and the journal record (an entry
  // each): 600 at once (maxFold 1000) passed Deno KV's 1000 mutations, and 63 under a prefix of
  // 1500 bytes its 81 920 bytes of keys set, so that every fold threw and training stopped.
  const cases: [Deno.KvKey, number, string][] = [
    [["dp"], 600, "a"],
    [["dp"], 400, "€"], // ids of 64 units held two bytes a unit: a journal record over 64 KiB
    [["p".repeat(1500)], 70, "€"],
    [["p".repeat(1796)], 50, "€"], // the longest prefix (1798 bytes), the longest ids: keys of 2048
  ];
  for (const [prefix, n, pad] of cases) {
    await withKv(async (kv) => {
      const store = kvCheckpointStore(kv, prefix);
      assert.ok(store.maxFold! >= 1 && store.maxFold! < n, `${store.maxFold} for ${n}`);
      const trainer = dataParallel(store, { optimizer, init, maxFold: 1000 });
      const { step } = await trainer.params();
      const gradient = new Uint8Array(new Float32Array(N + 1).fill(0.5).buffer);
      const id = (i: number) => String(i).padStart(64, pad);
      for (let i = 0; i < n; i++) {
        assert.equal(await store.submit({ id: id(i), base: step, samples: 1 }, gradient), null);
      }
      const last = await request(trainer, n);
      assert.equal(last.status, "applied");
      const journal = await store.journal(0, 1000);
      assert.equal(journal[0].entries.length, store.maxFold);
      await trainer.close();
    });
  }
  await withKv((kv) => {
    assert.throws(() => kvCheckpointStore(kv, ["p".repeat(1797)]), RangeError, "1798 bytes");
    assert.throws(() => kvCheckpointStore(kv, [new Uint8Array(1000)]), RangeError, "2002");
    return Promise.resolve();
  });
});

Deno.test("data parallel on Deno KV: a process that only watches for an outcome writes nothing while it polls", async () => {
  // Each poll asked for the lease without queueing for it, which deleted the process's note
  // that it waits: a write every pollMs, though it had none to delete.
  await withKv(async (kv) => {
    const other = kvCheckpointStore(kv, ["dp"]);
    assert.notEqual(await other.acquire("holder", 60_000), null); // another process folds
    assert.equal(await other.submit({ id: "x", base: 0, samples: 1 }, new Uint8Array(16)), null);
    const counted = crashingKv(kv, Infinity);
    const trainer = dataParallel(kvCheckpointStore(counted, ["dp"]), {
      optimizer,
      init,
      waitMs: 300,
      pollMs: 5,
    });
    try {
      const answer = await trainer.submit({ id: "x", base: 0, gradient: gradientAt(0, init()) });
      assert.deepEqual(answer, { status: "pending", id: "x" });
      assert.equal(counted.writes, 0);
      // One that waited for the lease (queued) still leaves no note behind once it watches.
      assert.equal(await other.acquire("queued", 1000), null);
      assert.equal(await other.acquire("queued", 1000, false), null);
      assert.equal(await other.waiting((await other.acquire("holder", 60_000))!), null);
    } finally {
      await trainer.close();
    }
    assert.equal(counted.writes, 0); // nor when its loop ends, or it closes
  });
});
