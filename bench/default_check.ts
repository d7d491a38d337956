/**
 * The default non-finite check against no check (issue #15 part 2): RAdam states through the
 * public API, one tensor, rectified path, alternated in each round, median Gparams/s, CPU named.
 * Rows: `"propagate"` (no check), the default `"skip"` (the exponent-bit check), and
 * `"skip"` with `clipGradNorm: Number.MAX_VALUE` (never clips, but takes the f64 norm: the
 * default's cost before #15), zero-copy and copied-in, on 1 and N threads.
 *
 * `deno run --allow-read --allow-run bench/default_check.ts [--sizes=4M,64M] [--threads=1,2]
 * [--rounds=7]`
 *
 * @module
 */
import { dispose, type OptimizerState, radam, type RAdamOptions, step } from "../mod.ts";
import { defineFlags, readFlags } from "./_flags.ts";
import { machine } from "./machine.ts";
import { seeded, shuffled } from "./order.ts";

/** The order of turns in each round: random, seeded (bench/order.ts). */
const random = seeded(1);

const SIZES: Record<string, number> = {
  "256K": 2 ** 18,
  "4M": 2 ** 22,
  "16M": 2 ** 24,
  "64M": 2 ** 26,
};
const flags = readFlags(
  defineFlags({
    sizes: {
      type: "strings",
      choices: Object.keys(SIZES),
      default: ["4M", "64M"],
      help: "the sizes",
    },
    threads: { type: "numbers", default: [1, 2], help: "the thread counts" },
    rounds: { type: "number", min: 1, whole: true, default: 7, help: "rounds" },
  }),
  {
    command: "deno run --allow-read --allow-run bench/default_check.ts [flags]",
    summary: 'The default non-finite check against "propagate" and the f64 norm (Gparams/s).',
  },
);
const { sizes, rounds } = flags;
const threadCounts = flags.threads;

const VARIANTS: [string, RAdamOptions][] = [
  ["propagate", { nonFinite: "propagate" }],
  ["default (skip)", {}],
  ["skip + f64 norm", { clipGradNorm: Number.MAX_VALUE }],
];

console.log(`Machine: ${machine()}.\n`);
console.log(
  "| size | threads | gradients | " + VARIANTS.map(([v]) => v).join(" | ") +
    " | default / propagate | f64 norm / propagate |",
);
console.log("|---|---:|---|" + VARIANTS.map(() => "---:").join("|") + "|---:|---:|");
for (const label of sizes) {
  const n = SIZES[label];
  for (const threads of threadCounts) {
    for (const copied of [false, true]) {
      const external = new Float32Array(n);
      for (let i = 0; i < n; i++) external[i] = Math.cos(i) * 1e-2;
      const states: OptimizerState[] = [];
      for (const [, options] of VARIANTS) {
        const w = new Float32Array(n);
        for (let i = 0; i < n; i++) w[i] = Math.sin(i);
        let s = await radam({ ...options, threads, threadThreshold: 0 }).init({ w });
        s.grads.w.set(external);
        for (let t = 0; t < 7; t++) s = step(s);
        states.push(s);
      }
      const samples: number[][] = VARIANTS.map(() => []);
      const steps = Math.max(3, Math.round(1e8 / n));
      for (let r = 0; r < rounds; r++) {
        for (const k of shuffled(states.length, random)) {
          let s = states[k];
          const t0 = performance.now();
          for (let i = 0; i < steps; i++) s = copied ? step(s, { w: external }) : step(s);
          samples[k].push(n * steps / ((performance.now() - t0) / 1e3) / 1e9);
          states[k] = s;
        }
      }
      for (const s of states) dispose(s);
      const med = samples.map((x) => x.toSorted((a, b) => a - b)[Math.floor(rounds / 2)]);
      console.log(
        `| ${label} | ${threads} | ${copied ? "copied-in" : "zero-copy"} | ${
          med.map((m) => m.toFixed(3)).join(" | ")
        } | ${(med[1] / med[0]).toFixed(2)}× | ${(med[2] / med[0]).toFixed(2)}× |`,
      );
    }
  }
}
