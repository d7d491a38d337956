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
  type DataParallelTrainer,
  meanOfContributions,
  memoryCheckpointStore,
  optimisticStep,
  type SubmitResult,
  type TrainingStore,
  verifyTrainingStore,
} from "../store.ts";
import { openTrainingDatabase, sqliteStore } from "./sqlite_store.ts";
import { withClock } from "./_clock.ts";

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
    // SQLite bounds no atomic write: the store has no maxFold nor maxFresh, all it skips.
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

/** Request `i` through `trainer`: the parameters read, the gradient at them submitted. */
async function request(trainer: DataParallelTrainer, i: number): Promise<SubmitResult> {
  const { step, params } = await trainer.params();
  const gradient = gradientAt(i, params);
  return await trainer.submit({ id: `r${i}`, base: step, samples: 1 + i % 3, gradient });
}

/**
 * Checks the store's journal against the answers (each of `count` ids applied once, by the step
 * its answer names), and its checkpoint against the journal replayed: each gradient at its base
 * step's parameters, their mean over samples in journal order, one step of the in-process store
 * a record.
 */
async function checkReplay(store: TrainingStore, answers: Map<string, SubmitResult>) {
  const journal = await store.journal(0, Infinity);
  assert.equal(journal.flatMap((r) => r.entries).length, answers.size, "each applied once");
  assert.ok(journal.length < answers.size, "folds of more than one contribution");
  for (const record of journal) {
    for (const e of record.entries) {
      const answer = answers.get(e.id)!;
      assert.ok(answer.status === "applied" && !answer.duplicate, e.id);
      assert.equal(answer.step, record.step, e.id);
    }
  }
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
  assert.deepEqual((await store.load())!.bytes, (await memory.load())!.bytes);
  const view = await store.loadParams();
  assert.deepEqual(view!.params, paramsAt.get(journal.at(-1)!.step));
}

Deno.test("sqlite store: data-parallel trainers on two connections equal the journal replayed on the in-process store", async () => {
  await withDatabase(2, async (dbs) => {
    const stores = dbs.map((db) => sqliteStore(db, "data-parallel"));
    const trainers = stores.map((store) => dataParallel(store, { optimizer, init, pollMs: 2 }));
    const answers = new Map<string, SubmitResult>();
    await Promise.all(Array.from({ length: 24 }, async (_, i) => {
      answers.set(`r${i}`, await request(trainers[i % 2], i));
    }));
    await Promise.all(trainers.map((t) => t.close()));
    await checkReplay(stores[0], answers);
  });
});

/** As a process of its own (`deno run` of this file): sends requests `ids`, prints the answers. */
async function serve(path: string, ids: number[]): Promise<void> {
  const db = openTrainingDatabase(path);
  const trainer = dataParallel(sqliteStore(db, "processes"), { optimizer, init, pollMs: 2 });
  const answers = await Promise.all(ids.map(async (i) => [`r${i}`, await request(trainer, i)]));
  await trainer.close();
  db.close();
  console.log(JSON.stringify(answers));
}

if (import.meta.main) await serve(Deno.args[0], JSON.parse(Deno.args[1]));

Deno.test("sqlite store: data-parallel trainers in two processes on one file equal the journal replayed on the in-process store", async () => {
  await withDatabase(1, async ([db]) => {
    const path = db.location()!;
    const processes = [0, 1].map((p) =>
      new Deno.Command(Deno.execPath(), {
        args: [
          "run",
          `--allow-read=${path}`,
          `--allow-write=${path}`,
          new URL(import.meta.url).pathname,
          path,
          JSON.stringify(Array.from({ length: 16 }, (_, k) => 2 * k + p)),
        ],
        stdout: "piped",
      }).output()
    );
    const answers = new Map<string, SubmitResult>();
    for (const output of await Promise.all(processes)) {
      assert.ok(output.success, "a process failed");
      for (const [id, answer] of JSON.parse(new TextDecoder().decode(output.stdout))) {
        answers.set(id, answer);
      }
    }
    assert.equal(answers.size, 32);
    await checkReplay(sqliteStore(db, "processes"), answers);
  });
});
