/**
 * What the Deno KV store does when the database answers that it is busy (a local database file
 * that several processes share answers "database is locked" while another holds its lock), and
 * how it finds out whether a head write it was not told the outcome of was done. Private to
 * kv/.
 *
 * @module
 */
import { type Head, parseHead, RECENT } from "./format.ts";

/** Tries of an operation the database refused as busy (another process holds its lock). */
export const BUSY_TRIES = 30;

/** Whether `error` is the database saying it is busy: nothing was done, try again. */
export function isBusy(error: unknown): boolean {
  return error instanceof Error && /database is (locked|busy)/i.test(error.message);
}

/** A random wait before try `n` of a busy operation: up to 1, 2, 4 … 32 ms. */
export const busyPause = (n: number): Promise<unknown> =>
  new Promise((resolve) => setTimeout(resolve, Math.random() * 2 ** Math.min(n, 5)));

/**
 * Runs `f` (a read, or a write whose repetition is harmless) again while the database answers
 * that it is busy, up to {@linkcode BUSY_TRIES} times.
 */
export async function unbusy<T>(f: () => Promise<T>): Promise<T> {
  for (let n = 1;; n++) {
    try {
      return await f();
    } catch (error) {
      if (!isBusy(error) || n >= BUSY_TRIES) throw error;
      await busyPause(n);
    }
  }
}

/** All entries of a list, read again from the start while the database is busy. */
export const listAll = <T>(
  kv: Deno.Kv,
  selector: Deno.KvListSelector,
  options?: Deno.KvListOptions,
): Promise<Deno.KvEntry<T>[]> => unbusy(() => Array.fromAsync(kv.list<T>(selector, options)));

/**
 * The first `limit` entries of a list that `pick` takes (its value for each; null: not one of
 * this store's), read on past those it leaves: the records of a store whose prefix lies under
 * this one's list among its own, and must not take their places. Read again from the start
 * while the database is busy.
 */
export const listPicked = <T, R>(
  kv: Deno.Kv,
  selector: Deno.KvListSelector,
  pick: (entry: Deno.KvEntry<T>) => R | null,
  limit: number,
): Promise<R[]> =>
  unbusy(async () => {
    const picked: R[] = [];
    if (limit <= 0) return picked;
    for await (const entry of kv.list<T>(selector, { batchSize: Math.min(limit, 500) })) {
      const value = pick(entry);
      if (value !== null && picked.push(value) >= limit) break;
    }
    return picked;
  });

/** What is known of a head write that failed without saying whether it was done. */
export interface HeadWrite {
  readonly kv: Deno.Kv;
  readonly headKey: Deno.KvKey;
  readonly headName: string;
  /** The versionstamp the write was checked against (null: an empty store). */
  readonly expected: string | null;
  /** The id of the version it makes current. */
  readonly id: string;
  /** The version record's key and the versionstamp it had before, when there is one. */
  readonly record: { key: Deno.KvKey; versionstamp: string } | null;
}

/**
 * After a head write failed: the versionstamp it committed (or, when another save replaced it
 * already, a placeholder equal to no version), null if it certainly did not commit, undefined
 * if that cannot be told (then the error is the caller's to see). The head keeps the ids of the
 * last {@linkcode RECENT} versions made current; a version record that a commit would have
 * changed tells the rest.
 */
export async function landed(write: HeadWrite): Promise<string | null | undefined> {
  const { kv, id, record } = write;
  const now = await unbusy(() => kv.get(write.headKey));
  if (now.versionstamp === write.expected) return null; // not moved, so not ours
  let current: Head;
  try {
    current = parseHead(now.value, write.headName);
  } catch {
    return undefined;
  }
  if (current.id === id) return now.versionstamp;
  if (current.recent.includes(id)) {
    const after = record && await unbusy(() => kv.get(record.key));
    return after?.versionstamp ?? `replaced:${id}`;
  }
  if (record === null) return current.recent.length < RECENT ? null : undefined;
  const after = await unbusy(() => kv.get(record.key));
  if (after.versionstamp === record.versionstamp) return null; // unchanged: not ours
  return undefined;
}
