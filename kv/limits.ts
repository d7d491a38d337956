/**
 * The limits of Deno KV that a store's key prefix must leave room in (locally and on Deno
 * Deploy: a key written of at most 2048 bytes; in one atomic write at most 1000 mutations,
 * 800 KiB of keys and values, and {@linkcode KV_MAX_KEYS_BYTES} of keys; a value of at most 64
 * KiB): the size of a key as Deno KV encodes it, the check of a prefix, how many contributions
 * one commit of the data-parallel mode can settle under it, and how many chunks one atomic
 * write deletes; and the checks an atomic write takes (100 in the Deno runtime, 10 on the
 * self-hosted server denoland/denokv, whose other limits are these): the store's option
 * `maxChecks`, of which a fold's commit spends one on the head, one on its version record, one
 * on the lease and one on the id of each contribution of its own process (`maxFresh`; every
 * other write checks at most two keys). Every read asks for at most two keys at once
 * (`getMany`), and a list at most 500 entries a batch: within the 10 ranges and 1000 entries
 * both take. Private to kv/.
 *
 * @module
 */

import { DELETES_PER_WRITE } from "./format.ts";
import { encodeUtf8 } from "../base/_utf8.ts";

/** The largest key Deno KV writes, in bytes as it encodes keys. */
export const KV_MAX_KEY_BYTES = 2048;
/**
 * The most bytes of keys in one atomic write, every key of it counted: those checked, set,
 * deleted or named by an enqueue. The Deno runtime refuses more than 81 920 bytes of keys set
 * ("Total key size too large (max 81920 bytes)"), counting neither those checked nor those
 * deleted; Deno Deploy documents a limit of 90 KiB (92 160 bytes) of total key size per atomic
 * operation. Within 81 920 bytes of all of them, a write keeps within both.
 */
const KV_MAX_KEYS_BYTES = 81_920;
/** The most checks in one atomic write, in the Deno runtime (a store's default `maxChecks`). */
export const KV_MAX_CHECKS = 100;
/**
 * The checks of a fold's commit besides those of its fresh ids: the head, the version record
 * and the lease.
 */
const COMMIT_CHECKS = 3;
/** The fewest checks a store can keep within: a commit of one fresh id, at least. */
export const MIN_CHECKS = COMMIT_CHECKS + 1;
/** The most mutations in one atomic write. */
const KV_MAX_MUTATIONS = 1000;
/** The largest value, in bytes. */
const KV_MAX_VALUE_BYTES = 65_536;
/** A small record's value (a version record, a lease), in bytes as V8 serializes it, at most. */
const SMALL_VALUE_BYTES = 256;
/** The most bytes of keys (set, deleted or checked) and values in one atomic write. */
const KV_MAX_MUTATION_BYTES = 819_200;

/**
 * The bytes of one key part as Deno KV encodes it: a string (UTF-8) or bytes between a type
 * byte and a terminating 0, each 0 byte escaped with a second; a number in 9 bytes; a boolean
 * in 1; a bigint in 1 + its bytes up to 8 of them, else 2 + its bytes.
 */
export function partBytes(part: Deno.KvKeyPart): number {
  if (typeof part === "string" || part instanceof Uint8Array) {
    const bytes = typeof part === "string" ? encodeUtf8(part) : part;
    let zeros = 0;
    for (const b of bytes) if (b === 0) zeros++;
    return 2 + bytes.length + zeros;
  }
  if (typeof part === "number") return 9;
  if (typeof part !== "bigint") return 1; // a boolean
  const n = part < 0n ? -part : part;
  const bytes = n === 0n ? 0 : Math.ceil(n.toString(16).length / 2);
  return bytes <= 8 ? 1 + bytes : 2 + bytes;
}

/** The bytes of a key as Deno KV encodes it. */
export function keyBytes(key: Deno.KvKey): number {
  let bytes = 0;
  for (const part of key) bytes += partBytes(part);
  return bytes;
}

/** A request id as a key part, at most: 64 UTF-16 units of at most 3 bytes of UTF-8 each. */
const ID_BYTES = 2 + 64 * 3;
/** A version or blob id (a UUID) as a key part. */
const UUID_BYTES = 2 + 36;
/** What the longest key of a store adds to its prefix: `[...P, "pending", base, id, blob]`. */
const LONGEST_SUFFIX = partBytes("pending") + 9 + ID_BYTES + UUID_BYTES;
/** The largest prefix a store takes, in bytes as Deno KV encodes it. */
export const MAX_PREFIX_BYTES = KV_MAX_KEY_BYTES - LONGEST_SUFFIX;
/**
 * A journal entry (`{ id, base, samples }`) as V8 serializes it, at most: 172 bytes measured
 * with an id of 64 units held two bytes a unit and numbers as doubles.
 */
const JOURNAL_ENTRY_BYTES = 180;
/**
 * A request record (`{ state: "refused", step, reason, by }`) as V8 serializes it, at most: 1114
 * bytes measured with a reason of 512 UTF-16 units (what `boundReason` keeps) held two bytes a
 * unit, and a blob id.
 */
export const REQUEST_RECORD_BYTES = 1200;

/**
 * Throws a RangeError unless every key a store writes under `prefix` fits Deno KV's
 * {@linkcode KV_MAX_KEY_BYTES}: refused when the store is made, not by a write once the
 * checkpoint outgrows its head or a contribution is stored.
 */
export function checkPrefixSize(prefix: Deno.KvKey): void {
  const bytes = keyBytes(prefix);
  if (bytes > MAX_PREFIX_BYTES) {
    throw new RangeError(
      `Expected the key prefix to take at most ${MAX_PREFIX_BYTES} bytes as a Deno KV key, got ` +
        `${bytes}: the store's longest keys ([...prefix, "pending", base, id, blob], with an id ` +
        `of 64 characters) would pass Deno KV's ${KV_MAX_KEY_BYTES}`,
    );
  }
}

/**
 * The most contributions one commit under `prefix` can settle within one atomic write. Each
 * sets its request record and either deletes its stored form or checks its id (a fresh one),
 * besides the head and the version record (each checked and set), the lease (checked, and set
 * or deleted) and the journal record, whose value holds an entry for each. Within the keys'
 * bytes of a write (every key counted), its mutations, the largest value (the journal record),
 * and its 800 KiB of keys and values: each request record of at most
 * {@linkcode REQUEST_RECORD_BYTES} (a refusal's reason is bounded), the head and the journal
 * record of at most 64 KiB each. (The last never binds: under the empty prefix the keys allow
 * 180, whose keys and values take at most 180 × (454 + 1200) + 140 + 2 × 65 536 + 512 bytes,
 * 429 444 of 819 200; it keeps the write within them should the other terms change.)
 */
export function foldLimit(prefix: Deno.KvKey): number {
  const p = keyBytes(prefix);
  const request = p + partBytes("requests") + ID_BYTES;
  const stored = p + partBytes("pending") + 9 + ID_BYTES + UUID_BYTES;
  const each = request + Math.max(request, stored);
  const others = 2 * (p + partBytes("head")) + 2 * (p + partBytes("versions") + UUID_BYTES) +
    2 * (p + partBytes("lease")) + p + partBytes("journal") + 9;
  const values = 2 * KV_MAX_VALUE_BYTES + 2 * SMALL_VALUE_BYTES;
  return Math.min(
    Math.floor((KV_MAX_KEYS_BYTES - others) / each),
    Math.floor((KV_MAX_MUTATIONS - 4) / 2),
    Math.floor((KV_MAX_VALUE_BYTES - 256) / JOURNAL_ENTRY_BYTES),
    Math.floor((KV_MAX_MUTATION_BYTES - others - values) / (each + REQUEST_RECORD_BYTES)),
  );
}

/**
 * How many chunks one atomic write under `prefix` deletes: at most `DELETES_PER_WRITE`, and
 * their keys ([...P, "chunks", id, i] or [...P, "grads", blob, i]), with the record's key
 * checked, deleted or set, within the keys' bytes of a write (under a prefix of 40 bytes, 998
 * chunk keys alone pass 90 KiB) and the 800 KiB of keys and values.
 */
export function deletesPerWrite(prefix: Deno.KvKey): number {
  const p = keyBytes(prefix);
  const chunk = p + partBytes("chunks") + UUID_BYTES + 9;
  const record = p + partBytes("versions") + UUID_BYTES;
  const keys = KV_MAX_KEYS_BYTES - 3 * record; // the record's key thrice
  const bytes = KV_MAX_MUTATION_BYTES - 3 * record - SMALL_VALUE_BYTES; // and its value
  return Math.min(DELETES_PER_WRITE, Math.floor(keys / chunk), Math.floor(bytes / chunk));
}

/**
 * The most fresh ids (contributions not stored yet) one commit checks within `maxChecks`
 * checks: those left beside the head's, the version record's and the lease's.
 */
export const freshLimit = (maxChecks: number): number => maxChecks - COMMIT_CHECKS;
