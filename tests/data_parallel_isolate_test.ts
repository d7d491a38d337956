/**
 * The folds after a step no checkpoint holds, which look for whose gradient it was by halves:
 * several gradients too large in one fold, in one half or both, each refused and every other
 * applied once, the store the journal's replay bit for bit, on each store, with 8-bit moments,
 * and with threaded states (the copies tried on freed, their workers stopped).
 */
import assert from "node:assert/strict";
import { type Optimizer, radam } from "../mod.ts";
import {
  ContributionRefusedError,
  dataParallel,
  type DataParallelTrainer,
  type SubmitResult,
  type TrainingStore,
} from "../kv.ts";
import { dataParallelCase, liveWorkers } from "./data_parallel_harness.ts";
import { heldStore, onEachStore } from "./each_store.ts";

const N = 6;

/**
 * Submits `n` contributions at once, those in `bad` too large: the ids refused, and applied
 * (checked to be the store's journal, whose replay is the store bit for bit).
 */
async function burst(
  store: TrainingStore,
  n: number,
  bad: ReadonlySet<number>,
  optimizer: Optimizer = radam({ lr: 0.05 }),
) {
  const { init, gradientAt, checkStore } = dataParallelCase(N, optimizer);
  const { held, open } = heldStore(store);
  const trainer: DataParallelTrainer = dataParallel(held, {
    optimizer,
    init,
    pollMs: 2,
    handoffMs: Infinity,
  });
  try {
    const { step: base, params } = await trainer.params();
    const refused: string[] = [];
    const answers = new Map<string, SubmitResult>();
    const all = Promise.all(Array.from({ length: n }, async (_, i) => {
      const gradient = gradientAt(i, params);
      if (bad.has(i)) gradient.w[0] = 1e30;
      try {
        answers.set(`r${i}`, await trainer.submit({ id: `r${i}`, base, gradient }));
      } catch (error) {
        if (!(error instanceof ContributionRefusedError)) throw error;
        assert.match(error.message, /no checkpoint holds/, `r${i}: ${error.message}`);
        refused.push(`r${i}`);
      }
    }));
    await new Promise((resolve) => setTimeout(resolve, 50));
    open();
    await all;
    for (const [id, a] of answers) assert.equal(a.status, "applied", id);
    // Each applied once, in the step its answer names, and the store the journal's replay.
    const journal = await checkStore(store, answers);
    const applied = journal.flatMap((r) => r.entries.map((e) => e.id)).sort();
    return { refused: refused.sort(), applied };
  } finally {
    await trainer.close();
  }
}

const ids = (xs: Iterable<number>) => [...xs].map((i) => `r${i}`).sort();
const others = (n: number, bad: ReadonlySet<number>) =>
  ids(Array.from({ length: n }, (_, i) => i).filter((i) => !bad.has(i)));

for (
  const [n, bad] of [
    [2, [0, 1]],
    [3, [0, 1]],
    [3, [0, 1, 2]],
    [4, [0, 1]],
    [4, [1, 2]],
    [5, [0, 4]],
    [8, [0, 1, 2, 3, 4, 5, 6, 7]],
    [40, [0, 1]],
    [40, [13, 14, 31]],
    [40, [9, 19, 29, 39]],
    [40, [4, 9, 14, 19, 24, 29, 34, 39]],
    [40, [19, 39]],
  ] as [number, number[]][]
) {
  Deno.test(`data parallel: of a fold of ${n} with gradients too large at ${bad}, only those are refused`, async () => {
    const set = new Set(bad);
    await onEachStore(async (store, name) => {
      const { refused, applied } = await burst(store, n, set);
      assert.deepEqual(refused, ids(set), name);
      assert.deepEqual(applied, others(n, set), name);
    });
  });
}

Deno.test("data parallel with 8-bit moments: of a fold with gradients too large, only those are refused", async () => {
  const set = new Set([3, 4, 17]);
  await onEachStore(async (store, name) => {
    const { refused, applied } = await burst(store, 24, set, radam({ lr: 0.05, states: "8bit" }));
    assert.deepEqual(refused, ids(set), name);
    assert.deepEqual(applied, others(24, set), name);
  });
});

Deno.test("data parallel: two processes with gradients too large among theirs: those refused, every other applied once, the store the journal's replay", async () => {
  const optimizer = radam({ lr: 0.05 });
  const { init, gradientAt, checkStore } = dataParallelCase(N, optimizer);
  const bad = new Set([2, 3, 11, 17, 18, 29]);
  await onEachStore(async (store, name, other) => {
    const options = { optimizer, init, pollMs: 2, leaseMs: 200, handoffMs: 5 };
    const trainers = [dataParallel(store, options), dataParallel(other, options)];
    const answers = new Map<string, SubmitResult>();
    const refused: string[] = [];
    await Promise.all(Array.from({ length: 30 }, async (_, i) => {
      const trainer = trainers[i % 2];
      const { step: base, params } = await trainer.params();
      const gradient = gradientAt(i, params);
      if (bad.has(i)) gradient.w[1] = -1e30;
      try {
        answers.set(
          `r${i}`,
          await trainer.submit({ id: `r${i}`, base, samples: 1 + (i % 3), gradient }),
        );
      } catch (error) {
        if (!(error instanceof ContributionRefusedError)) throw error;
        assert.match(error.message, /no checkpoint holds/, `r${i}: ${error.message}`);
        refused.push(`r${i}`);
      }
    }));
    for (const trainer of trainers) await trainer.close();
    assert.deepEqual(refused.sort(), ids(bad), name);
    for (const [id, a] of answers) assert.equal(a.status, "applied", `${name}: ${id}`);
    const journal = await checkStore(store, answers);
    const applied = journal.flatMap((r) => r.entries.map((e) => e.id)).sort();
    assert.deepEqual(applied, others(30, bad), name);
  });
});

Deno.test("data parallel with threaded states: the copies a fold tries its halves on are each freed, their workers stopped", async () => {
  const threaded = radam({ lr: 0.05, threads: 2, threadThreshold: 0 });
  const set = new Set([2, 5, 11]);
  await onEachStore(async (store, name) => {
    let result!: Awaited<ReturnType<typeof burst>>;
    const live = await liveWorkers(async () => {
      result = await burst(store, 16, set, threaded);
    });
    assert.deepEqual(result.refused, ids(set), name);
    assert.deepEqual(result.applied, others(16, set), name);
    assert.equal(live, 0, `${name}: workers left running`);
  });
});
