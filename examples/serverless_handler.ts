/**
 * A serverless-style training endpoint: every request is a fresh invocation. It loads the
 * optimizer state from the last checkpoint, computes the gradient of its batch at the loaded
 * parameters, takes one RAdam step, and saves the checkpoint only if no other request saved
 * one in the meantime; otherwise it starts again from the newer checkpoint
 * (`optimisticStep` of kv.ts). Nothing survives between requests but the checkpoint, so
 * concurrent requests, several processes, and crashes lose no update.
 *
 * The model is linear regression, `y ≈ w · x + b`, with the mean squared error.
 *
 * Run on a Deno KV database file (created if missing):
 *
 * ```sh
 * deno run --unstable-kv --allow-net=127.0.0.1 --allow-read --allow-write \
 *   examples/serverless_handler.ts --port 8787 --kv training.sqlite3
 * curl -d '{"x":[[1,2,3,4]],"y":[1]}' http://127.0.0.1:8787/step   # {"step":1,"loss":1,...}
 * curl http://127.0.0.1:8787/params                                  # {"step":1,"params":...}
 * ```
 *
 * Without `--kv` the checkpoint lives in this process (`memoryCheckpointStore`, the same
 * check-and-set contract; `--latency-ms N` makes it answer N ms later, as a database would).
 * Other flags: `--chunk-bytes N`, `--stale-after-ms N` (see `kvCheckpointStore`),
 * `--max-attempts N` (default 50). `--port 0` picks a free port; the first line
 * printed says which.
 *
 * Answers of `POST /step`: 200 `{ step, loss, id, attempts }`; 400 for a bad batch; 409 when
 * every attempt met a newer checkpoint (not applied: send it again); 500 for a damaged stored
 * checkpoint; 503 when the database failed (applied or not: `GET /params` lists the ids of the
 * requests applied, in step order).
 *
 * @module
 */
import { CheckpointError, loadState, radam, readParams } from "../mod.ts";
import {
  CheckpointConflictError,
  kvCheckpointStore,
  memoryCheckpointStore,
  optimisticStep,
  type VersionedCheckpointStore,
} from "../kv.ts";

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

function checkBatch(body: unknown): Batch {
  const b = body as Batch;
  if (
    typeof b !== "object" || b === null || !Array.isArray(b.x) || !Array.isArray(b.y) ||
    b.x.length !== b.y.length || b.y.length === 0 || !Array.isArray(b.x[0]) ||
    b.x[0].length === 0 ||
    !b.x.every((row) =>
      Array.isArray(row) && row.length === b.x[0].length && row.every(isNumber)
    ) ||
    !b.y.every(isNumber)
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
  /** Attempts per request before answering 409; default 50. */
  maxAttempts?: number;
}

/**
 * The request handler: `POST /step` with a {@linkcode Batch} as JSON answers
 * `{ step, loss, id, attempts }`; `GET /params` answers `{ step, params, sha256, requests }`
 * (the parameters, the SHA-256 of the checkpoint they were read from, and the ids of the
 * requests applied, oldest first).
 */
export function makeHandler(
  store: VersionedCheckpointStore,
  options: HandlerOptions = {},
): (req: Request) => Promise<Response> {
  const maxAttempts = options.maxAttempts ?? 50;
  return async (req) => {
    const url = new URL(req.url);
    try {
      if (req.method === "GET" && url.pathname === "/params") {
        const stored = await store.load();
        if (!stored) return Response.json({ error: "No checkpoint yet" }, { status: 404 });
        const state = await loadState(stored.bytes);
        const params = await readParams(state);
        return Response.json({
          step: state.step,
          params: Object.fromEntries(
            Object.entries(params).map(([name, data]) => [name, Array.from(data)]),
          ),
          sha256: await sha256(stored.bytes),
          requests: journalOf(stored.meta),
        });
      }
      if (req.method !== "POST" || url.pathname !== "/step") {
        return Response.json({ error: "POST /step or GET /params" }, { status: 404 });
      }
      let batch: Batch;
      try {
        batch = checkBatch(await req.json());
      } catch (e) {
        return Response.json({ error: (e as Error).message }, { status: 400 });
      }
      const features = batch.x[0].length;
      const id = batch.id ?? crypto.randomUUID().slice(0, 8);
      const done = await optimisticStep(store, {
        optimizer,
        init: () => initialParams(features),
        gradient(state) {
          if (state.params.w.length !== features) {
            throw new BatchError(`Expected ${state.params.w.length} features, got ${features}`);
          }
          const loss = batchGradient(state.params, batch, state.grads);
          if (!Number.isFinite(loss) || !state.grads.w.every(Number.isFinite)) {
            throw new BatchError("This batch gives a non-finite gradient");
          }
          return loss;
        },
        meta: (previous) =>
          JSON.stringify({ requests: [...journalOf(previous), id].slice(-JOURNAL_LENGTH) }),
        maxAttempts,
      });
      return Response.json({ step: done.step, loss: done.result, id, attempts: done.attempts });
    } catch (e) {
      const error = (e as Error).message;
      if (e instanceof BatchError) return Response.json({ error }, { status: 400 });
      if (e instanceof CheckpointConflictError) return Response.json({ error }, { status: 409 });
      if (e instanceof CheckpointError) return Response.json({ error }, { status: 500 });
      return Response.json({ error }, { status: 503 });
    }
  };
}

/** The command line: see the module documentation. */
function parseArgs(args: string[]): Record<string, string> {
  const known = [
    "--port",
    "--kv",
    "--chunk-bytes",
    "--stale-after-ms",
    "--max-attempts",
    "--latency-ms",
  ];
  const out: Record<string, string> = {};
  for (let i = 0; i < args.length; i += 2) {
    if (!known.includes(args[i]) || args[i + 1] === undefined) {
      throw new TypeError(`Unknown argument ${JSON.stringify(args[i])}; expected ${known}`);
    }
    out[args[i].slice(2)] = args[i + 1];
  }
  return out;
}

if (import.meta.main) {
  const args = parseArgs(Deno.args);
  const number = (name: string) => {
    if (args[name] === undefined) return undefined;
    if (!/^\d+$/.test(args[name])) {
      throw new TypeError(`--${name} must be a whole number, got ${JSON.stringify(args[name])}`);
    }
    return Number(args[name]);
  };
  const kv = args.kv === undefined ? undefined : await Deno.openKv(args.kv);
  const store = kv
    ? kvCheckpointStore(kv, ["radam", "serverless", "model"], {
      chunkBytes: number("chunk-bytes"),
      staleAfterMs: number("stale-after-ms"),
    })
    : memoryCheckpointStore({ latencyMs: number("latency-ms") });
  const server = Deno.serve({
    hostname: "127.0.0.1",
    port: number("port") ?? 8787,
    onListen: ({ port }) =>
      console.log(
        `Listening on http://127.0.0.1:${port}/ (${kv ? `Deno KV ${args.kv}` : "in memory"})`,
      ),
  }, makeHandler(store, { maxAttempts: number("max-attempts") }));
  const stop = async () => {
    await server.shutdown();
    kv?.close();
    Deno.exit(0);
  };
  Deno.addSignalListener("SIGTERM", stop);
  Deno.addSignalListener("SIGINT", stop);
  await server.finished;
}
