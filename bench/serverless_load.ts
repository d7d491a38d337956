/**
 * The load part of `bench/serverless_cost.ts`: the serverless example started as processes on
 * a Deno KV file, in its two modes, under requests from concurrent clients over 127.0.0.1, as
 * issue #24 measured it: a linear model, one-row batches whose features are scaled by 1/√F.
 * Rows of applied gradients per second and latencies; runs of three processes and of
 * processes killed (SIGKILL) at random moments, checked against the store's journal.
 *
 * @module
 */
import { saveState } from "../mod.ts";
import { kvCheckpointStore } from "../kv.ts";
import type { Batch } from "../examples/serverless_handler.ts";
import {
  type Answer,
  ExampleServer,
  loadRetrying,
  replayJournal,
} from "../examples/serverless_handler_harness.ts";
import { seeded } from "./order.ts";

/** Distinct rows of data per size; request i sends row i mod ROWS. */
const ROWS = 8;

/** The rows of `features` features, and each one's JSON body after its id, in UTF-8. */
export interface Rows {
  readonly features: number;
  readonly batches: Batch[];
  readonly tails: Uint8Array<ArrayBuffer>[];
}

/**
 * One-row batches of `features` features, each ±1/√F with a random sign (exact, and short in
 * JSON when F is a power of 4: ±1/1024 at 1M features), target the sum of the features plus ½.
 */
export function rowsOf(features: number): Rows {
  const batches: Batch[] = [];
  const tails: Uint8Array<ArrayBuffer>[] = [];
  const scale = 1 / Math.sqrt(features);
  for (let r = 0; r < ROWS; r++) {
    const rand = seeded(1000 + r);
    const x = Array.from({ length: features }, () => (rand() < 0.5 ? -scale : scale));
    const y = x.reduce((s, v) => s + v, 0.5);
    batches.push({ x: [x], y: [y] });
    tails.push(new TextEncoder().encode(JSON.stringify({ x: [x], y: [y] }).slice(1)));
  }
  return { features, batches, tails };
}

/** `count` requests of `rows`, with ids `${tag}0`, `${tag}1`, …. */
export function requests(rows: Rows, count: number, tag: string): Required<Batch>[] {
  return Array.from({ length: count }, (_, i) => ({ ...rows.batches[i % ROWS], id: `${tag}${i}` }));
}

/**
 * Sends a request of `rows` without writing its 1M numbers again: its id, then its row's
 * encoded JSON, as one Blob (a client that re-encodes a 13 MB string per request takes a core
 * of this 2-core machine from the server).
 */
function sender(rows: Rows) {
  const encoder = new TextEncoder();
  return (base: string, batch: Required<Batch>) => {
    const row = rows.batches.findIndex((b) => b.x === batch.x);
    const body = new Blob([encoder.encode(`{"id":${JSON.stringify(batch.id)},`), rows.tails[row]]);
    return fetch(`${base}/step`, { method: "POST", body });
  };
}

/** What one row of the table reports. */
export interface LoadRow {
  readonly params: number;
  readonly mode: string;
  readonly processes: number;
  readonly clients: number;
  readonly requests: number;
  readonly ok: number;
  readonly others: string;
  readonly wall: number;
  readonly perSecond: number;
  readonly median: number;
  readonly p90: number;
}

/** The `q` quantile of `xs` (the value at rank ⌊q·n⌋ of the sorted values; NaN when empty). */
export function quantile(xs: readonly number[], q: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length === 0 ? NaN : s[Math.min(s.length - 1, Math.floor(q * s.length))];
}

/** The row of a run's answers. */
function rowOf(
  what: Omit<LoadRow, "ok" | "others" | "wall" | "perSecond" | "median" | "p90" | "requests">,
  answers: Answer[],
  wall: number,
): LoadRow {
  // A 200 marked duplicate was applied once, by a try whose connection died (its process was
  // killed), and answered when the client sent it again: applied, and counted as such.
  const ok = answers.filter((a) => a.status === 200);
  const counts = new Map<string, number>();
  for (const a of answers) {
    if (a.status === 200) continue;
    const key = String(a.status ?? "none");
    counts.set(key, (counts.get(key) ?? 0) + 1);
  }
  const duplicates = ok.filter((a) => a.body!.duplicate).length;
  const others = ([...counts].map(([k, n]) => `${n}× ${k}`).join(", ") || "none") +
    (duplicates > 0 ? `; ${duplicates} of the 200s answered as duplicates` : "");
  const ms = ok.map((a) => a.ms!);
  return {
    ...what,
    requests: answers.length,
    ok: ok.length,
    others,
    wall,
    perSecond: ok.length / wall,
    median: quantile(ms, 0.5),
    p90: quantile(ms, 0.9),
  };
}

/**
 * The modes a row runs: the example's two (optimistic with its attempts taking turns, the
 * default, and without, as before), and this file as a server that only parses the requests
 * (the bound of what the machine can serve).
 */
export const MODES = ["optimistic", "optimistic, no turns", "data-parallel", "parse only"];

/** The arguments of a mode on `file`, and the script it runs. */
function argsOf(mode: string, file: string): [string[], URL | undefined] {
  if (mode === "parse only") return [[], new URL(import.meta.url)];
  if (mode === "data-parallel") return [["--data-parallel", "--kv", file], undefined];
  return [[...(mode === "optimistic" ? [] : ["--no-serialize"]), "--kv", file], undefined];
}

/**
 * One row: `processes` example processes in `mode` on a fresh KV file in `dir`, two warm-up
 * requests, then `count` requests from `clients` clients per process.
 */
export async function loadRow(
  dir: string,
  rows: Rows,
  mode: string,
  clients: number,
  count: number,
  processes = 1,
): Promise<LoadRow> {
  const file = `${dir}/load-${
    MODES.indexOf(mode)
  }-${rows.features}-${clients}-${processes}.sqlite3`;
  const [args, script] = argsOf(mode, file);
  const servers = await Promise.all(
    Array.from({ length: processes }, () => ExampleServer.start(args, script)),
  );
  try {
    const send = sender(rows);
    const target = (c: number) => servers[c % processes].base;
    await loadRetrying(target, requests(rows, 2, "w"), 1, { tries: 1, send });
    const start = performance.now();
    const answers = await loadRetrying(target, requests(rows, count, "q"), clients * processes, {
      tries: 1,
      send,
    });
    const wall = (performance.now() - start) / 1000;
    return rowOf({ params: rows.features + 1, mode, processes, clients }, answers, wall);
  } finally {
    for (const server of servers) await server.stop();
  }
}

/** The exactly-once check of a run: ids applied once each, acknowledged ones where said. */
async function checkJournal(
  file: string,
  answers: Answer[],
  rows: Rows,
): Promise<{ check: string; folds: number[] }> {
  const kv = await Deno.openKv(file);
  try {
    const store = kvCheckpointStore(kv, ["radam", "serverless", "model"]);
    const journal = await store.journal(0, 1_000_000);
    const where = new Map<string, number>();
    for (const r of journal) {
      for (const e of r.entries) {
        if (where.has(e.id)) throw new Error(`${e.id} applied twice`);
        where.set(e.id, r.step);
      }
    }
    for (const a of answers) {
      if (a.status !== 200) {
        throw new Error(`${a.batch.id} answered ${a.status}: ${a.body?.error ?? "(no body)"}`);
      }
      if (where.get(a.batch.id) !== a.body!.step) throw new Error(`${a.batch.id}: not its step`);
    }
    const byId = new Map<string, Batch>();
    for (const id of where.keys()) {
      const n = Number(id.slice(1));
      byId.set(id, rows.batches[n % ROWS]);
    }
    const state = await replayJournal(journal, byId, rows.features, 16);
    const bytes = (await store.load())!.bytes;
    const same = (await saveState(state)).every((b, i) => b === bytes[i]);
    if (!same) throw new Error("the checkpoint is not the journal's replay");
    const sizes = journal.map((r) => r.entries.length);
    const check = `${journal.length} steps of ${Math.min(...sizes)}–${
      Math.max(...sizes)
    } contributions`;
    return { check, folds: sizes };
  } finally {
    kv.close();
  }
}

/** How {@linkcode processRun} runs: its processes, and the example's extra flags. */
export interface ProcessRunOptions {
  /** How many processes (default 3). */
  readonly processes?: number;
  /** More flags of the example (e.g. `--handoff-limit Infinity`). */
  readonly flags?: readonly string[];
  /** The mode's name in the row (default "data-parallel"). */
  readonly mode?: string;
  /** Names the run's database file (default ""): each run of a bench needs a fresh one. */
  readonly tag?: string;
}

/**
 * Data-parallel processes on one KV file (`options.processes`, default 3), `clients` each,
 * `count` requests; with `kills`, a random process is killed (SIGKILL) that many times at
 * random moments and restarted, and the clients send a request whose connection failed again,
 * with its id. Checked against the journal and its replay, bit for bit; `folds`: how many
 * contributions each step applied.
 */
export async function processRun(
  dir: string,
  rows: Rows,
  clients: number,
  count: number,
  kills: number,
  seed: number,
  options: ProcessRunOptions = {},
): Promise<{ row: LoadRow; check: string; folds: number[] }> {
  const { processes = 3, flags = [], tag = "" } = options;
  const file = `${dir}/processes-${rows.features}-${kills}${tag}.sqlite3`;
  const args = [...argsOf("data-parallel", file)[0], "--lease-ms", "2000", ...flags];
  const servers = await Promise.all(
    Array.from({ length: processes }, () => ExampleServer.start(args)),
  );
  const rand = seeded(seed);
  try {
    const send = sender(rows);
    const target = (c: number) => servers[c % processes].base;
    await loadRetrying(target, requests(rows, 2, "w"), 1, { tries: 1, send });
    let oks = 0;
    let killing: Promise<void> = Promise.resolve();
    const killAt = new Set(
      Array.from({ length: kills }, (_, i) => Math.floor((i + rand()) * count / (kills + 1))),
    );
    const start = performance.now();
    const answers = await loadRetrying(target, requests(rows, count, "q"), clients * processes, {
      send,
      onAnswer: (a) => {
        if (a.status !== 200 || !killAt.has(++oks)) return;
        const victim = Math.floor(rand() * processes);
        const delay = rand() * 200;
        killing = killing.then(async () => {
          await new Promise((r) => setTimeout(r, delay));
          servers[victim].child.kill("SIGKILL");
          await servers[victim].stopped();
          servers[victim] = await ExampleServer.start(args);
        });
      },
    });
    const wall = (performance.now() - start) / 1000;
    await killing;
    const mode = (options.mode ?? "data-parallel") + (kills > 0 ? `, ${kills} kills` : "");
    const row = rowOf({ params: rows.features + 1, mode, processes, clients }, answers, wall);
    for (const server of servers) await server.stop();
    servers.length = 0;
    const resent = answers.filter((a) => a.sent! > 1).length;
    const checked = await checkJournal(file, answers.filter((a) => a.batch.id[0] === "q"), rows);
    return {
      ...checked,
      row,
      check: `${checked.check}; ${resent} requests sent again after a kill`,
    };
  } finally {
    for (const server of servers) await server.stop();
  }
}

/** The table's header and a row, in Markdown. */
export function formatRows(rows: LoadRow[]): string {
  const lines = [
    "| parameters | mode | processes × clients | requests | 200 | other answers | wall s | applied/s | median ms | p90 ms |",
    "|---:|---|---:|---:|---:|---|---:|---:|---:|---:|",
  ];
  for (const r of rows) {
    lines.push(
      `| ${r.params} | ${r.mode} | ${r.processes} × ${r.clients} | ${r.requests} | ${r.ok} | ${r.others} | ${
        r.wall.toFixed(1)
      } | ${r.perSecond.toFixed(2)} | ${r.median.toFixed(0)} | ${r.p90.toFixed(0)} |`,
    );
  }
  return lines.join("\n");
}

if (import.meta.main) {
  // A server that only parses each request's JSON and answers: what serving these requests
  // costs this machine before any training.
  const i = Deno.args.indexOf("--port");
  const server = Deno.serve({
    hostname: "127.0.0.1",
    port: Number(Deno.args[i + 1] ?? 0),
    onListen: ({ port }) => console.log(`Listening on http://127.0.0.1:${port}/ (parse only)`),
  }, async (req) => {
    const body = await req.json();
    return Response.json({ step: 0, id: body.id });
  });
  Deno.addSignalListener("SIGTERM", async () => {
    await server.shutdown();
    Deno.exit(0);
  });
}
