/**
 * The data-parallel mode across processes (two trainers on one store stand for two
 * processes): a contribution waiting in a process that does not hold the lease is stored for
 * the holder's next fold, so that one fold takes the contributions of several processes.
 */
import assert from "node:assert/strict";
import { radam } from "../mod.ts";
import {
  dataParallel,
  type DataParallelTrainer,
  kvCheckpointStore,
  type SubmitResult,
  type TrainingStore,
} from "../kv.ts";
import { withKv } from "./kv_fakes.ts";
import { dataParallelCase, pause } from "./data_parallel_harness.ts";
import { onEachStore as eachStore } from "./each_store.ts";

const optimizer = radam({ lr: 0.05 });
const { init, request, checkStore } = dataParallelCase(6, optimizer);

/** Stores of both kinds, fresh, for `fn`. */
const onEachStore = (fn: (store: TrainingStore) => Promise<void>) =>
  eachStore(fn, { memory: { latencyMs: 1 }, kv: { chunkBytes: 64 } });

/** `count` requests through `trainer`, one at a time (one submit in flight), from id `first`. */
async function oneAtATime(
  trainer: DataParallelTrainer,
  first: number,
  count: number,
  answers: Map<string, SubmitResult>,
) {
  for (let i = first; i < first + count; i++) answers.set(`r${i}`, await request(trainer, i, 1));
}

/**
 * `store`, its list of stored contributions read `ms` later (as over a network: a fold's reads
 * take time, and contributions come meanwhile).
 */
function slowPending(store: TrainingStore, ms: number): TrainingStore {
  return {
    ...store,
    pending: async (limit) => {
      await new Promise((resolve) => setTimeout(resolve, ms));
      return await store.pending(limit);
    },
  };
}

Deno.test("data parallel: one fold takes contributions from two processes with one submit in flight each", async () => {
  await onEachStore(async (shared) => {
    const store = slowPending(shared, 20);
    const a = dataParallel(store, { optimizer, init, pollMs: 2 });
    const b = dataParallel(store, { optimizer, init, pollMs: 2 });
    const answers = new Map<string, SubmitResult>();
    await Promise.all([oneAtATime(a, 0, 16, answers), oneAtATime(b, 100, 16, answers)]);
    // Each answered applied by its own submit (none pending, none a duplicate).
    for (const [id, answer] of answers) {
      assert.deepEqual(answer.status === "applied" && answer.duplicate, false, id);
    }
    // Every id exactly once in the journal, each at the step its submit was told; the stored
    // checkpoint is the journal's replay.
    const journal = await checkStore(store, answers);
    const ids = journal.flatMap((r) => r.entries.map((e) => e.id));
    assert.equal(ids.length, 32);
    assert.equal(new Set(ids).size, 32);
    const folds = journal.map((r) => r.entries.length);
    assert.ok(Math.max(...folds) > 1, `every fold took one contribution: ${folds}`);
    await a.close();
    await b.close();
  });
});

Deno.test("data parallel: with handoffMs Infinity a process folds its own contributions when the lease comes to it", async () => {
  await onEachStore(async (store) => {
    const trainer = dataParallel(store, { optimizer, init, handoffMs: Infinity, pollMs: 5 });
    await request(trainer, 0);
    const holder = (await store.acquire("another process", 10_000))!;
    const answer = request(trainer, 1);
    await new Promise((resolve) => setTimeout(resolve, 100));
    assert.equal(await store.request("r1"), null); // not stored: it waits here
    await store.release(holder);
    const r1 = await answer;
    assert.equal(r1.status === "applied" && !r1.duplicate, true);
    await checkStore(store, new Map([["r1", r1]]));
    await trainer.close();
  });
});

Deno.test("data parallel: a contribution is stored at once when another process holds the lease, and applied by that holder's fold", async () => {
  await onEachStore(async (store) => {
    const trainer = dataParallel(store, { optimizer, init, pollMs: 5 });
    await request(trainer, 0);
    const holder = (await store.acquire("another process", 10_000))!;
    const answer = request(trainer, 1);
    for (let i = 0; i < 100 && await store.request("r1") === null; i++) {
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
    assert.deepEqual(await store.request("r1"), { state: "pending" });
    // The holder's fold, by another trainer (process): it takes the stored contribution.
    const other = dataParallel(store, { optimizer, init, pollMs: 5 });
    await store.release(holder);
    const r2 = await request(other, 2);
    const r1 = await answer;
    assert.equal(r1.status === "applied" && !r1.duplicate, true);
    await checkStore(store, new Map([["r1", r1], ["r2", r2]]));
    await trainer.close();
    await other.close();
  });
});

/**
 * `id`'s record in the store once its contribution is stored (for another process's fold), or
 * null when it is not within `ms` (long where it is expected, so that a loaded machine does not
 * fail the test; short where it is not: a hand-off comes at the trainer's next poll).
 */
async function storedWithin(store: TrainingStore, id: string, ms: number) {
  const deadline = Date.now() + ms;
  while (await store.request(id) === null && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
  return await store.request(id);
}

Deno.test("data parallel: a process with more submits in flight than handoffLimit, lately, keeps them for its own fold; a lone one is handed off", async () => {
  await onEachStore(async (store) => {
    // The window in which a process that had two submits in flight counts as busy: longer than
    // the test takes from those submits to the lone one's check, on a loaded machine too.
    const leaseMs = 4000;
    for (const handoffLimit of [undefined, 2, Infinity]) {
      const trainer = dataParallel(store, { optimizer, init, pollMs: 5, leaseMs, handoffLimit });
      const base = handoffLimit === undefined ? 0 : handoffLimit === 2 ? 10 : 20;
      await request(trainer, base);
      const holder = (await store.acquire("another process", 10_000))!;
      const answers = [request(trainer, base + 1), request(trainer, base + 2)];
      const ids = [`r${base + 1}`, `r${base + 2}`];
      // Two in flight: stored for the holder when the limit takes two, else kept here.
      const storing = handoffLimit !== undefined;
      const ms = storing ? 10_000 : 200;
      const records = await Promise.all(ids.map((id) => storedWithin(store, id, ms)));
      const pending = { state: "pending" };
      assert.deepEqual(records, storing ? [pending, pending] : [null, null], `${handoffLimit}`);
      await store.release(holder);
      const done = new Map<string, SubmitResult>();
      for (const [i, a] of answers.entries()) done.set(ids[i], await a);
      for (const a of done.values()) assert.equal(a.status === "applied" && !a.duplicate, true);
      const journal = await checkStore(store, done);
      // Kept here, both went into one fold of this process's own.
      if (!storing) {
        const last = journal[journal.length - 1];
        assert.deepEqual(last.entries.map((e) => e.id).sort(), ids);
      }
      // One alone in flight: handed off, unless the process had more than the limit within the
      // last leaseMs (a busy process between its folds, whose next requests come).
      for (const [i, wait] of storing ? [[3, 0]] : [[3, 0], [4, leaseMs + 100]]) {
        await new Promise((resolve) => setTimeout(resolve, wait));
        const other = (await store.acquire("another process", 10_000))!;
        const lone = request(trainer, base + i);
        const stored = storing || wait > 0;
        const record = await storedWithin(store, `r${base + i}`, stored ? 10_000 : 200);
        assert.deepEqual(record, stored ? pending : null, `${handoffLimit}, ${i}`);
        await store.release(other);
        const answer = await lone;
        assert.equal(answer.status === "applied" && !answer.duplicate, true);
      }
      await trainer.close();
    }
  });
});

Deno.test("data parallel: a contribution handed off to a holder whose own contributions fill its folds is applied in turn, not left pending", async () => {
  // A process that had handed its contributions off asked for the lease as one with no work of
  // its own (it left the holder's queue), and a fold takes the holder's own contributions
  // first: while the holder had maxFold of its own waiting at each fold, the stored ones were
  // never folded, and their submits were answered "pending" at waitMs (then refused as too
  // stale once folded). It now waits for the lease in turn, as with handoffMs Infinity.
  await onEachStore(async (store) => {
    const slowCommit: TrainingStore = {
      ...store,
      commit: async (c) => {
        await new Promise((resolve) => setTimeout(resolve, 40));
        return await store.commit(c);
      },
    };
    const options = { optimizer, init, pollMs: 2, maxFold: 2, waitMs: 5000, staleness: 1000 };
    const busy = dataParallel(slowCommit, options);
    const other = dataParallel(store, options);
    await request(busy, 0);
    let stop = false, next = 1000;
    const answers = new Map<string, SubmitResult>();
    const workers = Array.from({ length: 6 }, async () => {
      while (!stop) {
        const i = next++;
        answers.set(`r${i}`, await request(busy, i));
      }
    });
    await new Promise((resolve) => setTimeout(resolve, 100)); // the holder's folds are full
    const r1 = await request(other, 1);
    stop = true;
    await Promise.all(workers);
    assert.equal(r1.status === "applied" && !r1.duplicate, true, JSON.stringify(r1));
    answers.set("r1", r1);
    await checkStore(store, answers);
    await busy.close();
    await other.close();
  });
});

Deno.test("data parallel: a lease handed on to a process that has stopped asking for it expires soon, not after leaseMs", async () => {
  // The holder read the waiting note of a process before its commit; that process then
  // stopped asking (its contribution applied, it went idle and released its note, finding the
  // lease still the holder's), and the commit handed the lease on to it. The next submit
  // anywhere waited for that lease to expire: leaseMs.
  await onEachStore(async (store) => {
    // Far longer than a lease handed on lasts (ten polls, at least 200 ms), so that a loaded
    // machine's delays cannot make a submit that waited for the short term look like one that
    // waited for the whole lease.
    const leaseMs = 30_000;
    const gate = () => {
      let open!: () => void;
      const opened = new Promise<void>((resolve) => open = resolve);
      return { open, opened, called: false };
    };
    const read = gate(), commit = gate();
    let gated = false;
    const holderStore: TrainingStore = {
      ...store,
      waiting: async (lease) => {
        if (gated) read.called = true, await read.opened;
        return await store.waiting(lease);
      },
      commit: async (c) => {
        if (gated) commit.called = true, await commit.opened;
        return await store.commit(c);
      },
    };
    const options = { optimizer, init, leaseMs, pollMs: 5 };
    const holder = dataParallel(holderStore, options);
    const answers = new Map([["r0", await request(holder, 0)]]);
    gated = true;
    const until = async (done: () => boolean) => {
      while (!done()) await new Promise((resolve) => setTimeout(resolve, 2));
    };
    const r1 = request(holder, 1);
    await until(() => read.called); // the holder folds, and reads who waits
    assert.equal(await store.acquire("process P", leaseMs), null); // P waits for the lease
    read.open();
    await until(() => commit.called); // the commit will hand the lease on to P
    await store.release("process P"); // P stops asking: the lease is still the holder's
    commit.open();
    answers.set("r1", await r1);
    const other = dataParallel(store, options);
    const started = Date.now();
    answers.set("r2", await request(other, 2));
    const took = Date.now() - started;
    assert.ok(took < leaseMs / 3, `the submit waited ${took} ms for the lease handed on`);
    await checkStore(store, answers);
    await holder.close();
    await other.close();
  });
});

/**
 * `kv` as a process whose clock is `skewMs` ahead of this one's (behind, when negative) uses
 * it: the waiting notes it writes hold its clock's times, and it reads its own back as it
 * wrote them.
 */
function skewedKv(kv: Deno.Kv, skewMs: number): Deno.Kv {
  const isNote = (key: Deno.KvKey) => key.includes("wants");
  const shift = (value: unknown, by: number) => {
    const v = value as { since: number; at: number } | null;
    return v === null ? v : { ...v, since: v.since + by, at: v.at + by };
  };
  const unshift = <T>(e: Deno.KvEntryMaybe<T>) =>
    isNote(e.key) ? { ...e, value: shift(e.value, -skewMs) } : e;
  return new Proxy(kv, {
    get(target, name) {
      if (name === "set") {
        return (key: Deno.KvKey, value: unknown, options?: { expireIn?: number }) =>
          target.set(key, isNote(key) ? shift(value, skewMs) : value, options);
      }
      if (name === "get") {
        return async (key: Deno.KvKey) => unshift(await target.get(key));
      }
      if (name === "getMany") {
        return async (keys: Deno.KvKey[]) => (await target.getMany(keys)).map(unshift);
      }
      const value = Reflect.get(target, name);
      return typeof value === "function" ? value.bind(target) : value;
    },
  });
}

Deno.test("data parallel: on Deno KV, who waits for the lease is judged on the holder's clock, whatever the waiter's", async () => {
  // A holder compared a waiting note's time, written with the waiter's clock, with its own: a
  // process whose clock was more than a second behind was never handed the lease (its note
  // looked a second old), one whose clock was ahead was taken as asking for seconds after it
  // stopped, and one behind came first in the queue, whoever began waiting first.
  await withKv(async (kv) => {
    for (const skew of [-5000, 5000]) {
      const prefix = ["skew", String(skew)];
      const holder = kvCheckpointStore(kv, prefix);
      const skewed = kvCheckpointStore(skewedKv(kv, skew), prefix);
      const plain = kvCheckpointStore(skewedKv(kv, 0), prefix);
      const lease = (await holder.acquire("holder", 10_000))!;
      assert.equal(await skewed.acquire("skewed", 10_000), null); // waits, noted
      assert.equal(await holder.waiting(lease), "skewed", `skew ${skew}`);
      // Still asking a second and more later: still waiting.
      for (let i = 0; i < 12; i++) await skewed.acquire("skewed", 10_000), await pause(100);
      assert.equal(await holder.waiting(lease), "skewed", `skew ${skew}, a second on`);
      // It stops asking (its note stays, as a crashed process's does): not handed the lease
      // once its note stood unchanged a second on the holder's clock.
      await pause(1100);
      assert.equal(await holder.waiting(lease), null, `skew ${skew}, stopped`);
      await skewed.release("skewed");
      // Who began waiting first comes first: a process with no skew, then the skewed one.
      assert.equal(await plain.acquire("plain", 10_000), null);
      assert.equal(await holder.waiting(lease), "plain");
      await pause(300);
      assert.equal(await skewed.acquire("skewed", 10_000), null);
      await plain.acquire("plain", 10_000);
      assert.equal(await holder.waiting(lease), "plain", `skew ${skew}: plain waited longest`);
      await holder.release(lease);
    }
  });
});

/**
 * `kv` on which the first atomic write that stores a contribution (sets a pending record) is
 * done, then `after()` runs, then the write reports "database is locked": as a database file
 * shared by processes may answer a write that went through. `onStoring()` is called as that write
 * is put together, before it is sent.
 */
function lockedAfterStoring(
  kv: Deno.Kv,
  after: () => Promise<void>,
  onStoring: () => void,
): Deno.Kv {
  let armed = true;
  return new Proxy(kv, {
    get(target, name) {
      if (name === "atomic") {
        return () => {
          const op = target.atomic();
          let storing = false;
          const view: Deno.AtomicOperation = new Proxy(op, {
            get(o, n) {
              if (n === "set") {
                return (key: Deno.KvKey, value: unknown, options?: { expireIn?: number }) => {
                  if (key.includes("pending") && armed) storing = true, onStoring();
                  o.set(key, value, options);
                  return view;
                };
              }
              if (n === "commit") {
                return async () => {
                  const result = await o.commit();
                  if (!storing || !armed || !result.ok) return result;
                  armed = false;
                  await after();
                  throw new TypeError("database is locked");
                };
              }
              const v = Reflect.get(o, n);
              return typeof v === "function" ? (...a: unknown[]) => (v.apply(o, a), view) : v;
            },
          });
          return view;
        };
      }
      const value = Reflect.get(target, name);
      return typeof value === "function" ? value.bind(target) : value;
    },
  });
}

Deno.test("data parallel: on Deno KV, a hand-off whose write went through but answered 'database is locked', folded before it looked again, is answered as applied by this submit, not as a duplicate", async () => {
  await withKv(async (kv) => {
    const prefix = ["locked"];
    const options = { optimizer, init, pollMs: 5 };
    const holderStore = kvCheckpointStore(kv, prefix);
    const holder = dataParallel(holderStore, options);
    const answers = new Map([["r0", await request(holder, 0)]]);
    const lease = (await holderStore.acquire("another process", 10_000))!;
    // Between the write and its answer: the lease is free again, and the holder folds. The
    // waiter's own loop, which queues for the lease for its handed-off contribution, asks for it
    // again only once the holder's fold is done (else it may take the lease first and fold r1
    // alone, one step before r2: that is another case).
    let handedOff = false, foldDone!: () => void;
    const holderFold = new Promise<void>((resolve) => foldDone = resolve);
    const folded = async () => {
      try {
        await holderStore.release(lease);
        answers.set("r2", await request(holder, 2));
      } finally {
        foldDone();
      }
    };
    const locked = lockedAfterStoring(kv, folded, () => handedOff = true);
    const waiterStore = kvCheckpointStore(locked, prefix);
    const waiter = dataParallel({
      ...waiterStore,
      acquire: async (...args: Parameters<TrainingStore["acquire"]>) => {
        if (handedOff) await holderFold;
        return await waiterStore.acquire(...args);
      },
    }, options);
    const r1 = await request(waiter, 1);
    answers.set("r1", r1);
    const journal = await checkStore(holderStore, answers);
    const r2 = answers.get("r2")!;
    assert.equal(r2.status, "applied");
    // The holder's fold took both: the one handed off, and its own.
    const record = journal.find((r) => r.entries.some((e) => e.id === "r1"));
    assert.deepEqual(record?.entries.map((e) => e.id).sort(), ["r1", "r2"]);
    assert.deepEqual(r1, {
      status: "applied",
      id: "r1",
      step: r2.status === "applied" ? r2.step : -1,
      duplicate: false,
    });
    await holder.close();
    await waiter.close();
  });
});

Deno.test("data parallel: a hand-off whose write fails rejects with an error that names the contribution, says its outcome is unknown and keeps the database's as its cause", async () => {
  // It rejected with the database's own error ("database is locked"), which said neither
  // which contribution nor whether it may yet be applied.
  await onEachStore(async (shared) => {
    const failure = new TypeError("database is locked");
    const store: TrainingStore = { ...shared, submit: () => Promise.reject(failure) };
    const trainer = dataParallel(store, { optimizer, init, pollMs: 5 });
    await request(trainer, 0);
    const holder = (await store.acquire("another process", 10_000))!;
    const error = await request(trainer, 1).then(() => null, (e) => e);
    assert.ok(error instanceof Error && !(error instanceof TypeError), String(error));
    assert.match(
      error.message,
      /^Contribution "r1": storing it for the lease holder's fold failed \(database is locked\); it may yet be applied: send it again, with the same id/,
    );
    assert.equal(error.cause, failure);
    await store.release(holder);
    await trainer.close();
  });
});

Deno.test("data parallel: a submit whose read fails before anything of it is stored rejects with an error that names the contribution, says it was not applied and keeps the database's as its cause", async () => {
  // It rejected with the database's own error ("database is locked"), which said neither
  // which contribution nor whether it may have been applied.
  await onEachStore(async (shared) => {
    const failure = new TypeError("database is locked");
    const lookup: TrainingStore = { ...shared, request: () => Promise.reject(failure) };
    const trainer = dataParallel(lookup, { optimizer, init, pollMs: 5 });
    const error = await request(trainer, 1).then(() => null, (e) => e);
    assert.ok(error instanceof Error && !(error instanceof TypeError), String(error));
    assert.match(
      error.message,
      /^Contribution "r1": looking up its id failed \(database is locked\); nothing of it was stored, it was not applied: send it again$/,
    );
    assert.equal(error.cause, failure);
    await trainer.close();
    // A fresh process (nothing known of the parameters) whose read of them fails.
    const other = dataParallel(shared, { optimizer, init, pollMs: 5 });
    const { step, params } = await other.params();
    const reading: TrainingStore = { ...shared, loadParams: () => Promise.reject(failure) };
    const fresh = dataParallel(reading, { optimizer, init, pollMs: 5 });
    const gradient = { w: params.w.map(() => 1), b: params.b.map(() => 1) };
    const read = await fresh.submit({ id: "r2", base: step, gradient }).then(() => null, (e) => e);
    assert.ok(read instanceof Error && !(read instanceof TypeError), String(read));
    assert.match(
      read.message,
      /^Contribution "r2": reading the current parameters failed \(database is locked\); nothing of it was stored, it was not applied: send it again$/,
    );
    assert.equal(read.cause, failure);
    await fresh.close();
    // Neither was stored: sent again, each is applied now (not a duplicate).
    for (const i of [1, 2]) {
      const again = await request(other, i);
      assert.equal(again.status, "applied");
      assert.equal(again.status === "applied" && again.duplicate, false);
    }
    await other.close();
  });
});

Deno.test("data parallel: params() whose call to the store fails says which store and what failed, the database's error its cause", async () => {
  // It rejected with the database's own error, which named neither the store nor the call.
  await onEachStore(async (shared) => {
    const failure = new TypeError("database is locked");
    const first = dataParallel(shared, { optimizer, init, pollMs: 5 });
    await first.params(); // the first checkpoint
    await first.close();
    const calls = [
      ["reading the store's head", { head: () => Promise.reject(failure) }],
      ["reading the current parameters", { loadParams: () => Promise.reject(failure) }],
    ] as const;
    for (const [what, failing] of calls) {
      const trainer = dataParallel({ ...shared, ...failing }, { optimizer, init, pollMs: 5 });
      const error = await trainer.params().then(() => null, (e) => e);
      assert.ok(error instanceof Error && !(error instanceof TypeError), String(error));
      assert.equal(
        error.message,
        `Store ${shared.name}: ${what} for params() failed (database is locked); call params() ` +
          "again (it reads the store afresh)",
      );
      assert.equal(error.cause, failure);
      await trainer.close();
    }
  });
});

Deno.test("data parallel: a fold whose commit fails rejects its contributions with an error that names each, says it may have been applied and keeps the database's as its cause; sent again with its id, each learns its outcome", async () => {
  await onEachStore(async (shared) => {
    const failure = new TypeError("database is locked");
    // The commits of steps fail: r1's without being made, r2's after being made.
    const store: TrainingStore = {
      ...shared,
      commit: async (c) => {
        if (c.fresh.includes("r1")) throw failure;
        const result = await shared.commit(c);
        if (c.fresh.includes("r2")) throw failure;
        return result;
      },
    };
    const trainer = dataParallel(store, { optimizer, init, pollMs: 5 });
    for (const i of [1, 2]) {
      const error = await request(trainer, i).then(() => null, (e) => e);
      assert.ok(error instanceof Error && !(error instanceof TypeError), String(error));
      assert.match(
        error.message,
        new RegExp(
          `^Contribution "r${i}": the commit of the step applying it failed \\(database is ` +
            "locked\\); it may have been applied: send it again, with the same id, to learn " +
            "its outcome$",
        ),
      );
      assert.equal(error.cause, failure);
    }
    await trainer.close();
    const other = dataParallel(shared, { optimizer, init, pollMs: 5 });
    const r1 = await request(other, 1);
    const r2 = await request(other, 2);
    assert.ok(r1.status === "applied" && !r1.duplicate, JSON.stringify(r1));
    assert.ok(r2.status === "applied" && r2.duplicate, JSON.stringify(r2));
    await other.close();
  });
});

Deno.test("data parallel: a fold whose commit is refused and whose read of an id then fails rejects that contribution alone, saying it may yet be applied, with the database's error as its cause", async () => {
  // The failed read took every contribution of the fold with it, each told "its fold failed
  // ... nothing of it was stored, it was not applied": of one whose id the store holds (stored
  // by another submission, which refused the commit), sent again under a new id, the gradient
  // was applied twice.
  await onEachStore(async (shared) => {
    const failure = new TypeError("database is locked");
    let failing = false;
    const store: TrainingStore = {
      ...shared,
      commit: async (c) => {
        if (c.fresh.includes("r1")) {
          // Another process stores r1 first: this commit's check of its id fails.
          await shared.submit({ id: "r1", base: 1, samples: 1 }, new Uint8Array(28));
          failing = true;
        }
        return await shared.commit(c);
      },
      request: (id) => failing && id === "r1" ? Promise.reject(failure) : shared.request(id),
    };
    const trainer = dataParallel(store, { optimizer, init, pollMs: 5 });
    await request(trainer, 0);
    const [error, other] = await Promise.all([
      request(trainer, 1).then(() => null, (e) => e),
      request(trainer, 2),
    ]);
    assert.ok(error instanceof Error && !(error instanceof TypeError), String(error));
    assert.match(
      error.message,
      /^Contribution "r1": looking up its id after the commit of its fold was refused failed \(database is locked\); it may yet be applied: send it again, with the same id, to learn its outcome$/,
    );
    assert.equal(error.cause, failure);
    // The other contribution of that fold waited again, and was applied.
    assert.ok(other.status === "applied" && !other.duplicate, JSON.stringify(other));
    failing = false;
    // Sent again with its id: the stored one's outcome.
    const again = await request(trainer, 1);
    assert.ok(again.status === "applied" && again.duplicate, JSON.stringify(again));
    await trainer.close();
  });
});
