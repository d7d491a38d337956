/**
 * A `TrainingStore` of `@optim/radam/store` over SQL, through `node:sqlite` (`DatabaseSync`:
 * Deno 2.9 as tested, Node 22.5+): an example to copy, written from the README's store sections
 * and the TSDoc alone, and checked by `verifyTrainingStore` (examples/sqlite_store_test.ts). It
 * is not a part of the library. In Deno it needs `--allow-read --allow-write` of the database's
 * folder, nothing else.
 *
 * One table per kind of record, every row keyed by `model` (so one database holds many models),
 * and every method that writes is one transaction: the check-and-set of a save or a commit reads
 * the row it checks and writes in the same transaction, which holds the database's write lock
 * from its `BEGIN` (SQLite's `BEGIN IMMEDIATE`; on Postgres, `BEGIN` then
 * `SELECT pg_advisory_xact_lock(hashtext(model))`, which also serializes the first save of an
 * empty store, where no row exists yet to lock `FOR UPDATE`). The SQL is plain otherwise: on
 * Postgres, `BLOB` is `bytea`, `?` is `$1`…, and `ref INTEGER PRIMARY KEY AUTOINCREMENT` is
 * `ref BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY`. Request ids are kept as their UTF-8 bytes,
 * which both order bytewise, as `pending` asks.
 *
 * Time: the wall clock (`now`) stamps what expires (request records, a lease's end); whether
 * another's lease ended is judged by how long this store object has seen it unchanged on its
 * monotonic clock (`mono`), as the contract asks. They default to `Date.now` and
 * `performance.now`, read at each call: the conformance kit checks a lease's end against
 * `Date.now`, so its test moves those (its option `advance`) rather than passing clocks here.
 *
 * @module
 */
import { DatabaseSync } from "node:sqlite";
import { CheckpointError } from "../mod.ts";
import {
  checkpointParams,
  type CommitResult,
  type ContributionInfo,
  type JournalRecord,
  type Lease,
  MAX_META_BYTES,
  type PendingContribution,
  REMEMBER_MS,
  type RequestRecord,
  type StepCommit,
  type StoredCheckpoint,
  type TrainingStore,
} from "../store.ts";

/** Options of {@linkcode sqliteStore}. */
export interface SqliteStoreOptions {
  /** How long request ids are remembered, in ms (default `REMEMBER_MS`, 7 days). */
  readonly rememberMs?: number;
  /** The wall clock, in ms since the epoch (default `Date.now`). */
  readonly now?: () => number;
  /** A monotonic clock, in ms (default `performance.now`). */
  readonly mono?: () => number;
}

/** How far past its recorded end a lease is over, however recently this object first saw it. */
const LONG_DEAD_MS = 60_000;
/** How long a waiting note not rewritten still asks for the lease. */
const ASKS_WITHIN_MS = 1000;

const SCHEMA = `
CREATE TABLE IF NOT EXISTS heads (
  model TEXT PRIMARY KEY, serial INTEGER NOT NULL, version TEXT, step INTEGER, meta TEXT,
  bytes BLOB);
CREATE TABLE IF NOT EXISTS requests (
  model TEXT NOT NULL, id BLOB NOT NULL, state TEXT NOT NULL, step INTEGER, reason TEXT,
  until_ms DOUBLE PRECISION NOT NULL, PRIMARY KEY (model, id));
CREATE TABLE IF NOT EXISTS contributions (
  ref INTEGER PRIMARY KEY AUTOINCREMENT, model TEXT NOT NULL, id BLOB NOT NULL,
  base INTEGER NOT NULL, samples INTEGER NOT NULL, gradient BLOB NOT NULL);
CREATE INDEX IF NOT EXISTS contributions_order ON contributions (model, base, id, ref);
CREATE TABLE IF NOT EXISTS journal (
  model TEXT NOT NULL, seq INTEGER NOT NULL, step INTEGER NOT NULL, entries TEXT NOT NULL,
  PRIMARY KEY (model, seq));
CREATE TABLE IF NOT EXISTS leases (
  model TEXT PRIMARY KEY, token TEXT, expires DOUBLE PRECISION NOT NULL,
  term DOUBLE PRECISION NOT NULL, serial INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS wants (
  model TEXT NOT NULL, token TEXT NOT NULL, at DOUBLE PRECISION NOT NULL,
  PRIMARY KEY (model, token));
`;

type Row = Record<string, unknown>;

/** Opens (and, if new, lays out) a database file for {@linkcode sqliteStore}. */
export function openTrainingDatabase(path: string): DatabaseSync {
  const db = new DatabaseSync(path);
  db.exec("PRAGMA busy_timeout = 5000"); // another connection's transaction: wait, not fail
  db.exec("PRAGMA journal_mode = WAL"); // readers do not wait for the writer
  db.exec(SCHEMA);
  return db;
}

/** Throws as the library's stores do for a listing's bad `limit` or `from`. */
function checkListing(method: string, limit: unknown, from: unknown = 0): void {
  const bad = typeof limit !== "number" ||
      !(limit === Infinity || (Number.isInteger(limit) && limit >= 0))
    ? ["limit", "an integer ≥ 0 or Infinity", limit] as const
    : typeof from !== "number" || Number.isNaN(from)
    ? ["from", "a number", from] as const
    : null;
  if (bad === null) return;
  const message = `${method}'s ${bad[0]} must be ${bad[1]}, got ${String(bad[2])}`;
  throw typeof bad[2] === "number" ? new RangeError(message) : new TypeError(message);
}

/** Throws unless `meta` is absent or text of at most MAX_META_BYTES UTF-8 bytes. */
function checkMeta(meta: unknown): void {
  if (meta === undefined) return;
  if (typeof meta !== "string" || !meta.isWellFormed()) {
    throw new TypeError("A checkpoint's meta must be a string of text (no lone surrogate)");
  }
  const length = new TextEncoder().encode(meta).length;
  if (length > MAX_META_BYTES) {
    throw new RangeError(`A checkpoint's meta holds ${length} UTF-8 bytes, over ${MAX_META_BYTES}`);
  }
}

/**
 * A request id as stored: its UTF-8 bytes, in a BLOB (`bytea`), which orders by them and keeps a
 * U+0000 (ids may hold one; a TEXT column cuts the id there, Postgres's refuses it).
 */
const utf8 = (id: string): Uint8Array => new TextEncoder().encode(id);

/** A copy of `bytes` over an ArrayBuffer of its own. */
const copy = (bytes: Uint8Array): Uint8Array<ArrayBuffer> => new Uint8Array(bytes);

/**
 * `store`, each of whose methods rejects where it threw (a bad argument, a database error):
 * `DatabaseSync` answers at once, and the library awaits a store's calls.
 */
function rejecting<T extends object>(store: T): T {
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(store)) {
    out[key] = typeof value !== "function" ? value : (...args: unknown[]) => {
      try {
        return value.apply(out, args);
      } catch (error) {
        return Promise.reject(error);
      }
    };
  }
  return out as T;
}

/**
 * A `TrainingStore` of the model `model` in the database `db` (from
 * {@linkcode openTrainingDatabase}): for `optimisticStep` and `dataParallel`. Make one per
 * process and model; each connection to the file is a process to the store.
 */
export function sqliteStore(
  db: DatabaseSync,
  model: string,
  options: SqliteStoreOptions = {},
): TrainingStore<ArrayBuffer> {
  const rememberMs = options.rememberMs ?? REMEMBER_MS;
  const now = options.now ?? (() => Date.now());
  const mono = options.mono ?? (() => performance.now());
  /** The lease record this object read last (by its serial), when it first read it (`mono`). */
  let seen = { serial: NaN, first: 0 };
  /** Each waiting note as this object read it last, when first read, when last seen to change. */
  const notes = new Map<string, { at: number; first: number; changed: number }>();

  const get = (sql: string, args: unknown[]) =>
    db.prepare(sql).get(...(args as never[])) as Row | undefined;
  const all = (sql: string, args: unknown[]) => db.prepare(sql).all(...(args as never[])) as Row[];
  const run = (sql: string, args: unknown[]) => void db.prepare(sql).run(...(args as never[]));

  /** Runs `body` in one write transaction: committed if it returns, rolled back if it throws. */
  function transaction<T>(body: () => T): T {
    db.exec("BEGIN IMMEDIATE");
    try {
      const result = body();
      db.exec("COMMIT");
      return result;
    } catch (error) {
      db.exec("ROLLBACK");
      throw error;
    }
  }

  const headRow = () => get("SELECT * FROM heads WHERE model = ?", [model]);
  const currentVersion = () => (headRow()?.version as string | null | undefined) ?? null;

  /** Makes `bytes` current under a new version; returns it. In a transaction. */
  function put(bytes: Uint8Array, step: number | null, meta: string | undefined): string {
    const serial = Number(headRow()?.serial ?? 0) + 1;
    const version = String(serial);
    run(
      `INSERT INTO heads (model, serial, version, step, meta, bytes) VALUES (?, ?, ?, ?, ?, ?)
       ON CONFLICT (model) DO UPDATE SET serial = excluded.serial, version = excluded.version,
       step = excluded.step, meta = excluded.meta, bytes = excluded.bytes`,
      [model, serial, version, step, meta ?? null, bytes],
    );
    return version;
  }

  function known(id: string): RequestRecord | null {
    const r = get(
      "SELECT * FROM requests WHERE model = ? AND id = ? AND until_ms > ?",
      [model, utf8(id), now()],
    );
    if (r === undefined) return null;
    if (r.state === "applied") return { state: "applied", step: Number(r.step) };
    if (r.state === "refused") {
      return { state: "refused", step: Number(r.step), reason: String(r.reason) };
    }
    return { state: "pending" };
  }

  function record(id: string, state: string, step: number | null, reason: string | null): void {
    run(
      `INSERT INTO requests (model, id, state, step, reason, until_ms) VALUES (?, ?, ?, ?, ?, ?)
       ON CONFLICT (model, id) DO UPDATE SET state = excluded.state, step = excluded.step,
       reason = excluded.reason, until_ms = excluded.until_ms`,
      [model, utf8(id), state, step, reason, now() + rememberMs],
    );
  }

  /**
   * Writes the lease row for `token`; returns the lease. In a transaction. The row is never
   * deleted (a released lease has no token), so that its serial, the lease's `ref`, is never
   * given twice: a commit under a lease released and taken again must fail.
   */
  function grant(token: string, ms: number): Lease {
    const serial = Number(get("SELECT serial FROM leases WHERE model = ?", [model])?.serial ?? 0) +
      1;
    const expires = now() + ms;
    run(
      `INSERT INTO leases (model, token, expires, term, serial) VALUES (?, ?, ?, ?, ?)
       ON CONFLICT (model) DO UPDATE SET token = excluded.token, expires = excluded.expires,
       term = excluded.term, serial = excluded.serial`,
      [model, token, expires, ms, serial],
    );
    run("DELETE FROM wants WHERE model = ? AND token = ?", [model, token]);
    return { token, expires, ref: serial };
  }

  /** Whether another's lease `row` is over, judged on this object's clocks alone. */
  function over(row: Row): boolean {
    if (seen.serial !== Number(row.serial)) seen = { serial: Number(row.serial), first: mono() };
    return mono() - seen.first >= Number(row.term) ||
      now() > Number(row.expires) + LONG_DEAD_MS;
  }

  return rejecting<TrainingStore<ArrayBuffer>>({
    name: `sqlite:${model}`,

    load() {
      const row = headRow();
      if (row?.version == null) return Promise.resolve(null);
      const stored: StoredCheckpoint<ArrayBuffer> = {
        bytes: copy(row.bytes as Uint8Array),
        version: String(row.version),
        ...(row.meta === null ? {} : { meta: String(row.meta) }),
      };
      return Promise.resolve(stored);
    },

    save(bytes, expected, meta) {
      if (!(bytes instanceof Uint8Array)) {
        throw new TypeError(`save takes the checkpoint as a Uint8Array, got ${typeof bytes}`);
      }
      checkMeta(meta);
      return Promise.resolve(transaction(() => {
        if (currentVersion() !== expected) return null;
        return put(bytes, null, meta);
      }));
    },

    head() {
      const row = headRow();
      if (row?.version == null) return Promise.resolve(null);
      return Promise.resolve({
        version: String(row.version),
        step: row.step === null ? null : Number(row.step),
      });
    },

    loadParams() {
      const row = headRow();
      if (row?.version == null) return Promise.resolve(null);
      return Promise.resolve({
        ...checkpointParams(row.bytes as Uint8Array, `sqlite:${model}`),
        version: String(row.version),
      });
    },

    commit(c: StepCommit): Promise<CommitResult | null> {
      if (c.checkpoint !== null) checkMeta(c.meta);
      return Promise.resolve(transaction(() => {
        if (currentVersion() !== c.expected) return null;
        if (c.lease !== undefined) {
          const row = get("SELECT * FROM leases WHERE model = ?", [model]);
          if (row?.token !== c.lease.token || Number(row.serial) !== c.lease.ref) return null;
        }
        if (c.fresh.some((id) => known(id) !== null)) return null;
        run("DELETE FROM requests WHERE model = ? AND until_ms <= ?", [model, now()]); // expired
        const version = c.checkpoint === null ? c.expected : put(c.checkpoint, c.step, c.meta);
        for (const a of c.applied) {
          record(a.id, "applied", c.step, null);
          if (a.ref !== undefined) {
            run("DELETE FROM contributions WHERE ref = ?", [a.ref as number]);
          }
        }
        for (const r of c.refused) {
          record(r.id, "refused", c.step, r.reason);
          if (r.ref !== undefined) {
            run("DELETE FROM contributions WHERE ref = ?", [r.ref as number]);
          }
        }
        if (c.applied.length > 0) {
          const entries = c.applied.map(({ id, base, samples }) => ({ id, base, samples }));
          run(
            "INSERT INTO journal (model, seq, step, entries) VALUES (?, ?, ?, ?)",
            [model, c.seq, c.step, JSON.stringify(entries)],
          );
        }
        let lease: Lease | null = null;
        if (c.lease !== undefined) {
          if (c.next === undefined) run("UPDATE leases SET token = NULL WHERE model = ?", [model]);
          else {
            const granted = grant(c.next.token, c.next.ms);
            if (c.next.token === c.lease.token) lease = granted;
          }
        }
        return { version, lease };
      }));
    },

    request(id) {
      return Promise.resolve(known(id));
    },

    submit(info: ContributionInfo, gradient: Uint8Array) {
      return Promise.resolve(transaction(() => {
        const found = known(info.id);
        if (found !== null) return found;
        record(info.id, "pending", null, null);
        run(
          "INSERT INTO contributions (model, id, base, samples, gradient) VALUES (?, ?, ?, ?, ?)",
          [model, utf8(info.id), info.base, info.samples, gradient],
        );
        return null;
      }));
    },

    pending(limit) {
      checkListing("pending", limit);
      const rows = all(
        `SELECT ref, id, base, samples FROM contributions WHERE model = ?
         ORDER BY base, id, ref${limit === Infinity ? "" : ` LIMIT ${limit}`}`,
        [model],
      );
      return Promise.resolve(rows.map((r): PendingContribution => ({
        id: new TextDecoder().decode(r.id as Uint8Array),
        base: Number(r.base),
        samples: Number(r.samples),
        ref: Number(r.ref),
      })));
    },

    gradient(p) {
      const row = get("SELECT gradient FROM contributions WHERE ref = ?", [p.ref as number]);
      if (row === undefined) {
        // A contribution settled since (the kit's gradient.gone): a CheckpointError, which a
        // fold takes as a damaged contribution, not as the database failing.
        return Promise.reject(
          new CheckpointError(`The gradient of contribution ${p.id} is not stored`),
        );
      }
      return Promise.resolve(copy(row.gradient as Uint8Array));
    },

    acquire(token, ms, queue = true) {
      return Promise.resolve(transaction(() => {
        const row = get("SELECT * FROM leases WHERE model = ?", [model]);
        const free = row === undefined || row.token === null || row.token === token;
        if (free || over(row)) return grant(token, ms);
        if (queue) {
          run(
            `INSERT INTO wants (model, token, at) VALUES (?, ?, ?)
             ON CONFLICT (model, token) DO UPDATE SET at = excluded.at`,
            [model, token, now()],
          );
        } else run("DELETE FROM wants WHERE model = ? AND token = ?", [model, token]);
        return null;
      }));
    },

    release(lease) {
      transaction(() => {
        if (typeof lease === "string") {
          run("UPDATE leases SET token = NULL WHERE model = ? AND token = ?", [model, lease]);
          run("DELETE FROM wants WHERE model = ? AND token = ?", [model, lease]);
        } else {
          run(
            "UPDATE leases SET token = NULL WHERE model = ? AND token = ? AND serial = ?",
            [model, lease.token, lease.ref as number],
          );
        }
      });
      return Promise.resolve();
    },

    waiting(lease) {
      const t = mono();
      let best: string | null = null, bestFirst = Infinity;
      const rows = all("SELECT token, at FROM wants WHERE model = ?", [model]);
      for (const token of notes.keys()) {
        if (!rows.some((r) => r.token === token)) notes.delete(token); // gone: forget it
      }
      for (const r of rows) {
        const token = String(r.token), at = Number(r.at);
        const seen = notes.get(token);
        if (seen === undefined) notes.set(token, { at, first: t, changed: t });
        else if (seen.at !== at) notes.set(token, { at, first: seen.first, changed: t });
        const note = notes.get(token)!;
        if (token === lease.token || t - note.changed > ASKS_WITHIN_MS) continue;
        if (note.first < bestFirst) [best, bestFirst] = [token, note.first];
      }
      return Promise.resolve(best);
    },

    journal(from, limit) {
      checkListing("journal", limit, from);
      const rows = all(
        `SELECT * FROM journal WHERE model = ? AND seq >= ? ORDER BY seq${
          limit === Infinity ? "" : ` LIMIT ${limit}`
        }`,
        [model, from],
      );
      return Promise.resolve(rows.map((r): JournalRecord => ({
        step: Number(r.step),
        seq: Number(r.seq),
        entries: JSON.parse(String(r.entries)),
      })));
    },
  });
}
