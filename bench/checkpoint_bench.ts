/**
 * Checkpoint throughput: `deno task bench:deno` (or `deno bench bench/checkpoint_bench.ts`).
 * `saveState` and `loadState` of an RAdam state of 4M and 64M parameters on wasm. Each bench's
 * name gives the checkpoint's size in MB: MB/s = size / (reported time in s). Run
 * `deno run bench/checkpoint_bench.ts` instead to print MB/s directly.
 */
import { loadState, type OptimizerState, radam, saveState, step } from "../mod.ts";
import { readFlags } from "./_flags.ts";

if (import.meta.main) {
  // no flags: `--help` prints what it does, anything else is refused
  readFlags({}, {
    command: "deno run bench/checkpoint_bench.ts (or deno bench bench/checkpoint_bench.ts)",
    summary: "saveState and loadState of RAdam states of 4M and 64M parameters on wasm, in MB/s.",
  });
}

const SIZES: [string, number][] = [["4M", 4 * 1024 * 1024], ["64M", 64 * 1024 * 1024]];

async function trainedState(n: number): Promise<OptimizerState> {
  const params = new Float32Array(n);
  for (let i = 0; i < n; i++) params[i] = Math.sin(i);
  let state = await radam({ backend: "wasm" }).init({ w: params });
  for (let i = 0; i < n; i++) state.grads.w[i] = Math.cos(i) * 1e-2;
  for (let t = 0; t < 3; t++) state = step(state);
  return state;
}

const isBench = !import.meta.main;

for (const [label, n] of SIZES) {
  const state = await trainedState(n);
  const bytes = await saveState(state);
  const mb = bytes.length / 1e6;
  if (isBench) {
    Deno.bench(`save, ${label} params (${mb.toFixed(0)} MB)`, { group: label, n: 5 }, async () => {
      await saveState(state);
    });
    Deno.bench(`load, ${label} params (${mb.toFixed(0)} MB)`, { group: label, n: 5 }, async () => {
      await loadState(bytes, { backend: "wasm" });
    });
  } else {
    for (
      const [what, run] of [
        ["save", () => saveState(state)],
        ["load", () => loadState(bytes, { backend: "wasm" })],
      ] as const
    ) {
      await run(); // warm up
      const times: number[] = [];
      for (let i = 0; i < 3; i++) {
        const start = performance.now();
        await run();
        times.push(performance.now() - start);
      }
      const best = Math.min(...times) / 1000;
      console.log(
        `${what} ${label} params: ${mb.toFixed(0)} MB in ${(best * 1000).toFixed(0)} ms, ${
          (mb / best).toFixed(0)
        } MB/s (best of 3)`,
      );
    }
  }
}
