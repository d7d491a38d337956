/**
 * The record of gradients a WebGPU step is given: the state's own `state.grads` (its slots, as
 * they are, as `step(state)` takes them); a plain record of states' slots (`{ ...state.grads }`),
 * taken as they are, their buffers' fields not read (a few hundred nanoseconds a tensor a step);
 * slots of a state on another device or of a disposed one, and buffers of the caller's that a
 * state on another device took, refused at the call (the GPU's refusal came a step later);
 * and a record with a name the state lacks, which is refused with the CPU backends' words (their
 * hint was missing) and, among many tensors, found by a count, not a search of the names for
 * each key (quadratic in the tensors: a millisecond a step at 1000).
 */
import assert from "node:assert/strict";
import { adam, dispose, type GpuTensor, readParams, step } from "../../mod.ts";
import { adapter, device, ignore, noGpuErrors } from "./gpu_device.ts";

/** The fields of a GPUBuffer that a check of a gradient in one reads. */
const BUFFER_FIELDS = ["size", "usage", "mapState"] as const;

/** `f()`, and how many times it read a field of {@linkcode BUFFER_FIELDS} of any GPUBuffer. */
function bufferReads(f: () => void): number {
  const saved = BUFFER_FIELDS.map((k) => Object.getOwnPropertyDescriptor(GPUBuffer.prototype, k)!);
  let reads = 0;
  BUFFER_FIELDS.forEach((k, i) =>
    Object.defineProperty(GPUBuffer.prototype, k, {
      ...saved[i],
      get(this: GPUBuffer) {
        reads++;
        return saved[i].get!.call(this);
      },
    })
  );
  try {
    f();
  } finally {
    BUFFER_FIELDS.forEach((k, i) => Object.defineProperty(GPUBuffer.prototype, k, saved[i]));
  }
  return reads;
}

Deno.test({
  name:
    "webgpu: a plain record of states' slots ({ ...state.grads }, another state's) is taken as the slots are, their buffers' fields not read, and steps as step(state) does",
  ignore,
  async fn() {
    const opt = adam({ lr: 0.1, backend: "webgpu" });
    const params = { w: new Float32Array([1, 2, 3]), b: new Float32Array([4]) };
    let [a, b, c] = await Promise.all([0, 1, 2].map(() => opt.init(params, { device })));
    try {
      await noGpuErrors(async () => {
        for (const s of [a, b, c]) {
          device!.queue.writeBuffer(s.grads.w.buffer, s.grads.w.offset, Float32Array.of(1, -1, 2));
          device!.queue.writeBuffer(s.grads.b.buffer, s.grads.b.offset, Float32Array.of(-3));
        }
        assert.equal(bufferReads(() => a = step(a, { ...a.grads })), 0);
        assert.equal(bufferReads(() => b = step(b, { w: b.grads.w, b: b.grads.b })), 0);
        assert.equal(bufferReads(() => c = step(c, { ...a.grads })), 0); // (a's, copied)
        const d = await opt.init(params, { device });
        const x = await readParams(d).finally(() => dispose(d));
        const stepped = await Promise.all([a, b, c].map(readParams));
        for (const y of stepped) assert.deepEqual(y, stepped[0]);
        assert.ok(stepped[0].w[0] < x.w[0] && stepped[0].b[0] > x.b[0], "stepped");
      });
      // A copy of a slot's fields is no slot of the library's: checked as any GPU tensor.
      const copies = { w: { ...a.grads.w }, b: { ...a.grads.b } };
      assert.ok(bufferReads(() => a = step(a, copies)) > 0);
      // And a slot of another length is refused, naming the tensor, the state as it was.
      const other = await opt.init({ w: new Float32Array(4), b: new Float32Array(1) }, { device });
      try {
        assert.throws(
          () => step(a, { ...other.grads }),
          /^RangeError: Expected the gradient of parameter "w" to have length 3, got 4$/,
        );
        assert.equal(a.step, 2);
      } finally {
        dispose(other);
      }
    } finally {
      for (const s of [a, b, c]) dispose(s);
    }
  },
});

Deno.test({
  name:
    "webgpu: a gradient in the buffers of a state on another device is a TypeError naming the tensor at the call (the GPU refused the step, and the call after threw), the state as it was",
  ignore,
  async fn() {
    const other = await adapter!.requestDevice();
    const opt = adam({ lr: 0.1, backend: "webgpu" });
    const params = { w: new Float32Array([1, 2, 3]), b: new Float32Array([4]) };
    let state = await opt.init(params, { device });
    const there = await opt.init(params, { device: other });
    try {
      await noGpuErrors(async () => {
        const before = await readParams(state);
        const slot = there.grads.w;
        const range = { buffer: slot.buffer, offset: slot.offset, length: 3 };
        const given: [string, unknown][] = [
          ["its slots", there.grads],
          ["a plain record of them", { ...there.grads }],
          ["one of them", { w: slot, b: state.grads.b }],
          ["a range of its buffer", { w: range, b: Float32Array.of(1) }],
          ["its params", { w: new Float32Array(3), b: there.params.b }],
        ];
        for (const [what, grads] of given) {
          assert.throws(
            () => step(state, grads as Record<string, GpuTensor>),
            (error: Error) =>
              error instanceof TypeError &&
              /^Expected the gradient of parameter "[wb]" to be in a buffer of the state's GPUDevice, got a range of the buffers of a state on another GPUDevice/
                .test(error.message) &&
              /as a Float32Array/.test(error.message),
            what,
          );
        }
        assert.equal(state.step, 0);
        assert.deepEqual(await readParams(state), before);
        state = step(state, { w: Float32Array.of(1, 1, 1), b: Float32Array.of(1) });
        assert.ok((await readParams(state)).w[0] < 1);
      });
    } finally {
      dispose(state);
      dispose(there);
      other.destroy();
    }
  },
});

Deno.test({
  name:
    "webgpu: a buffer of the caller's that a state on another device took (its param, a gradient it stepped from) is refused as a gradient at the call, naming the tensor (the GPU refused the step, and the call after threw), the state as it was",
  ignore,
  async fn() {
    const other = await adapter!.requestDevice();
    const usage = GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST;
    const param = other.createBuffer({ size: 16, usage });
    const grad = other.createBuffer({ size: 16, usage });
    const opt = adam({ lr: 0.1, backend: "webgpu" });
    let there = await opt.init({ w: param }, { device: other });
    let state = await opt.init({ w: Float32Array.of(1, 2, 3, 4) }, { device });
    try {
      there = step(there, { w: grad });
      await readParams(there); // (the GPU took both)
      await noGpuErrors(async () => {
        const given: [string, unknown][] = [
          ["its param's buffer", param],
          ["the buffer it stepped from", grad],
          ["a range of it", { buffer: grad, offset: 0, length: 4 }],
        ];
        for (const [what, g] of given) {
          assert.throws(
            () => step(state, { w: g as GPUBuffer }),
            (error: Error) =>
              error instanceof TypeError &&
              /^Expected the gradient of parameter "w" to be in a buffer of the state's GPUDevice, got a GPUBuffer of another GPUDevice/
                .test(error.message),
            what,
          );
        }
        assert.equal(state.step, 0);
        assert.deepEqual((await readParams(state)).w, Float32Array.of(1, 2, 3, 4));
        state = step(state, { w: Float32Array.of(1, 1, 1, 1) });
        assert.ok((await readParams(state)).w[0] < 1);
      });
    } finally {
      dispose(state);
      dispose(there);
      other.destroy();
    }
  },
});

Deno.test({
  name:
    "webgpu: a buffer of the caller's that a state on another device never read (an empty param's) is not taken for that device's: as a gradient on its own device it steps",
  ignore,
  async fn() {
    const other = await adapter!.requestDevice();
    const usage = GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST;
    const mine = device!.createBuffer({ size: 16, usage }); // of the shared device
    const opt = adam({ lr: 0.1, backend: "webgpu" });
    // An empty tensor's range: the GPU copies and binds none of it, and refuses nothing.
    let there = await opt.init({
      e: { buffer: mine, offset: 0, length: 0 },
      b: Float32Array.of(1),
    }, { device: other });
    let state = await opt.init({ w: Float32Array.of(1, 2, 3, 4) }, { device });
    try {
      there = step(there, { e: new Float32Array(0), b: Float32Array.of(1) });
      await readParams(there); // (its error scope popped clean)
      await noGpuErrors(async () => {
        device!.queue.writeBuffer(mine, 0, Float32Array.of(1, 1, 1, 1));
        state = step(state, { w: mine }); // was a TypeError: "a GPUBuffer of another GPUDevice"
        assert.equal(state.step, 1);
        const { w } = await readParams(state);
        assert.ok(w.every((x, i) => x < i + 1), `${w}`);
      });
    } finally {
      dispose(state);
      dispose(there);
      mine.destroy();
      other.destroy();
    }
  },
});

Deno.test({
  name:
    "webgpu: a gradient in the buffers of a disposed state is a TypeError naming the tensor at the call (the GPU refused the step, and the call after threw), the state as it was",
  ignore,
  async fn() {
    const opt = adam({ lr: 0.1, backend: "webgpu" });
    const params = { w: new Float32Array([1, 2, 3]), b: new Float32Array([4]) };
    let state = await opt.init(params, { device });
    const gone = await opt.init(params, { device });
    const { grads: slots, params: paramSlots } = gone;
    dispose(gone);
    try {
      await noGpuErrors(async () => {
        const before = await readParams(state);
        const range = { buffer: slots.w.buffer, offset: slots.w.offset, length: 3 };
        const given: [string, unknown][] = [
          ["its slots", slots],
          ["a plain record of them", { ...slots }],
          ["one of them", { w: state.grads.w, b: slots.b }],
          ["a range of its buffer", { w: range, b: Float32Array.of(1) }],
          ["its params", { w: new Float32Array(3), b: paramSlots.b }],
        ];
        for (const [what, grads] of given) {
          assert.throws(
            () => step(state, grads as Record<string, GpuTensor>),
            (error: Error) =>
              error instanceof TypeError &&
              /^Expected the gradient of parameter "[wb]" to be in a live GPU buffer, got a range of the buffers of a disposed state/
                .test(error.message),
            what,
          );
        }
        assert.equal(state.step, 0);
        assert.deepEqual(await readParams(state), before);
        state = step(state, { w: Float32Array.of(1, 1, 1), b: Float32Array.of(1) });
        assert.ok((await readParams(state)).w[0] < 1);
      });
    } finally {
      dispose(state);
    }
  },
});

Deno.test({
  name:
    "webgpu: step(state, state.grads) steps from the slots as step(state) does, and a record of other slots of the same names is copied from",
  ignore,
  async fn() {
    const opt = adam({ lr: 0.1, backend: "webgpu" });
    const params = { w: new Float32Array([1, 2, 3]), b: new Float32Array([4]) };
    let [a, b, c] = await Promise.all([0, 1, 2].map(() => opt.init(params, { device })));
    try {
      for (const s of [a, b, c]) {
        device!.queue.writeBuffer(s.grads.w.buffer, s.grads.w.offset, Float32Array.of(1, -1, 2));
        device!.queue.writeBuffer(s.grads.b.buffer, s.grads.b.offset, Float32Array.of(-3));
      }
      a = step(a, a.grads);
      b = step(b);
      c = step(c, b.grads); // (b's slots: its buffer, copied)
      const [x, y, z] = await Promise.all([a, b, c].map(readParams));
      assert.deepEqual(x, y);
      assert.deepEqual(z, y);
      assert.ok(x.w[0] < 1 && x.b[0] > 4, "stepped");
    } finally {
      for (const s of [a, b, c]) dispose(s);
    }
  },
});

Deno.test({
  name:
    "webgpu: a gradient of a name the state lacks is refused as on the CPU, among 300 tensors too, and the state steps on",
  ignore,
  async fn() {
    const names = Array.from({ length: 300 }, (_, i) => `layer${i}/kernel`);
    const params = Object.fromEntries(names.map((n) => [n, new Float32Array(2)]));
    const grads = Object.fromEntries(names.map((n) => [n, new Float32Array([1, 1])]));
    const [cpu, gpu] = [
      await adam({ backend: "js" }).init(params),
      await adam({ backend: "webgpu" }).init(params, { device }),
    ];
    const extra = { ...grads, "layer300/kernel": new Float32Array(2) };
    const words = (state: typeof cpu) => {
      try {
        step(state, extra);
      } catch (error) {
        assert.ok(error instanceof TypeError, String(error));
        return error.message;
      }
      assert.fail("not refused");
    };
    const message = words(cpu);
    assert.match(message, /^Unexpected gradient "layer300\/kernel": the state holds no parameter/);
    assert.match(message, /\{ from: state \}/);
    assert.equal(words(gpu), message);
    const next = step(gpu, grads);
    assert.equal(next.step, 1);
    assert.ok((await readParams(next))["layer0/kernel"][0] < 0);
    for (const s of [cpu, next]) dispose(s);
  },
});
