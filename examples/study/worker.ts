/**
 * A study worker: runs the jobs it is sent, one at a time, with its own tfjs and its own copy
 * of the data, and reports steps taken and results.
 *
 * @module
 */
/// <reference lib="deno.worker" />
import { type PoolReply, type PoolRequest, runCached, TaskCache } from "./pool.ts";

const cache = new TaskCache();
let queue = Promise.resolve();

function reply(message: PoolReply): void {
  self.postMessage(message);
}

self.onmessage = (event: MessageEvent<PoolRequest>) => {
  const { index, job } = event.data;
  queue = queue.then(async () => {
    try {
      const result = await runCached(cache, job, (steps) => reply({ kind: "steps", steps }));
      reply({ kind: "done", index, result });
    } catch (error) {
      reply({
        kind: "failed",
        index,
        message: error instanceof Error ? error.stack ?? error.message : String(error),
      });
    }
  });
};
