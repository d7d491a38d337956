/**
 * What serverless training costs, in three sections (`--sections phases,load,processes`, all
 * by default):
 *
 * - **phases**: one request with no other writer: load the checkpoint from the store, restore
 *   the state, step, write the checkpoint, save it (checked) and remove the old version, as
 *   `optimisticStep` does, for an RAdam state of `--params` (1M) parameters on wasm, on Deno KV
 *   on a database file, Deno KV in memory and the in-process store: the median and the 90th
 *   percentile of each phase, in ms; with `--states 32bit,8bit`, for both formats of the
 *   moments, and the 8-bit request's time over the 32-bit one's.
 * - **load**: the example (`examples/serverless_handler.ts`) as a process on a KV file, in both
 *   modes, at `--sizes` (262144 and 1048576 features: 256K and 1M parameters with the bias) and
 *   `--clients` (1, 4, 16) concurrent clients sending `--requests` (3 per client, at least 8)
 *   one-row batches over 127.0.0.1 (features ±1/√F): applied gradients per second, latencies,
 *   and the answers other than 200.
 * - **processes**: three data-parallel processes on one KV file, 16 clients each, at the
 *   largest size; then the same with `--kills` (5) SIGKILLs of a random process at random
 *   moments (restarted; clients send a request whose connection failed again, with its id);
 *   each checked against the store's journal (every id applied once, where its answer said)
 *   and its replay, bit for bit.
 * - **handoff** (not run by default): the data-parallel hand-off rules (`handoffLimit` 1, the
 *   default; `handoffLimit: Infinity`; `handoffMs: Infinity`) alternated over `--rounds` (3)
 *   rounds, with three processes of 16 clients at 1M parameters as in **processes** (but the
 *   default `leaseMs`, 10 s); each run
 *   checked as above, with its folds' sizes.
 *
 * Run: `deno run --unstable-kv --allow-read --allow-write --allow-run --allow-net=127.0.0.1
 * --allow-sys=loadavg bench/serverless_cost.ts [--sections …] [--params N] [--runs N] [--sizes N,N] [--clients
 * N,N] [--requests N] [--kills N] [--dir FOLDER]` (the databases go in FOLDER, default a
 * temporary folder).
 *
 * @module
 */
import { loadState, type OptimizerState, radam, saveState, step } from "../mod.ts";
import {
  kvCheckpointStore,
  memoryCheckpointStore,
  optimisticStep,
  type VersionedCheckpointStore,
} from "../kv.ts";
import {
  formatRows,
  type LoadRow,
  loadRow,
  MODES,
  processRun,
  quantile,
  rowsOf,
} from "./serverless_load.ts";
import { defineFlags, readFlags } from "./_flags.ts";
import { machine } from "./machine.ts";

const flags = readFlags(
  defineFlags({
    params: { type: "number", default: 1 << 20, help: "parameters of the phases section" },
    runs: {
      type: "number",
      min: 1,
      whole: true,
      default: 12,
      help: "timed runs of the phases section",
    },
    dir: { type: "string", help: "the databases' folder (default a temporary one, removed)" },
    sections: {
      type: "strings",
      default: ["phases", "load", "processes"],
      choices: ["phases", "load", "processes", "handoff"],
      help: "which sections to run",
    },
    sizes: { type: "numbers", default: [262_144, 1_048_576], help: "parameters of the load runs" },
    clients: { type: "numbers", default: [1, 4, 16], help: "concurrent clients of the load runs" },
    requests: {
      type: "number",
      help: "requests a load run sends (default 3 a client, at least 8)",
    },
    kills: { type: "number", default: 5, help: "SIGKILLs in the processes section" },
    rounds: {
      type: "number",
      min: 1,
      whole: true,
      default: 3,
      help: "rounds of the handoff section",
    },
    seed: { type: "number", whole: true, help: "seed of the kill times (default from the clock)" },
    states: {
      type: "strings",
      default: ["32bit"],
      choices: ["32bit", "8bit"],
      help: "the formats of the moments the phases section times (option states)",
    },
  }),
  {
    command: "deno task bench:serverless [flags]",
    summary: "What one serverless request costs, phase by phase, and the applied gradients per " +
      "second of both modes under concurrent clients, one process and three.",
  },
);
const PARAMS = flags.params;
const RUNS = flags.runs;
const WARMUP = 2;

const optimizerOf = (states: "32bit" | "8bit") => radam({ lr: 1e-3, backend: "wasm", states });
const gradient = Float32Array.from({ length: PARAMS }, (_, i) => Math.sin(i) * 1e-2);
/** The user's part, kept trivial: the gradient is copied into the state's slot. */
const computeGradient = (state: OptimizerState) => void state.grads.w.set(gradient);

const PHASES = [
  "store load",
  "loadState",
  "gradient copy",
  "step",
  "saveState",
  "store save",
  "total",
  "optimisticStep",
] as const;
type Phase = typeof PHASES[number];

async function measure(
  store: VersionedCheckpointStore,
  optimizer: ReturnType<typeof optimizerOf>,
): Promise<Record<Phase, number[]>> {
  const times = Object.fromEntries(PHASES.map((p) => [p, [] as number[]])) as Record<
    Phase,
    number[]
  >;
  // A first checkpoint, so that every request loads one.
  const first = await optimizer.init({ w: new Float32Array(PARAMS).fill(0.5) });
  await store.save(await saveState(first), null);
  for (let run = 0; run < WARMUP + RUNS; run++) {
    const t: number[] = [performance.now()];
    const stored = (await store.load())!;
    t.push(performance.now());
    let state = await loadState(stored.bytes);
    t.push(performance.now());
    computeGradient(state);
    t.push(performance.now());
    state = step(state);
    t.push(performance.now());
    const bytes = await saveState(state);
    t.push(performance.now());
    const version = await store.save(bytes, stored.version);
    t.push(performance.now());
    if (version === null) throw new Error("No other writer, yet a conflict");
    const start = performance.now();
    const done = await optimisticStep(store, {
      optimizer,
      init: () => ({ w: new Float32Array(PARAMS) }),
      gradient: computeGradient,
    });
    const end = performance.now();
    if (done.attempts !== 1) throw new Error("No other writer, yet a retry");
    if (run < WARMUP) continue;
    for (let i = 0; i < 6; i++) times[PHASES[i]].push(t[i + 1] - t[i]);
    times.total.push(t[6] - t[0]);
    times.optimisticStep.push(end - start);
  }
  return times;
}

/** The phases section: one request's phases on each store, in each format of `--states`. */
async function phases(dir: string): Promise<void> {
  const medians = new Map<string, number[]>();
  for (const states of flags.states as ("32bit" | "8bit")[]) {
    medians.set(states, await phasesOf(dir, states));
  }
  const [wide, compact] = [medians.get("32bit"), medians.get("8bit")];
  if (wide && compact) {
    console.log(
      `\n8-bit request (optimisticStep, median) over 32-bit: ${
        STORES.map((name, i) => `${name} ${(compact[i] / wide[i]).toFixed(2)}×`).join(", ")
      }`,
    );
  }
}

const STORES = ["Deno KV, file", "Deno KV, :memory:", "in-process store"];

/** One format's phases on each store; the medians of `optimisticStep`, by store. */
async function phasesOf(dir: string, states: "32bit" | "8bit"): Promise<number[]> {
  const optimizer = optimizerOf(states);
  const file = `${dir}/bench-${states}.sqlite3`;
  const disk = await Deno.openKv(file);
  const memory = await Deno.openKv(":memory:");
  const stores: VersionedCheckpointStore[] = [
    kvCheckpointStore(disk, ["bench"]),
    kvCheckpointStore(memory, ["bench"]),
    memoryCheckpointStore(),
  ];
  const bytes = (await saveState(await optimizer.init({ w: new Float32Array(PARAMS) }))).length;
  const where = bytes <= 60_000 ? "in the head record" : `${Math.ceil(bytes / 65536)} chunks`;
  console.log(
    `## One request, no other writer (${states} states)\n\n${PARAMS} parameters, checkpoint ` +
      `${bytes} bytes (${where}); ${RUNS} runs after ${WARMUP} warm-up\n`,
  );
  const results: Record<Phase, number[]>[] = [];
  for (const store of stores) results.push(await measure(store, optimizer));
  console.log(`| phase (ms, median / p90) | ${STORES.join(" | ")} |`);
  console.log(`|---|${results.map(() => "---:").join("|")}|`);
  for (const phase of PHASES) {
    const cells = results.map((t) =>
      `${quantile(t[phase], 0.5).toFixed(1)} / ${quantile(t[phase], 0.9).toFixed(1)}`
    );
    console.log(`| ${phase} | ${cells.join(" | ")} |`);
  }
  disk.close();
  memory.close();
  return results.map((t) => quantile(t.optimisticStep, 0.5));
}

/** The load section: one process, both modes, each size and number of clients. */
async function load(
  dir: string,
  sizes: readonly number[],
  clients: readonly number[],
): Promise<void> {
  console.log("\n## One example process on a KV file\n");
  const rows: LoadRow[] = [];
  for (const size of sizes) {
    const data = rowsOf(size);
    for (const c of clients) {
      const count = flags.requests ?? Math.max(8, 3 * c);
      // Without turns (as before) only at the most clients: that is where it matters.
      const modes = MODES.filter((m) => m !== "optimistic, no turns" || c === Math.max(...clients));
      for (const mode of modes) {
        rows.push(await loadRow(dir, data, mode, c, count));
        console.error(formatRows(rows.slice(-1)).split("\n").pop());
      }
    }
  }
  console.log(formatRows(rows));
  console.log("\nData-parallel applied/s over each other mode's, same run:\n");
  for (const d of rows.filter((r) => r.mode === "data-parallel")) {
    const others = rows.filter((r) =>
      r.params === d.params && r.clients === d.clients && r.mode !== d.mode
    );
    const ratios = others.map((o) => `${(d.perSecond / o.perSecond).toFixed(2)}× ${o.mode}`);
    console.log(`- ${d.params} parameters, ${d.clients} clients: ${ratios.join(", ")}`);
  }
}

/** The processes section: three processes, then three processes killed at random moments. */
async function processes(dir: string, size: number): Promise<void> {
  console.log("\n## Three data-parallel processes on one KV file, 16 clients each\n");
  const data = rowsOf(size);
  const count = flags.requests ?? 144;
  const kills = flags.kills;
  const seed = flags.seed ?? Date.now() % 1_000_000;
  const bound = await loadRow(dir, data, "parse only", 16, count, 3);
  const plain = await processRun(dir, data, 16, count, 0, seed);
  const killed = await processRun(dir, data, 16, count, kills, seed);
  console.log(formatRows([bound, plain.row, killed.row]));
  console.log(
    `\n- without kills: ${plain.check}\n- with ${kills} kills (seed ${seed}): ${killed.check}`,
  );
}

/** The hand-off rules the handoff section alternates: a name, and the example's flags. */
const HANDOFFS: [string, string[]][] = [
  ["handoffLimit 1 (default)", []],
  ["handoffLimit Infinity", ["--handoff-limit", "Infinity"]],
  ["handoffMs Infinity", ["--handoff-ms", "Infinity"]],
];
/**
 * The handoff section's lease: the default (10 s), not the 2 s of the processes section (which
 * kills processes), so that a gradient's write slowed by a loaded machine past 2 s does not
 * fail its request (a submit's own call may take up to `leaseMs`).
 */
const HANDOFF_LEASE = ["--lease-ms", "10000"];

/**
 * The handoff section: three example processes on one KV file, 16 clients each, 1M parameters,
 * 144 requests, with each rule of HANDOFFS in turn, `--rounds` rounds (so that the rules are
 * compared within each round). `deno task bench:handoff` measures processes of 1 and 4 requests
 * in flight.
 */
async function handoff(dir: string): Promise<void> {
  console.log("\n## Data-parallel hand-off rules, alternated\n");
  const runs: [number, number, number, number][] = [[3, 16, 1_048_576, 144]];
  const rows: LoadRow[] = [];
  const notes: string[] = [];
  for (let round = 1; round <= flags.rounds; round++) {
    for (const [processes, clients, size, count] of runs) {
      const data = rowsOf(size);
      for (const [mode, extra] of HANDOFFS) {
        const tag = `-${processes}x${clients}-${round}-${HANDOFFS.findIndex(([m]) => m === mode)}`;
        const run = await processRun(dir, data, clients, count, 0, 1, {
          processes,
          flags: [...HANDOFF_LEASE, ...extra],
          mode: `${mode}, round ${round}`,
          tag,
        });
        rows.push(run.row);
        const mean = run.folds.reduce((a, b) => a + b, 0) / run.folds.length;
        notes.push(
          `- ${run.row.mode}, ${processes} × ${clients}: ${run.check}, ${
            mean.toFixed(1)
          } on average`,
        );
        console.error(formatRows(rows.slice(-1)).split("\n").pop());
      }
    }
  }
  console.log(formatRows(rows));
  console.log(`\n${notes.join("\n")}`);
}

/** The machine (bench/machine.ts) and the load average, as the runs saw them. */
function machineNow(): string {
  let load = "";
  try {
    load = `; load average ${Deno.loadavg().map((x) => x.toFixed(2)).join(" ")}`;
  } catch {
    // without --allow-sys=loadavg
  }
  return machine() + load;
}

if (import.meta.main) {
  const sections = flags.sections;
  const dir = flags.dir ?? await Deno.makeTempDir({ prefix: "radam_kv_bench_" });
  console.log(`# Serverless training costs\n\n${machineNow()}; databases in ${dir}\n`);
  const sizes = flags.sizes;
  const clients = flags.clients;
  if (sections.includes("phases")) await phases(dir);
  if (sections.includes("load")) await load(dir, sizes, clients);
  if (sections.includes("processes")) await processes(dir, Math.max(...sizes));
  if (sections.includes("handoff")) await handoff(dir);
  console.log(`\nAt the end: ${machineNow()}`);
  if (flags.dir === undefined) await Deno.remove(dir, { recursive: true });
}
