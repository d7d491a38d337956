/**
 * The SQLite store of examples/sqlite_store.ts: it keeps every clause of the conformance kit
 * (what expires included, on a clock the test moves; checkpoints of the default
 * `largestCheckpoint`), and trains over two connections to one database file, in both modes, to
 * the same bits as the in-process store given the same sequence of steps.
 */
import assert from "node:assert/strict";
import { type OptimizerState, radam, readParams } from "../mod.ts";
import {
  dataParallel,
  meanOfContributions,
  memoryCheckpointStore,
  optimisticStep,
  type SubmitResult,
  verifyTrainingStore,
} from "../store.ts";
import { openTrainingDatabase, sqliteStore } from "./sqlite_store.ts";

/** A new database file in a temporary folder, for `fn`, on `connections` connections. */
async function withDatabase(
  connections: number,
  fn: (dbs: ReturnType<typeof openTrainingDatabase>[]) => Promise<void>,
): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "radam-sqlite-" });
  const dbs = Array.from({ length: connections }, () => openTrainingDatabase(`${dir}/train.db`));
  try {
    await fn(dbs);
  } finally {
    for (const db of dbs) db.close();
    await Deno.remove(dir, { recursive: true });
  }
}

/** Runs `fn` with `Date.now` and `performance.now` moved forward by what it advances. */
async function withClock<T>(fn: (advance: (ms: number) => void) => Promise<T>): Promise<T> {
  let offset = 0;
  const realNow = Date.now, realPerformance = performance.now.bind(performance);
  Date.now = () => realNow() + offset;
  Object.defineProperty(performance, "now", {
    value: () => realPerformance() + offset,
    configurable: true,
  });
  try {
    return await fn((ms) => void (offset += ms));
  } finally {
    Date.now = realNow;
    delete (performance as { now?: unknown }).now;
  }
}

Deno.test("sqlite store: keeps every clause of verifyTrainingStore, what expires and the size clauses included", async () => {
  await withDatabase(1, async ([db]) => {
    let models = 0;
    const report = await withClock((advance) =>
      verifyTrainingStore(() => sqliteStore(db, `model-${models++}`, { rememberMs: 60_000 }), {
        advance,
        rememberMs: 60_000,
      })
    );
    for (const clause of ["save.large", "commit.large", "submit.large", "lease.expiry"]) {
      assert.ok(report.passed.includes(clause), clause);
    }
    // SQLite bounds no atomic write: the store has no maxFold, all it skips.
    assert.deepEqual(report.skipped.map((s) => s.clause), ["store.maxFold"]);
  });
});

const N = 5;
const optimizer = radam({ lr: 0.05 });
const init = () => ({ w: new Float32Array(N), b: new Float32Array(1) });

/** Request i's gradient at `params`: depends on them, so a step from a wrong state would show. */
function gradientAt(i: number, params: Readonly<Record<string, Float32Array>>) {
  return {
    w: params.w.map((v, j) => v - Math.sin(i * 1.7 + j)),
    b: params.b.map((v) => v + Math.cos(i)),
  };
}

/** Writes `g` into the state's gradient slots. */
function fill(state: OptimizerState, g: { w: Float32Array; b: Float32Array }): void {
  state.grads.w.set(g.w);
  state.grads.b.set(g.b);
}

Deno.test("sqlite store: optimistic steps from two connections equal the same steps on the in-process store", async () => {
  await withDatabase(2, async (dbs) => {
    let conflicts = 0; // commits refused because the other connection committed first
    const stores = dbs.map((db) => {
      const store = sqliteStore(db, "optimistic");
      const commit: typeof store.commit = async (c) => {
        const done = await store.commit(c);
        if (done === null) conflicts++;
        return done;
      };
      return { ...store, commit };
    });
    const steps = new Map<number, number>(); // step → request
    await Promise.all(Array.from({ length: 16 }, async (_, i) => {
      const done = await optimisticStep(stores[i % 2], {
        optimizer,
        init,
        id: `o${i}`,
        gradient: (state) => fill(state, gradientAt(i, state.params)),
      });
      assert.ok(!done.duplicate);
      steps.set(done.step, i);
    }));
    assert.deepEqual([...steps.keys()].sort((a, b) => a - b), [...Array(16)].map((_, s) => s + 1));
    assert.ok(conflicts > 0, "the two connections' commits conflicted");
    // Sent again, on the other connection: not applied again, the step named.
    const again = await optimisticStep(stores[1], {
      optimizer,
      init,
      id: "o4",
      gradient: () => assert.fail("a duplicate is not computed"),
    });
    assert.ok(again.duplicate);
    assert.equal(steps.get(again.step), 4);
    // The same requests, in the order they were applied, on the in-process store.
    const memory = memoryCheckpointStore();
    for (let s = 1; s <= 16; s++) {
      const i = steps.get(s)!;
      await optimisticStep(memory, {
        optimizer,
        init,
        id: `o${i}`,
        gradient: (state) => fill(state, gradientAt(i, state.params)),
      });
    }
    assert.deepEqual((await stores[0].load())!.bytes, (await memory.load())!.bytes);
  });
});

Deno.test("sqlite store: data-parallel trainers on two connections equal the journal replayed on the in-process store", async () => {
  await withDatabase(2, async (dbs) => {
    const stores = dbs.map((db) => sqliteStore(db, "data-parallel"));
    const trainers = stores.map((store) => dataParallel(store, { optimizer, init, pollMs: 2 }));
    const answers = new Map<string, SubmitResult>();
    await Promise.all(Array.from({ length: 24 }, async (_, i) => {
      const trainer = trainers[i % 2];
      const { step, params } = await trainer.params();
      const gradient = gradientAt(i, params);
      answers.set(
        `r${i}`,
        await trainer.submit({ id: `r${i}`, base: step, samples: 1 + i % 3, gradient }),
      );
    }));
    await Promise.all(trainers.map((t) => t.close()));
    const journal = await stores[1].journal(0, Infinity);
    assert.equal(journal.flatMap((r) => r.entries).length, 24, "each applied once");
    assert.ok(journal.length < 24, "folds of more than one contribution");
    for (const record of journal) {
      for (const e of record.entries) {
        const answer = answers.get(e.id)!;
        assert.ok(answer.status === "applied" && !answer.duplicate, e.id);
        assert.equal(answer.step, record.step, e.id);
      }
    }
    // The journal replayed: each gradient at its base step's parameters, their mean over samples
    // in journal order, one step of the in-process store a record.
    const memory = memoryCheckpointStore();
    const paramsAt = new Map<number, Record<string, Float32Array>>([[0, init()]]);
    for (const record of journal) {
      const mean = new Float32Array(N + 1);
      meanOfContributions(
        record.entries.map((e) => {
          const g = gradientAt(Number(e.id.slice(1)), paramsAt.get(e.base)!);
          return { samples: e.samples, gradient: new Float32Array([...g.w, ...g.b]) };
        }),
        mean,
      );
      const done = await optimisticStep(memory, {
        optimizer,
        init,
        gradient: (state) => fill(state, { w: mean.subarray(0, N), b: mean.subarray(N) }),
      });
      assert.equal(done.step, record.step);
      paramsAt.set(done.step, await readParams(done.state));
    }
    assert.deepEqual((await stores[0].load())!.bytes, (await memory.load())!.bytes);
    const view = await stores[0].loadParams();
    assert.deepEqual(view!.params, paramsAt.get(journal.at(-1)!.step));
  });
});
