/**
 * The TensorFlow.js adapter against tfjs's own Adam, on the same tfjs backend (wasm, and webgpu
 * where there is an adapter): the optimizer's `applyGradients` alone, and a whole
 * `model.trainOnBatch` step, for a dense model of 1M (1024 × 1024) and 16M (4096 × 4096)
 * parameters; and what the adapter's copies cost, measured (its `applyGradients` minus the
 * library's zero-copy step on the same backend).
 *
 * ```sh
 * deno run --allow-read --allow-env --allow-run=cat bench/tfjs_bench.ts          # prints
 * deno run --allow-read --allow-env --allow-run=cat --allow-write=bench bench/tfjs_bench.ts --write
 * deno run --allow-read --allow-env --allow-run=cat bench/tfjs_bench.ts --quick  # 256K and 1M
 * ```
 *
 * Each figure is the median of alternated rounds (adapter, tfjs Adam, …) of the mean time of a
 * few steps; on webgpu a round ends with a one-element readback, so the GPU work is counted.
 * Not part of CI.
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs-core";
import "@tensorflow/tfjs-backend-cpu";
import * as tfwasm from "@tensorflow/tfjs-backend-wasm";
import "@tensorflow/tfjs-backend-webgpu";
import * as tfl from "@tensorflow/tfjs-layers";
import { adam, dispose, type OptimizerState, readParams, step } from "../mod.ts";
import { tfOptimizer } from "../tfjs.ts";
import { defineFlags, readFlags } from "./_flags.ts";
import { machine } from "./machine.ts";

const { quick, write } = readFlags(
  defineFlags({
    quick: { type: "boolean", help: "dense layers of 256K and 1M parameters, fewer rounds" },
    write: { type: "boolean", help: "also write the tfjs section of bench/RESULTS.md" },
  }),
  {
    command: "deno run --allow-read --allow-env --allow-run=cat bench/tfjs_bench.ts [flags]",
    summary: "The TensorFlow.js adapter against tf.train.adam on the same tfjs backend.",
  },
);
const entry = new URL(import.meta.resolve("@tensorflow/tfjs-backend-wasm"));
tfwasm.setWasmPaths(entry.pathname.replace(/[^/]*$/, ""));
tf.env().set("PROD", true);

const SIDES = quick ? [512, 1024] : [1024, 4096];
const ROUNDS = quick ? 3 : 5;

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

/** Waits for the GPU to finish what was submitted (a one-element readback). */
async function settle(v: tf.Tensor): Promise<void> {
  const one = tf.tidy(() => tf.slice(tf.reshape(v, [-1]), [0], [1]));
  await one.data();
  one.dispose();
}

/** Mean ms of `steps` calls of `f`, after which `sync` runs. */
async function timeSteps(f: () => unknown, steps: number, sync: () => Promise<void>) {
  const t0 = performance.now();
  for (let i = 0; i < steps; i++) await f();
  await sync();
  return (performance.now() - t0) / steps;
}

interface Row {
  backend: string;
  params: number;
  ours: number;
  theirs: number;
  kernel: number;
  oursFit: number;
  theirsFit: number;
}

function dense(side: number): tfl.Sequential {
  return tfl.sequential({ layers: [tfl.layers.dense({ units: side, inputShape: [side] })] });
}

/** Small random gradients of `m`'s weights, by variable name. */
function randomGradients(m: tfl.Sequential) {
  return Object.fromEntries(
    m.trainableWeights.map((w) => {
      const v = w.read() as tf.Variable;
      return [v.name, tf.tidy(() => tf.mul(tf.randomNormal(v.shape, 0, 1e-3), 1))];
    }),
  );
}

/**
 * The library's own step of `n` parameters on the same backend, zero copy: what the update costs
 * without the adapter's copies (on webgpu, on tfjs's own device).
 */
function libraryState(backend: string, n: number): Promise<OptimizerState<unknown>> {
  if (backend !== "webgpu") {
    return adam({ lr: 1e-4, nonFinite: "skip" }).init({ w: new Float32Array(n) });
  }
  const device = (tf.backend() as unknown as { device: GPUDevice }).device;
  return adam({ lr: 1e-4, backend: "webgpu" }).init({ w: new Float32Array(n) }, { device });
}

async function measure(backend: string, side: number): Promise<Row> {
  await tf.setBackend(backend);
  await tf.ready();
  const n = side * side + side;
  const steps = side >= 4096 ? 2 : 5;
  const ours = dense(side), theirs = dense(side);
  const ourOpt = tfOptimizer(adam({ lr: 1e-4, eps: 1e-7 }));
  const theirOpt = tf.train.adam(1e-4);
  ours.compile({ optimizer: ourOpt, loss: "meanSquaredError" });
  theirs.compile({ optimizer: theirOpt, loss: "meanSquaredError" });
  const ourGrads = randomGradients(ours), theirGrads = randomGradients(theirs);
  const ourVar = ours.trainableWeights[0].read(), theirVar = theirs.trainableWeights[0].read();
  const syncOurs = backend === "webgpu" ? () => settle(ourVar) : () => Promise.resolve();
  const syncTheirs = backend === "webgpu" ? () => settle(theirVar) : () => Promise.resolve();
  let state = await libraryState(backend, n);
  const kernelSync = backend === "webgpu"
    ? async () => {
      await readParams(state); // waits for the device (one readback of the params per round)
    }
    : () => Promise.resolve();
  const x = tf.randomNormal([32, side]), y = tf.randomNormal([32, side]);
  const warm = async () => {
    ourOpt.applyGradients(ourGrads);
    theirOpt.applyGradients(theirGrads);
    await syncOurs();
    await syncTheirs();
  };
  await warm();
  const r = { ours: [] as number[], theirs: [] as number[], kernel: [] as number[] };
  const fit = { ours: [] as number[], theirs: [] as number[] };
  for (let round = 0; round < ROUNDS; round++) {
    r.ours.push(await timeSteps(() => ourOpt.applyGradients(ourGrads), steps, syncOurs));
    r.theirs.push(await timeSteps(() => theirOpt.applyGradients(theirGrads), steps, syncTheirs));
    if (backend !== "webgpu") {
      r.kernel.push(
        await timeSteps(() => (state = step(state as OptimizerState)), steps, kernelSync),
      );
    }
    fit.ours.push(await timeSteps(() => ours.trainOnBatch(x, y), 1, syncOurs));
    fit.theirs.push(await timeSteps(() => theirs.trainOnBatch(x, y), 1, syncTheirs));
  }
  if (backend === "webgpu") {
    // Kernel alone: many steps, one wait at the end (readParams reads 4n bytes once).
    const k = quick ? 20 : 10;
    for (let round = 0; round < ROUNDS; round++) {
      const t0 = performance.now();
      for (let i = 0; i < k; i++) state = step(state as OptimizerState<GPUBuffer>);
      await kernelSync();
      r.kernel.push((performance.now() - t0) / k);
    }
  }
  const row: Row = {
    backend,
    params: n,
    ours: median(r.ours),
    theirs: median(r.theirs),
    kernel: median(r.kernel),
    oursFit: median(fit.ours),
    theirsFit: median(fit.theirs),
  };
  tf.dispose([...Object.values(ourGrads), ...Object.values(theirGrads), x, y]);
  ours.dispose();
  theirs.dispose();
  ourOpt.dispose();
  theirOpt.dispose();
  dispose(state);
  return row;
}

const backends = ["wasm"];
if (await navigator.gpu?.requestAdapter()) backends.push("webgpu");
const rows: Row[] = [];
for (const backend of backends) {
  for (const side of SIDES) {
    const row = await measure(backend, side);
    rows.push(row);
    console.error(
      `${backend} ${row.params}: adapter ${row.ours.toFixed(2)} ms, tfjs Adam ${
        row.theirs.toFixed(2)
      } ms, kernel ${row.kernel.toFixed(2)} ms; fit step ${row.oursFit.toFixed(1)} / ${
        row.theirsFit.toFixed(1)
      } ms`,
    );
  }
}

const fmt = (ms: number) => `${ms < 10 ? ms.toFixed(2) : ms.toFixed(1)} ms`;
const size = (n: number) => n >= 1e6 ? `${(n / 1048576).toFixed(0)}M` : `${(n / 1024).toFixed(0)}K`;
const adapterName = backends.includes("webgpu")
  ? ((await navigator.gpu.requestAdapter())!.info?.description || "an adapter")
  : "none";
const lines = [
  `## TensorFlow.js adapter (bench/tfjs_bench.ts${quick ? " --quick" : ""})`,
  "",
  `Run ${
    new Date().toISOString()
  } on ${machine()} (shared); WebGPU adapter: ${adapterName}. A dense layer of side × side + side parameters; \`tfOptimizer(adam({ lr, eps: 1e-7 }))\` against \`tf.train.adam(lr)\` on the same tfjs backend; median of ${ROUNDS} alternated rounds. "copies" is the adapter's \`applyGradients\` minus the library's own zero-copy step of the same size on the same backend (wasm kernel, or WebGPU on tfjs's device).`,
  "",
  "| tfjs backend | params | adapter applyGradients | tf.train.adam applyGradients | speed-up | library step alone | copies (measured) | fit step, adapter | fit step, tfjs Adam | fit speed-up |",
  "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
  ...rows.map((r) =>
    `| ${r.backend} | ${size(r.params)} | ${fmt(r.ours)} | ${fmt(r.theirs)} | ${
      (r.theirs / r.ours).toFixed(2)
    }× | ${fmt(r.kernel)} | ${fmt(Math.max(0, r.ours - r.kernel))} | ${fmt(r.oursFit)} | ${
      fmt(r.theirsFit)
    } | ${(r.theirsFit / r.oursFit).toFixed(2)}× |`
  ),
];
const section = lines.join("\n");
console.log(section);
if (write) {
  const path = new URL("RESULTS.md", import.meta.url);
  const old = await Deno.readTextFile(path);
  const block = `<!-- BEGIN tfjs_bench -->\n${section}\n<!-- END tfjs_bench -->`;
  const re = /<!-- BEGIN tfjs_bench -->[\s\S]*?<!-- END tfjs_bench -->/;
  await Deno.writeTextFile(
    path,
    re.test(old) ? old.replace(re, block) : `${old.trimEnd()}\n\n${block}\n`,
  );
  console.error("wrote the tfjs section of bench/RESULTS.md");
}
