// The example of examples/cloudflare in workerd (the Workers runtime, from npm): a Durable
// Object as the training store of the built npm package, and a Worker that trains with
// `dataParallel` on it. workerd_store_app/worker.mjs (the example's Worker and object, and a
// route that runs the conformance kit) bundled by esbuild as wrangler does, then served by
// `workerd serve` with its Durable Objects in memory, twice: two services, two isolates,
// sharing one object (each request a trainer of its own). Checked: verifyCheckpointStore and
// verifyTrainingStore pass against the object, KV-backed and SQLite-backed, with every clause
// run (the kit moves the objects' clocks); concurrent clients posting gradients to both
// services are each answered, each id applied at most once (by the step its answer names), and
// the checkpoint equals the journal's replay in Node, bit for bit; concurrent optimistic steps
// are each applied once, and the checkpoint equals them run in order in Node; a checkpoint of
// 20 MiB goes in chunks and back whole.
import assert from "node:assert/strict";
import { copyFileSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { after, before, test } from "node:test";
import { build } from "esbuild";
import { radam, saveState, step } from "@optim/radam";
import { prng } from "./shared_case.mjs";
import {
  compiledWasm,
  freePort,
  serveWorkerd,
  stopChild,
  WRANGLER_RESOLVE,
} from "./workerd_serve.mjs";

const dir = mkdtempSync(join(tmpdir(), "radam-workerd-store-"));
let workerd;
const origins = [];

/** The app bundled as wrangler bundles a Worker: `.wasm` kept a module, cloudflare:* external. */
async function bundle() {
  copyFileSync(
    fileURLToPath(import.meta.resolve("@optim/radam/radam.wasm")),
    join(dir, "radam.wasm"),
  );
  await build({
    entryPoints: [
      fileURLToPath(new URL("./workerd_store_app/worker.mjs", import.meta.url)),
    ],
    outfile: join(dir, "worker.js"),
    bundle: true,
    format: "esm",
    ...WRANGLER_RESOLVE, // the package's workerd entries, which hand it its radam.wasm
    target: "es2022",
    // The example lives outside tests/node: resolve the package from tests/node's node_modules.
    nodePaths: [fileURLToPath(new URL("./node_modules", import.meta.url))],
    preserveSymlinks: true,
    external: ["cloudflare:*"],
    logLevel: "warning",
    plugins: [compiledWasm],
  });
}

/**
 * workerd's config: service "main" holds the objects (in memory), service "second" (another
 * isolate) binds the example's namespace of "main".
 */
function config(ports) {
  const modules = `modules = [
    (name = "worker.js", esModule = embed "worker.js"),
    (name = "radam.wasm", wasm = embed "radam.wasm"),
  ],
  compatibilityDate = "2025-06-01",`;
  return `using Workerd = import "/workerd/workerd.capnp";
const config :Workerd.Config = (
  services = [
    (name = "main", worker = (
      ${modules}
      durableObjectNamespaces = [
        (className = "TrainingStoreObject", uniqueKey = "radam-training", enableSql = true),
        (className = "ClockedStoreObject", uniqueKey = "radam-clocked-kv"),
        (className = "ClockedSqlStoreObject", uniqueKey = "radam-clocked-sql", enableSql = true),
      ],
      durableObjectStorage = (inMemory = void),
      bindings = [
        (name = "TRAINING_STORE", durableObjectNamespace = "TrainingStoreObject"),
        (name = "CLOCKED", durableObjectNamespace = "ClockedStoreObject"),
        (name = "CLOCKED_SQL", durableObjectNamespace = "ClockedSqlStoreObject"),
      ],
    )),
    (name = "second", worker = (
      ${modules}
      bindings = [
        (name = "TRAINING_STORE",
         durableObjectNamespace = (className = "TrainingStoreObject", serviceName = "main")),
      ],
    )),
  ],
  sockets = [
    (name = "main", address = "127.0.0.1:${ports[0]}", http = (), service = "main"),
    (name = "second", address = "127.0.0.1:${ports[1]}", http = (), service = "second"),
  ],
);
`;
}

before(async () => {
  await bundle();
  const ports = [await freePort(), await freePort()];
  origins.push(...ports.map((port) => `http://127.0.0.1:${port}`));
  ({ child: workerd } = await serveWorkerd(dir, config(ports), origins));
});

after(async () => {
  await stopChild(workerd);
  rmSync(dir, { recursive: true, force: true });
});

/** What the Worker of `origin` answers at `path`, parsed (status 200). */
async function get(path, origin = origins[0]) {
  const response = await fetch(`${origin}${path}`);
  const body = await response.json();
  assert.equal(response.status, 200, JSON.stringify(body));
  return body;
}

for (const backing of ["kv", "sql"]) {
  test(`workerd: the example's Durable Object (${backing === "kv" ? "KV" : "SQLite"}-backed) passes the conformance kit, every clause`, async () => {
    for (const kind of ["checkpoint", "training"]) {
      const report = await get(`/verify?kind=${kind}&backing=${backing}`);
      assert.equal(report.error, undefined, report.error);
      assert.deepEqual(report.skipped, [], `${kind}: nothing skipped`);
      const want = kind === "checkpoint" ? ["save.race", "load.whole"] : [
        "commit.race",
        "submit.race",
        "lease.expiry",
        "request.expiry",
        "store.maxFold",
      ];
      for (const clause of want) {
        assert.ok(report.passed.includes(clause), `${kind}: ${clause}`);
      }
    }
  });
}

const CLIENTS = 6, ROUNDS = 4;

/** The gradient client `c` sends in round `r` at parameters `w`: of ½‖w − target‖². */
function gradientOf(c, r, w) {
  const rand = prng(1000 * c + r + 1);
  return w.map((x) => Math.fround(x - (rand() * 2 - 1)));
}

test("workerd: concurrent clients on two isolates train through one Durable Object; each id applied once, the checkpoint the journal's replay", async () => {
  const sent = new Map(), answers = [];
  await Promise.all(Array.from({ length: CLIENTS }, async (_, c) => {
    const origin = origins[c % 2];
    for (let r = 0; r < ROUNDS; r++) {
      const { step: base, params } = await get("/params", origin);
      const id = `c${c}r${r}`, gradient = gradientOf(c, r, params.w);
      sent.set(id, gradient);
      const body = JSON.stringify({ id, base, gradient: { w: gradient } });
      const response = await fetch(`${origin}/step`, { method: "POST", body });
      answers.push({
        id,
        status: response.status,
        body: await response.json(),
      });
    }
  }));
  // Every request answered: applied (200), or refused as stale (409, never applied).
  for (const a of answers) {
    assert.ok(a.status === 200 || a.status === 409, JSON.stringify(a));
    if (a.status === 200) assert.equal(a.body.duplicate, false, a.id);
  }
  assert.ok(
    answers.filter((a) => a.status === 409).length <= answers.length / 4,
    "few refused",
  );

  const journal = await get("/journal");
  const where = new Map();
  for (const record of journal) {
    for (const e of record.entries) {
      assert.ok(!where.has(e.id), `${e.id} applied once`);
      where.set(e.id, record.step);
    }
  }
  for (const a of answers) {
    assert.equal(
      where.get(a.id),
      a.status === 200 ? a.body.step : undefined,
      a.id,
    );
  }
  assert.ok(
    journal.some((r) => r.entries.length > 1),
    "some step folded several contributions",
  );

  // An id sent again (to the other isolate): answered with the step that applied it, not again.
  const first = answers.find((a) => a.status === 200);
  const again = await fetch(`${origins[1]}/step`, {
    method: "POST",
    body: JSON.stringify({
      id: first.id,
      base: 0,
      gradient: { w: sent.get(first.id) },
    }),
  });
  assert.deepEqual(await again.json(), { ...first.body, duplicate: true });
  assert.equal(
    (await get("/journal")).length,
    journal.length,
    "nothing more applied",
  );

  // The journal replayed in Node, on js: each step the mean of its gradients (float64 sums over
  // samples, in the journal's order), one RAdam step each; the checkpoint, bit for bit.
  let state = await radam({ lr: 0.05, backend: "js" }).init({
    w: new Float32Array(8).fill(0.5),
  });
  for (const record of journal) {
    const sum = new Float64Array(8);
    let samples = 0;
    for (const e of record.entries) {
      sent.get(e.id).forEach((g, j) => sum[j] += e.samples * g);
      samples += e.samples;
    }
    state.grads.w.set(sum.map((s) => s / samples));
    state = step(state);
    assert.equal(state.step, record.step);
  }
  const checkpoint = new Uint8Array(
    await (await fetch(`${origins[0]}/checkpoint`)).arrayBuffer(),
  );
  assert.deepEqual(checkpoint, await saveState(state));
});

test("workerd: concurrent optimistic steps on two isolates through one Durable Object: each applied once, to the state it was computed on", async () => {
  const targets = new Map(), answers = [];
  await Promise.all(Array.from({ length: CLIENTS }, async (_, c) => {
    for (let r = 0; r < 3; r++) {
      const id = `o${c}r${r}`, rand = prng(500 + 10 * c + r);
      const target = Array.from({ length: 8 }, () => rand() * 2 - 1);
      targets.set(id, target);
      const response = await fetch(`${origins[c % 2]}/optimistic`, {
        method: "POST",
        body: JSON.stringify({ id, target }),
      });
      answers.push({ id, status: response.status, body: await response.json() });
    }
  }));
  for (const a of answers) assert.equal(a.status, 200, JSON.stringify(a));
  // Steps 1, 2, …: one each, none lost, none twice; some had to start again from a newer one.
  const order = [...answers].sort((a, b) => a.body.step - b.body.step);
  assert.deepEqual(order.map((a) => a.body.step), order.map((_, i) => i + 1));
  assert.ok(answers.some((a) => a.body.attempts > 1), "some steps conflicted and retried");
  const again = await fetch(`${origins[1]}/optimistic`, {
    method: "POST",
    body: JSON.stringify({ id: order[0].id, target: targets.get(order[0].id) }),
  });
  assert.deepEqual(await again.json(), { step: 1, duplicate: true, attempts: 0 });

  // The same steps in their order, one after another in Node, on js: the checkpoint, bit for bit.
  let state = await radam({ lr: 0.05, backend: "js" }).init({
    w: new Float32Array(8).fill(0.5),
  });
  for (const a of order) {
    const target = targets.get(a.id);
    state.grads.w.set(state.params.w.map((w, i) => w - target[i]));
    state = step(state);
  }
  const response = await fetch(`${origins[0]}/checkpoint?model=optimistic`);
  assert.deepEqual(new Uint8Array(await response.arrayBuffer()), await saveState(state));
});

test("workerd: a checkpoint of 20 MiB is written in chunks of DO storage values, loads back whole, and a smaller one leaves no chunk behind", async () => {
  const { first, second } = await get("/large?mb=20");
  // 126 KiB a chunk (under the 128 KiB of KV-backed storage): more than one get of 128 keys.
  assert.deepEqual(first, { same: true, chunks: Math.ceil(20 * 1024 / 126) });
  assert.deepEqual(second, {
    same: true,
    chunks: Math.ceil(300_000 / (126 * 1024)),
  });
});
