/**
 * What a WebGPU state's slot yields iterated (one stand-in for the elements it does not hold
 * here) given to TensorFlow.js: `tf.tensor([...state.grads.w])` made a tensor of shape [1] and no
 * values (tfjs took the stand-in's index keys, none, for its elements); it is the slot's
 * TypeError, saying what to do instead.
 *
 * Without a WebGPU adapter these tests fail, unless RADAM_NO_GPU=1 says the machine has none.
 */
import assert from "node:assert/strict";
import { adam, dispose } from "../../mod.ts";
import { tf, useBackend, webgpuTestOptions } from "./helpers.ts";

const options = await webgpuTestOptions();

Deno.test({
  name:
    "tfjs: tf.tensor of what a WebGPU slot's iteration yields ([...g], Array.from(g)) is the slot's TypeError (it was a tensor of shape [1] and no values)",
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
