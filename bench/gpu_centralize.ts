/**
 * WebGPU benchmark of gradient centralization (`gc`, as Ranger does it): the time a step of
 * `ranger()` takes against the same optimizer without `gc` (`ranger({ gc: false })`), on three
 * models: many small rank-2 tensors, a typical MLP/transformer of about 100 tensors, and one
 * big matrix. The difference is what centralization costs a step.
 *
 *   deno run --allow-sys=cpus bench/gpu_centralize.ts
 *   deno run --allow-sys=cpus bench/gpu_centralize.ts --steps=20 --models=many
 *
 * Each time is the median of `--runs` loops of `--steps` steps (a loop that never waits, then
 * `readParams`, which waits for the GPU), after a warm-up step. Not part of `deno task bench`
 * (that one runs on the CPU only).
 */
import os from "node:os";
import { dispose, ranger, readParams, step } from "../mod.ts";
import { defineFlags, readFlags } from "./_flags.ts";

const flags = readFlags(
  defineFlags({
    steps: { type: "number", min: 1, whole: true, default: 10, help: "steps a timed loop takes" },
    runs: {
      type: "number",
      min: 1,
      whole: true,
      default: 3,
      help: "timed loops of each case (the median is shown)",
    },
    models: {
      type: "strings",
      default: ["many", "transformer", "big"],
      choices: ["many", "transformer", "big"],
      help: "the models to time",
    },
  }),
  {
    command: "deno run --allow-sys=cpus bench/gpu_centralize.ts [flags]",
    summary: "What gradient centralization costs a WebGPU step, with many tensors and with one.",
  },
);

/** A model: its rank-2 tensors (rows × cols) and rank-1 ones (lengths), by name. */
type Model = Record<string, [number, number] | number>;

/** 5,000 rank-2 tensors of 16 × 24. */
function many(): Model {
  const m: Model = {};
  for (let i = 0; i < 5000; i++) m[`w${i}`] = [16, 24];
  return m;
}

/** A 6-layer transformer of width 256 (4 attention and 2 MLP matrices, 2 norms a layer). */
function transformer(): Model {
  const m: Model = { embed: [1000, 256] };
  for (let l = 0; l < 6; l++) {
    for (const p of ["q", "k", "v", "o"]) {
      m[`l${l}.${p}.weight`] = [256, 256];
      m[`l${l}.${p}.bias`] = 256;
    }
    m[`l${l}.up.weight`] = [1024, 256];
    m[`l${l}.up.bias`] = 1024;
    m[`l${l}.down.weight`] = [256, 1024];
    m[`l${l}.down.bias`] = 256;
    m[`l${l}.norm1`] = 256;
    m[`l${l}.norm2`] = 256;
  }
  m["head.weight"] = [10, 256];
  m["head.bias"] = 10;
  return m;
}

/** One 4096 × 1024 matrix. */
function big(): Model {
  return { w: [4096, 1024] };
}

const models: Record<string, () => Model> = { many, transformer, big };

/** Params and gradients of a model (deterministic values). */
function tensorsOf(model: Model) {
  const params: Record<string, Float32Array | { data: Float32Array; shape: number[] }> = {};
  const grads: Record<string, Float32Array> = {};
  let seed = 1;
  const next = () => (seed = (seed * 16807) % 2147483647) / 2147483647 - 0.5;
  for (const [name, shape] of Object.entries(model)) {
    const n = typeof shape === "number" ? shape : shape[0] * shape[1];
    const data = Float32Array.from({ length: n }, next);
    params[name] = typeof shape === "number" ? data : { data, shape };
    grads[name] = Float32Array.from({ length: n }, next);
  }
  return { params, grads };
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1];

/** Milliseconds a step of `model` takes with and without `gc`. */
async function timeModel(model: Model, gc: boolean): Promise<number> {
  const { params, grads } = tensorsOf(model);
  let state = await ranger({ lr: 1e-3, gc, backend: "webgpu" }).init(params, { device });
  state = step(state, grads);
  await readParams(state);
  const times = [];
  for (let r = 0; r < flags.runs; r++) {
    const t0 = performance.now();
    for (let i = 0; i < flags.steps; i++) state = step(state);
    await readParams(state);
    times.push((performance.now() - t0) / flags.steps);
  }
  dispose(state);
  return median(times);
}

const adapter = await navigator.gpu?.requestAdapter();
if (!adapter) throw new Error("No WebGPU adapter found");
const device = await adapter.requestDevice({
  requiredLimits: {
    maxStorageBufferBindingSize: adapter.limits.maxStorageBufferBindingSize,
    maxBufferSize: adapter.limits.maxBufferSize,
  },
});
const adapterName =
  `${adapter.info.vendor} ${adapter.info.architecture} ${adapter.info.description}`
    .replace(/\s+/g, " ").trim();
let cpu = "unknown";
try {
  cpu = os.cpus()[0]?.model ?? cpu;
} catch {
  // (no --allow-sys=cpus)
}
console.log(`adapter: ${adapterName}; CPU: ${cpu}, ${navigator.hardwareConcurrency} threads`);
console.log(`ms a step: median of ${flags.runs} loops of ${flags.steps} steps\n`);
console.log("| model | tensors (rank 2) | parameters | gc | no gc | gc's cost |");
console.log("| --- | ---: | ---: | ---: | ---: | ---: |");
for (const name of flags.models) {
  const model = models[name]();
  const shapes = Object.values(model);
  const rank2 = shapes.filter((s) => typeof s !== "number").length;
  const n = shapes.reduce<number>((a, s) => a + (typeof s === "number" ? s : s[0] * s[1]), 0);
  const withGc = await timeModel(model, true);
  const without = await timeModel(model, false);
  console.log(
    `| ${name} | ${shapes.length} (${rank2}) | ${n.toLocaleString("en")} | ${withGc.toFixed(2)} | ${
      without.toFixed(2)
    } | ${(withGc - without).toFixed(2)} |`,
  );
}
