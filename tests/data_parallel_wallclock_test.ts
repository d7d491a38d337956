/**
 * The data-parallel mode's local waits, with the wall clock set back an hour meanwhile (as a
 * time sync may): a submit's deadline (`waitMs`), the hand-off of a queued contribution
 * (`handoffMs`), the time a crowded process keeps its own (`leaseMs`), and the pause before a
 * process asks for the lease again after a conflict are each measured on the monotonic clock,
 * which the wall clock's setting does not move: none of them waits an hour more. So is the age
 * of a waiting note as the lease's holder judges it.
 */
import assert from "node:assert/strict";
import { radam } from "../mod.ts";
import { dataParallel, type SubmitResult, type TrainingStore } from "../kv.ts";
import { dataParallelCase } from "./data_parallel_harness.ts";
import { heldStore, onEachStore, storeView, within, withWallClock } from "./each_store.ts";
import { WaitingNotes } from "../store/_notes.ts";

const optimizer = radam({ lr: 0.05 });
const { init, gradientAt } = dataParallelCase(4, optimizer);
const HOUR = 3_600_000;

/** A promise and the function that resolves it. */
function signal(): { promise: Promise<void>; resolve: () => void } {
  let resolve!: () => void;
  const promise = new Promise<void>((r) => resolve = r);
  return { promise, resolve };
}

Deno.test("data parallel: a submit waiting for a lease held by another answers pending at waitMs, though the wall clock was set back an hour meanwhile", async () => {
  // Its deadline was a wall-clock time: set back an hour after the submit began, it waited an
  // hour past waitMs.
  await withWallClock(async (wall) => {
    await onEachStore(async (inner, name) => {
      let first = true;
      const { held, open } = heldStore(inner, {
        request: (id) => {
          if (first) first = false, wall.back += HOUR;
          return inner.request(id);
        },
      });
      const trainer = dataParallel(held, { optimizer, init, pollMs: 2, waitMs: 300 });
      try {
        const { step, params } = await trainer.params();
        first = true;
        const sent = trainer.submit({ id: "a", base: step, gradient: gradientAt(1, params) });
        const answer = await within(sent, 5000);
        assert.deepEqual(answer, { status: "pending", id: "a" }, name);
        open();
      } finally {
        await trainer.close();
        wall.back = 0;
      }
    });
  });
});

/**
 * `inner` as a process sees it whose lease is held by another until `open()`, the wall clock
 * set back an hour at its second ask for the lease (`wall.back`), and `stored` resolved once a
 * contribution of it is stored for the holder's fold.
 */
function handingOff(inner: TrainingStore, wall: { back: number }) {
  const stored = signal();
  let asks = 0;
  const { held: gated, open } = heldStore(inner, {
    submit: (...args) => inner.submit(...args).finally(stored.resolve),
  });
  const held = storeView(gated, {
    acquire: (...args) => {
      if (++asks === 2) wall.back += HOUR; // once a contribution waits here
      return gated.acquire(...args);
    },
  });
  return { held, open, stored: stored.promise, reset: () => asks = 0 };
}

Deno.test("data parallel: a contribution queued for handoffMs is handed off, though the wall clock was set back an hour meanwhile", async () => {
  // How long it had waited was counted on the wall clock: set back an hour, it was handed off
  // an hour late (here: at waitMs, the submit answered pending), the holder's folds not taking it.
  await withWallClock(async (wall) => {
    await onEachStore(async (inner, name) => {
      const { held, open, stored, reset } = handingOff(inner, wall);
      const options = { optimizer, init, pollMs: 2, handoffMs: 50, waitMs: 10_000 };
      const trainer = dataParallel(held, options);
      try {
        const { step, params } = await trainer.params();
        reset();
        const sent = trainer.submit({ id: "a", base: step, gradient: gradientAt(1, params) });
        assert.notEqual(await within(stored, 3000), "late", `${name}: handed off in time`);
        open();
        const answer = await sent;
        assert.deepEqual([answer.status, answer.id], ["applied", "a"], name);
      } finally {
        await trainer.close();
        wall.back = 0;
      }
    });
  });
});

Deno.test("data parallel: a process that served more than handoffLimit submits keeps its own for leaseMs, though the wall clock was set back an hour meanwhile", async () => {
  // Until when it counted as crowded was a wall-clock time: set back an hour, it kept its own
  // contributions (none handed off) for an hour more.
  await withWallClock(async (wall) => {
    await onEachStore(async (inner, name) => {
      const { held, open, stored } = handingOff(inner, { back: 0 });
      const options = { optimizer, init, pollMs: 2, leaseMs: 300, waitMs: 10_000 };
      const trainer = dataParallel(held, options);
      try {
        const { step, params } = await trainer.params();
        const sent = trainer.submit({ id: "a", base: step, gradient: gradientAt(1, params) });
        // A second submit at once (refused: computed past the current step) crowds the process.
        const ahead = trainer.submit({ id: "b", base: step + 5, gradient: gradientAt(2, params) });
        wall.back += HOUR;
        await assert.rejects(ahead, RangeError);
        assert.notEqual(await within(stored, 3000), "late", `${name}: handed off after leaseMs`);
        open();
        const answer = await sent;
        assert.deepEqual([answer.status, answer.id], ["applied", "a"], name);
      } finally {
        await trainer.close();
        wall.back = 0;
      }
    });
  });
});

Deno.test("data parallel: after a refused commit, a process asks for the lease again after pollMs, though the wall clock was set back an hour meanwhile", async () => {
  // Its pause before asking again ended at a wall-clock time: set back an hour, it did not ask
  // for an hour (the submit answered pending at waitMs, nothing folded).
  await withWallClock(async (wall) => {
    await onEachStore(async (inner, name) => {
      let conflicts = 0;
      const store = storeView(inner, {
        commit: (c) => {
          if (!c.fresh.includes("a") || conflicts > 0) return inner.commit(c);
          conflicts++; // refused, as if another process had committed first
          return Promise.resolve(null);
        },
        // Read by the conflict's settling, once its pause is set.
        request: (id) => {
          if (conflicts === 1 && wall.back === 0) wall.back += HOUR;
          return inner.request(id);
        },
      });
      const trainer = dataParallel(store, { optimizer, init, pollMs: 2, waitMs: 10_000 });
      try {
        const { step, params } = await trainer.params();
        const sent = trainer.submit({ id: "a", base: step, gradient: gradientAt(1, params) });
        const answer = await within(sent, 3000) as SubmitResult | "late";
        assert.equal(conflicts, 1, name);
        assert.notEqual(answer, "late", `${name}: folded again in time`);
        assert.deepEqual(answer, { status: "applied", id: "a", step: step + 1, duplicate: false });
      } finally {
        await trainer.close();
        wall.back = 0;
      }
    });
  });
});

Deno.test("data parallel: a holder judges whether a waiting note is still asked for by the time passed, whatever its wall clock is set to", () => {
  // The holder timed the notes it saw on its wall clock: set back an hour, a process that had
  // stopped asking was handed the lease for an hour more; set forward, one that asked was not.
  const real = Date.now;
  let mono = 1000;
  Object.defineProperty(performance, "now", { value: () => mono, configurable: true });
  try {
    const notes = new WaitingNotes();
    const note = { since: 5, at: 5 };
    assert.equal(notes.longest([["w", note]], "holder"), "w");
    mono += 1500; // unchanged for 1.5 s: no longer asked for
    Date.now = () => real.call(Date) - HOUR;
    assert.equal(notes.longest([["w", note]], "holder"), null);
    const again = { since: 5, at: 6 };
    assert.equal(notes.longest([["w", again]], "holder"), "w");
    mono += 10; // asked 10 ms ago
    Date.now = () => real.call(Date) + HOUR;
    assert.equal(notes.longest([["w", again]], "holder"), "w");
  } finally {
    Date.now = real;
    delete (performance as { now?: unknown }).now;
  }
});
