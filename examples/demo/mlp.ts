/**
 * The demo's model: a two-layer perceptron (inputs → hidden ReLU → 10 logits) with softmax
 * cross-entropy, its forward and backward passes hand-written on Float32Arrays. This is example
 * code, not part of the library: the library only sees the parameters and their gradients.
 *
 * Weights are stored as PyTorch does, `[out, in]` row-major, so that gradient centralization
 * (Ranger) sees one row per output unit.
 *
 * @module
 */
import type { DigitSet } from "./mnist_data.ts";
import { CLASSES } from "./mnist_data.ts";

/** Sizes of the network. */
export interface MlpShape {
  readonly inputs: number;
  readonly hidden: number;
  readonly outputs: number;
}

/** The network's tensors, by the names the optimizer sees. */
export type MlpTensors = {
  readonly "fc1.weight": Float32Array;
  readonly "fc1.bias": Float32Array;
  readonly "fc2.weight": Float32Array;
  readonly "fc2.bias": Float32Array;
};

/** The tensor names, in order, with their shapes. */
export function tensorShapes(shape: MlpShape): Record<keyof MlpTensors, number[]> {
  return {
    "fc1.weight": [shape.hidden, shape.inputs],
    "fc1.bias": [shape.hidden],
    "fc2.weight": [shape.outputs, shape.hidden],
    "fc2.bias": [shape.outputs],
  };
}

/**
 * Fresh parameters: He-uniform first layer (for ReLU), LeCun-uniform second layer, zero
 * biases, drawn from `random`.
 */
export function initMlp(shape: MlpShape, random: () => number): MlpTensors {
  const w1 = new Float32Array(shape.hidden * shape.inputs);
  const w2 = new Float32Array(shape.outputs * shape.hidden);
  const a1 = Math.sqrt(6 / shape.inputs), a2 = Math.sqrt(3 / shape.hidden);
  for (let i = 0; i < w1.length; i++) w1[i] = (2 * random() - 1) * a1;
  for (let i = 0; i < w2.length; i++) w2[i] = (2 * random() - 1) * a2;
  return {
    "fc1.weight": w1,
    "fc1.bias": new Float32Array(shape.hidden),
    "fc2.weight": w2,
    "fc2.bias": new Float32Array(shape.outputs),
  };
}

/** Scratch buffers for one sample, allocated once per model and reused. */
export interface MlpScratch {
  readonly hidden: Float32Array;
  readonly logits: Float64Array;
  readonly dHidden: Float64Array;
}

/** Allocates the scratch buffers of a network of `shape`. */
export function mlpScratch(shape: MlpShape): MlpScratch {
  return {
    hidden: new Float32Array(shape.hidden),
    logits: new Float64Array(shape.outputs),
    dHidden: new Float64Array(shape.hidden),
  };
}

/** Forward pass of sample `i` of `data`: fills `scratch.hidden` and `scratch.logits`. */
function forward(
  p: Readonly<Record<string, Float32Array>>,
  data: DigitSet,
  i: number,
  scratch: MlpScratch,
): void {
  const w1 = p["fc1.weight"], b1 = p["fc1.bias"], w2 = p["fc2.weight"], b2 = p["fc2.bias"];
  const { hidden, logits } = scratch;
  const nIn = data.features, nHidden = hidden.length, nOut = logits.length;
  const from = data.rowStart[i], to = data.rowStart[i + 1];
  const pixel = data.pixel, value = data.value;
  for (let j = 0; j < nHidden; j++) {
    const row = j * nIn;
    let s = b1[j];
    for (let k = from; k < to; k++) s += w1[row + pixel[k]] * value[k];
    hidden[j] = s > 0 ? s : 0;
  }
  for (let c = 0; c < nOut; c++) {
    const row = c * nHidden;
    let s = b2[c];
    for (let j = 0; j < nHidden; j++) s += w2[row + j] * hidden[j];
    logits[c] = s;
  }
}

/** Turns `logits` into probabilities in place; returns log Σ exp(logits). */
function softmaxInPlace(logits: Float64Array): number {
  let max = -Infinity;
  for (let c = 0; c < logits.length; c++) if (logits[c] > max) max = logits[c];
  let sum = 0;
  for (let c = 0; c < logits.length; c++) {
    logits[c] = Math.exp(logits[c] - max);
    sum += logits[c];
  }
  for (let c = 0; c < logits.length; c++) logits[c] /= sum;
  return max + Math.log(sum);
}

/**
 * Mean cross-entropy of the samples `order[start..end)` of `data`, with its gradient written
 * into `grads` (overwritten, not added to). `params` and `grads` are named as
 * {@linkcode MlpTensors}. Returns the mean loss.
 */
export function lossAndGradient(
  params: Readonly<Record<string, Float32Array>>,
  grads: Readonly<Record<string, Float32Array>>,
  data: DigitSet,
  order: ArrayLike<number>,
  start: number,
  end: number,
  scratch: MlpScratch,
): number {
  const w2 = params["fc2.weight"];
  const g1 = grads["fc1.weight"], gb1 = grads["fc1.bias"];
  const g2 = grads["fc2.weight"], gb2 = grads["fc2.bias"];
  g1.fill(0);
  gb1.fill(0);
  g2.fill(0);
  gb2.fill(0);
  const { hidden, logits, dHidden } = scratch;
  const nIn = data.features, nHidden = hidden.length, nOut = logits.length;
  const pixel = data.pixel, value = data.value;
  const scale = 1 / (end - start);
  let loss = 0;
  for (let b = start; b < end; b++) {
    const i = order[b];
    forward(params, data, i, scratch);
    const y = data.label[i];
    const logit = logits[y];
    loss += softmaxInPlace(logits) - logit;
    // logits now holds the probabilities; dLoss/dlogit = (p - onehot) / batch
    logits[y] -= 1;
    dHidden.fill(0);
    for (let c = 0; c < nOut; c++) {
      const d = logits[c] * scale;
      gb2[c] += d;
      const row = c * nHidden;
      for (let j = 0; j < nHidden; j++) {
        g2[row + j] += d * hidden[j];
        dHidden[j] += d * w2[row + j];
      }
    }
    const from = data.rowStart[i], to = data.rowStart[i + 1];
    for (let j = 0; j < nHidden; j++) {
      if (hidden[j] <= 0) continue; // ReLU: no gradient where the unit was off
      const d = dHidden[j];
      gb1[j] += d;
      const row = j * nIn;
      for (let k = from; k < to; k++) g1[row + pixel[k]] += d * value[k];
    }
  }
  return loss * scale;
}

/** Mean cross-entropy and accuracy of the network on all of `data` (no gradients). */
export function evaluate(
  params: Readonly<Record<string, Float32Array>>,
  data: DigitSet,
  scratch: MlpScratch,
): { loss: number; accuracy: number } {
  let loss = 0, correct = 0;
  const logits = scratch.logits;
  for (let i = 0; i < data.count; i++) {
    forward(params, data, i, scratch);
    const y = data.label[i];
    let best = 0;
    for (let c = 1; c < logits.length; c++) if (logits[c] > logits[best]) best = c;
    if (best === y && Number.isFinite(logits[y])) correct++;
    const logit = logits[y];
    loss += softmaxInPlace(logits) - logit;
  }
  return { loss: loss / data.count, accuracy: correct / data.count };
}

/** The network the demo trains: MNIST's 784 pixels → 64 ReLU units → 10 digits. */
export const DEMO_SHAPE: MlpShape = { inputs: 784, hidden: 64, outputs: CLASSES };
