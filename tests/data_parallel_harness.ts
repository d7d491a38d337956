/**
 * What the data-parallel tests share (tests/data_parallel_test.ts with f32 moments,
 * tests/data_parallel_states_test.ts with 8-bit ones): a model of `n` weights and a bias, its
 * requests' gradients, the journal's replay in one process to check a store against, and the
 * crash at any write on Deno KV; the Web Workers a run leaves running (threaded states); a
 * gradient's bytes as a store holds them, and a pause.
 */
import assert from "node:assert/strict";
import {
  dispose,
  type Optimizer,
  type OptimizerState,
  readParams,
  saveState,
  step,
} from "../mod.ts";
import {
  ContributionRefusedError,
  dataParallel,
  type DataParallelTrainer,
  type JournalRecord,
  kvCheckpointStore,
  type SubmitResult,
  type TrainingStore,
} from "../kv.ts";
import { Crash, crashingKv, withKv } from "./kv_fakes.ts";

/** How {@linkcode DataParallelCase.crashAtAnyWrite} crashes and recovers. */
export interface CrashPlan {
  /** A crash after each `stride`-th number of writes below `writes`. */
  writes: number;
  stride: number;
  /** Requests sent before the crash; two more are sent after the restart. */
  requests: number;
  /** The store's chunk size (so that a checkpoint takes several writes). */
  chunkBytes: number;
}

/** The shared parts of the data-parallel tests, for one model and optimizer. */
export interface DataParallelCase {
  /** The model's initial parameters. */
  init(): { w: Float32Array; b: Float32Array };
  /** Request i's gradient at `params`: depends on them, so a wrong base would show. */
  gradientAt(
    i: number,
    params: Readonly<Record<string, Float32Array>>,
  ): Record<string, Float32Array>;
  /** Request i through `trainer`: read the parameters, compute, submit. */
  request(trainer: DataParallelTrainer, i: number, samples?: number): Promise<SubmitResult>;
  /**
   * `each` requests through each of `trainers` at once (trainer p's ids from 1 + p * each), then
   * each trainer closed: the answers, and the ids refused (as too stale).
   */
  burst(
    trainers: readonly DataParallelTrainer[],
    each: number,
  ): Promise<{ answers: Map<string, SubmitResult>; refused: string[] }>;
  /** The parameters after each step of the journal replayed in one process (0: `init`'s). */
  paramsAfter(
    journal: readonly JournalRecord[],
  ): Promise<Map<number, Record<string, Float32Array>>>;
  /** Checks the journal against the answers, and the stored checkpoint against its replay. */
  checkStore(store: TrainingStore, answers: Map<string, SubmitResult>): Promise<JournalRecord[]>;
  /**
   * On Deno KV, a process that crashes at a write (each of `plan`'s) while requests are sent,
   * then a restart that sends every request again: each acknowledged one is answered as a
   * duplicate, none is lost or applied twice, and the store is the journal's replay.
   */
  crashAtAnyWrite(plan: CrashPlan): Promise<void>;
}

/** Resolves after `ms` milliseconds. */
export const pause = (ms: number): Promise<void> =>
  new Promise((resolve) => setTimeout(resolve, ms));

/** A gradient of the model of {@linkcode dataParallelCase} as a store holds it: `w`, then `b`. */
export const gradientBytes = (g: Readonly<Record<string, Float32Array>>): Uint8Array =>
  new Uint8Array(Float32Array.from([...g.w, ...g.b]).buffer);

/** The data-parallel tests' model of `n` weights and a bias, stepped by `optimizer`. */
export function dataParallelCase(n: number, optimizer: Optimizer): DataParallelCase {
  const init = () => ({ w: new Float32Array(n), b: new Float32Array(1) });

  function gradientAt(i: number, params: Readonly<Record<string, Float32Array>>) {
    const w = params.w.map((v, j) => v - Math.sin(i * 1.7 + j));
    const b = params.b.map((v) => v + Math.cos(i));
    return { w, b };
  }

  async function request(trainer: DataParallelTrainer, i: number, samples = 1 + (i % 3)) {
    const { step, params } = await trainer.params();
    return await trainer.submit({
      id: `r${i}`,
      base: step,
      samples,
      gradient: gradientAt(i, params),
    });
  }

  async function burst(trainers: readonly DataParallelTrainer[], each: number) {
    const answers = new Map<string, SubmitResult>();
    const refused: string[] = [];
    await Promise.all(
      trainers.flatMap((trainer, p) =>
        Array.from({ length: each }, async (_, i) => {
          const id = 1 + p * each + i;
          try {
            answers.set(`r${id}`, await request(trainer, id));
          } catch (error) {
            if (!(error instanceof ContributionRefusedError)) throw error;
            refused.push(`r${id}`);
          }
        })
      ),
    );
    for (const trainer of trainers) await trainer.close();
    return { answers, refused };
  }

  /**
   * The journal replayed in one process: each gradient at its base step's parameters, the mean
   * over samples in journal order (float64 sum, one division, float32), one step a record.
   */
  async function replay(
    journal: readonly JournalRecord[],
    paramsAt = new Map<number, Record<string, Float32Array>>(),
  ): Promise<OptimizerState> {
    let state = await optimizer.init(init());
    paramsAt.set(0, await readParams(state));
    for (const record of journal) {
      const sum = { w: new Float64Array(n), b: new Float64Array(1) };
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
      assert.equal(state.step, record.step);
      paramsAt.set(state.step, await readParams(state));
    }
    return state;
  }

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
    const replayed = await replay(journal);
    try {
      assert.deepEqual(stored.bytes, await saveState(replayed), "the replay, bit for bit");
    } finally {
      dispose(replayed); // (a threaded state's workers stopped)
    }
    return journal;
  }

  async function crashAtAnyWrite({ writes, stride, requests, chunkBytes }: CrashPlan) {
    for (let allowed = 0; allowed < writes; allowed += stride) {
      await withKv(async (kv) => {
        const opts = { chunkBytes, staleAfterMs: 0 };
        const answers = new Map<string, SubmitResult>();
        const doomed = dataParallel(kvCheckpointStore(crashingKv(kv, allowed), ["dp"], opts), {
          optimizer,
          init,
          leaseMs: 50,
          pollMs: 2,
          waitMs: 2000,
        });
        await Promise.all(Array.from({ length: requests }, async (_, i) => {
          try {
            answers.set(`r${i}`, await request(doomed, i));
          } catch (e) {
            // (A hand-off's failed write is reported with the crash as its cause.)
            if (!(e instanceof Crash || (e as Error).cause instanceof Crash)) throw e;
          }
        }));
        // The process restarted: its lease expires, the ids that got no answer are sent again.
        const store = kvCheckpointStore(kv, ["dp"], opts);
        const trainer = dataParallel(store, { optimizer, init, pollMs: 2 });
        for (let i = 0; i < requests + 2; i++) {
          const a = await request(trainer, i);
          if (answers.has(`r${i}`)) {
            assert.deepEqual(a, { ...answers.get(`r${i}`), duplicate: true });
          } else answers.set(`r${i}`, a);
        }
        const journal = await checkStore(store, answers);
        assert.equal(journal.flatMap((r) => r.entries).length, requests + 2, `allowed ${allowed}`);
        await trainer.close();
      });
    }
  }

  async function paramsAfter(journal: readonly JournalRecord[]) {
    const paramsAt = new Map<number, Record<string, Float32Array>>();
    await replay(journal, paramsAt);
    return paramsAt;
  }

  return { init, gradientAt, request, burst, paramsAfter, checkStore, crashAtAnyWrite };
}

/** Runs `fn` counting the Web Workers started and not terminated meanwhile. */
export async function liveWorkers(fn: () => Promise<void>): Promise<number> {
  const global = globalThis as { Worker: typeof Worker };
  const Base = global.Worker;
  let live = 0;
  global.Worker = class extends Base {
    #alive = (live++, true);
    override terminate() {
      if (this.#alive) live--, this.#alive = false;
      super.terminate();
    }
  };
  try {
    await fn();
  } finally {
    global.Worker = Base;
  }
  return live;
}
