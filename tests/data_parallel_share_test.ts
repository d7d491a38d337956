/**
 * The data-parallel mode's fold shares: a holder whose own queue fills `maxFold` leaves the
 * contributions stored by other processes their share of each fold.
 */
import assert from "node:assert/strict";
import { radam } from "../mod.ts";
import { dataParallel, memoryCheckpointStore, type TrainingStore } from "../kv.ts";
import { dataParallelCase, gradientBytes } from "./data_parallel_harness.ts";
import { onEachStore as eachStore } from "./each_store.ts";

const N = 4;
const optimizer = radam({ lr: 0.05 });
const { init, gradientAt, checkStore, request, burst } = dataParallelCase(N, optimizer);

/** Stores of both kinds, fresh, for `fn`. */
const onEachStore = (fn: (store: TrainingStore) => Promise<void>) =>
  eachStore(fn, { memory: { name: "in memory", latencyMs: 1 }, kv: { chunkBytes: 64 } });

Deno.test("data parallel: contributions stored by other processes have their share of a fold whose holder's own queue fills it", async () => {
  // A holder whose queue filled maxFold took no stored contribution: those of other processes
  // waited while it stayed busy (under sustained load, until refused as stale).
  await onEachStore(async (store) => {
    const K = 8;
    let open!: () => void;
    const gate = new Promise<void>((resolve) => open = resolve);
    let asked = 0;
    // No fold before every local contribution is queued: the lease is held back till then.
    const held: TrainingStore = {
      ...store,
      acquire: async (...args) => (await gate, await store.acquire(...args)),
      request: (id) => (asked++, store.request(id)),
    };
    const trainer = dataParallel(held, { optimizer, init, maxFold: 2, pollMs: 5 });
    const { step: base, params } = await trainer.params();
    const g = gradientAt(K, params);
    const bytes = gradientBytes(g);
    assert.equal(await store.submit({ id: `r${K}`, base, samples: 1 }, bytes), null);
    const answers = Array.from(
      { length: K },
      (_, i) => trainer.submit({ id: `r${i}`, base, gradient: gradientAt(i, params) }),
    );
    while (asked < K) await new Promise((resolve) => setTimeout(resolve, 5));
    await new Promise((resolve) => setTimeout(resolve, 50)); // each is queued
    open();
    const results = new Map((await Promise.all(answers)).map((a) => [a.id, a]));
    assert.ok([...results.values()].every((a) => a.status === "applied"), store.name);
    const journal = await checkStore(store, new Map());
    const ids = journal.map((r) => r.entries.map((e) => e.id));
    assert.ok(ids[0].includes(`r${K}`), `${store.name}: the first fold ${ids[0]}`);
    assert.deepEqual(ids.flat().sort(), Array.from({ length: K + 1 }, (_, i) => `r${i}`).sort());
    await trainer.close();
  });
});

Deno.test("data parallel: bursts of several processes past what a fold takes of a process's own (90) are all applied within staleness, the lease handed on between their folds", async () => {
  // maxFold 256 on a store of no bound: a fold takes 90 of its holder's own, which then hands
  // the lease on to a process waiting for it. Its burst's rest, kept for its own folds as if it
  // held the lease throughout, waited while the others' folds stepped, and most were refused.
  const store = memoryCheckpointStore();
  const options = { optimizer, init, pollMs: 2, leaseMs: 2000, staleness: 4, maxFold: 256 };
  const trainers = Array.from({ length: 3 }, () => dataParallel(store, options));
  await request(trainers[0], 0); // the first checkpoint
  const { answers, refused } = await burst(trainers, 200);
  assert.equal(refused.length, 0, `${refused.length} refused`);
  assert.equal(answers.size, 600);
  const journal = await checkStore(store, answers);
  assert.equal(journal.flatMap((r) => r.entries).length, 601, "each once, the first too");
});
