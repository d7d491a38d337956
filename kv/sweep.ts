/**
 * The removal of versions that are no longer current, or that a crashed save left unfinished,
 * and of stored gradients no contribution refers to. Private to kv/.
 *
 * @module
 */
import type { Ctx } from "./context.ts";
import { isVersionId, parseHead, parseVersionRecord } from "./format.ts";
import { deletesPerWrite } from "./limits.ts";
import { parseBlob } from "./records.ts";
import { listAll, unbusy } from "./retry.ts";

/** Where something stored in chunks lies: its record, and the keys of its chunks. */
interface Chunked {
  /** The key of its record (deleted last). */
  readonly record: Deno.KvKey;
  /** The key prefix of its chunks, listed where the record is damaged. */
  readonly chunks: Deno.KvKey;
  /** The key of chunk `i`. */
  readonly chunk: (i: number) => Deno.KvKey;
}

/**
 * Deletes the chunks of `item` (`chunks` of them, or, for a damaged record (null), those listed
 * under its prefix), then its record, in as few atomic operations as it takes, the record last.
 * With `check` (the record's entry), only if the record is unchanged since; false if it
 * changed. `dead`, when given, is written to the record by the first of several operations.
 * Each operation is repeated after a busy answer until it is found done: a removal the database
 * did but answered "busy" goes on to its end, and leaves no chunks for a later sweep.
 */
async function removeChunked(
  ctx: Ctx,
  item: Chunked,
  chunks: number | null,
  check?: Deno.AtomicCheck,
  dead?: (chunks: number) => unknown,
): Promise<boolean> {
  const { kv } = ctx;
  const targets: Deno.KvKey[] = [];
  if (chunks === null) {
    for (const e of await listAll(kv, { prefix: item.chunks })) targets.push(e.key);
  } else {
    for (let i = 0; i < chunks; i++) targets.push(item.chunk(i));
  }
  const most = deletesPerWrite(ctx.keys.prefix);
  for (let i = 0; i === 0 || i < targets.length; i += most) {
    const batch = targets.slice(i, i + most);
    const first = i === 0;
    const last = i + most >= targets.length;
    const mark = first && !last && dead ? dead(targets.length) : undefined;
    const write = () => {
      const op = kv.atomic();
      if (first && check) op.check(check);
      for (const k of batch) op.delete(k);
      if (last) op.delete(item.record);
      else if (mark !== undefined) op.set(item.record, mark);
      return op.commit();
    };
    // Unchecked, a delete (and the mark) is harmless twice; checked, see removeChecked.
    const done = first && check
      ? await removeChecked(kv, item.record, check, mark !== undefined, write)
      : (await unbusy(write)).ok;
    if (done === "gone") return true;
    if (!done) return false;
  }
  return true;
}

/**
 * Commits the checked first operation of a removal (`write`), again while the database answers
 * that it is busy and the record is unchanged. A busy answer may come after the write went
 * through, when its check, repeated, would be refused: so the record is read, and found removed
 * ("gone": the removal's one operation, or another removal's last, took it) or marked dead
 * (`marks`: the operation wrote that mark; another removal checked against the same record may
 * have, and its deletes are these) is taken as done. Any other change: false.
 */
async function removeChecked(
  kv: Deno.Kv,
  record: Deno.KvKey,
  check: Deno.AtomicCheck,
  marks: boolean,
  write: () => Promise<Deno.KvCommitResult | Deno.KvCommitError>,
): Promise<boolean | "gone"> {
  let tried = false;
  return await unbusy(async () => {
    if (tried) {
      // After a busy answer: unchanged, the write was not done (write again); else judge.
      const now = await kv.get<{ state?: unknown }>(record);
      if (now.versionstamp === null) return "gone";
      if (now.versionstamp !== check.versionstamp) return marks && now.value?.state === "dead";
    }
    tried = true;
    return (await write()).ok;
  });
}

/**
 * Deletes a version's chunks and its record, in as few atomic operations as it takes, the
 * record last. With `check` (the record's entry), only if the record is unchanged since: a save
 * in progress changes it when it commits; false if it did. A version too large for one
 * operation is marked dead by the first.
 */
export function removeVersion(
  ctx: Ctx,
  id: string,
  chunks: number | null,
  check?: Deno.AtomicCheck,
): Promise<boolean> {
  const { keys } = ctx;
  const version = {
    record: keys.version(id),
    chunks: keys.chunks(id),
    chunk: (i: number) => keys.chunk(id, i),
  };
  return removeChunked(ctx, version, chunks, check, (count) => ({
    state: "dead",
    created: 0,
    chunks: count,
  }));
}

/** The id of the current version, undefined when there is none, null when the head is damaged. */
async function currentId(ctx: Ctx): Promise<string | null | undefined> {
  const head = await unbusy(() => ctx.kv.get(ctx.keys.head));
  if (head.versionstamp === null) return undefined;
  try {
    return parseHead(head.value, ctx.keys.headName).id;
  } catch {
    return null;
  }
}

/** See {@linkcode KvCheckpointStore.sweep}. */
export async function sweep(ctx: Ctx): Promise<number> {
  return await sweepVersions(ctx) + await sweepBlobs(ctx);
}

/** Removes the versions no longer current; how many. */
async function sweepVersions(ctx: Ctx): Promise<number> {
  const records = await listAll(ctx.kv, { prefix: ctx.keys.versions });
  // Read after the list: a version listed as committed that is not current now never will be.
  const current = await currentId(ctx);
  if (current === null) return 0; // A damaged head: remove nothing, load reports it.
  const round = new Set<string>();
  let removed = 0;
  for (const entry of records) {
    const id = entry.key[entry.key.length - 1];
    // Only keys of this store's versions: those of a store whose prefix is [...P, "versions"]
    // ([...P, "versions", "head"]) lie under the same prefix.
    if (!isVersionId(id) || entry.key.length !== ctx.keys.versions.length + 1 || id === current) {
      continue;
    }
    const record = parseVersionRecord(entry.value);
    if (record !== null && record.state === "writing") {
      const { created } = record;
      if (!ctx.writes.stale(id, entry, created, ctx.staleAfterMs, round)) continue; // in progress
      // Only if still unchanged: a writer that commits first changes its record.
      if (!(await removeVersion(ctx, id, record.chunks, entry))) continue;
    } else {
      await removeVersion(ctx, id, record?.chunks ?? null);
    }
    removed++;
  }
  ctx.writes.forgetUnlisted(round);
  return removed;
}

/** Removes a version a save wrote but could not make current. */
export async function discard(
  ctx: Ctx,
  id: string,
  chunks: number,
  versionstamp: string,
): Promise<void> {
  try {
    await removeVersion(ctx, id, chunks, { key: ctx.keys.version(id), versionstamp });
  } catch {
    // Left as garbage for a later sweep.
  }
}

/**
 * Deletes a stored gradient's chunks, then its record. With `check` (the record's entry), only
 * if the record is unchanged since; false if it changed. A gradient too large for one operation
 * is marked dead by the first (as a version is): a submission still writing it, judged stale,
 * then fails its next check, and is not stored with the chunks this removal took.
 */
export function removeBlob(
  ctx: Ctx,
  blob: string,
  chunks: number | null,
  check?: Deno.AtomicCheck,
): Promise<boolean> {
  const { records } = ctx;
  const stored = {
    record: records.blob(blob),
    chunks: records.grads(blob),
    chunk: (i: number) => records.grad(blob, i),
  };
  // Read as damaged (parseBlob: null), so a later sweep lists its chunks.
  return removeChunked(ctx, stored, chunks, check, (count) => ({
    state: "dead",
    created: 0,
    chunks: count,
  }));
}

/**
 * Removes the stored gradients that no contribution refers to: of submissions that crashed
 * (unfinished for longer than `staleAfterMs`, judged as versions are), and of contributions
 * settled; how many.
 */
async function sweepBlobs(ctx: Ctx): Promise<number> {
  const round = new Set<string>();
  let removed = 0;
  for (const entry of await listAll(ctx.kv, { prefix: ctx.records.blobs })) {
    const blob = entry.key[entry.key.length - 1];
    // As for versions: not those of a store under [...P, "blobs"].
    if (!isVersionId(blob) || entry.key.length !== ctx.records.blobs.length + 1) continue;
    const record = parseBlob(entry.value);
    if (
      record?.state === "writing" &&
      !ctx.blobWrites.stale(blob, entry, record.created, ctx.staleAfterMs, round)
    ) continue;
    if (record?.state === "stored" && record.pending !== undefined) {
      const pending = await unbusy(() => ctx.kv.get(record.pending!));
      if (pending.versionstamp !== null) continue; // not folded yet
    }
    if (await removeBlob(ctx, blob, record?.chunks ?? null, entry)) removed++;
  }
  ctx.blobWrites.forgetUnlisted(round);
  return removed;
}
