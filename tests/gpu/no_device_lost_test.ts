/**
 * A GPUDevice without a `lost` promise, as Deno before 2.6.4 gives (2.2.7 to 2.6.3 have WebGPU
 * but no `GPUDevice.lost`): init and loadState reject with an Error naming what the runtime lacks
 * and what runs instead, where init failed with "Cannot read properties of undefined (reading
 * 'then')" (and, where that was skipped, the state's first step with a misleading error).
 */
import assert from "node:assert/strict";
import { adam, loadState, saveState } from "../../mod.ts";
import { adapter, ignore } from "./gpu_device.ts";

Deno.test({
  name: "webgpu: a device without `lost` (Deno before 2.6.4): init and loadState say it is missing",
  ignore,
  async fn() {
    const device = await adapter!.requestDevice();
    Object.defineProperty(device, "lost", { value: undefined });
    const missing = (error: Error) => {
      assert.match(error.message, /needs GPUDevice\.lost, which this runtime's WebGPU lacks/);
      assert.match(error.message, /Deno before 2\.6\.4/);
      assert.match(error.message, /use backend "wasm" or "js"/);
      return true;
    };
    try {
      await assert.rejects(() => adam().init({ w: new Float32Array(4) }, { device }), missing);
      const bytes = await saveState(await adam().init({ w: new Float32Array(4) }));
      await assert.rejects(() => loadState(bytes, { device }), missing);
    } finally {
      device.destroy();
    }
  },
});
