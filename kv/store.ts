/**
 * The Deno KV checkpoint store: {@linkcode kvCheckpointStore}.
 *
 * @module
 */
import {
  checkCount,
  checkMeta,
  checkOptionsObject,
  checkRememberMs,
  checkSaveArguments,
  described,
  optionError,
  refusedListing,
} from "../store/_checks.ts";
import { promiseHint } from "../base/_errors.ts";
import type { VersionedCheckpointStore } from "../store/contract.ts";
import { REMEMBER_MS } from "../store/memory.ts";
import type { TrainingStore } from "../store/training.ts";
import { commitStep } from "./commit.ts";
import type { Ctx } from "./context.ts";
import {
  checkpointKeys,
  formatKvKey,
  isCount,
  KV_MAX_CHUNK_BYTES,
  MAX_MODEL_LENGTH,
} from "./format.ts";
import { headOf, load, loadParams } from "./read.ts";
import { checkPrefixSize, foldLimit, freshLimit, KV_MAX_CHECKS, MIN_CHECKS } from "./limits.ts";
import { recordKeys } from "./records.ts";
import { sweep } from "./sweep.ts";
import { WriteSightings } from "./sightings.ts";
import {
  acquire,
  gradientOf,
  journal,
  pending,
  release,
  request,
  submit,
  waiting,
} from "./training.ts";
import { writeVersion } from "./version.ts";
import { WaitingNotes } from "../store/_notes.ts";
import { mistake } from "../store/errors.ts";
import { LeaseSighting } from "../store/_lease.ts";

/**
 * Options of {@linkcode kvCheckpointStore}.
 *
 * @example
 * ```ts
 * import type { KvCheckpointStoreOptions } from "@optim/radam/kv";
 *
 * const options: KvCheckpointStoreOptions = { model: "linear-v2", chunkBytes: 32768 };
 * // On a self-hosted Deno KV server (denoland/denokv), which takes 10 checks an atomic write:
 * const selfHosted: KvCheckpointStoreOptions = { maxChecks: 10 };
 * ```
 */
export interface KvCheckpointStoreOptions {
  /**
   * A name for the model, recorded in the head: a head of another model is then refused on
   * load with a CheckpointError naming its key. At most 1024 UTF-16 units (a longer one is a
   * RangeError): every head holds it. Default: not recorded, not checked.
   */
  model?: string;
  /** Size of the chunks, 1 to {@linkcode KV_MAX_CHUNK_BYTES} (default) bytes. */
  chunkBytes?: number;
  /**
   * How long an unfinished save may be in progress before a later save may remove it as the
   * garbage of a crash, in ms; default 600 000 (10 min): judged on the sweeping process's own
   * clock, once that process has seen the save's record unchanged for so long (a monotonic
   * clock), or once the save began more than `staleAfterMs` and a minute before by its wall
   * clock (the writer's clock is compared with it only with that margin). A save that takes
   * longer is then refused as a conflict (and retried by `optimisticStep`), never made current.
   * The same holds for the gradient of a contribution being stored.
   */
  staleAfterMs?: number;
  /**
   * How long request ids and journal records are kept at least, in ms (Deno KV's `expireIn`:
   * an integer from 1 to 10¹⁵); default 7 days. Deno KV removes an expired record some time
   * after it expires, not at once (on a local file, tens of seconds later): a request id
   * sent again later than `rememberMs` may be taken as new.
   */
  rememberMs?: number;
  /**
   * The most checks (`Deno.AtomicOperation.check`) one atomic write of the store may hold, an
   * integer from 4 to 100 (default 100: the limit Deno KV's documentation states for its
   * transactions, on Deno Deploy as in the Deno runtime, "Max checks in an atomic operation: 100"
   * in the Limits of its Transactions page at docs.deno.com; the runtime refuses more with "Too
   * many checks (max 100)"). Set it where the database takes fewer: the self-hosted Deno KV server
   * (denoland/denokv, reached with `Deno.openKv("http://…")`) refuses an atomic write of more than
   * 10, so give it `10` there. Only a step's commit checks more than two keys: the head, the
   * version record, the lease and the id of each contribution of the committing process's own, so
   * the store's `maxFresh` is `maxChecks - 3` (`dataParallel` folds no more of its process's own in
   * a step, and stores those of them that its steps would reach only past `staleness`, or all once
   * it hands the lease on, each a write of its gradient, for the next steps to take as stored ones
   * with no check each: a burst of requests to one process is applied, not kept waiting until
   * refused as stale), and a commit of more fresh ids is refused with a RangeError, on any
   * database, before anything is written. The server's other limits (10 keys a read, 1000 entries
   * a list, 1000 mutations and 800 KiB a write) are the runtime's, which the store keeps.
   */
  maxChecks?: number;
}

/**
 * A {@linkcode VersionedCheckpointStore} and `TrainingStore` on Deno KV; see
 * {@linkcode kvCheckpointStore}.
 *
 * @example
 * ```ts
 * import { kvCheckpointStore, type KvCheckpointStore } from "@optim/radam/kv";
 * import assert from "node:assert/strict";
 *
 * const kv = await Deno.openKv(":memory:");
 * const store: KvCheckpointStore = kvCheckpointStore(kv, ["model"]);
 * assert.equal(store.name, '["model"]');
 * assert.equal(await store.sweep(), 0);
 * kv.close();
 * ```
 */
export interface KvCheckpointStore
  extends VersionedCheckpointStore<ArrayBuffer>, TrainingStore<ArrayBuffer> {
  /** The database. */
  readonly kv: Deno.Kv;
  /** The key prefix under which the checkpoint lives. */
  readonly key: Deno.KvKey;
  /**
   * Removes the chunks of versions that are no longer current, and of saves that crashed
   * (unfinished for `staleAfterMs`, judged as that option says), and the gradients of contributions settled
   * or whose storing crashed; returns how many versions and gradients it removed. Every
   * successful `save` and commit runs it; call it to clean up without saving.
   */
  sweep(): Promise<number>;
}

/** See {@linkcode VersionedCheckpointStore.save}. */
async function save(
  ctx: Ctx,
  bytes: Uint8Array,
  expected: string | null,
  meta?: string,
): Promise<string | null> {
  checkSaveArguments(bytes, expected);
  checkMeta(meta);
  // A copy made at the call, as the in-process store keeps one: the caller's array may change
  // (or be shared memory another thread writes) while the chunks are written, and the head's
  // digest must be of what they hold.
  return await writeVersion(ctx, { bytes: bytes.slice(), expected, meta });
}

/** The options of {@linkcode kvCheckpointStore}, checked, with their defaults. */
function checkOptions(
  kv: Deno.Kv,
  key: Deno.KvKey,
  options: KvCheckpointStoreOptions,
): Required<Omit<KvCheckpointStoreOptions, "model">> & { model: string | undefined } {
  if (typeof kv !== "object" || kv === null || typeof kv.atomic !== "function") {
    throw new TypeError(
      `Expected a Deno.Kv, e.g. await Deno.openKv(path), got ${described(kv)}${promiseHint(kv)}`,
    );
  }
  if (!Array.isArray(key)) {
    throw new TypeError(
      `Expected the key prefix as an array of key parts, e.g. ["models", "linear"], got ${
        described(key)
      }`,
    );
  }
  if (key.length === 0) {
    // Its records ([...key, "head"], [...key, "requests", id], …) would lie among the
    // application's own keys, and those be read (or listed) as the store's.
    throw new TypeError(
      'Expected the key prefix to have at least one part, e.g. ["models", "linear"], got []: ' +
        "the store's records would share the root of the database with everything else in it",
    );
  }
  key.forEach((part: unknown, i) => {
    if (
      !["string", "number", "bigint", "boolean"].includes(typeof part) &&
      !(part instanceof Uint8Array)
    ) {
      throw new TypeError(
        `Expected the key prefix's part ${i} to be a string, number, bigint, boolean or ` +
          `Uint8Array, got ${described(part)}`,
      );
    }
    // Deno KV keeps a key's string as UTF-8, each lone surrogate as U+FFFD: ["u", "\ud800"] and
    // ["u", "\ud801"] would be one prefix, each store reading the other's checkpoint.
    if (typeof part === "string" && /\p{Cs}/u.test(part)) {
      throw new TypeError(
        `Expected the key prefix's part ${i} to be text, got a string with a lone surrogate ` +
          "(Deno KV keeps it as U+FFFD, the same key as other such strings)",
      );
    }
  });
  checkPrefixSize(key);
  checkOptionsObject(
    options,
    "kvCheckpointStore",
    Object.keys(
      {
        model: true,
        chunkBytes: true,
        staleAfterMs: true,
        rememberMs: true,
        maxChecks: true,
      } satisfies Record<
        keyof KvCheckpointStoreOptions,
        true
      >,
    ),
  );
  const { model, chunkBytes = KV_MAX_CHUNK_BYTES, staleAfterMs = 600_000 } = options;
  if (model !== undefined && typeof model !== "string") {
    throw optionError("model", "a string", model, false);
  }
  // Recorded in every head: a longer name made every save fail with Deno KV's "Value too large".
  if (model !== undefined && model.length > MAX_MODEL_LENGTH) {
    throw new RangeError(
      `Option model must be at most ${MAX_MODEL_LENGTH} characters (UTF-16 units), got ` +
        `${model.length}: it is stored in the checkpoint's head, a Deno KV value of 64 KiB`,
    );
  }
  if (!isCount(chunkBytes, 1, KV_MAX_CHUNK_BYTES)) {
    throw optionError("chunkBytes", `an integer from 1 to ${KV_MAX_CHUNK_BYTES}`, chunkBytes);
  }
  checkCount("staleAfterMs", staleAfterMs, 0, false, true);
  const rememberMs = checkRememberMs(options.rememberMs ?? REMEMBER_MS);
  const { maxChecks = KV_MAX_CHECKS } = options;
  if (!isCount(maxChecks, MIN_CHECKS, KV_MAX_CHECKS)) {
    throw optionError(
      "maxChecks",
      `an integer from ${MIN_CHECKS} to ${KV_MAX_CHECKS} (a step's commit checks the head, ` +
        "its version record, the lease and at least one id)",
      maxChecks,
    );
  }
  return { model, chunkBytes, staleAfterMs, rememberMs, maxChecks };
}

/**
 * A store of one checkpoint in Deno KV under the prefix `key` (at least one part: each model
 * its own, apart from the application's other keys), for `optimisticStep` (or used directly:
 * `load()` and `save(bytes, expectedVersion, meta)`).
 *
 * Keys: `[...key, "head"]` (the head record: which version is current, its size, SHA-256,
 * model name, metadata, and the bytes themselves when they fit in one value with it),
 * `[...key, "versions", id]` (one small record per version, which says whether it is being
 * written, committed or dead) and `[...key, "chunks", id, i]` (the bytes). A version is the
 * head's versionstamp.
 *
 * - **save** writes the chunks (of a copy of `bytes` made at the call: the caller may change
 *   its array once `save` returns its promise) under a new version id, then, in one atomic
 *   operation checked
 *   against both the expected head versionstamp and its own version record, points the head at
 *   them: a crash before that leaves the previous checkpoint current, and a stale writer
 *   changes nothing. Then it removes the chunks of versions no longer current (see
 *   {@linkcode KvCheckpointStore.sweep}); a crash there only leaves garbage a later save
 *   removes. Once the head is written, save returns the new version whatever happens next.
 * - **load** reads the head, then its chunks, checks every chunk's size and the SHA-256 of the
 *   whole, and returns a new array. If the head changed while reading (the old chunks were
 *   removed), it starts again. Damage (a head that is not one, a truncated or missing chunk, a
 *   digest that does not match, another `model`) throws a CheckpointError naming the key; the
 *   validation of the checkpoint's contents is `loadState`'s.
 * - **A busy database** (a local file that several processes share answers "database is
 *   locked" while another holds its lock) is asked again, a bounded number of times. If the head
 *   write itself fails so, save finds out whether it was done (the head keeps the ids of the
 *   last 64 versions made current) before it writes again, so a save is never applied twice;
 *   when that cannot be told, the error is thrown. A commit finds out so too: by the head, or,
 *   without a checkpoint, by a receipt it writes in the same atomic write (under an id of its
 *   own, kept an hour), so that a commit not made is written again, never answered as made
 *   because the lease or an outcome changed since (another process's doing); one that failed
 *   otherwise (a connection lost) is answered made where its receipt is there. A receipt that
 *   cannot be read tells nothing: the error is thrown.
 *
 * Called again with the same database, key prefix and options, it returns the same (frozen)
 * store object, so that a handler that makes its store at each request still shares what a
 * process keeps per store: the turns of `optimisticStep` (option `serialize`), without which
 * the process's concurrent requests conflict with each other. The process keeps a store
 * object while it is in use, and the 16 asked for last: the stores of many prefixes (one model
 * a user) are not all kept.
 *
 * Invalid options throw a TypeError or RangeError naming them, as does a key prefix too long
 * for the store's longest keys to fit Deno KV's 2048 bytes (more than 1798 bytes as Deno KV
 * encodes keys). Its `maxFold` is how many contributions one commit can settle within Deno
 * KV's limits on an atomic write under that prefix (about 170 under a short one), and its
 * `maxFresh` how many of them may be not yet stored (97; 7 with `maxChecks: 10`, the
 * self-hosted server's limit).
 *
 * @example Save, load, and a refused stale save
 * ```ts
 * import { kvCheckpointStore } from "@optim/radam/kv";
 * import assert from "node:assert/strict";
 *
 * const kv = await Deno.openKv(":memory:");
 * const store = kvCheckpointStore(kv, ["models", "linear"], { chunkBytes: 4 });
 * const v1 = await store.save(new Uint8Array([1, 2, 3, 4, 5, 6]), null); // 2 chunks
 * const v2 = await store.save(new Uint8Array([7, 8, 9]), v1);
 * assert.equal(await store.save(new Uint8Array([0]), v1), null); // v1 is no longer current
 * const current = await store.load();
 * assert.deepEqual(current?.bytes, new Uint8Array([7, 8, 9]));
 * assert.equal(current?.version, v2);
 * kv.close();
 * ```
 */
export function kvCheckpointStore(
  kv: Deno.Kv,
  key: Deno.KvKey,
  options?: KvCheckpointStoreOptions,
): KvCheckpointStore {
  if (options === undefined) options = {};
  const checked = checkOptions(kv, key, options);
  const prefix: Deno.KvKey = [...key];
  // One store object per database, prefix and options: what a process keeps per store (the
  // turns of its optimistic steps, the tensor names init gives) is then shared by every
  // request, also where each request makes its store.
  const id = memoKey(prefix, checked);
  const made = stores.get(kv) ?? new Map<string, WeakRef<KvCheckpointStore>>();
  stores.set(kv, made);
  let store = made.get(id)?.deref();
  if (store === undefined) {
    store = makeStore(kv, prefix, checked);
    made.set(id, new WeakRef(store));
    forget.register(store, { made, id });
  }
  if (recent[0] !== store) {
    const at = recent.indexOf(store);
    if (at >= 0) recent.splice(at, 1);
    if (recent.unshift(store) > RECENT) recent.pop();
  }
  return store;
}

/**
 * The stores made, by database, then by prefix and options (see {@linkcode memoKey}), held
 * weakly: a process that makes the stores of many prefixes (one model a user) keeps only those
 * in use, and the {@linkcode RECENT} last asked for.
 */
const stores = new WeakMap<Deno.Kv, Map<string, WeakRef<KvCheckpointStore>>>();

/** Drops a collected store's entry (unless another store took its place). */
const forget = new FinalizationRegistry<{
  made: Map<string, WeakRef<KvCheckpointStore>>;
  id: string;
}>(({ made, id }) => {
  if (made.get(id)?.deref() === undefined) made.delete(id);
});

/**
 * The stores asked for last, held strongly, so that a handler that makes its store at each
 * request keeps the same one between requests (and what the process learned with it).
 */
const recent: KvCheckpointStore[] = [];
const RECENT = 16;

/** A text that tells apart every key prefix (each part's type and value) and set of options. */
function memoKey(prefix: Deno.KvKey, checked: ReturnType<typeof checkOptions>): string {
  const parts = prefix.map((p) =>
    p instanceof Uint8Array
      ? ["bytes", Array.from(p)]
      : typeof p === "bigint" || typeof p === "number"
      ? [typeof p, Object.is(p, -0) ? "-0" : String(p)] // (JSON writes NaN and ±Infinity as null)
      : [typeof p, p]
  );
  const { model = null, chunkBytes, staleAfterMs, rememberMs, maxChecks } = checked;
  return JSON.stringify([parts, model, chunkBytes, String(staleAfterMs), rememberMs, maxChecks]);
}

/** The store itself (see {@linkcode kvCheckpointStore}). */
function makeStore(
  kv: Deno.Kv,
  prefix: Deno.KvKey,
  checked: ReturnType<typeof checkOptions>,
): KvCheckpointStore {
  const ctx: Ctx = {
    kv,
    keys: checkpointKeys(prefix),
    records: recordKeys(prefix),
    ...checked,
    notes: new WaitingNotes(),
    lease: new LeaseSighting(),
    writes: new WriteSightings(),
    blobWrites: new WriteSightings(),
  };
  const name = formatKvKey(prefix);
  /** `p`, with a closed Deno.Kv's error naming the store. */
  const named = <T>(p: Promise<T>): Promise<T> =>
    p.catch((error) => {
      if (!(error instanceof Deno.errors.BadResource)) throw error;
      // A mistake of the caller's, passed on by the steps as it is.
      throw mistake(
        new Deno.errors.BadResource(
          `Checkpoint store ${name}: its Deno.Kv is closed (kv.close() was called)`,
          { cause: error },
        ),
      );
    });
  const store: KvCheckpointStore = {
    name,
    kv,
    key: Object.freeze(prefix),
    maxFold: foldLimit(prefix),
    maxFresh: freshLimit(checked.maxChecks),
    load: () => named(load(ctx)),
    save: (bytes, expected, meta) => named(save(ctx, bytes, expected, meta)),
    sweep: () => named(sweep(ctx)),
    head: () => named(headOf(ctx)),
    loadParams: () => named(loadParams(ctx)),
    commit: (c) => named(commitStep(ctx, c)),
    request: (id) => named(request(ctx, id)),
    submit: (info, gradient) => named(submit(ctx, info, gradient)),
    pending: (limit) => refusedListing("pending", limit) ?? named(pending(ctx, limit)),
    gradient: (p) => named(gradientOf(ctx, p)),
    acquire: (token, ms, queue) => named(acquire(ctx, token, ms, queue)),
    release: (lease) => named(release(ctx, lease)),
    waiting: (lease) => named(waiting(ctx, lease)),
    journal: (from, limit) =>
      refusedListing("journal", limit, from) ?? named(journal(ctx, from, limit)),
  };
  return Object.freeze(store);
}
