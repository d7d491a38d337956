/**
 * The optimistic step's time budget (`timeoutMs`), with the wall clock set back an hour during
 * the step (as a time sync may): it is counted on the monotonic clock, which the wall clock's
 * setting does not move, so the step does not go on an hour longer.
 */
import assert from "node:assert/strict";
import { radam } from "../mod.ts";
import {
  CheckpointConflictError,
  memoryCheckpointStore,
  optimisticStep,
  type TrainingStore,
} from "../kv.ts";
import { storeView, within, withWallClock } from "./each_store.ts";

const HOUR = 3_600_000;

/** The error `promise` rejects with, or "late" when `ms` pass first (the timer cleared). */
function rejection(promise: Promise<unknown>, ms: number): Promise<unknown> {
  return within(promise.then(() => "resolved", (error) => error), ms);
}

const options = {
  optimizer: radam(),
  init: () => ({ w: new Float32Array(2) }),
  gradient: () => {},
  timeoutMs: 300,
};

Deno.test("optimistic step: attempts another writer always beats end at timeoutMs, though the wall clock was set back an hour meanwhile", async () => {
  // Its deadline was a wall-clock time: set back an hour during the first attempt, the step
  // tried again for an hour.
  await withWallClock(async (wall) => {
    const inner = memoryCheckpointStore();
    let attempts = 0;
    const store = storeView(inner, {
      commit: (c) => {
        if (++attempts === 1) wall.back += HOUR;
        return c.checkpoint === null ? inner.commit(c) : Promise.resolve(null); // beaten
      },
    });
    const error = await rejection(optimisticStep(store, options), 3000);
    assert.ok(error instanceof CheckpointConflictError, String(error));
    assert.ok(attempts > 1, `${attempts} attempts`);
    assert.match(error.message, /on each of \d+ attempts in \d+ ms/);
    const ms = Number(/in (\d+) ms/.exec(error.message)![1]);
    assert.ok(ms >= 0 && ms < 3000, `${ms} ms`);
  });
});

Deno.test("optimistic step: a request id stored by the data-parallel mode, still pending, is waited for until timeoutMs, though the wall clock was set back an hour meanwhile", async () => {
  // Its deadline was a wall-clock time: set back an hour, the step waited for the contribution
  // an hour longer.
  await withWallClock(async (wall) => {
    const inner: TrainingStore = memoryCheckpointStore();
    assert.equal(await inner.submit({ id: "p", base: 0, samples: 1 }, new Uint8Array(8)), null);
    let first = true;
    const store = storeView(inner, {
      request: (id) => {
        if (first) first = false, wall.back += HOUR;
        return inner.request(id);
      },
    });
    const error = await rejection(optimisticStep(store, { ...options, id: "p" }), 3000);
    assert.ok(error instanceof Error, String(error));
    assert.match(error.message, /not applied or refused within timeoutMs; it may yet be applied/);
  });
});
