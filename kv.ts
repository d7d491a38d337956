/**
 * Checkpoints on Deno KV, shared by concurrent writers (serverless functions, several
 * processes): `@optim/radam/kv`, Deno only.
 *
 * {@linkcode kvCheckpointStore} keeps one checkpoint under a key prefix, in chunks of at most
 * 64 KiB (Deno KV's value limit) under a version of their own, made current by one atomic,
 * checked write of a small head record (a checkpoint that fits in one value goes in the head); {@linkcode optimisticStep} runs "load, compute the
 * gradient on the loaded parameters, step, save if the version is still current", retried on a
 * conflict. No update is lost, no reader sees a torn checkpoint, and a crash at any moment
 * leaves the last committed checkpoint current.
 *
 * Deno KV is unstable in Deno 2: run with `--unstable-kv` (or `"unstable": ["kv"]` in
 * deno.json), and `--allow-read --allow-write` for the database file given to `Deno.openKv`
 * (`Deno.openKv(":memory:")` needs no permission). The main entry point, mod.ts, needs no
 * permissions and imports nothing of this one.
 *
 * ```ts ignore
 * import { radam } from "@optim/radam";
 * import { kvCheckpointStore, optimisticStep } from "@optim/radam/kv";
 *
 * const kv = await Deno.openKv("training.sqlite3");
 * const store = kvCheckpointStore(kv, ["models", "linear"]);
 * const { step } = await optimisticStep(store, {
 *   optimizer: radam({ lr: 1e-3 }),
 *   init: () => ({ w: new Float32Array(1024) }),
 *   gradient: (state) => void state.grads.w.fill(0.1), // the gradient at state.params
 * });
 * ```
 *
 * @module
 */
import { CheckpointError } from "./base/safetensors.ts";
import {
  checkMeta,
  checkSaveArguments,
  type StoredCheckpoint,
  type VersionedCheckpointStore,
} from "./core/optimistic.ts";

export {
  CheckpointConflictError,
  MAX_META_BYTES,
  memoryCheckpointStore,
  type MemoryStoreOptions,
  optimisticStep,
  type OptimisticStepOptions,
  type OptimisticStepResult,
  type StoredCheckpoint,
  type VersionedCheckpointStore,
} from "./core/optimistic.ts";

/**
 * The largest chunk a value of Deno KV can hold, in bytes: 64 KiB (the default chunk size).
 *
 * @example
 * ```ts
 * import { KV_MAX_CHUNK_BYTES } from "./kv.ts";
 * import assert from "node:assert/strict";
 *
 * assert.equal(Math.ceil(12_000_000 / KV_MAX_CHUNK_BYTES), 184); // chunks of a 12 MB checkpoint
 * ```
 */
export const KV_MAX_CHUNK_BYTES = 65536;

/** Value of `format` in a head record. */
const HEAD_FORMAT = "radam.kv-checkpoint";
/** At most this many chunk writes (and bytes) in one atomic operation (Deno KV: 800 KiB). */
const CHUNKS_PER_WRITE = 10;
const BYTES_PER_WRITE = 700_000;
/** Deletes in one atomic operation (Deno KV allows 1000 mutations), the record's aside. */
const DELETES_PER_WRITE = 998;
/** Checkpoints up to this size (with their metadata) go in the head, when within a chunk. */
const INLINE_BYTES = 60_000;
/** How often a load starts again when the checkpoint is replaced while it is being read. */
const READ_TRIES = 20;
/** How many ids of the versions last made current a head keeps. */
const RECENT = 64;
/** Tries of an operation the database refused as busy (another process holds its lock). */
const BUSY_TRIES = 30;

/** Whether `error` is the database saying it is busy: nothing was done, try again. */
function isBusy(error: unknown): boolean {
  return error instanceof Error && /database is (locked|busy)/i.test(error.message);
}

/** A random wait before try `n` of a busy operation: up to 1, 2, 4 … 32 ms. */
const busyPause = (n: number) =>
  new Promise((resolve) => setTimeout(resolve, Math.random() * 2 ** Math.min(n, 5)));

/**
 * Runs `f` (a read, or a write whose repetition is harmless) again while the database answers
 * that it is busy, as a local database file shared by several processes does, up to
 * {@linkcode BUSY_TRIES} times.
 */
async function unbusy<T>(f: () => Promise<T>): Promise<T> {
  for (let n = 1;; n++) {
    try {
      return await f();
    } catch (error) {
      if (!isBusy(error) || n >= BUSY_TRIES) throw error;
      await busyPause(n);
    }
  }
}

/** All entries of a list, read again from the start while the database is busy. */
const listAll = <T>(kv: Deno.Kv, selector: Deno.KvListSelector) =>
  unbusy(() => Array.fromAsync(kv.list<T>(selector)));

/**
 * Options of {@linkcode kvCheckpointStore}.
 *
 * @example
 * ```ts
 * import type { KvCheckpointStoreOptions } from "./kv.ts";
 *
 * const options: KvCheckpointStoreOptions = { model: "linear-v2", chunkBytes: 32768 };
 * ```
 */
export interface KvCheckpointStoreOptions {
  /**
   * A name for the model, recorded in the head: a head of another model is then refused on
   * load with a CheckpointError naming its key. Default: not recorded, not checked.
   */
  model?: string;
  /** Size of the chunks, 1 to {@linkcode KV_MAX_CHUNK_BYTES} (default) bytes. */
  chunkBytes?: number;
  /**
   * How long an unfinished save may be in progress before a later save may remove it as the
   * garbage of a crash, in ms; default 600 000 (10 min). A save that takes longer is then
   * refused as a conflict (and retried by {@linkcode optimisticStep}), never made current.
   */
  staleAfterMs?: number;
}

/**
 * A {@linkcode VersionedCheckpointStore} on Deno KV; see {@linkcode kvCheckpointStore}.
 *
 * @example
 * ```ts
 * import { kvCheckpointStore, type KvCheckpointStore } from "./kv.ts";
 * import assert from "node:assert/strict";
 *
 * const kv = await Deno.openKv(":memory:");
 * const store: KvCheckpointStore = kvCheckpointStore(kv, ["model"]);
 * assert.equal(store.name, '["model"]');
 * assert.equal(await store.sweep(), 0);
 * kv.close();
 * ```
 */
export interface KvCheckpointStore extends VersionedCheckpointStore {
  /** The database. */
  readonly kv: Deno.Kv;
  /** The key prefix under which the checkpoint lives. */
  readonly key: Deno.KvKey;
  /**
   * Removes the chunks of versions that are no longer current, and of saves that crashed
   * (unfinished for longer than `staleAfterMs`); returns how many versions it removed. Every
   * successful `save` runs it; call it to clean up without saving.
   */
  sweep(): Promise<number>;
}

/**
 * A key as text, as error messages write it.
 *
 * @example
 * ```ts
 * import { formatKvKey } from "./kv.ts";
 * import assert from "node:assert/strict";
 *
 * assert.equal(formatKvKey(["models", "linear", "chunks", 3, 7n]), '["models","linear","chunks",3,7n]');
 * ```
 */
export function formatKvKey(key: Deno.KvKey): string {
  const parts = key.map((part) => {
    if (typeof part === "string") return JSON.stringify(part);
    if (typeof part === "bigint") return `${part}n`;
    if (part instanceof Uint8Array) {
      return `bytes(${Array.from(part, (b) => b.toString(16).padStart(2, "0")).join("")})`;
    }
    return String(part);
  });
  return `[${parts.join(",")}]`;
}

interface Head {
  format: string;
  formatVersion: number;
  id: string;
  byteLength: number;
  chunkBytes: number;
  /** 0 when the bytes are in `data`, in the head itself. */
  chunks: number;
  data?: Uint8Array;
  sha256: string;
  model: string | null;
  meta?: string;
  /** The ids of the last versions made current, oldest first, ending with `id`. */
  recent: string[];
}

interface Lease {
  /** Dead: being removed (a version with more chunks than one atomic operation deletes). */
  state: "writing" | "committed" | "dead";
  created: number;
  chunks: number;
}

const isRecord = (v: unknown): v is Record<string, unknown> =>
  typeof v === "object" && v !== null && !Array.isArray(v) && !(v instanceof Uint8Array);

const isCount = (v: unknown, min: number, max = Number.MAX_SAFE_INTEGER): v is number =>
  typeof v === "number" && Number.isInteger(v) && v >= min && v <= max;

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/** The head record's value, validated; a CheckpointError naming `key` otherwise. */
function parseHead(value: unknown, key: string): Head {
  const bad = (what: string) => new CheckpointError(`Checkpoint head ${key} ${what}`);
  if (!isRecord(value)) throw bad(`is not a head record (a ${typeof value})`);
  if (value.format !== HEAD_FORMAT) {
    throw bad(`is not a head record of this library: format ${JSON.stringify(value.format)}`);
  }
  if (value.formatVersion !== 1) {
    throw bad(`has format version ${JSON.stringify(value.formatVersion)}; expected 1`);
  }
  if (typeof value.id !== "string" || !UUID.test(value.id)) {
    throw bad("has an invalid version id");
  }
  if (!isCount(value.chunkBytes, 1, KV_MAX_CHUNK_BYTES)) {
    throw bad(`has an invalid chunk size ${JSON.stringify(value.chunkBytes)}`);
  }
  if (!isCount(value.byteLength, 1)) {
    throw bad(`has an invalid byte length ${JSON.stringify(value.byteLength)}`);
  }
  if (value.chunks === 0) {
    if (!(value.data instanceof Uint8Array) || value.data.length !== value.byteLength) {
      throw bad(`holds no ${value.byteLength} bytes of data, though it says 0 chunks`);
    }
  } else if (value.chunks !== Math.ceil(value.byteLength / value.chunkBytes)) {
    throw bad(
      `says ${JSON.stringify(value.chunks)} chunks, but ${value.byteLength} bytes take ${
        Math.ceil(value.byteLength / value.chunkBytes)
      }`,
    );
  } else if (value.data !== undefined) {
    throw bad("holds data as well as chunks");
  }
  if (typeof value.sha256 !== "string" || !/^[0-9a-f]{64}$/.test(value.sha256)) {
    throw bad("has an invalid SHA-256 digest");
  }
  if (value.model !== null && typeof value.model !== "string") {
    throw bad("has an invalid model name");
  }
  if (value.meta !== undefined && typeof value.meta !== "string") {
    throw bad("has metadata that is not a string");
  }
  const recent = value.recent;
  if (
    !Array.isArray(recent) || recent.length > RECENT || recent[recent.length - 1] !== value.id ||
    !recent.every((r) => typeof r === "string" && UUID.test(r))
  ) {
    throw bad("has an invalid list of recent versions");
  }
  return value as unknown as Head;
}

function parseLease(value: unknown): Lease | null {
  if (
    !isRecord(value) || !["writing", "committed", "dead"].includes(value.state as string) ||
    typeof value.created !== "number" || !isCount(value.chunks, 1)
  ) {
    return null;
  }
  return value as unknown as Lease;
}

async function sha256(bytes: Uint8Array): Promise<string> {
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", bytes as BufferSource));
  return Array.from(digest, (b) => b.toString(16).padStart(2, "0")).join("");
}

/**
 * A store of one checkpoint in Deno KV under the prefix `key`, for {@linkcode optimisticStep}
 * (or used directly: `load()` and `save(bytes, expectedVersion, meta)`).
 *
 * Keys: `[...key, "head"]` (the head record: which version is current, its size, SHA-256,
 * model name, metadata, and the bytes themselves when they fit in one value with it), `[...key, "versions", id]` (one small record per version, which
 * says whether it is being written, committed or dead) and `[...key, "chunks", id, i]` (the
 * bytes). A version is the head's versionstamp.
 *
 * - **save** writes the chunks under a new version id, then, in one atomic operation checked
 *   against both the expected head versionstamp and its own version record, points the head at
 *   them: a crash before that leaves the previous checkpoint current, and a stale writer
 *   changes nothing. Then it removes the chunks of versions no longer current (see
 *   {@linkcode KvCheckpointStore.sweep}); a crash there only leaves garbage a later save
 *   removes. Once the head is written, save returns the new version whatever happens next.
 * - **load** reads the head, then its chunks, checks every chunk's size and the SHA-256 of the
 *   whole, and returns a new array. If the head changed while reading (the old chunks were
 *   removed), it starts again. Damage (a head that is not one, a truncated or missing chunk, a
 *   digest that does not match, another `model`) throws a CheckpointError naming the key; the
 *   validation of the checkpoint's contents is `loadState`'s.
 *
 * - **A busy database** (a local file that several processes share answers "database is
 *   locked" while another holds its lock) is asked again, a bounded number of times. If the head
 *   write itself fails so, save finds out whether it was done (the head keeps the ids of the
 *   last 64 versions made current) before it writes again, so a save is never applied twice;
 *   when that cannot be told, the error is thrown.
 *
 * Invalid options throw a TypeError or RangeError naming them.
 *
 * @example Save, load, and a refused stale save
 * ```ts
 * import { kvCheckpointStore } from "./kv.ts";
 * import assert from "node:assert/strict";
 *
 * const kv = await Deno.openKv(":memory:");
 * const store = kvCheckpointStore(kv, ["models", "linear"], { chunkBytes: 4 });
 * const v1 = await store.save(new Uint8Array([1, 2, 3, 4, 5, 6]), null); // 2 chunks
 * const v2 = await store.save(new Uint8Array([7, 8, 9]), v1);
 * assert.equal(await store.save(new Uint8Array([0]), v1), null); // v1 is no longer current
 * const current = await store.load();
 * assert.deepEqual(current?.bytes, new Uint8Array([7, 8, 9]));
 * assert.equal(current?.version, v2);
 * kv.close();
 * ```
 */
export function kvCheckpointStore(
  kv: Deno.Kv,
  key: Deno.KvKey,
  options: KvCheckpointStoreOptions = {},
): KvCheckpointStore {
  if (typeof kv !== "object" || kv === null || typeof kv.atomic !== "function") {
    throw new TypeError("Expected a Deno.Kv, e.g. await Deno.openKv(path)");
  }
  if (!Array.isArray(key)) throw new TypeError("Expected the key prefix as an array of key parts");
  if (typeof options !== "object" || options === null) {
    throw new TypeError(`Options of kvCheckpointStore must be an object, got ${typeof options}`);
  }
  const { model, chunkBytes = KV_MAX_CHUNK_BYTES, staleAfterMs = 600_000 } = options;
  if (model !== undefined && typeof model !== "string") {
    throw new TypeError(`Option model must be a string, got ${typeof model}`);
  }
  if (!isCount(chunkBytes, 1, KV_MAX_CHUNK_BYTES)) {
    throw new RangeError(
      `Option chunkBytes must be an integer from 1 to ${KV_MAX_CHUNK_BYTES}, got ${
        String(chunkBytes)
      }`,
    );
  }
  if (typeof staleAfterMs !== "number" || !(staleAfterMs >= 0)) {
    throw new RangeError(`Option staleAfterMs must be a number ≥ 0, got ${String(staleAfterMs)}`);
  }
  const prefix: Deno.KvKey = [...key];
  const headKey: Deno.KvKey = [...prefix, "head"];
  const headName = formatKvKey(headKey);
  const leaseKey = (id: string): Deno.KvKey => [...prefix, "versions", id];
  const chunkKey = (id: string, i: number): Deno.KvKey => [...prefix, "chunks", id, i];

  /**
   * Deletes a version's chunks and its record, in as few atomic operations as it takes, the
   * record last. With `check` (the record's entry), only if the record is unchanged since: a
   * save in progress changes it when it commits; false if it did. A version too large for one
   * operation is marked dead by the first.
   */
  async function removeVersion(
    id: string,
    chunks: number | null,
    check?: Deno.AtomicCheck,
  ): Promise<boolean> {
    const keys: Deno.KvKey[] = [];
    if (chunks === null) {
      // A damaged record: find the chunks by listing them.
      for (const e of await listAll(kv, { prefix: [...prefix, "chunks", id] })) keys.push(e.key);
    } else {
      for (let i = 0; i < chunks; i++) keys.push(chunkKey(id, i));
    }
    for (let i = 0; i === 0 || i < keys.length; i += DELETES_PER_WRITE) {
      const batch = keys.slice(i, i + DELETES_PER_WRITE);
      const first = i === 0;
      const last = i + DELETES_PER_WRITE >= keys.length;
      // Repeated after a busy answer: a delete is harmless twice, a check then fails.
      const result = await unbusy(() => {
        const op = kv.atomic();
        if (first && check) op.check(check);
        for (const k of batch) op.delete(k);
        if (last) op.delete(leaseKey(id));
        else if (first) op.set(leaseKey(id), { state: "dead", created: 0, chunks: keys.length });
        return op.commit();
      });
      if (!result.ok) return false;
    }
    return true;
  }

  /** Removes a version this save wrote but could not make current. */
  async function discard(id: string, chunks: number, versionstamp: string): Promise<void> {
    try {
      await removeVersion(id, chunks, { key: leaseKey(id), versionstamp });
    } catch {
      // Left as garbage for a later sweep.
    }
  }

  async function sweep(): Promise<number> {
    const leases = await listAll(kv, { prefix: [...prefix, "versions"] });
    // Read after the list: a version listed as committed that is not current now never will be.
    const head = await unbusy(() => kv.get(headKey));
    let current: string | null = null;
    if (head.versionstamp !== null) {
      try {
        current = parseHead(head.value, headName).id;
      } catch {
        return 0; // A damaged head: remove nothing, load reports it.
      }
    }
    const now = Date.now();
    let removed = 0;
    for (const entry of leases) {
      const id = entry.key[entry.key.length - 1];
      if (typeof id !== "string" || entry.key.length !== prefix.length + 2 || id === current) {
        continue;
      }
      const lease = parseLease(entry.value);
      if (lease !== null && lease.state === "writing") {
        if (now - lease.created < staleAfterMs) continue; // a save in progress
        // Only if still unchanged: a writer that commits first changes its record.
        if (!(await removeVersion(id, lease.chunks, entry))) continue;
      } else {
        await removeVersion(id, lease?.chunks ?? null);
      }
      removed++;
    }
    return removed;
  }

  /** Reads the chunks of `head` into `bytes`; how many were there, from the first. */
  async function readChunks(head: Head, bytes: Uint8Array): Promise<number> {
    let next = 0;
    for (const chunk of await listAll(kv, { prefix: [...prefix, "chunks", head.id] })) {
      const name = formatKvKey(chunk.key);
      const index = chunk.key[chunk.key.length - 1];
      if (index !== next) {
        if (typeof index === "number" && Number.isInteger(index) && index > next) break;
        throw new CheckpointError(`Checkpoint chunk ${name} is not one of ${headName}`);
      }
      if (next >= head.chunks) {
        throw new CheckpointError(
          `Checkpoint chunk ${name} is past the ${head.chunks} chunks of ${headName}`,
        );
      }
      const expected = next < head.chunks - 1
        ? head.chunkBytes
        : head.byteLength - head.chunkBytes * (head.chunks - 1);
      if (!(chunk.value instanceof Uint8Array)) {
        throw new CheckpointError(
          `Checkpoint chunk ${name} holds a ${typeof chunk.value}, not bytes`,
        );
      }
      if (chunk.value.length !== expected) {
        throw new CheckpointError(
          `Checkpoint chunk ${name} holds ${chunk.value.length} bytes, expected ${expected}${
            chunk.value.length < expected ? " (truncated)" : ""
          }`,
        );
      }
      bytes.set(chunk.value, next * head.chunkBytes);
      next++;
    }
    return next;
  }

  async function load(): Promise<StoredCheckpoint | null> {
    for (let tries = 0; tries < READ_TRIES; tries++) {
      const entry = await unbusy(() => kv.get(headKey));
      if (entry.versionstamp === null) return null;
      const head = parseHead(entry.value, headName);
      if (model !== undefined && head.model !== model) {
        throw new CheckpointError(
          `Checkpoint head ${headName} is of another model: ${JSON.stringify(head.model)}, ` +
            `expected ${JSON.stringify(model)}`,
        );
      }
      let bytes: Uint8Array;
      if (head.chunks === 0) {
        bytes = head.data!;
      } else {
        bytes = new Uint8Array(head.byteLength);
        const read = await readChunks(head, bytes);
        if (read < head.chunks) {
          const again = await unbusy(() => kv.get(headKey, { consistency: "strong" }));
          if (again.versionstamp !== entry.versionstamp) continue; // replaced while reading
          throw new CheckpointError(
            `Checkpoint head ${headName} points at chunk ${
              formatKvKey(chunkKey(head.id, read))
            }, which is missing`,
          );
        }
      }
      if (await sha256(bytes) !== head.sha256) {
        throw new CheckpointError(
          `Checkpoint head ${headName}: the chunks of version ${head.id} do not match its ` +
            "SHA-256 digest",
        );
      }
      return {
        bytes,
        version: entry.versionstamp,
        ...(head.meta === undefined ? {} : { meta: head.meta }),
      };
    }
    throw new Error(
      `Checkpoint ${formatKvKey(prefix)} was replaced ${READ_TRIES} times while being read`,
    );
  }

  async function save(
    bytes: Uint8Array,
    expected: string | null,
    meta?: string,
  ): Promise<string | null> {
    checkSaveArguments(bytes, expected);
    checkMeta(meta);
    // Cheap early refusal; the checked write below is what decides.
    const previousHead = await unbusy(() => kv.get(headKey));
    if (previousHead.versionstamp !== expected) return null;
    let recent: string[] = [];
    try {
      if (expected !== null) recent = parseHead(previousHead.value, headName).recent;
    } catch {
      // A damaged head is replaced whole.
    }
    const id = crypto.randomUUID();
    const digest = sha256(bytes);
    const metaBytes = meta === undefined ? 0 : new TextEncoder().encode(meta).length;
    const inline = bytes.length <= chunkBytes && bytes.length + metaBytes <= INLINE_BYTES;
    const chunks = inline ? 0 : Math.ceil(bytes.length / chunkBytes);
    const lease: Lease = { state: "writing", created: Date.now(), chunks };
    // The record and the first chunks in one operation, the other chunks checked against it.
    let written: Deno.KvCommitResult | null = null;
    for (let i = 0; i < chunks;) {
      const from = i;
      let size = 0;
      while (i < chunks && i - from < CHUNKS_PER_WRITE && size < BYTES_PER_WRITE) {
        size += Math.min(bytes.length, (i + 1) * chunkBytes) - i * chunkBytes;
        i++;
      }
      const to = i;
      const previous = written;
      // Repeated after a busy answer: the same chunks again, or a refused check.
      const result = await unbusy(() => {
        const op = kv.atomic()
          .check({ key: leaseKey(id), versionstamp: previous?.versionstamp ?? null });
        if (previous === null) op.set(leaseKey(id), lease);
        for (let j = from; j < to; j++) {
          op.set(
            chunkKey(id, j),
            bytes.subarray(j * chunkBytes, Math.min(bytes.length, (j + 1) * chunkBytes)),
          );
        }
        return op.commit();
      });
      // Refused: unfinished for longer than staleAfterMs, a sweep took it for garbage.
      if (!result.ok) return null;
      written ??= result;
    }
    const head: Head = {
      format: HEAD_FORMAT,
      formatVersion: 1,
      id,
      byteLength: bytes.length,
      chunkBytes,
      chunks,
      // A view of a larger buffer would be stored with all of it.
      ...(inline
        ? { data: bytes.byteLength === bytes.buffer.byteLength ? bytes : bytes.slice() }
        : {}),
      sha256: await digest,
      model: model ?? null,
      ...(meta === undefined ? {} : { meta }),
      recent: [...recent, id].slice(-RECENT),
    };
    const commitHead = () => {
      const op = kv.atomic().check({ key: headKey, versionstamp: expected }).set(headKey, head);
      if (written !== null) {
        op.check({ key: leaseKey(id), versionstamp: written.versionstamp })
          .set(leaseKey(id), { ...lease, state: "committed" });
      }
      return op.commit();
    };
    /**
     * After a failed head write: the versionstamp it committed (or, when another save replaced
     * it already, a placeholder equal to no version), null if it certainly did not commit,
     * undefined if that cannot be told (then the error is the caller's to see).
     */
    const landed = async (): Promise<string | null | undefined> => {
      const now = await unbusy(() => kv.get(headKey));
      if (now.versionstamp === expected) return null; // not moved, so not ours
      let current: Head;
      try {
        current = parseHead(now.value, headName);
      } catch {
        return undefined;
      }
      if (current.id === id) return now.versionstamp;
      if (current.recent.includes(id)) {
        const record = written && await unbusy(() => kv.get(leaseKey(id)));
        return record?.versionstamp ?? `replaced:${id}`;
      }
      if (written === null) return current.recent.length < RECENT ? null : undefined;
      const record = await unbusy(() => kv.get(leaseKey(id)));
      if (record.versionstamp === written.versionstamp) return null; // unchanged: not ours
      return undefined;
    };
    let version: string | null = null;
    for (let n = 1; version === null; n++) {
      let committed: Deno.KvCommitResult | Deno.KvCommitError;
      try {
        committed = await commitHead();
      } catch (error) {
        if (!isBusy(error) || n >= BUSY_TRIES) throw error;
        await busyPause(n);
        const done = await landed();
        if (done === undefined) throw error;
        version = done;
        continue; // committed, or tried again
      }
      if (!committed.ok) {
        if (written !== null) await discard(id, chunks, written.versionstamp);
        return null;
      }
      version = committed.versionstamp;
    }
    try {
      await sweep();
    } catch {
      // The new version is current; what is left is garbage for a later sweep.
    }
    return version;
  }

  return { name: formatKvKey(prefix), kv, key: prefix, load, save, sweep };
}
