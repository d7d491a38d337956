/**
 * The training records of the Deno KV store: request records, stored contributions, the lease
 * and the journal (see kv/records.ts for their keys). Private to kv/.
 *
 * @module
 */
import { CheckpointError } from "../mod.ts";
import type {
  ContributionInfo,
  JournalRecord,
  Lease,
  PendingContribution,
  RequestRecord,
} from "../store/training.ts";
import { readChunked, writeChunked } from "./chunks.ts";
import type { PendingRef } from "./commit.ts";
import type { Ctx } from "./context.ts";
import { formatKvKey, INLINE_BYTES, isVersionId, sha256 } from "./format.ts";
import {
  type BlobValue,
  parseJournal,
  parseLease,
  parsePending,
  parseRequest,
  type PendingValue,
} from "./records.ts";
import { BUSY_TRIES, busyPause, isBusy, listAll, listPicked, unbusy } from "./retry.ts";
import { removeBlob } from "./sweep.ts";
import { submissionId, submittedAt } from "./submission.ts";
import { compareUtf8 } from "../base/_utf8.ts";
import { keyedBase } from "../store/_contribution.ts";
import { notedRecently } from "../store/_notes.ts";
import { checkLeaseAsk } from "../store/_checks.ts";

/** See `TrainingStore.request`. */
export async function request(ctx: Ctx, id: string): Promise<RequestRecord | null> {
  const key = ctx.records.request(id);
  const entry = await unbusy(() => ctx.kv.get(key));
  return entry.versionstamp === null ? null : parseRequest(entry.value, key);
}

/** Writes a gradient's chunks under a new blob, when it does not fit its pending record. */
async function writeGradient(ctx: Ctx, value: PendingValue, gradient: Uint8Array, key: Deno.KvKey) {
  if (value.chunks === 0) return null;
  const record: BlobValue = {
    state: "writing",
    created: Date.now(),
    chunks: value.chunks,
    pending: key,
  };
  const written = await writeChunked(
    ctx.kv,
    ctx.records.blob(value.blob),
    record,
    (i) => ctx.records.grad(value.blob, i),
    gradient,
    value,
  );
  if (written === null) {
    throw new Error(
      `Contribution ${value.id}: its gradient was swept as garbage while it was written`,
    );
  }
  return { record, written };
}

/** See `TrainingStore.submit`. */
export async function submit(
  ctx: Ctx,
  info: ContributionInfo,
  given: Uint8Array,
): Promise<RequestRecord | null> {
  // A copy made at the call, as the in-process store keeps one: the digest must be of what the
  // chunks hold, whatever the caller does with its array meanwhile.
  const gradient = given.slice();
  const known = await request(ctx, info.id);
  if (known !== null) return known;
  const blob = submissionId();
  const inline = gradient.length <= INLINE_BYTES;
  const base = keyedBase(info.base); // a key of −0 is another key, listed before every 0
  const value: PendingValue = {
    id: info.id,
    base,
    samples: info.samples,
    blob,
    chunks: inline ? 0 : Math.ceil(gradient.length / ctx.chunkBytes),
    chunkBytes: ctx.chunkBytes,
    byteLength: gradient.length,
    sha256: await sha256(gradient),
    ...(inline ? { data: gradient } : {}),
  };
  const key = ctx.records.pendingAt(base, info.id, blob);
  const blobWrite = await writeGradient(ctx, value, gradient, key);
  const commit = () => {
    const op = ctx.kv.atomic().check({ key: ctx.records.request(info.id), versionstamp: null })
      .set(ctx.records.request(info.id), { state: "pending" }, { expireIn: ctx.rememberMs })
      .set(key, value);
    if (blobWrite !== null) {
      op.check({ key: ctx.records.blob(blob), versionstamp: blobWrite.written.versionstamp })
        .set(ctx.records.blob(blob), { ...blobWrite.record, state: "stored" });
    }
    return op.commit();
  };
  for (let n = 1;; n++) {
    try {
      if ((await commit()).ok) return null;
      break;
    } catch (error) {
      if (!isBusy(error) || n >= BUSY_TRIES) throw error;
      await busyPause(n);
      if (await landed(ctx, key, info.id, blob)) return null; // done
    }
  }
  if (blobWrite !== null) await removeBlob(ctx, blob, value.chunks).catch(() => {});
  const now = await request(ctx, info.id);
  if (now === null) throw new Error(`Contribution ${info.id} could not be stored`);
  return now;
}

/**
 * Whether a submission's write (of the pending record `key`, and gradient `blob`) went through:
 * its pending record is there, or a fold has settled it since (the request record names it).
 */
async function landed(ctx: Ctx, key: Deno.KvKey, id: string, blob: string): Promise<boolean> {
  const [pending, record] = await unbusy(() =>
    ctx.kv.getMany<[unknown, { by?: unknown }]>([key, ctx.records.request(id)])
  );
  return pending.versionstamp !== null || record.value?.by === blob;
}

/**
 * The least `at` of a key `[...P, "pending", at, id]` that an earlier version of this library
 * wrote (`at` its `Date.now()`; no such version ran before 2020): where its records are listed
 * from, past the new ones (whose base steps are far below).
 */
const LEGACY_FROM = Date.UTC(2020, 0, 1);

/** A listed pending entry as a contribution; null when it is not one of this library. */
function pendingOf(e: Deno.KvEntry<unknown>, depth: number): PendingContribution | null {
  // [...P, "pending", base, id, blob], or [...P, "pending", at, id] as an earlier version of
  // this library stored it; not the records of a store whose prefix is [...P, "pending", n],
  // listed among these (what is not a contribution is skipped below).
  const shaped = typeof e.key[depth + 1] === "string" &&
    (e.key.length === depth + 2 || (e.key.length === depth + 3 && isVersionId(e.key[depth + 2])));
  if (!shaped) return null;
  let value: PendingValue;
  try {
    value = parsePending(e.value, e.key);
  } catch {
    return null; // Not a contribution of this library: never folded.
  }
  const ref: PendingRef = { key: e.key, value };
  return { id: value.id, base: value.base, samples: value.samples, ref };
}

/** The fold order (see `TrainingStore.pending`) of two listed contributions. */
function foldOrder(a: PendingContribution, b: PendingContribution, depth: number): number {
  const [x, y] = [(a.ref as PendingRef).key, (b.ref as PendingRef).key];
  if (a.base !== b.base) return a.base - b.base;
  if (a.id !== b.id) return compareKeyParts(x, y, depth + 1);
  if (x.length === y.length) {
    return compareKeyParts(x, y, x.length === depth + 2 ? depth : depth + 2);
  }
  // One of each: by when they were submitted (the `at` of the earlier version's key, the time
  // in a submission id that has one); the earlier version's first on a tie, or when the other's
  // id says no time (a random one, of a version that came after it).
  const [old, now] = x.length < y.length ? [x, y] : [y, x];
  const at = submittedAt(now[depth + 2] as string);
  const order = at === null || at >= (old[depth] as number) ? -1 : 1;
  return x === old ? order : -order;
}

/** The order of the strings or numbers at `i` of two keys, as Deno KV orders them. */
function compareKeyParts(x: Deno.KvKey, y: Deno.KvKey, i: number): number {
  const [a, b] = [x[i], y[i]];
  if (typeof a === "number" && typeof b === "number") return a - b;
  return compareUtf8(String(a), String(b));
}

/**
 * See `TrainingStore.pending`. The new records list in the fold order; those an earlier version
 * of this library keyed by time list after them all: when the first `limit` do not reach them,
 * the oldest `limit` of them are listed too, and each takes its place by base step among the
 * others (under sustained load they waited behind every new one, until refused as stale).
 */
export async function pending(ctx: Ctx, limit: number): Promise<PendingContribution[]> {
  // The keys whose next part is a base step (a number): those of a store whose prefix is
  // [...P, "pending"] (strings, listed first by Deno KV) would take the places of the first.
  const { pending } = ctx.records;
  const depth = pending.length;
  const end = [...pending, Infinity];
  const first = await listPicked(
    ctx.kv,
    { start: [...pending, -Infinity], end },
    (e) => pendingOf(e, depth),
    limit,
  );
  const inOrder = (all: PendingContribution[]) => all.sort((a, b) => foldOrder(a, b, depth));
  if (first.length === 0 || first.length < limit) return inOrder(first); // all of them
  // Those of the earlier version's already listed, by time and id (a prefix may hold bigints).
  const tail = (key: Deno.KvKey) => `${String(key[depth])} ${String(key[depth + 1])}`;
  const keys = first.map((p) => (p.ref as PendingRef).key);
  const seen = new Set(keys.filter((key) => key.length === depth + 2).map(tail));
  const legacy = await listPicked(ctx.kv, {
    start: [
      ...pending,
      Math.max(LEGACY_FROM, (first[first.length - 1].ref as PendingRef).key[depth] as number),
    ],
    end,
  }, (e) => {
    if (e.key.length !== depth + 2 || seen.has(tail(e.key))) return null;
    return pendingOf(e, depth);
  }, limit);
  return inOrder([...first, ...legacy]).slice(0, limit);
}

/** See `TrainingStore.gradient`. */
export async function gradientOf(ctx: Ctx, p: PendingContribution): Promise<Uint8Array> {
  const { key, value } = p.ref as PendingRef;
  let bytes: Uint8Array;
  if (value.chunks === 0) {
    bytes = value.data!.slice();
  } else {
    bytes = new Uint8Array(value.byteLength);
    const words = { label: "Contribution chunk", owner: formatKvKey(key) };
    const read = await readChunked(ctx.kv, ctx.records.grads(value.blob), value, bytes, words);
    if (read < value.chunks) {
      throw new CheckpointError(
        `Stored contribution ${formatKvKey(key)} lacks its chunk ${
          formatKvKey(ctx.records.grad(value.blob, read))
        }`,
      );
    }
  }
  if (await sha256(bytes) !== value.sha256) {
    throw new CheckpointError(
      `Stored contribution ${formatKvKey(key)}: its gradient does not match its SHA-256 digest`,
    );
  }
  return bytes;
}

/** Notes that `token` waits for the lease (at most about four times a second). */
async function want(ctx: Ctx, token: string, now: number): Promise<void> {
  const key = ctx.records.want(token);
  const entry = await unbusy(() => ctx.kv.get<{ since: number; at: number }>(key));
  if (notedRecently(entry.value ?? undefined, now)) return;
  const value = { since: entry.value?.since ?? now, at: now };
  await unbusy(() => ctx.kv.set(key, value, { expireIn: 60_000 }));
}

/** See `TrainingStore.acquire`. */
export async function acquire(
  ctx: Ctx,
  token: string,
  ms: number,
  queue = true,
): Promise<Lease | null> {
  checkLeaseAsk("acquire", token, ms);
  const key = ctx.records.lease;
  const wantKey = ctx.records.want(token);
  // The note read with the lease: a process that only watches for outcomes asks at each poll,
  // and has no note to remove (a delete is a write, each poll).
  const [entry, note] = await unbusy(() => ctx.kv.getMany([key, wantKey]));
  const held = parseLease(entry.value);
  const now = Date.now();
  // Judged on this process's clock alone: by how long it has seen this record unchanged.
  const live = held !== null && !ctx.lease.over(entry.versionstamp, held, token);
  if (entry.versionstamp !== null && live && held.token !== token) {
    if (queue) await want(ctx, token, now);
    else if (note.versionstamp !== null) await unbusy(() => ctx.kv.delete(wantKey));
    return null;
  }
  const value = { token, expires: now + ms, ms };
  for (let n = 1;; n++) {
    try {
      const r = await ctx.kv.atomic().check(entry).set(key, value).delete(wantKey).commit();
      return r.ok ? { ...value, ref: r.versionstamp } : null;
    } catch (error) {
      if (!isBusy(error) || n >= BUSY_TRIES) throw error;
      await busyPause(n);
      // Taken if the record is this write's; written again if unchanged (the write was not
      // done: a busy answer is no other process's lease); else another took it meanwhile.
      const again = await unbusy(() => ctx.kv.get(key));
      const now = parseLease(again.value);
      if (now?.token === token && now.expires === value.expires) {
        return { ...value, ref: again.versionstamp };
      }
      if (again.versionstamp !== entry.versionstamp) return null;
    }
  }
}

/** See `TrainingStore.release`. */
export async function release(ctx: Ctx, lease: Lease | string): Promise<void> {
  const key = ctx.records.lease;
  let check: Deno.AtomicCheck;
  // A token (anything but a lease object: refused unless a token).
  if (typeof lease !== "object" || lease === null) {
    checkLeaseAsk("release", lease);
    const wantKey = ctx.records.want(lease);
    const [entry, note] = await unbusy(() => ctx.kv.getMany([key, wantKey]));
    if (note.versionstamp !== null) await unbusy(() => ctx.kv.delete(wantKey));
    if (parseLease(entry.value)?.token !== lease) return;
    check = entry;
  } else {
    check = { key, versionstamp: lease.ref as string };
  }
  await unbusy(() => ctx.kv.atomic().check(check).delete(key).commit());
}

/** See `TrainingStore.waiting`. */
export async function waiting(ctx: Ctx, lease: Lease): Promise<string | null> {
  const entries = await listAll<{ since: number; at: number }>(ctx.kv, {
    prefix: ctx.records.wants,
  });
  return ctx.notes.longest(
    entries.flatMap((e) => {
      const token = e.key[e.key.length - 1];
      const v = e.value;
      const ok = typeof token === "string" && e.key.length === ctx.records.wants.length + 1 &&
        typeof v?.since === "number" && typeof v.at === "number";
      return ok ? [[token, v] as [string, { since: number; at: number }]] : [];
    }),
    lease.token,
  );
}

/** See `TrainingStore.journal`. */
export function journal(ctx: Ctx, from: number, limit: number): Promise<JournalRecord[]> {
  // No step's seq is past it (a range that starts there would end before it starts).
  if (from > Number.MAX_SAFE_INTEGER) return Promise.resolve([]);
  const start = ctx.records.journalAt(from);
  const end = ctx.records.journalAt(Number.MAX_SAFE_INTEGER);
  const depth = ctx.records.journal.length + 1;
  // Not the records of a store whose prefix is [...P, "journal", n], listed among these.
  const pick = (e: Deno.KvEntry<unknown>) =>
    e.key.length === depth ? parseJournal(e.value, e.key) : null;
  return listPicked(ctx.kv, { start, end }, pick, limit);
}
