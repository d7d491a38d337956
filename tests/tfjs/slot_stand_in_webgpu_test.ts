/**
 * A WebGPU state's slot spread or made an array for TensorFlow.js (`tf.tensor([...g])`,
 * `tf.tensor(Array.from(g))`) is the slot's TypeError, saying what to do instead, and leaves no
 * tensor behind (a slot yielding a stand-in for its elements made a tensor of shape [1] and no
 * values).
 *
 * Without a WebGPU adapter these tests fail, unless RADAM_NO_GPU=1 says the machine has none.
 */
import assert from "node:assert/strict";
import { adam, dispose } from "../../mod.ts";
import { tf, useBackend, webgpuTestOptions } from "./helpers.ts";

const options = await webgpuTestOptions();

Deno.test({
  name:
    "tfjs: tf.tensor of a WebGPU slot spread or made an array ([...g], Array.from(g)) is the slot's TypeError, no tensor left",
  ...options,
  async fn() {
    await useBackend("cpu");
    const adapter = await navigator.gpu.requestAdapter();
    const device = await adapter!.requestDevice();
    const state = await adam({ backend: "webgpu" }).init({ w: new Float32Array(3) }, { device });
    const tensors = tf.memory().numTensors;
    try {
      const g = state.grads.w as unknown as Iterable<number>;
      for (const values of [() => [...g], () => Array.from(g), () => [[...g]]]) {
        assert.throws(() => tf.tensor(values()), (error: Error) => {
          assert.ok(error instanceof TypeError, String(error));
          assert.match(error.message, /^Cannot iterate state\.grads\.w \(for\.\.\.of/);
          assert.match(error.message, /step\(state, \{ w: g \}\)/);
          return true;
        });
      }
      assert.equal(tf.memory().numTensors, tensors);
    } finally {
      dispose(state);
      device.destroy();
    }
  },
});
