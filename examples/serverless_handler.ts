/**
 * A serverless-style training endpoint: every request is a fresh invocation, and nothing
 * survives between requests but what the store holds. Two modes:
 *
 * - **Optimistic** (the default): a request loads the optimizer state from the last
 *   checkpoint, computes the gradient of its batch at the loaded parameters, takes one RAdam
 *   step, and saves the checkpoint only if no other request saved one in the meantime;
 *   otherwise it starts again from the newer checkpoint (`optimisticStep` of store.ts).
 * - **Data-parallel** (`--data-parallel`): a request reads the current parameters only,
 *   computes its gradient there and submits it as a contribution; the request that holds the
 *   store's lease folds the contributions waiting in its process (and those stored) into one
 *   step, on their mean, and the others wait for the step that folded theirs (`dataParallel`
 *   of store.ts).
 *
 * In both, concurrent requests, several processes and crashes lose no update, and a request
 * id sent again is not applied again (the answer says which step applied it). The model is
 * linear regression, `y ≈ w · x + b`, with the mean squared error.
 *
 * Run on a Deno KV database file (created if missing, in the git-ignored `serverless-data/`):
 *
 * ```sh
 * deno run --unstable-kv --allow-net=127.0.0.1 --allow-read --allow-write \
 *   examples/serverless_handler.ts --port 8787 --kv serverless-data/training.sqlite3
 * curl -d '{"x":[[1,2,3,4]],"y":[1],"id":"a1"}' http://127.0.0.1:8787/step  # {"step":1,...}
 * curl http://127.0.0.1:8787/params                                          # {"step":1,...}
 * ```
 *
 * Without `--kv` the checkpoint lives in this process (`memoryCheckpointStore`, the same
 * contracts; `--latency-ms N` makes it answer N ms later, as a database would). Other flags:
 * `--chunk-bytes N`, `--stale-after-ms N` (see `kvCheckpointStore`); optimistic mode:
 * `--timeout-ms N`, `--max-attempts N`, `--no-serialize` (this process's attempts do not take
 * turns; see `optimisticStep`); data-parallel mode:
 * `--staleness N`, `--wait-ms N`, `--lease-ms N`, `--max-fold N`, `--handoff-ms N`,
 * `--handoff-limit N` (N or `Infinity`; see `dataParallel`).
 * `--port 0` picks a free port; the first line printed says which. `--kv default` opens
 * `Deno.openKv()`'s database (on Deno Deploy, the project's; a file named so is `./default`).
 *
 * Where no arguments are passed (Deno Deploy), each flag is read from an environment variable
 * too, `RADAM_` and its name in capitals: `RADAM_KV=default`, `RADAM_DATA_PARALLEL=1`,
 * `RADAM_WAIT_MS=2000` (examples/serverless_settings.ts); the command line wins. Reading them
 * needs `--allow-env` for those variables alone (`--allow-env=RADAM_KV,RADAM_DATA_PARALLEL,…`,
 * every one: `ENV_VARS`); without it the example reads none and runs on the command line and
 * the defaults, saying so in a note where --allow-env names some of the variables but not all, or
 * none and the command line is empty (`envNote`).
 *
 * Answers of `POST /step` (a JSON batch `{ x, y, id? }`): 200 `{ step, loss, id, attempts }`
 * (optimistic) or `{ step, loss, id, base }` (data-parallel: the step that applied the batch,
 * and the step of the parameters its gradient was computed at), or `{ step, id, duplicate:
 * true }` in both modes when the id was applied before (by `step`; nothing applied now); 202 `{ id, pending: true }` when
 * a data-parallel contribution is stored but no step applied it within `--wait-ms` (send the
 * id again to learn its step); 400 for a bad batch; 409 when it was not applied (optimistic:
 * every attempt met a newer checkpoint within the time budget; data-parallel: computed too many
 * steps behind, or a gradient so large that no checkpoint holds the moments of its step, which
 * the optimistic mode answers 400); 500 for a damaged stored checkpoint; 503 when the database
 * failed or did not answer (applied or not: send the id again). An error answer to `POST /step`
 * is `{ error, id }`, with the id made up for a batch sent without one too; but a 400 for a body
 * that is not a batch (not JSON, or failing its check) is `{ error }`: no id was read, and
 * nothing was applied. `GET /params` answers `{ step, params, sha256, requests }`;
 * `GET /journal?from=N` the store's journal (what each step applied, in order).
 *
 * @module
 */
import { CheckpointError, loadState, radam, readParams } from "../mod.ts";
import {
  CheckpointConflictError,
  ContributionRefusedError,
  dataParallel,
  type DataParallelTrainer,
  kvCheckpointStore,
  memoryCheckpointStore,
  optimisticStep,
  type TrainingStore,
} from "../kv.ts";
import { readableEnv, type Settings, settingsOf, wholeNumber } from "./serverless_settings.ts";

export { parseArgs } from "./serverless_settings.ts";

/**
 * One request's data: rows of features and their targets, and an optional request id (1 to 16
 * letters, digits, `-` or `_`; one is made up when absent).
 */
export interface Batch {
  x: number[][];
  y: number[];
  id?: string;
}

/** The optimizer every invocation uses. */
export const optimizer = radam({ lr: 0.1 });

/** Initial parameters for `features` inputs: weights `w` and bias `b`, all zero. */
export function initialParams(features: number): Record<string, Float32Array> {
  return { w: new Float32Array(features), b: new Float32Array(1) };
}

/** How many request ids the checkpoint's metadata keeps, the last ones applied. */
export const JOURNAL_LENGTH = 1000;

/**
 * Writes the gradient of the mean squared error on `batch` at `params` into `grads` (which may
 * be the state's zero-copy slots) and returns the loss.
 */
export function batchGradient(
  params: Readonly<Record<string, Float32Array>>,
  batch: Batch,
  grads: Readonly<Record<string, Float32Array>>,
): number {
  const { w, b } = params;
  grads.w.fill(0);
  grads.b.fill(0);
  let loss = 0;
  for (let r = 0; r < batch.y.length; r++) {
    let pred = b[0];
    for (let j = 0; j < w.length; j++) pred += w[j] * batch.x[r][j];
    const err = pred - batch.y[r];
    loss += err * err / batch.y.length;
    const scale = 2 * err / batch.y.length;
    for (let j = 0; j < w.length; j++) grads.w[j] += scale * batch.x[r][j];
    grads.b[0] += scale;
  }
  return loss;
}

/** The ids of the requests a checkpoint has applied, oldest first (its metadata). */
export function journalOf(meta: string | undefined): string[] {
  if (meta === undefined) return [];
  const parsed = JSON.parse(meta);
  return Array.isArray(parsed.requests) ? parsed.requests : [];
}

const isNumber = (v: unknown) => typeof v === "number" && Number.isFinite(v);

/** Whether every value of `xs` is a finite number (a plain loop: rows may hold 1M values). */
function allFinite(xs: ArrayLike<unknown>): boolean {
  for (let i = 0; i < xs.length; i++) if (!isNumber(xs[i])) return false;
  return true;
}

function checkBatch(body: unknown): Batch {
  const b = body as Batch;
  if (
    typeof b !== "object" || b === null || !Array.isArray(b.x) || !Array.isArray(b.y) ||
    b.x.length !== b.y.length || b.y.length === 0 || !Array.isArray(b.x[0]) ||
    b.x[0].length === 0 ||
    !b.x.every((row) => Array.isArray(row) && row.length === b.x[0].length && allFinite(row)) ||
    !allFinite(b.y)
  ) {
    throw new TypeError(
      'Expected a JSON body {"x": number[][], "y": number[]} with equal, non-empty rows of ' +
        "finite numbers",
    );
  }
  if (b.id !== undefined && (typeof b.id !== "string" || !/^[\w-]{1,16}$/.test(b.id))) {
    throw new TypeError("Expected the id to be 1 to 16 letters, digits, - or _");
  }
  return b;
}

/** A batch that does not fit the stored model, or gives a non-finite gradient. */
class BatchError extends RangeError {}

async function sha256(bytes: Uint8Array): Promise<string> {
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", bytes as BufferSource));
  return Array.from(digest, (v) => v.toString(16).padStart(2, "0")).join("");
}

/** Options of {@linkcode makeHandler}. */
export interface HandlerOptions {
  /** Optimistic mode: the most attempts per request (default: the time budget decides). */
  maxAttempts?: number;
  /** Optimistic mode: the time budget per request, in ms (default `optimisticStep`'s). */
  timeoutMs?: number;
  /** Optimistic mode: whether this process's attempts take turns (default true). */
  serialize?: boolean;
  /** The data-parallel mode's trainer (see {@linkcode makeTrainer}); default: optimistic. */
  trainer?: DataParallelTrainer;
}

/** Options of {@linkcode makeTrainer}: those of `dataParallel` the command line sets. */
export interface TrainerOptions {
  staleness?: number;
  waitMs?: number;
  leaseMs?: number;
  maxFold?: number;
  handoffMs?: number;
  handoffLimit?: number;
}

/**
 * The data-parallel trainer of this model on `store`. The first checkpoint, when the store
 * holds none, takes its number of features from the request that finds it empty.
 */
export function makeTrainer(store: TrainingStore, options: TrainerOptions = {}): {
  trainer: DataParallelTrainer;
  setFeatures(n: number): void;
} {
  let features = 1;
  const trainer = dataParallel(store, {
    optimizer,
    init: () => initialParams(features),
    ...options,
  });
  return { trainer, setFeatures: (n) => void (features = n) };
}

/** The JSON answer of a request. */
const answer = (body: unknown, status = 200) => Response.json(body, { status });

/** One optimistic step on `batch`: its answer. */
async function optimisticAnswer(
  store: TrainingStore,
  batch: Batch,
  id: string,
  options: HandlerOptions,
): Promise<Response> {
  const features = batch.x[0].length;
  const done = await optimisticStep(store, {
    optimizer,
    init: () => initialParams(features),
    gradient(state) {
      if (state.params.w.length !== features) {
        throw new BatchError(`Expected ${state.params.w.length} features, got ${features}`);
      }
      const loss = batchGradient(state.params, batch, state.grads);
      if (!Number.isFinite(loss) || !allFinite(state.grads.w) || !allFinite(state.grads.b)) {
        throw new BatchError("This batch gives a non-finite gradient");
      }
      return loss;
    },
    meta: (previous) =>
      JSON.stringify({ requests: [...journalOf(previous), id].slice(-JOURNAL_LENGTH) }),
    id,
    ...(options.maxAttempts === undefined ? {} : { maxAttempts: options.maxAttempts }),
    ...(options.timeoutMs === undefined ? {} : { timeoutMs: options.timeoutMs }),
    ...(options.serialize === undefined ? {} : { serialize: options.serialize }),
  });
  if (done.duplicate) return answer({ step: done.step, id, duplicate: true });
  return answer({ step: done.step, loss: done.result, id, attempts: done.attempts });
}

/** One data-parallel contribution of `batch`: its answer. */
async function dataParallelAnswer(
  trainer: DataParallelTrainer,
  batch: Batch,
  id: string,
): Promise<Response> {
  const features = batch.x[0].length;
  const { step: base, params } = await trainer.params(); // the parameters only
  if (params.w.length !== features) {
    throw new BatchError(`Expected ${params.w.length} features, got ${features}`);
  }
  const gradient = initialParams(features);
  const loss = batchGradient(params, batch, gradient);
  if (!Number.isFinite(loss) || !allFinite(gradient.w) || !allFinite(gradient.b)) {
    throw new BatchError("This batch gives a non-finite gradient");
  }
  const done = await trainer.submit({ id, base, samples: batch.y.length, gradient });
  if (done.status === "pending") return answer({ id, pending: true }, 202);
  // A duplicate's step applied the gradient of an earlier request: this one's loss and base,
  // computed now, are not that step's, so they are left out (as the optimistic mode does).
  if (done.duplicate) return answer({ step: done.step, id, duplicate: true });
  return answer({ step: done.step, loss, id, base });
}

/** `GET /params`: the parameters, the SHA-256 of their checkpoint, the ids its metadata lists. */
async function paramsAnswer(store: TrainingStore): Promise<Response> {
  const stored = await store.load();
  if (!stored) return answer({ error: "No checkpoint yet" }, 404);
  const state = await loadState(stored.bytes);
  const params = await readParams(state);
  return answer({
    step: state.step,
    params: Object.fromEntries(
      Object.entries(params).map(([name, data]) => [name, Array.from(data)]),
    ),
    sha256: await sha256(stored.bytes),
    requests: journalOf(stored.meta),
  });
}

/** The HTTP status of an error a step threw. */
function statusOf(e: unknown): number {
  // A RangeError: also a step on a gradient so large that no checkpoint holds its moments.
  if (e instanceof BatchError || e instanceof RangeError) return 400;
  if (e instanceof CheckpointConflictError || e instanceof ContributionRefusedError) return 409;
  if (e instanceof CheckpointError) return 500;
  return 503;
}

/**
 * The request handler: `POST /step` with a {@linkcode Batch} as JSON, `GET /params` and
 * `GET /journal?from=N` (see the module documentation).
 */
export function makeHandler(
  store: TrainingStore,
  options: HandlerOptions = {},
  setFeatures: (n: number) => void = () => {},
): (req: Request) => Promise<Response> {
  return async (req) => {
    const url = new URL(req.url);
    // The batch's id, once known: an error answer gives it, so that a batch sent without one
    // can be sent again with the id it was given (a 503: applied or not).
    let id: string | undefined;
    try {
      if (req.method === "GET" && url.pathname === "/params") return await paramsAnswer(store);
      if (req.method === "GET" && url.pathname === "/journal") {
        const from = Number(url.searchParams.get("from") ?? 0);
        return answer(await store.journal(Number.isSafeInteger(from) ? from : 0, 1000));
      }
      if (req.method !== "POST" || url.pathname !== "/step") {
        return answer({ error: "POST /step, GET /params or GET /journal" }, 404);
      }
      let batch: Batch;
      try {
        batch = checkBatch(await req.json());
      } catch (e) {
        return answer({ error: (e as Error).message }, 400);
      }
      // 60 random bits: 8 hex digits (32 bits) repeat, one time in two, among 77 000 requests
      // within the 7 days a store remembers ids, and a batch taken for a duplicate is not applied.
      id = batch.id ?? crypto.randomUUID().replaceAll("-", "").slice(0, 16);
      if (options.trainer === undefined) return await optimisticAnswer(store, batch, id, options);
      setFeatures(batch.x[0].length);
      return await dataParallelAnswer(options.trainer, batch, id);
    } catch (e) {
      return answer(
        { error: (e as Error).message, ...(id === undefined ? {} : { id }) },
        statusOf(e),
      );
    }
  };
}

/** Opens the store the settings name: `--kv default` is `Deno.openKv()`'s (Deno Deploy's). */
async function openStore(settings: Settings, number: (name: string) => number | undefined) {
  const path = settings.values.kv;
  if (path === undefined) {
    return { kv: undefined, store: memoryCheckpointStore({ latencyMs: number("latency-ms") }) };
  }
  const folder = path.includes("/") ? path.slice(0, path.lastIndexOf("/")) : "";
  if (folder !== "" && !path.startsWith(":")) await Deno.mkdir(folder, { recursive: true });
  const kv = await (path === "default" ? Deno.openKv() : Deno.openKv(path));
  const store = kvCheckpointStore(kv, ["radam", "serverless", "model"], {
    chunkBytes: number("chunk-bytes"),
    staleAfterMs: number("stale-after-ms"),
  });
  return { kv, store };
}

/**
 * The settings of this process (its command line over the environment variables it may read),
 * and each whole-number setting checked; else the message printed and exit status 2.
 */
function configure(): { settings: Settings; number: (name: string) => number | undefined } {
  const { env, note } = readableEnv(Deno.args);
  try {
    const settings = settingsOf(Deno.args, env);
    const numbers = new Map<string, number | undefined>();
    for (const name of Object.keys(settings.values)) {
      if (name === "kv" || name === "data-parallel" || name === "no-serialize") continue;
      numbers.set(name, wholeNumber(settings, name, name.startsWith("handoff")));
    }
    if (note !== undefined) console.error(note);
    return { settings, number: (name) => numbers.get(name) };
  } catch (error) {
    console.error(`error: ${(error as Error).message}`);
    Deno.exit(2);
  }
}

if (import.meta.main) {
  const { settings, number } = configure();
  const { kv, store } = await openStore(settings, number);
  const dp = settings.values["data-parallel"] === undefined ? undefined : makeTrainer(store, {
    staleness: number("staleness"),
    waitMs: number("wait-ms"),
    leaseMs: number("lease-ms"),
    maxFold: number("max-fold"),
    handoffMs: number("handoff-ms"),
    handoffLimit: number("handoff-limit"),
  });
  const mode = dp ? "data-parallel" : "optimistic";
  const server = Deno.serve(
    {
      hostname: "127.0.0.1",
      port: number("port") ?? 8787,
      onListen: ({ hostname, port }) =>
        console.log(
          `Listening on http://${hostname}:${port}/ (${
            kv ? `Deno KV ${settings.values.kv}` : "in memory"
          }, ${mode})`,
        ),
    },
    makeHandler(store, {
      maxAttempts: number("max-attempts"),
      timeoutMs: number("timeout-ms"),
      serialize: settings.values["no-serialize"] === undefined,
      trainer: dp?.trainer,
    }, dp?.setFeatures),
  );
  const stop = async () => {
    await server.shutdown();
    await dp?.trainer.close();
    kv?.close();
    Deno.exit(0);
  };
  try {
    Deno.addSignalListener("SIGTERM", stop);
    Deno.addSignalListener("SIGINT", stop);
  } catch {
    // A platform without signals (Deno Deploy) ends the isolate itself.
  }
  await server.finished;
}
