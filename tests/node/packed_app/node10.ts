// Type-checked by the packed-package test under TypeScript's `moduleResolution: "node10"`
// (`"node"`, the default with `module: "commonjs"`), which reads no `exports`: every entry point's
// types must still be found (typesVersions). Each @ts-expect-error must be an error, so the
// types are not `any`.
import { radam, readParams, setWasmModule, step } from "@optim/radam";
import kernel from "@optim/radam/radam.wasm";
import { tfOptimizer } from "@optim/radam/tfjs";
import { memoryCheckpointStore, optimisticStep } from "@optim/radam/store";

export async function all(): Promise<number> {
  setWasmModule(kernel);
  // @ts-expect-error: the kernel is a compiled module, not its bytes
  const bytes: Uint8Array = kernel;
  let state = await radam().init({ w: new Float32Array(3) });
  state = step(state, { w: new Float32Array([1, 2, 3]) });
  const { w } = await readParams(state);
  // @ts-expect-error: the adapter takes an optimizer of this library
  tfOptimizer({ lr: 1e-3 });
  const done = await optimisticStep(memoryCheckpointStore(), {
    optimizer: radam(),
    init: () => ({ w: new Float32Array(3) }),
    gradient: (s) => s.grads.w.fill(1),
  });
  // @ts-expect-error: a step number is not a string
  const step1: string = done.step;
  return w.length + step1.length + bytes.length;
}
