/**
 * The errors of the store: what a caller may catch and answer (e.g. HTTP 409).
 *
 * @module
 */
import { CheckpointError } from "../mod.ts";

/**
 * Thrown by {@linkcode optimisticStep} when every attempt found that another writer had saved
 * first, until its time budget (or its count of attempts) ran out: the update was not applied
 * (the caller may try again later, e.g. answer HTTP 409).
 *
 * @example
 * ```ts
 * import { CheckpointConflictError } from "@optim/radam/store";
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
  /**
   * An error saying that `attempts` saves to `store` were all refused (in `elapsedMs`, when
   * given).
   */
  constructor(store: string, attempts: number, elapsedMs?: number) {
    const time = elapsedMs === undefined ? "" : ` in ${Math.round(elapsedMs)} ms`;
    super(
      attempts === 0
        ? `Checkpoint ${store}: no attempt could start${time}, behind this process's earlier ` +
          "ones; this update was not applied"
        : `Checkpoint ${store} was saved by another writer first on each of ${attempts} ` +
          `attempts${time}; this update was not applied`,
    );
    this.name = "CheckpointConflictError";
    this.store = store;
    this.attempts = attempts;
  }
}

/**
 * A contribution of the data-parallel mode that was refused, never applied: computed more
 * steps behind the current one than the bound `staleness` allows, a gradient so large that the
 * step on it alone gives a state no checkpoint holds, or a stored gradient that is damaged or
 * does not fit the stored model. Where the store held it (handed off to the lease holder, or
 * stored at `waitMs`), the refusal is recorded with its id, as an application is: sent again
 * with that id, through any process, it gets the same answer (for `rememberMs`). Where it never
 * left the process it was submitted to (refused by the submit's own check, or by that process's
 * fold while it held the lease), only that submit (and those of the same id in flight there)
 * learns of it: nothing of it was written, and the id is unknown to the store, so sent again it
 * is a new contribution. Either way, compute it again at the current parameters, under a new id.
 *
 * @example
 * ```ts
 * import { ContributionRefusedError } from "@optim/radam/store";
 * import assert from "node:assert/strict";
 *
 * const error = new ContributionRefusedError("r7", 12, "computed at step 3, 9 steps behind");
 * assert.equal(error.name, "ContributionRefusedError");
 * assert.match(error.message, /"r7".*never applied.*9 steps behind/);
 * ```
 */
export class ContributionRefusedError extends Error {
  /** The request id. */
  readonly id: string;
  /** The step that refused it. */
  readonly step: number;
  /**
   * Why. At most 512 characters (UTF-16 units) where the library refused it: a longer reason (an
   * error's message in it) is cut, ending with `… (N characters in all)`.
   */
  readonly reason: string;
  /** An error saying that the contribution `id` was refused at `step`, and why. */
  constructor(id: string, step: number, reason: string) {
    super(`Contribution ${JSON.stringify(id)} was refused, never applied: ${reason}`);
    this.name = "ContributionRefusedError";
    this.id = id;
    this.step = step;
    this.reason = reason;
  }
}

/**
 * The longest reason of a refusal that is kept, in UTF-16 code units: 512. A request record holds
 * one (Deno KV takes at most 64 KiB a value, and 800 KiB in the one atomic write that refuses up
 * to a whole fold); a longer one (of an error's message) is cut by {@linkcode boundReason}.
 */
const MAX_REASON_LENGTH = 512;

/**
 * `reason` as a refusal keeps it: as it is, if at most {@linkcode MAX_REASON_LENGTH} units long;
 * else its beginning (no surrogate pair split), then `"… (N characters in all)"`, the whole
 * `MAX_REASON_LENGTH` long at most.
 */
export function boundReason(reason: string): string {
  if (typeof reason !== "string" || reason.length <= MAX_REASON_LENGTH) return reason;
  const marker = `… (${reason.length} characters in all)`;
  let end = MAX_REASON_LENGTH - marker.length;
  const unit = reason.charCodeAt(end - 1);
  if (unit >= 0xd800 && unit <= 0xdbff) end--; // the high half of a pair: cut before it
  return reason.slice(0, end) + marker;
}

/** The reason a contribution computed at `base` is refused at `step`, or null if it is not. */
export function staleReason(base: number, step: number, bound: number): string | null {
  if (step - base <= bound) return null;
  return `computed at step ${base}, ${step - base} steps behind the current step ${step}; ` +
    `the bound (option staleness) is ${bound}`;
}

/**
 * What became of a contribution whose call to the database failed: `"none"`, nothing of it was
 * stored (it was not applied: send it again); `"stored"`, its write may have been made (a fold
 * may yet apply it); `"committed"`, the commit of the step applying it may have been made. Sent
 * again with the same id, one of the last two is answered with its outcome.
 */
export type ContributionFate = "none" | "stored" | "committed";

/**
 * The error of a contribution `id` whose `what` failed with the database's `error` (kept as
 * `cause`), saying what became of it (`fate`). An error to pass on (see `isPassedOn`) is
 * returned as it is.
 */
export function contributionFailed(
  id: string,
  what: string,
  error: unknown,
  fate: ContributionFate,
): unknown {
  if (isPassedOn(error)) return error;
  const outcome = fate === "none"
    ? "nothing of it was stored, it was not applied: send it again"
    : `it may ${fate === "stored" ? "yet be" : "have been"} applied: send it again, with the ` +
      "same id, to learn its outcome";
  return new Error(
    `Contribution ${JSON.stringify(id)}: ${what} failed (${messageOf(error)}); ${outcome}`,
    { cause: error },
  );
}

/** An error's message, or the value thrown as a string. */
export const messageOf = (error: unknown): string =>
  error instanceof Error ? error.message : String(error);

/** The errors a store words itself for a mistake of its caller (see `mistake`). */
const mistakes = new WeakSet<object>();

/**
 * Marks `error`, a store's own error for a mistake of its caller (e.g. a closed database, named
 * by the store), as one that a step passes on as it is, not as a failure of the database.
 */
export function mistake<E extends object>(error: E): E {
  mistakes.add(error);
  return error;
}

/**
 * Whether a call of the store that threw `error` is passed on as it is: damaged stored data (a
 * CheckpointError naming its key) or a mistake the store worded (see `mistake`).
 */
export const isPassedOn = (error: unknown): boolean =>
  error instanceof CheckpointError ||
  (typeof error === "object" && error !== null && mistakes.has(error));
