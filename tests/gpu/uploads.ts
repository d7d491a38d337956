/**
 * What the tests of a WebGPU state's uploads share: host params of many small tensors, and a count
 * of the `writeBuffer` calls a run makes.
 */
import { randoms } from "../util.ts";

/** Host params of `n` small tensors, of 1 to 5 elements. */
export function smallParams(n: number): Record<string, Float32Array> {
  const params: Record<string, Float32Array> = {};
  for (let i = 0; i < n; i++) params[`layers.${i}.w`] = randoms(1 + (i % 5), i);
  return params;
}

/** The `writeBuffer` calls of `run`, counted. */
export async function uploads(run: () => Promise<void>): Promise<number> {
  const original = GPUQueue.prototype.writeBuffer;
  let count = 0;
  GPUQueue.prototype.writeBuffer = function (this: GPUQueue, ...args) {
    count++;
    return Reflect.apply(original, this, args);
  };
  try {
    await run();
  } finally {
    GPUQueue.prototype.writeBuffer = original;
  }
  return count;
}
