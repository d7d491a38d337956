/**
 * The data-parallel mode: requests compute gradients at the current parameters and submit
 * them as contributions; the process whose request holds the lease folds those waiting in it,
 * and those the store holds, into one optimizer step. See {@linkcode dataParallel}.
 *
 * @module
 */
import {
  checkCount,
  checkFunctionOption,
  checkModelOptions,
  checkOptimizerOption,
  checkOptionsObject,
  checkTrainingStore,
} from "./_checks.ts";
import { paramsFailed } from "./_answers.ts";
import { Coordinator } from "./_coordinator.ts";
import { MAX_LOCAL } from "./_fold.ts";
import { rejectingThrows } from "./_store_calls.ts";
import {
  type CheckedOptions,
  type DataParallelOptions,
  type DataParallelTrainer,
  DEFAULT_STALENESS,
} from "./parallel.ts";
import type { TrainingStore } from "./training.ts";

/** The names of the options (each one of the interface's, and every one). */
const OPTIONS = Object.keys(
  {
    optimizer: true,
    init: true,
    tensors: true,
    loadOptions: true,
    staleness: true,
    waitMs: true,
    leaseMs: true,
    maxFold: true,
    pollMs: true,
    handoffMs: true,
    handoffLimit: true,
    meta: true,
  } satisfies Record<keyof DataParallelOptions, true>,
);

function checkOptions(options: DataParallelOptions): Omit<CheckedOptions, "maxLocal"> {
  checkOptionsObject(options, "dataParallel", OPTIONS);
  const { optimizer, init, meta } = options;
  checkOptimizerOption(optimizer);
  checkFunctionOption("init", init, true);
  checkFunctionOption("meta", meta, false);
  checkModelOptions(options, "dataParallel");
  return {
    ...options,
    staleness: checkCount("staleness", options.staleness ?? DEFAULT_STALENESS, 0, true, true),
    waitMs: checkCount("waitMs", options.waitMs ?? 30_000, 0, false),
    leaseMs: checkCount("leaseMs", options.leaseMs ?? 10_000, 1, false),
    maxFold: checkCount("maxFold", options.maxFold ?? 64, 1, true),
    pollMs: checkCount("pollMs", options.pollMs ?? 20, 1, false),
    handoffMs: checkCount("handoffMs", options.handoffMs ?? 0, 0, false, true),
    handoffLimit: checkCount("handoffLimit", options.handoffLimit ?? 1, 1, true, true),
  };
}

/**
 * Data-parallel training on a shared store, with no daemon: each request reads the current
 * parameters only ({@linkcode DataParallelTrainer.params}), computes its gradient there, and
 * submits it ({@linkcode DataParallelTrainer.submit}) as a contribution; the process that
 * holds the store's lease (an atomic record that expires) folds the contributions waiting in
 * that process, and those the store holds, into one optimizer step, on the mean of their
 * gradients over their samples (see {@linkcode meanOfContributions}), and commits it; the others
 * wait for the step that folded theirs. A process that finds the lease held by another, and
 * serves its requests one at a time (`handoffLimit`, default 1), stores its
 * contribution (after `handoffMs`, default 0) for the holder's next fold: a fold takes
 * contributions from every process, so the effective batch grows with the requests in flight
 * across processes; a process with more folds its own when the lease comes to it, writing no
 * gradient (but for a burst its steps would reach only past `staleness`, on a store whose commit
 * checks fewer of them than a step folds: see the option `maxFold`). A step costs one checkpoint
 * write whatever it folds.
 *
 * - **Idempotent**: a request id is applied at most once; sent again it is answered with the
 *   step that applied it (`duplicate: true`).
 * - **Durable**: a contribution is answered as applied only once the step that applied it is
 *   committed, atomically with its id's record and the journal (`store.journal`); one from this
 *   process goes straight into that commit, one from a process that does not hold the lease
 *   is first stored (atomically with its id's record), then folded by the holder. A crash
 *   loses no answered contribution and applies none twice, and the lease it held expires.
 * - **Bounded staleness**: see the option `staleness`.
 *
 * Call it once per process (it keeps the last state it committed, to fold again without
 * reading it back) and share the trainer between requests.
 *
 * @example Two requests, one step
 * ```ts
 * import { radam } from "@optim/radam";
 * import { dataParallel, memoryCheckpointStore } from "@optim/radam/store";
 * import assert from "node:assert/strict";
 *
 * const trainer = dataParallel(memoryCheckpointStore(), {
 *   optimizer: radam({ lr: 0.1 }),
 *   init: () => ({ w: new Float32Array(2) }),
 * });
 * const { step, params } = await trainer.params();
 * const answers = await Promise.all(["a", "b"].map((id, i) =>
 *   trainer.submit({ id, base: step, gradient: { w: params.w.map(() => i + 1) } })
 * ));
 * assert.ok(answers.every((a) => a.status === "applied" && a.step >= 1));
 * const again = await trainer.submit({ id: "a", base: step, gradient: { w: params.w } });
 * assert.equal(again.status === "applied" && again.duplicate, true); // not applied twice
 * await trainer.close();
 * ```
 */
export function dataParallel(
  store: TrainingStore,
  options: DataParallelOptions,
): DataParallelTrainer {
  checkTrainingStore(store, "dataParallel", "dataParallel");
  const checked = checkOptions(options);
  // No more in a step than one commit of the store can settle (Deno KV's limits), nor more of
  // this process's own than it can check (each a fresh id).
  const bound = (most: unknown, wanted: number) =>
    typeof most === "number" && most >= 1 ? Math.min(wanted, Math.floor(most)) : wanted;
  const maxFold = bound(store.maxFold, checked.maxFold);
  const maxLocal = bound(store.maxFresh, MAX_LOCAL);
  const coordinator = new Coordinator(rejectingThrows(store), { ...checked, maxFold, maxLocal });
  return {
    store,
    // (init's own errors, and those of making the first checkpoint, as they are)
    params: () => coordinator.params(paramsFailed(store.name), null),
    submit: (contribution) => coordinator.submit(contribution),
    close: () => coordinator.close(),
  };
}
