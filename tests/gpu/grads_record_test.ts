/**
 * The record of gradients a WebGPU step is given: the state's own `state.grads` (its slots, as
 * they are, as `step(state)` takes them), and a record with a name the state lacks, which is
 * refused with the CPU backends' words (their hint was missing) and, among many tensors, found
 * by a count, not a search of the names for each key (quadratic in the tensors: a millisecond a
 * step at 1000).
 */
import assert from "node:assert/strict";
import { adam, dispose, readParams, step } from "../../mod.ts";
import { device, ignore } from "./gpu_device.ts";

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
