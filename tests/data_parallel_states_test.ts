/**
 * The data-parallel mode with 8-bit moments (tests/data_parallel_test.ts runs it with f32 ones):
 * concurrent requests, and a crash at any write on Deno KV, lose no acknowledged contribution and
 * apply none twice; the stored checkpoint (codes and scales) is the journal's replay bit for bit.
 */
import assert from "node:assert/strict";
import { lookahead, radam } from "../mod.ts";
import { dataParallel, memoryCheckpointStore, type SubmitResult } from "../kv.ts";
import { split } from "./checkpoint_files.ts";
import { dataParallelCase } from "./data_parallel_harness.ts";

const N = 4097; // 8-bit moments, the last block partial
const optimizer = lookahead(radam({ lr: 0.05, states: "8bit" }), { k: 2 });
const { init, request, checkStore, crashAtAnyWrite } = dataParallelCase(N, optimizer);

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
  await crashAtAnyWrite({ writes: 30, stride: 4, requests: 6, chunkBytes: 4096 });
});
