/**
 * The answers of the data-parallel mode's submits (private to store/): that of a request whose
 * id the store knows, and the errors of a call to the store not answered in time, or failing
 * before anything of a contribution is stored.
 *
 * @module
 */
import { contributionFailed, ContributionRefusedError, isPassedOn, messageOf } from "./errors.ts";
import type { SubmitResult } from "./parallel.ts";
import type { RequestRecord } from "./training.ts";

/** The answer to a request whose id the store knows. */
export function answerOf(id: string, record: RequestRecord): SubmitResult | Error | null {
  if (record.state === "applied") {
    return { status: "applied", id, step: record.step, duplicate: true };
  }
  if (record.state === "refused") {
    return new ContributionRefusedError(id, record.step, record.reason);
  }
  return null;
}

/**
 * The error of a submit whose call to the store was not answered in time (`limit`: within
 * what): `stored`, whether its contribution may yet be applied (it was being folded or stored).
 */
export function unanswered(id: string, limit: string, stored: boolean): Error {
  return new Error(
    `Contribution ${JSON.stringify(id)}: the store did not answer within ${limit}; ${
      stored
        ? "it may yet be applied: send it again, with the same id, to learn its outcome"
        : "nothing of it was stored: send it again"
    }`,
  );
}

/** Words the error of a call to the store (`what` failed with `error`). */
export type StoreFailure = (what: string, error: unknown) => unknown;

/** The error of a read of a submit, before anything of its contribution `id` is stored. */
export const readFailed = (id: string): StoreFailure => (what, error) =>
  contributionFailed(id, what, error, "none");

/**
 * The error of a call of `trainer.params()` to the store of that `name`: what failed, the
 * database's error its cause (damaged stored data, or a mistake the store worded, as it is).
 */
export const paramsFailed = (name: string): StoreFailure => (what, error) =>
  isPassedOn(error) ? error : new Error(
    `Store ${name}: ${what} for params() failed (${messageOf(error)}); call params() again ` +
      "(it reads the store afresh)",
    { cause: error },
  );
