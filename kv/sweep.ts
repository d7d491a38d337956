/**
 * The removal of versions that are no longer current, or that a crashed save left unfinished,
 * and of stored gradients no contribution refers to. Private to kv/.
 *
 * @module
 */
import type { Ctx } from "./context.ts";
import { DELETES_PER_WRITE, parseHead, parseVersionRecord } from "./format.ts";
import { parseBlob } from "./records.ts";
import { listAll, unbusy } from "./retry.ts";

/**
 * Deletes a version's chunks and its record, in as few atomic operations as it takes, the
 * record last. With `check` (the record's entry), only if the record is unchanged since: a save
 * in progress changes it when it commits; false if it did. A version too large for one
 * operation is marked dead by the first.
 */
export async function removeVersion(
  ctx: Ctx,
  id: string,
  chunks: number | null,
  check?: Deno.AtomicCheck,
): Promise<boolean> {
  const { kv, keys } = ctx;
  const targets: Deno.KvKey[] = [];
  if (chunks === null) {
    // A damaged record: find the chunks by listing them.
    for (const e of await listAll(kv, { prefix: keys.chunks(id) })) targets.push(e.key);
  } else {
    for (let i = 0; i < chunks; i++) targets.push(keys.chunk(id, i));
  }
  for (let i = 0; i === 0 || i < targets.length; i += DELETES_PER_WRITE) {
    const batch = targets.slice(i, i + DELETES_PER_WRITE);
    const first = i === 0;
    const last = i + DELETES_PER_WRITE >= targets.length;
    // Repeated after a busy answer: a delete is harmless twice, a check then fails.
    const result = await unbusy(() => {
      const op = kv.atomic();
      if (first && check) op.check(check);
      for (const k of batch) op.delete(k);
      if (last) op.delete(keys.version(id));
      else if (first) {
        op.set(keys.version(id), { state: "dead", created: 0, chunks: targets.length });
      }
      return op.commit();
    });
    if (!result.ok) return false;
  }
  return true;
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
  const now = Date.now();
  let removed = 0;
  for (const entry of records) {
    const id = entry.key[entry.key.length - 1];
    if (
      typeof id !== "string" || entry.key.length !== ctx.keys.versions.length + 1 || id === current
    ) {
      continue;
    }
    const record = parseVersionRecord(entry.value);
    if (record !== null && record.state === "writing") {
      if (now - record.created < ctx.staleAfterMs) continue; // a save in progress
      // Only if still unchanged: a writer that commits first changes its record.
      if (!(await removeVersion(ctx, id, record.chunks, entry))) continue;
    } else {
      await removeVersion(ctx, id, record?.chunks ?? null);
    }
    removed++;
  }
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
 * if the record is unchanged since; false if it changed.
 */
export async function removeBlob(
  ctx: Ctx,
  blob: string,
  chunks: number | null,
  check?: Deno.AtomicCheck,
): Promise<boolean> {
  const { kv, records } = ctx;
  const targets: Deno.KvKey[] = [];
  if (chunks === null) {
    for (const e of await listAll(kv, { prefix: records.grads(blob) })) targets.push(e.key);
  } else {
    for (let i = 0; i < chunks; i++) targets.push(records.grad(blob, i));
  }
  for (let i = 0; i === 0 || i < targets.length; i += DELETES_PER_WRITE) {
    const batch = targets.slice(i, i + DELETES_PER_WRITE);
    const first = i === 0;
    const last = i + DELETES_PER_WRITE >= targets.length;
    const result = await unbusy(() => {
      const op = kv.atomic();
      if (first && check) op.check(check);
      for (const k of batch) op.delete(k);
      if (last) op.delete(records.blob(blob));
      return op.commit();
    });
    if (!result.ok) return false;
  }
  return true;
}

/**
 * Removes the stored gradients that no contribution refers to: of submissions that crashed
 * (unfinished for longer than `staleAfterMs`), and of contributions settled; how many.
 */
async function sweepBlobs(ctx: Ctx): Promise<number> {
  const now = Date.now();
  let removed = 0;
  for (const entry of await listAll(ctx.kv, { prefix: ctx.records.blobs })) {
    const blob = entry.key[entry.key.length - 1];
    if (typeof blob !== "string") continue;
    const record = parseBlob(entry.value);
    if (record?.state === "writing" && now - record.created < ctx.staleAfterMs) continue;
    if (record?.state === "stored" && record.pending !== undefined) {
      const pending = await unbusy(() => ctx.kv.get(record.pending!));
      if (pending.versionstamp !== null) continue; // not folded yet
    }
    if (await removeBlob(ctx, blob, record?.chunks ?? null, entry)) removed++;
  }
  return removed;
}
