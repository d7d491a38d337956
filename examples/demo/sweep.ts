/**
 * The sweep: every optimizer × learning rate × seed, run one after another in this thread or
 * spread over a few workers (each run is independent and deterministic, so the results are
 * the same either way).
 *
 * @module
 */
import { type PoolReply, runOnWorkers } from "../_pool.ts";
import type { DigitSplit } from "./mnist_data.ts";
import type { MlpShape } from "./mlp.ts";
import { optimizerById } from "./optimizer_table.ts";
import { type RunResult, type TrainOptions, trainRun } from "./train.ts";

/** Everything a sweep varies and holds fixed. */
export interface SweepPlan {
  /**
   * Ids of the optimizers to compare (rows of the optimizer table, `<row>@<format>` in a format
   * of `--states`).
   */
  readonly optimizers: readonly string[];
  readonly lrs: readonly number[];
  readonly seeds: readonly number[];
  readonly shape: MlpShape;
  /** Training options shared by every run. */
  readonly training: Omit<TrainOptions, "lr" | "seed">;
}

/** One run of a sweep. */
export interface SweepJob {
  readonly optimizer: string;
  readonly lr: number;
  readonly seed: number;
}

/** The runs of a plan, learning rate by learning rate. */
export function sweepJobs(plan: SweepPlan): SweepJob[] {
  const jobs: SweepJob[] = [];
  for (const lr of plan.lrs) {
    for (const optimizer of plan.optimizers) {
      for (const seed of plan.seeds) jobs.push({ optimizer, lr, seed });
    }
  }
  return jobs;
}

export { optimizerById };

/** Runs one job of `plan` in this thread. */
export function runJob(
  plan: SweepPlan,
  job: SweepJob,
  data: DigitSplit,
  onSteps?: (steps: number) => void,
): Promise<RunResult> {
  return trainRun(
    optimizerById(job.optimizer),
    data,
    plan.shape,
    { ...plan.training, lr: job.lr, seed: job.seed },
    onSteps,
  );
}

/** Messages between the sweep and its workers. */
export type WorkerRequest =
  | { readonly kind: "data"; readonly plan: SweepPlan; readonly data: DigitSplit }
  | { readonly kind: "job"; readonly index: number; readonly job: SweepJob };

/** What a worker sends back. */
export type WorkerReply = PoolReply<RunResult>;

/**
 * Runs every job of `plan` on `data`, with `workers` threads (1: all in this thread), and
 * returns the results in job order. `onSteps(n)` is told as optimizer steps are taken.
 */
export async function runSweep(
  plan: SweepPlan,
  data: DigitSplit,
  options: { workers: number; onSteps?: (steps: number) => void },
): Promise<RunResult[]> {
  const jobs = sweepJobs(plan);
  const results: RunResult[] = new Array(jobs.length);
  const threads = Math.max(1, Math.min(options.workers, jobs.length));
  if (threads === 1) {
    for (let i = 0; i < jobs.length; i++) {
      results[i] = await runJob(plan, jobs[i], data, options.onSteps);
    }
    return results;
  }
  return runOnWorkers<SweepJob, RunResult>(
    new URL("./sweep_worker.ts", import.meta.url),
    jobs,
    threads,
    {
      name: "sweep",
      setup: { kind: "data", plan, data } satisfies WorkerRequest,
      request: (index, job) => ({ kind: "job", index, job }) satisfies WorkerRequest,
      onSteps: options.onSteps,
    },
  );
}
