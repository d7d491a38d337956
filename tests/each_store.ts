/**
 * The stores the store tests run on, each fresh: the in-process one and one on a new Deno KV
 * database in memory, with a second store object on the same data, as another process sees it.
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
