/**
 * Through the serverless store, every request a resume, the run is the uninterrupted one: a
 * random rule and mix of options (tests/resume_chain.ts: groups, a schedule, clipping,
 * centralization, LookAhead, Ranger, 32-bit or 8-bit moments either side of the 8-bit threshold,
 * a non-finite policy with steps skipped or refused), stepped by `optimisticStep` on the
 * in-process store and on Deno KV, each request loading the stored checkpoint onto a CPU backend
 * of its own (`loadOptions`: wasm, js, wasm on 2 or 3 threads), holds at the end the params,
 * moments (codes and scales), slow weights and counts of the same steps taken in one process, bit
 * for bit; a request whose step is refused (`nonFinite: "throw"`) saves nothing. So is a run of
 * the data-parallel mode, one contribution a fold (of any sample count: the mean of one is its
 * gradient), whose process (its trainer) is closed and another started every few submits, each
 * taking the lease and resuming from the stored checkpoint on a backend of its own.
 */
import assert from "node:assert/strict";
import fc from "fast-check";
import { dispose, loadState, type OptimizerState, step } from "../mod.ts";
import {
  dataParallel,
  type DataParallelTrainer,
  kvCheckpointStore,
  memoryCheckpointStore,
  optimisticStep,
} from "../kv.ts";
import {
  type Chained,
  chainedArb,
  CPU_PLACES,
  dataOf,
  lrOf,
  optimizerAt,
  snapshot,
} from "./resume_chain.ts";

const RUNS = 20;
const SEED = 20261207;

async function runStored(c: Chained, kv: Deno.Kv, round: number): Promise<void> {
  const { params, grads } = dataOf(c);
  const open: OptimizerState[] = [];
  const keep = (s: OptimizerState) => (open.push(s), s);
  const stores = [memoryCheckpointStore(), kvCheckpointStore(kv, ["chain", round])];
  const optimizer = optimizerAt(c, CPU_PLACES[c.start]);
  try {
    let straight = keep(await optimizerAt(c, CPU_PLACES[0]).init(params));
    for (let i = 0; i < c.calls.length; i++) {
      let refused: string | undefined;
      try {
        straight = step(straight, grads[i]);
      } catch (error) {
        refused = (error as Error).message;
      }
      const { backend, threads } = CPU_PLACES[(c.start + i) % CPU_PLACES.length];
      for (const store of stores) {
        const request = optimisticStep(store, {
          optimizer,
          init: () => params,
          gradient: (state) => {
            for (const name of state.names) state.grads[name].set(grads[i][name]);
          },
          loadOptions: i === 0 ? undefined : { backend, threads, threadThreshold: 0 },
        });
        if (refused === undefined) {
          try {
            keep((await request).state);
          } catch (error) {
            // Only a state holding non-finite values ("propagate") cannot be saved.
            assert.match((error as Error).message, /Cannot checkpoint: /, `call ${i + 1}`);
            return;
          }
        } else {
          await assert.rejects(request, (e: Error) => e.message === refused, `call ${i + 1}`);
        }
      }
    }
    const want = await snapshot(straight);
    for (const store of stores) {
      const stored = await store.load();
      if (stored === null) continue; // every call refused
      const lr = c.schedule === "none" ? undefined : lrOf(c);
      const resumed = keep(await loadState(stored.bytes, { lr, backend: "js" }));
      assert.deepEqual(
        await snapshot(resumed),
        want,
        "the stored run is not the uninterrupted one",
      );
    }
  } finally {
    for (const s of open) dispose(s);
  }
}

Deno.test(`store: a run stepped by optimisticStep, each request a resume on its own CPU backend, is the uninterrupted run (${RUNS} cases, seed ${SEED})`, async () => {
  const kv = await Deno.openKv(":memory:");
  let round = 0;
  try {
    await fc.assert(
      fc.asyncProperty(
        chainedArb(CPU_PLACES.length, ["skip", "skip", "throw", "propagate"]),
        (c) => runStored(c, kv, round++),
      ),
      { numRuns: RUNS, seed: SEED, endOnFailure: true },
    );
  } finally {
    kv.close();
  }
});

async function runFolded(c: Chained, kv: Deno.Kv, round: number): Promise<void> {
  const { params, grads } = dataOf(c);
  const open: OptimizerState[] = [];
  const keep = (s: OptimizerState) => (open.push(s), s);
  const stores = [memoryCheckpointStore(), kvCheckpointStore(kv, ["folded", round])];
  const optimizer = optimizerAt(c, CPU_PLACES[c.start]);
  // A new process after each resume's call; its own backend and threads.
  const cuts = new Set(c.resumes.map((r) => r.at));
  try {
    let straight = keep(await optimizerAt(c, CPU_PLACES[0]).init(params));
    for (const store of stores) {
      let trainer: DataParallelTrainer | undefined;
      for (let i = 0; i < c.calls.length; i++) {
        if (trainer === undefined || cuts.has(i)) {
          await trainer?.close();
          const { backend, threads } = CPU_PLACES[c.resumes[i % c.resumes.length].place];
          const loadOptions = { backend, threads, threadThreshold: 0 };
          trainer = dataParallel(store, { optimizer, init: () => params, loadOptions });
        }
        const { step: base } = await trainer.params();
        const samples = 1 + (c.seed + i) % 5;
        const answer = await trainer.submit({ id: `c${i}`, base, samples, gradient: grads[i] });
        assert.equal(answer.status === "applied" && answer.step, i + 1, `call ${i + 1}`);
      }
      await trainer?.close();
    }
    for (const g of grads) straight = step(straight, g);
    const want = await snapshot(straight);
    for (const store of stores) {
      const lr = c.schedule === "none" ? undefined : lrOf(c);
      const resumed = keep(await loadState((await store.load())!.bytes, { lr, backend: "js" }));
      assert.deepEqual(
        await snapshot(resumed),
        want,
        "the folded run is not the uninterrupted one",
      );
    }
  } finally {
    for (const s of open) dispose(s);
  }
}

Deno.test(`store: a data-parallel run, one contribution a fold, its process replaced every few submits, is the uninterrupted run (${RUNS} cases, seed ${SEED})`, async () => {
  const kv = await Deno.openKv(":memory:");
  let round = 0;
  // Finite gradients only (a contribution holds finite values, and none so large that its
  // moments would overflow: such a one is refused).
  const finite = (c: Chained): Chained => ({
    ...c,
    calls: c.calls.map(() => ({ kind: "ok", huge: false })),
  });
  try {
    await fc.assert(
      fc.asyncProperty(
        chainedArb(CPU_PLACES.length, ["skip", "throw"]).map(finite),
        (c) => runFolded(c, kv, round++),
      ),
      { numRuns: RUNS, seed: SEED, endOnFailure: true },
    );
  } finally {
    kv.close();
  }
});
