/**
 * Reading a checkpoint from Deno KV: the head, then its chunks, each checked. Private to kv/.
 *
 * @module
 */
import { CheckpointError } from "../mod.ts";
import type { StoredCheckpoint } from "../store/contract.ts";
import type { Ctx } from "./context.ts";
import { formatKvKey, type Head, parseHead, READ_TRIES, sha256 } from "./format.ts";
import { listAll, unbusy } from "./retry.ts";

/** The size chunk `i` of `head` must have. */
const chunkSize = (head: Head, i: number) =>
  i < head.chunks - 1 ? head.chunkBytes : head.byteLength - head.chunkBytes * (head.chunks - 1);

/** Checks one chunk's entry against `head`; its bytes. */
function checkChunk(ctx: Ctx, head: Head, chunk: Deno.KvEntry<unknown>, next: number): Uint8Array {
  const name = formatKvKey(chunk.key);
  const headName = ctx.keys.headName;
  if (next >= head.chunks) {
    throw new CheckpointError(
      `Checkpoint chunk ${name} is past the ${head.chunks} chunks of ${headName}`,
    );
  }
  const expected = chunkSize(head, next);
  if (!(chunk.value instanceof Uint8Array)) {
    throw new CheckpointError(`Checkpoint chunk ${name} holds a ${typeof chunk.value}, not bytes`);
  }
  if (chunk.value.length !== expected) {
    throw new CheckpointError(
      `Checkpoint chunk ${name} holds ${chunk.value.length} bytes, expected ${expected}${
        chunk.value.length < expected ? " (truncated)" : ""
      }`,
    );
  }
  return chunk.value;
}

/** Reads the chunks of `head` into `bytes`; how many were there, from the first. */
async function readChunks(ctx: Ctx, head: Head, bytes: Uint8Array): Promise<number> {
  let next = 0;
  for (const chunk of await listAll(ctx.kv, { prefix: ctx.keys.chunks(head.id) })) {
    const index = chunk.key[chunk.key.length - 1];
    if (index !== next) {
      if (typeof index === "number" && Number.isInteger(index) && index > next) break;
      throw new CheckpointError(
        `Checkpoint chunk ${formatKvKey(chunk.key)} is not one of ${ctx.keys.headName}`,
      );
    }
    bytes.set(checkChunk(ctx, head, chunk, next), next * head.chunkBytes);
    next++;
  }
  return next;
}

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

/**
 * The bytes of the version `entry` (a head) points at, checked; null when the head was replaced
 * while they were read (its old chunks removed).
 */
export async function readVersion(
  ctx: Ctx,
  entry: Deno.KvEntry<unknown>,
): Promise<Uint8Array | null> {
  const head = parseHead(entry.value, ctx.keys.headName);
  checkHeadModel(ctx, head);
  let bytes: Uint8Array;
  if (head.chunks === 0) {
    bytes = head.data!;
  } else {
    bytes = new Uint8Array(head.byteLength);
    const read = await readChunks(ctx, head, bytes);
    if (read < head.chunks) {
      const again = await unbusy(() => ctx.kv.get(ctx.keys.head, { consistency: "strong" }));
      if (again.versionstamp !== entry.versionstamp) return null; // replaced while reading
      throw new CheckpointError(
        `Checkpoint head ${ctx.keys.headName} points at chunk ${
          formatKvKey(ctx.keys.chunk(head.id, read))
        }, which is missing`,
      );
    }
  }
  if (await sha256(bytes) !== head.sha256) {
    throw new CheckpointError(
      `Checkpoint head ${ctx.keys.headName}: the chunks of version ${head.id} do not match ` +
        "its SHA-256 digest",
    );
  }
  return bytes;
}

/** See {@linkcode VersionedCheckpointStore.load}. */
export async function load(ctx: Ctx): Promise<StoredCheckpoint | null> {
  for (let tries = 0; tries < READ_TRIES; tries++) {
    const entry = await unbusy(() => ctx.kv.get(ctx.keys.head));
    if (entry.versionstamp === null) return null;
    const bytes = await readVersion(ctx, entry);
    if (bytes === null) continue;
    const meta = (entry.value as Head).meta;
    return { bytes, version: entry.versionstamp, ...(meta === undefined ? {} : { meta }) };
  }
  throw new Error(
    `Checkpoint ${formatKvKey(ctx.keys.prefix)} was replaced ${READ_TRIES} times while being read`,
  );
}
