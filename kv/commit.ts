/**
 * A step's commit on Deno KV: the new checkpoint (in its params-first form) made current in
 * one atomic write with the outcome of every request the step settles, its journal record,
 * and the lease's release or renewal. Private to kv/.
 *
 * @module
 */
import { checkMeta } from "../store/_checks.ts";
import { journalEntries } from "../store/_contribution.ts";
import { boundReason } from "../store/errors.ts";
import { toParamsFirst } from "../store/layout.ts";
import type { CommitResult, StepCommit } from "../store/training.ts";
import type { Ctx } from "./context.ts";
import { sha256 } from "./format.ts";
import { type LeaseValue, type PendingValue, RECEIPT_MS } from "./records.ts";
import { BUSY_TRIES, busyPause, isBusy, unbusy } from "./retry.ts";
import { freshLimit } from "./limits.ts";
import { removeBlob } from "./sweep.ts";
import { writeVersion } from "./version.ts";

/** What `pending` gives as a stored contribution's `ref`. */
export interface PendingRef {
  readonly key: Deno.KvKey;
  readonly value: PendingValue;
}

/**
 * What a request record settling a stored contribution says of it: the blob id of the
 * submission that stored it, so that a submit whose write went through but reported an error
 * knows, once that write is settled, that it was its own.
 */
const byOf = (ref: PendingRef | undefined) => ref === undefined ? {} : { by: ref.value.blob };

/** Adds to `op` the checks and mutations of `c` beyond the checkpoint's. */
function settle(ctx: Ctx, op: Deno.AtomicOperation, c: StepCommit, renewed: LeaseValue | null) {
  const { records } = ctx;
  const expireIn = ctx.rememberMs;
  if (c.lease) {
    op.check({ key: records.lease, versionstamp: c.lease.ref as string });
    if (renewed) op.set(records.lease, renewed);
    else op.delete(records.lease);
  }
  for (const id of c.fresh) op.check({ key: records.request(id), versionstamp: null });
  for (const e of c.applied) {
    const ref = e.ref as PendingRef | undefined;
    op.set(records.request(e.id), { state: "applied", step: c.step, ...byOf(ref) }, { expireIn });
    if (ref) op.delete(ref.key);
  }
  for (const r of c.refused) {
    const ref = r.ref as PendingRef | undefined;
    const reason = boundReason(r.reason); // a caller's, of any length: within a value
    const record = { state: "refused", step: c.step, reason, ...byOf(ref) };
    op.set(records.request(r.id), record, { expireIn });
    if (ref) op.delete(ref.key);
  }
  if (c.applied.length > 0) {
    const entries = journalEntries(c.applied);
    op.set(records.journalAt(c.seq), { step: c.step, seq: c.seq, entries }, { expireIn });
  }
}

/** Removes the gradients of the stored contributions a commit settled (a sweep does it else). */
async function removeSettled(ctx: Ctx, c: StepCommit): Promise<void> {
  for (const e of [...c.applied, ...c.refused]) {
    const ref = e.ref as PendingRef | undefined;
    if (ref === undefined || ref.value.chunks === 0) continue;
    try {
      await removeBlob(ctx, ref.value.blob, ref.value.chunks);
    } catch {
      // Garbage for a later sweep.
    }
  }
}

/**
 * Commits outcomes without a new checkpoint, checked against the current version, with a receipt
 * under an id of this call's: answered with an error, it is done if the receipt is there (its
 * versionstamp, the write's); else written again where the database was busy, and the error
 * thrown where it was another (a connection lost: the write may yet be done), or where the
 * receipt could not be read. (Inferring it from the records it writes could not tell a release
 * of the lease that was not made, once the lease ran out and was taken, from one made; nor its
 * outcomes from the same ones another holder recorded since.)
 */
async function commitOutcomes(
  ctx: Ctx,
  c: StepCommit,
  renewed: LeaseValue | null,
): Promise<string | null> {
  const receipt = ctx.records.receipt(crypto.randomUUID());
  for (let n = 1;; n++) {
    try {
      const op = ctx.kv.atomic().check({ key: ctx.keys.head, versionstamp: c.expected });
      settle(ctx, op, c, renewed);
      op.set(receipt, { step: c.step }, { expireIn: RECEIPT_MS });
      const result = await op.commit();
      return result.ok ? result.versionstamp : null;
    } catch (error) {
      const busy = isBusy(error);
      if (busy && n < BUSY_TRIES) await busyPause(n);
      // Any error: done if the receipt is there. Else written again where the database was
      // busy (nothing done); another error (a connection lost) may yet be done: the caller's.
      // A receipt that cannot be read tells nothing: the error is the caller's (written again,
      // a write that was done would fail its lease's check, and be answered a conflict).
      let landed: Deno.KvEntryMaybe<unknown>;
      try {
        landed = await unbusy(() => ctx.kv.get(receipt));
      } catch {
        throw error;
      }
      if (landed.versionstamp !== null) return landed.versionstamp;
      if (!busy || n >= BUSY_TRIES) throw error;
    }
  }
}

/** The lease a commit leaves its caller: the renewed one, not one handed on. */
const mine = (c: StepCommit, renewed: LeaseValue | null, ref: string) =>
  renewed !== null && renewed.token === c.lease?.token ? { ...renewed, ref } : null;

/**
 * Refuses a commit of more fresh ids than its atomic write can check within `maxChecks`: on
 * every database alike, not only where the server counts them.
 */
function checkFresh(ctx: Ctx, c: StepCommit): void {
  const most = freshLimit(ctx.maxChecks);
  if (c.fresh.length > most) {
    throw new RangeError(
      `Expected a commit of at most ${most} fresh ids (the store's maxFresh: each is a check, ` +
        `beside the head's, the version record's and the lease's, within its option maxChecks ` +
        `of ${ctx.maxChecks}), got ${c.fresh.length}; store the others first (submit)`,
    );
  }
}

/** The lease a commit writes: renewed, or handed on, as `c.next` says; null to release it. */
const renewalOf = (c: StepCommit): LeaseValue | null =>
  c.lease && c.next !== undefined
    ? { token: c.next.token, expires: Date.now() + c.next.ms, ms: c.next.ms }
    : null;

/** Writes `c`'s checkpoint and makes it current with its outcomes: its version, or null. */
async function commitCheckpoint(
  ctx: Ctx,
  c: StepCommit & { checkpoint: Uint8Array },
  renewed: LeaseValue | null,
): Promise<string | null> {
  checkMeta(c.meta);
  const { bytes, prefix } = toParamsFirst(c.checkpoint);
  return await writeVersion(ctx, {
    bytes,
    expected: c.expected,
    meta: c.meta,
    v2: {
      step: c.step,
      prefixBytes: prefix,
      prefixSha256: await sha256(bytes.subarray(0, prefix)),
    },
    extend: (op) => settle(ctx, op, c, renewed),
  });
}

/** See `TrainingStore.commit`. */
export async function commitStep(ctx: Ctx, c: StepCommit): Promise<CommitResult | null> {
  checkFresh(ctx, c);
  const renewed = renewalOf(c);
  if (c.checkpoint === null) {
    const stamp = await commitOutcomes(ctx, c, renewed);
    if (stamp === null) return null;
    await removeSettled(ctx, c);
    return { version: c.expected, lease: mine(c, renewed, stamp) };
  }
  const version = await commitCheckpoint(ctx, { ...c, checkpoint: c.checkpoint }, renewed);
  if (version === null) return null;
  await removeSettled(ctx, c);
  return { version, lease: mine(c, renewed, version) };
}
