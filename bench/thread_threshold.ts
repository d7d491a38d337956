/**
 * Where a second thread starts to pay: the step time of one RAdam state on 1 thread and on
 * `--threads=N` (default 2) threads, at sizes from 4K to 4M parameters, alternated, median of
 * several rounds. The default option `threadThreshold` (core/options.ts, base/options.ts) comes from this.
 *
 * Each step is timed on its own; the figures are the median (and mean) step time over all
 * rounds. Regimes:
 * - `hot`: steps back to back (the workers are still polling when the next step starts);
 * - `cold`: 2 ms idle between steps, so the workers have gone to sleep in `Atomics.wait` and
 *   each step pays a futex wake (a training loop computing gradients between steps);
 * - `cold-copied`: cold, with the default `nonFinite` and the gradients given to `step` (copied
 *   in, as the TensorFlow.js adapter gives them), so that the main thread copies them while
 *   the workers wake;
 * - `skip`: hot, with the default `nonFinite: "skip"`, which adds the non-finite check (a second
 *   parallel pass), against the same on one thread; and `skip-serial`, the same with the
 *   sum-of-squares reduction on the main thread alone. Only a step with `clipGradNorm` still
 *   runs that reduction (the default's check stopped being a norm in issue #15), so the two
 *   modes now time the same step; `skip-serial` is kept for the record of ANALYSIS.md.
 *
 * `--ab`: instead, the threaded step alone with three polling times of its workers after a job
 * (0.3 ms, the default; 0.05 ms; none), alternated, hot, cold and cold with copied-in
 * gradients, 64K to 4M.
 *
 * Usage: deno run bench/thread_threshold.ts [--threads=2] [--rounds=9] [--modes=hot,cold]
 * [--ab]
 *
 * @module
 */
import { type OptimizerState, radam, step } from "../mod.ts";
import { initState } from "../core/init_state.ts";
import { createThreadedWasmBackend, type ThreadedOptions } from "../cpu/threaded_wasm_backend.ts";
import { dispose } from "../mod.ts";
import { defineFlags, readFlags } from "./_flags.ts";
import { machine } from "./machine.ts";
import { seeded, shuffled } from "./order.ts";

/** The order of turns in each round: random, seeded (bench/order.ts). */
const random = seeded(1);

const ALL_MODES = ["hot", "cold", "cold-copied", "skip", "skip-serial"] as const;
type Mode = typeof ALL_MODES[number];
const flags = readFlags(
  defineFlags({
    threads: { type: "number", default: 2, help: "the threads of the threaded step" },
    rounds: { type: "number", min: 1, whole: true, default: 9, help: "rounds" },
    modes: { type: "strings", choices: ALL_MODES, default: ALL_MODES, help: "the regimes" },
    ab: { type: "boolean", help: "instead, three polling times of the workers, alternated" },
  }),
  {
    command: "deno run bench/thread_threshold.ts [flags]",
    summary: "Where a second thread starts to pay: one RAdam state on 1 thread and on N threads.",
  },
);
const THREADS = flags.threads;
const ROUNDS = flags.rounds;
const SIZES = [4096, 16_384, 32_768, 65_536, 131_072, 262_144, 524_288, 1_048_576, 4_194_304];
const SAMPLE_MS = 30;
const MODES = flags.modes as readonly Mode[];

/**
 * A rectified RAdam state of `n` parameters on `threads` threads with `nonFinite`; `threaded`:
 * the threaded backend's settings, where they are not the default.
 */
async function makeState(
  n: number,
  threads: number,
  nonFinite: "skip" | "propagate",
  threaded?: ThreadedOptions,
): Promise<OptimizerState> {
  const params = new Float32Array(n).map((_, i) => Math.sin(i));
  const opt = radam({ nonFinite, threads, threadThreshold: 0 });
  let state = threads > 1 && threaded !== undefined
    ? await initState(
      opt.settings,
      params,
      (layout) => createThreadedWasmBackend(layout, threads, threaded),
    )
    : await opt.init(params);
  const g = state.grads[""];
  for (let i = 0; i < n; i++) g[i] = Math.cos(i) * 1e-2;
  for (let t = 0; t < 7; t++) state = step(state);
  return state;
}

const idle = new Int32Array(new SharedArrayBuffer(4));

/**
 * Times `count` steps one by one and appends each step's milliseconds to `out`. `cold`: 2 ms
 * idle before each step, so that the workers have gone to sleep.
 */
function sample(
  get: () => OptimizerState,
  set: (s: OptimizerState) => void,
  cold: boolean,
  count: number,
  out: number[],
  grads?: Float32Array,
): void {
  for (let s = 0; s < count; s++) {
    if (cold) Atomics.wait(idle, 0, 0, 2);
    const t0 = performance.now();
    set(grads ? step(get(), grads) : step(get()));
    out.push(performance.now() - t0);
  }
}

/** Steps per round: about SAMPLE_MS of steps (fewer when cold: each waits 2 ms). */
function stepsPerRound(n: number, cold: boolean): number {
  const estimate = n * 2e-6; // ~0.5 Gparams/s, in ms
  return Math.max(3, Math.min(cold ? 20 : 2000, Math.round(SAMPLE_MS / estimate)));
}

/** The gradients `step` is given in mode `cold-copied` (copied in), else none (zero-copy). */
function copiedGrads(mode: Mode, n: number): Float32Array | undefined {
  return mode === "cold-copied"
    ? Float32Array.from({ length: n }, (_, i) => Math.cos(i) * 1e-2)
    : undefined;
}

const median = (xs: number[]) => xs.toSorted((a, b) => a - b)[Math.floor(xs.length / 2)];
const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;

if (flags.ab) {
  // The threaded step with three polling times of its workers, alternated in each round.
  const configs: [string, ThreadedOptions][] = [
    ["polls 0.3 ms after a job (the default)", { workerSpinMs: 0.3 }],
    ["polls 0.05 ms", { workerSpinMs: 0.05 }],
    ["sleeps at once", { workerSpinMs: 0 }],
  ];
  console.log(`Machine: ${machine()}.\n`);
  console.log(`${THREADS} threads, median (mean) ms a step:\n`);
  console.log(`| size | mode | ${configs.map(([c]) => c).join(" | ")} |`);
  console.log(`|---:|---|${configs.map(() => "---:").join("|")}|`);
  for (const mode of ["hot", "cold", "cold-copied"] as const) {
    for (const n of [65_536, 262_144, 1_048_576, 4_194_304]) {
      const grads = copiedGrads(mode, n);
      const states: OptimizerState[] = [];
      // the default nonFinite in every mode
      for (const [, options] of configs) states.push(await makeState(n, THREADS, "skip", options));
      const times: number[][] = configs.map(() => []);
      const cold = mode !== "hot";
      const count = stepsPerRound(n, cold);
      for (let r = 0; r < ROUNDS; r++) {
        for (const k of shuffled(states.length, random)) {
          sample(() => states[k], (s) => states[k] = s, cold, count, times[k], grads);
        }
      }
      for (const s of states) dispose(s);
      console.log(
        `| ${n} | ${mode} | ${
          times.map((t) => `${median(t).toFixed(4)} (${mean(t).toFixed(4)})`).join(" | ")
        } |`,
      );
    }
  }
  Deno.exit(0);
}

console.log(
  `| size | mode | 1 thread, median (mean) ms | ${THREADS} threads, median (mean) ms | speed-up (medians) |`,
);
console.log("|---:|---|---:|---:|---:|");
const crossover: Record<string, number | undefined> = {};
for (const mode of MODES) {
  let firstWin: number | undefined;
  for (const n of SIZES) {
    const nonFinite = mode === "hot" || mode === "cold" ? "propagate" : "skip";
    let one = await makeState(n, 1, nonFinite);
    let many = await makeState(
      n,
      THREADS,
      nonFinite,
      mode === "skip-serial" ? { parallelReduction: false } : undefined,
    );
    const a: number[] = [], b: number[] = [];
    const cold = mode === "cold" || mode === "cold-copied";
    const grads = copiedGrads(mode, n);
    const count = stepsPerRound(n, cold);
    for (let r = 0; r < ROUNDS; r++) {
      const first = r % 2 === 0;
      if (first) sample(() => one, (s) => one = s, cold, count, a, grads);
      sample(() => many, (s) => many = s, cold, count, b, grads);
      if (!first) sample(() => one, (s) => one = s, cold, count, a, grads);
    }
    dispose(many);
    const [ta, tb] = [median(a), median(b)];
    const speedup = ta / tb;
    if (speedup > 1 && firstWin === undefined) firstWin = n;
    if (speedup <= 1) firstWin = undefined;
    console.log(
      `| ${n} | ${mode} | ${ta.toFixed(4)} (${mean(a).toFixed(4)}) | ${tb.toFixed(4)} (${
        mean(b).toFixed(4)
      }) | ${speedup.toFixed(2)}× |`,
    );
  }
  crossover[mode] = firstWin;
}
console.log(
  "\nSmallest size from which the threaded step is faster (median) at every larger size measured:",
);
for (const mode of MODES) console.log(`  ${mode}: ${crossover[mode] ?? "none"}`);
