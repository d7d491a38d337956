import assert from "node:assert/strict";
import { radam, readParams, step } from "../mod.ts";
import { gpuLinearModel, syntheticData, train } from "./webgpu_training.ts";

const adapter = await navigator.gpu?.requestAdapter();
if (!adapter) {
  throw new Error(
    "No WebGPU adapter found: this example's test needs one (Mesa's llvmpipe will do)",
  );
}

Deno.test("webgpu example: forward/backward in WGSL + GPU steps learn the model, like the CPU", async () => {
  const device = await adapter.requestDevice();
  device.pushErrorScope("validation");
  const n = 64, d = 5;
  const { x, y } = syntheticData(n, d);
  const model = await gpuLinearModel(device, x, y, 0.05);
  train(model, 200);
  const gpu = (await readParams(model.state)).wb;
  assert.equal(await device.popErrorScope(), null);

  // The same training on the CPU: gradient computed in JavaScript, steps on wasm.
  let state = await radam({ lr: 0.05 }).init({ wb: new Float32Array(d + 1) });
  for (let t = 0; t < 200; t++) {
    const w = state.params.wb, g = state.grads.wb;
    g.fill(0);
    for (let i = 0; i < n; i++) {
      let pred = w[d];
      for (let k = 0; k < d; k++) pred += x[i * d + k] * w[k];
      const err = Math.fround(pred - y[i]);
      for (let k = 0; k < d; k++) g[k] += err * x[i * d + k];
      g[d] += err;
    }
    for (let j = 0; j <= d; j++) g[j] = (2 * g[j]) / n;
    state = step(state);
  }
  const cpu = (await readParams(state)).wb;
  for (let j = 0; j <= d; j++) {
    const truth = j === d ? -0.5 : (j + 1) / d;
    assert.ok(Math.abs(gpu[j] - truth) < 0.05, `gpu w[${j}] = ${gpu[j]}, truth ${truth}`);
    assert.ok(Math.abs(gpu[j] - cpu[j]) < 1e-3, `gpu ${gpu[j]} vs cpu ${cpu[j]}`);
  }
});
