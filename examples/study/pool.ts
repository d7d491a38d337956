/**
 * Runs the study's jobs in this thread or on a few workers (each run is independent and
 * deterministic given its seed, so the results do not depend on which thread ran it).
 *
 * @module
 */
import { type PoolReply as SharedReply, runOnWorkers } from "../_pool.ts";
import type { Chunk, TaskData } from "./batches.ts";
import { evaluationSet } from "./batches.ts";
import { loadCorpus } from "./corpus.ts";
import { loadImages } from "./images.ts";
import type { TaskName } from "./models.ts";
import { setUpTfjs, tf } from "./tfjs_env.ts";
import { type Job, runJob, type RunResult } from "./train.ts";

/** Messages to a worker. */
export type PoolRequest = { readonly index: number; readonly job: Job };

/** Messages from a worker. */
export type PoolReply = SharedReply<RunResult>;

/** The data and evaluation set of each task, loaded once per thread when first needed. */
export class TaskCache {
  #data = new Map<TaskName, { data: TaskData; evalSet: Chunk }>();

  async get(task: TaskName): Promise<{ data: TaskData; evalSet: Chunk }> {
    await setUpTfjs();
    let entry = this.#data.get(task);
    if (!entry) {
      const data: TaskData = task === "image"
        ? { task, images: loadImages() }
        : { task, corpus: loadCorpus() };
      entry = { data, evalSet: evaluationSet(data) };
      this.#data.set(task, entry);
    }
    return entry;
  }

  dispose(): void {
    for (const { evalSet } of this.#data.values()) tf.dispose([evalSet.x, evalSet.y]);
    this.#data.clear();
  }
}

/** Runs one job with the data of `cache`. */
export async function runCached(
  cache: TaskCache,
  job: Job,
  onSteps?: (steps: number) => void,
): Promise<RunResult> {
  const { data, evalSet } = await cache.get(job.task);
  return runJob(job, data, evalSet, onSteps);
}

/**
 * Runs `jobs` on `workers` threads (1: in this one) and returns their results in job order;
 * `onSteps(n)` is told as steps are taken, `onDone(result)` as runs end.
 */
export async function runJobs(
  jobs: readonly Job[],
  workers: number,
  onSteps?: (steps: number) => void,
  onDone?: (result: RunResult) => void,
): Promise<RunResult[]> {
  const results: RunResult[] = new Array(jobs.length);
  const threads = Math.max(1, Math.min(workers, jobs.length));
  if (threads === 1) {
    const cache = new TaskCache();
    for (let i = 0; i < jobs.length; i++) {
      results[i] = await runCached(cache, jobs[i], onSteps);
      onDone?.(results[i]);
    }
    cache.dispose();
    return results;
  }
  return runOnWorkers<Job, RunResult>(new URL("./worker.ts", import.meta.url), jobs, threads, {
    name: "study",
    request: (index, job) => ({ index, job }) satisfies PoolRequest,
    onSteps,
    onDone,
  });
}
