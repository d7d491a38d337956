/**
 * A serverless-style training endpoint: every request is a fresh invocation. It restores the
 * optimizer state from the last checkpoint, computes the gradient of its batch, takes one RAdam
 * step, and saves the checkpoint again; nothing survives between requests but the checkpoint
 * bytes (a Map here; a key-value store or object storage in production).
 *
 * The model is linear regression, `y ≈ w · x + b`, with the mean squared error.
 *
 * Run: `deno run --allow-net=127.0.0.1 examples/serverless_handler.ts`, then
 * `curl -d '{"x":[[1,2,3,4]],"y":[1]}' http://127.0.0.1:8787/step`.
 *
 * @module
 */
import { loadState, radam, readParams, saveState, step } from "../mod.ts";

/** One request's data: rows of features and their targets. */
export interface Batch {
  x: number[][];
  y: number[];
}

/** Where checkpoints live between invocations. */
export interface CheckpointStore {
  get(key: string): Promise<Uint8Array | undefined>;
  set(key: string, bytes: Uint8Array): Promise<void>;
}

/** An in-memory store (what a test or a single process would use). */
export function memoryStore(): CheckpointStore {
  const map = new Map<string, Uint8Array>();
  return {
    get: (key) => Promise.resolve(map.get(key)),
    set: (key, bytes) => Promise.resolve(void map.set(key, bytes)),
  };
}

/** The optimizer every invocation uses. */
export const optimizer = radam({ lr: 0.1 });

/** Initial parameters for `features` inputs: weights `w` and bias `b`, all zero. */
export function initialParams(features: number): Record<string, Float32Array> {
  return { w: new Float32Array(features), b: new Float32Array(1) };
}

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

function checkBatch(body: unknown): Batch {
  const b = body as Batch;
  if (
    typeof b !== "object" || b === null || !Array.isArray(b.x) || !Array.isArray(b.y) ||
    b.x.length !== b.y.length || b.y.length === 0 ||
    !b.x.every((row) => Array.isArray(row) && row.length === b.x[0].length)
  ) {
    throw new TypeError('Expected a JSON body {"x": number[][], "y": number[]} with equal rows');
  }
  return b;
}

/**
 * The request handler: `POST /step` with a {@linkcode Batch} as JSON answers
 * `{ step, loss }`; `GET /params` answers the current parameters.
 */
export function makeHandler(
  store: CheckpointStore,
  key = "model",
): (req: Request) => Promise<Response> {
  return async (req) => {
    const url = new URL(req.url);
    const saved = await store.get(key);
    if (req.method === "GET" && url.pathname === "/params") {
      if (!saved) return Response.json({ error: "No checkpoint yet" }, { status: 404 });
      const params = await readParams(await loadState(saved));
      return Response.json(Object.fromEntries(
        Object.entries(params).map(([name, data]) => [name, Array.from(data)]),
      ));
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
    let state = saved
      ? await loadState(saved)
      : await optimizer.init(initialParams(batch.x[0].length));
    if (state.params.w.length !== batch.x[0].length) {
      return Response.json({ error: `Expected ${state.params.w.length} features` }, {
        status: 400,
      });
    }
    const loss = batchGradient(state.params, batch, state.grads);
    state = step(state);
    await store.set(key, await saveState(state));
    return Response.json({ step: state.step, loss });
  };
}

if (import.meta.main) {
  Deno.serve({ hostname: "127.0.0.1", port: 8787 }, makeHandler(memoryStore()));
}
