/**
 * WebGPU benchmark: step time and effective bandwidth of the fused optimizer step
 * (28 bytes per parameter per step: read p, g, m, v, write p, m, v) against a plain WGSL vec4
 * copy kernel moving the same number of bytes in the same run (the practical limit), for
 * 1M, 16M and 256M parameters; plus the per-step CPU overhead (encode + submit) of a 1K model.
 *
 *   deno run bench/gpu_throughput.ts            # real GPU: 1M, 16M, 256M parameters
 *   deno run bench/gpu_throughput.ts --small    # software adapters (llvmpipe): 64K, 1M
 *   deno run --allow-write=bench bench/gpu_throughput.ts --write
 *                                               # also writes bench/GPU_RESULTS.md (date, adapter)
 *
 * The step is timed with `nonFinite: "propagate"` (the 28-byte update the copy kernel is compared
 * with) and with the default `"skip"` (one more read of the gradients, for the check: 32 bytes).
 *
 * Not part of `deno task bench` (that one runs on the CPU only).
 */
import { adam, step } from "../mod.ts";
import { COPY_KERNEL_WGSL, dispatchGrid, WORKGROUP_SIZE } from "../gpu/wgsl_kernel.ts";

const small = Deno.args.includes("--small");
const sizes = small ? [1 << 16, 1 << 20] : [1 << 20, 1 << 24, 1 << 28];
const steps = small ? 10 : 50;

const adapter = await navigator.gpu?.requestAdapter();
if (!adapter) throw new Error("No WebGPU adapter found");
const device = await adapter.requestDevice({
  requiredLimits: {
    maxStorageBufferBindingSize: adapter.limits.maxStorageBufferBindingSize,
    maxBufferSize: adapter.limits.maxBufferSize,
  },
});
console.log(`adapter: ${adapter.info.vendor} ${adapter.info.description}`);

async function timeSteps(n: number, nonFinite: "propagate" | "skip"): Promise<number> {
  let state = await adam({ lr: 1e-3, nonFinite }).init({ w: new Float32Array(n) }, { device });
  state = step(state);
  await device.queue.onSubmittedWorkDone();
  const t0 = performance.now();
  for (let i = 0; i < steps; i++) state = step(state);
  await device.queue.onSubmittedWorkDone();
  return (performance.now() - t0) / steps;
}

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

const adapterName =
  `${adapter.info.vendor} ${adapter.info.architecture} ${adapter.info.description}`
    .trim();
const rows: string[] = [];
for (const n of sizes) {
  const bytes = 28 * n; // per step
  const stepMs = await timeSteps(n, "propagate");
  const skipMs = await timeSteps(n, "skip");
  const copyMs = await timeCopy(bytes / 2); // copy reads and writes: 2 × bytes/2 moved
  const gbps = (ms: number, b = bytes) => (b / (ms / 1000) / 1e9).toFixed(1);
  console.log(
    `${n} params: step ${stepMs.toFixed(3)} ms (${gbps(stepMs)} GB/s), copy of the same bytes ${
      copyMs.toFixed(3)
    } ms (${gbps(copyMs)} GB/s): ${(100 * copyMs / stepMs).toFixed(0)}% of the copy limit; ` +
      `with the non-finite check ${skipMs.toFixed(3)} ms (${gbps(skipMs, 32 * n)} GB/s)`,
  );
  rows.push(
    `| ${n} | ${stepMs.toFixed(3)} ms | ${gbps(stepMs)} GB/s | ${copyMs.toFixed(3)} ms | ${
      gbps(copyMs)
    } GB/s | ${(100 * copyMs / stepMs).toFixed(0)}% | ${skipMs.toFixed(3)} ms |`,
  );
}

{
  let state = await adam().init({ w: new Float32Array(1024) }, { device });
  const count = 1000;
  for (let i = 0; i < 50; i++) state = step(state);
  await device.queue.onSubmittedWorkDone();
  const t0 = performance.now();
  for (let i = 0; i < count; i++) state = step(state);
  const cpuUs = (performance.now() - t0) * 1000 / count;
  await device.queue.onSubmittedWorkDone();
  console.log(`1K params: ${cpuUs.toFixed(1)} µs of CPU per step (encode + submit)`);
  if (Deno.args.includes("--write")) {
    await Deno.writeTextFile(
      "bench/GPU_RESULTS.md",
      [
        "# WebGPU benchmark results",
        "",
        `Generated by bench/gpu_throughput.ts on ${new Date().toISOString()}.`,
        "",
        `Adapter: ${adapterName}.`,
        "",
        'Step: Adam with `nonFinite: "propagate"` (28 bytes a parameter a step); copy: a plain',
        "WGSL vec4 copy kernel moving the same bytes (the practical limit); last column: the",
        'default `nonFinite: "skip"` (one more read of the gradients).',
        "",
        "| params | step | step bandwidth | copy | copy bandwidth | step / copy limit | step with check |",
        "|---:|---:|---:|---:|---:|---:|---:|",
        ...rows,
        "",
        `Per-step CPU time of a 1K-parameter model (encode + submit): ${cpuUs.toFixed(1)} µs.`,
        "",
      ].join("\n"),
    );
    console.log("wrote bench/GPU_RESULTS.md");
  }
}
