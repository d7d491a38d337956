/**
 * TensorFlow.js for the adapter's tests: tfjs-core with the cpu and wasm backends and
 * tfjs-layers, and small deterministic models and data.
 */
import assert from "node:assert/strict";
import { randoms } from "../util.ts";
import type { CompactMoment } from "../../base/arena.ts";
import { holdsCodes } from "../../base/backend.ts";
import { type OptimizerState, stateInternals } from "../../core/state.ts";
import { adam, type Optimizer, saveState } from "../../mod.ts";
import { type TfOptimizer, tfOptimizer } from "../../tfjs.ts";
import * as tf from "@tensorflow/tfjs-core";
import "@tensorflow/tfjs-backend-cpu";
import * as wasm from "@tensorflow/tfjs-backend-wasm";
import * as tfl from "@tensorflow/tfjs-layers";

const entry = new URL(import.meta.resolve("@tensorflow/tfjs-backend-wasm"));
wasm.setWasmPaths(entry.pathname.replace(/[^/]*$/, ""));
// tfjs prints a hint about tfjs-node on the cpu backend (PROD silences it; IS_TEST would too, but
// it also turns on a kernel leak check that tfjs-backend-wasm's own fused matMul fails).
tf.env().set("PROD", true);

export { randoms, tf, tfl };

/** The CPU backends the adapter is tested on. */
export const CPU_BACKENDS = ["cpu", "wasm"] as const;

/**
 * Names for the variables of one test file: `<prefix><n>/<base>`, a new n each time (tfjs's
 * variable registry is global, and a name stays taken until its variable is disposed).
 */
export function uniqueNames(prefix: string): (base: string) => string {
  let unique = 0;
  return (base) => `${prefix}${unique++}/${base}`;
}

/**
 * The options of a test on tfjs's webgpu backend: ignored where `navigator.gpu` gives no adapter
 * and RADAM_NO_GPU=1 says the machine has none (without an adapter otherwise, an error: Mesa's
 * llvmpipe will do); without the sanitizers, as tfjs's webgpu backend keeps resources alive.
 */
export async function webgpuTestOptions(): Promise<
  { ignore: boolean; sanitizeResources: false; sanitizeOps: false }
> {
  const adapter = await navigator.gpu?.requestAdapter();
  if (!adapter && Deno.env.get("RADAM_NO_GPU") !== "1") {
    throw new Error(
      "No WebGPU adapter found: the tfjs webgpu tests need one (Mesa's llvmpipe will do); set RADAM_NO_GPU=1 to skip them on a machine without",
    );
  }
  return { ignore: !adapter, sanitizeResources: false, sanitizeOps: false };
}

/** Switches tfjs to `name` and waits until it is ready. */
export async function useBackend(name: string): Promise<void> {
  if (!(await tf.setBackend(name))) throw new Error(`tfjs backend ${name} is unavailable`);
  await tf.ready();
}

/**
 * A test's `fn` that switches tfjs to webgpu, runs `body`, and asserts that as many tensors
 * live after it as before (all it made are disposed).
 */
export function onWebgpu(body: () => Promise<void>): () => Promise<void> {
  return async () => {
    await useBackend("webgpu");
    const tensors = tf.memory().numTensors;
    await body();
    assert.equal(tf.memory().numTensors, tensors);
  };
}

/** Transposes a [rows, cols] row-major array. */
export function transpose(a: Float32Array, rows: number, cols: number): Float32Array {
  const out = new Float32Array(a.length);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) out[c * rows + r] = a[r * cols + c];
  return out;
}

/** A dense net 6 → 8 (relu) → 3, with weights from `seed`. */
export function denseNet(seed: number): tfl.Sequential {
  const model = tfl.sequential({
    layers: [
      tfl.layers.dense({ units: 8, inputShape: [6], activation: "relu" }),
      tfl.layers.dense({ units: 3 }),
    ],
  });
  setSeededWeights(model, seed);
  return model;
}

/**
 * A dense net 70 → 64 (relu) → 64 (relu) → 3, with weights from `seed`: kernels of 4480
 * elements (with 8-bit states compact, the last block padded) and 4096 (whole blocks).
 */
export function bigNet(seed: number): tfl.Sequential {
  const model = tfl.sequential({
    layers: [
      tfl.layers.dense({ units: 64, inputShape: [70], activation: "relu" }),
      tfl.layers.dense({ units: 64, activation: "relu" }),
      tfl.layers.dense({ units: 3 }),
    ],
  });
  setSeededWeights(model, seed);
  return model;
}

/** A small conv net on 6×6×2 images: conv 3×3×4 (relu), flatten, dense 3. */
export function convNet(seed: number): tfl.Sequential {
  const model = tfl.sequential({
    layers: [
      tfl.layers.conv2d({ filters: 4, kernelSize: 3, inputShape: [6, 6, 2], activation: "relu" }),
      tfl.layers.flatten(),
      tfl.layers.dense({ units: 3 }),
    ],
  });
  setSeededWeights(model, seed);
  return model;
}

/** Gives every weight of `model` deterministic values. */
export function setSeededWeights(model: tfl.LayersModel, seed: number): void {
  const weights = model.getWeights().map((w, i) =>
    tf.tensor(randoms(w.size, seed * 101 + i).map((v) => v * 0.5), w.shape)
  );
  model.setWeights(weights);
  tf.dispose(weights);
}

/** Inputs and regression targets for a model with input shape `shape` and 3 outputs. */
export function data(shape: number[], n: number, seed: number): { x: tf.Tensor; y: tf.Tensor } {
  const size = shape.reduce((a, b) => a * b, 1);
  return {
    x: tf.tensor(randoms(n * size, seed), [n, ...shape]),
    y: tf.tensor(randoms(n * 3, seed + 1), [n, 3]),
  };
}

/** Copies of the values of every weight of `model` (read asynchronously: webgpu has no sync read). */
export function weightValues(model: tfl.LayersModel): Promise<Float32Array[]> {
  return Promise.all(model.getWeights().map(async (w) => (await w.data() as Float32Array).slice()));
}

/**
 * The options of `model.fit` for a run that two models repeat bit for bit: `epochs` epochs of
 * batches of 4, in order, silent.
 */
export function fitInOrder(
  epochs: number,
): { epochs: number; batchSize: number; shuffle: false; verbose: 0 } {
  return { epochs, batchSize: 4, shuffle: false, verbose: 0 };
}

/** Disposes models and their optimizers. */
export function disposeModels(...models: tfl.LayersModel[]): void {
  for (const m of models) {
    m.optimizer.dispose();
    m.dispose();
  }
}

/** Saves `model` with its optimizer into memory, as `model.save(handler, { includeOptimizer })`. */
export async function saveToMemory(model: tfl.LayersModel): Promise<tf.io.ModelArtifacts> {
  let saved: tf.io.ModelArtifacts | undefined;
  await model.save(
    tf.io.withSaveHandler((artifacts) => {
      saved = artifacts;
      return Promise.resolve({
        modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: "JSON" },
      });
    }),
    { includeOptimizer: true },
  );
  return saved!;
}

/**
 * The codes and scales a CPU state holds in 8 bits (live views), by moment, then tensor name;
 * none for a 32-bit state.
 */
export function coreCodes(state: OptimizerState<unknown>): Record<string, CompactMoment>[] {
  const backend = stateInternals(state).backend;
  if (!holdsCodes(backend) || backend.layout.compactStart >= backend.layout.total) return [];
  return backend.layout.unsignedCodes.map((_, k) => backend.viewCompact(k));
}

/**
 * The codes of a `.codes` weight (int32, 4 codes an int32, little-endian): `n` of them, signed
 * (Int8Array) or not. Checks that the bytes after the last code are 0.
 */
export function unpackCodes(
  tensor: tf.Tensor,
  n: number,
  signed: boolean,
): Int8Array | Uint8Array {
  if (tensor.dtype !== "int32" || tensor.rank !== 1 || tensor.size !== Math.ceil(n / 4)) {
    throw new Error(
      `codes: expected int32 [${Math.ceil(n / 4)}], got ${tensor.dtype} [${tensor.shape}]`,
    );
  }
  const bytes = new Uint8Array((tensor.dataSync() as Int32Array).slice().buffer);
  if (bytes.subarray(n).some((b) => b !== 0)) throw new Error("codes: non-zero padding");
  return signed ? new Int8Array(bytes.buffer, 0, n) : bytes.slice(0, n);
}

/** One step of `opt` over `vars`, with the gradient `g` everywhere. */
export function stepAll(opt: TfOptimizer, vars: tf.Variable[], g = 0.25): void {
  const grads = vars.map((v) => tf.fill(v.shape, g));
  opt.applyGradients(Object.fromEntries(vars.map((v, i) => [v.name, grads[i]])));
  tf.dispose(grads);
}

/** A kernel (`rows` × 3) and a bias (3) with values from `seed`, under names from `named`. */
export function seededVars(
  named: (base: string) => string,
  seed: number,
  rows: number,
): tf.Variable[] {
  return tf.tidy(() => [
    tf.variable(tf.tensor(randoms(rows * 3, seed), [rows, 3]), true, named("kernel")),
    tf.variable(tf.tensor(randoms(3, seed + 1), [3]), true, named("bias")),
  ]);
}

/** A call of `opt` over `vars` with gradients from `seed` (`poison`: the first value NaN). */
export function stepWith(
  opt: TfOptimizer,
  vars: tf.Variable[],
  seed: number,
  poison = false,
): void {
  const grads = vars.map((v, i) => {
    const values = randoms(v.size, seed * 7 + i);
    if (poison && i === 0) values[0] = NaN;
    return tf.tensor(values, v.shape);
  });
  try {
    opt.applyGradients(Object.fromEntries(vars.map((v, i) => [v.name, grads[i]])));
  } finally {
    tf.dispose(grads);
  }
}

/** The message of the RangeError `f` throws; fails the test if it throws none or another. */
export function rangeErrorMessage(f: () => void): string {
  try {
    f();
  } catch (error) {
    assert.ok(error instanceof RangeError, String(error));
    return error.message;
  }
  assert.fail("not refused");
}

/** Variables `<prefix>/<i>` of the shapes `shapes`, the i-th of values seeded by 7 + i. */
export function shapedVars(prefix: string, shapes: readonly number[][]): tf.Variable[] {
  return shapes.map((s, i) =>
    tf.variable(tf.tensor(randoms(s.reduce((a, b) => a * b, 1), 7 + i), s), true, `${prefix}/${i}`)
  );
}

/**
 * One step of `opt` over the variables of `vars` at the indices `set`, the gradients seeded by
 * the step `t` and each index; `bad` (an index) puts a NaN in that variable's gradient.
 */
export function stepSet(
  opt: TfOptimizer,
  vars: tf.Variable[],
  set: readonly number[],
  t: number,
  bad?: number,
): void {
  const grads = set.map((i) => {
    const g = randoms(vars[i].size, 100 * t + i);
    if (i === bad) g[0] = NaN;
    return tf.tensor(g, vars[i].shape);
  });
  opt.applyGradients(Object.fromEntries(set.map((i, k) => [vars[i].name, grads[k]])));
  tf.dispose(grads);
}

/** Copies of the tensors' values, read asynchronously (webgpu has no sync read). */
export function readValues(tensors: tf.Tensor[]): Promise<Float32Array[]> {
  return Promise.all(tensors.map(async (t) => (await t.data() as Float32Array).slice()));
}

/** The averages (option `ema`) `opt.getWeights()` gives, in the variables' order, copied. */
export async function readAverages(opt: TfOptimizer): Promise<Float32Array[]> {
  const weights = (await opt.getWeights()).filter((w) => w.name.endsWith("/average"));
  return await readValues(weights.map((w) => w.tensor));
}

/**
 * Counts tfjs's reads of tensor data back to the CPU while `f` runs (its Promise awaited): not
 * those of data tfjs still holds on the CPU (a tensor made from values and not yet used by a
 * kernel), which read nothing from the device.
 */
export function countReadbacks(f: () => Promise<void>): Promise<number>;
/** Counts tfjs's reads of tensor data back to the CPU while `f` runs (as above). */
export function countReadbacks(f: () => void): number;
export function countReadbacks(f: () => void | Promise<void>): number | Promise<number> {
  // deno-lint-ignore no-explicit-any
  const backend = tf.backend() as any;
  const { readSync, read } = backend;
  let count = 0;
  const counted = (dataId: object) => {
    if (backend.tensorMap?.get(dataId)?.values == null) count++;
  };
  backend.readSync = (...args: [object]) => (counted(args[0]), readSync.apply(backend, args));
  backend.read = (...args: [object]) => (counted(args[0]), read.apply(backend, args));
  const restore = () => {
    backend.readSync = readSync;
    backend.read = read;
  };
  let result;
  try {
    result = f();
  } catch (e) {
    restore();
    throw e;
  }
  if (result instanceof Promise) return result.then(() => count).finally(restore);
  restore();
  return count;
}

/**
 * Copies of `opt.getWeights()` that are the caller's to dispose: the optimizer disposes the
 * tensors it gives at its next getWeights and at its dispose.
 */
export async function clonedWeights(
  opt: TfOptimizer,
): Promise<{ name: string; tensor: tf.Tensor }[]> {
  return (await opt.getWeights()).map((w) => ({ name: w.name, tensor: tf.clone(w.tensor) }));
}

/** What an optimizer holds: its counts and every weight's values (moments, `iter`). */
export async function optimizerSnapshot(opt: TfOptimizer): Promise<{
  iterations: number;
  skipped: number;
  weights: (readonly [string, tf.TypedArray])[];
}> {
  const weights = await opt.getWeights();
  const out = {
    iterations: opt.iterations,
    skipped: opt.skippedSteps,
    weights: weights.map((w) => [w.name, w.tensor.dataSync().slice()] as const),
  };
  tf.dispose(weights.map((w) => w.tensor));
  return out;
}

/**
 * What `read` takes of an Adam optimizer (lr 0.1) over new variables `names` (of `shapes`), 7
 * steps in (gradient 0.1 · t at step t); the optimizer and the variables are then freed.
 */
export async function ofTrainedAdam<T>(
  names: string[],
  shapes: number[][],
  read: (opt: TfOptimizer) => Promise<T>,
): Promise<T> {
  const vars = names.map((n, i) => tf.variable(tf.ones(shapes[i]), true, n));
  const opt = tfOptimizer(adam({ lr: 0.1 }));
  for (let t = 0; t < 7; t++) stepAll(opt, vars, 0.1 * (t + 1));
  const out = await read(opt);
  opt.dispose();
  tf.dispose(vars);
  return out;
}

/**
 * A `getWeights` under way while `setWeights` or `loadState` replaces the state (of an optimizer
 * of `make`, stepped once on `v` with `grad`) gives the weights of the state at its call, each
 * once, and the next step follows the state given.
 */
export async function checkReadDuringReplace(
  make: () => Optimizer,
  v: tf.Variable,
  grad: tf.Tensor,
): Promise<void> {
  for (const how of ["setWeights", "loadState"] as const) {
    const opt = tfOptimizer(make());
    opt.applyGradients({ [v.name]: grad });
    const at = (await opt.getWeights()).map((w) => [w.name, w.tensor.dataSync().slice()] as const);
    const given = (await opt.getWeights()).map((w) => ({
      name: w.name,
      tensor: tf.clone(w.tensor),
    }));
    const bytes = await saveState(opt.state!);
    const reading = opt.getWeights();
    const replacing = how === "setWeights" ? opt.setWeights(given) : opt.loadState(bytes);
    const [weights] = await Promise.all([reading, replacing]);
    assert.deepEqual(weights.map((w) => w.name), at.map(([n]) => n), how);
    weights.forEach((w, i) => assert.deepEqual(w.tensor.dataSync(), at[i][1], `${how}: ${w.name}`));
    opt.applyGradients({ [v.name]: grad });
    assert.equal(opt.iterations, 2, how);
    opt.dispose();
    tf.dispose(given.map((w) => w.tensor));
  }
}
