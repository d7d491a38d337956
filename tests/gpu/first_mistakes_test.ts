/**
 * A new user's first mistakes with GPU tensors, and what the error tells them: GPU buffers as
 * params without init's `device` (a device the library requests could never use them); a whole
 * GPUBuffer whose size holds no whole number of f32s (once silently cut to fewer elements); GPU
 * gradients or params given to a state on a CPU backend (the error says which backend takes them);
 * init or loadState given a device destroyed earlier (once the driver's own error, or a state
 * started that could never step: now an Error saying the device was lost); param buffers of
 * another device (the error says which device to pass). The input errors are TypeErrors or
 * RangeErrors naming the tensor, and a state given a wrong gradient is left as it was.
 */
import assert from "node:assert/strict";
import {
  adam,
  type GpuTensor,
  loadState,
  type OptimizerState,
  readParams,
  saveState,
  step,
} from "../../mod.ts";
import { readAll } from "../cases.ts";
import { saying } from "../util.ts";
import { adapter, device, ignore } from "./gpu_device.ts";

const ALL = GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST;

/** A zeroed buffer of `size` bytes with `usage` on the shared device. */
function bufferOf(size: number, usage = ALL): GPUBuffer {
  return device!.createBuffer({ size, usage });
}

Deno.test({
  name: "webgpu: GPU buffers as params without init's device are a TypeError saying to pass it",
  ignore,
  async fn() {
    const buffers = [bufferOf(32), bufferOf(512)];
    try {
      for (const backend of ["auto", "webgpu"] as const) {
        await assert.rejects(
          () =>
            adam({ backend }).init({
              a: new Float32Array(4),
              w: buffers[0],
              b: { buffer: buffers[1], offset: 256, length: 4 },
            } as never),
          (error: Error) => {
            assert.ok(error instanceof TypeError, `${backend}: ${error}`);
            assert.match(error.message, /device option/);
            assert.match(error.message, /parameter "w", parameter "b"/);
            assert.doesNotMatch(error.message, /parameter "a"/);
            assert.match(error.message, /init\(params, \{ device \}\)/);
            return true;
          },
        );
      }
      // With the device, the same params start a state.
      const state = await adam().init({ w: buffers[0] }, { device });
      assert.equal(state.backend, "webgpu");
    } finally {
      for (const b of buffers) b.destroy();
    }
  },
});

Deno.test({
  name: "webgpu: a whole GPUBuffer whose size is not a multiple of 4 is a RangeError naming it",
  ignore,
  async fn() {
    const odd = bufferOf(10);
    const oddGrad = bufferOf(34);
    try {
      await assert.rejects(
        () => adam().init({ w: odd }, { device }),
        (error: Error) => {
          assert.ok(error instanceof RangeError, String(error));
          assert.match(error.message, /parameter "w"/);
          assert.match(error.message, /10-byte buffer/);
          assert.match(error.message, /\{ buffer, length \}/);
          return true;
        },
      );
      // As part of a buffer, it is fine: the caller says how many elements.
      const part = await adam().init({ w: { buffer: odd, length: 2 } }, { device });
      assert.equal(part.params.w.length, 2);
      // A gradient: 34 bytes for a tensor of 8 (once read as 8 elements), refused before the step.
      let state: OptimizerState<GpuTensor> = await adam({ lr: 0.1 }).init(
        { w: new Float32Array([1, 2, 3, 4, 5, 6, 7, 8]) },
        { device },
      );
      const before = await readAll(state);
      assert.throws(
        () => step(state, { w: oddGrad }),
        (error: Error) =>
          error instanceof RangeError && /gradient of parameter "w"/.test(error.message) &&
          /34-byte buffer/.test(error.message),
      );
      assert.deepEqual(await readAll(state), before);
      state = step(state, { w: new Float32Array(8).fill(1) }); // the state goes on
      assert.equal((await readParams(state)).w.length, 8);
      assert.equal(state.step, 1);
    } finally {
      odd.destroy();
      oddGrad.destroy();
    }
  },
});

Deno.test({
  name: "webgpu: GPU tensors given to a CPU state are a TypeError saying a webgpu state takes them",
  ignore,
  async fn() {
    const gpu = await adam().init({ w: new Float32Array(4) }, { device });
    const buffer = bufferOf(16);
    try {
      const cpu = await adam({ lr: 0.1 }).init({ w: new Float32Array([1, 2, 3, 4]) });
      assert.notEqual(cpu.backend, "webgpu");
      const before = await readAll(cpu);
      for (const grad of [buffer, gpu.grads.w, { buffer, length: 4 }]) {
        assert.throws(
          () => step(cpu, { w: grad } as never),
          (error: Error) =>
            error instanceof TypeError && /gradient of parameter "w"/.test(error.message) &&
            /webgpu backend/.test(error.message) && /\{ device \}/.test(error.message),
        );
      }
      assert.deepEqual(await readAll(cpu), before);
      assert.equal(step(cpu, { w: new Float32Array(4) }).step, 1); // not consumed
      for (const backend of ["wasm", "js"] as const) {
        await assert.rejects(
          () => adam({ backend }).init({ w: buffer } as never),
          (error: Error) =>
            error instanceof TypeError && /parameter "w"/.test(error.message) &&
            /webgpu backend/.test(error.message),
        );
      }
    } finally {
      buffer.destroy();
    }
  },
});

Deno.test({
  name: "webgpu: init and loadState on a lost device reject saying the device was lost",
  ignore,
  async fn() {
    const bytes = await saveState(await adam().init({ w: new Float32Array(4) }));
    const lost = (call: string) => (error: Error) =>
      !(error instanceof TypeError) && new RegExp(`device given to ${call} was lost`).test(
        error.message,
      ) && /requestDevice/.test(error.message);
    // Destroyed before anything was compiled on it (init's pipelines fail to compile).
    const fresh = await adapter!.requestDevice();
    fresh.destroy();
    await assert.rejects(
      () => adam().init({ w: new Float32Array(4) }, { device: fresh }),
      lost("init"),
    );
    const fresh2 = await adapter!.requestDevice();
    fresh2.destroy();
    await assert.rejects(() => loadState(bytes, { device: fresh2 }), lost("loadState"));
    // Destroyed after a state compiled its pipelines, once `device.lost` has said so.
    const used = await adapter!.requestDevice();
    await adam().init({ w: new Float32Array(4) }, { device: used });
    used.destroy();
    await used.lost;
    await assert.rejects(
      () => adam().init({ w: new Float32Array(4) }, { device: used }),
      lost("init"),
    );
    await assert.rejects(() => loadState(bytes, { device: used }), lost("loadState"));
  },
});

Deno.test({
  name:
    "webgpu: a param buffer fit neither to bind nor to copy: TypeError by usage, else RangeError",
  ignore,
  async fn() {
    const U = GPUBufferUsage;
    const readOnly = bufferOf(16, U.MAP_READ | U.COPY_DST);
    const misaligned = bufferOf(512, U.STORAGE | U.COPY_SRC);
    try {
      await assert.rejects(
        () => adam().init({ w: readOnly }, { device }),
        (error: Error) =>
          error instanceof TypeError && /parameter "w"/.test(error.message) &&
          /STORAGE/.test(error.message) && /COPY_SRC \| COPY_DST/.test(error.message),
      );
      await assert.rejects(
        () => adam().init({ w: { buffer: misaligned, offset: 4, length: 4 } }, { device }),
        (error: Error) =>
          error instanceof RangeError && /parameter "w"/.test(error.message) &&
          /minStorageBufferOffsetAlignment/.test(error.message),
      );
    } finally {
      readOnly.destroy();
      misaligned.destroy();
    }
  },
});

Deno.test({
  name: "webgpu: param buffers of another device say to pass the device that made them",
  ignore,
  async fn() {
    const other = await adapter!.requestDevice();
    const buffer = other.createBuffer({ size: 16, usage: ALL });
    try {
      await assert.rejects(
        () => adam().init({ w: buffer }, { device }),
        (error: Error) =>
          error instanceof TypeError && /parameter "w"/.test(error.message) &&
          /pass the GPUDevice that made them/.test(error.message),
      );
    } finally {
      other.destroy();
    }
  },
});

Deno.test({
  name: "webgpu: a list of gradients, or a layer's record of GPU tensors, says how to name them",
  ignore,
  async fn() {
    const buffers = [bufferOf(16), bufferOf(16)];
    try {
      const state = await adam({ backend: "webgpu" }).init({
        "fc1.weight": new Float32Array(4),
        "fc1.bias": new Float32Array(4),
      }, { device: device! });
      const hint = `(a list: give each gradient under its tensor's name, { "fc1.weight": …, ` +
        `"fc1.bias": … })`;
      const slots = [state.grads["fc1.weight"], state.grads["fc1.bias"]];
      const lists = [slots, buffers, [new Float32Array(4), new Float32Array(4)], slots.values()];
      for (const list of lists) {
        assert.throws(
          () => step(state, list as never),
          (error: Error) => error instanceof TypeError && error.message.endsWith(hint),
        );
      }
      const layer = { fc1: { weight: buffers[0], bias: { buffer: buffers[1], length: 4 } } };
      assert.throws(
        () => step(state, layer as never),
        saying(
          TypeError,
          'got an unexpected "fc1" (a record of tensors: name each by its path, ' +
            '{ "fc1.weight": …, "fc1.bias": … })',
        ),
      );
      assert.equal(state.step, 0);
      const next = step(state, { "fc1.weight": buffers[0], "fc1.bias": buffers[1] });
      assert.equal(next.step, 1);
      // A state of one bare tensor takes its gradient bare, not in a list.
      const bare = await adam({ backend: "webgpu" }).init(new Float32Array(4), { device: device! });
      assert.throws(
        () => step(bare, [buffers[0]] as never),
        saying(
          TypeError,
          "this state holds one tensor, given bare to init: pass its gradient bare",
        ),
      );
      assert.equal(step(bare, buffers[0]).step, 1);
    } finally {
      for (const b of buffers) b.destroy();
    }
  },
});
