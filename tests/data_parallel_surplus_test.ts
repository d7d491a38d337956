/**
 * The lease holder's surplus under a small `maxChecks` (a commit checks few fresh ids): the
 * contributions of its own that its next folds would reach only past `staleness` are stored for
 * them, judged from the step the store is at; and the folds after a step no checkpoint holds take
 * those of that step first, stored or not, in halves, so that the others are applied within
 * `staleness`.
 */
import assert from "node:assert/strict";
import { radam } from "../mod.ts";
import {
  ContributionRefusedError,
  dataParallel,
  type DataParallelTrainer,
  kvCheckpointStore,
  type SubmitResult,
  type TrainingStore,
} from "../kv.ts";
import { dataParallelCase, gradientBytes } from "./data_parallel_harness.ts";
import { limitedKv, withKv } from "./kv_fakes.ts";
import { heldStore, onEachStore, storeView } from "./each_store.ts";

const N = 6;
const optimizer = radam({ lr: 0.05 });
const { init, gradientAt, request } = dataParallelCase(N, optimizer);

/** `ids` submitted at once through `trainer` at `base`: the answers, and the ids refused. */
async function submitAll(
  trainer: DataParallelTrainer,
  ids: readonly string[],
  gradient: (id: string) => Record<string, Float32Array>,
  base: number,
) {
  const answers = new Map<string, SubmitResult>();
  const refused: string[] = [];
  await Promise.all(ids.map(async (id) => {
    try {
      answers.set(id, await trainer.submit({ id, base, gradient: gradient(id) }));
    } catch (error) {
      if (!(error instanceof ContributionRefusedError)) throw error;
      refused.push(id);
    }
  }));
  return { answers, refused };
}

/**
 * `store` as a process sees it whose lease is held by another until `open()`, and whose writes
 * of gradients each fold sees once made: `pending` waits for those sent before it.
 */
function heldWriting(store: TrainingStore): { held: TrainingStore; open(): void } {
  const writes: Promise<unknown>[] = [];
  return heldStore(store, {
    submit(...args) {
      const write = store.submit(...args);
      writes.push(write.catch(() => {}));
      return write;
    },
    pending: async (n) => (await Promise.all(writes), await store.pending(n)),
  });
}

/** Lets the submits queued meanwhile in (their reads of the store answered). */
const settle = () => new Promise((resolve) => setTimeout(resolve, 50));

Deno.test("data parallel on Deno KV: under a small maxChecks, after a step no checkpoint holds, the folds that look for whose gradient it was take those folded with it, and the rest is applied within staleness", async () => {
  // A fold of 7 (maxFresh under 10 checks) with a gradient too large for the moments. The next 7
  // folds took one contribution each, to find whose it was, stored ones first (those the holder
  // stored as its surplus, 52 here), so that the 7 waited, were folded together again once those
  // 7 folds were over, and failed again: the next 53 folds took one each, and every contribution
  // but one was refused as more than 7 steps behind. (That fold now finds it by itself.)
  await withKv(async (kv) => {
    const store = kvCheckpointStore(limitedKv(kv), ["dp"], { maxChecks: 10 });
    const { held, open } = heldWriting(store);
    const options = { optimizer, init, pollMs: 2, staleness: 7, handoffMs: Infinity };
    const trainer = dataParallel(held, options);
    const { step: base, params } = await trainer.params();
    const ids = Array.from({ length: 60 }, (_, i) => `r${i}`);
    const gradient = (id: string) => {
      const g = gradientAt(Number(id.slice(1)), params);
      if (id === "r0") g.w[0] = 1e30; // Adam's exp_avg_sq passes float32's range
      return g;
    };
    // r0 queued first, the others after it: the first fold takes r0 and 6 others.
    const first = submitAll(trainer, ids.slice(0, 1), gradient, base);
    await settle();
    const others = submitAll(trainer, ids.slice(1), gradient, base);
    await settle();
    open();
    const [one, rest] = await Promise.all([first, others]);
    const answers = new Map([...one.answers, ...rest.answers]);
    const refused = [...one.refused, ...rest.refused];
    assert.deepEqual(refused, ["r0"], "only the one too large");
    assert.equal(answers.size, 59);
    for (const [id, a] of answers) assert.equal(a.status, "applied", id);
    const journal = await store.journal(0, 1000);
    assert.equal(journal.flatMap((r) => r.entries).length, 59, "each once");
    await trainer.close();
  });
});

Deno.test("data parallel on Deno KV: under a small maxChecks, a holder that takes the lease back after others' steps judges its queue from the step the store is at", async () => {
  // Its 40 were queued at step 1 while another process held the lease and made 7 steps: its
  // first fold takes 7 of them, 7 steps behind, and its second must take the other 33, 7 of its
  // own and the rest stored meanwhile. It judged them from the step it last saw, 0 steps behind,
  // stored none before its first fold, and those it stored after were taken by its third fold,
  // 9 steps behind, and refused (the staleness bound is 8).
  await withKv(async (kv) => {
    const options = { optimizer, init, pollMs: 2, staleness: 8, handoffMs: Infinity };
    const other = dataParallel(
      kvCheckpointStore(limitedKv(kv), ["dp"], { maxChecks: 10 }),
      options,
    );
    await request(other, 1000); // the first checkpoint
    const { held, open } = heldWriting(kvCheckpointStore(limitedKv(kv), ["dp"], { maxChecks: 10 }));
    const trainer = dataParallel(held, options);
    const { step: base, params } = await trainer.params();
    const ids = Array.from({ length: 40 }, (_, i) => `r${i}`);
    const all = submitAll(trainer, ids, (id) => gradientAt(Number(id.slice(1)), params), base);
    await settle(); // all queued
    for (let i = 0; i < 7; i++) await request(other, 1001 + i);
    open();
    const { answers, refused } = await all;
    assert.deepEqual(refused, []);
    for (const [id, a] of answers) assert.equal(a.status, "applied", id);
    await trainer.close();
    await other.close();
  });
});

Deno.test("data parallel: after a step no checkpoint holds, of a fold larger than staleness, only the gradients too large are refused, the others applied within staleness", async () => {
  // The folds that look for whose gradient it was took one contribution each: of a fold of 40
  // with the default staleness of 8, the contributions folded after the ninth of those folds
  // were refused as too stale, where only the one too large should be. They fold halves.
  await onEachStore(async (store) => {
    const { held, open } = heldWriting(store);
    const trainer = dataParallel(held, { optimizer, init, pollMs: 2, handoffMs: Infinity });
    const { step: base, params } = await trainer.params();
    const ids = Array.from({ length: 40 }, (_, i) => `r${i}`);
    const bad = new Set(["r13", "r31"]);
    const gradient = (id: string) => {
      const g = gradientAt(Number(id.slice(1)), params);
      if (bad.has(id)) g.w[0] = 1e30; // Adam's exp_avg_sq passes float32's range
      return g;
    };
    const all = submitAll(trainer, ids, gradient, base);
    await settle(); // all queued: the first fold takes the 40
    open();
    const { answers, refused } = await all;
    assert.deepEqual(refused.sort(), [...bad].sort());
    for (const [id, a] of answers) assert.equal(a.status, "applied", id);
    const journal = await store.journal(0, 1000);
    const applied = journal.flatMap((r) => r.entries.map((e) => e.id));
    assert.deepEqual(applied.sort(), ids.filter((id) => !bad.has(id)).sort(), "each once");
    await trainer.close();
  });
});

Deno.test("data parallel: after a step no checkpoint holds, the folds that look for whose gradient it was take that step's stored contributions first, also behind others stored since", async () => {
  // Stored contributions listed before that step's (their ids first, of its base step) were
  // taken by those folds one each, while that step's waited and were refused as too stale.
  await onEachStore(async (inner) => {
    let listings = 0;
    const late = ["a0", "a1", "a2", "a3"];
    let params!: Record<string, Float32Array>, base = 0;
    const store = storeView(inner, {
      pending: async (n: number) => {
        if (++listings === 2) { // stored by others once that step failed
          for (const id of late) {
            const g = gradientBytes(gradientAt(Number(id.slice(1)), params));
            assert.equal(await inner.submit({ id, base, samples: 1 }, g), null);
          }
        }
        return await inner.pending(n);
      },
    });
    const trainer = dataParallel(store, { optimizer, init, pollMs: 2, staleness: 3 });
    ({ step: base, params } = await trainer.params());
    for (const id of ["m1", "m2", "m3", "m4"]) {
      const g = gradientAt(Number(id.slice(1)), params);
      if (id === "m2") g.w[0] = 1e30;
      assert.equal(await inner.submit({ id, base, samples: 1 }, gradientBytes(g)), null);
    }
    const own = await trainer.submit({ id: "z", base, gradient: gradientAt(9, params) });
    assert.equal(own.status, "applied");
    // Each sent again: answered once its stored one is settled (the trainer folds meanwhile).
    const stored = ["m1", "m2", "m3", "m4", ...late];
    await Promise.allSettled(
      stored.map((id) => trainer.submit({ id, base, gradient: gradientAt(1, params) })),
    );
    const states = Object.fromEntries(
      await Promise.all(
        stored.map(async (id) => [id, (await inner.request(id))?.state]),
      ),
    );
    assert.deepEqual(states, {
      m1: "applied",
      m2: "refused",
      m3: "applied",
      m4: "applied",
      a0: "applied",
      a1: "applied",
      a2: "applied",
      a3: "applied",
    });
    await trainer.close();
  });
});
