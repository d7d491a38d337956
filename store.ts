/**
 * Serverless training on any database with a conditional write: `@optim/radam/store`.
 * Runtime-agnostic: no permissions, no Deno APIs (it runs in Node, browsers and on the edge
 * too); the Deno KV binding is `@optim/radam/kv`.
 *
 * Two modes, on one store:
 * - {@linkcode optimisticStep}: one optimizer step per request. "Load, compute the gradient on
 *   the loaded parameters, step, save if the version is still current", retried on a
 *   conflict: no update is lost; each costs a checkpoint read and write, and concurrent ones
 *   conflict.
 * - {@linkcode dataParallel}: requests read the parameters only, submit gradients as
 *   contributions, and the holder of an expiring lease folds all that are pending into one
 *   step (their mean over samples): the effective batch grows with the number of clients,
 *   with bounded staleness.
 *
 * In both a request id is an idempotency key: sent again, it is applied at most once, and the
 * answer names the step that applied it. The contracts: {@linkcode VersionedCheckpointStore}
 * (load and check-and-set save) and {@linkcode TrainingStore} (what idempotent steps and the
 * data-parallel mode add); {@linkcode memoryCheckpointStore} keeps both in one process.
 *
 * ```ts
 * import { radam } from "@optim/radam";
 * import { memoryCheckpointStore, optimisticStep } from "@optim/radam/store";
 * import assert from "node:assert/strict";
 *
 * const store = memoryCheckpointStore();
 * const { step } = await optimisticStep(store, {
 *   optimizer: radam({ lr: 1e-3 }),
 *   init: () => ({ w: new Float32Array(1024) }),
 *   gradient: (state) => void state.grads.w.fill(0.1), // the gradient at state.params
 * });
 * assert.equal(step, 1);
 * ```
 *
 * @module
 */
export {
  MAX_META_BYTES,
  type StoredCheckpoint,
  type VersionedCheckpointStore,
} from "./store/contract.ts";
export type {
  CommitResult,
  ContributionInfo,
  JournalRecord,
  Lease,
  PendingContribution,
  RequestRecord,
  StepCommit,
  StoredParams,
  TrainingStore,
} from "./store/training.ts";
export type { ParamsView } from "./store/layout.ts";
export { checkpointParams } from "./store/params.ts";
export { CheckpointConflictError, ContributionRefusedError } from "./store/errors.ts";
export { memoryCheckpointStore, type MemoryStoreOptions, REMEMBER_MS } from "./store/memory.ts";
export {
  type DuplicateStep,
  optimisticStep,
  type OptimisticStepOptions,
  type OptimisticStepResult,
} from "./store/optimistic.ts";
export { dataParallel } from "./store/data_parallel.ts";
export {
  type Contribution,
  type DataParallelOptions,
  type DataParallelTrainer,
  DEFAULT_STALENESS,
  type SubmitResult,
} from "./store/parallel.ts";
export {
  type ConformanceFailure,
  type ConformanceOptions,
  type ConformanceReport,
  StoreConformanceError,
  verifyCheckpointStore,
  verifyTrainingStore,
} from "./store/conformance.ts";
export { meanOfContributions, type WeightedGradient } from "./store/mean.ts";
