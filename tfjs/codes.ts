/**
 * 8-bit moments (`states: "8bit"`) as TensorFlow.js weights. A moment of a variable of 4096
 * elements or more is two weights, named as a checkpoint names its tensors
 * (`<tensor>.<moment>.codes`, `.scales`) after the tfjs name of the moment
 * (`<variable>/m.codes`, `<variable>/m.scales`):
 *
 * - `.codes`: an int32 tensor of shape `[ceil(n / 4)]`, four codes to an int32 (code `i` is byte
 *   `i % 4` of int32 `i / 4`, little-endian; i8 for a signed moment, u8 for `exp_avg_sq`; the
 *   bytes after the last code are 0). tfjs tensors have no 8-bit dtype: one int32 a code would
 *   take 4 bytes an element in memory and in a saved model, as many as the f32 moment; packed, 1
 *   byte, as in a checkpoint.
 * - `.scales`: a float32 tensor of shape `[ceil(n / 256)]`, one scale a block.
 *
 * Both in the order the optimizer holds the variable: tfjs's, or, for a kernel held transposed
 * under `gc` (its last axis first, as in the library's checkpoints), marked so in their names
 * (`<variable>/m.transposed.codes`, see code_order.ts). (On webgpu under `gc` a kernel is held
 * in the tfjs order: its codes are given unmarked.)
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs-core";
import type { ReadTensor } from "./given.ts";
import type { CompactMoment } from "../base/arena.ts";
import { Q8_BLOCK, Q8_MIN_ELEMENTS } from "../base/q8.ts";
import { codesFault } from "../base/q8_tensor.ts";
import { signedNumber } from "../base/_errors.ts";

/** The suffix of the weight of a moment's codes held in 8 bits. */
export const CODES = "codes";
/** The suffix of the weight of a moment's scales held in 8 bits. */
export const SCALES = "scales";

/**
 * A moment's codes packed four to an int32 (the bytes after the last code 0).
 *
 * @example
 * ```ts
 * import "@tensorflow/tfjs-backend-cpu";
 * import { packCodes } from "./codes.ts";
 * import assert from "node:assert/strict";
 *
 * const packed = packCodes(new Int8Array([1, -1, 0, 2, 3]));
 * assert.deepEqual(packed.shape, [2]);
 * assert.deepEqual([...packed.dataSync()], [0x0200ff01, 3]);
 * ```
 */
export function packCodes(codes: Int8Array | Uint8Array): tf.Tensor {
  const bytes = new Uint8Array(Math.ceil(codes.length / 4) * 4);
  bytes.set(new Uint8Array(codes.buffer, codes.byteOffset, codes.length));
  return tf.tensor(new Int32Array(bytes.buffer), [bytes.length / 4], "int32");
}

/**
 * The weights of one moment held in 8 bits: `<name>.codes` and `<name>.scales`.
 *
 * @example
 * ```ts
 * import "@tensorflow/tfjs-backend-cpu";
 * import { codeWeights } from "./codes.ts";
 * import assert from "node:assert/strict";
 *
 * const moment = { codes: new Uint8Array(4096), scales: new Float32Array(16) };
 * const weights = codeWeights("dense/kernel/v", moment);
 * assert.deepEqual(weights.map((w) => w.name), ["dense/kernel/v.codes", "dense/kernel/v.scales"]);
 * assert.deepEqual(weights.map((w) => w.tensor.shape), [[1024], [16]]);
 * ```
 */
export function codeWeights(
  name: string,
  moment: CompactMoment,
): { name: string; tensor: tf.Tensor }[] {
  return [
    { name: `${name}.${CODES}`, tensor: packCodes(moment.codes) },
    { name: `${name}.${SCALES}`, tensor: tf.tensor(moment.scales.slice(), [moment.scales.length]) },
  ];
}

/**
 * The codes and scales of the weights `codesName` (int32, packed) and its `.scales` (float32),
 * checked: rank 1, as many scales as blocks of some length the codes may have (4096 elements or
 * more), each +0 or a positive normal finite number, no signed code −128, a block of scale 0 all
 * codes 0. Returns them with the range of lengths of the variable they fit (the packing leaves
 * up to 3 codes of padding): `sizes`. A RangeError/TypeError naming the weight otherwise.
 *
 * @example
 * ```ts
 * import "@tensorflow/tfjs-backend-cpu";
 * import { codeWeights, readCodes } from "./codes.ts";
 * import assert from "node:assert/strict";
 *
 * const [codes, scales] = codeWeights("w/m", {
 *   codes: new Int8Array(5000).fill(1),
 *   scales: new Float32Array(20).fill(0.5),
 * });
 * const read = await readCodes(codes.name, codes.tensor, scales.tensor, true);
 * assert.deepEqual(read.sizes, [4997, 5000]); // 1250 int32s: 4997 to 5000 codes
 * assert.equal(read.moment.codes.length, 5000);
 * await assert.rejects(readCodes(codes.name, codes.tensor, codes.tensor, true), TypeError);
 * ```
 */
export async function readCodes(
  codesName: string,
  codesTensor: tf.Tensor,
  scalesTensor: tf.Tensor,
  signed: boolean,
  read: ReadTensor = (t) => t.data(),
): Promise<{ moment: CompactMoment; sizes: [number, number] }> {
  const scalesName = codesName.replace(/codes$/, SCALES);
  for (
    const [name, t, dtype] of [[codesName, codesTensor, "int32"], [
      scalesName,
      scalesTensor,
      "float32",
    ]] as const
  ) {
    if (t.dtype !== dtype || t.rank !== 1) {
      throw new TypeError(
        `Expected weight ${
          JSON.stringify(name)
        } to be a rank-1 ${dtype} tensor, got ${t.dtype} of shape [${t.shape.join(", ")}]`,
      );
    }
  }
  const packed = codesTensor.size, blocks = scalesTensor.size;
  const low = Math.max(4 * packed - 3, Q8_BLOCK * (blocks - 1) + 1, Q8_MIN_ELEMENTS);
  const high = Math.min(4 * packed, Q8_BLOCK * blocks);
  if (low > high) {
    throw new RangeError(
      `Weights ${JSON.stringify(codesName)} ([${packed}]: 4 codes an int32) and ${
        JSON.stringify(scalesName)
      } ([${blocks}]: one scale per ${Q8_BLOCK} codes) disagree, or hold fewer than ${Q8_MIN_ELEMENTS} codes`,
    );
  }
  const words = (await read(codesTensor) as Int32Array).slice();
  const codes = signed ? new Int8Array(words.buffer) : new Uint8Array(words.buffer);
  const scales = (await read(scalesTensor) as Float32Array).slice();
  checkCodes(codesName, codes, scales);
  return { moment: { codes, scales }, sizes: [low, high] };
}

/** The checks of {@linkcode readCodes} on the values. */
function checkCodes(codesName: string, codes: Int8Array | Uint8Array, scales: Float32Array): void {
  const fault = codesFault(codes, scales);
  if (fault === undefined) return;
  throw new RangeError(
    fault.element === undefined
      ? `Expected weight ${
        JSON.stringify(codesName.replace(/codes$/, SCALES))
      }[${fault.block}] to be +0 or a positive normal finite number, got ${
        signedNumber(fault.scale)
      }`
      : `Weight ${
        JSON.stringify(codesName)
      } holds code ${fault.code} at element ${fault.element}; ${fault.why}`,
  );
}
