/**
 * The contract of a store that serves training by many requests at once: the check-and-set of
 * {@linkcode VersionedCheckpointStore}, plus what idempotent steps and the data-parallel mode
 * need: a params-only read, request records, stored contributions, an expiring lease, and one
 * atomic commit of a step with the outcome of every request it settles. Any database with a
 * conditional write (a check of a record's version in the same atomic write as the mutations)
 * can keep it: `kvCheckpointStore` (Deno KV) and `memoryCheckpointStore` (one process) do.
 *
 * @module
 */
import type { ParamsView } from "./layout.ts";
import type { StoredCheckpoint, VersionedCheckpointStore } from "./contract.ts";

/**
 * What a store records of a request id: a contribution stored and not yet folded
 * (`"pending"`), applied by a step, or refused (never applied).
 *
 * @example
 * ```ts
 * import type { RequestRecord } from "@optim/radam/store";
 *
 * function describe(r: RequestRecord): string {
 *   if (r.state === "applied") return `applied by step ${r.step}`;
 *   if (r.state === "refused") return `refused: ${r.reason}`;
 *   return "stored, waiting for a step";
 * }
 * ```
 */
export type RequestRecord =
  | { readonly state: "pending" }
  | { readonly state: "applied"; readonly step: number }
  | { readonly state: "refused"; readonly step: number; readonly reason: string };

/**
 * The current parameters as a store reads them (and nothing else of the checkpoint).
 *
 * @example
 * ```ts
 * import type { StoredParams } from "@optim/radam/store";
 *
 * const count = (p: StoredParams) => p.names.reduce((n, name) => n + p.params[name].length, 0);
 * ```
 */
export interface StoredParams extends ParamsView {
  /** The version of the checkpoint they are of. */
  readonly version: string;
}

/**
 * A contribution as a store keeps it until a step folds it: which request, the step of the
 * parameters its gradient was computed at (`base`), and how many samples it averages.
 *
 * @example
 * ```ts
 * import type { ContributionInfo } from "@optim/radam/store";
 *
 * const staleness = (c: ContributionInfo, step: number) => step - c.base;
 * ```
 */
export interface ContributionInfo {
  /** The request id (its idempotency key). */
  readonly id: string;
  /** The optimizer step of the parameters the gradient was computed at. */
  readonly base: number;
  /** How many samples the gradient is the mean over (its weight in the fold). */
  readonly samples: number;
}

/**
 * A contribution a store holds, as {@linkcode TrainingStore.pending} lists it.
 *
 * @example
 * ```ts
 * import type { PendingContribution } from "@optim/radam/store";
 *
 * const describe = (p: PendingContribution) => `${p.id} from step ${p.base}, ${p.samples} samples`;
 * ```
 */
export interface PendingContribution extends ContributionInfo {
  /** The store's own handle of where its gradient is. */
  readonly ref: unknown;
}

/**
 * A lease: the right, while it lasts, to fold contributions and commit a step. Held by one
 * process at a time; it expires, so a process that dies holding it stops no one for long.
 *
 * @example
 * ```ts
 * import type { Lease } from "@optim/radam/store";
 *
 * const left = (lease: Lease) => lease.expires - Date.now(); // ms
 * ```
 */
export interface Lease {
  /** Who holds it: a random token of the holder's choosing. */
  readonly token: string;
  /**
   * When it ends, in ms since the epoch, by the clock of the process that wrote it (its holder's
   * for a lease it took or renewed): another process does not compare it with its own.
   */
  readonly expires: number;
  /**
   * The store's own handle of its version: never the same for two leases, one released (or
   * expired) and taken again by the same token included, since a commit under a lease checks
   * it (a counter that a released lease's row keeps, say, not one that restarts when it is
   * deleted).
   */
  readonly ref: unknown;
}

/**
 * One journal record: the contributions a step applied, in the order their mean was taken.
 *
 * @example
 * ```ts
 * import type { JournalRecord } from "@optim/radam/store";
 *
 * const ids = (journal: JournalRecord[]) => journal.flatMap((r) => r.entries.map((e) => e.id));
 * ```
 */
export interface JournalRecord {
  /** The optimizer step the commit made (`state.step`). */
  readonly step: number;
  /** The commit's place in the journal: steps taken, skipped ones included. */
  readonly seq: number;
  /** The contributions it applied, in order. */
  readonly entries: readonly ContributionInfo[];
}

/**
 * One atomic commit: a new checkpoint (or none) made current if `expected` is still the
 * current version (and, with `lease`, the lease still unchanged), together with the outcome
 * of every request it settles and its journal record.
 *
 * @example
 * ```ts
 * import type { StepCommit } from "@optim/radam/store";
 *
 * const nothing: Partial<StepCommit> = { applied: [], refused: [], fresh: [] };
 * ```
 */
export interface StepCommit {
  /** The new checkpoint; null to record outcomes (refusals) without a step. */
  readonly checkpoint: Uint8Array | null;
  /** The version it replaces (null: an empty store). */
  readonly expected: string | null;
  /**
   * The metadata saved with the checkpoint, as `save`'s: text of at most `MAX_META_BYTES`
   * UTF-8 bytes, else the commit rejects (a RangeError for longer, a TypeError for what is not
   * text) and changes nothing. The library checks it before it commits, so only other callers
   * meet these errors (the kit does not check them).
   */
  readonly meta?: string;
  /** The new state's `step`, and its place in the journal (steps taken, skipped ones too). */
  readonly step: number;
  /** See {@linkcode JournalRecord.seq}. */
  readonly seq: number;
  /** The lease this commit is made under: checked, then released, renewed or handed on. */
  readonly lease?: Lease;
  /**
   * With `lease`: who holds it next, for how many ms: its own token (renewed) or the token
   * of the process that has waited longest (handed on); default: released.
   */
  readonly next?: { readonly token: string; readonly ms: number };
  /**
   * The contributions the step applied, in order: recorded as applied by `step`; those the
   * store held (with the `ref` that `pending` gave them) are removed from it. The journal record
   * (`step`, `seq`, these in order) is written when there is at least one, with a checkpoint or
   * without; a commit that applies none (a first checkpoint, refusals alone) journals nothing.
   */
  readonly applied: readonly (ContributionInfo & { readonly ref?: unknown })[];
  /**
   * Requests refused: recorded so, with the reason (and removed, as `applied`). The library's
   * stores keep at most 512 UTF-16 units of a reason: a longer one is cut, ending with
   * `… (N characters in all)` (`dataParallel` gives none longer).
   */
  readonly refused: readonly {
    readonly id: string;
    readonly reason: string;
    readonly ref?: unknown;
  }[];
  /**
   * Ids among `applied` and `refused` that the store does not hold yet (they came straight
   * from this process): the commit fails unless each is still unknown to the store.
   */
  readonly fresh: readonly string[];
}

/**
 * What a successful {@linkcode TrainingStore.commit} returns: the new version (the old one
 * when no checkpoint was committed) and, when renewed, the lease.
 *
 * @example
 * ```ts
 * import type { CommitResult } from "@optim/radam/store";
 *
 * const describe = (r: CommitResult) => `${r.version}${r.lease ? " (lease kept)" : ""}`;
 * ```
 */
export interface CommitResult {
  /** The version current after the commit. */
  readonly version: string | null;
  /** The lease, when the commit renewed it for its caller; null when released or handed on. */
  readonly lease: Lease | null;
}

/**
 * A store for idempotent optimistic steps and the data-parallel mode. Every method is one
 * request to the database (or a few, for data written in chunks), and every write that must
 * not be torn or repeated is one atomic, checked write. Every method answers with a promise,
 * failures included: a rejection, never a synchronous throw (the library answers a throw as it
 * would the rejection, but other code calling the store with `.then` or `.catch` would not; a
 * binding over a synchronous driver, such as `node:sqlite`'s `DatabaseSync`, makes its methods
 * async or wraps them, as `examples/sqlite_store.ts` does).
 *
 * @example
 * ```ts
 * import { memoryCheckpointStore, type TrainingStore } from "@optim/radam/store";
 * import assert from "node:assert/strict";
 *
 * const store: TrainingStore = memoryCheckpointStore();
 * assert.equal(await store.head(), null);
 * assert.equal(await store.request("r1"), null);
 * ```
 */
export interface TrainingStore<TArrayBuffer extends ArrayBufferLike = ArrayBufferLike>
  extends VersionedCheckpointStore<TArrayBuffer> {
  /**
   * The most contributions one {@linkcode TrainingStore.commit} can settle within what the
   * database takes in one atomic write (absent: no bound): `dataParallel` folds at most this
   * many in a step, whatever its option `maxFold`.
   */
  readonly maxFold?: number;
  /**
   * The most contributions not yet stored (`StepCommit.fresh`, each a check that its id is still
   * unknown) one {@linkcode TrainingStore.commit} takes, with a checkpoint and a lease (absent: no
   * bound): `dataParallel` takes at most this many of its own process's in a step (stored ones,
   * which need no such check, fill the rest of `maxFold`; its holder stores those of its own that
   * would else wait past `staleness`, and all of them when it hands the lease on, for the next
   * steps to take so). A database that bounds the checks of one atomic write needs it (the
   * self-hosted Deno KV server takes 10).
   */
  readonly maxFresh?: number;
  /**
   * The current version and step, without the checkpoint (null: nothing saved yet). The step is
   * the `step` of the commit that made the version current; a version made by `save`, which
   * gives none, has a step of null (`loadParams` reads it from the checkpoint).
   */
  head(): Promise<{ readonly version: string; readonly step: number | null } | null>;
  /** The current checkpoint: its bytes, version and metadata, as `VersionedCheckpointStore.load`. */
  load(): Promise<StoredCheckpoint<TArrayBuffer> | null>;
  /**
   * The current parameters only (not the moments), with their version: of a checkpoint kept as
   * saved (a safetensors file), `{ ...checkpointParams(bytes, name), version }` (see
   * `checkpointParams` of `@optim/radam/store`; `examples/sqlite_store.ts` and `examples/cloudflare/` do so).
   * Damaged bytes: it rejects with a CheckpointError, which the library passes on as it is.
   */
  loadParams(): Promise<StoredParams | null>;
  /** Commits a step; null (nothing changed) when a check failed. See {@linkcode StepCommit}. */
  commit(commit: StepCommit): Promise<CommitResult | null>;
  /**
   * What the store knows of a request id; null when nothing. An id is 1 to 64 UTF-16 code
   * units of any text but a lone surrogate, U+0000 included: a SQL `TEXT` column cuts it there
   * (SQLite through `node:sqlite`) or refuses it (Postgres), so keep it as its UTF-8 bytes (a
   * `BLOB` or `bytea`, which also orders as `pending` asks).
   */
  request(id: string): Promise<RequestRecord | null>;
  /**
   * Stores a contribution and its gradient (the tensors' float32 values one after another, in
   * the state's order) durably, atomically with its request record, unless the id is known:
   * null when stored now, else the record found (and nothing stored).
   */
  submit(contribution: ContributionInfo, gradient: Uint8Array): Promise<RequestRecord | null>;
  /**
   * Up to `limit` stored contributions not folded yet, in an order every process agrees on
   * (no process's clock decides it): the lowest base step first, those of one base step by id,
   * in the order of their UTF-8 bytes (as Deno KV orders keys), and those of one id (sent again
   * once its record expired) in the order they were submitted (on Deno KV, by the submission's
   * own id, a UUID that begins with its submitting process's time). A contribution waits
   * behind a bounded number of others: once the steps are past its base, only those computed
   * before can come before it. A fold takes them, and averages their gradients, in this order.
   * `limit`: as {@linkcode TrainingStore.journal}'s.
   */
  pending(limit: number): Promise<PendingContribution[]>;
  /**
   * The gradient of a pending contribution, as submitted. Of one no longer held (a commit
   * settled it after `pending` listed it: only when the caller's lease ended meanwhile and
   * another process folded it): its bytes, if the store still has them, else a rejection with
   * a CheckpointError (as for a stored gradient that is damaged). A fold takes a CheckpointError
   * as a damaged contribution, refused in a commit whose lease check then fails (nothing is
   * recorded); it takes any other rejection as the database failing, which ends the fold and
   * fails this process's own requests in it. The conformance kit checks this
   * (`gradient.gone`).
   */
  gradient(contribution: PendingContribution): Promise<Uint8Array>;
  /**
   * Takes the lease for `ms` if no one holds it, its holder's has expired, or it was handed
   * on to `token`; null otherwise, and then, with `queue` (default true), notes that `token`
   * waits for it (see {@linkcode TrainingStore.waiting}); without, removes any such note.
   * Whether another's lease has expired is judged on the caller's clock alone, never by
   * comparing the end its writer recorded (another process's clock) with it: expired once the
   * caller has seen the same record for its whole term (or its recorded end is more than a
   * minute past by the caller's clock: long dead). Held by `token` itself (its own lease, or
   * one handed on to it): taken again, a new lease of `token` for `ms` from now, with a new
   * `ref` (a commit under the one before then fails): a trainer whose release failed asks so
   * with its own token, and must not wait out its own lease as another's (the kit checks it:
   * `lease.again`). The library's stores refuse a token that is not a request id's kind of
   * string (1 to 64 characters, no lone surrogate) with a TypeError, and a term `ms` that is not
   * a finite number > 0 with a RangeError (a TypeError for what is not a number), nothing
   * changed; `release` so a token.
   */
  acquire(token: string, ms: number, queue?: boolean): Promise<Lease | null>;
  /**
   * Gives the lease up if it is still this one; given a token, if it is held by (was handed
   * on to) that token, and removes the token's note that it waits.
   */
  release(lease: Lease | string): Promise<void>;
  /**
   * The token that has waited longest for the lease (and asked for it within the last
   * second), other than the lease's own; null when none. Judged on the caller's clock alone,
   * from what this store object read of the waiting notes before (each process's notes hold
   * its own clock's times): a note asks while it changed within the last second, and notes are
   * ordered by when this store object first read each.
   */
  waiting(lease: Lease): Promise<string | null>;
  /**
   * Journal records from step `from` on (by `seq`), at most `limit` (an integer ≥ 0 or
   * Infinity; `from` a number: else the promise rejects with a RangeError, or a TypeError for
   * what is not a number), in order. How long records are kept is the store's choice: the
   * library's stores keep each for `rememberMs`, as the request records of its ids, then forget
   * it (so a listing from 0 starts at the oldest kept). The library itself never reads the
   * journal (it is the application's, to audit or replay: `examples/serverless_handler.ts`
   * serves it), so a binding may keep records longer, or always.
   */
  journal(from: number, limit: number): Promise<JournalRecord[]>;
}
