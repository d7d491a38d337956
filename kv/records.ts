/**
 * The training records beside a checkpoint in Deno KV, and their validation. Private to kv/.
 *
 * Keys under the prefix `P` (see kv/format.ts for the checkpoint's own):
 * - `[...P, "requests", id]`: what is known of a request id: `{ state: "pending" }`,
 *   `{ state: "applied", step }` or `{ state: "refused", step, reason }` (kept `rememberMs`);
 *   settling a stored contribution, also `by`: the blob id of the submission that stored it.
 * - `[...P, "pending", base, id, blob]`: a stored contribution not folded yet
 *   ({@linkcode PendingValue}), under its base step, its id and the id of its submission (a
 *   UUID of version 7, that of its gradient's blob: see kv/submission.ts), so that a list gives
 *   them in an order every process agrees on: the lowest base step first, then by id, then by
 *   submission (an id sent again once its record expired is stored beside the one still waiting,
 *   never in its place). Stores of an earlier version of this library wrote
 *   `[...P, "pending", at, id]` (`at` the storing process's `Date.now()`): listed after those,
 *   and folded in their place by base step (see kv/training.ts).
 * - `[...P, "blobs", blob]` and `[...P, "grads", blob, i]`: the record and the chunks of a
 *   stored gradient too large for its pending record (written like a checkpoint's version, and,
 *   as one, marked `{ state: "dead" }` by the first operation of a removal that takes several).
 * - `[...P, "lease"]`: `{ token, expires, ms }`, the lease (its end, on its writer's clock, and
 *   its term: see store/_lease.ts); `[...P, "wants", token]`:
 *   `{ since, at }`, a process that waits for it (since when, and when it last asked; kept a
 *   minute).
 * - `[...P, "journal", seq]`: `{ step, seq, entries: [{ id, base, samples }] }`, what a step
 *   applied, in the order of the mean (kept `rememberMs`).
 * - `[...P, "receipts", id]`: `{ step }`, written by a commit without a new checkpoint in its
 *   atomic write, under an id of its own (kept {@linkcode RECEIPT_MS}): what tells it, answered
 *   with an error (the database busy, a connection lost), whether that write was done.
 *
 * @module
 */
import { CheckpointError } from "../mod.ts";
import type { ContributionInfo, JournalRecord, RequestRecord } from "../store/training.ts";
import {
  formatKvKey,
  isCount,
  isDigest,
  isRecord,
  isVersionId,
  KV_MAX_CHUNK_BYTES,
} from "./format.ts";

/** The keys of the training records under a prefix. */
export interface RecordKeys {
  readonly lease: Deno.KvKey;
  readonly wants: Deno.KvKey;
  want(token: string): Deno.KvKey;
  readonly requests: Deno.KvKey;
  request(id: string): Deno.KvKey;
  readonly pending: Deno.KvKey;
  pendingAt(base: number, id: string, blob: string): Deno.KvKey;
  readonly blobs: Deno.KvKey;
  blob(id: string): Deno.KvKey;
  grads(id: string): Deno.KvKey;
  grad(id: string, i: number): Deno.KvKey;
  readonly journal: Deno.KvKey;
  journalAt(seq: number): Deno.KvKey;
  receipt(id: string): Deno.KvKey;
}

/** The keys of the training records under `prefix`. */
export function recordKeys(prefix: Deno.KvKey): RecordKeys {
  return {
    lease: [...prefix, "lease"],
    wants: [...prefix, "wants"],
    want: (token) => [...prefix, "wants", token],
    requests: [...prefix, "requests"],
    request: (id) => [...prefix, "requests", id],
    pending: [...prefix, "pending"],
    pendingAt: (base, id, blob) => [...prefix, "pending", base, id, blob],
    blobs: [...prefix, "blobs"],
    blob: (id) => [...prefix, "blobs", id],
    grads: (id) => [...prefix, "grads", id],
    grad: (id, i) => [...prefix, "grads", id, i],
    journal: [...prefix, "journal"],
    journalAt: (seq) => [...prefix, "journal", seq],
    receipt: (id) => [...prefix, "receipts", id],
  };
}

/**
 * How long a commit's receipt is kept: far longer than a commit looks for it (its tries while
 * the database is busy take a second or so); a caller held up longer, not finding it, writes
 * again, and that write's checks refuse it (a conflict), or it writes the same records again:
 * never an update made twice.
 */
export const RECEIPT_MS = 3_600_000;

/** A stored contribution's record. */
export interface PendingValue extends ContributionInfo {
  /** Its gradient: in `data` (0 chunks) or in chunks under blob `blob`. */
  readonly blob: string;
  readonly chunks: number;
  readonly chunkBytes: number;
  readonly byteLength: number;
  readonly sha256: string;
  readonly data?: Uint8Array;
}

/** The record of a stored gradient's chunks. */
export interface BlobValue {
  readonly state: "writing" | "stored";
  readonly created: number;
  readonly chunks: number;
  /** The pending record it belongs to, once stored. */
  readonly pending?: Deno.KvKey;
}

/** A lease record: its holder, its end (the writer's clock) and its term (ms). */
export interface LeaseValue {
  readonly token: string;
  readonly expires: number;
  /** Absent in a record of an earlier version of this library. */
  readonly ms?: number;
}

const bad = (key: Deno.KvKey, what: string) =>
  new CheckpointError(`Training record ${formatKvKey(key)} ${what}`);

/** A request record, validated. */
export function parseRequest(value: unknown, key: Deno.KvKey): RequestRecord {
  if (isRecord(value)) {
    if (value.state === "pending") return { state: "pending" };
    if (value.state === "applied" && isCount(value.step, 0)) {
      return { state: "applied", step: value.step };
    }
    if (value.state === "refused" && isCount(value.step, 0) && typeof value.reason === "string") {
      return { state: "refused", step: value.step, reason: value.reason };
    }
  }
  throw bad(key, "is not a request record");
}

/** Whether `v` is a contribution's id, base and samples. */
const isInfo = (v: Record<string, unknown>) =>
  typeof v.id === "string" && isCount(v.base, 0) && isCount(v.samples, 1);

/** A pending record, validated. */
export function parsePending(value: unknown, key: Deno.KvKey): PendingValue {
  if (
    !isRecord(value) || !isInfo(value) || !isVersionId(value.blob) || !isCount(value.chunks, 0) ||
    !isCount(value.chunkBytes, 1, KV_MAX_CHUNK_BYTES) || !isCount(value.byteLength, 0) ||
    !isDigest(value.sha256) ||
    (value.chunks === 0
      ? !(value.data instanceof Uint8Array) || value.data.length !== value.byteLength
      : value.chunks !== Math.ceil((value.byteLength as number) / (value.chunkBytes as number)))
  ) {
    throw bad(key, "is not a stored contribution");
  }
  return value as unknown as PendingValue;
}

/** A blob record, or null when it is not one (damaged: removed by a sweep). */
export function parseBlob(value: unknown): BlobValue | null {
  if (
    !isRecord(value) || !(value.state === "writing" || value.state === "stored") ||
    typeof value.created !== "number" || !isCount(value.chunks, 1)
  ) {
    return null;
  }
  return value as unknown as BlobValue;
}

/** A lease record, or null when there is none or it is damaged (then it may be taken). */
export function parseLease(value: unknown): LeaseValue | null {
  if (
    !isRecord(value) || typeof value.token !== "string" || typeof value.expires !== "number" ||
    !(value.ms === undefined || (typeof value.ms === "number" && value.ms >= 0))
  ) {
    return null;
  }
  return value as unknown as LeaseValue;
}

/** A journal record, validated. */
export function parseJournal(value: unknown, key: Deno.KvKey): JournalRecord {
  if (
    isRecord(value) && isCount(value.step, 0) && isCount(value.seq, 0) &&
    Array.isArray(value.entries) &&
    value.entries.every((e) => isRecord(e) && isInfo(e))
  ) {
    return value as unknown as JournalRecord;
  }
  throw bad(key, "is not a journal record");
}
