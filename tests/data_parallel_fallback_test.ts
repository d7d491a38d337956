/**
 * The search of a fold whose step no checkpoint holds, at its limits: its lease guard (half the
 * lease's term, counted from when the store granted the lease) firing before or during it, or a
 * checkpoint changed before it, and the folds in halves that then look for the rest (with contributions stored and queued, on each
 * store, and under a small `maxChecks`); and a store with no checkpoint, whose `init` the fold
 * calls once. Time is moved by shifting `Date.now` and `performance.now` (the monotonic clock the
 * guard reads), as a slow call of the store or a slow try would, or `Date.now` alone set back.
 */
import assert from "node:assert/strict";
import { type Optimizer, radam, saveState, step } from "../mod.ts";
import {
  ContributionRefusedError,
  dataParallel,
  type SubmitResult,
  type TrainingStore,
} from "../kv.ts";
import { dataParallelCase, gradientBytes, pause } from "./data_parallel_harness.ts";
import { heldStore, onEachStore, storeView } from "./each_store.ts";

const N = 6;
const base = radam({ lr: 0.05 });
const { init, gradientAt, checkStore } = dataParallelCase(N, base);
const LEASE_MS = 4000;

/** How a test moves the clocks: time passing (`ms`, both clocks), the wall clock set `back`. */
interface Shift {
  ms: number;
  back: number;
}

/**
 * Runs `fn` with the clocks ahead of the real ones by what it adds to `shift.ms` (`Date.now` and
 * the monotonic `performance.now` alike, as time passing would move them), and `Date.now` alone
 * set back by `shift.back` (a wall clock set back, which the monotonic one does not follow).
 */
async function withShiftedClock<T>(fn: (shift: Shift) => Promise<T>): Promise<T> {
  const real = Date.now;
  const perf = performance.now.bind(performance);
  const shift = { ms: 0, back: 0 };
  Date.now = () => real.call(Date) + shift.ms - shift.back;
  Object.defineProperty(performance, "now", {
    value: () => perf() + shift.ms,
    configurable: true,
  });
  try {
    return await fn(shift);
  } finally {
    Date.now = real;
    delete (performance as { now?: unknown }).now;
  }
}

/**
 * The optimizer, counting the states a fold loads from a checkpoint (each try of its search
 * loads one copy: `loadState` reads the optimizer's settings once), `onLoad` called at each.
 */
function countingOptimizer(onLoad: (n: number) => void): Optimizer {
  let loads = 0;
  return Object.create(base, {
    settings: {
      get() {
        onLoad(++loads);
        return base.settings;
      },
    },
  });
}

/**
 * `store` as a process sees it whose lease is held by another until `open()`; `acquired` is
 * called after each acquire the store granted, before it answers; `called` at each commit,
 * listing of stored contributions (each fold lists them first) and answered read of the head.
 */
function gatedStore(
  store: TrainingStore,
  acquired: () => void,
  called: (what: "commit" | "pending" | "head") => void,
): { held: TrainingStore; open(): void } {
  return heldStore(store, {
    acquire: async (...args) => {
      const lease = await store.acquire(...args);
      if (lease !== null) acquired();
      return lease;
    },
    commit: (...args) => (called("commit"), store.commit(...args)),
    pending: (...args) => (called("pending"), store.pending(...args)),
    head: () => store.head().finally(() => called("head")),
  });
}

/**
 * A fold of `stored` contributions in the store (stored by other processes) and `local` queued
 * in this process, those in `bad` too large, and `events` called as they come: the answers
 * (stored ones sent again through the trainer once open), the refusals by id, and the tries
 * of the first fold's search.
 */
async function fold(
  store: TrainingStore,
  stored: readonly string[],
  local: readonly string[],
  bad: ReadonlySet<string>,
  events: { acquired?(): void; load?(n: number): void },
) {
  let loads = 0, loadsAtOpen = 0, firstFoldTries = -1, open = false;
  const optimizer = countingOptimizer((n) => {
    loads = n;
    if (open) events.load?.(n);
  });
  // The first fold steps on the state cached by params(): each load before the next fold
  // (its listing) or the first commit is a try of its search.
  let listings = 0, heads = 0;
  const gated = gatedStore(store, () => events.acquired?.(), (what) => {
    if (what === "head") heads++;
    if (!open || what === "head" || (what === "pending" && ++listings < 2)) return;
    if (firstFoldTries < 0) firstFoldTries = loads - loadsAtOpen;
  });
  const trainer = dataParallel(gated.held, {
    optimizer,
    init,
    pollMs: 2,
    leaseMs: LEASE_MS,
    handoffMs: Infinity,
  });
  try {
    const { step: at, params } = await trainer.params();
    const gradient = (id: string) => {
      const g = gradientAt(Number(id.slice(1)), params);
      if (bad.has(id)) g.w[0] = 1e30; // Adam's exp_avg_sq passes float32's range
      return g;
    };
    for (const id of stored) {
      assert.equal(
        await store.submit({ id, base: at, samples: 1 }, gradientBytes(gradient(id))),
        null,
      );
    }
    const answers = new Map<string, SubmitResult>();
    const refused = new Map<string, ContributionRefusedError>();
    const send = (id: string) =>
      trainer.submit({ id, base: at, gradient: gradient(id) }).then(
        (a) => void answers.set(id, a),
        (error) => {
          if (!(error instanceof ContributionRefusedError)) throw error;
          assert.match(error.message, /no checkpoint holds/, `${id}: ${error.message}`);
          refused.set(id, error);
        },
      );
    heads = 0;
    const queued: Promise<void>[] = [];
    for (const id of local) {
      // Queued in order (each once its read of the parameters is answered: a read of the head).
      queued.push(send(id));
      while (heads < queued.length) await pause(1);
      await pause(5);
    }
    gated.open();
    open = true;
    loadsAtOpen = loads;
    await Promise.all([...queued, ...stored.map(send)]); // the stored ones: their outcome
    for (const [id, a] of answers) assert.equal(a.status, "applied", id);
    const journal = await checkStore(store, answers);
    const applied = journal.flatMap((r) => r.entries.map((e) => e.id));
    assert.deepEqual(
      applied.sort(),
      [...stored, ...local].filter((id) => !bad.has(id)).sort(),
      "every other applied once",
    );
    assert.deepEqual([...refused.keys()].sort(), [...bad].sort(), "only those too large refused");
    return { at, refused, firstFoldTries, journal };
  } finally {
    await trainer.close();
  }
}

const STORED = ["s0", "s1", "s2", "s3"];
const LOCAL = ["r0", "r1", "r2", "r3", "r4", "r5", "r6", "r7"];

for (const maxChecks of [undefined, 10]) {
  const under = maxChecks === undefined ? "" : ` (a store of maxChecks ${maxChecks})`;
  Deno.test(`data parallel: a lease granted more than half its term before acquire answered: no search, its fold's contributions folded again in halves, only those too large refused${under}`, async () => {
    // The guard counted half the term from the answer: the search ran on into the lease's
    // second half, where another process may take it and the fold's commit fail.
    await withShiftedClock(async (shift) => {
      await onEachStore(async (store, name) => {
        let late = true;
        const bad = new Set(["s1", "r5"]);
        const { firstFoldTries, journal } = await fold(store, STORED, LOCAL, bad, {
          acquired() {
            // The answer came 0.6 of the term after the store granted it (the first time).
            if (late) shift.ms += 0.6 * LEASE_MS, late = false;
          },
        });
        assert.equal(firstFoldTries, 0, `${name}: the first fold tried nothing`);
        assert.ok(journal.length > 1, `${name}: folded again in halves`);
      }, maxChecks === undefined ? {} : { kv: { maxChecks } });
    });
  });
}

/**
 * `store` whose leases end by a clock `aheadMs` ahead of this process's (a database that stamps
 * them with its own): each lease acquire or a commit gives, its `expires` so much later.
 */
function clockAhead(store: TrainingStore, aheadMs: number): TrainingStore {
  const later = <T extends { expires: number } | null>(lease: T): T =>
    lease === null ? lease : { ...lease, expires: lease.expires + aheadMs };
  return storeView(store, {
    acquire: async (...args) => later(await store.acquire(...args)),
    commit: async (...args) => {
      const result = await store.commit(...args);
      return result === null ? null : { ...result, lease: later(result.lease) };
    },
  });
}

Deno.test("data parallel: a lease granted more than half its term before acquire answered, by a store whose clock runs ahead: no search, only those too large refused", async () => {
  // The lease's end less its term came after the answer (the store's clock is not this
  // process's): the guard counted from the answer, and the search ran on into the lease's
  // second half, as when it counted from the answer always.
  await withShiftedClock(async (shift) => {
    await onEachStore(async (inner, name) => {
      let late = true;
      const store = clockAhead(inner, 3_600_000);
      const bad = new Set(["s1", "r5"]);
      const { firstFoldTries, journal } = await fold(store, STORED, LOCAL, bad, {
        acquired() {
          if (late) shift.ms += 0.6 * LEASE_MS, late = false;
        },
      });
      assert.equal(firstFoldTries, 0, `${name}: the first fold tried nothing`);
      assert.ok(journal.length > 1, `${name}: folded again in halves`);
    });
  });
});

for (
  const [stored, local, found, left] of [
    // Parts in order, stored first: tries [s0..s3] (steps), [s4 s5 r0 r1], [s4 s5], [s4].
    [["s0", "s1", "s2", "s3", "s4", "s5"], ["r0", "r1"], "s4", "r1"],
    // Tries [s0..s3] (steps), [r0..r3], [r0 r1], [r0].
    [["s0", "s1", "s2", "s3"], ["r0", "r1", "r2", "r3"], "r0", "r3"],
  ] as const
) {
  const kind = found.startsWith("s") ? "stored" : "queued";
  Deno.test(`data parallel: a search its lease guard stops refuses the one it found (${kind}) in that fold`, async () => {
    // The guard threw it away: the folds in halves that followed found it again, and refused it
    // after their first half's step (a stored one stayed in the store meanwhile, for the next
    // holder to search again).
    await withShiftedClock(async (shift) => {
      await onEachStore(async (store, name) => {
        const bad = new Set([found, left]);
        const { at, refused, journal } = await fold(store, stored, local, bad, {
          load(n) {
            // Half the term passes during the fourth try, which finds it; the other is left.
            if (n === 4) shift.ms += LEASE_MS;
          },
        });
        assert.equal(refused.get(found)?.step, at, `${name}: refused by the fold that found it`);
        if (kind === "stored") {
          const record = await store.request(found);
          assert.equal(record?.state === "refused" && record.step, at, name);
        }
        assert.ok(journal.length > 1, `${name}: ${left} found by the folds in halves`);
      });
    });
  });
}

Deno.test("data parallel: a search its lease guard stops at half the term on the monotonic clock, though the wall clock was set back during it", async () => {
  // The guard read the wall clock: set back an hour during the search, it let the search run on
  // past the lease's term (here: on to the second one too large, found in that same fold).
  await withShiftedClock(async (shift) => {
    await onEachStore(async (store, name) => {
      const bad = new Set(["s4", "r1"]);
      const stored = ["s0", "s1", "s2", "s3", "s4", "s5"];
      const { at, refused, journal } = await fold(store, stored, ["r0", "r1"], bad, {
        load(n) {
          // The lease's whole term passes during the fourth try (which finds s4), and the wall
          // clock is set back an hour meanwhile.
          if (n === 4) shift.ms += LEASE_MS, shift.back += 3_600_000;
        },
      });
      assert.ok(journal.length > 1, `${name}: r1 found by the folds in halves`);
      assert.equal(refused.get("s4")?.step, at, `${name}: refused by the fold that found it`);
    });
  });
});

Deno.test("data parallel: a fold whose store's checkpoint changed before its search tries nothing: its contributions folded again in halves, only those too large refused", async () => {
  await onEachStore(async (inner, name) => {
    let moved = false;
    const store = storeView(inner, {
      load: async () => {
        const stored = await inner.load();
        // The first load after the lease is granted: the copies of the search's tries.
        if (!moved || stored === null) return stored;
        moved = false;
        return { ...stored, version: "another" };
      },
    });
    const bad = new Set(["s1", "r5"]);
    let first = true;
    const { firstFoldTries, journal } = await fold(store, STORED, LOCAL, bad, {
      acquired() {
        if (first) moved = true, first = false;
      },
    });
    assert.equal(firstFoldTries, 0, `${name}: the first fold tried nothing`);
    assert.ok(journal.length > 1, `${name}: folded again in halves`);
  });
});

Deno.test("data parallel: a fold on a store with no checkpoint calls init once, its search trying copies of what it gave", async () => {
  // Each try called init again: an init that gives other values each call (random weights)
  // gave each try another start, and the step committed started from neither.
  await onEachStore(async (store, name) => {
    let calls = 0;
    const made: Float32Array[] = [];
    const randomInit = () => {
      const k = ++calls;
      const w = new Float32Array(N).map((_, j) => 0.1 * k + j);
      made.push(w.slice());
      return { w, b: new Float32Array(1) };
    };
    const grads = new Map<string, Record<string, Float32Array>>();
    for (let i = 0; i < 6; i++) {
      const g = gradientAt(i, init());
      if (i === 4) g.w[0] = 1e30;
      grads.set(`m${i}`, g);
      assert.equal(
        await store.submit({ id: `m${i}`, base: 0, samples: 1 }, gradientBytes(g)),
        null,
      );
    }
    const trainer = dataParallel(store, { optimizer: base, init: randomInit, pollMs: 2 });
    // Each sent again: answered once its stored one is settled (by a fold with no checkpoint).
    const outcomes = await Promise.allSettled(
      [...grads.keys()].map((id) => trainer.submit({ id, base: 0, gradient: grads.get(id)! })),
    );
    await trainer.close();
    assert.equal(calls, 1, `${name}: init called once`);
    outcomes.forEach((o, i) => {
      if (i === 4) {
        assert.ok(o.status === "rejected" && o.reason instanceof ContributionRefusedError, name);
      } else assert.ok(o.status === "fulfilled" && o.value.status === "applied", `${name}: m${i}`);
    });
    const journal = await store.journal(0, 100);
    assert.deepEqual(journal.map((r) => r.entries.map((e) => e.id)), [[
      "m0",
      "m1",
      "m2",
      "m3",
      "m5",
    ]]);
    // The step committed is the one from what init gave, on the mean of the others.
    let state = await base.init({ w: made[0], b: new Float32Array(1) });
    for (const k of ["w", "b"] as const) {
      for (let j = 0; j < state.grads[k].length; j++) {
        let sum = 0;
        for (const id of ["m0", "m1", "m2", "m3", "m5"]) sum += grads.get(id)![k][j];
        state.grads[k][j] = sum / 5;
      }
    }
    state = step(state);
    assert.deepEqual((await store.load())!.bytes, await saveState(state), name);
  });
});

Deno.test("data parallel: a search its lease guard stopped, whose commit of the refusals fails, rejects the fold's own contributions and folds none of them again", async () => {
  // They were queued again before that commit, then rejected by the fold's failure (saying
  // nothing of them was stored), and the next fold applied them all the same.
  await withShiftedClock(async (shift) => {
    await onEachStore(async (inner, name) => {
      let loads = 0, atOpen = -1, failed = false;
      const optimizer = countingOptimizer((n) => {
        loads = n;
        if (atOpen >= 0 && n - atOpen === 4) shift.ms += LEASE_MS; // the try that finds s4
      });
      const store = storeView(inner, {
        commit: (c) => {
          if (c.checkpoint !== null || failed) return inner.commit(c);
          failed = true;
          return Promise.reject(new Error("the database failed"));
        },
      });
      let heads = 0;
      const { held, open } = gatedStore(
        store,
        () => {},
        (what) => void (what === "head" && heads++),
      );
      const options = { optimizer, init, pollMs: 2, leaseMs: LEASE_MS, handoffMs: Infinity };
      const trainer = dataParallel(held, options);
      const { step: at, params } = await trainer.params();
      const gradient = (id: string) => {
        const g = gradientAt(Number(id.slice(1)), params);
        if (id === "s4" || id === "r1") g.w[0] = 1e30;
        return g;
      };
      const stored = ["s0", "s1", "s2", "s3", "s4", "s5"];
      for (const id of stored) {
        assert.equal(
          await inner.submit({ id, base: at, samples: 1 }, gradientBytes(gradient(id))),
          null,
        );
      }
      const outcome = (id: string) =>
        trainer.submit({ id, base: at, gradient: gradient(id) }).then((a) => a, (e) => e);
      heads = 0;
      const own: Promise<unknown>[] = [];
      for (const id of ["r0", "r1"]) {
        own.push(outcome(id)); // queued in order, as in `fold`
        while (heads < own.length) await pause(1);
        await pause(5);
      }
      atOpen = loads;
      open();
      for (const error of await Promise.all(own)) {
        const refused = error instanceof ContributionRefusedError;
        assert.ok(error instanceof Error && !refused, `${name}: ${error}`);
        assert.match(error.message, /its fold failed/, name);
      }
      assert.ok(failed, name);
      await Promise.allSettled(stored.map(outcome)); // the stored ones: folded on
      const journal = await inner.journal(0, 100);
      const applied = journal.flatMap((r) => r.entries.map((e) => e.id)).sort();
      assert.deepEqual(applied, ["s0", "s1", "s2", "s3", "s5"], `${name}: none of its own`);
      await trainer.close();
    });
  });
});

Deno.test("data parallel: a search whose tries are long begins none that would end past half the lease's term", async () => {
  // The guard was read before each try alone: begun at 0.4 of the term, a third try of 0.2
  // ran on to 0.6, into the second half, where another process may take the lease.
  await withShiftedClock(async (shift) => {
    await onEachStore(async (store, name) => {
      let slow = 0;
      const { firstFoldTries, journal } = await fold(store, STORED, LOCAL, new Set(["s1", "r5"]), {
        load() {
          // Each of the first fold's tries takes a fifth of the term.
          if (slow++ < 3) shift.ms += 0.2 * LEASE_MS;
        },
      });
      assert.equal(firstFoldTries, 2, `${name}: two tries, the third not begun`);
      assert.ok(journal.length > 1, `${name}: the others found by the folds in halves`);
    });
  });
});
