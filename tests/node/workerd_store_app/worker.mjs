// The example of examples/cloudflare (its Worker and its Durable Object), plus what its test
// needs: GET /verify?kind=checkpoint|training&backing=kv|sql runs the library's conformance kit
// against fresh Durable Objects of the example's class, inside workerd, on a clock the kit moves;
// GET /large?mb=N saves and loads a checkpoint of N MiB, then a smaller one, in a new object.
// Bundled by esbuild and run in workerd by ../workerd_store.test.mjs.
import example from "../../../examples/cloudflare/worker.js";
import { TrainingStoreObject } from "../../../examples/cloudflare/store_object.js";
import { durableObjectStore } from "../../../examples/cloudflare/client.js";
import { verifyCheckpointStore, verifyTrainingStore } from "@optim/radam/store";

export { TrainingStoreObject };

// The real clocks, read before any request moves the globals.
const realNow = Date.now.bind(Date),
  realMono = performance.now.bind(performance);
const REMEMBER_MS = 60_000;

/** The example's object on a clock moved by `advanceClock` (an RPC method), ids kept a minute. */
export class ClockedStoreObject extends TrainingStoreObject {
  constructor(ctx, env) {
    super(ctx, env);
    this.offset = 0;
    this.rememberMs = REMEMBER_MS;
  }
  wallNow() {
    return realNow() + this.offset;
  }
  monoNow() {
    return realMono() + this.offset;
  }
  advanceClock(ms) {
    this.offset += ms;
  }
  /** How many keys the object holds under `prefix`. */
  async keys(prefix) {
    return (await this.ctx.storage.list({ prefix })).size;
  }
}

/** Bytes of `length` that differ with `seed`. */
const bytesOf = (length, seed) => Uint8Array.from({ length }, (_, i) => (i * 7 + seed) % 251);

/**
 * A checkpoint of `mb` MiB saved, loaded and replaced by a smaller one, in a new KV-backed
 * object: whether each loads back whole, and the chunks stored after each.
 */
async function large(namespace, mb) {
  const stub = namespace.get(namespace.newUniqueId());
  const store = durableObjectStore(stub, "large");
  const big = bytesOf(mb * 1048576, 1), small = bytesOf(300_000, 2);
  const same = (a, b) => a.length === b.length && a.every((x, i) => x === b[i]);
  const v1 = await store.save(big, null, "big");
  const first = {
    same: same((await store.load()).bytes, big),
    chunks: await stub.keys("ckpt:"),
  };
  await store.save(small, v1);
  const second = {
    same: same((await store.load()).bytes, small),
    chunks: await stub.keys("ckpt:"),
  };
  return { first, second };
}

/**
 * The kit's verification `kind` against new objects of `namespace`, each store a new object
 * id; `advance` moves this isolate's clocks (the kit reads Date.now) and every object's.
 */
async function verify(namespace, kind) {
  let offset = 0, n = 0;
  const made = [];
  const make = async () => {
    const stub = namespace.get(namespace.newUniqueId());
    await stub.advanceClock(offset);
    made.push(stub);
    return durableObjectStore(stub, `Durable Object ${++n}`);
  };
  const advance = async (ms) => {
    offset += ms;
    await Promise.all(made.map((stub) => stub.advanceClock(ms)));
  };
  const [dateNow, performanceNow] = [Date.now, performance.now];
  Date.now = () => realNow() + offset;
  performance.now = () => realMono() + offset;
  try {
    const run = kind === "checkpoint" ? verifyCheckpointStore : verifyTrainingStore;
    const r = await run(make, { advance, rememberMs: REMEMBER_MS });
    console.log(kind, r.passed.length, JSON.stringify(r.skipped));
    return r;
  } catch (e) {
    return { error: `${e.name}: ${e.message}` };
  } finally {
    Date.now = dateNow;
    performance.now = performanceNow;
  }
}

export default {
  async fetch(request, env, ctx) {
    const url = new URL(request.url);
    if (url.pathname === "/large") {
      return Response.json(
        await large(env.CLOCKED, Number(url.searchParams.get("mb"))),
      );
    }
    if (url.pathname !== "/verify") {
      return await example.fetch(request, env, ctx);
    }
    const namespace = url.searchParams.get("backing") === "sql" ? env.CLOCKED_SQL : env.CLOCKED;
    return Response.json(await verify(namespace, url.searchParams.get("kind")));
  },
};

/** The same, SQLite-backed (its own class: workerd binds a namespace by class). */
export class ClockedSqlStoreObject extends ClockedStoreObject {}
