/**
 * A sweep worker: receives the plan and the data once, then runs the jobs it is sent, one at
 * a time, and reports steps taken and results.
 *
 * @module
 */
/// <reference lib="deno.worker" />
import type { DigitSplit } from "./mnist_data.ts";
import { runJob, type SweepPlan, type WorkerReply, type WorkerRequest } from "./sweep.ts";

let plan: SweepPlan | undefined;
let data: DigitSplit | undefined;
let queue = Promise.resolve();

function reply(message: WorkerReply): void {
  self.postMessage(message);
}

self.onmessage = (event: MessageEvent<WorkerRequest>) => {
  const request = event.data;
  if (request.kind === "data") {
    plan = request.plan;
    data = request.data;
    return;
  }
  queue = queue.then(async () => {
    try {
      if (!plan || !data) throw new Error("The worker got a job before its data");
      const result = await runJob(
        plan,
        request.job,
        data,
        (steps) => reply({ kind: "steps", steps }),
      );
      reply({ kind: "done", index: request.index, result });
    } catch (error) {
      reply({ kind: "failed", index: request.index, message: String(error) });
    }
  });
};
