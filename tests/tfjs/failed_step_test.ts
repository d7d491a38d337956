/**
 * A step whose state fails to be made changes nothing and leaks nothing: the backend made for
 * it is disposed (on tfjs's wasm heap, its arena given back), no tensor is left, a loaded state
 * matched to a variable of another `_<n>` suffix stays under its own name (getWeights gives what
 * it gave before), and the next step is the one it would have been.
 */
import "@tensorflow/tfjs-backend-webgpu";
import assert from "node:assert/strict";
import { radam, ranger } from "../../mod.ts";
import { tfOptimizer } from "../../tfjs.ts";
import { KeptStates } from "../../tfjs/kept.ts";
import { WebGpuBackend } from "../../gpu/webgpu_backend.ts";
import {
  CPU_BACKENDS,
  optimizerSnapshot,
  randoms,
  stepAll,
  tf,
  uniqueNames,
  useBackend,
  webgpuTestOptions,
} from "./helpers.ts";

const name = uniqueNames("failed");

/** Runs `call` with the making of a state failing right after it matched the kept states. */
function failingAfterMatch(call: () => void): void {
  const fitting = KeptStates.prototype.fitting;
  KeptStates.prototype.fitting = function (this: KeptStates, ...args) {
    fitting.apply(this, args);
    throw new Error("made to fail");
  };
  try {
    assert.throws(call, /made to fail/);
  } finally {
    KeptStates.prototype.fitting = fitting;
  }
}

/** The heap pointers `call` allocated through tfjs-backend-wasm's `_malloc` and did not free. */
function heapLeftBy(call: () => void): number[] {
  // deno-lint-ignore no-explicit-any
  const module = (tf.backend() as any).wasm;
  const { _malloc: malloc, _free: free } = module;
  const held = new Set<number>();
  module._malloc = (bytes: number) => {
    const at = malloc(bytes);
    held.add(at >>> 0);
    return at;
  };
  module._free = (at: number) => {
    held.delete(at >>> 0);
    return free(at);
  };
  try {
    call();
  } finally {
    module._malloc = malloc;
    module._free = free;
  }
  return [...held];
}

/** A variable of `values` whose data is its own (no other tensor shares it). */
function ownVariable(values: Float32Array, n: string): tf.Variable {
  const t = tf.tensor(values);
  const v = tf.variable(t, true, n);
  t.dispose();
  return v;
}

/** Checks that `v` and `twin`, stepped by `opt` and `ref` alike from here on, stay equal. */
async function assertStepsAsFresh(
  opt: ReturnType<typeof tfOptimizer>,
  ref: ReturnType<typeof tfOptimizer>,
  v: tf.Variable,
  twin: tf.Variable,
): Promise<void> {
  for (let t = 0; t < 2; t++) {
    stepAll(opt, [v], 0.25 + t);
    stepAll(ref, [twin], 0.25 + t);
  }
  assert.deepEqual(await v.data(), await twin.data());
}

Deno.test("tfjs wasm heap: a state that fails to be made gives its arena back, leaving no tensor", async () => {
  await useBackend("wasm");
  const init = randoms(3000, 5);
  const v = ownVariable(init, name("w")), twin = ownVariable(init, name("twin"));
  const opt = tfOptimizer(radam({ lr: 0.02 })), ref = tfOptimizer(radam({ lr: 0.02 }));
  const g = tf.fill([3000], 0.5);
  const tensors = tf.memory().numTensors;
  const left = heapLeftBy(() => failingAfterMatch(() => opt.applyGradients({ [v.name]: g })));
  assert.deepEqual(left, []);
  assert.equal(tf.memory().numTensors, tensors);
  assert.equal(opt.state, undefined);
  assert.equal(opt.iterations, 0);
  assert.deepEqual(v.dataSync(), init);
  await assertStepsAsFresh(opt, ref, v, twin);
  tf.dispose([g, v, twin]);
  opt.dispose();
  ref.dispose();
});

Deno.test("tfjs wasm heap: where a variable cannot be read when the state is made, its arena is given back", async () => {
  await useBackend("wasm");
  const init = randoms(3000, 6);
  // (Its data shared with `t`: the state gives it a copy of its own, reading it.)
  const t = tf.tensor(init);
  const v = tf.variable(t, true, name("shared"));
  const opt = tfOptimizer(radam({ lr: 0.02 }));
  const g = tf.fill([3000], 0.5);
  const tensors = tf.memory().numTensors;
  v.dataSync = () => {
    throw new Error("unreadable");
  };
  const left = heapLeftBy(() =>
    assert.throws(() => opt.applyGradients({ [v.name]: g }), /unreadable/)
  );
  assert.deepEqual(left, []);
  assert.equal(tf.memory().numTensors, tensors);
  assert.equal(opt.state, undefined);
  opt.dispose();
  tf.dispose([g, v, t]);
});

/**
 * Weights of a Ranger optimizer over a variable named `base`, three steps in, then a step over
 * a variable `<base>_1` (a model loaded again) given them, that fails when its state is made.
 */
async function renamedThenFailed(backend: string): Promise<void> {
  await useBackend(backend);
  const base = name(`${backend}/w`);
  const saved = tf.variable(tf.tensor1d([1, 2, 3]), true, base);
  const trained = tfOptimizer(ranger({ lr: 0.1 }));
  for (let t = 0; t < 3; t++) stepAll(trained, [saved], 0.5 + t);
  const weights = (await trained.getWeights()).map((w) => ({ ...w, tensor: tf.clone(w.tensor) }));
  trained.dispose();
  saved.dispose();
  const v = tf.variable(tf.tensor1d([4, 5, 6]), true, `${base}_1`);
  const twin = tf.variable(tf.tensor1d([4, 5, 6]), true, `${base}_2`);
  const opt = tfOptimizer(ranger({ lr: 0.1 })), ref = tfOptimizer(ranger({ lr: 0.1 }));
  await opt.setWeights(weights);
  await ref.setWeights(weights);
  const before = await optimizerSnapshot(opt);
  assert.ok(before.weights.some(([n]) => n === `${base}/m`), before.weights.join());
  const g = tf.fill([3], 0.25);
  const tensors = tf.memory().numTensors;
  failingAfterMatch(() => opt.applyGradients({ [v.name]: g }));
  assert.equal(tf.memory().numTensors, tensors);
  g.dispose();
  // Still under its saved name: the failed step matched it to `<base>_1`, and changed nothing.
  assert.deepEqual(await optimizerSnapshot(opt), before);
  assert.deepEqual([...await v.data()], [4, 5, 6]);
  // The next steps take it, as a step of another optimizer given the same weights does.
  await assertStepsAsFresh(opt, ref, v, twin);
  const names = (await optimizerSnapshot(opt)).weights.map(([n]) => n);
  assert.ok(names.includes(`${v.name}/m`) && !names.includes(`${base}/m`), names.join());
  opt.dispose();
  ref.dispose();
  tf.dispose([v, twin, ...weights.map((w) => w.tensor)]);
}

for (const backend of CPU_BACKENDS) {
  Deno.test(`tfjs (${backend}): a step that fails leaves a loaded state matched by base name under its own name`, async () => {
    await renamedThenFailed(backend);
  });
}

Deno.test({
  name:
    "tfjs (webgpu): a step that fails leaves a loaded state matched by base name under its own name",
  ...await webgpuTestOptions(),
  fn: async () => {
    await renamedThenFailed("webgpu");
    await useBackend("cpu");
  },
});

Deno.test({
  name: "tfjs (webgpu): a state that fails to be made is disposed; nothing changes",
  ...await webgpuTestOptions(),
  fn: async () => {
    await useBackend("webgpu");
    const n = name("gpu/w");
    const v = tf.variable(tf.tensor1d([1, 2, 3]), true, n);
    const twin = tf.variable(tf.tensor1d([1, 2, 3]), true, name("gpu/twin"));
    const opt = tfOptimizer(ranger({ lr: 0.1 })), ref = tfOptimizer(ranger({ lr: 0.1 }));
    const m = tf.tensor1d([0.5, 0.25, 0.125]);
    // (Moments given: the new state writes them into its sections.)
    const given = (variable: tf.Variable) => [
      { name: "iter", tensor: tf.scalar(4, "int32") },
      { name: `${variable.name}/m`, tensor: m },
    ];
    await opt.setWeights(given(v));
    await ref.setWeights(given(twin));
    const before = await optimizerSnapshot(opt);
    const { writeSection, dispose } = WebGpuBackend.prototype;
    let failed: WebGpuBackend | undefined;
    const disposed = new Set<WebGpuBackend>();
    WebGpuBackend.prototype.writeSection = function (this: WebGpuBackend) {
      failed = this;
      throw new Error("made to fail");
    };
    WebGpuBackend.prototype.dispose = function (this: WebGpuBackend) {
      disposed.add(this);
      dispose.call(this);
    };
    const g = tf.fill([3], 0.25);
    const tensors = tf.memory().numTensors;
    try {
      assert.throws(() => opt.applyGradients({ [v.name]: g }), /made to fail/);
    } finally {
      WebGpuBackend.prototype.writeSection = writeSection;
      WebGpuBackend.prototype.dispose = dispose;
    }
    assert.ok(failed !== undefined && disposed.has(failed));
    assert.equal(tf.memory().numTensors, tensors);
    assert.equal(opt.state, undefined);
    assert.deepEqual(await optimizerSnapshot(opt), before);
    await assertStepsAsFresh(opt, ref, v, twin);
    opt.dispose();
    ref.dispose();
    tf.dispose([g, m, v, twin]);
    await useBackend("cpu");
  },
});
