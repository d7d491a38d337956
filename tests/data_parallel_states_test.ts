/**
 * The data-parallel mode with 8-bit moments (tests/data_parallel_test.ts runs it with f32 ones):
 * concurrent requests, and a crash at any write on Deno KV, lose no acknowledged contribution and
 * apply none twice; the stored checkpoint (codes and scales) is the journal's replay bit for bit.
 */
import assert from "node:assert/strict";
import { lookahead, type OptimizerState, radam, readParams, saveState, step } from "../mod.ts";
import {
  dataParallel,
  type DataParallelTrainer,
  type JournalRecord,
  kvCheckpointStore,
  memoryCheckpointStore,
  type SubmitResult,
  type TrainingStore,
} from "../kv.ts";
import { split } from "./checkpoint_files.ts";
import { Crash, crashingKv, withKv } from "./kv_fakes.ts";

const N = 4097; // 8-bit moments, the last block partial
const optimizer = lookahead(radam({ lr: 0.05, states: "8bit" }), { k: 2 });
const init = () => ({ w: new Float32Array(N), b: new Float32Array(1) });

/** Request i's gradient at `params`: depends on them, so a wrong base would show. */
function gradientAt(i: number, params: Readonly<Record<string, Float32Array>>) {
  const w = params.w.map((v, j) => v - Math.sin(i * 1.7 + j));
  const b = params.b.map((v) => v + Math.cos(i));
  return { w, b };
}

async function request(trainer: DataParallelTrainer, i: number) {
  const { step, params } = await trainer.params();
  return await trainer.submit({
    id: `r${i}`,
    base: step,
    samples: 1 + (i % 3),
    gradient: gradientAt(i, params),
  });
}

/** The journal replayed in one process (float64 sum over samples, one division, float32). */
async function replay(journal: readonly JournalRecord[]): Promise<OptimizerState> {
  let state = await optimizer.init(init());
  const paramsAt = new Map([[0, await readParams(state)]]);
  for (const record of journal) {
    const sum = { w: new Float64Array(N), b: new Float64Array(1) };
    let total = 0;
    for (const e of record.entries) {
      const g = gradientAt(Number(e.id.slice(1)), paramsAt.get(e.base)!);
      for (const k of ["w", "b"] as const) {
        for (let j = 0; j < g[k].length; j++) sum[k][j] += e.samples * g[k][j];
      }
      total += e.samples;
    }
    for (const k of ["w", "b"] as const) {
      for (let j = 0; j < sum[k].length; j++) state.grads[k][j] = sum[k][j] / total;
    }
    state = step(state);
    paramsAt.set(state.step, await readParams(state));
  }
  return state;
}

/** Each id applied once, where its answer says; the stored checkpoint is the replay's. */
async function checkStore(store: TrainingStore, answers: Map<string, SubmitResult>) {
  const journal = await store.journal(0, 10_000);
  const where = new Map<string, number>();
  for (const record of journal) {
    for (const e of record.entries) {
      assert.ok(!where.has(e.id), `${e.id} applied once`);
      where.set(e.id, record.step);
    }
  }
  for (const [id, a] of answers) {
    if (a.status === "applied") assert.equal(where.get(id), a.step, `${id} is in step ${a.step}`);
  }
  const stored = (await store.load())!;
  assert.deepEqual(stored.bytes, await saveState(await replay(journal)), "the replay, bit for bit");
  return journal;
}

Deno.test("data parallel, 8-bit moments: concurrent requests fold into the journal's replay, bit for bit", async () => {
  const store = memoryCheckpointStore({ latencyMs: 1 });
  const trainer = dataParallel(store, { optimizer, init });
  const answers = new Map<string, SubmitResult>();
  await Promise.all(Array.from({ length: 16 }, async (_, i) => {
    await new Promise((r) => setTimeout(r, i % 5));
    answers.set(`r${i}`, await request(trainer, i));
  }));
  assert.ok([...answers.values()].every((a) => a.status === "applied" && !a.duplicate));
  const journal = await checkStore(store, answers);
  assert.equal(journal.flatMap((r) => r.entries).length, 16);
  const { header } = split((await store.load())!.bytes);
  assert.ok(header["w.exp_avg.codes"] && header["w.exp_avg_sq.scales"], "codes stored");
  await trainer.close();
});

Deno.test("data parallel on Deno KV, 8-bit moments: a crash at any write loses no acknowledged contribution, applies none twice", async () => {
  for (let allowed = 0; allowed < 30; allowed += 4) {
    await withKv(async (kv) => {
      const opts = { chunkBytes: 4096, staleAfterMs: 0 };
      const answers = new Map<string, SubmitResult>();
      const doomed = dataParallel(kvCheckpointStore(crashingKv(kv, allowed), ["dp"], opts), {
        optimizer,
        init,
        leaseMs: 50,
        pollMs: 2,
        waitMs: 2000,
      });
      await Promise.all(Array.from({ length: 6 }, async (_, i) => {
        try {
          answers.set(`r${i}`, await request(doomed, i));
        } catch (e) {
          if (!(e instanceof Crash)) throw e;
        }
      }));
      // The process restarted: its lease expires, the ids that got no answer are sent again.
      const store = kvCheckpointStore(kv, ["dp"], opts);
      const trainer = dataParallel(store, { optimizer, init, pollMs: 2 });
      for (let i = 0; i < 8; i++) {
        const a = await request(trainer, i);
        if (answers.has(`r${i}`)) assert.deepEqual(a, { ...answers.get(`r${i}`), duplicate: true });
        else answers.set(`r${i}`, a);
      }
      const journal = await checkStore(store, answers);
      assert.equal(journal.flatMap((r) => r.entries).length, 8, `allowed ${allowed}`);
      await trainer.close();
    });
  }
});
