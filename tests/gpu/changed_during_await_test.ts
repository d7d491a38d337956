/**
 * On WebGPU, as on the CPU (tests/changed_during_await_test.ts): params or a checkpoint's bytes
 * made non-finite during init's or loadState's await are refused once copied, with a RangeError
 * saying so, and nothing of the state is left on the device.
 */
import assert from "node:assert/strict";
import { dispose, loadState, radam, saveState, step } from "../../mod.ts";
import { saying } from "../util.ts";
import { device, ignore, noGpuErrors } from "./gpu_device.ts";

Deno.test({
  name: "webgpu: params made non-finite during init's await are refused once copied",
  ignore,
  fn: () =>
    noGpuErrors(async () => {
      const w = new Float32Array([1, 2, 3, 4]);
      const made = radam({ backend: "webgpu" }).init({ w }, { device });
      w[2] = Infinity;
      await assert.rejects(
        made,
        saying(
          RangeError,
          'Expected parameter "w" to hold finite numbers, got Infinity at index 2',
        ),
      );
    }),
});

Deno.test({
  name:
    "webgpu: a checkpoint's bytes made non-finite during loadState's await are refused once copied",
  ignore,
  fn: () =>
    noGpuErrors(async () => {
      let state = await radam({ backend: "webgpu" }).init({ w: new Float32Array(4) }, { device });
      state = step(state, { w: new Float32Array([1, 1, 1, 1]) });
      const bytes = await saveState(state);
      dispose(state);
      const load = loadState(bytes, { backend: "webgpu", device });
      bytes.fill(0xff, bytes.length - 4);
      await assert.rejects(
        load,
        saying(RangeError, "The checkpoint's bytes changed while loadState() copied them"),
      );
    }),
});
