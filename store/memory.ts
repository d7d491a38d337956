/**
 * An in-process store of one checkpoint with the check-and-set contract of
 * {@linkcode VersionedCheckpointStore}: for tests and single processes.
 *
 * @module
 */
import { checkMeta, checkOptionsObject, checkSaveArguments } from "./_checks.ts";
import type { VersionedCheckpointStore } from "./contract.ts";

/**
 * Options of {@linkcode memoryCheckpointStore}.
 *
 * @example
 * ```ts
 * import { memoryCheckpointStore, type MemoryStoreOptions } from "../store.ts";
 *
 * const options: MemoryStoreOptions = { name: "test store", latencyMs: 1 };
 * const store = memoryCheckpointStore(options);
 * ```
 */
export interface MemoryStoreOptions {
  /** The store's name in error messages; default `"in memory"`. */
  name?: string;
  /**
   * Answers each call this many ms later (a timer), as a database would after a round trip,
   * so that concurrent callers interleave as they would on one; default 0 (a microtask).
   */
  latencyMs?: number;
}

/**
 * An in-process store of one checkpoint with the same check-and-set contract as the Deno KV
 * store (see {@linkcode VersionedCheckpointStore}): what a test or a single process uses. It
 * keeps copies, so the caller's arrays may change afterwards; versions are `"1"`, `"2"`, ….
 *
 * @example Two writers from the same version: the second one is refused
 * ```ts
 * import { memoryCheckpointStore } from "../store.ts";
 * import assert from "node:assert/strict";
 *
 * const store = memoryCheckpointStore();
 * const v1 = await store.save(new Uint8Array([1]), null);
 * assert.equal(await store.save(new Uint8Array([2]), v1), "2");
 * assert.equal(await store.save(new Uint8Array([3]), v1), null); // v1 is no longer current
 * ```
 */
export function memoryCheckpointStore(options: MemoryStoreOptions = {}): VersionedCheckpointStore {
  checkOptionsObject(options, "memoryCheckpointStore");
  const { name = "in memory", latencyMs = 0 } = options;
  if (typeof name !== "string") throw new TypeError(`Option name must be a string, got ${name}`);
  if (typeof latencyMs !== "number" || !(latencyMs >= 0) || latencyMs === Infinity) {
    throw new RangeError(`Option latencyMs must be a finite number ≥ 0, got ${latencyMs}`);
  }
  let current: { bytes: Uint8Array; version: string; meta?: string } | null = null;
  let counter = 0;
  // Each call takes effect, at once and whole, when its answer comes.
  const later = <T>(f: () => T): Promise<T> =>
    latencyMs > 0
      ? new Promise((resolve) => setTimeout(resolve, latencyMs)).then(f)
      : Promise.resolve().then(f);
  return {
    name,
    load: () =>
      later(() => {
        if (current === null) return null;
        const { bytes, version, meta } = current;
        return { bytes: bytes.slice(), version, ...(meta === undefined ? {} : { meta }) };
      }),
    save(bytes, expected, meta) {
      try {
        checkSaveArguments(bytes, expected);
        checkMeta(meta);
      } catch (error) {
        return Promise.reject(error);
      }
      const copy = bytes.slice();
      return later(() => {
        if ((current?.version ?? null) !== expected) return null;
        current = {
          bytes: copy,
          version: String(++counter),
          ...(meta === undefined ? {} : { meta }),
        };
        return current.version;
      });
    },
  };
}
