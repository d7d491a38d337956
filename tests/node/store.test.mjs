// The runtime-agnostic store of the built npm package (`@optim/radam/store`) under Node:
// optimistic and data-parallel steps on the in-process store, as a serverless function on Node
// would run them.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { test } from "node:test";
import { loadState, radam, readParams, step } from "@optim/radam";
import {
  CheckpointConflictError,
  dataParallel,
  memoryCheckpointStore,
  optimisticStep,
  StoreConformanceError,
  verifyCheckpointStore,
  verifyTrainingStore,
} from "@optim/radam/store";

test("the store entry point resolves, with types, and needs no Deno globals", () => {
  const pkgUrl = import.meta.resolve("@optim/radam/package.json");
  const pkg = JSON.parse(readFileSync(new URL(pkgUrl), "utf8"));
  assert.ok(pkg.exports["./store"].types.endsWith("store.d.ts"));
  const code = readFileSync(
    fileURLToPath(import.meta.resolve("@optim/radam/store")),
    "utf8",
  );
  assert.doesNotMatch(code, /\bDeno\./);
  assert.equal(typeof CheckpointConflictError, "function");
});

test("optimistic steps on the in-process store: concurrent updates, none lost", async () => {
  const store = memoryCheckpointStore({ latencyMs: 1 });
  const optimizer = radam({ lr: 0.1, backend: "js" });
  const results = await Promise.all(
    Array.from({ length: 8 }, (_, i) =>
      optimisticStep(store, {
        optimizer,
        init: () => ({ w: new Float32Array(4) }),
        gradient: (state) => {
          for (let j = 0; j < 4; j++) {
            state.grads.w[j] = state.params.w[j] - (i + j);
          }
          return i;
        },
        meta: (previous) => JSON.stringify([...JSON.parse(previous ?? "[]"), i]),
      })),
  );
  assert.deepEqual(results.map((r) => r.step).sort((a, b) => a - b), [
    1,
    2,
    3,
    4,
    5,
    6,
    7,
    8,
  ]);
  const stored = await store.load();
  const state = await loadState(stored.bytes);
  assert.equal(state.step, 8);
  // Replayed in the order the metadata records, in one process: the same parameters.
  let replay = await optimizer.init({ w: new Float32Array(4) });
  for (const i of JSON.parse(stored.meta)) {
    for (let j = 0; j < 4; j++) {
      replay.grads.w[j] = replay.params.w[j] - (i + j);
    }
    replay = step(replay);
  }
  assert.deepEqual(await readParams(state), await readParams(replay));
});

test("data-parallel steps on the in-process store: concurrent contributions folded, each once", async () => {
  const store = memoryCheckpointStore({ latencyMs: 1 });
  const trainer = dataParallel(store, {
    optimizer: radam({ lr: 0.1, backend: "js" }),
    init: () => ({ w: new Float32Array(4) }),
  });
  const answers = await Promise.all(Array.from({ length: 12 }, async (_, i) => {
    const { step, params } = await trainer.params();
    const gradient = { w: params.w.map((w, j) => w - (i + j)) };
    return await trainer.submit({ id: `r${i}`, base: step, gradient });
  }));
  assert.ok(answers.every((a) => a.status === "applied" && !a.duplicate));
  const journal = await store.journal(0, 100);
  const ids = journal.flatMap((r) => r.entries.map((e) => e.id)).sort();
  assert.deepEqual(ids, Array.from({ length: 12 }, (_, i) => `r${i}`).sort());
  assert.ok(journal.length < 12, "some steps folded several contributions");
  const again = await trainer.submit({
    id: "r3",
    base: 0,
    gradient: { w: new Float32Array(4) },
  });
  assert.equal(again.duplicate, true);
  await trainer.close();
});

test("the conformance kit passes the in-process store, what expires included, and names a broken clause", async () => {
  // Expiry on a clock the test moves: the wall and monotonic clocks the store reads.
  let offset = 0;
  const realNow = Date.now;
  const realPerformanceNow = performance.now.bind(performance);
  Date.now = () => realNow() + offset;
  Object.defineProperty(performance, "now", {
    value: () => realPerformanceNow() + offset,
    configurable: true,
  });
  let report;
  try {
    report = await verifyTrainingStore(() => memoryCheckpointStore({ rememberMs: 60_000 }), {
      advance: (ms) => void (offset += ms),
      rememberMs: 60_000,
    });
  } finally {
    Date.now = realNow;
    Object.defineProperty(performance, "now", { value: realPerformanceNow, configurable: true });
  }
  assert.deepEqual(report.skipped.map((s) => s.clause), ["store.maxFold"]);
  for (const clause of ["save.race", "submit.race", "commit.race", "pending.order"]) {
    assert.ok(report.passed.includes(clause), clause);
  }
  const lastWriterWins = () => {
    const store = memoryCheckpointStore();
    return {
      ...store,
      save: async (bytes, _expected, meta) =>
        await store.save(bytes, (await store.load())?.version ?? null, meta),
    };
  };
  const error = await verifyCheckpointStore(lastWriterWins).catch((e) => e);
  assert.ok(error instanceof StoreConformanceError);
  assert.deepEqual(error.failures.map((f) => f.clause), ["save.stale"]);
  assert.match(error.message, /save\.stale/);
});
