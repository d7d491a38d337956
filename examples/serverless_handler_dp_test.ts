/**
 * The serverless example in its data-parallel mode (`--data-parallel`), in process and as
 * separate processes started as a user would, talked to over 127.0.0.1 only: folds equal the
 * journal's replay bit for bit, three processes share one Deno KV file, and processes killed
 * (SIGKILL) under load at random moments lose no acknowledged contribution and apply none
 * twice. Small models, so that CI stays quick; `bench/serverless_cost.ts` runs the large ones.
 */
import assert from "node:assert/strict";
import { saveState } from "../mod.ts";
import { type JournalRecord, kvCheckpointStore, memoryCheckpointStore } from "../kv.ts";
import { makeHandler, makeTrainer } from "./serverless_handler.ts";
import {
  type Answer,
  batches,
  ExampleServer,
  loadRetrying,
  post,
  replayJournal,
} from "./serverless_handler_harness.ts";
import { seededRandom } from "./demo/random.ts";

const FEATURES = 12;
const KV_PREFIX = ["radam", "serverless", "model"];

/**
 * Checks the guarantees of `answers` against the journal and the checkpoint: every
 * answer 200, or 409 for a contribution refused as stale and then absent from the journal (at
 * most one answer in 4: how many fall more than the staleness bound behind depends on the
 * machine's load, not on the store's correctness, so the bound only catches a store that refuses
 * wholesale; a full test run on a busy 2-core machine refused 16 of 240),
 * each id applied at most once and, when
 * acknowledged, by the step its answer names, and the checkpoint is the journal's replay, bit
 * for bit. The journal.
 */
async function checkApplied(
  answers: Answer[],
  journal: JournalRecord[],
  checkpoint: Uint8Array,
  note = "",
): Promise<void> {
  const where = new Map<string, number>();
  for (const record of journal) {
    for (const e of record.entries) {
      assert.ok(!where.has(e.id), `${e.id} applied once ${note}`);
      where.set(e.id, record.step);
    }
  }
  const byId = new Map(answers.map((a) => [a.batch.id, a.batch]));
  for (const id of where.keys()) assert.ok(byId.has(id), `${id} was sent ${note}`);
  let refused = 0;
  for (const a of answers) {
    if (a.status === 409 && /never applied/.test(a.body?.error ?? "")) {
      // Refused as stale (e.g. computed on a process that had just restarted): not applied.
      assert.ok(!where.has(a.batch.id), `${a.batch.id} refused, so not in the journal ${note}`);
      refused++;
      continue;
    }
    assert.equal(a.status, 200, `${a.batch.id}: ${a.status} ${a.body?.error} ${note}`);
    assert.equal(where.get(a.batch.id), a.body!.step, `${a.batch.id} is in its step ${note}`);
  }
  assert.ok(refused * 4 <= answers.length, `${refused} of ${answers.length} refused ${note}`);
  const state = await replayJournal(journal, byId, FEATURES);
  assert.deepEqual(checkpoint, await saveState(state), `the journal's replay, bit for bit ${note}`);
}

/** The journal and the checkpoint a KV file holds. */
async function stored(file: string): Promise<{ journal: JournalRecord[]; bytes: Uint8Array }> {
  const kv = await Deno.openKv(file);
  try {
    const store = kvCheckpointStore(kv, KV_PREFIX);
    const journal = await store.journal(0, 100_000);
    return { journal, bytes: (await store.load())!.bytes };
  } finally {
    kv.close();
  }
}

Deno.test("data-parallel handler over loopback: folded steps equal the journal's replay, duplicates answered", async () => {
  const store = memoryCheckpointStore({ latencyMs: 1 });
  const { trainer, setFeatures } = makeTrainer(store);
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen: () => {} },
    makeHandler(store, { trainer }, setFeatures),
  );
  const base = `http://127.0.0.1:${server.addr.port}`;
  try {
    const data = batches(160, FEATURES, "d");
    const answers = await loadRetrying(() => base, data, 16);
    const journal: JournalRecord[] = await (await fetch(`${base}/journal`)).json();
    await checkApplied(answers, journal, (await store.load())!.bytes);
    assert.ok(journal.length < 160 && journal.some((r) => r.entries.length > 1), "k > 1");
    assert.ok(answers.every((a) => a.body!.step > a.body!.base!), "applied after its base");
    // Sent again: the step that applied it, and nothing applied now.
    const again = await (await post(base, data[7])).json();
    const first = answers.find((a) => a.batch.id === data[7].id)!.body!;
    assert.deepEqual([again.step, again.duplicate], [first.step, true]);
    // and only that: not a loss and base of this request's gradient, which that step never took
    assert.deepEqual(again, { step: first.step, id: data[7].id, duplicate: true });
    const refused = [
      JSON.stringify({ x: [[1, 2, 3]], y: [1] }), // 3 features, the model has 12
      JSON.stringify({ x: [Array(FEATURES).fill(1e300)], y: [1e300] }), // non-finite
      JSON.stringify({ x: [[1e-30, ...Array(FEATURES - 1).fill(0)]], y: [1e39] }), // b's past float32
    ];
    for (const body of refused) {
      const bad = await fetch(`${base}/step`, { method: "POST", body });
      assert.equal(bad.status, 400, body);
      await bad.body?.cancel();
    }
    assert.equal((await store.journal(0, 1000)).length, journal.length, "nothing more applied");
  } finally {
    await server.shutdown();
    await trainer.close();
  }
});

/** Starts `n` example processes on one KV file in the data-parallel mode. */
async function startAll(n: number, args: string[]): Promise<ExampleServer[]> {
  return await Promise.all(Array.from({ length: n }, () => ExampleServer.start(args)));
}

Deno.test("three data-parallel processes on one Deno KV file, 16 clients each: every id applied once", async () => {
  const dir = await Deno.makeTempDir({ prefix: "radam_kv_" });
  const file = `${dir}/train.sqlite3`;
  // Chunks of 256 bytes: checkpoints and stored contributions are written in chunks.
  const args = ["--data-parallel", "--kv", file, "--chunk-bytes", "256"];
  const servers = await startAll(3, args);
  try {
    const data = batches(240, FEATURES, "m");
    const answers = await loadRetrying((c) => servers[c % 3].base, data, 48, { tries: 1 });
    for (const server of servers) await server.stop();
    servers.length = 0;
    const { journal, bytes } = await stored(file);
    await checkApplied(answers, journal, bytes);
    assert.ok(journal.some((r) => r.entries.length > 1), "k > 1");
  } finally {
    for (const server of servers) await server.stop();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("data-parallel processes killed under load: no acknowledged contribution lost or applied twice", async () => {
  const seed = Date.now() % 1_000_000;
  const rand = seededRandom(seed);
  const note = `(seed ${seed})`;
  const dir = await Deno.makeTempDir({ prefix: "radam_kv_" });
  const file = `${dir}/train.sqlite3`;
  const args = [
    "--data-parallel",
    ...["--kv", file, "--chunk-bytes", "256", "--stale-after-ms", "1500", "--lease-ms", "1000"],
  ];
  const servers = await startAll(3, args);
  try {
    const data = batches(420, FEATURES, "k");
    let oks = 0;
    let kills = 0;
    // One kill at a time: each waits for the last restart.
    let killing: Promise<void> = Promise.resolve();
    const killAt = Array.from({ length: 5 }, (_, i) => 30 + i * 60 + Math.floor(rand() * 50));
    const answers = await loadRetrying((c) => servers[c % 3].base, data, 48, {
      onAnswer: (a) => {
        if (a.status !== 200 || !killAt.includes(++oks)) return;
        kills++;
        // A random process, at a random moment after this answer; restarted on the same file.
        const victim = Math.floor(rand() * 3);
        const delay = rand() * 30;
        killing = killing.then(async () => {
          await new Promise((r) => setTimeout(r, delay));
          servers[victim].child.kill("SIGKILL");
          const status = await servers[victim].stopped();
          assert.equal(status.signal, "SIGKILL", note);
          servers[victim] = await ExampleServer.start(args);
        });
      },
    });
    await killing;
    assert.equal(kills, 5, note);
    assert.ok(answers.some((a) => a.sent! > 1), `some requests met a killed process ${note}`);
    const { journal, bytes } = await stored(file);
    // Each id answered 200 (sent again, with the same id, after its process died).
    await checkApplied(answers, journal, bytes, note);
    // Training goes on, on every process.
    const more = batches(30, FEATURES, "z", 7);
    const after = await loadRetrying((c) => servers[c % 3].base, more, 6, { tries: 1 });
    for (const server of servers) await server.stop();
    servers.length = 0;
    const end = await stored(file);
    await checkApplied([...answers, ...after], end.journal, end.bytes, note);
  } finally {
    for (const server of servers) await server.stop();
    await Deno.remove(dir, { recursive: true });
  }
});
