/**
 * The page's training: three copies of one tfjs-layers MLP (784-64-10), compiled with
 * `tfOptimizer(radam({ lr, states }))`, `tfOptimizer(adam({ lr, states }))` and
 * `tfOptimizer(ranger({ lr, states }))` at one learning rate and states format, stepped in turn on
 * the same batches with `model.trainOnBatch`.
 *
 * On tfjs's webgpu backend the adapter runs this library's WebGPU kernel on tfjs's own device;
 * on tfjs's wasm backend it runs this library's wasm kernel on tfjs's heap.
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs-core";
import * as tfl from "@tensorflow/tfjs-layers";
import { setWasmPaths } from "@tensorflow/tfjs-backend-wasm";
import "@tensorflow/tfjs-backend-webgpu";
import { adam, type Optimizer, radam, ranger, type StatesFormat } from "../mod.ts";
import { type TfOptimizer, tfOptimizer } from "../tfjs.ts";
import { seededRandom } from "../examples/demo/random.ts";
import type { DigitData, Digits } from "./data.ts";

/** The options every contender is made with. */
export interface RunOptions {
  readonly lr: number;
  readonly states: StatesFormat;
}

/** The optimizers side by side. */
export const CONTENDERS: readonly {
  id: string;
  label: string;
  color: string;
  make: (options: RunOptions) => Optimizer;
}[] = [
  { id: "radam", label: "RAdam", color: "#d62728", make: (o) => radam(o) },
  { id: "adam", label: "Adam", color: "#1f77b4", make: (o) => adam(o) },
  { id: "ranger", label: "Ranger", color: "#9467bd", make: (o) => ranger(o) },
];

/** Which tfjs backend runs, and why. */
export interface BackendChoice {
  readonly name: "webgpu" | "wasm";
  readonly reason: string;
}

/**
 * WebGPU when `navigator.gpu` gives an adapter (and `wanted` is not "wasm"), wasm otherwise;
 * tfjs is switched to it.
 */
export async function chooseBackend(wanted: string, base: URL): Promise<BackendChoice> {
  let reason = "navigator.gpu is missing";
  if (wanted !== "wasm") {
    const gpu = (navigator as unknown as { gpu?: { requestAdapter(): Promise<unknown> } }).gpu;
    const adapter = gpu ? await gpu.requestAdapter().catch(() => null) : null;
    if (adapter) {
      const info = (adapter as { info?: { vendor?: string; architecture?: string } }).info;
      if (await tf.setBackend("webgpu")) {
        await tf.ready();
        const about = [info?.vendor, info?.architecture].filter(Boolean).join(" ");
        return {
          name: "webgpu",
          reason: `navigator.gpu gave an adapter${about ? ` (${about})` : ""}`,
        };
      }
      reason = "tfjs could not start its webgpu backend";
    } else if (gpu) reason = "navigator.gpu gave no adapter";
  } else reason = "wasm was asked for (?backend=wasm)";
  setWasmPaths(new URL("tfjs/", base).href);
  if (!(await tf.setBackend("wasm"))) {
    const either = wanted === "wasm" ? "" : " either";
    throw new Error(
      `tfjs could not start its wasm backend${either} (the browser's console says why)`,
    );
  }
  await tf.ready();
  return { name: "wasm", reason };
}

/** One contender while it trains. */
export interface Run {
  readonly id: string;
  readonly label: string;
  readonly color: string;
  readonly model: tfl.LayersModel;
  readonly optimizer: TfOptimizer;
  readonly losses: number[];
  /** Moving average of the loss, per step. */
  readonly smoothed: number[];
  accuracy: number;
  /** Bytes of the tensors its optimizer's `getWeights()` gives (once it has stepped). */
  stateBytes?: number;
}

function mlp(pixels: number): tfl.LayersModel {
  return tfl.sequential({
    layers: [
      tfl.layers.dense({
        inputShape: [pixels],
        units: 64,
        activation: "relu",
        kernelInitializer: tfl.initializers.glorotUniform({ seed: 1 }),
      }),
      tfl.layers.dense({
        units: 10,
        activation: "softmax",
        kernelInitializer: tfl.initializers.glorotUniform({ seed: 2 }),
      }),
    ],
  });
}

/** Builds the three runs with `options`, from the same initial weights. */
export function makeRuns(options: RunOptions, pixels: number): Run[] {
  return CONTENDERS.map((c) => {
    const model = mlp(pixels);
    const optimizer = tfOptimizer(c.make(options));
    model.compile({ optimizer, loss: "categoricalCrossentropy" });
    return { ...c, model, optimizer, losses: [], smoothed: [], accuracy: NaN };
  });
}

/** A training batch: the same for every run of a step. */
export function batchOf(
  set: Digits,
  size: number,
  random: () => number,
  pixels: number,
): { x: tf.Tensor; y: tf.Tensor } {
  const x = new Float32Array(size * pixels), y = new Float32Array(size * 10);
  for (let i = 0; i < size; i++) {
    const k = Math.floor(random() * set.count);
    x.set(set.pixels.subarray(k * pixels, (k + 1) * pixels), i * pixels);
    y[i * 10 + set.labels[k]] = 1;
  }
  return { x: tf.tensor2d(x, [size, pixels]), y: tf.tensor2d(y, [size, 10]) };
}

/** One step of every run on one batch. */
export async function stepAll(
  runs: readonly Run[],
  batch: { x: tf.Tensor; y: tf.Tensor },
): Promise<void> {
  for (const run of runs) {
    const loss = await run.model.trainOnBatch(batch.x, batch.y) as number;
    run.losses.push(loss);
    const last = run.smoothed.at(-1);
    run.smoothed.push(
      last === undefined || !Number.isFinite(last) ? loss : 0.9 * last + 0.1 * loss,
    );
  }
}

/**
 * Bytes of the optimizer's state as it gives it: the tensors of `getWeights()` (the step count,
 * the moments, or an 8-bit moment's codes and scales, and Ranger's slow weights), as
 * `model.save` writes them. Disposes the tensors (only their shapes are read).
 */
export async function stateBytes(optimizer: TfOptimizer): Promise<number> {
  const weights = await optimizer.getWeights();
  const bytes = weights.reduce((sum, { tensor }) => sum + tensor.size * bytesPerElement(tensor), 0);
  tf.dispose(weights.map((w) => w.tensor));
  return bytes;
}

function bytesPerElement(tensor: tf.Tensor): number {
  if (tensor.dtype === "float32" || tensor.dtype === "int32") return 4;
  throw new Error(`${tensor.dtype} is not a dtype of the optimizer's weights`);
}

/** Element counts of each run's model's trainable variables (the same for every run). */
export function variableSizes(model: tfl.LayersModel): number[] {
  return model.trainableWeights.map((w) => w.read().size);
}

/** Test accuracy of `model` on all of `set`, 500 images at a time. */
export async function accuracy(
  model: tfl.LayersModel,
  set: Digits,
  pixels: number,
): Promise<number> {
  let correct = 0;
  for (let from = 0; from < set.count; from += 500) {
    const n = Math.min(500, set.count - from);
    const predicted = tf.tidy(() => {
      const x = tf.tensor2d(set.pixels.subarray(from * pixels, (from + n) * pixels), [n, pixels]);
      return tf.argMax(model.predict(x) as tf.Tensor, -1);
    });
    const classes = await predicted.data();
    predicted.dispose();
    for (let i = 0; i < n; i++) if (classes[i] === set.labels[from + i]) correct++;
  }
  return correct / set.count;
}

/** A seeded generator for the batches (the same order for every run). */
export function batchRandom(seed: number): () => number {
  return seededRandom(seed);
}

export type { DigitData };
