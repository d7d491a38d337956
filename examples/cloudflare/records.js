// What the Durable Object of store_object.js writes in its storage, and the checks of what its
// callers send. Keys (strings; values structured-cloned, each under DO storage's 128 KiB):
// - "head": { version, step, meta?, length, chunks }: the current checkpoint, in `chunks`
//   values "ckpt:0", "ckpt:1", … of CHUNK_BYTES (the last shorter); "counters": { versions,
//   leases, stored }, so that no version, lease or submission number is given twice.
// - "req:" + id: { record, until }: what is known of a request id, until when (rememberMs).
// - "pend:" + n (zero-padded): { id, base, samples, n, length, chunks }: a stored contribution,
//   numbered in the order of submission; its gradient in "grad:" + n + ":" + i.
// - "journal:" + seq (zero-padded): { record, until }: what a step applied.
// - "lease": { token, expires, ms, ref }: the lease (its end by the object's clock, its term).

import { CheckpointError } from "@optim/radam";
import { checkpointParams, MAX_META_BYTES } from "@optim/radam/store";

/** The bytes of a value at most: under DO storage's 128 KiB, with room for its encoding. */
export const CHUNK_BYTES = 126 * 1024;

/** `n` zero-padded to 16 digits, so that keys list in numeric order. */
export const pad = (n) => String(n).padStart(16, "0");

/** The keys of the `count` chunks under `prefix`. */
export const chunkKeys = (prefix, count) => Array.from({ length: count }, (_, i) => prefix + i);

/** Writes `bytes` in chunks under `prefix` (by `put`); how many. */
export async function putChunks(txn, prefix, bytes) {
  const count = Math.ceil(bytes.length / CHUNK_BYTES);
  for (let i = 0; i < count; i++) {
    await txn.put(prefix + i, bytes.slice(i * CHUNK_BYTES, (i + 1) * CHUNK_BYTES));
  }
  return count;
}

/** Reads `length` bytes from the `count` chunks under `prefix` (128 keys a `get`, its most). */
export async function getChunks(storage, prefix, count, length) {
  const bytes = new Uint8Array(length);
  const keys = chunkKeys(prefix, count);
  for (let from = 0; from < count; from += 128) {
    const got = await storage.get(keys.slice(from, from + 128));
    for (let i = from; i < Math.min(count, from + 128); i++) {
      const chunk = got.get(prefix + i);
      // (A CheckpointError: stored data missing, which the library passes on as damaged, e.g. the
      // gradient of a contribution another fold settled since, that fold refusing it.)
      if (!(chunk instanceof Uint8Array)) {
        throw new CheckpointError(`Stored chunk ${prefix}${i} is missing`);
      }
      bytes.set(chunk, i * CHUNK_BYTES);
    }
  }
  return bytes;
}

/** Deletes the keys `keys` (128 a `delete`, its most). */
export async function deleteAll(txn, keys) {
  for (let from = 0; from < keys.length; from += 128) {
    await txn.delete(keys.slice(from, from + 128));
  }
}

/** Throws unless `bytes` is a Uint8Array and `expected` a version or null (save's arguments). */
export function checkSave(bytes, expected) {
  if (!(bytes instanceof Uint8Array)) {
    throw new TypeError(`save takes the checkpoint as a Uint8Array, got ${typeof bytes}`);
  }
  if (expected !== null && typeof expected !== "string") {
    throw new TypeError(`save takes the expected version as a string or null, got ${expected}`);
  }
}

/** Throws unless `meta` is absent or text of at most MAX_META_BYTES UTF-8 bytes. */
export function checkMeta(meta) {
  if (meta === undefined) return;
  if (typeof meta !== "string" || !meta.isWellFormed()) {
    throw new TypeError("A checkpoint's meta must be a string of text (no lone surrogate)");
  }
  const length = new TextEncoder().encode(meta).length;
  if (length > MAX_META_BYTES) {
    throw new RangeError(`A checkpoint's meta holds ${length} UTF-8 bytes, over ${MAX_META_BYTES}`);
  }
}

/** Throws as the library's stores do for a listing's bad `limit` or `from`. */
export function checkListing(method, limit, from = 0) {
  const bad = typeof limit !== "number" ||
      !(limit === Infinity || (Number.isInteger(limit) && limit >= 0))
    ? ["limit", "an integer ≥ 0 or Infinity", limit]
    : typeof from !== "number" || Number.isNaN(from)
    ? ["from", "a number", from]
    : null;
  if (bad === null) return;
  const [name, expected, value] = bad;
  const message = `${method}'s ${name} must be ${expected}, got ${JSON.stringify(value)}`;
  throw typeof value === "number" ? new RangeError(message) : new TypeError(message);
}

/** -1, 0 or 1 as `a` orders before, with or after `b` by their UTF-8 bytes (as keys list). */
export function compareUtf8(a, b) {
  const x = new TextEncoder().encode(a), y = new TextEncoder().encode(b);
  for (let i = 0; i < x.length && i < y.length; i++) if (x[i] !== y[i]) return x[i] - y[i];
  return x.length - y.length;
}

/** The step a checkpoint records, or null when the bytes are not a checkpoint. */
export function stepOf(bytes) {
  try {
    return checkpointParams(bytes).step;
  } catch {
    return null;
  }
}
