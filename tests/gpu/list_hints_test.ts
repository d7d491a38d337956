/**
 * GPU tensors given to `init` in a list (or a `Set`), as PyTorch's `model.parameters()`, and GPU
 * gradients given to `step` in a `Set`: each error says to give each tensor under its name (once
 * a list of GPU buffers, or a Set, was refused without it), and leaves the state as it was.
 */
import assert from "node:assert/strict";
import { adam, step } from "../../mod.ts";
import { saying } from "../util.ts";
import { device, ignore } from "./gpu_device.ts";

Deno.test({
  name:
    "webgpu: a list or a Set of GPU tensors given to init, or of gradients to step, says to name each",
  ignore,
  async fn() {
    const usage = GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST;
    const buffers = [
      device!.createBuffer({ size: 16, usage }),
      device!.createBuffer({ size: 16, usage }),
    ];
    try {
      const hint = "as PyTorch's model.parameters(): name each, as its named_parameters() does";
      for (
        const [params, what] of [
          [buffers, "got Array(2) (a list, "],
          [[buffers[0], { buffer: buffers[1], length: 4 }], "got Array(2) (a list, "],
          [new Set(buffers), "got Set (a Set, "],
        ] as const
      ) {
        await assert.rejects(
          adam({ backend: "webgpu" }).init(params as never, { device: device! }),
          saying(TypeError, what + hint),
        );
      }
      const state = await adam({ backend: "webgpu" }).init({ w: buffers[0], b: buffers[1] }, {
        device: device!,
      });
      assert.throws(
        () => step(state, new Set(buffers) as never),
        saying(
          TypeError,
          'got Set (a Set: give each gradient under its tensor\'s name, { "w": …, "b": … })',
        ),
      );
      assert.equal(state.step, 0);
      assert.equal(step(state, { w: new Float32Array(4), b: new Float32Array(4) }).step, 1);
    } finally {
      for (const b of buffers) b.destroy();
    }
  },
});
