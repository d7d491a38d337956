/**
 * WebGPU benchmark: step time and effective bandwidth of the fused optimizer step (28 bytes per
 * parameter per step: read p, g, m, v, write p, m, v) against a plain WGSL vec4 copy kernel
 * moving the same number of bytes in the same run (the practical limit), with
 * `nonFinite: "propagate"`, the default `"skip"` (one more read of the gradients: 32 bytes),
 * `clipGradNorm` (with the default) and `states: "8bit"` (with the default: 20.1 bytes, the
 * moments a byte an element and a scale a block of 256); then where the host's time goes in a
 * step of a 1K model.
 *
 *   deno run --allow-sys=cpus bench/gpu_throughput.ts          # real GPU: 1M … 1B parameters
 *   deno run --allow-sys=cpus bench/gpu_throughput.ts --small  # software adapters: 64K, 1M
 *   deno run --allow-sys=cpus --allow-write=bench bench/gpu_throughput.ts --write
 *                                               # also writes bench/GPU_RESULTS.md (date, adapter)
 *
 * On the lent GPU machine (the `device` tool: no Deno and no network there), run once here
 * `bash tools/device/prepare.sh` (Deno xz-compressed into `.device/`, the Vulkan loaders into
 * `.gl/`), then there `bash tools/device/run.sh` with carry `[".device", ".gl"]`; it writes
 * bench/GPU_RESULTS.md and returns it in `$OUT`.
 *
 * The params are a `GPUBuffer` the state updates in place (as a model's weights on the GPU), the
 * gradients the state's own slots (zero copy).
 *
 * The host's time per step (1K parameters): the wall time of `step` in a loop that never waits;
 * then the same loop with every dispatch given zero workgroups, so that the adapter runs
 * nothing: software adapters (llvmpipe) run the kernels inside `queue.submit`, on the calling
 * thread's clock, and that loop is what the host alone costs there. Its breakdown times each
 * WebGPU call of a step (each wrapped in `performance.now`, which adds about a microsecond a
 * call) and counts the calls, passes, dispatches, uploads and readbacks a step makes.
 * Timings are medians of repeated runs, with the fastest run beside them.
 *
 * Not part of `deno task bench` (that one runs on the CPU only).
 */
import os from "node:os";
import { adam, dispose, type OptimizerState, step } from "../mod.ts";
import { COPY_KERNEL_WGSL, dispatchGrid, WORKGROUP_SIZE } from "../gpu/wgsl_kernel.ts";
import { defineFlags, readFlags } from "./_flags.ts";

const { small, write } = readFlags(
  defineFlags({
    small: { type: "boolean", help: "64K and 1M parameters (software adapters)" },
    write: { type: "boolean", help: "also write bench/GPU_RESULTS.md" },
  }),
  {
    command: "deno run --allow-sys=cpus bench/gpu_throughput.ts [flags]",
    summary: "The WebGPU step's time and bandwidth against a copy kernel, and the host's time.",
  },
);
const sizes = small ? [1 << 16, 1 << 20] : [1 << 20, 1 << 24, 1 << 28, 1 << 29, 1_000_000_000];
const steps = small ? 10 : 50;

const adapter = await navigator.gpu?.requestAdapter();
if (!adapter) throw new Error("No WebGPU adapter found");
const device = await adapter.requestDevice({
  requiredLimits: {
    maxStorageBufferBindingSize: adapter.limits.maxStorageBufferBindingSize,
    maxBufferSize: adapter.limits.maxBufferSize,
    maxComputeWorkgroupsPerDimension: adapter.limits.maxComputeWorkgroupsPerDimension,
  },
});
const adapterName =
  `${adapter.info.vendor} ${adapter.info.architecture} ${adapter.info.description}`
    .replace(/\s+/g, " ").trim();
const cpuName = cpuModel();
console.log(`adapter: ${adapterName}; CPU: ${cpuName}`);

/** The host CPU's model name (needs `--allow-sys=cpus`), or "unknown". */
function cpuModel(): string {
  try {
    return `${os.cpus()[0]?.model ?? "unknown"}, ${navigator.hardwareConcurrency} threads`;
  } catch {
    return `unknown, ${navigator.hardwareConcurrency} threads`;
  }
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1];

/** Options of one benchmarked state. */
interface Variant {
  label: string;
  nonFinite: "propagate" | "skip";
  clipGradNorm?: number;
  /** 8-bit moments: the params in the arena (a compact tensor's GPU buffer would be copied). */
  states?: "8bit";
}

const variants: Variant[] = [
  { label: 'nonFinite "propagate"', nonFinite: "propagate" },
  { label: 'nonFinite "skip" (default)', nonFinite: "skip" },
  { label: "clipGradNorm: 1 (default nonFinite)", nonFinite: "skip", clipGradNorm: 1 },
  { label: 'states "8bit" (default nonFinite)', nonFinite: "skip", states: "8bit" },
];

/**
 * Bytes a step moves per parameter: p, g, m, v read and p, m, v written (4 B each, 1 B a code
 * and 4 B a block of 256 per moment with 8-bit moments), and one more read of g for the norm.
 */
function bytesPerParam(v: Variant): number {
  const moments = v.states === "8bit" ? 2 * 2 * (1 + 4 / 256) : 16;
  return 12 + moments + (v.nonFinite === "propagate" && v.clipGradNorm === undefined ? 0 : 4);
}

/** A state of `n` parameters in a caller's GPU buffer (updated in place), and that buffer. */
async function makeState(
  n: number,
  v: Variant,
): Promise<{ state: OptimizerState<unknown>; buffer: GPUBuffer }> {
  const buffer = device.createBuffer({
    size: Math.ceil(n / 4) * 16,
    usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST,
  });
  const opt = adam({
    lr: 1e-3,
    nonFinite: v.nonFinite,
    clipGradNorm: v.clipGradNorm,
    states: v.states,
  });
  const w = v.states === "8bit" ? new Float32Array(n) : { buffer, length: n };
  const state = await opt.init({ w }, { device });
  return { state, buffer };
}

/** Milliseconds a step of `n` parameters takes on the GPU (a loop, then waiting for it). */
async function timeSteps(n: number, v: Variant): Promise<number> {
  const made = await makeState(n, v);
  let state = step(made.state);
  await device.queue.onSubmittedWorkDone();
  const t0 = performance.now();
  for (let i = 0; i < steps; i++) state = step(state);
  await device.queue.onSubmittedWorkDone();
  const ms = (performance.now() - t0) / steps;
  dispose(state);
  made.buffer.destroy();
  return ms;
}

/** Milliseconds a plain vec4 copy of `bytes` bytes takes (binding-sized pairs of buffers). */
async function timeCopy(bytes: number): Promise<number> {
  const limit = Math.min(device.limits.maxStorageBufferBindingSize, device.limits.maxBufferSize);
  const pairBytes = Math.floor(limit / 256) * 256;
  const module = device.createShaderModule({ code: COPY_KERNEL_WGSL });
  const pipeline = await device.createComputePipelineAsync({
    layout: "auto",
    compute: { module, entryPoint: "copy" },
  });
  const usage = GPUBufferUsage.STORAGE;
  const jobs: { group: GPUBindGroup; grid: [number, number]; buffers: GPUBuffer[] }[] = [];
  for (let done = 0; done < bytes; done += pairBytes) {
    const size = Math.ceil(Math.min(pairBytes, bytes - done) / 16) * 16;
    const src = device.createBuffer({ size, usage });
    const dst = device.createBuffer({ size, usage });
    const group = device.createBindGroup({
      layout: pipeline.getBindGroupLayout(0),
      entries: [{ binding: 0, resource: { buffer: src } }, {
        binding: 1,
        resource: { buffer: dst },
      }],
    });
    const groups = Math.ceil(size / 16 / WORKGROUP_SIZE);
    jobs.push({
      group,
      grid: dispatchGrid(groups, device.limits.maxComputeWorkgroupsPerDimension),
      buffers: [src, dst],
    });
  }
  const run = () => {
    const encoder = device.createCommandEncoder();
    const pass = encoder.beginComputePass();
    pass.setPipeline(pipeline);
    for (const job of jobs) {
      pass.setBindGroup(0, job.group);
      pass.dispatchWorkgroups(job.grid[0], job.grid[1]);
    }
    pass.end();
    device.queue.submit([encoder.finish()]);
  };
  run();
  await device.queue.onSubmittedWorkDone();
  const t0 = performance.now();
  for (let i = 0; i < steps; i++) run();
  await device.queue.onSubmittedWorkDone();
  const ms = (performance.now() - t0) / steps;
  for (const job of jobs) job.buffers.forEach((b) => b.destroy());
  return ms;
}

// --- Throughput ---

const gbps = (bytes: number, ms: number) => (bytes / (ms / 1000) / 1e9).toFixed(1);
const rows: string[] = [];
/** `f`, failing on any GPU validation or out-of-memory error it causes. */
async function guarded<T>(f: () => Promise<T>): Promise<T> {
  device.pushErrorScope("out-of-memory");
  device.pushErrorScope("validation");
  let out: T | undefined, failure: unknown;
  try {
    out = await f();
  } catch (error) {
    failure = error;
  }
  const validation = await device.popErrorScope();
  const oom = await device.popErrorScope();
  if (failure !== undefined) throw failure;
  if (validation || oom) throw new Error((validation ?? oom)!.message);
  return out as T;
}

for (const n of sizes) {
  try {
    const copyMs = await guarded(() => timeCopy(14 * n)); // reads and writes: 28 B a parameter
    const cells = [
      `${n.toLocaleString("en-US")}`,
      `${copyMs.toFixed(3)} ms (${gbps(28 * n, copyMs)} GB/s)`,
    ];
    const line = [`${n} params: copy of 28 B/param ${copyMs.toFixed(3)} ms`];
    for (const v of variants) {
      const ms = await guarded(() => timeSteps(n, v));
      const bytes = bytesPerParam(v) * n;
      cells.push(
        `${ms.toFixed(3)} ms (${gbps(bytes, ms)} GB/s, ${(100 * copyMs / ms).toFixed(0)}%)`,
      );
      line.push(`${v.label} ${ms.toFixed(3)} ms (${(100 * copyMs / ms).toFixed(0)}% of the copy)`);
    }
    console.log(line.join("; "));
    rows.push(`| ${cells.join(" | ")} |`);
  } catch (error) {
    const why = error instanceof Error ? error.message : String(error);
    console.log(`${n} params: not run (${why})`);
    rows.push(`| ${n.toLocaleString("en-US")} | not run: ${why.replaceAll("|", "/")} |`);
  }
}

// --- The host's time per step ---

/** Calls and milliseconds of one WebGPU method, recorded while `recording`. */
interface CallStats {
  calls: number;
  ms: number;
}
const stats = new Map<string, CallStats>();
let recording = false;
let zeroWorkgroups = false;
const restore: (() => void)[] = [];

/** Wraps `proto[name]` to count and time its calls (and to zero dispatches' workgroups). */
function instrument(proto: object, name: string): void {
  const target = proto as Record<string, (...args: unknown[]) => unknown>;
  const original = target[name];
  const dispatch = name === "dispatchWorkgroups";
  target[name] = function (this: unknown, ...args: unknown[]) {
    if (dispatch && zeroWorkgroups) args = [0];
    if (!recording) return original.apply(this, args);
    const t0 = performance.now();
    try {
      return original.apply(this, args);
    } finally {
      const s = stats.get(name) ?? { calls: 0, ms: 0 };
      s.calls++;
      s.ms += performance.now() - t0;
      stats.set(name, s);
    }
  };
  restore.push(() => target[name] = original);
}
instrument(GPUDevice.prototype, "createCommandEncoder");
instrument(GPUQueue.prototype, "writeBuffer");
instrument(GPUQueue.prototype, "submit");
for (const name of ["beginComputePass", "copyBufferToBuffer", "finish"]) {
  instrument(GPUCommandEncoder.prototype, name);
}
for (const name of ["setPipeline", "setBindGroup", "dispatchWorkgroups", "end"]) {
  instrument(GPUComputePassEncoder.prototype, name);
}
for (const name of ["mapAsync", "getMappedRange", "unmap"]) instrument(GPUBuffer.prototype, name);

const HOST_N = 1024;
const LOOP = 200; // below the ring's 1024 steps: the device may lag that far with zero workgroups
const REPEATS = small ? 15 : 9;

/** µs a step of a 1K state takes in a loop of LOOP steps, median and fastest of REPEATS runs. */
async function hostTime(v: Variant, zero: boolean): Promise<{ median: number; min: number }> {
  const runs: number[] = [];
  for (let r = 0; r < REPEATS; r++) {
    const made = await makeState(HOST_N, v);
    let state = made.state;
    for (let i = 0; i < 20; i++) state = step(state);
    await device.queue.onSubmittedWorkDone();
    zeroWorkgroups = zero;
    const t0 = performance.now();
    for (let i = 0; i < LOOP; i++) state = step(state);
    runs.push((performance.now() - t0) * 1000 / LOOP);
    zeroWorkgroups = false;
    await device.queue.onSubmittedWorkDone();
    dispose(state);
    made.buffer.destroy();
  }
  return { median: median(runs), min: Math.min(...runs) };
}

/**
 * Per-step calls and µs of each WebGPU method (zero workgroups; medians of the runs), and the
 * µs of `step` outside them (JS: checks, scalars, the state handle).
 */
async function breakdown(v: Variant): Promise<{ per: Map<string, CallStats>; js: number }> {
  const runs = new Map<string, CallStats[]>();
  const js: number[] = [];
  for (let r = 0; r < REPEATS; r++) {
    const made = await makeState(HOST_N, v);
    let state = made.state;
    for (let i = 0; i < 20; i++) state = step(state);
    await device.queue.onSubmittedWorkDone();
    stats.clear();
    zeroWorkgroups = true;
    recording = true;
    const t0 = performance.now();
    for (let i = 0; i < LOOP; i++) state = step(state);
    const total = performance.now() - t0;
    recording = false;
    zeroWorkgroups = false;
    let inCalls = 0;
    for (const [name, s] of stats) {
      inCalls += s.ms;
      const list = runs.get(name) ?? [];
      list.push({ calls: s.calls / LOOP, ms: s.ms / LOOP });
      runs.set(name, list);
    }
    js.push((total - inCalls) * 1000 / LOOP);
    await device.queue.onSubmittedWorkDone();
    dispose(state);
    made.buffer.destroy();
  }
  const per = new Map<string, CallStats>();
  for (const [name, list] of runs) {
    per.set(name, { calls: median(list.map((x) => x.calls)), ms: median(list.map((x) => x.ms)) });
  }
  return { per, js: median(js) };
}

/** µs of an empty command buffer's encode and submit (the runtime's floor per submission). */
function emptySubmit(): number {
  const runs: number[] = [];
  for (let r = 0; r < REPEATS; r++) {
    const t0 = performance.now();
    for (let i = 0; i < LOOP; i++) device.queue.submit([device.createCommandEncoder().finish()]);
    runs.push((performance.now() - t0) * 1000 / LOOP);
  }
  return median(runs);
}

const ENCODE = [
  "createCommandEncoder",
  "beginComputePass",
  "setPipeline",
  "setBindGroup",
  "dispatchWorkgroups",
  "copyBufferToBuffer",
  "end",
];
const READBACK = ["mapAsync", "getMappedRange", "unmap"];
const hostRows: string[] = [];
const hostLines: string[] = [];
const floor = emptySubmit();
await device.queue.onSubmittedWorkDone();
for (const v of variants.slice(0, 2)) {
  const wall = await hostTime(v, false);
  const host = await hostTime(v, true);
  const { per, js } = await breakdown(v);
  const us = (names: string[]) => names.reduce((a, n) => a + (per.get(n)?.ms ?? 0), 0) * 1000;
  const calls = (names: string[]) => names.reduce((a, n) => a + (per.get(n)?.calls ?? 0), 0);
  const all = [...per.keys()];
  const f = (x: number) => x.toFixed(1);
  const c = (x: number) => x.toFixed(2);
  hostRows.push(
    `| ${v.label} | ${f(wall.median)} (${f(wall.min)}) | ${f(host.median)} (${f(host.min)}) | ${
      f(us(ENCODE))
    } | ${f(us(["finish"]))} | ${f(us(["submit"]))} | ${f(us(["writeBuffer"]))} | ${
      f(us(READBACK))
    } | ${f(js)} | ${c(calls(all))} | ${c(calls(["beginComputePass"]))} | ${
      c(calls(["dispatchWorkgroups"]))
    } | ${c(calls(["writeBuffer"]))} | ${c(calls(["mapAsync"]))} |`,
  );
  hostLines.push(
    `1K params, ${v.label}: ${f(wall.median)} µs of CPU per step (encode + submit, fastest run ${
      f(wall.min)
    }); host alone (zero workgroups) ${f(host.median)} µs (fastest ${f(host.min)}): encode ${
      f(us(ENCODE))
    }, finish ${f(us(["finish"]))}, submit ${f(us(["submit"]))}, writeBuffer ${
      f(us(["writeBuffer"]))
    }, readback ${f(us(READBACK))}, JS outside WebGPU calls ${f(js)} µs; per step ${
      c(calls(all))
    } WebGPU calls, ${c(calls(["beginComputePass"]))} passes, ${
      c(calls(["dispatchWorkgroups"]))
    } dispatches, ${c(calls(["writeBuffer"]))} writeBuffer, ${c(calls(["mapAsync"]))} mapAsync`,
  );
  console.log(hostLines[hostLines.length - 1]);
}
for (const undo of restore) undo();
console.log(`an empty command buffer, encoded and submitted: ${floor.toFixed(1)} µs`);

if (write) {
  await Deno.writeTextFile(
    "bench/GPU_RESULTS.md",
    [
      "# WebGPU benchmark results",
      "",
      `Generated by \`bench/gpu_throughput.ts${small ? " --small" : ""}\` on ${
        new Date().toISOString()
      }.`,
      "",
      `Adapter: ${adapterName}. Host CPU: ${cpuName}.`,
      "",
      "## Throughput",
      "",
      "Adam, params in a caller's `GPUBuffer` updated in place, gradients in the state's slots.",
      "Copy: a plain WGSL vec4 copy kernel moving 28 bytes a parameter (the practical limit); a step",
      'with `"propagate"` moves 28 bytes a parameter, with the non-finite check or clipping 32 (one',
      'more read of the gradients); with `states: "8bit"` (params in the arena, not a caller\'s',
      "buffer) 20.1 (codes of a byte, a scale a block of 256). Bandwidth counts those bytes; the",
      "percentage is the copy's time over the step's.",
      "",
      `| params | copy | ${variants.map((v) => v.label).join(" | ")} |`,
      `|---:|---:|${variants.map(() => "---:").join("|")}|`,
      ...rows,
      "",
      "## The host's time per step (1K parameters)",
      "",
      "µs per step, median of runs (fastest run in parentheses). Wall: `step` in a loop that never",
      "waits (encode + submit; a software adapter runs the kernels inside `submit`). Host: the same",
      "loop with every dispatch given zero workgroups, so the adapter runs nothing. The breakdown",
      "(µs and calls a step) times each WebGPU call of the host loop; each timing adds about 1 µs",
      "a call. JS: the rest of `step` (checks, scalars, the state handle).",
      "",
      "| nonFinite | wall | host | encode | finish | submit | writeBuffer | readback | JS | WebGPU calls | passes | dispatches | writeBuffer calls | mapAsync calls |",
      "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
      ...hostRows,
      "",
      `An empty command buffer, encoded and submitted: ${floor.toFixed(1)} µs.`,
      "",
    ].join("\n"),
  );
  console.log("wrote bench/GPU_RESULTS.md");
}
