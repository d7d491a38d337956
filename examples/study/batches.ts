/**
 * Training batches and evaluation sets of the two tasks, as tfjs tensors, in an order fixed
 * by the run's seed (so every optimizer of a seed sees the same batches).
 *
 * @module
 */
import { seededRandom, shuffleInPlace } from "../demo/random.ts";
import { type Corpus, VOCABULARY_SIZE } from "./corpus.ts";
import { CLASSES, IMAGE_SIDE, type ImageSet, type ImageSplit } from "./images.ts";
import { CONTEXT, type TaskName } from "./models.ts";
import { tf } from "./tfjs_env.ts";

/** The data of one task. */
export type TaskData =
  | { readonly task: "image"; readonly images: ImageSplit }
  | { readonly task: "language"; readonly corpus: Corpus };

/** Inputs and targets of several batches, in training order. */
export interface Chunk {
  readonly x: tf.Tensor;
  readonly y: tf.Tensor;
}

/** Hands out a run's batches, `count` at a time. */
export interface BatchSource {
  next(count: number): Chunk;
}

const PIXELS = IMAGE_SIDE * IMAGE_SIDE;

function imageTensors(set: ImageSet, order: ArrayLike<number>): Chunk {
  const n = order.length;
  const x = new Float32Array(n * PIXELS);
  const y = new Float32Array(n * CLASSES);
  for (let i = 0; i < n; i++) {
    const k = order[i];
    x.set(set.pixels.subarray(k * PIXELS, (k + 1) * PIXELS), i * PIXELS);
    y[i * CLASSES + set.labels[k]] = 1;
  }
  return {
    x: tf.tensor(x, [n, IMAGE_SIDE, IMAGE_SIDE, 1, 1]),
    y: tf.tensor(y, [n, CLASSES]),
  };
}

function textTensors(text: Uint8Array, starts: ArrayLike<number>): Chunk {
  const n = starts.length;
  const x = new Float32Array(n * CONTEXT * VOCABULARY_SIZE);
  const y = new Float32Array(n * CONTEXT);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < CONTEXT; j++) {
      x[(i * CONTEXT + j) * VOCABULARY_SIZE + text[starts[i] + j]] = 1;
      y[i * CONTEXT + j] = text[starts[i] + j + 1];
    }
  }
  return {
    x: tf.tensor(x, [n, CONTEXT, VOCABULARY_SIZE]),
    y: tf.tensor(y, [n, CONTEXT, 1]),
  };
}

/** The batches of a run: `batchSize` examples each, in an order drawn from `seed`. */
export function batchSource(data: TaskData, batchSize: number, seed: number): BatchSource {
  const random = seededRandom(seed * 7919 + 13);
  if (data.task === "image") {
    const train = data.images.train;
    let order = new Uint32Array(0), at = 0;
    return {
      next(count) {
        const picked = new Uint32Array(count * batchSize);
        for (let i = 0; i < picked.length; i++) {
          if (at === order.length) {
            order = shuffleInPlace(Uint32Array.from({ length: train.count }, (_, k) => k), random);
            at = 0;
          }
          picked[i] = order[at++];
        }
        return imageTensors(train, picked);
      },
    };
  }
  const text = data.corpus.train;
  return {
    next(count) {
      const starts = Uint32Array.from(
        { length: count * batchSize },
        () => Math.floor(random() * (text.length - CONTEXT - 1)),
      );
      return textTensors(text, starts);
    },
  };
}

/** Windows of the validation text the language model is scored on (always the same). */
export const VALIDATION_WINDOWS = 512;

/** The evaluation set of a task: all test images, or fixed windows of the validation text. */
export function evaluationSet(data: TaskData): Chunk {
  if (data.task === "image") {
    return imageTensors(
      data.images.test,
      Array.from({ length: data.images.test.count }, (_, i) => i),
    );
  }
  const text = data.corpus.validation;
  const random = seededRandom(424242);
  const starts = Array.from(
    { length: VALIDATION_WINDOWS },
    () => Math.floor(random() * (text.length - CONTEXT - 1)),
  );
  return textTensors(text, starts);
}

/** The loss tfjs-layers trains each task with. */
export function lossOf(task: TaskName): string {
  return task === "image" ? "categoricalCrossentropy" : "sparseCategoricalCrossentropy";
}
