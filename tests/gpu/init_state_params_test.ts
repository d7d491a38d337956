/**
 * A WebGPU state started from another state's parameters as they are on the GPU,
 * `opt.init(state.params, { device })` (the call the library's hints write to start afresh from
 * them): the new state's params are copied into its own buffers, so that its steps leave the old
 * state as it was, and the old state's `dispose` leaves it stepping (they were updated in place
 * in the old state's buffer: the old state's params moved with the new one's steps, and after its
 * dispose the GPU refused every step of the new one, blaming "your buffers"). And
 * `opt.init(state.params, { from: state })`, which the hints write to go on from its moments,
 * starts on from's device without a device option (it asked for one).
 */
import assert from "node:assert/strict";
import { adam, dispose, loadState, lookahead, readParams, saveState, step } from "../../mod.ts";
import { adapter, device, ignore, noGpuErrors } from "./gpu_device.ts";

const P = { w: Float32Array.of(1, 2, 3, 4, 5), b: Float32Array.of(-1) };
const G = { w: new Float32Array(5).fill(1), b: Float32Array.of(-1) };

Deno.test({
  name:
    "webgpu: init(state.params) copies them into the new state: its steps leave the old state as it was, which disposed leaves it stepping",
  ignore,
  async fn() {
    for (const opt of [adam({ lr: 0.1 }), lookahead(adam({ lr: 0.1 }), { k: 2 })]) {
      await noGpuErrors(async () => {
        let old = await opt.init(P, { device: device! });
        old = step(old, G);
        const start = await readParams(old);
        let fresh = await opt.init(old.params, { device: device! });
        let twin = await opt.init(start, { device: device! }); // (the same values, from the host)
        try {
          assert.deepEqual(await readParams(fresh), start);
          fresh = step(fresh, G);
          assert.deepEqual(await readParams(old), start, "the old state as it was");
          dispose(old);
          fresh = step(fresh, G);
          twin = step(step(twin, G), G);
          assert.deepEqual(await readParams(fresh), await readParams(twin));
          assert.equal(fresh.step, 2);
        } finally {
          for (const s of [old, fresh, twin]) dispose(s);
        }
      });
    }
  },
});

Deno.test({
  name:
    "webgpu: init(state.params, { from: state }) with no device option starts on from's device, its moments and step count carried",
  ignore,
  async fn() {
    await noGpuErrors(async () => {
      const opt = adam({ lr: 0.1 });
      const old = step(await opt.init(P, { device: device! }), G);
      let carried = await opt.init(old.params, { from: old });
      let twin = step(await opt.init(P, { device: device! }), G);
      try {
        assert.equal(carried.step, 1);
        dispose(old);
        carried = step(carried, G);
        twin = step(twin, G);
        assert.deepEqual(await readParams(carried), await readParams(twin));
      } finally {
        for (const s of [old, carried, twin]) dispose(s);
      }
    });
  },
});

Deno.test({
  name:
    "webgpu: init from a state on another device says how to go on from it there (save it, load it on that device), which does",
  ignore,
  async fn() {
    const opt = adam({ lr: 0.1 });
    const other = await adapter!.requestDevice();
    let from = step(await opt.init(P, { device: device! }), G);
    let moved;
    try {
      await assert.rejects(
        () => opt.init(P, { device: other, from }),
        (e: Error) =>
          e instanceof TypeError &&
          e.message.endsWith(
            "save it and load it there, await loadState(await saveState(from), { device })",
          ),
      );
      moved = await loadState(await saveState(from), { device: other });
      from = step(from, G);
      moved = step(moved, G);
      assert.equal(moved.step, 2);
      assert.deepEqual(await readParams(moved), await readParams(from));
    } finally {
      dispose(from);
      if (moved) dispose(moved);
      other.destroy();
    }
  },
});
