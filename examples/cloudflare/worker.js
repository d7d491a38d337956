// Serverless data-parallel training on Cloudflare Workers, with a Durable Object as the store.
// Every Worker isolate serves requests statelessly; the one training state (checkpoint, request
// records, contributions, journal, lease) lives in one Durable Object (store_object.js), which
// every isolate calls through its stub (client.js). Clients compute gradients themselves:
//
//   GET  /params      → { step, params: { w: [...] } }: the current parameters
//   POST /step        { id, base, samples?, gradient: { w: [...] } }: a contribution computed at
//                     step `base`; 200 { status: "applied", step, duplicate } once the step
//                     that applied it is committed (an id sent again: the step that applied it,
//                     duplicate true), 202 { status: "pending" } when it is stored for a later
//                     step, 409 when refused (too stale), 400 for a bad contribution
//   GET  /journal     → what each step applied, in order (`store.journal`)
//   GET  /checkpoint  → the current checkpoint (safetensors bytes; `loadState` reads them)
//
// And the optimistic mode, on a model of its own (`?model=optimistic` for the GETs):
//
//   POST /optimistic  { id, target: [...] }: one step on the loss ½‖w − target‖², its gradient
//                     computed where the checkpoint is loaded, saved if no other step came first
//                     (else again from the newer one: `optimisticStep`); 200 { step, attempts,
//                     duplicate } (an id sent again: the step that applied it, duplicate true)
//
// Deploy with wrangler.toml beside this file (tests/node/wrangler_example.test.mjs builds it so,
// and serves it with `wrangler dev`). Proven in workerd (the Workers runtime) by
// tests/node/workerd_store.test.mjs, with the store checked by the library's conformance kit.
// wrangler bundles the package's workerd entries, which hand the library its WebAssembly kernel
// compiled (Workers compile none at run time): `radam()` runs on wasm with no set-up.
import { radam } from "@optim/radam";
import { ContributionRefusedError, dataParallel, optimisticStep } from "@optim/radam/store";
import { durableObjectStore } from "./client.js";

export { TrainingStoreObject } from "./store_object.js";

/** The model: its tensors' sizes, and the parameters of step 0. */
export const TENSORS = { w: 8 };
export const initialParams = () => ({ w: new Float32Array(TENSORS.w).fill(0.5) });
/** The optimizer: a schedule-free constant lr, so that a checkpoint resumes it as it was. */
export const optimizer = () => radam({ lr: 0.05 });

/** The store of model `name` (one Durable Object per model). */
export function storeOf(env, name = "model") {
  const stub = env.TRAINING_STORE.get(env.TRAINING_STORE.idFromName(name));
  return durableObjectStore(stub, `Durable Object ${name}`);
}

/**
 * A trainer for one request, closed when it is answered. Not one per isolate: a Durable Object
 * stub, and any I/O, belongs to the request that made it (workerd refuses "I/O on behalf of a
 * different request"), so a trainer shared by requests would fold for one in another's context.
 * Each request is thus a process of its own to `dataParallel`: it folds when it takes the
 * lease, else stores its contribution for the holder's next fold (`handoffLimit` 1).
 */
async function withTrainer(env, use) {
  const trainer = dataParallel(storeOf(env), {
    optimizer: optimizer(),
    init: initialParams,
    tensors: TENSORS,
    pollMs: 10,
  });
  try {
    return await use(trainer);
  } finally {
    await trainer.close();
  }
}

/** The model a GET names (`?model=`; default "model"). */
const modelOf = (request) => new URL(request.url).searchParams.get("model") ?? "model";

/** The contribution a POST /step sends, as the trainer takes it. */
async function contributionOf(request) {
  const { id, base, samples, gradient } = await request.json();
  const tensors = Object.fromEntries(
    Object.entries(gradient ?? {}).map(([name, values]) => [name, Float32Array.from(values)]),
  );
  return { id, base, samples, gradient: tensors };
}

const routes = {
  "GET /params": async (_, env) => {
    const { step, params } = await withTrainer(env, (trainer) => trainer.params());
    return Response.json({ step, params: { w: [...params.w] } });
  },
  "POST /step": async (request, env) => {
    const contribution = await contributionOf(request);
    const result = await withTrainer(env, (trainer) => trainer.submit(contribution));
    return Response.json(result, { status: result.status === "pending" ? 202 : 200 });
  },
  "POST /optimistic": async (request, env) => {
    const { id, target } = await request.json();
    const result = await optimisticStep(storeOf(env, "optimistic"), {
      optimizer: optimizer(),
      init: initialParams,
      tensors: TENSORS,
      id,
      gradient: (state) => state.grads.w.set(state.params.w.map((w, i) => w - target[i])),
    });
    const { step, duplicate } = result;
    return Response.json({ step, duplicate, attempts: result.attempts ?? 0 });
  },
  "GET /journal": async (request, env) =>
    Response.json(await storeOf(env, modelOf(request)).journal(0, Infinity)),
  "GET /checkpoint": async (request, env) => {
    const stored = await storeOf(env, modelOf(request)).load();
    return stored ? new Response(stored.bytes) : new Response(null, { status: 404 });
  },
};

export default {
  async fetch(request, env) {
    const route = routes[`${request.method} ${new URL(request.url).pathname}`];
    if (route === undefined) return new Response(null, { status: 404 });
    try {
      return await route(request, env);
    } catch (e) {
      const status = e instanceof ContributionRefusedError
        ? 409
        : e instanceof TypeError || e instanceof RangeError || e instanceof SyntaxError
        ? 400
        : 500;
      return Response.json({ error: `${e.name}: ${e.message}` }, { status });
    }
  },
};
