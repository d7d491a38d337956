/**
 * The serverless example, in process and as a separate process started as a user would
 * (`deno run --unstable-kv --allow-net=127.0.0.1 --allow-read --allow-write
 * examples/serverless_handler.ts --port 0 [--kv FILE]`), talked to over 127.0.0.1 only: under
 * load, with the in-process and the Deno KV store, and killed (SIGKILL) under load.
 */
import assert from "node:assert/strict";
import { readParams, saveState } from "../mod.ts";
import { formatKvKey, kvCheckpointStore, memoryCheckpointStore } from "../kv.ts";
import { type Batch, journalOf, makeHandler } from "./serverless_handler.ts";
import {
  type Answer,
  batches,
  ExampleServer,
  load,
  post,
  replay,
} from "./serverless_handler_harness.ts";
import { seededRandom } from "./demo/random.ts";

const FEATURES = 12;
const KV_PREFIX = ["radam", "serverless", "model"];

Deno.test("serverless handler over loopback: checkpointed steps equal one process's steps", async () => {
  const data = batches(150, 4);
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen: () => {} },
    makeHandler(memoryCheckpointStore()),
  );
  const base = `http://127.0.0.1:${server.addr.port}`;
  try {
    const missing = await fetch(`${base}/params`);
    assert.equal(missing.status, 404);
    await missing.body?.cancel();
    const losses: number[] = [];
    for (const [i, batch] of data.entries()) {
      const res = await post(base, batch);
      assert.equal(res.status, 200);
      const answer = await res.json();
      assert.equal(answer.step, i + 1);
      assert.equal(answer.id, batch.id);
      losses.push(answer.loss);
    }
    // Not a batch (not JSON, or failing its check): `{ error }`, no id to send again. A batch
    // refused once read: `{ error, id }`, the id made up where it had none.
    const notBatches = 4;
    const refused = [
      "not JSON",
      '{"x": 1}',
      JSON.stringify({ x: [[1, 2, 3, 4]], y: ["1"] }),
      JSON.stringify({ x: [[1, 2, 3, 4]], y: [1], id: "no spaces" }),
      JSON.stringify({ x: [[1, 2, 3]], y: [1], id: "refused" }), // 3 features, the model has 4
      JSON.stringify({ x: [[1e300, 0, 0, 0]], y: [1e300] }), // a non-finite gradient
      JSON.stringify({ x: [[1e-30, 0, 0, 0]], y: [1e39] }), // the bias's past float32, the weights' not
      JSON.stringify({ x: [[1, 0, 0, 0]], y: [1e21] }), // exp_avg_sq past float32: no checkpoint holds it
    ];
    for (const [i, body] of refused.entries()) {
      const bad = await fetch(`${base}/step`, { method: "POST", body });
      assert.equal(bad.status, 400, body);
      const keys = Object.keys(await bad.json()).sort();
      assert.deepEqual(keys, i < notBatches ? ["error"] : ["error", "id"], body);
    }
    const served = await (await fetch(`${base}/params`)).json();

    // The same steps in one process, state kept in memory throughout.
    const state = await replay(data, 4);
    const local = await readParams(state);
    assert.equal(served.step, data.length, "the refused batches were not applied");
    assert.deepEqual(served.params.w, Array.from(local.w), "bit-identical weights");
    assert.deepEqual(served.params.b, Array.from(local.b));
    assert.deepEqual(served.requests, data.map((b) => b.id));
    const mean = (xs: number[]) => xs.reduce((s, v) => s + v, 0) / xs.length;
    const [early, late] = [mean(losses.slice(0, 10)), mean(losses.slice(-10))];
    assert.ok(late < 0.2 * early, `loss ${early} -> ${late}`);
  } finally {
    await server.shutdown();
  }
});

/** Checks the load properties of `answers`; returns the batches in step order. */
function checkAnswers(answers: Answer[], firstStep = 1): Required<Batch>[] {
  const ok = answers.filter((a) => a.status === 200);
  for (const a of answers) {
    assert.ok(a.status === 200 || a.status === 409, `answer ${a.status}: ${a.body?.error}`);
  }
  const steps = ok.map((a) => a.body!.step).sort((x, y) => x - y);
  assert.deepEqual(
    steps,
    Array.from({ length: ok.length }, (_, i) => firstStep + i),
    "the 200 answers' steps are distinct and leave no gap",
  );
  return [...ok].sort((x, y) => x.body!.step - y.body!.step).map((a) => a.batch);
}

/** The load test, on `processes` example processes started with `args` (requests alternate). */
async function loadTest(
  args: string[],
  processes = 1,
  concurrency = 32,
  all = false,
): Promise<void> {
  const servers: ExampleServer[] = [];
  try {
    for (let i = 0; i < processes; i++) servers.push(await ExampleServer.start(args));
    const data = batches(200, FEATURES);
    const answers = (await Promise.all(servers.map((server, i) =>
      load(
        server.base,
        data.filter((_, j) => j % processes === i),
        concurrency / processes,
      )
    ))).flat();
    assert.equal(answers.length, 200);
    assert.ok(answers.every((a) => a.status !== undefined), "every request is answered");
    const ordered = checkAnswers(answers);
    const ok = ordered.length;
    // Under this load most requests succeed; the rest were refused whole (409), not lost.
    assert.ok(ok >= (all ? 200 : 150), `${ok} of 200 answered 200`);
    assert.ok(
      answers.some((a) => a.status === 200 && a.body!.attempts! > 1),
      "some requests met a conflict and were retried",
    );
    for (const server of servers) {
      const served = await (await fetch(`${server.base}/params`)).json();
      assert.equal(served.step, ok, "the final step is the number of 200 answers");
      const local = await readParams(await replay(ordered, FEATURES));
      assert.deepEqual(served.params.w, Array.from(local.w), "the sequential replay, bit for bit");
      assert.deepEqual(served.params.b, Array.from(local.b));
      assert.deepEqual(served.requests, ordered.map((b) => b.id));
    }
  } finally {
    for (const server of servers) await server.stop();
  }
}

Deno.test("example process under load, in-process store: 200 requests 32 at a time, no update lost", async () => {
  // Answers 1 ms later, as a database would: requests interleave between load and save. The
  // attempts do not take turns, so that they conflict as those of separate processes do.
  await loadTest(["--latency-ms", "1", "--no-serialize"]);
});

Deno.test("example process under load, Deno KV store: 200 requests 32 at a time, no update lost", async () => {
  const dir = await Deno.makeTempDir({ prefix: "radam_kv_" });
  try {
    // The default chunk size: this checkpoint (about 1 KB) goes in the head record.
    await loadTest(["--kv", `${dir}/train.sqlite3`, "--no-serialize"]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("two example processes on one Deno KV file under load: no update lost", async () => {
  const dir = await Deno.makeTempDir({ prefix: "radam_kv_" });
  try {
    // Chunks of 512 bytes: the checkpoint takes 2, written under a version of their own.
    await loadTest(["--kv", `${dir}/train.sqlite3`, "--chunk-bytes", "512"], 2);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("optimistic retry policy: 64 requests at a time on one process, none refused", async () => {
  // The time budget (not a count of attempts) and a backoff scaled by the attempt's duration:
  // with the old default of 10 attempts, requests past about 30 at a time were refused (409).
  const dir = await Deno.makeTempDir({ prefix: "radam_kv_" });
  try {
    await loadTest(["--kv", `${dir}/train.sqlite3`, "--no-serialize"], 1, 64, true);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("optimistic mode: a request id sent again is answered with its step, not applied again", async () => {
  const server = await ExampleServer.start([]);
  try {
    const [a, b] = batches(2, FEATURES, "i");
    const first = await (await post(server.base, a)).json();
    const second = await (await post(server.base, b)).json();
    const again = await (await post(server.base, { ...b, x: a.x, y: a.y })).json();
    assert.deepEqual([first.step, second.step], [1, 2]);
    assert.deepEqual(again, { step: 2, id: b.id, duplicate: true });
    const served = await (await fetch(`${server.base}/params`)).json();
    assert.equal(served.step, 2, "applied once");
    assert.deepEqual(served.requests, [a.id, b.id]);
    const journal = await (await fetch(`${server.base}/journal`)).json();
    const ids = journal.map((r: { entries: { id: string }[] }) => r.entries[0].id);
    assert.deepEqual(ids, [a.id, b.id]);
  } finally {
    await server.stop();
  }
});

Deno.test("a batch sent without an id is applied, whatever ids the batches before it were given", async () => {
  // Two made-up ids that share their first 8 hex digits (as 2 of 77 000 do, one time in two):
  // the second batch was answered as the first one's duplicate, and not applied.
  const uuids = ["0123abcd-1111-4111-8111-111111111111", "0123abcd-2222-4222-8222-222222222222"];
  const original = crypto.randomUUID;
  crypto.randomUUID = () => uuids.shift() as ReturnType<typeof crypto.randomUUID>;
  try {
    const handler = makeHandler(memoryCheckpointStore());
    const [a, b] = batches(2, FEATURES, "n").map(({ x, y }) => ({ x, y }));
    const answers = [];
    for (const batch of [a, b]) {
      const body = JSON.stringify(batch);
      const res = await handler(new Request("http://127.0.0.1/step", { method: "POST", body }));
      answers.push(await res.json());
    }
    assert.deepEqual(answers.map((r) => [r.step, r.duplicate]), [[1, undefined], [2, undefined]]);
    assert.notEqual(answers[0].id, answers[1].id);
  } finally {
    crypto.randomUUID = original;
  }
});

/** What the kill test has sent, and been told, so far. */
interface KillRun {
  /** The KV file. */
  readonly file: string;
  /** The example's arguments. */
  readonly args: string[];
  readonly data: Required<Batch>[];
  readonly byId: ReadonlyMap<string, Batch>;
  /** The ids sent. */
  readonly sent: Set<string>;
  /** id → step, from 200 answers. */
  readonly acknowledged: Map<string, number>;
  /** Says which seed the kills were drawn with, in every message. */
  readonly note: string;
  /** The first batch of `data` not sent yet. */
  offset: number;
}

/** What the KV file holds, read in this process, checked against everything sent. */
async function checkStored(run: KillRun): Promise<{ step: number; bytes: Uint8Array }> {
  const { note, sent, acknowledged } = run;
  const kv = await Deno.openKv(run.file);
  try {
    const stored = await kvCheckpointStore(kv, KV_PREFIX).load();
    assert.ok(stored, `a checkpoint exists ${note}`);
    const journal = journalOf(stored.meta);
    assert.equal(new Set(journal).size, journal.length, `each request applied once ${note}`);
    for (const id of journal) assert.ok(sent.has(id), `${id} was sent ${note}`);
    for (const [id, step] of acknowledged) {
      assert.equal(journal[step - 1], id, `acknowledged ${id} is step ${step} ${note}`);
    }
    // Its bytes are those of the checkpoint the request that made its last step committed:
    // the same batches replayed in the journal's order give them bit for bit.
    const state = await replay(journal.map((id) => run.byId.get(id)!), FEATURES);
    assert.deepEqual(stored.bytes, await saveState(state), `bit-equal checkpoint ${note}`);
    assert.ok(state.step >= acknowledged.size, `step ≥ 200 answers ${note}`);
    assert.ok(state.step <= sent.size, `step ≤ requests sent ${note}`);
    return { step: state.step, bytes: stored.bytes };
  } finally {
    kv.close();
  }
}

/**
 * One round: the example started (after the first, on what the file held, training going on
 * from there), the next 150 batches sent 32 at a time, and the process killed after a random
 * number of 200 answers, at a random moment after that one; then what the file holds is checked.
 */
async function killRound(run: KillRun, round: number, rand: () => number): Promise<void> {
  const { note } = run;
  const server = await ExampleServer.start(run.args);
  if (round > 0) {
    const { step } = await checkStored(run);
    const served = await (await fetch(`${server.base}/params`)).json();
    assert.equal(served.step, step, note);
  }
  const killAfter = 3 + Math.floor(rand() * 60);
  const delayMs = rand() * 8;
  const chunk = run.data.slice(run.offset, run.offset + 150);
  run.offset += chunk.length;
  let oks = 0;
  const answers = await load(server.base, chunk, 32, (answer) => {
    if (answer.status === 200 && ++oks === killAfter) {
      setTimeout(() => server.child.kill("SIGKILL"), delayMs);
    }
  });
  for (const a of answers) run.sent.add(a.batch.id);
  const status = await server.stopped();
  assert.equal(status.signal, "SIGKILL", `killed in round ${round} ${note}\n${server.log}`);
  for (const a of answers) {
    if (a.status === 200) run.acknowledged.set(a.batch.id, a.body!.step);
    else if (a.status !== undefined) assert.equal(a.status, 409, a.body?.error);
  }
  assert.ok(answers.some((a) => a.status === undefined), `killed under load ${note}`);
  await checkStored(run);
}

/**
 * Restarted once more after the kills: it takes requests again, from the step it stopped at,
 * and once the crashed saves are stale, the next save removes their garbage.
 */
async function goOn(run: KillRun): Promise<void> {
  const { note, sent, acknowledged } = run;
  const server = await ExampleServer.start(run.args);
  try {
    const { step } = await checkStored(run);
    const more = run.data.slice(run.offset, run.offset + 40);
    for (const b of more) sent.add(b.id);
    const answers = await load(server.base, more, 8);
    const ordered = checkAnswers(answers, step + 1);
    assert.ok(ordered.length > 0, note);
    for (const a of answers) if (a.status === 200) acknowledged.set(a.batch.id, a.body!.step);
    // Past staleAfterMs (1500) since this process's sweeps (at the saves above) first saw what
    // the killed one left: a sweep judges it stale on its own clock from then on.
    await new Promise((r) => setTimeout(r, 1600));
    const last = run.data[run.offset + 40];
    sent.add(last.id);
    const res = await post(server.base, last);
    assert.equal(res.status, 200);
    acknowledged.set(last.id, (await res.json()).step);
    const served = await (await fetch(`${server.base}/params`)).json();
    const state = await replay(served.requests.map((id: string) => run.byId.get(id)!), FEATURES);
    assert.deepEqual(served.params.w, Array.from((await readParams(state)).w), note);
  } finally {
    await server.stop();
  }
}

/** Only the current version's keys are left of the checkpoint (beside the training records). */
async function checkOnlyCurrent(run: KillRun): Promise<void> {
  const { bytes } = await checkStored(run);
  const kv = await Deno.openKv(run.file);
  try {
    // The checkpoint's keys (beside the training records: request ids, journal).
    const keys: string[] = [];
    for await (const e of kv.list({ prefix: KV_PREFIX })) {
      const part = e.key[KV_PREFIX.length];
      if (part === "head" || part === "versions" || part === "chunks") {
        keys.push(formatKvKey(e.key));
      }
    }
    const chunks = Math.ceil(bytes.length / 256);
    assert.equal(keys.length, 2 + chunks, `only the current version is left ${run.note}\n${keys}`);
  } finally {
    kv.close();
  }
}

Deno.test("example process killed under load: it restarts on a consistent checkpoint and goes on", async () => {
  const seed = Date.now() % 1_000_000;
  const rand = seededRandom(seed);
  const dir = await Deno.makeTempDir({ prefix: "radam_kv_" });
  const file = `${dir}/train.sqlite3`;
  const data = batches(700, FEATURES);
  const run: KillRun = {
    file,
    // Chunks of 256 bytes: a checkpoint is about 10 of them, so kills land between chunk writes.
    args: ["--kv", file, "--chunk-bytes", "256", "--stale-after-ms", "1500"],
    data,
    byId: new Map(data.map((b) => [b.id, b])),
    sent: new Set(),
    acknowledged: new Map(),
    note: `(seed ${seed})`,
    offset: 0,
  };
  try {
    for (let round = 0; round < 4; round++) await killRound(run, round, rand);
    await goOn(run);
    await checkOnlyCurrent(run);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a database that does not answer: 503 with the id made up for the batch, which sent again learns its outcome", async () => {
  // The step was held for ever (and with it every later request of the process, each then
  // answered 409); an error answer gave no id, so a batch sent without one could not be sent
  // again as itself.
  const store = memoryCheckpointStore();
  let hang = true;
  const hanging = {
    ...store,
    commit: (c: Parameters<typeof store.commit>[0]) =>
      hang ? (hang = false, new Promise<never>(() => {})) : store.commit(c),
  };
  const handler = makeHandler(hanging, { timeoutMs: 10 });
  const [{ x, y }] = batches(1, FEATURES, "h");
  const step = (batch: unknown) =>
    handler(new Request("http://127.0.0.1/step", { method: "POST", body: JSON.stringify(batch) }));
  const res = await step({ x, y });
  const body = await res.json();
  assert.equal(res.status, 503, body.error);
  assert.match(body.error, /did not answer .* may yet be applied: send it again with the same id/);
  assert.equal(typeof body.id, "string");
  const again = await step({ x, y, id: body.id });
  assert.equal(again.status, 200);
  assert.equal((await again.json()).step, 1);
});
