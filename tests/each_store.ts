/**
 * The stores the store tests run on, each fresh: the in-process one and one on a new Deno KV
 * database in memory, with a second store object on the same data, as another process sees it;
 * and views of a store with some of its calls replaced, or its lease held by another process; and
 * a wall clock set back, and a wait with a time limit, for the tests of the stores' clocks.
 *
 * @module
 */
import {
  kvCheckpointStore,
  type KvCheckpointStoreOptions,
  memoryCheckpointStore,
  type MemoryStoreOptions,
  type TrainingStore,
} from "../kv.ts";
import { withKv } from "./kv_fakes.ts";

/** How {@linkcode onEachStore} makes its stores. */
export interface EachStoreOptions {
  /** The in-process store's options. */
  memory?: MemoryStoreOptions;
  /** The Deno KV store's options. */
  kv?: KvCheckpointStoreOptions;
  /** The Deno KV store's key prefix (default `["dp"]`). */
  prefix?: Deno.KvKey;
  /**
   * The second store as another process calls it (by default the same object): the in-process
   * store wrapped by `memory`, the Deno KV store on the database as `kv` views it.
   */
  other?: {
    memory(store: TrainingStore): TrainingStore;
    kv(kv: Deno.Kv): Deno.Kv;
  };
}

/**
 * Runs `fn` on a fresh store of each kind, in turn, given its kind's name ("in-process store",
 * "Deno KV") and a second store on the same data (see `EachStoreOptions.other`).
 */
export async function onEachStore(
  fn: (store: TrainingStore, name: string, other: TrainingStore) => Promise<void>,
  options: EachStoreOptions = {},
): Promise<void> {
  const { memory: memoryOptions = {}, kv: kvOptions = {}, prefix = ["dp"], other } = options;
  const memory = memoryCheckpointStore(memoryOptions);
  await fn(memory, "in-process store", other?.memory(memory) ?? memory);
  await withKv(async (kv) => {
    const store = kvCheckpointStore(kv, prefix, kvOptions);
    const second = other ? kvCheckpointStore(other.kv(kv), prefix, kvOptions) : store;
    await fn(store, "Deno KV", second);
  });
}

/**
 * `store` with the calls in `calls` in place of its own, the others its own (a proxy of an empty
 * object: the Deno KV store is frozen, and its own methods are read from it as they are called).
 */
export function storeView(store: TrainingStore, calls: Partial<TrainingStore>): TrainingStore {
  return new Proxy({} as TrainingStore, {
    has: (_, key) => Reflect.has(store, key),
    get: (_, key) => key in calls ? calls[key as keyof TrainingStore] : Reflect.get(store, key),
  });
}

/**
 * `store` as a process sees it whose lease is held by another until `open()`: its `acquire`
 * answers null until then (then `calls.acquire`'s answer where given, else `store`'s); the other
 * calls in `calls` in place of `store`'s (see {@linkcode storeView}).
 */
export function heldStore(
  store: TrainingStore,
  calls: Partial<TrainingStore> = {},
): { held: TrainingStore; open(): void } {
  let gated = true;
  const acquire = calls.acquire ?? ((...args) => store.acquire(...args));
  const held = storeView(store, {
    ...calls,
    acquire: (...args) => gated ? Promise.resolve(null) : acquire(...args),
  });
  return { held, open: () => void (gated = false) };
}

/** Runs `fn` with `Date.now` behind the real clock by what it adds to `wall.back`. */
export async function withWallClock<T>(fn: (wall: { back: number }) => Promise<T>): Promise<T> {
  const real = Date.now;
  const wall = { back: 0 };
  Date.now = () => real.call(Date) - wall.back;
  try {
    return await fn(wall);
  } finally {
    Date.now = real;
  }
}

/** What `promise` gives, or "late" when `ms` pass first (the timer cleared either way). */
export async function within<T>(promise: Promise<T>, ms: number): Promise<T | "late"> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<"late">((resolve) => timer = setTimeout(() => resolve("late"), ms));
  try {
    return await Promise.race([promise, late]);
  } finally {
    clearTimeout(timer);
  }
}
