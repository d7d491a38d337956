/**
 * The layout of a checkpoint in Deno KV: its keys, the head record and the version records,
 * and their validation. Private to kv/.
 *
 * Keys under a prefix `P`:
 * - `[...P, "head"]`: the head record ({@linkcode Head}): which version is current, its size,
 *   SHA-256, model name, metadata, and the bytes themselves when they fit in one value.
 * - `[...P, "versions", id]`: one small record per version written in chunks
 *   ({@linkcode VersionRecord}): being written, committed or dead.
 * - `[...P, "chunks", id, i]`: the bytes, in chunks of at most 64 KiB.
 *
 * A head of format version 1 holds the checkpoint's bytes as saved (what `save` writes, and
 * what every store written before version 2 holds); one of version 2 (what a step commit
 * writes) holds its params-first form (store/layout.ts), with the step, the length of the
 * prefix that holds the header and the parameters, and that prefix's own SHA-256, so that a
 * reader fetches the parameters alone. The training records (kv/records.ts) live beside
 * them.
 *
 * @module
 */
import { CheckpointError } from "../mod.ts";
import { MAX_META_BYTES } from "../store/contract.ts";
import { decodeUtf8, encodeUtf8 } from "../base/_utf8.ts";

/**
 * The largest chunk a value of Deno KV can hold, in bytes: 64 KiB (the default chunk size).
 *
 * @example
 * ```ts
 * import { KV_MAX_CHUNK_BYTES } from "@optim/radam/kv";
 * import assert from "node:assert/strict";
 *
 * assert.equal(Math.ceil(12_000_000 / KV_MAX_CHUNK_BYTES), 184); // chunks of a 12 MB checkpoint
 * ```
 */
export const KV_MAX_CHUNK_BYTES = 65536;

/**
 * The longest `model` name a store takes, in UTF-16 units. The head holds it beside up to
 * {@linkcode INLINE_BYTES} of checkpoint and metadata and the ids of {@linkcode RECENT}
 * versions, within Deno KV's 64 KiB a value; V8 may hold it two bytes a unit. 1355 units of
 * "€" fit beside the largest of the rest, measured; 1024 leaves room.
 */
export const MAX_MODEL_LENGTH = 1024;
/** Value of `format` in a head record. */
export const HEAD_FORMAT = "radam.kv-checkpoint";
/** At most this many chunk writes (and bytes) in one atomic operation (Deno KV: 800 KiB). */
export const CHUNKS_PER_WRITE = 10;
/** See {@linkcode CHUNKS_PER_WRITE}. */
export const BYTES_PER_WRITE = 700_000;
/** Deletes in one atomic operation (Deno KV allows 1000 mutations), the record's aside. */
export const DELETES_PER_WRITE = 998;
/** Checkpoints up to this size (with their metadata) go in the head, when within a chunk. */
export const INLINE_BYTES = 60_000;
/** How often a load starts again when the checkpoint is replaced while it is being read. */
export const READ_TRIES = 20;
/** How many ids of the versions last made current a head keeps. */
export const RECENT = 64;

/** The head record: which version is current, and how to read and check it. */
export interface Head {
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
  /**
   * The application's metadata: as a string where Deno KV stores it in at most
   * `MAX_META_BYTES` bytes, else as its UTF-8 bytes (see {@linkcode storedMeta}).
   */
  meta?: string | Uint8Array;
  /** The ids of the last versions made current, oldest first, ending with `id`. */
  recent: string[];
  /** Version 2: the optimizer step of the checkpoint. */
  step?: number;
  /** Version 2: the bytes are the checkpoint's params-first form. */
  layout?: "params-first";
  /** Version 2: how many first bytes hold the header and the parameters. */
  prefixBytes?: number;
  /** Version 2: the SHA-256 of those bytes. */
  prefixSha256?: string;
}

/** The record of a version written in chunks. */
export interface VersionRecord {
  /** Dead: being removed (a version with more chunks than one atomic operation deletes). */
  state: "writing" | "committed" | "dead";
  created: number;
  chunks: number;
}

/** The keys of one checkpoint under its prefix. */
export interface CheckpointKeys {
  readonly prefix: Deno.KvKey;
  readonly head: Deno.KvKey;
  /** The head key as text, as error messages write it. */
  readonly headName: string;
  readonly versions: Deno.KvKey;
  version(id: string): Deno.KvKey;
  chunks(id: string): Deno.KvKey;
  chunk(id: string, i: number): Deno.KvKey;
}

/** The keys of the checkpoint under `prefix`. */
export function checkpointKeys(prefix: Deno.KvKey): CheckpointKeys {
  const head: Deno.KvKey = [...prefix, "head"];
  return {
    prefix,
    head,
    headName: formatKvKey(head),
    versions: [...prefix, "versions"],
    version: (id) => [...prefix, "versions", id],
    chunks: (id) => [...prefix, "chunks", id],
    chunk: (id, i) => [...prefix, "chunks", id, i],
  };
}

/**
 * A key as text, as error messages write it.
 *
 * @example
 * ```ts
 * import { formatKvKey } from "@optim/radam/kv";
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

/** Whether `v` is a plain record (not an array, not bytes). */
export const isRecord = (v: unknown): v is Record<string, unknown> =>
  typeof v === "object" && v !== null && !Array.isArray(v) && !(v instanceof Uint8Array);

/** Whether `v` is an integer from `min` to `max`. */
export const isCount = (v: unknown, min: number, max = Number.MAX_SAFE_INTEGER): v is number =>
  typeof v === "number" && Number.isInteger(v) && v >= min && v <= max;

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/** Whether `v` is a SHA-256 digest in hexadecimal. */
export const isDigest = (v: unknown): v is string =>
  typeof v === "string" && /^[0-9a-f]{64}$/.test(v);

/** Whether `v` is a version id (a random UUID). */
export const isVersionId = (v: unknown): v is string => typeof v === "string" && UUID.test(v);

/** Checks the head's size fields: where its bytes are, and how many. */
function checkHeadSize(value: Record<string, unknown>, bad: (what: string) => Error): void {
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
}

/** The head record's value, validated; a CheckpointError naming `key` otherwise. */
export function parseHead(value: unknown, key: string): Head {
  const bad = (what: string) => new CheckpointError(`Checkpoint head ${key} ${what}`);
  if (!isRecord(value)) throw bad(`is not a head record (a ${typeof value})`);
  if (value.format !== HEAD_FORMAT) {
    throw bad(`is not a head record of this library: format ${JSON.stringify(value.format)}`);
  }
  if (value.formatVersion !== 1 && value.formatVersion !== 2) {
    throw bad(`has format version ${JSON.stringify(value.formatVersion)}; expected 1 or 2`);
  }
  if (!isVersionId(value.id)) throw bad("has an invalid version id");
  checkHeadSize(value, bad);
  if (!isDigest(value.sha256)) {
    throw bad("has an invalid SHA-256 digest");
  }
  if (value.model !== null && typeof value.model !== "string") {
    throw bad("has an invalid model name");
  }
  if (
    value.meta !== undefined && typeof value.meta !== "string" &&
    !(value.meta instanceof Uint8Array && value.meta.length <= MAX_META_BYTES)
  ) {
    throw bad("has metadata that is not a string");
  }
  const recent = value.recent;
  if (
    !Array.isArray(recent) || recent.length > RECENT || recent[recent.length - 1] !== value.id ||
    !recent.every(isVersionId)
  ) {
    throw bad("has an invalid list of recent versions");
  }
  if (value.formatVersion === 2) checkVersion2(value, bad);
  return value as unknown as Head;
}

/** Checks the fields a head of format version 2 adds. */
function checkVersion2(value: Record<string, unknown>, bad: (what: string) => Error): void {
  if (value.layout !== "params-first") {
    throw bad(`has an unknown layout ${JSON.stringify(value.layout)}`);
  }
  if (!isCount(value.step, 0)) throw bad(`has an invalid step ${JSON.stringify(value.step)}`);
  if (!isCount(value.prefixBytes, 8, value.byteLength as number)) {
    throw bad(`has an invalid prefix length ${JSON.stringify(value.prefixBytes)}`);
  }
  if (!isDigest(value.prefixSha256)) throw bad("has an invalid SHA-256 digest of its prefix");
}

/** A version record's value, or null when it is not one (damaged). */
export function parseVersionRecord(value: unknown): VersionRecord | null {
  if (
    !isRecord(value) || !["writing", "committed", "dead"].includes(value.state as string) ||
    typeof value.created !== "number" || !isCount(value.chunks, 1)
  ) {
    return null;
  }
  return value as unknown as VersionRecord;
}

/**
 * At most how many bytes Deno KV takes to store `meta` as the head holds it: V8 writes a string
 * one byte a character or two bytes a UTF-16 unit, as it happens to hold it (a string of ASCII
 * sliced from one with a "€" is held two bytes a unit), so a string is counted two a unit.
 */
export function metaSize(meta: string | Uint8Array): number {
  return typeof meta === "string" ? 2 * meta.length : meta.length;
}

/**
 * The metadata string as a head holds it: the string itself where Deno KV stores it in at most
 * `MAX_META_BYTES` bytes ({@linkcode metaSize}), else its UTF-8 bytes, which `checkMeta` bounds
 * by `MAX_META_BYTES`: a longer string could take twice its UTF-8 size, and beside the head's
 * other fields not fit its 64 KiB.
 */
export function storedMeta(meta: string): string | Uint8Array {
  return metaSize(meta) <= MAX_META_BYTES ? meta : encodeUtf8(meta);
}

/** The metadata string of a head (undefined: none); a CheckpointError naming `key` if damaged. */
export function metaOf(head: Head, key: string): string | undefined {
  if (!(head.meta instanceof Uint8Array)) return head.meta;
  try {
    return decodeUtf8(head.meta, true);
  } catch {
    throw new CheckpointError(`Checkpoint head ${key} has metadata that is not UTF-8`);
  }
}

/** The SHA-256 digest of `bytes`, in hexadecimal. */
export async function sha256(bytes: Uint8Array): Promise<string> {
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", bytes as BufferSource));
  return Array.from(digest, (b) => b.toString(16).padStart(2, "0")).join("");
}
