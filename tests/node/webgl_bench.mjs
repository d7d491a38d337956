// The TensorFlow.js adapter against tfjs's own Adam on tfjs-backend-webgl, in headless Chromium
// (webgl_page.mjs): `applyGradients` of a 1024 × 1024 dense layer (1M parameters), median of
// alternated rounds (webglBench in webgl_case.mjs). Not a test (no timing is asserted anywhere);
// after `deno task test:npm` (or `deno task build:npm` and `sh tests/node/setup.sh`), run:
//
//   node --preserve-symlinks tests/node/webgl_bench.mjs
import { readFileSync } from "node:fs";
import os from "node:os";
import { webglPage } from "./webgl_page.mjs";

/** The CPU as lscpu names it: model name, family and model (Linux), else Node's name. */
function cpuName() {
  try {
    const info = readFileSync("/proc/cpuinfo", "utf8");
    const field = (name) => info.match(new RegExp(`^${name}\\s*: (.*)$`, "m"))?.[1];
    return `${field("model name")} (family ${field("cpu family")}, model ${field("model")})`;
  } catch {
    return os.cpus()[0]?.model ?? "unknown CPU";
  }
}

const { info, bench } = await webglPage("bench", 600_000);
const ms = (x) => x.toFixed(1);
console.log(`CPU: ${cpuName()}, ${os.cpus().length} logical cores`);
console.log(`WebGL ${info.version} renderer: ${info.renderer}`);
console.log(
  `applyGradients of a ${bench.params}-parameter dense layer on tfjs-backend-webgl: ` +
    `tfOptimizer(radam()) ${ms(bench.adapter)} ms (its step on ${bench.backend}), ` +
    `tf.train.adam ${ms(bench.tfjs)} ms (${(bench.tfjs / bench.adapter).toFixed(2)}×); ` +
    `both include making the step's gradients on the GPU, ${ms(bench.gradients)} ms alone`,
);
