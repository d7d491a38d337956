/**
 * A pool of module workers that run independent jobs, one at a time each, and send back their
 * results: what the demo's sweep (examples/demo/sweep.ts) and the study (examples/study/pool.ts)
 * share.
 *
 * @module
 */

/** What a worker of the pool sends back: steps taken, a job's result, or its failure. */
export type PoolReply<R> =
  | { readonly kind: "steps"; readonly steps: number }
  | { readonly kind: "done"; readonly index: number; readonly result: R }
  | { readonly kind: "failed"; readonly index: number; readonly message: string };

/** How the pool talks to its workers and to its caller. */
export interface PoolOptions<J, R> {
  /** Names the workers in an error (`A <name> worker failed: …`). */
  readonly name: string;
  /** A message sent to every worker before its first job (the data they share), if any. */
  readonly setup?: unknown;
  /** The message that hands the job `job` (number `index`) to a worker. */
  readonly request: (index: number, job: J) => unknown;
  /** Told as the workers report steps taken. */
  readonly onSteps?: (steps: number) => void;
  /** Told as each job ends, with its result. */
  readonly onDone?: (result: R) => void;
}

/**
 * Runs `jobs` on `threads` workers of the module at `url`, each given its next job as it sends
 * back a result, and returns the results in job order; rejects when a job or a worker fails.
 *
 * @example
 * ```ts ignore
 * import { runOnWorkers } from "./_pool.ts";
 * // worker.ts answers { index, job } with { kind: "done", index, result: job * 2 }
 * const doubled = await runOnWorkers<number, number>(new URL("./worker.ts", import.meta.url), [1, 2, 3], 2, {
 *   name: "doubling",
 *   request: (index, job) => ({ index, job }),
 * });
 * ```
 */
export async function runOnWorkers<J, R>(
  url: URL,
  jobs: readonly J[],
  threads: number,
  options: PoolOptions<J, R>,
): Promise<R[]> {
  const results: R[] = new Array(jobs.length);
  let next = 0;
  const pool = Array.from({ length: threads }, () =>
    new Promise<void>((resolve, reject) => {
      const worker = new Worker(url, { type: "module" });
      const give = () => {
        if (next >= jobs.length) {
          worker.terminate();
          resolve();
          return;
        }
        const index = next++;
        worker.postMessage(options.request(index, jobs[index]));
      };
      worker.onmessage = (event: MessageEvent<PoolReply<R>>) => {
        const reply = event.data;
        if (reply.kind === "steps") options.onSteps?.(reply.steps);
        else if (reply.kind === "done") {
          results[reply.index] = reply.result;
          options.onDone?.(reply.result);
          give();
        } else {
          worker.terminate();
          reject(new Error(`Run ${JSON.stringify(jobs[reply.index])} failed: ${reply.message}`));
        }
      };
      worker.onerror = (event) => {
        event.preventDefault();
        worker.terminate();
        reject(new Error(`A ${options.name} worker failed: ${event.message}`));
      };
      if (options.setup !== undefined) worker.postMessage(options.setup);
      give();
    }));
  await Promise.all(pool);
  return results;
}
