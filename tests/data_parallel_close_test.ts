/**
 * The data-parallel trainer's ends: `close()` leaves nothing running, and a submit settles by
 * its wait limit whatever the database does.
 */
import assert from "node:assert/strict";
import { radam } from "../mod.ts";
import { dataParallel, memoryCheckpointStore, type TrainingStore } from "../store.ts";
import { dataParallelCase } from "./data_parallel_harness.ts";

const optimizer = radam({ lr: 0.05 });
const { init, gradientAt } = dataParallelCase(4, optimizer);

/** A promise and the function that resolves it. */
function signal(): { promise: Promise<void>; resolve: () => void } {
  let resolve!: () => void;
  const promise = new Promise<void>((r) => resolve = r);
  return { promise, resolve };
}

const pause = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

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
  await pause(20); // b is queued
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
  const c = trainer.submit({ id: "c", base, gradient: gradientAt(0, params) });
  await trainer.close(); // c is still asking the store whether its id is known
  await assert.rejects(c, (e: Error) => e instanceof TypeError && /closed/.test(e.message));
  await pause(100);
  assert.equal(await store.request("c"), null);
  assert.deepEqual(await store.pending(10), []);
  assert.equal((await store.head())?.step, 0);
});
