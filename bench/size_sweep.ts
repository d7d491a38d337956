/**
 * The step at powers of two against nearby sizes (cache and 4K aliasing between the arena's
 * sections, issue #15): one RAdam state per size through the public API (zero-copy gradients,
 * `nonFinite: "propagate"`, one tensor), on 1 thread and on `--threads=N`, timed in alternated
 * rounds; prints a markdown table in Gparams/s with the CPU named.
 *
 * `deno run --v8-flags=--expose-gc --allow-read --allow-run bench/size_sweep.ts [--from=20]
 * [--to=26] [--skews=0,0.05] [--threads=2] [--rounds=5] [--interleave [--builds=1] [--seed=1]]`:
 * sizes 2^k·(1 + skew) for k from `from` to `to`.
 *
 * By default each size gets a fresh state per round, one size alive at a time, so sizes are timed
 * seconds apart and this VM's slow and fast phases land on some sizes and not others.
 * `--interleave` keeps the states of one 2^k's sizes alive together and alternates batches of
 * steps (≈25 ms each) between them in random orders (`--seed=1`), so that a phase of the machine
 * falls on all of them alike; the median of the batches is each size's figure. Run it with
 * `--v8-flags=--expose-gc` so that each group's memory is freed before the next is made.
 *
 * @module
 */
import { dispose, type OptimizerState, radam, step } from "../mod.ts";
import { defineFlags, readFlags } from "./_flags.ts";
import { machine } from "./machine.ts";
import { collectGarbage, seeded, shuffled } from "./order.ts";

const flags = readFlags(
  defineFlags({
    from: { type: "number", default: 20, help: "the smallest power of two, k" },
    to: { type: "number", default: 26, help: "the largest power of two, k" },
    skews: { type: "numbers", default: [0, 0.05], help: "sizes 2^k·(1 + skew)" },
    threads: { type: "numbers", default: [1, 2], help: "the thread counts" },
    rounds: { type: "number", min: 1, whole: true, default: 5, help: "rounds" },
    interleave: {
      type: "boolean",
      help: "the states of one 2^k alive together, batches alternated in random orders",
    },
    builds: { type: "number", default: 1, help: "with --interleave: the states made N times over" },
    seed: { type: "number", whole: true, default: 1, help: "the seed of the random orders" },
  }),
  {
    command: "deno run --v8-flags=--expose-gc --allow-read --allow-run bench/size_sweep.ts [flags]",
    summary:
      "The RAdam step at powers of two against nearby sizes, on 1 and N threads (Gparams/s).",
  },
);
const { from, to, skews, rounds, interleave, builds } = flags;
const threadCounts = flags.threads;

/** A rectified RAdam state of `n` parameters on `threads` threads. */
async function rectified(n: number, threads: number): Promise<OptimizerState> {
  const w = new Float32Array(n);
  for (let i = 0; i < n; i++) w[i] = Math.sin(i);
  let state = await radam({ nonFinite: "propagate", threads, threadThreshold: 0 }).init({ w });
  const g = state.grads.w;
  for (let i = 0; i < n; i++) g[i] = Math.cos(i) * 1e-2;
  for (let t = 0; t < 7; t++) state = step(state);
  return state;
}

/** Median Gparams/s of each size, alternated over `rounds` rounds, one size alive at a time. */
async function sweep(sizes: number[], threads: number): Promise<number[]> {
  const samples: number[][] = sizes.map(() => []);
  for (let r = 0; r < rounds; r++) {
    for (const k of shuffled(sizes.length, random)) {
      const n = sizes[k];
      let state = await rectified(n, threads);
      const steps = Math.max(3, Math.round(1.5e8 / n));
      const t0 = performance.now();
      for (let s = 0; s < steps; s++) state = step(state);
      samples[k].push(n * steps / ((performance.now() - t0) / 1e3) / 1e9);
      dispose(state);
    }
  }
  return samples.map((s) => s.toSorted((a, b) => a - b)[Math.floor(s.length / 2)]);
}

const random = seeded(flags.seed);

/**
 * Median Gparams/s of each size, all states alive at once, batches alternated `rounds` times.
 * The states are built in a random order and every round runs them in a new random order: a
 * fixed order put the first size at 0.94× the best of its group (median), against 0.98× for the
 * others, whatever that size was (a power of two or 1.025 × one). `--builds=N` makes the states
 * N times over, the rounds shared between them: where the arena is near the L3's size, how the
 * 4 KiB pages of one allocation fall in it moves that state's rate by up to 20%.
 */
async function interleaved(sizes: number[], threads: number): Promise<number[]> {
  const samples: number[][] = sizes.map(() => []);
  const batch = sizes.map((n) => Math.max(1, Math.round(2.5e7 / n)));
  for (let b = 0; b < builds; b++) {
    // The last states' memories are freed before these are made (run with --expose-gc).
    collectGarbage();
    const states: OptimizerState[] = new Array(sizes.length);
    for (const k of shuffled(sizes.length, random)) states[k] = await rectified(sizes[k], threads);
    const share = Math.round(rounds * (b + 1) / builds) - Math.round(rounds * b / builds);
    // one warm round first, not counted
    for (let r = -1; r < share; r++) {
      for (const k of shuffled(sizes.length, random)) {
        const t0 = performance.now();
        for (let s = 0; s < batch[k]; s++) states[k] = step(states[k]);
        const rate = sizes[k] * batch[k] / ((performance.now() - t0) / 1e3) / 1e9;
        if (r >= 0) samples[k].push(rate);
      }
    }
    for (const s of states) dispose(s);
  }
  return samples.map((s) => s.toSorted((a, b) => a - b)[Math.floor(s.length / 2)]);
}

const label = (n: number) =>
  n >= 1 << 20 ? `${+(n / (1 << 20)).toFixed(2)}M` : `${+(n / 1024).toFixed(2)}K`;
console.log(`Machine: ${machine()}.`);
console.log(
  `${new Date().toISOString()}: ${interleave ? "interleaved batches" : "a fresh state per size"},` +
    ` ${rounds} rounds${interleave ? ` over ${builds} build(s)` : ""}, skews ${
      skews.join(", ")
    }, threads ${threadCounts.join(", ")}.\n`,
);
for (let k = from; k <= to; k++) {
  const sizes = skews.map((s) => Math.round((2 ** k) * (1 + s)));
  const cells: string[] = [];
  for (const threads of threadCounts) {
    const rates = await (interleave ? interleaved : sweep)(sizes, threads);
    const best = Math.max(...rates);
    cells.push(
      rates.map((r, i) => `${label(sizes[i])}: ${r.toFixed(3)}`).join(", ") +
        ` (2^${k} / best: ${(rates[0] / best).toFixed(2)}×)`,
    );
  }
  console.log(`| 2^${k} | ${cells.join(" | ")} |`);
}
