/**
 * The Deno KV checkpoint store: {@linkcode kvCheckpointStore}.
 *
 * @module
 */
import { checkMeta, checkOptionsObject, checkSaveArguments } from "../store/_checks.ts";
import type { VersionedCheckpointStore } from "../store/contract.ts";
import type { Ctx } from "./context.ts";
import {
  BYTES_PER_WRITE,
  checkpointKeys,
  CHUNKS_PER_WRITE,
  formatKvKey,
  type Head,
  HEAD_FORMAT,
  INLINE_BYTES,
  isCount,
  KV_MAX_CHUNK_BYTES,
  parseHead,
  RECENT,
  sha256,
  type VersionRecord,
} from "./format.ts";
import { load } from "./read.ts";
import { BUSY_TRIES, busyPause, isBusy, landed, unbusy } from "./retry.ts";
import { discard, sweep } from "./sweep.ts";

/**
 * Options of {@linkcode kvCheckpointStore}.
 *
 * @example
 * ```ts
 * import type { KvCheckpointStoreOptions } from "../kv.ts";
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
   * refused as a conflict (and retried by `optimisticStep`), never made current.
   */
  staleAfterMs?: number;
}

/**
 * A {@linkcode VersionedCheckpointStore} on Deno KV; see {@linkcode kvCheckpointStore}.
 *
 * @example
 * ```ts
 * import { kvCheckpointStore, type KvCheckpointStore } from "../kv.ts";
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
 * Writes the chunks of a new version `id`: its record and the first chunks in one operation,
 * the other chunks checked against it. The record's write, or null when a sweep took the
 * version for the garbage of a crash (unfinished for longer than `staleAfterMs`).
 */
async function writeChunks(
  ctx: Ctx,
  id: string,
  bytes: Uint8Array,
  record: VersionRecord,
): Promise<Deno.KvCommitResult | null> {
  const { kv, keys, chunkBytes } = ctx;
  let written: Deno.KvCommitResult | null = null;
  for (let i = 0; i < record.chunks;) {
    const from = i;
    let size = 0;
    while (i < record.chunks && i - from < CHUNKS_PER_WRITE && size < BYTES_PER_WRITE) {
      size += Math.min(bytes.length, (i + 1) * chunkBytes) - i * chunkBytes;
      i++;
    }
    const to = i;
    const previous: Deno.KvCommitResult | null = written;
    // Repeated after a busy answer: the same chunks again, or a refused check.
    const result = await unbusy(() => {
      const op = kv.atomic()
        .check({ key: keys.version(id), versionstamp: previous?.versionstamp ?? null });
      if (previous === null) op.set(keys.version(id), record);
      for (let j = from; j < to; j++) {
        op.set(
          keys.chunk(id, j),
          bytes.subarray(j * chunkBytes, Math.min(bytes.length, (j + 1) * chunkBytes)),
        );
      }
      return op.commit();
    });
    if (!result.ok) return null;
    written ??= result;
  }
  return written;
}

/** Where a save's bytes go: in the head, or how many chunks. */
function placement(ctx: Ctx, bytes: Uint8Array, meta: string | undefined): number {
  const metaBytes = meta === undefined ? 0 : new TextEncoder().encode(meta).length;
  const inline = bytes.length <= ctx.chunkBytes && bytes.length + metaBytes <= INLINE_BYTES;
  return inline ? 0 : Math.ceil(bytes.length / ctx.chunkBytes);
}

/** The ids of the versions made current before, from the head being replaced. */
function recentOf(ctx: Ctx, previous: Deno.KvEntryMaybe<unknown>): string[] {
  if (previous.versionstamp === null) return [];
  try {
    return parseHead(previous.value, ctx.keys.headName).recent;
  } catch {
    return []; // A damaged head is replaced whole.
  }
}

/**
 * Makes `head` current, checked against the head versionstamp `expected` and (when the version
 * has chunks) its record's write: the new versionstamp, or null when another save came first.
 * When the database answers that it is busy, it finds out whether the write was done before it
 * writes again.
 */
async function commitHead(
  ctx: Ctx,
  head: Head,
  expected: string | null,
  written: { record: VersionRecord; result: Deno.KvCommitResult } | null,
): Promise<string | null> {
  const { kv, keys } = ctx;
  const commit = () => {
    const op = kv.atomic().check({ key: keys.head, versionstamp: expected }).set(keys.head, head);
    if (written !== null) {
      op.check({ key: keys.version(head.id), versionstamp: written.result.versionstamp })
        .set(keys.version(head.id), { ...written.record, state: "committed" });
    }
    return op.commit();
  };
  for (let n = 1;; n++) {
    try {
      const committed = await commit();
      return committed.ok ? committed.versionstamp : null;
    } catch (error) {
      if (!isBusy(error) || n >= BUSY_TRIES) throw error;
      await busyPause(n);
      const done = await landed({
        kv,
        headKey: keys.head,
        headName: keys.headName,
        expected,
        id: head.id,
        record: written &&
          { key: keys.version(head.id), versionstamp: written.result.versionstamp },
      });
      if (done === undefined) throw error;
      if (done !== null) return done; // committed; else tried again
    }
  }
}

/** See {@linkcode VersionedCheckpointStore.save}. */
async function save(
  ctx: Ctx,
  bytes: Uint8Array,
  expected: string | null,
  meta?: string,
): Promise<string | null> {
  checkSaveArguments(bytes, expected);
  checkMeta(meta);
  // Cheap early refusal; the checked write below is what decides.
  const previous = await unbusy(() => ctx.kv.get(ctx.keys.head));
  if (previous.versionstamp !== expected) return null;
  const id = crypto.randomUUID();
  const digest = sha256(bytes);
  const chunks = placement(ctx, bytes, meta);
  const record: VersionRecord = { state: "writing", created: Date.now(), chunks };
  const result = chunks === 0 ? null : await writeChunks(ctx, id, bytes, record);
  if (chunks > 0 && result === null) return null;
  const head: Head = {
    format: HEAD_FORMAT,
    formatVersion: 1,
    id,
    byteLength: bytes.length,
    chunkBytes: ctx.chunkBytes,
    chunks,
    // A view of a larger buffer would be stored with all of it.
    ...(chunks === 0
      ? { data: bytes.byteLength === bytes.buffer.byteLength ? bytes : bytes.slice() }
      : {}),
    sha256: await digest,
    model: ctx.model ?? null,
    ...(meta === undefined ? {} : { meta }),
    recent: [...recentOf(ctx, previous), id].slice(-RECENT),
  };
  const written = result && { record, result };
  const version = await commitHead(ctx, head, expected, written);
  if (version === null) {
    if (written !== null) await discard(ctx, id, chunks, written.result.versionstamp);
    return null;
  }
  try {
    await sweep(ctx);
  } catch {
    // The new version is current; what is left is garbage for a later sweep.
  }
  return version;
}

/** The options of {@linkcode kvCheckpointStore}, checked, with their defaults. */
function checkOptions(
  kv: Deno.Kv,
  key: Deno.KvKey,
  options: KvCheckpointStoreOptions,
): Required<Omit<KvCheckpointStoreOptions, "model">> & { model: string | undefined } {
  if (typeof kv !== "object" || kv === null || typeof kv.atomic !== "function") {
    throw new TypeError("Expected a Deno.Kv, e.g. await Deno.openKv(path)");
  }
  if (!Array.isArray(key)) throw new TypeError("Expected the key prefix as an array of key parts");
  checkOptionsObject(options, "kvCheckpointStore");
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
  return { model, chunkBytes, staleAfterMs };
}

/**
 * A store of one checkpoint in Deno KV under the prefix `key`, for `optimisticStep` (or used
 * directly: `load()` and `save(bytes, expectedVersion, meta)`).
 *
 * Keys: `[...key, "head"]` (the head record: which version is current, its size, SHA-256,
 * model name, metadata, and the bytes themselves when they fit in one value with it),
 * `[...key, "versions", id]` (one small record per version, which says whether it is being
 * written, committed or dead) and `[...key, "chunks", id, i]` (the bytes). A version is the
 * head's versionstamp.
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
 * import { kvCheckpointStore } from "../kv.ts";
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
  const checked = checkOptions(kv, key, options);
  const prefix: Deno.KvKey = [...key];
  const ctx: Ctx = { kv, keys: checkpointKeys(prefix), ...checked };
  return {
    name: formatKvKey(prefix),
    kv,
    key: prefix,
    load: () => load(ctx),
    save: (bytes, expected, meta) => save(ctx, bytes, expected, meta),
    sweep: () => sweep(ctx),
  };
}
