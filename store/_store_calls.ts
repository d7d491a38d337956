/**
 * The calls an optimistic step makes to the store (private to store/): each given a time, and
 * worded when it fails or is not answered, saying whether the update may yet be applied; and the
 * save of a step's checkpoint (on a training store, its commit with the request's record).
 *
 * @module
 */
import type { OptimizerState } from "../mod.ts";
import type { StoredCheckpoint, VersionedCheckpointStore } from "./contract.ts";
import { isPassedOn, messageOf, mistake } from "./errors.ts";
import { deadlineIn, until } from "./_time.ts";
import { described } from "./_checks.ts";
import type { TrainingStore } from "./training.ts";

/** The least time a call of the store is given before it is taken as hung, in ms. */
export const MIN_CALL_MS = 1000;

/** What the calls of one step's attempts to the store are given, and how to say they failed. */
export interface Calls {
  readonly store: string;
  readonly id: string | undefined;
  /** How long a call may take: `timeoutMs`, at least {@linkcode MIN_CALL_MS}. */
  readonly limitMs: number;
  readonly timeoutMs: number;
}

/**
 * What became of the update when a call failed (`failed`) or was not answered: `saving`, the
 * call was its save, which may have been made (or, not answered, may yet be).
 */
function outcomeOf(calls: Calls, saving: boolean, failed: boolean): string {
  const { id } = calls;
  const may = `the update may ${failed ? "have been" : "yet be"} applied`;
  return !saving
    ? "nothing was saved: send it again"
    : id === undefined
    ? `${may}: sent again without a request id, it may be applied twice`
    : `${may}: send it again with the same id (${JSON.stringify(id)}) to learn its outcome`;
}

/**
 * What `call` answers. Else an Error that says, as `saving` says, whether the update may yet be
 * applied: when the call fails (the database's error its cause; damaged stored data, a
 * CheckpointError naming its key, or a mistake the store worded, is thrown as it is), or takes
 * longer than `calls.limitMs` (a store that does not answer).
 */
export async function answered<T>(calls: Calls, call: Promise<T>, saving: boolean): Promise<T> {
  const what = saving ? "saving the step" : "reading the store";
  // (Promise.resolve: a store whose method answers a value, not a Promise, is waited on as
  // `await` would; the conformance kit reports it.)
  const checked = Promise.resolve(call).then((value) => ({ value }), (error) => {
    if (isPassedOn(error)) throw error;
    throw new Error(
      `Checkpoint ${calls.store}: ${what} failed (${messageOf(error)}); ` +
        outcomeOf(calls, saving, true),
      { cause: error },
    );
  });
  const answer = await until(checked, deadlineIn(calls.limitMs), null);
  if (answer !== null) return answer.value;
  const { store, timeoutMs } = calls;
  throw new Error(
    `Checkpoint ${store}: the store did not answer within timeoutMs (${timeoutMs} ms` +
      `${timeoutMs < calls.limitMs ? `, at least ${calls.limitMs} ms a call` : ""}); ` +
      outcomeOf(calls, saving, false),
  );
}

/** Whether the store keeps the TrainingStore contract (then steps are committed with it). */
const isTrainingStore = (store: VersionedCheckpointStore): store is TrainingStore =>
  typeof (store as Partial<TrainingStore>).commit === "function" &&
  typeof (store as Partial<TrainingStore>).request === "function";

/**
 * Saves (or, on a training store, commits with the request's record) a new checkpoint; answers
 * the store's version as it came (checkSaved refuses one that is not a string or null).
 */
export async function put(
  store: VersionedCheckpointStore,
  checkpoint: Uint8Array,
  stored: StoredCheckpoint | null,
  meta: string | undefined,
  next: OptimizerState,
  request: { id: string; base: number } | null,
): Promise<string | null> {
  const expected = stored?.version ?? null;
  if (!isTrainingStore(store)) return await store.save(checkpoint, expected, meta);
  const done = await store.commit({
    checkpoint,
    expected,
    meta,
    step: next.step,
    seq: next.step + next.skippedSteps,
    applied: request === null ? [] : [{ ...request, samples: 1 }],
    refused: [],
    fresh: request === null ? [] : [request.id],
  });
  // null alone is a conflict; an answer without its version (a string) is for checkSaved to refuse
  return done === null ? null : (done as { version?: string } | undefined)?.version as string;
}

/** What the contract says of versions, for the errors of a store that gives others. */
const VERSIONS = "a version must be a string (StoredCheckpoint.version: what save answered, " +
  "given to save to replace exactly that checkpoint; a store of numbered versions gives " +
  "String(n)); verifyCheckpointStore checks a store's answers";

/**
 * Throws a TypeError (passed on as it is) unless `version`, what `store`'s save (or, on a
 * training store, commit) answered, is a version (a string) or null; it says that the update
 * may have been applied, as `calls` says.
 */
export function checkSaved(calls: Calls, store: VersionedCheckpointStore, version: unknown) {
  if (version === null || typeof version === "string") return;
  const method = isTrainingStore(store) ? "commit() answered { version }" : "save() answered";
  throw mistake(
    new TypeError(
      `Checkpoint ${calls.store}: ${method} ${described(version)}, not a version (a string) or ` +
        `null (another save came first); ${VERSIONS}; ${outcomeOf(calls, true, true)}`,
    ),
  );
}

/**
 * What a store's `load()` answered, when it is what the contract says: null (no checkpoint), or
 * an object with `bytes` and `version`; else a TypeError naming the store and what it gave.
 */
export function checkLoaded(store: string, loaded: unknown): StoredCheckpoint | null {
  if (
    loaded === null ||
    typeof loaded === "object" && !Array.isArray(loaded) && !ArrayBuffer.isView(loaded) &&
      "bytes" in loaded && "version" in loaded
  ) {
    const version = (loaded as { version?: unknown } | null)?.version;
    if (loaded !== null && typeof version !== "string") {
      throw new TypeError(
        `Checkpoint ${store}: load() gave the version ${
          described(version)
        }, not a string; ${VERSIONS}`,
      );
    }
    return loaded as StoredCheckpoint | null;
  }
  throw new TypeError(
    `Checkpoint ${store}: load() gave ${described(loaded)}; a store's load must give null ` +
      "when it holds no checkpoint, else { bytes, version, meta? } (the StoredCheckpoint " +
      "contract; verifyCheckpointStore checks a store's answers)",
  );
}

/**
 * Throws a TypeError naming the store, what it answered and that the commit was made, unless
 * `result`, a commit's answer (not null: it was made), has a version (a string).
 */
export function checkCommitted(store: string, result: unknown): void {
  const version = (result as { version?: unknown } | undefined)?.version;
  if (typeof version === "string") return;
  throw new TypeError(
    `Checkpoint ${store}: commit() answered { version } ${described(version)}, not a version ` +
      `(a string) or null (another commit came first), and its checkpoint was made; ${VERSIONS}`,
  );
}

/**
 * `store` whose methods reject where they throw at once (a binding over a synchronous database,
 * such as `node:sqlite`'s): their failures then reach the library's handling of a failed call, and
 * are worded with what became of the update, as a rejection is. Other members are `store`'s own.
 */
export function rejectingThrows<S extends object>(store: S): S {
  const made = rejecting.get(store);
  if (made !== undefined) return made as S; // one a store: what is kept by store stays found
  // (a proxy of an empty object: a frozen store's methods cannot be answered for by a proxy of it)
  const proxy = new Proxy({} as S, {
    has: (_, key) => Reflect.has(store, key),
    get(_, key) {
      const member = Reflect.get(store, key);
      if (typeof member !== "function") return member;
      return (...args: unknown[]) => {
        try {
          return member.apply(store, args);
        } catch (error) {
          return Promise.reject(error);
        }
      };
    },
  });
  rejecting.set(store, proxy);
  return proxy;
}

const rejecting = new WeakMap<object, object>();
