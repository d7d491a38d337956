/**
 * The errors of the store: what a caller may catch and answer (e.g. HTTP 409).
 *
 * @module
 */
/**
 * Thrown by {@linkcode optimisticStep} when every attempt found that another writer had saved
 * first: the update was not applied (the caller may try again later, e.g. answer HTTP 409).
 *
 * @example
 * ```ts
 * import { CheckpointConflictError } from "../store.ts";
 * import assert from "node:assert/strict";
 *
 * const error = new CheckpointConflictError('["model"]', 5);
 * assert.equal(error.name, "CheckpointConflictError");
 * assert.equal(error.attempts, 5);
 * ```
 */
export class CheckpointConflictError extends Error {
  /** The store's name (see `VersionedCheckpointStore.name`). */
  readonly store: string;
  /** How many times the update was computed and refused. */
  readonly attempts: number;
  /** An error saying that `attempts` saves to `store` were all refused. */
  constructor(store: string, attempts: number) {
    super(
      `Checkpoint ${store} was saved by another writer first on each of ${attempts} attempts; ` +
        "this update was not applied",
    );
    this.name = "CheckpointConflictError";
    this.store = store;
    this.attempts = attempts;
  }
}
