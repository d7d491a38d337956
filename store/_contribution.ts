/**
 * A contribution as the data-parallel mode's submit takes it (private to the library): its id,
 * base step and sample count checked (each field read once, a field of another name refused), the
 * local record of it that waits here for a fold, and its base as the stores key it.
 *
 * @module
 */
import { checkRequestId, described } from "./_checks.ts";
import type { Local } from "./_fold_state.ts";
import type { Contribution, SubmitResult } from "./parallel.ts";
import type { ContributionInfo } from "./training.ts";

/**
 * A base step as the stores key and journal it: −0 as 0 (a database key tells them apart: Deno
 * KV orders −0 before every 0), anything else as it is.
 */
export function keyedBase(base: number): number {
  return base === 0 ? 0 : base;
}

/** The journal's entries of a commit's applied contributions (a caller's own may hold −0). */
export function journalEntries(applied: readonly ContributionInfo[]): ContributionInfo[] {
  return applied.map(({ id, base, samples }) => ({ id, base: keyedBase(base), samples }));
}

/**
 * The error of a contribution's `base` or `samples`: a RangeError for a number out of range, a
 * TypeError for anything else (a string read from a request says it is one).
 */
function infoError(field: string, expected: string, value: unknown): Error {
  const message = `A contribution's ${field} must be ${expected}, got ${described(value)}`;
  return typeof value === "number" ? new RangeError(message) : new TypeError(message);
}

/** The fields of a contribution (each one of the interface's, and every one). */
const FIELDS = Object.keys(
  {
    id: true,
    base: true,
    samples: true,
    gradient: true,
  } satisfies Record<keyof Contribution, true>,
);

/**
 * The checked id, base step and sample count of a contribution (each field read once; a base of −0
 * is 0). A field of another name is refused: a misspelled `samples` would weigh the gradient as one
 * sample.
 */
export function checkInfo(c: Contribution): Local["info"] {
  if (typeof c !== "object" || c === null) {
    throw new TypeError(`A contribution must be an object, got ${typeof c}`);
  }
  const unknown = Object.keys(c).find((key) => !FIELDS.includes(key));
  if (unknown !== undefined) {
    throw new TypeError(
      `A contribution has no field ${unknown}; expected ${FIELDS.join(", ")} (samples optional)`,
    );
  }
  const id = c.id, base = c.base, samples = c.samples ?? 1;
  checkRequestId(id, "A contribution's id");
  if (!Number.isSafeInteger(base) || base < 0) {
    throw infoError("base", "a step (an integer ≥ 0)", base);
  }
  if (!Number.isSafeInteger(samples) || samples < 1) {
    throw infoError("samples", "an integer ≥ 1", samples);
  }
  return { id, base: keyedBase(base), samples };
}

/** A new local contribution, its promise not settled. */
export function makeLocal(info: Local["info"], gradient: Float32Array): Local {
  let resolve!: (r: SubmitResult) => void;
  let reject!: (e: unknown) => void;
  const done = new Promise<SubmitResult>((res, rej) => (resolve = res, reject = rej));
  const local: Local = {
    info,
    gradient,
    taken: false,
    settled: false,
    abandoned: false,
    done,
    resolve: (r) => (local.settled = true, resolve(r)),
    reject: (e) => (local.settled = true, reject(e)),
  };
  return local;
}
