/**
 * The step at powers of two against nearby sizes (cache and 4K aliasing between the arena's
 * sections, issue #15): one RAdam state per size through the public API (zero-copy gradients,
 * `nonFinite: "propagate"`, one tensor), on 1 thread and on `--threads=N`, timed in alternated
 * rounds; prints a markdown table in Gparams/s with the CPU named.
 *
 * `deno run --allow-read --allow-run bench/size_sweep.ts [--from=20] [--to=26] [--skews=0,0.05]
 * [--threads=2] [--rounds=5]`: sizes 2^k·(1 + skew) for k from `from` to `to`.
 *
 * @module
 */
import { dispose, type OptimizerState, radam, step } from "../mod.ts";
import { machine } from "./machine.ts";

const arg = (name: string, fallback: string) =>
  Deno.args.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3) ?? fallback;
const from = Number(arg("from", "20"));
const to = Number(arg("to", "26"));
const skews = arg("skews", "0,0.05").split(",").map(Number);
const threadCounts = arg("threads", "1,2").split(",").map(Number);
const rounds = Number(arg("rounds", "5"));

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
    for (let j = 0; j < sizes.length; j++) {
      const k = (j + r) % sizes.length;
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

const label = (n: number) =>
  n >= 1 << 20 ? `${+(n / (1 << 20)).toFixed(2)}M` : `${+(n / 1024).toFixed(2)}K`;
console.log(`Machine: ${machine()}.\n`);
for (let k = from; k <= to; k++) {
  const sizes = skews.map((s) => Math.round((2 ** k) * (1 + s)));
  const cells: string[] = [];
  for (const threads of threadCounts) {
    const rates = await sweep(sizes, threads);
    const best = Math.max(...rates);
    cells.push(
      rates.map((r, i) => `${label(sizes[i])}: ${r.toFixed(3)}`).join(", ") +
        ` (2^${k} / best: ${(rates[0] / best).toFixed(2)}×)`,
    );
  }
  console.log(`| 2^${k} | ${cells.join(" | ")} |`);
}
