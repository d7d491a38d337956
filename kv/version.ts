/**
 * Writing a new version of the checkpoint and making it current: its chunks under a version
 * record, then one atomic, checked write of the head (with whatever else must commit with it).
 * Private to kv/.
 *
 * @module
 */
import { writeChunked } from "./chunks.ts";
import type { Ctx } from "./context.ts";
import {
  type Head,
  HEAD_FORMAT,
  INLINE_BYTES,
  metaSize,
  parseHead,
  RECENT,
  sha256,
  storedMeta,
  type VersionRecord,
} from "./format.ts";
import { BUSY_TRIES, busyPause, isBusy, landed, unbusy } from "./retry.ts";
import { discard, sweep } from "./sweep.ts";

/** A version to write and make current. */
export interface VersionWrite {
  /** The bytes as stored (a checkpoint, or its params-first form with `v2`). */
  readonly bytes: Uint8Array;
  /** The head versionstamp it replaces (null: an empty store). */
  readonly expected: string | null;
  readonly meta?: string;
  /** A head of format version 2: the params-first form's fields. */
  readonly v2?: {
    readonly step: number;
    readonly prefixBytes: number;
    readonly prefixSha256: string;
  };
  /** More checks and mutations for the head's atomic write. */
  readonly extend?: (op: Deno.AtomicOperation) => void;
}

/** Where the bytes go: in the head (0), or how many chunks; `meta` as the head holds it. */
function placement(ctx: Ctx, bytes: Uint8Array, meta: string | Uint8Array | undefined): number {
  const metaBytes = meta === undefined ? 0 : metaSize(meta);
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

/** The head record of version `id`. */
async function headOf(
  ctx: Ctx,
  w: VersionWrite,
  id: string,
  chunks: number,
  recent: string[],
  meta: string | Uint8Array | undefined,
): Promise<Head> {
  const { bytes, v2 } = w;
  return {
    format: HEAD_FORMAT,
    formatVersion: v2 === undefined ? 1 : 2,
    id,
    byteLength: bytes.length,
    chunkBytes: ctx.chunkBytes,
    chunks,
    // A view of a larger buffer would be stored with all of it.
    ...(chunks === 0
      ? { data: bytes.byteLength === bytes.buffer.byteLength ? bytes : bytes.slice() }
      : {}),
    sha256: await sha256(bytes),
    model: ctx.model ?? null,
    ...(meta === undefined ? {} : { meta }),
    recent: [...recent, id].slice(-RECENT),
    ...(v2 === undefined ? {} : { layout: "params-first" as const, ...v2 }),
  };
}

/**
 * Makes `head` current, checked against the head versionstamp `expected` and (when the version
 * has chunks) its record's write: the new versionstamp, or null when a check failed. When the
 * database answers that it is busy, it finds out whether the write was done before it writes
 * again.
 */
async function commitHead(
  ctx: Ctx,
  head: Head,
  w: VersionWrite,
  written: { record: VersionRecord; result: Deno.KvCommitResult } | null,
): Promise<string | null> {
  const { kv, keys } = ctx;
  const commit = () => {
    const op = kv.atomic().check({ key: keys.head, versionstamp: w.expected })
      .set(keys.head, head);
    if (written !== null) {
      op.check({ key: keys.version(head.id), versionstamp: written.result.versionstamp })
        .set(keys.version(head.id), { ...written.record, state: "committed" });
    }
    w.extend?.(op);
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
        expected: w.expected,
        id: head.id,
        record: written &&
          { key: keys.version(head.id), versionstamp: written.result.versionstamp },
      });
      if (done === undefined) throw error;
      if (done !== null) return done; // committed; else tried again
    }
  }
}

/**
 * Writes a new version and makes it current: its new versionstamp, or null (and nothing a
 * reader can see changed) when a check failed. Once the head is written, it returns the new
 * version whatever happens next; the versions no longer current are then removed.
 */
export async function writeVersion(ctx: Ctx, w: VersionWrite): Promise<string | null> {
  // Cheap early refusal; the checked write below is what decides.
  const previous = await unbusy(() => ctx.kv.get(ctx.keys.head));
  if (previous.versionstamp !== w.expected) return null;
  const id = crypto.randomUUID();
  const meta = w.meta === undefined ? undefined : storedMeta(w.meta);
  const chunks = placement(ctx, w.bytes, meta);
  const layout = { byteLength: w.bytes.length, chunkBytes: ctx.chunkBytes, chunks };
  const record: VersionRecord = { state: "writing", created: Date.now(), chunks };
  const result = chunks === 0 ? null : await writeChunked(
    ctx.kv,
    ctx.keys.version(id),
    record,
    (i) => ctx.keys.chunk(id, i),
    w.bytes,
    layout,
  );
  if (chunks > 0 && result === null) return null;
  const head = await headOf(ctx, w, id, chunks, recentOf(ctx, previous), meta);
  const written = result && { record, result };
  const version = await commitHead(ctx, head, w, written);
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
