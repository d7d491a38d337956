/**
 * Checkpoints shared by concurrent writers, on any database with a conditional write:
 * `@optim/radam/store`. Runtime-agnostic: no permissions, no Deno APIs (it runs in Node,
 * browsers and on the edge too); the Deno KV binding is `@optim/radam/kv`.
 *
 * - {@linkcode optimisticStep}: "load, compute the gradient on the loaded parameters, step,
 *   save if the version is still current", retried on a conflict: no update is lost.
 * - {@linkcode VersionedCheckpointStore}: the check-and-set contract a store keeps for it;
 *   {@linkcode memoryCheckpointStore} keeps it in one process.
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
export { CheckpointConflictError } from "./store/errors.ts";
export { memoryCheckpointStore, type MemoryStoreOptions } from "./store/memory.ts";
export {
  optimisticStep,
  type OptimisticStepOptions,
  type OptimisticStepResult,
} from "./store/optimistic.ts";
