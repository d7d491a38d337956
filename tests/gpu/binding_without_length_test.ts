/**
 * A `GPUBufferBinding`, `{ buffer, offset, size }` (WebGPU's own shape, and a state's slots'),
 * given as params without `length`: as a tensor it was refused as "a Float32Array or { data,
 * shape }", with no word of GPU tensors, and given as the params themselves its `offset` was
 * taken for a tensor. Each error now says that a GPU tensor needs its length, in elements (size
 * is in bytes), as a gradient's already did; nothing is allocated.
 */
import assert from "node:assert/strict";
import { adam, readParams } from "../../mod.ts";
import { device, ignore } from "./gpu_device.ts";

const LENGTH_HINT = "(a GPU tensor { buffer, offset?, length } needs its length, a number of " +
  "elements; got undefined: a GPUBufferBinding's size is in bytes, length: size / 4)";

Deno.test({
  name: "webgpu: params given as { buffer, offset, size } say a GPU tensor needs its length",
  ignore,
  async fn() {
    const buffer = device!.createBuffer({
      size: 32,
      usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST,
    });
    try {
      await assert.rejects(
        adam().init({ w: { buffer, offset: 0, size: 32 } } as never, { device }),
        {
          name: "TypeError",
          message: 'Expected parameter "w" to be a Float32Array, { data: Float32Array, shape } ' +
            `or a GPU tensor, got Object ${LENGTH_HINT}`,
        },
      );
      await assert.rejects(adam().init({ buffer, offset: 0, size: 32 } as never, { device }), {
        name: "TypeError",
        message: "Expected the params to be a GPU tensor or a record of tensors, got { buffer, " +
          `offset, size } ${LENGTH_HINT}`,
      });
      // Without init's device, the CPU's check says a webgpu state takes GPU tensors.
      await assert.rejects(adam().init({ w: { buffer, offset: 0, size: 32 } } as never), {
        name: "TypeError",
        message:
          /got Object \(a GPU tensor: only a state on the webgpu backend takes those; .*init\(params, \{ device \}\)\)$/,
      });
      // What it says works: the length in elements.
      const state = await adam().init({ w: { buffer, offset: 0, length: 8 } }, { device });
      assert.deepEqual((await readParams(state)).w, new Float32Array(8));
    } finally {
      buffer.destroy();
    }
  },
});
