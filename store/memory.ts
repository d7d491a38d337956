/**
 * An in-process store with the contracts of {@linkcode VersionedCheckpointStore} and
 * {@linkcode TrainingStore}: for tests and single processes.
 *
 * @module
 */
import {
  checkCount,
  checkLeaseAsk,
  checkMeta,
  checkOptionsObject,
  checkRememberMs,
  checkSaveArguments,
  optionError,
  refusedListing,
} from "./_checks.ts";
import type { StoredCheckpoint, VersionedCheckpointStore } from "./contract.ts";
import { readParamsPrefix, readStoredParams } from "./layout.ts";
import { notedRecently, WaitingNotes } from "./_notes.ts";
import { ExpiryQueue } from "./_expiry.ts";
import { LeaseSighting } from "./_lease.ts";
import { sleep } from "./_time.ts";
import { boundReason } from "./errors.ts";
import { journalEntries, keyedBase } from "./_contribution.ts";
import type {
  ContributionInfo,
  JournalRecord,
  Lease,
  PendingContribution,
  RequestRecord,
  StepCommit,
  TrainingStore,
} from "./training.ts";
import { compareUtf8 } from "../base/_utf8.ts";

/**
 * How long a store remembers request ids and journal records by default, in ms: 7 days.
 *
 * @example
 * ```ts
 * import { REMEMBER_MS } from "@optim/radam/store";
 * import assert from "node:assert/strict";
 *
 * assert.equal(REMEMBER_MS, 7 * 24 * 3600 * 1000);
 * ```
 */
export const REMEMBER_MS = 604_800_000;

/**
 * Options of {@linkcode memoryCheckpointStore}.
 *
 * @example
 * ```ts
 * import { memoryCheckpointStore, type MemoryStoreOptions } from "@optim/radam/store";
 *
 * const options: MemoryStoreOptions = { name: "test store", latencyMs: 1 };
 * const store = memoryCheckpointStore(options);
 * ```
 */
export interface MemoryStoreOptions {
  /** The store's name in error messages; default `"in memory"`. */
  name?: string;
  /**
   * Answers each call this many ms later (a timer), as a database would after a round trip,
   * so that concurrent callers interleave as they would on one; default 0 (a microtask).
   */
  latencyMs?: number;
  /**
   * How long request ids and journal records are kept, in ms: an integer from 1 to 10¹⁵, as
   * the Deno KV store takes; default {@linkcode REMEMBER_MS} (7 days). A request id sent again
   * later than that is taken as new.
   */
  rememberMs?: number;
}

/**
 * A stored contribution, under its own number, in the order of submission: an id sent again
 * once its record expired (`rememberMs`) is stored beside the one of that id still waiting, not
 * in its place, and folds after it.
 */
interface Stored {
  readonly n: number;
  readonly info: ContributionInfo;
  readonly gradient: Uint8Array;
}

/** What the store holds. */
interface Memory {
  current: { bytes: Uint8Array; version: string; meta?: string; step: number | null } | null;
  counter: number;
  leases: number;
  requests: Map<string, { record: RequestRecord; until: number }>;
  stored: number;
  pending: Map<number, Stored>;
  /** The lease: its holder, end and term (judged by who reads it: see store/_lease.ts). */
  lease: { token: string; expires: number; ms: number; ref: number } | null;
  /** Who waits for the lease: since when, and when it last asked. */
  wants: Map<string, { since: number; at: number }>;
  journal: Map<number, { record: JournalRecord; until: number }>;
  /** The records of `requests` and `journal`, soonest to expire first (see `forget`). */
  requestsDue: ExpiryQueue<string>;
  journalDue: ExpiryQueue<number>;
}

type Held = NonNullable<Memory["lease"]>;

/** A new lease record for `token`, for `ms`. */
function newLease(m: Memory, token: string, ms: number): Held {
  return { token, expires: Date.now() + ms, ms, ref: ++m.leases };
}

/** The lease as the store's caller gets it. */
const leaseOf = ({ token, expires, ref }: Held): Lease => ({ token, expires, ref });

/** Records request `id` as `record` until `until`. */
function remember(m: Memory, id: string, record: RequestRecord, until: number): void {
  m.requests.set(id, { record, until });
  m.requestsDue.push(id, until);
}

/** The step a checkpoint records, or null when the bytes are not one. */
function stepOf(bytes: Uint8Array): number | null {
  try {
    return readParamsPrefix(bytes, bytes.length, true).step;
  } catch {
    return null;
  }
}

/** Whether every check of `c` holds in `m`. */
function checksHold(m: Memory, c: StepCommit): boolean {
  if ((m.current?.version ?? null) !== c.expected) return false;
  if (c.lease && (m.lease === null || m.lease.ref !== c.lease.ref)) return false;
  const now = Date.now();
  return c.fresh.every((id) => !((m.requests.get(id)?.until ?? 0) > now));
}

/** Applies a commit whose checks hold; its result. */
function applyCommit(m: Memory, c: StepCommit, rememberMs: number) {
  const until = Date.now() + rememberMs;
  if (c.checkpoint !== null) {
    m.current = {
      bytes: c.checkpoint.slice(),
      version: String(++m.counter),
      step: c.step,
      ...(c.meta === undefined ? {} : { meta: c.meta }),
    };
  }
  // A settled contribution the store held (with the ref `pending` gave) is removed from it.
  for (const e of c.applied) {
    remember(m, e.id, { state: "applied", step: c.step }, until);
    if (e.ref !== undefined) m.pending.delete((e.ref as Stored).n);
  }
  for (const { id, reason, ref } of c.refused) {
    remember(m, id, { state: "refused", step: c.step, reason: boundReason(reason) }, until);
    if (ref !== undefined) m.pending.delete((ref as Stored).n);
  }
  if (c.applied.length > 0) {
    const entries = journalEntries(c.applied);
    m.journal.set(c.seq, { record: { step: c.step, seq: c.seq, entries }, until });
    m.journalDue.push(c.seq, until);
  }
  let lease: Lease | null = null;
  if (c.lease && c.next !== undefined) {
    m.lease = newLease(m, c.next.token, c.next.ms);
    if (c.next.token === c.lease.token) lease = leaseOf(m.lease);
  } else if (c.lease) {
    m.lease = null;
  }
  return { version: m.current?.version ?? null, lease };
}

/**
 * Removes what is older than it is kept, visiting only what expired: each record set is in its
 * queue with its expiry, and is removed when that comes unless it was set again since.
 */
function forget(m: Memory): void {
  const now = Date.now();
  m.requestsDue.popDue(now, (id, until) => {
    if (m.requests.get(id)?.until === until) m.requests.delete(id);
  });
  m.journalDue.popDue(now, (seq, until) => {
    if (m.journal.get(seq)?.until === until) m.journal.delete(seq);
  });
}

/** The {@linkcode TrainingStore} methods beyond load and save, on `m` (the store `name`). */
function trainingMethods(
  m: Memory,
  later: <T>(f: () => T) => Promise<T>,
  rememberMs: number,
  name: string,
): Omit<TrainingStore, "name" | "load" | "save"> {
  const notes = new WaitingNotes();
  // Each token (a process, here) judges the lease by how long it has seen the same record.
  const sighting = new LeaseSighting();
  const known = (id: string) => {
    const r = m.requests.get(id);
    return r !== undefined && r.until > Date.now() ? r.record : null;
  };
  return {
    head: () => later(() => m.current && { version: m.current.version, step: m.current.step }),
    loadParams: () =>
      later(() => {
        if (m.current === null) return null;
        const { bytes, version } = m.current;
        return { ...readStoredParams(name, bytes, bytes.length, true), version };
      }),
    commit: (c) => {
      try {
        if (c.checkpoint !== null) checkMeta(c.meta);
      } catch (error) {
        return Promise.reject(error); // as save's: the promise rejects, nothing is thrown
      }
      const bytes = c.checkpoint?.slice() ?? null;
      return later(() => {
        if (!checksHold(m, c)) return null;
        forget(m);
        return applyCommit(m, { ...c, checkpoint: bytes }, rememberMs);
      });
    },
    request: (id) => later(() => known(id)),
    submit: (info, gradient) => {
      const copy = gradient.slice();
      return later(() => {
        const record = known(info.id);
        if (record !== null) return record;
        const { id, base, samples } = info;
        remember(m, id, { state: "pending" }, Date.now() + rememberMs);
        const n = ++m.stored;
        m.pending.set(n, { n, info: { id, base: keyedBase(base), samples }, gradient: copy });
        return null;
      });
    },
    pending: (limit) =>
      refusedListing("pending", limit) ?? later(() =>
        [...m.pending.values()]
          .sort((a, b) =>
            a.info.base - b.info.base || compareUtf8(a.info.id, b.info.id) ||
            a.n - b.n
          )
          .slice(0, limit)
          .map((p): PendingContribution => ({ ...p.info, ref: p }))
      ),
    gradient: (p) => later(() => (p.ref as Stored).gradient.slice()),
    acquire: (token, ms, queue = true) =>
      later(() => {
        checkLeaseAsk("acquire", token, ms);
        const now = Date.now();
        if (
          m.lease !== null && m.lease.token !== token && !sighting.over(m.lease.ref, m.lease, token)
        ) {
          const note = m.wants.get(token);
          // Noted again at most four times a second, as the Deno KV store writes its notes (and
          // at once where the wall clock was set back past the note's time: see `notedRecently`).
          if (!queue) m.wants.delete(token);
          else if (!notedRecently(note, now)) {
            m.wants.set(token, { since: note?.since ?? now, at: now });
          }
          return null;
        }
        m.wants.delete(token);
        m.lease = newLease(m, token, ms);
        return leaseOf(m.lease);
      }),
    release: (lease) =>
      later(() => {
        // A token (anything but a lease object: refused unless a token).
        if (typeof lease !== "object" || lease === null) {
          checkLeaseAsk("release", lease);
          m.wants.delete(lease);
          if (m.lease?.token === lease) m.lease = null;
        } else if (m.lease?.ref === lease.ref) m.lease = null;
      }),
    waiting: (lease) => later(() => notes.longest(m.wants, lease.token)),
    journal: (from, limit) =>
      refusedListing("journal", limit, from) ??
        later(() =>
          [...m.journal.values()].map((j) => j.record).filter((r) => r.seq >= from)
            .sort((a, b) => a.seq - b.seq).slice(0, limit)
        ),
  };
}

/**
 * An in-process store of one checkpoint with the same contracts as the Deno KV store (see
 * {@linkcode VersionedCheckpointStore} and {@linkcode TrainingStore}): what a test or a single
 * process uses. It keeps copies, so the caller's arrays may change afterwards; versions are
 * `"1"`, `"2"`, ….
 *
 * @example Two writers from the same version: the second one is refused
 * ```ts
 * import { memoryCheckpointStore } from "@optim/radam/store";
 * import assert from "node:assert/strict";
 *
 * const store = memoryCheckpointStore();
 * const v1 = await store.save(new Uint8Array([1]), null);
 * assert.equal(await store.save(new Uint8Array([2]), v1), "2");
 * assert.equal(await store.save(new Uint8Array([3]), v1), null); // v1 is no longer current
 * ```
 */
export function memoryCheckpointStore(
  options?: MemoryStoreOptions,
): VersionedCheckpointStore<ArrayBuffer> & TrainingStore<ArrayBuffer> {
  if (options === undefined) options = {};
  checkOptionsObject(
    options,
    "memoryCheckpointStore",
    Object.keys(
      { name: true, latencyMs: true, rememberMs: true } satisfies Record<
        keyof MemoryStoreOptions,
        true
      >,
    ),
  );
  const { name = "in memory", latencyMs = 0 } = options;
  if (typeof name !== "string") throw optionError("name", "a string", name, false);
  checkCount("latencyMs", latencyMs, 0, false);
  const rememberMs = checkRememberMs(options.rememberMs ?? REMEMBER_MS);
  const m: Memory = {
    current: null,
    counter: 0,
    leases: 0,
    requests: new Map(),
    stored: 0,
    pending: new Map(),
    lease: null,
    wants: new Map(),
    journal: new Map(),
    requestsDue: new ExpiryQueue(),
    journalDue: new ExpiryQueue(),
  };
  // Each call takes effect, at once and whole, when its answer comes.
  const later = <T>(f: () => T): Promise<T> =>
    latencyMs > 0
      ? sleep(latencyMs).then(f) // a timer of any length: setTimeout fires one past 2³¹ ms at once
      : Promise.resolve().then(f);
  return {
    name,
    load: () =>
      later((): StoredCheckpoint<ArrayBuffer> | null => {
        if (m.current === null) return null;
        const { bytes, version, meta } = m.current;
        return { bytes: bytes.slice(), version, ...(meta === undefined ? {} : { meta }) };
      }),
    save(bytes, expected, meta) {
      try {
        checkSaveArguments(bytes, expected);
        checkMeta(meta);
      } catch (error) {
        return Promise.reject(error);
      }
      const copy = bytes.slice();
      return later(() => {
        if ((m.current?.version ?? null) !== expected) return null;
        m.current = {
          bytes: copy,
          version: String(++m.counter),
          step: stepOf(copy),
          ...(meta === undefined ? {} : { meta }),
        };
        return m.current.version;
      });
    },
    ...trainingMethods(m, later, rememberMs, name),
  };
}
