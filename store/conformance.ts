/**
 * A conformance kit for your own store: runs the checks of the contracts
 * {@linkcode VersionedCheckpointStore} (what `optimisticStep` needs) and
 * {@linkcode TrainingStore} (what `dataParallel` needs) against fresh stores your factory
 * makes, on any runtime (no Deno APIs, no test framework): check-and-set saves, concurrent
 * saves, submits and commits, pending's order, request records, the lease and what expires.
 *
 * @module
 */
import {
  checkCount,
  checkOptionsObject,
  checkRememberMs,
  checkStore,
  checkTrainingStore,
  optionError,
  TRAINING_METHODS,
} from "./_checks.ts";
import type { VersionedCheckpointStore } from "./contract.ts";
import type { TrainingStore } from "./training.ts";
import { Broken, type Clause, type KitContext, promising, show } from "./_conformance_kit.ts";
import { CHECKPOINT_CLAUSES } from "./_conformance_checkpoint.ts";
import { TRAINING_CLAUSES } from "./_conformance_training.ts";
import { LEASE_CLAUSES } from "./_conformance_lease.ts";
import {
  LARGE_CHECKPOINT_CLAUSES,
  LARGE_TRAINING_CLAUSES,
  LARGEST_CHECKPOINT,
} from "./_conformance_large.ts";
import { deadlineIn, until } from "./_time.ts";

/**
 * Options of {@linkcode verifyCheckpointStore} and {@linkcode verifyTrainingStore}.
 *
 * @example Checks that need time to pass, on a clock the test moves
 * ```ts
 * import {
 *   type ConformanceOptions,
 *   memoryCheckpointStore,
 *   verifyTrainingStore,
 * } from "@optim/radam/store";
 *
 * let offset = 0;
 * const realNow = Date.now, realPerformanceNow = performance.now.bind(performance);
 * Date.now = () => realNow() + offset; // the clocks the in-memory store reads
 * performance.now = () => realPerformanceNow() + offset;
 * const options: ConformanceOptions = { advance: (ms) => void (offset += ms), rememberMs: 60_000 };
 * try {
 *   await verifyTrainingStore(() => memoryCheckpointStore({ rememberMs: 60_000 }), options);
 * } finally {
 *   Date.now = realNow;
 *   performance.now = realPerformanceNow;
 * }
 * ```
 */
export interface ConformanceOptions {
  /**
   * Moves the clock your stores read (wall and monotonic) forward by `ms`, at once: the clauses
   * that need time to pass (`lease.expiry`, `lease.long-dead`, `request.expiry`) run only with
   * it; without, they are skipped (and the report says so): the kit never sleeps. The kit
   * checks each lease's end against `Date.now` (a lease's end is by its holder's clock, the
   * calling process's), so your stores must read `Date.now` and `performance.now` at each call,
   * and `advance` move those (as the example does), not a clock you inject into your stores, nor
   * the database server's, unless the option `now` reads that clock (then `advance` moves it).
   */
  advance?: (ms: number) => void | Promise<void>;
  /**
   * The clock your stores stamp a lease's end with, in ms since the epoch, when it is not the
   * calling process's `Date.now` (the default): a store that keeps its own (a database server's
   * `now()`, which this function may query: it may answer with a promise). The kit reads it
   * before and after each call that takes or renews a lease, and checks the lease's end
   * between. With it, `advance` must move that clock.
   *
   * @example A binding whose leases end by its database server's clock
   * ```ts
   * import { memoryCheckpointStore, type TrainingStore, verifyTrainingStore } from "@optim/radam/store";
   * import assert from "node:assert/strict";
   *
   * // Here the in-process store stands in for it, its leases' ends moved 5 minutes on: the
   * // server's clock, which `serverNow` reads (in your binding, a query of the server's time).
   * const AHEAD = 300_000;
   * const serverNow = () => Promise.resolve(Date.now() + AHEAD);
   * const onServerClock = (): TrainingStore => {
   *   const store = memoryCheckpointStore();
   *   const shift = <L extends { expires: number }>(lease: L | null) =>
   *     lease && { ...lease, expires: lease.expires + AHEAD };
   *   return {
   *     ...store,
   *     acquire: async (token, ms, queue) => shift(await store.acquire(token, ms, queue)),
   *     commit: async (commit) => {
   *       const result = await store.commit(commit);
   *       return result && { ...result, lease: shift(result.lease) };
   *     },
   *   };
   * };
   * const report = await verifyTrainingStore(onServerClock, { now: serverNow });
   * assert.ok(report.passed.includes("lease.again"));
   * // Read by Date.now instead, the leases' ends are 5 minutes off: reported broken.
   * const error = await verifyTrainingStore(onServerClock).catch((e) => e);
   * assert.ok(error.failures.some((f: { clause: string }) => f.clause === "lease.exclusive"));
   * ```
   */
  now?: () => number | Promise<number>;
  /**
   * How long your stores remember request ids, in ms (their `rememberMs`): with `advance`,
   * `request.expiry` checks that a record is forgotten after it; skipped without.
   */
  rememberMs?: number;
  /** How many calls a race check makes at once (an integer ≥ 2); default 8. */
  racers?: number;
  /**
   * How long one clause may take, in ms (a number ≥ 1, or Infinity): a clause whose calls have
   * not all settled by then is reported broken (a call that never answers); default 30 000.
   */
  timeoutMs?: number;
  /**
   * The largest checkpoint your stores must hold, in bytes (an integer ≥ 1): `save.large` saves
   * and loads one of this size, `commit.large` commits one (of at least this size: a checkpoint
   * of parameters whose float32 values take this many bytes), `submit.large` submits a gradient
   * of this size. Default 4 MiB (4 194 304): past the value limits of many
   * databases, and a fraction of a second on Deno KV. Give the checkpoint of your largest model
   * (`(await saveState(state)).length`, or its parameters' count × 4 × (1 + the optimizer's
   * float32 states per parameter, e.g. 2 for Adam)): a store that holds it holds the gradients
   * of data-parallel contributions to it, which are no larger.
   */
  largestCheckpoint?: number;
  /** Clauses not to check, by id (see the report's `passed`); they are reported as skipped. */
  skip?: readonly string[];
}

/**
 * What a store that kept every clause checked resolves to.
 *
 * @example
 * ```ts
 * import {
 *   type ConformanceReport,
 *   memoryCheckpointStore,
 *   verifyCheckpointStore,
 * } from "@optim/radam/store";
 * import assert from "node:assert/strict";
 *
 * const report: ConformanceReport = await verifyCheckpointStore(() => memoryCheckpointStore());
 * assert.ok(report.passed.includes("save.race"));
 * assert.deepEqual(report.skipped, []);
 * ```
 */
export interface ConformanceReport {
  /** The name of the first store the factory made. */
  readonly store: string;
  /** The ids of the clauses checked and kept, in the order they ran. */
  readonly passed: readonly string[];
  /** The clauses not checked, and why (an option absent, or named in `skip`). */
  readonly skipped: readonly { readonly clause: string; readonly reason: string }[];
}

/**
 * One clause a store broke: which, what the check did, what the contract expects, and what
 * the store did instead.
 *
 * @example
 * ```ts
 * import type { ConformanceFailure } from "@optim/radam/store";
 *
 * const line = (f: ConformanceFailure) => `${f.clause}: ${f.did} gave ${f.got}, not ${f.expected}`;
 * ```
 */
export interface ConformanceFailure {
  /** The clause's id, e.g. `"save.race"`. */
  readonly clause: string;
  /** What the clause promises. */
  readonly promise: string;
  /** The call (or calls) the check made. */
  readonly did: string;
  /** What the contract expects of them. */
  readonly expected: string;
  /** What the store answered (or did). */
  readonly got: string;
}

/**
 * The rejection of a verification that found broken clauses: its message lists each one,
 * `failures` has them one by one, and `report` what passed and what was skipped.
 *
 * @example
 * ```ts
 * import {
 *   memoryCheckpointStore,
 *   StoreConformanceError,
 *   verifyCheckpointStore,
 * } from "@optim/radam/store";
 * import assert from "node:assert/strict";
 *
 * // A binding whose save ignores the version it is given: the last writer wins.
 * const lastWriterWins = () => {
 *   const store = memoryCheckpointStore();
 *   return {
 *     ...store,
 *     save: async (bytes: Uint8Array, _expected: string | null, meta?: string) =>
 *       await store.save(bytes, (await store.load())?.version ?? null, meta),
 *   };
 * };
 * const error = await verifyCheckpointStore(lastWriterWins).catch((e) => e);
 * assert.ok(error instanceof StoreConformanceError);
 * assert.ok(error.failures.some((f) => f.clause === "save.stale"));
 * ```
 */
export class StoreConformanceError extends Error {
  /** The clauses broken, in the order they were checked. */
  readonly failures: readonly ConformanceFailure[];
  /** What passed and what was skipped. */
  readonly report: ConformanceReport;
  /** An error listing the clauses `failures` of the store of `report`, one a line. */
  constructor(failures: readonly ConformanceFailure[], report: ConformanceReport) {
    const lines = failures.map((f) =>
      `- ${f.clause} (${f.promise}): ${f.did}: expected ${f.expected}, the store gave ${f.got}`
    );
    super(
      `The store named ${report.store} breaks ${failures.length} of ${
        failures.length + report.passed.length
      } clauses checked:\n${lines.join("\n")}`,
    );
    this.name = "StoreConformanceError";
    this.failures = failures;
    this.report = report;
  }
}

const OPTIONS = [
  "advance",
  "now",
  "rememberMs",
  "racers",
  "timeoutMs",
  "largestCheckpoint",
  "skip",
] as const satisfies readonly (keyof ConformanceOptions)[];

/** The contract's methods: each returns a Promise, which the kit checks. */
const METHODS = ["save", ...TRAINING_METHODS];

/** The context the checks get, from checked `options` and the clauses' ids. */
function contextOf(options: ConformanceOptions, of: string, ids: readonly string[]) {
  checkOptionsObject(options, of, OPTIONS);
  const { advance, now, skip = [] } = options;
  if (advance !== undefined && typeof advance !== "function") {
    throw optionError("advance", "a function of ms", advance, false);
  }
  if (now !== undefined && typeof now !== "function") {
    throw optionError("now", "a function that gives the stores' time in ms", now, false);
  }
  const racers = checkCount("racers", options.racers ?? 8, 2, true);
  const timeoutMs = checkCount("timeoutMs", options.timeoutMs ?? 30_000, 1, false, true);
  const largestCheckpoint = checkCount(
    "largestCheckpoint",
    options.largestCheckpoint ?? LARGEST_CHECKPOINT,
    1,
    true,
  );
  const rememberMs = options.rememberMs === undefined
    ? undefined
    : checkRememberMs(options.rememberMs);
  if (!Array.isArray(skip)) throw optionError("skip", "an array of clause ids", skip, false);
  for (const id of skip) {
    if (!ids.includes(id)) {
      throw new RangeError(
        `${of}'s skip names no clause: ${show(id)}; the clauses: ${ids.join(", ")}`,
      );
    }
  }
  const context = { advance, now, rememberMs, racers, largestCheckpoint } satisfies KitContext;
  return { context, skip, timeoutMs };
}

/** Why `clause` cannot run with `store` and `context`, or null when it can. */
function missing<S>(clause: Clause<S>, context: KitContext, store: S): string | null {
  if (clause.needs === "maxFold") {
    const { maxFold, maxFresh } = store as TrainingStore;
    return maxFold === undefined && maxFresh === undefined
      ? "the store has neither maxFold nor maxFresh"
      : null;
  }
  if (
    clause.needs === undefined ||
    context.advance !== undefined &&
      (clause.needs === "advance" || context.rememberMs !== undefined)
  ) return null;
  return `needs the option${clause.needs === "advance" ? "" : "s"} ${clause.needs}`;
}

/** Runs `clauses` on fresh stores of `make`, each checked by `valid`; the report, or rejects. */
async function verify<S extends { readonly name: string }>(
  clauses: readonly Clause<S>[],
  make: () => S | Promise<S>,
  options: ConformanceOptions | undefined,
  valid: (store: unknown) => void,
  of: string,
): Promise<ConformanceReport> {
  if (typeof make !== "function") {
    throw new TypeError(`${of} takes a function that makes a new store, got ${show(make)}`);
  }
  const { context, skip, timeoutMs } = contextOf(
    options === undefined ? {} : options,
    of,
    clauses.map((c) => c.id),
  );
  const fresh = async () => {
    const store = await make();
    valid(store);
    const name = (store as { name?: unknown }).name;
    if (typeof name !== "string") {
      throw new TypeError(
        `${of}: the store the factory made has no name (a string that error messages name it ` +
          `by, e.g. its database key), got ${show(name)}`,
      );
    }
    return promising(store, METHODS);
  };
  const first = await fresh();
  // A store the factory failed to make within a clause: the verification rejects with its error.
  let unmade: { error: unknown } | null = null;
  const made = () =>
    fresh().catch((error) => {
      unmade ??= { error };
      throw error;
    });
  const passed: string[] = [], skipped: { clause: string; reason: string }[] = [];
  const failures: ConformanceFailure[] = [];
  for (const clause of clauses) {
    const reason = skip.includes(clause.id)
      ? "named in the option skip"
      : missing(clause, context, first);
    if (reason !== null) {
      skipped.push({ clause: clause.id, reason });
      continue;
    }
    try {
      const late = new Broken(
        "the clause's calls",
        `all settled within ${timeoutMs} ms (the option timeoutMs)`,
        "no answer to at least one",
      );
      const ran = clause.run(made, context).then(() => null);
      const hung = timeoutMs === Infinity
        ? await ran
        : await until(ran, deadlineIn(timeoutMs), late);
      if (hung !== null) throw hung;
      passed.push(clause.id);
    } catch (error) {
      if (unmade !== null) throw (unmade as { error: unknown }).error;
      const { did, expected, got } = error instanceof Broken
        ? error
        : { did: "the check", expected: "no error", got: `an error thrown (${show(error)})` };
      failures.push({ clause: clause.id, promise: clause.promise, did, expected, got });
    }
  }
  const report = { store: first.name, passed, skipped };
  if (failures.length > 0) throw new StoreConformanceError(failures, report);
  return report;
}

/**
 * Checks that the stores `makeStore` makes keep the contract of
 * {@linkcode VersionedCheckpointStore}: load and the check-and-set save (versions never
 * given twice, stale ones refused, copies, metadata up to `MAX_META_BYTES`, of concurrent saves
 * on one version exactly one wins, a load sees a checkpoint whole, a checkpoint of the option
 * `largestCheckpoint`'s size is kept bit for bit). Each clause runs on a new
 * store (a new key, table or database: it must start empty), one after another, each within
 * `timeoutMs`. Resolves to a {@linkcode ConformanceReport}; rejects with a
 * {@linkcode StoreConformanceError} naming each broken clause, or with the error `makeStore`
 * threw, or a TypeError when what it made has no `load` and `save` or no `name`.
 *
 * @example Check your binding in your own test suite (here, the in-memory store)
 * ```ts
 * import { memoryCheckpointStore, verifyCheckpointStore } from "@optim/radam/store";
 * import assert from "node:assert/strict";
 *
 * let n = 0;
 * const report = await verifyCheckpointStore(() => memoryCheckpointStore({ name: `test ${++n}` }));
 * assert.equal(report.store, "test 1");
 * assert.ok(report.passed.includes("save.stale"));
 * ```
 */
export function verifyCheckpointStore(
  makeStore: () => VersionedCheckpointStore | Promise<VersionedCheckpointStore>,
  options?: ConformanceOptions,
): Promise<ConformanceReport> {
  const clauses = [...CHECKPOINT_CLAUSES, ...LARGE_CHECKPOINT_CLAUSES];
  return verify(clauses, makeStore, options, checkStore, "verifyCheckpointStore");
}

/**
 * Checks that the stores `makeStore` makes keep the contract of {@linkcode TrainingStore}
 * (which `dataParallel` and idempotent `optimisticStep` need): every clause of
 * {@linkcode verifyCheckpointStore}, then head and params, request records, submit (of
 * concurrent submits of one id exactly one stores it), pending's order and limits, commit (its
 * checks, its outcomes, its journal record, of concurrent commits on one version exactly one
 * wins), a commit of a checkpoint and a submit of a gradient of `largestCheckpoint` bytes, the
 * lease (exclusive, taken again by its holder, released, renewed and handed on by a commit, the
 * waiting notes), the gradient of a contribution settled since, the journal's range, `maxFold`
 * and `maxFresh`, and, with the option `advance` (and `rememberMs`), what expires. Each clause
 * runs on a new empty store, one after another, each within `timeoutMs`. Resolves to a
 * {@linkcode ConformanceReport}; rejects with a
 * {@linkcode StoreConformanceError} naming each broken clause, or with the error `makeStore`
 * threw, or a TypeError naming a method (or the `name`) that what it made lacks.
 *
 * @example
 * ```ts
 * import { memoryCheckpointStore, verifyTrainingStore } from "@optim/radam/store";
 * import assert from "node:assert/strict";
 *
 * const report = await verifyTrainingStore(() => memoryCheckpointStore());
 * assert.ok(report.passed.includes("submit.race"));
 * assert.ok(report.passed.includes("pending.order"));
 * // The memory store has no maxFold nor maxFresh, and without the option advance what expires
 * // is not checked:
 * const skipped = report.skipped.map((s) => s.clause);
 * assert.deepEqual(skipped, [
 *   "store.maxFold",
 *   "lease.expiry",
 *   "lease.long-dead",
 *   "request.expiry",
 * ]);
 * ```
 */
export function verifyTrainingStore(
  makeStore: () => TrainingStore | Promise<TrainingStore>,
  options?: ConformanceOptions,
): Promise<ConformanceReport> {
  const clauses = [
    ...CHECKPOINT_CLAUSES,
    ...LARGE_CHECKPOINT_CLAUSES,
    ...TRAINING_CLAUSES,
    ...LARGE_TRAINING_CLAUSES,
    ...LEASE_CLAUSES,
  ];
  const valid = (store: unknown) => {
    checkStore(store);
    checkTrainingStore(store, "verifyTrainingStore");
  };
  return verify(clauses, makeStore, options, valid, "verifyTrainingStore");
}
