/**
 * Training entirely on the GPU: a linear model's forward and backward pass run in WGSL, write
 * the gradient straight into the optimizer's GPU gradient slot, and `step` updates the
 * GPU-resident parameters in the same queue. Nothing is read back to the CPU until the end.
 *
 * The model is linear regression, `y ≈ X·w + b`, with the mean squared error; the data lives in
 * GPU buffers too. The parameters are one tensor `wb` of `d + 1` elements (`b` last).
 *
 * Run: `deno run examples/webgpu_training.ts` (WebGPU, e.g. Mesa's llvmpipe, is enough).
 *
 * @module
 */
import { type OptimizerState, radam, readParams, step } from "../mod.ts";
import type { GpuTensor } from "../mod.ts";

/** One thread a weight: g_j = 2/n Σ_i (x_i·w + b − y_i) · x_ij (x_ij = 1 for the bias). */
const GRADIENT_WGSL = /* wgsl */ `
struct Dims { n: u32, d: u32 }
@group(0) @binding(0) var<uniform> dims: Dims;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> y: array<f32>;
@group(0) @binding(3) var<storage, read> wb: array<f32>;
@group(0) @binding(4) var<storage, read_write> grad: array<f32>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) id: vec3<u32>) {
  let j = id.x;
  if (j > dims.d) { return; }
  var acc = 0.0;
  for (var i = 0u; i < dims.n; i++) {
    var pred = wb[dims.d];
    for (var k = 0u; k < dims.d; k++) { pred += x[i * dims.d + k] * wb[k]; }
    let feature = select(x[i * dims.d + j], 1.0, j == dims.d);
    acc += (pred - y[i]) * feature;
  }
  grad[j] = 2.0 * acc / f32(dims.n);
}`;

/** A model on the GPU: its data, the optimizer state, and one prepared gradient pass. */
export interface GpuModel {
  state: OptimizerState<GpuTensor>;
  /** Encodes and submits the backward pass into the state's gradient slot. */
  backward(): void;
}

function upload(
  device: GPUDevice,
  data: Float32Array<ArrayBuffer> | Uint32Array<ArrayBuffer>,
  usage: number,
): GPUBuffer {
  const buffer = device.createBuffer({ size: Math.max(16, data.byteLength), usage });
  device.queue.writeBuffer(buffer, 0, data);
  return buffer;
}

/** Puts `x` (n × d, row-major) and `y` on `device` and starts RAdam on zero weights. */
export async function gpuLinearModel(
  device: GPUDevice,
  x: Float32Array<ArrayBuffer>,
  y: Float32Array<ArrayBuffer>,
  lr = 0.05,
): Promise<GpuModel> {
  const n = y.length, d = x.length / n;
  const state = await radam({ lr }).init({ wb: new Float32Array(d + 1) }, { device });
  const storage = GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST;
  const dims = upload(
    device,
    new Uint32Array([n, d]),
    GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST,
  );
  const module = device.createShaderModule({ code: GRADIENT_WGSL });
  const pipeline = device.createComputePipeline({
    layout: "auto",
    compute: { module, entryPoint: "main" },
  });
  const { wb } = state.params, grad = state.grads.wb;
  // The slots never move, so one bind group serves every step.
  const bindGroup = device.createBindGroup({
    layout: pipeline.getBindGroupLayout(0),
    entries: [
      { binding: 0, resource: { buffer: dims } },
      { binding: 1, resource: { buffer: upload(device, x, storage) } },
      { binding: 2, resource: { buffer: upload(device, y, storage) } },
      { binding: 3, resource: { buffer: wb.buffer, offset: wb.offset, size: wb.size } },
      { binding: 4, resource: { buffer: grad.buffer, offset: grad.offset, size: grad.size } },
    ],
  });
  return {
    state,
    backward() {
      const encoder = device.createCommandEncoder();
      const pass = encoder.beginComputePass();
      pass.setPipeline(pipeline);
      pass.setBindGroup(0, bindGroup);
      pass.dispatchWorkgroups(Math.ceil((d + 1) / 64));
      pass.end();
      device.queue.submit([encoder.finish()]);
    },
  };
}

/** Trains for `steps` steps: backward pass, then `step(state)` on the zero-copy slot. */
export function train(model: GpuModel, steps: number): void {
  for (let t = 0; t < steps; t++) {
    model.backward();
    model.state = step(model.state);
  }
}

/** Synthetic data: y = Σ_j (j + 1)/d · x_j − 0.5, x uniform in [−1, 1]. */
export function syntheticData(
  n: number,
  d: number,
): { x: Float32Array<ArrayBuffer>; y: Float32Array<ArrayBuffer> } {
  let a = 7;
  const rand = () => ((a = (Math.imul(a, 1664525) + 1013904223) >>> 0) / 4294967296) * 2 - 1;
  const x = Float32Array.from({ length: n * d }, rand);
  const y = Float32Array.from({ length: n }, (_, i) => {
    let s = -0.5;
    for (let j = 0; j < d; j++) s += ((j + 1) / d) * x[i * d + j];
    return s;
  });
  return { x, y };
}

if (import.meta.main) {
  const adapter = await navigator.gpu?.requestAdapter();
  if (!adapter) throw new Error("No WebGPU adapter: this example needs WebGPU");
  const device = await adapter.requestDevice();
  const { x, y } = syntheticData(256, 8);
  const model = await gpuLinearModel(device, x, y);
  train(model, 300);
  const { wb } = await readParams(model.state); // the only readback
  console.log("learned", Array.from(wb, (v) => v.toFixed(3)).join(" "));
}
