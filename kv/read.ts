/**
 * Reading a checkpoint from Deno KV: the head, then its chunks, each checked; or only the
 * head and the parameters. Private to kv/.
 *
 * @module
 */
import { CheckpointError } from "../mod.ts";
import type { StoredCheckpoint } from "../store/contract.ts";
import { fromParamsFirst, readStoredParams } from "../store/layout.ts";
import type { StoredParams } from "../store/training.ts";
import { readChunked } from "./chunks.ts";
import type { Ctx } from "./context.ts";
import { formatKvKey, type Head, metaOf, parseHead, READ_TRIES, sha256 } from "./format.ts";
import { unbusy } from "./retry.ts";

/** Refuses a head of another model than the store's. */
export function checkHeadModel(ctx: Ctx, head: Head): void {
  if (ctx.model !== undefined && head.model !== ctx.model) {
    throw new CheckpointError(
      `Checkpoint head ${ctx.keys.headName} is of another model: ${
        JSON.stringify(head.model)
      }, expected ${JSON.stringify(ctx.model)}`,
    );
  }
}

/** The current head entry, and the head it holds (validated, of the store's model). */
async function readHead(ctx: Ctx): Promise<{ entry: Deno.KvEntry<unknown>; head: Head } | null> {
  const entry = await unbusy(() => ctx.kv.get(ctx.keys.head));
  if (entry.versionstamp === null) return null;
  const head = parseHead(entry.value, ctx.keys.headName);
  checkHeadModel(ctx, head);
  return { entry, head };
}

/**
 * The first `chunks` chunks of `head`'s version into a new array of `length` bytes; null when
 * the head was replaced while they were read (its old chunks removed).
 */
async function readPart(
  ctx: Ctx,
  entry: Deno.KvEntry<unknown>,
  head: Head,
  chunks: number,
  length: number,
): Promise<Uint8Array<ArrayBuffer> | null> {
  // (A copy of the head's inline data: over an ArrayBuffer of the caller's, as chunks are read.)
  if (head.chunks === 0) return head.data!.slice(0, length);
  const bytes = new Uint8Array(length);
  const words = { label: "Checkpoint chunk", owner: ctx.keys.headName };
  const read = await readChunked(ctx.kv, ctx.keys.chunks(head.id), head, bytes, words, chunks);
  if (read < chunks) {
    const again = await unbusy(() => ctx.kv.get(ctx.keys.head, { consistency: "strong" }));
    if (again.versionstamp !== entry.versionstamp) return null; // replaced while reading
    throw new CheckpointError(
      `Checkpoint head ${ctx.keys.headName} points at chunk ${
        formatKvKey(ctx.keys.chunk(head.id, read))
      }, which is missing`,
    );
  }
  return bytes;
}

/** Throws unless `bytes` have the SHA-256 digest `digest`. */
async function checkDigest(ctx: Ctx, head: Head, bytes: Uint8Array, digest: string, what = "") {
  if (await sha256(bytes) !== digest) {
    throw new CheckpointError(
      `Checkpoint head ${ctx.keys.headName}: the chunks of version ${head.id} do not match ` +
        `its SHA-256 digest${what}`,
    );
  }
}

/**
 * The checkpoint the version `entry` (a head) points at, checked, as it was saved; null when
 * the head was replaced while it was read.
 */
export async function readVersion(
  ctx: Ctx,
  entry: Deno.KvEntry<unknown>,
  head: Head,
): Promise<Uint8Array<ArrayBuffer> | null> {
  const bytes = await readPart(ctx, entry, head, head.chunks, head.byteLength);
  if (bytes === null) return null;
  await checkDigest(ctx, head, bytes, head.sha256);
  return head.layout === "params-first" ? fromParamsFirst(bytes) : bytes;
}

/** Reads again while the head is replaced during a read. */
async function reading<T>(ctx: Ctx, read: () => Promise<T | undefined>): Promise<T> {
  for (let tries = 0; tries < READ_TRIES; tries++) {
    const result = await read();
    if (result !== undefined) return result;
  }
  throw new Error(
    `Checkpoint ${formatKvKey(ctx.keys.prefix)} was replaced ${READ_TRIES} times while being read`,
  );
}

/** See `VersionedCheckpointStore.load`. */
export function load(ctx: Ctx): Promise<StoredCheckpoint<ArrayBuffer> | null> {
  return reading(ctx, async () => {
    const current = await readHead(ctx);
    if (current === null) return null;
    const { entry, head } = current;
    const bytes = await readVersion(ctx, entry, head);
    if (bytes === null) return undefined;
    const meta = metaOf(head, ctx.keys.headName);
    return { bytes, version: entry.versionstamp, ...(meta === undefined ? {} : { meta }) };
  });
}

/** See `TrainingStore.head`. */
export async function headOf(ctx: Ctx): Promise<{ version: string; step: number | null } | null> {
  const current = await readHead(ctx);
  if (current === null) return null;
  return { version: current.entry.versionstamp, step: current.head.step ?? null };
}

/**
 * See `TrainingStore.loadParams`: of a head of format version 2, only the chunks that hold
 * the header and the parameters, checked against their own digest; of one of version 1 (a
 * checkpoint as saved), all of it.
 */
export function loadParams(ctx: Ctx): Promise<StoredParams | null> {
  const name = formatKvKey(ctx.keys.prefix);
  return reading(ctx, async () => {
    const current = await readHead(ctx);
    if (current === null) return null;
    const { entry, head } = current;
    const version = entry.versionstamp;
    if (head.layout !== "params-first") {
      const bytes = await readVersion(ctx, entry, head);
      if (bytes === null) return undefined;
      return { ...readStoredParams(name, bytes, bytes.length, true), version };
    }
    const prefix = head.prefixBytes!;
    const chunks = Math.ceil(prefix / head.chunkBytes);
    const length = Math.min(head.byteLength, chunks * head.chunkBytes);
    const bytes = await readPart(ctx, entry, head, chunks, length);
    if (bytes === null) return undefined;
    await checkDigest(ctx, head, bytes.subarray(0, prefix), head.prefixSha256!, " (prefix)");
    return { ...readStoredParams(name, bytes.subarray(0, prefix), head.byteLength), version };
  });
}
