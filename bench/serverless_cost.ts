/**
 * What one serverless request costs: load the checkpoint from the store, restore the state,
 * step, write the checkpoint, save it (checked) and remove the old version, as `optimisticStep`
 * does with no other writer, for an RAdam state of 1M parameters (by default) on wasm.
 *
 * Stores: Deno KV on a database file (in a temporary folder), Deno KV in memory, and the
 * in-process store. Prints the median and the 90th percentile of each phase, and of
 * `optimisticStep` itself, in ms, as a Markdown table.
 *
 * Run: `deno run --unstable-kv --allow-read --allow-write --allow-run=lscpu
 * bench/serverless_cost.ts [--params N] [--runs N] [--dir FOLDER]` (the database goes in FOLDER, default a temporary
 * folder).
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
import { defineFlags, readFlags } from "./_flags.ts";

const flags = readFlags(
  defineFlags({
    params: { type: "number", default: 1 << 20, help: "parameters" },
    runs: { type: "number", default: 12, help: "timed runs" },
    dir: { type: "string", help: "the database's folder (default a temporary one, removed)" },
  }),
  {
    command: "deno run --unstable-kv --allow-read --allow-write --allow-run=lscpu " +
      "bench/serverless_cost.ts [flags]",
    summary: "What one serverless request costs, phase by phase, on three stores.",
  },
);
const PARAMS = flags.params;
const RUNS = flags.runs;
const WARMUP = 2;

const optimizer = radam({ lr: 1e-3, backend: "wasm" });
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

async function measure(store: VersionedCheckpointStore): Promise<Record<Phase, number[]>> {
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

function quantile(xs: number[], q: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(q * s.length))];
}

/** The CPU's name as `lscpu` gives it (with `--allow-run=lscpu`). */
async function cpuName(): Promise<string> {
  try {
    const out = await new Deno.Command("lscpu", { stdout: "piped", stderr: "null" }).output();
    return /^Model name:\s*(.*)$/m.exec(new TextDecoder().decode(out.stdout))?.[1] ?? "unknown CPU";
  } catch {
    return "unknown CPU (run with --allow-run=lscpu)";
  }
}

if (import.meta.main) {
  const dir = flags.dir ?? await Deno.makeTempDir({ prefix: "radam_kv_bench_" });
  const file = `${dir}/bench.sqlite3`;
  const disk = await Deno.openKv(file);
  const memory = await Deno.openKv(":memory:");
  const stores: [string, VersionedCheckpointStore][] = [
    ["Deno KV, file", kvCheckpointStore(disk, ["bench"])],
    ["Deno KV, :memory:", kvCheckpointStore(memory, ["bench"])],
    ["in-process store", memoryCheckpointStore()],
  ];
  const bytes = (await saveState(await optimizer.init({ w: new Float32Array(PARAMS) }))).length;
  const where = bytes <= 60_000 ? "in the head record" : `${Math.ceil(bytes / 65536)} chunks`;
  console.log(
    `${PARAMS} parameters, checkpoint ${bytes} bytes (${where}); ${RUNS} runs after ${WARMUP} ` +
      `warm-up; ${await cpuName()}, ${navigator.hardwareConcurrency} logical cores; ` +
      `Deno ${Deno.version.deno}, ${Deno.build.os} ${Deno.build.arch}; database file in ${dir}\n`,
  );
  const results: [string, Record<Phase, number[]>][] = [];
  for (const [name, store] of stores) results.push([name, await measure(store)]);
  console.log(`| phase (ms, median / p90) | ${results.map(([n]) => n).join(" | ")} |`);
  console.log(`|---|${results.map(() => "---:").join("|")}|`);
  for (const phase of PHASES) {
    const cells = results.map(([, t]) =>
      `${quantile(t[phase], 0.5).toFixed(1)} / ${quantile(t[phase], 0.9).toFixed(1)}`
    );
    console.log(`| ${phase} | ${cells.join(" | ")} |`);
  }
  disk.close();
  memory.close();
  if (flags.dir === undefined) await Deno.remove(dir, { recursive: true });
}
