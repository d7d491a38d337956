/**
 * Checkpoints on Deno KV, shared by concurrent writers (serverless functions, several
 * processes): `@optim/radam/kv`, Deno only. The Deno KV binding of `@optim/radam/store`
 * (whose exports it repeats).
 *
 * {@linkcode kvCheckpointStore} keeps one checkpoint under a key prefix, in chunks of at most
 * 64 KiB (Deno KV's value limit) under a version of their own, made current by one atomic,
 * checked write of a small head record (a checkpoint that fits in one value goes in the head);
 * {@linkcode optimisticStep} runs "load, compute the gradient on the loaded parameters, step,
 * save if the version is still current", retried on a conflict; {@linkcode dataParallel} folds
 * the gradients of many requests into one step, under an expiring lease. No update is lost or
 * applied twice, no reader sees a torn checkpoint, and a crash at any moment leaves the last
 * committed checkpoint current.
 *
 * Deno KV is unstable in Deno 2: run with `--unstable-kv` (or `"unstable": ["kv"]` in
 * deno.json), and `--allow-read --allow-write` for the database file given to `Deno.openKv`
 * (`Deno.openKv(":memory:")` needs no permission). The main entry point, mod.ts, needs no
 * permissions and imports nothing of this one.
 *
 * ```ts ignore
 * import { radam } from "@optim/radam";
 * import { kvCheckpointStore, optimisticStep } from "@optim/radam/kv";
 *
 * await Deno.mkdir("serverless-data", { recursive: true }); // Deno.openKv creates no folder
 * const kv = await Deno.openKv("serverless-data/training.sqlite3"); // Deno.openKv() on Deno Deploy
 * const store = kvCheckpointStore(kv, ["models", "linear"]);
 * const { step } = await optimisticStep(store, {
 *   optimizer: radam({ lr: 1e-3 }),
 *   init: () => ({ w: new Float32Array(1024) }),
 *   gradient: (state) => void state.grads.w.fill(0.1), // the gradient at state.params
 * });
 * ```
 *
 * @module
 */
export * from "./store.ts";
export { formatKvKey, KV_MAX_CHUNK_BYTES } from "./kv/format.ts";
export {
  type KvCheckpointStore,
  kvCheckpointStore,
  type KvCheckpointStoreOptions,
} from "./kv/store.ts";
