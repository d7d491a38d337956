// The app whose bytes README.md quotes (bundle_size.test.mjs): it imports `radam` and `step`, and
// steps one state on the CPU, so that the WebGPU backend is a chunk it loads only on a GPU.
import { radam, step } from "@optim/radam";

const state = await radam().init({ w: new Float32Array([1, 2]) });
document.body.textContent = String(step(state, { w: new Float32Array([0.5, -0.5]) }).params.w);
