/**
 * The data-parallel mode with 8-bit moments (tests/data_parallel_test.ts runs it with f32 ones):
 * concurrent requests, and a crash at any write on Deno KV, lose no acknowledged contribution and
 * apply none twice; the stored checkpoint (codes and scales) is the journal's replay bit for bit.
 */
import assert from "node:assert/strict";
import { loadState, lookahead, radam, readParams, step } from "../mod.ts";
import { dataParallel, memoryCheckpointStore, type SubmitResult } from "../kv.ts";
import { split } from "./checkpoint_files.ts";
import { dataParallelCase } from "./data_parallel_harness.ts";
import { bits } from "./util.ts";

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

Deno.test("data parallel: a fold puts each gradient in its tensor's slot where an 8-bit arena reorders them, and from a 32-bit checkpoint converted", async () => {
  // The arena of 8-bit states puts "b" (f32 moments) before "w" (8-bit); a gradient is flat in
  // the checkpoint's tensor_order, init's ("w", "b"). The fold wrote it in the arena's order:
  // "b" took w's first value and "w" the rest, shifted by one.
  const n = 4100;
  const init = () => ({ w: new Float32Array(n).fill(1), b: new Float32Array(1).fill(1) });
  const gradient = (i: number) => ({
    w: Float32Array.from({ length: n }, (_, j) => Math.sin(i + j)),
    b: new Float32Array([5 + i]),
  });
  for (const first of ["32bit", "8bit"] as const) {
    const store = memoryCheckpointStore();
    const before = dataParallel(store, { optimizer: radam({ lr: 0.1, states: first }), init });
    const one = await before.params();
    await before.submit({ id: "a", base: one.step, samples: 1, gradient: gradient(1) });
    await before.close();
    const stored = (await store.load())!.bytes;
    const optimizer = radam({ lr: 0.1, states: "8bit" });
    const trainer = dataParallel(store, { optimizer, init });
    const two = await trainer.params();
    assert.deepEqual(two.names, ["w", "b"]);
    await trainer.submit({ id: "b", base: two.step, samples: 1, gradient: gradient(2) });
    await trainer.close();
    // One contribution a fold: its mean is its gradient.
    const straight = step(await loadState(stored, { states: "8bit" }), gradient(2));
    const want = await readParams(straight);
    const got = await readParams(await loadState((await store.load())!.bytes));
    for (const name of ["w", "b"]) assert.deepEqual(bits(got[name]), bits(want[name]), name);
  }
});
