/**
 * The data-parallel hand-off between processes, measured: `--processes` (4) processes on one
 * Deno KV file, each a `dataParallel` trainer with `--inflight` requests in flight at once (1
 * and 4: a serverless isolate serving one request at a time, and a process serving a few),
 * submitting `--count` (480) contributions in all of a linear model of `--params` (100K)
 * parameters (RAdam). Each hand-off rule (`handoffLimit` 1, the default; `handoffLimit:
 * Infinity`, which hands off whatever a process has in flight; `handoffMs: Infinity`, which
 * hands off nothing) runs in turn, `--rounds` (3) rounds, so that the rules are compared
 * within each round on a shared machine. Each run is checked: every id applied exactly once
 * in the journal, the checkpoint at the journal's last step. Reported: applied contributions a
 * second, and the sizes of the folds.
 *
 * Run: `deno task bench:handoff [--rounds N] [--processes N] [--inflight N,N] [--params N]
 * [--count N]`.
 *
 * @module
 */
import { radam } from "../mod.ts";
import { dataParallel, kvCheckpointStore } from "../kv.ts";
import { defineFlags, readFlags } from "./_flags.ts";
import { machine } from "./machine.ts";

/** The rules compared: a name, and the trainer's options. */
const RULES: [string, { handoffMs?: number; handoffLimit?: number }][] = [
  ["handoffLimit 1 (default)", {}],
  ["handoffLimit Infinity", { handoffLimit: Infinity }],
  ["handoffMs Infinity", { handoffMs: Infinity }],
];

const PREFIX = ["bench", "handoff"];
const init = (n: number) => () => ({ w: new Float32Array(n) });

/** What a worker process reports. */
interface WorkerReport {
  readonly applied: number;
  readonly other: number;
  /** When it began (at `startAt`, or later when its start-up took longer) and ended. */
  readonly begin: number;
  readonly end: number;
}

/**
 * A worker: process `index` of a run, `inflight` loops of read, compute, submit, until its
 * share of `count` is sent; starts at `startAt` (the epoch ms), prints its report as JSON.
 */
async function worker(args: string[]): Promise<void> {
  const [file, rule, inflight, count, index, processes, params, startAt] = args;
  const n = Number(params);
  const kv = await Deno.openKv(file);
  const trainer = dataParallel(kvCheckpointStore(kv, PREFIX), {
    optimizer: radam({ lr: 1e-3 }),
    init: init(n),
    ...RULES[Number(rule)][1],
  });
  await trainer.params();
  await new Promise((resolve) => setTimeout(resolve, Math.max(0, Number(startAt) - Date.now())));
  const begin = Date.now();
  const mine = Array.from(
    { length: Number(count) },
    (_, i) => i,
  ).filter((i) => i % Number(processes) === Number(index));
  let applied = 0, other = 0;
  const loop = async () => {
    for (let i = mine.shift(); i !== undefined; i = mine.shift()) {
      const { step, params } = await trainer.params();
      // The gradient of ½‖w − t‖² for a target of this request's own.
      const w = params.w.map((v, j) => v - Math.sin(i + j * 1e-3));
      const answer = await trainer.submit({ id: `c${i}`, base: step, gradient: { w } });
      if (answer.status === "applied" && !answer.duplicate) applied++;
      else other++;
    }
  };
  await Promise.all(Array.from({ length: Number(inflight) }, loop));
  const end = Date.now();
  await trainer.close();
  kv.close();
  console.log(JSON.stringify({ applied, other, begin, end } satisfies WorkerReport));
}

/** One run: its applied/s and folds, checked against the journal. */
async function run(
  dir: string,
  rule: number,
  processes: number,
  inflight: number,
  params: number,
  count: number,
  tag: string,
): Promise<{ perSecond: number; folds: number[]; other: number; late: number }> {
  const file = `${dir}/handoff-${tag}.sqlite3`;
  // The first checkpoint, before the clock starts.
  const kv = await Deno.openKv(file);
  const store = kvCheckpointStore(kv, PREFIX);
  const first = dataParallel(store, { optimizer: radam({ lr: 1e-3 }), init: init(params) });
  await first.params();
  await first.close();
  const startAt = Date.now() + 6000; // the workers' start-up
  const children = Array.from(
    { length: processes },
    (_, index) =>
      new Deno.Command(Deno.execPath(), {
        args: [
          "run",
          "--unstable-kv",
          "--allow-read",
          "--allow-write",
          new URL(import.meta.url).pathname,
          "--worker",
          ...[file, rule, inflight, count, index, processes, params, startAt].map(String),
        ],
        stdout: "piped",
        stderr: "inherit",
      }).output(),
  );
  const reports = (await Promise.all(children)).map((out) => {
    if (!out.success) throw new Error("a worker failed");
    return JSON.parse(new TextDecoder().decode(out.stdout).trim()) as WorkerReport;
  });
  const applied = reports.reduce((s, r) => s + r.applied, 0);
  const other = reports.reduce((s, r) => s + r.other, 0);
  const wall = (Math.max(...reports.map((r) => r.end)) - startAt) / 1000;
  // A worker whose start-up took longer than the margin began late (its share too).
  const late = Math.max(0, ...reports.map((r) => r.begin - startAt - 20));
  try {
    const journal = await store.journal(0, Infinity);
    const ids = journal.flatMap((r) => r.entries.map((e) => e.id));
    if (ids.length !== count || new Set(ids).size !== count) {
      throw new Error(`${ids.length} applied, ${new Set(ids).size} distinct, of ${count}`);
    }
    const head = await store.head();
    if (head?.step !== journal[journal.length - 1].step) {
      throw new Error("the checkpoint is not at the journal's last step");
    }
    const folds = journal.map((r) => r.entries.length);
    return { perSecond: applied / wall, folds, other, late };
  } finally {
    kv.close();
  }
}

if (import.meta.main && Deno.args[0] === "--worker") {
  await worker(Deno.args.slice(1));
} else if (import.meta.main) {
  const flags = readFlags(
    defineFlags({
      rounds: {
        type: "number",
        min: 1,
        whole: true,
        default: 3,
        help: "rounds (each runs every rule in turn)",
      },
      processes: { type: "number", default: 4, help: "processes on the KV file" },
      inflight: { type: "numbers", default: [1, 4], help: "requests in flight per process" },
      params: { type: "number", default: 100_000, help: "parameters of the model" },
      count: { type: "number", default: 480, help: "contributions per run, in all" },
    }),
    {
      command: "deno task bench:handoff [flags]",
      summary: "Applied contributions a second of data-parallel processes on one KV file, " +
        "under each hand-off rule, alternated.",
    },
  );
  const dir = await Deno.makeTempDir({ prefix: "radam_handoff_bench_" });
  console.log(`# Data-parallel hand-off rules\n\n${machine()}\n`);
  console.log(
    `${flags.processes} processes on one Deno KV file, ${flags.params} parameters (RAdam), ` +
      `${flags.count} contributions a run\n`,
  );
  console.log(
    "| round | in flight each | rule | applied/s | × handoffMs Infinity | folds: mean, max |",
  );
  console.log("|---:|---:|---|---:|---:|---|");
  try {
    for (let round = 1; round <= flags.rounds; round++) {
      for (const inflight of flags.inflight) {
        const results = [];
        for (let rule = 0; rule < RULES.length; rule++) {
          const tag = `${round}-${inflight}-${rule}`;
          results.push(
            await run(dir, rule, flags.processes, inflight, flags.params, flags.count, tag),
          );
        }
        const none = results[RULES.length - 1].perSecond;
        for (const [rule, r] of results.entries()) {
          const mean = r.folds.reduce((a, b) => a + b, 0) / r.folds.length;
          console.log(
            `| ${round} | ${inflight} | ${RULES[rule][0]} | ${r.perSecond.toFixed(1)} | ${
              (r.perSecond / none).toFixed(2)
            } | ${mean.toFixed(1)}, ${Math.max(...r.folds)}${
              r.other > 0 ? ` (${r.other} not applied at once)` : ""
            }${r.late > 0 ? ` (a worker began ${r.late} ms late)` : ""} |`,
          );
        }
      }
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}
