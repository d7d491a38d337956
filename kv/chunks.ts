/**
 * Bytes larger than one value, written in chunks under a record and read back, checked. Used
 * for checkpoint versions and stored gradients. Private to kv/.
 *
 * @module
 */
import { CheckpointError } from "../mod.ts";
import { BYTES_PER_WRITE, CHUNKS_PER_WRITE, formatKvKey } from "./format.ts";
import { BUSY_TRIES, busyPause, isBusy, listAll, unbusy } from "./retry.ts";

/** How bytes lie in chunks. */
export interface Chunked {
  readonly byteLength: number;
  readonly chunkBytes: number;
  readonly chunks: number;
}

/** The size chunk `i` must have. */
const chunkSize = (c: Chunked, i: number) =>
  i < c.chunks - 1 ? c.chunkBytes : c.byteLength - c.chunkBytes * (c.chunks - 1);

/**
 * Commits one write of chunks, again while the database answers that it is busy: the same
 * chunks again (checked against the record, which they leave as it was), or, for the first
 * (`first`: the record's value, which it writes), once the record is read and found not
 * written: a busy answer may come after the write went through, and the record's key is this
 * write's own, so that a record still as it wrote it is its write (repeated, its check would
 * be refused, as if a sweep took the record).
 */
async function commitChunks(
  kv: Deno.Kv,
  record: Deno.KvKey,
  first: unknown,
  commit: () => Promise<Deno.KvCommitResult | Deno.KvCommitError>,
): Promise<Deno.KvCommitResult | Deno.KvCommitError> {
  for (let n = 1;; n++) {
    try {
      return await commit();
    } catch (error) {
      if (!isBusy(error) || n >= BUSY_TRIES) throw error;
      await busyPause(n);
      if (first === undefined) continue;
      const now = await unbusy(() => kv.get(record));
      if (now.versionstamp === null) continue; // not written (or swept since): write it
      const mine = (now.value as { state?: unknown }).state === (first as { state: unknown }).state;
      return mine ? { ok: true, versionstamp: now.versionstamp } : { ok: false };
    }
  }
}

/**
 * Writes `bytes` in chunks (`chunk(i)`), the record (`record`, `value`) and the first chunks in
 * one operation, the other chunks checked against it. The record's write, or null when the
 * record changed meanwhile (a sweep took it for the garbage of a crash).
 */
export async function writeChunked(
  kv: Deno.Kv,
  record: Deno.KvKey,
  value: unknown,
  chunk: (i: number) => Deno.KvKey,
  bytes: Uint8Array,
  layout: Chunked,
): Promise<Deno.KvCommitResult | null> {
  const { chunkBytes, chunks } = layout;
  let written: Deno.KvCommitResult | null = null;
  for (let i = 0; i < chunks;) {
    const from = i;
    let size = 0;
    while (i < chunks && i - from < CHUNKS_PER_WRITE && size < BYTES_PER_WRITE) {
      size += Math.min(bytes.length, (i + 1) * chunkBytes) - i * chunkBytes;
      i++;
    }
    const to = i;
    const previous: Deno.KvCommitResult | null = written;
    const result = await commitChunks(kv, record, previous === null ? value : undefined, () => {
      const op = kv.atomic().check({ key: record, versionstamp: previous?.versionstamp ?? null });
      if (previous === null) op.set(record, value);
      for (let j = from; j < to; j++) {
        op.set(
          chunk(j),
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

/** Checks one chunk's entry; its bytes. `label` and `owner` word the errors. */
function checkChunk(
  c: Chunked,
  entry: Deno.KvEntry<unknown>,
  next: number,
  label: string,
  owner: string,
): Uint8Array {
  const name = formatKvKey(entry.key);
  if (next >= c.chunks) {
    throw new CheckpointError(`${label} ${name} is past the ${c.chunks} chunks of ${owner}`);
  }
  const expected = chunkSize(c, next);
  if (!(entry.value instanceof Uint8Array)) {
    throw new CheckpointError(`${label} ${name} holds a ${typeof entry.value}, not bytes`);
  }
  if (entry.value.length !== expected) {
    throw new CheckpointError(
      `${label} ${name} holds ${entry.value.length} bytes, expected ${expected}${
        entry.value.length < expected ? " (truncated)" : ""
      }`,
    );
  }
  return entry.value;
}

/**
 * Reads the first `limit` (default all) chunks listed under `prefix` into `bytes`; how many
 * were there, from the first. `label` ("Checkpoint chunk") and `owner` (the record's key) word
 * the errors.
 */
export async function readChunked(
  kv: Deno.Kv,
  prefix: Deno.KvKey,
  layout: Chunked,
  bytes: Uint8Array,
  words: { label: string; owner: string },
  limit = layout.chunks,
): Promise<number> {
  let next = 0;
  for (const entry of await listAll(kv, { prefix }, limit < layout.chunks ? { limit } : {})) {
    const index = entry.key[entry.key.length - 1];
    if (index !== next) {
      if (typeof index === "number" && Number.isInteger(index) && index > next) break;
      throw new CheckpointError(
        `${words.label} ${formatKvKey(entry.key)} is not one of ${words.owner}`,
      );
    }
    bytes.set(checkChunk(layout, entry, next, words.label, words.owner), next * layout.chunkBytes);
    next++;
  }
  return next;
}
