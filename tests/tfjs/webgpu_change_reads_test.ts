/**
 * What a change of the set of variables on tfjs's webgpu backend reads back from the GPU: the
 * state of the variables left out alone (their bytes of each section), nothing where none is
 * left out (variables only added); and that state, kept aside, is the CPU path's, bit for bit.
 */
import "@tensorflow/tfjs-backend-webgpu";
import assert from "node:assert/strict";
import { radam, ranger } from "../../mod.ts";
import { type TfOptimizer, tfOptimizer } from "../../tfjs.ts";
import { shapedVars, stepSet, tf, uniqueNames, useBackend, webgpuTestOptions } from "./helpers.ts";

const sanitize = await webgpuTestOptions();
const name = uniqueNames("gpureads");

/** Kernels (the first two compact under 8-bit states: 4480 and 4096 elements) and biases. */
const SHAPES = [[70, 64], [64], [64, 64], [3]];
const SIZES = SHAPES.map((s) => s.reduce((a, b) => a * b));

/**
 * The bytes of the buffers the library makes to read the state back (mappable, labelled as its
 * readbacks) while `f` runs on tfjs's device (none on cpu): a read copies at its call, into
 * buffers made then.
 */
function readbackBytes(f: () => void): number {
  const device = (tf.backend() as unknown as { device?: GPUDevice }).device;
  if (device === undefined) return f(), 0; // (on the cpu backend)
  const create = device.createBuffer;
  let bytes = 0;
  device.createBuffer = function (descriptor: GPUBufferDescriptor) {
    const mapped = (descriptor.usage & GPUBufferUsage.MAP_READ) !== 0;
    if (mapped && descriptor.label === "radam readback") bytes += descriptor.size;
    return create.call(this, descriptor);
  };
  try {
    f();
  } finally {
    device.createBuffer = create;
  }
  return bytes;
}

/** Rules, and the bytes of each variable's state that a readback of it copies. */
const RULES: [string, () => TfOptimizer, (i: number) => number][] = [
  // (m and v in f32.)
  ["radam", () => tfOptimizer(radam({ lr: 1e-2 })), (i) => 2 * 4 * SIZES[i]],
  // (m, v and the slow weights in f32.)
  ["ranger", () => tfOptimizer(ranger({ lr: 1e-2, k: 2 })), (i) => 3 * 4 * SIZES[i]],
  // (The kernels of 4480 and 4096 elements in 8 bits: a code an element and an f32 scale a
  // block of 256, per moment; the biases in f32.)
  [
    "8-bit radam",
    () => tfOptimizer(radam({ lr: 1e-2, states: "8bit" })),
    (i) => i === 0 || i === 2 ? 2 * (SIZES[i] + 4 * Math.ceil(SIZES[i] / 256)) : 2 * 4 * SIZES[i],
  ],
];

/**
 * Each step's variables, the last one a change: variables only added (none left out), one of
 * several left out (a bias; a compact kernel), two left out as another comes back (its state
 * kept aside, maybe still read back). (Never the 3-element bias: a readback buffer holds at least
 * 16 bytes.)
 */
const CHANGES: [string, number[][]][] = [
  ["variables added", [[2, 3], [2, 3], [0, 1, 2, 3]]],
  ["a bias left out", [[0, 1, 2, 3], [0, 1, 2, 3], [0, 2, 3]]],
  ["a kernel left out", [[0, 1, 2, 3], [0, 1, 2, 3], [1, 2, 3]]],
  ["two left out, one back", [[0, 1, 2, 3], [1, 2, 3], [0, 3]]],
];

/** Steps over `sets`: the bytes read back at the last (a change), by the step after, and then the weights. */
async function change(backend: string, make: () => TfOptimizer, sets: number[][]) {
  await useBackend(backend);
  const prefix = name(backend);
  const vars = shapedVars(prefix, SHAPES);
  const opt = make();
  sets.slice(0, -1).forEach((set, t) => stepSet(opt, vars, set, t));
  const last = sets.at(-1)!;
  const bytes = readbackBytes(() => stepSet(opt, vars, last, sets.length - 1));
  const after = readbackBytes(() => stepSet(opt, vars, last, sets.length));
  const weights = new Map<string, Float32Array>();
  for (const w of await opt.getWeights()) {
    weights.set(w.name.replace(prefix, "P"), new Float32Array(await w.tensor.data()));
  }
  opt.dispose();
  tf.dispose(vars);
  return { bytes, after, weights };
}

for (const [rule, make, bytesOf] of RULES) {
  Deno.test({
    name:
      `tfjs webgpu: a change reads back the state of the variables left out alone, none where none is (${rule})`,
    ...sanitize,
    async fn() {
      for (const [what, sets] of CHANGES) {
        const got = await change("webgpu", make, sets);
        const [before, last] = sets.slice(-2);
        const left = before.filter((i) => !last.includes(i));
        const want = left.reduce((sum, i) => sum + bytesOf(i), 0);
        assert.equal(got.bytes, want, `${what}: bytes read back at the change`);
        assert.equal(got.after, 0, `${what}: bytes read back by a step after it`);
        // The state kept aside and the state still trained, as on cpu.
        const cpu = await change("cpu", make, sets);
        assert.deepEqual([...got.weights.keys()], [...cpu.weights.keys()], what);
        const tol = rule === "ranger" ? 1e-5 : 0; // (gc in tfjs's ops on webgpu)
        for (const [k, w] of cpu.weights) {
          const g = got.weights.get(k)!;
          if (tol === 0) assert.deepEqual(g, w, `${what}: ${k}`);
          else w.forEach((x, j) => assert.ok(Math.abs(g[j] - x) <= tol * Math.max(1, Math.abs(x))));
        }
      }
    },
  });
}
