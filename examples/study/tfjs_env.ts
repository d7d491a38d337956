/**
 * TensorFlow.js for the study: tfjs-core, tfjs-layers and tfjs-backend-wasm, with the wasm
 * binaries read from the installed npm package (nothing is downloaded at run time).
 *
 * tfjs-backend-wasm 4.22 has no filter gradient for `conv2d`, so the study's image model uses
 * `conv3d` with a kernel one voxel deep (the same arithmetic as a 2-D convolution), whose
 * gradients the wasm backend has. The cpu backend has `conv2d`'s, but a step of the same net
 * took 16× as long there (331 against 20.5 ms, batch 32, measured on the 2-core AMD EPYC), too
 * slow for the study's budget.
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs-core";
import * as wasm from "@tensorflow/tfjs-backend-wasm";
import * as tfl from "@tensorflow/tfjs-layers";

export { tf, tfl };

/** The tfjs backend every run of the study uses. */
export const STUDY_BACKEND = "wasm";

let ready: Promise<void> | undefined;

/** Sets tfjs up on its wasm backend (once per thread) and waits until it is ready. */
export function setUpTfjs(): Promise<void> {
  ready ??= (async () => {
    const entry = new URL(import.meta.resolve("@tensorflow/tfjs-backend-wasm"));
    wasm.setWasmPaths(entry.pathname.replace(/[^/]*$/, ""));
    // PROD silences tfjs's hint about tfjs-node and skips its debug checks.
    tf.env().set("PROD", true);
    if (!(await tf.setBackend(STUDY_BACKEND))) {
      throw new Error(`tfjs backend ${STUDY_BACKEND} is unavailable`);
    }
    await tf.ready();
  })();
  return ready;
}
