/**
 * The page's data: the MNIST digits the build wrote beside it (`mnist.json`, `mnist.bin`:
 * training pixels, test pixels, training labels, test labels, one byte each).
 *
 * @module
 */

/** One set of digits: pixels in [0, 1], row by row, and labels. */
export interface Digits {
  readonly count: number;
  readonly pixels: Float32Array;
  readonly labels: Uint8Array;
}

/** The training and test digits. */
export interface DigitData {
  readonly train: Digits;
  readonly test: Digits;
  /** Pixels per image (784). */
  readonly size: number;
}

/** Fetches the digits from the page's own origin. */
export async function loadDigits(base: URL): Promise<DigitData> {
  const manifest = await (await fetch(new URL("mnist.json", base))).json() as {
    train: number;
    test: number;
    pixels: number;
    file: string;
  };
  const bytes = new Uint8Array(await (await fetch(new URL(manifest.file, base))).arrayBuffer());
  const { train, test, pixels } = manifest;
  if (bytes.length !== (train + test) * (pixels + 1)) {
    throw new RangeError(
      `${manifest.file} holds ${bytes.length} bytes, expected ${(train + test) * (pixels + 1)}`,
    );
  }
  const scaled = (from: number, n: number) => {
    const out = new Float32Array(n);
    for (let i = 0; i < n; i++) out[i] = bytes[from + i] / 255;
    return out;
  };
  const labelsAt = (train + test) * pixels;
  return {
    size: pixels,
    train: {
      count: train,
      pixels: scaled(0, train * pixels),
      labels: bytes.slice(labelsAt, labelsAt + train),
    },
    test: {
      count: test,
      pixels: scaled(train * pixels, test * pixels),
      labels: bytes.slice(labelsAt + train, labelsAt + train + test),
    },
  };
}
