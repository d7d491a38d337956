// Type-checked by the packed-package test: the main entry alone, in a program with no WebGPU
// typings at all (no tfjs-core, no DOM library): its declarations stand on their own.
import { radam, readParams, setWasmModule, step } from "@optim/radam";
// A Worker's import of the kernel (its types are the package's, not a bundler's `*.wasm`).
import kernel from "@optim/radam/radam.wasm";

export function giveKernel(): void {
  setWasmModule(kernel);
  // @ts-expect-error: the kernel is a compiled module, not its bytes
  const bytes: Uint8Array = kernel;
  void bytes;
}

export async function train(): Promise<Float32Array> {
  let state = await radam().init(new Float32Array(3));
  state = step(state, new Float32Array([1, 2, 3]));
  // With no WebGPU typings, an empty GPUBuffer placeholder took any value: these type-checked.
  // @ts-expect-error: a gradient is a Float32Array, not an Array
  step(state, [1, 2, 3]);
  const named = await radam().init({ w: new Float32Array(2) });
  // An optimizer's step() and a state's dispose() only refuse, saying what to write: the
  // types name neither, which would say they work.
  // @ts-expect-error: an optimizer has no step(); the function step steps its state
  void radam().step;
  // @ts-expect-error: a state has no dispose(); the function dispose frees it
  void named.dispose;
  // @ts-expect-error: nor a record of Arrays
  step(named, { w: [1, 2] });
  return (await readParams(state))[""];
}
