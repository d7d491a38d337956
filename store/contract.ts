/**
 * The check-and-set contract of a versioned checkpoint store, which {@linkcode optimisticStep}
 * relies on and any database with a conditional write can keep.
 *
 * @module
 */

/**
 * A checkpoint as a versioned store holds it: its bytes, the version they were saved under,
 * and the application's metadata string saved with them.
 *
 * `TArrayBuffer` is the memory its bytes are over. A store you write (the contract's default)
 * may give any `Uint8Array`; the library's stores (`memoryCheckpointStore`,
 * `kvCheckpointStore`) give `StoredCheckpoint<ArrayBuffer>`, bytes over an `ArrayBuffer` of
 * their own, as `saveState` does, which TypeScript 5.7 and later require of what
 * `new Response(bytes)`, `fetch` bodies and `crypto.subtle` take. Bytes of a store typed with
 * the default need a check there: `verifyCheckpointStore` checks (clause `load.buffer`) that a
 * store's loads give bytes over an `ArrayBuffer`, so that the cast holds at run time.
 *
 * @example
 * ```ts
 * import {
 *   memoryCheckpointStore,
 *   type StoredCheckpoint,
 *   type VersionedCheckpointStore,
 * } from "@optim/radam/store";
 * import assert from "node:assert/strict";
 *
 * const store = memoryCheckpointStore();
 * await store.save(new Uint8Array([1, 2, 3]), null, "first");
 * const stored: StoredCheckpoint<ArrayBuffer> | null = await store.load();
 * assert.deepEqual(stored?.bytes, new Uint8Array([1, 2, 3]));
 * assert.equal(stored?.version, "1");
 * assert.equal(stored?.meta, "first");
 * const response = new Response(stored!.bytes); // bytes over an ArrayBuffer: as they are
 * assert.equal((await response.arrayBuffer()).byteLength, 3);
 *
 * // A store of your own, typed with the default: its bytes over any buffer. Where it passed
 * // verifyCheckpointStore (clause load.buffer), they are over an ArrayBuffer:
 * const yours: VersionedCheckpointStore = store;
 * const loaded = await yours.load();
 * const body = new Response(loaded!.bytes as Uint8Array<ArrayBuffer>);
 * assert.equal((await body.arrayBuffer()).byteLength, 3);
 * ```
 */
export interface StoredCheckpoint<TArrayBuffer extends ArrayBufferLike = ArrayBufferLike> {
  /** The checkpoint bytes (the caller's own copy). */
  readonly bytes: Uint8Array<TArrayBuffer>;
  /** The version they were saved under; pass it to `save` to replace exactly this one. */
  readonly version: string;
  /** The metadata string saved with them, if any. */
  readonly meta?: string;
}

/**
 * The contract a store of checkpoints keeps for {@linkcode optimisticStep}: `load` returns the
 * current checkpoint with its version, and `save` makes new bytes current only if the version
 * it is given is still the current one (`null`: only if the store is empty), atomically: a
 * reader sees either the old checkpoint or the new one, whole.
 *
 * `save` takes any `Uint8Array`; `TArrayBuffer` is the memory the bytes `load` gives are over
 * (see {@linkcode StoredCheckpoint}): any, by default, for a store you write; `ArrayBuffer` for
 * the library's stores.
 *
 * @example A store that keeps one checkpoint in a variable
 * ```ts
 * import type { StoredCheckpoint, VersionedCheckpointStore } from "@optim/radam/store";
 *
 * let current: StoredCheckpoint | null = null;
 * let counter = 0;
 * const store: VersionedCheckpointStore = {
 *   name: "variable",
 *   load: () => Promise.resolve(current && { ...current, bytes: current.bytes.slice() }),
 *   save(bytes, expected, meta) {
 *     if ((current?.version ?? null) !== expected) return Promise.resolve(null);
 *     current = { bytes: bytes.slice(), version: String(++counter), meta };
 *     return Promise.resolve(current.version);
 *   },
 * };
 * ```
 */
export interface VersionedCheckpointStore<TArrayBuffer extends ArrayBufferLike = ArrayBufferLike> {
  /** Says which checkpoint this is, in error messages (e.g. its database key). */
  readonly name: string;
  /** The current checkpoint, or `null` when none was saved yet. */
  load(): Promise<StoredCheckpoint<TArrayBuffer> | null>;
  /**
   * Makes `bytes` (and `meta`) the current checkpoint if `expected` is the current version
   * (`null`: if there is none yet) and returns the new version; returns `null`, changing
   * nothing a reader can see, if another save came first. `meta` over
   * {@linkcode MAX_META_BYTES} UTF-8 bytes: the promise rejects with a RangeError (not text, a
   * lone surrogate included: a TypeError), nothing saved; the library checks `meta` itself
   * before it saves, so only other callers meet these errors (the kit does not check them).
   */
  save(bytes: Uint8Array, expected: string | null, meta?: string): Promise<string | null>;
}

/**
 * The largest metadata string a store must keep with a checkpoint, in UTF-8 bytes: 32 KiB.
 * (It must be text: a lone surrogate, which UTF-8 cannot hold, is refused with a TypeError.)
 *
 * @example
 * ```ts
 * import { MAX_META_BYTES, memoryCheckpointStore } from "@optim/radam/store";
 * import assert from "node:assert/strict";
 *
 * const meta = JSON.stringify({ epoch: 3, cursor: 1024 });
 * assert.ok(new TextEncoder().encode(meta).length <= MAX_META_BYTES);
 * await memoryCheckpointStore().save(new Uint8Array([1]), null, meta);
 * ```
 */
export const MAX_META_BYTES = 32768;
