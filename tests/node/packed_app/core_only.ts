// Type-checked by the packed-package test: the main entry alone, in a program with no WebGPU
// typings at all (no tfjs-core, no DOM library): its declarations stand on their own.
import { radam, readParams, step } from "@optim/radam";

export async function train(): Promise<Float32Array> {
  let state = await radam().init(new Float32Array(3));
  state = step(state, new Float32Array([1, 2, 3]));
  return (await readParams(state))[""];
}
