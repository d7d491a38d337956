/**
 * Step throughput of the CPU backends: `deno task bench`. One RAdam step over a model of
 * 4K, 256K and 4M parameters, on wasm (zero-copy gradient slot, and a copied-in gradient) and
 * on the TypeScript backend. Compare the rows of a group as ratios (the "summary" lines):
 * absolute times on a shared machine are noisy.
 */
import { type Optimizer, type OptimizerState, radam, ranger, step } from "../mod.ts";
import { readFlags } from "./_flags.ts";

if (import.meta.main) {
  // a `deno bench` file: run directly, it only answers `--help`
  readFlags({}, {
    command: "deno bench bench/step_bench.ts (or deno task bench:deno)",
    summary: "Step throughput of the CPU backends at 4K, 256K and 4M parameters, as deno bench " +
      "groups.",
  });
}

const SIZES: [string, number][] = [["4K", 4096], ["256K", 262_144], ["4M", 4_194_304]];

async function rectifiedState(
  backend: "wasm" | "js",
  n: number,
  opt: Optimizer = radam({ backend }),
): Promise<OptimizerState> {
  const params = Float32Array.from({ length: n }, (_, i) => Math.sin(i));
  let state = await opt.init({ w: { data: params, shape: [n / 1024, 1024] } });
  for (let i = 0; i < n; i++) state.grads.w[i] = Math.cos(i) * 1e-2;
  // past step 6, so that the timed steps take the rectified (adaptive) path
  for (let t = 0; t < 8; t++) state = step(state);
  return state;
}

for (const [label, n] of SIZES) {
  let wasm = await rectifiedState("wasm", n);
  let copied = await rectifiedState("wasm", n);
  let js = await rectifiedState("js", n);
  let unchecked = await rectifiedState(
    "wasm",
    n,
    radam({ backend: "wasm", nonFinite: "propagate" }),
  );
  let rangerState = await rectifiedState("wasm", n, ranger({ backend: "wasm", clipGradNorm: 1 }));
  const external = { w: Float32Array.from({ length: n }, (_, i) => Math.cos(i) * 1e-2) };
  Deno.bench(`wasm zero-copy, ${label} params`, { group: label, baseline: true, n: 50 }, () => {
    wasm = step(wasm);
  });
  Deno.bench(`wasm copied grads, ${label} params`, { group: label, n: 50 }, () => {
    copied = step(copied, external);
  });
  Deno.bench(
    `wasm zero-copy, no non-finite check, ${label} params`,
    { group: label, n: 50 },
    () => {
      unchecked = step(unchecked);
    },
  );
  Deno.bench(
    `wasm ranger (gc 1024 cols, clip, lookahead), ${label}`,
    { group: label, n: 50 },
    () => {
      rangerState = step(rangerState);
    },
  );
  Deno.bench(`js, ${label} params`, { group: label, n: n > 1e6 ? 10 : 50 }, () => {
    js = step(js);
  });
}
