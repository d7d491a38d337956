/**
 * A worker of a threaded bound (bench/compare/bounds.ts): sets up its own instance of the bounds'
 * module from a {@linkcode BoundWorkerInit}, answers `{ ready: true }`, then runs `steps` steps
 * of the byte-moment kernel for each `{ steps }` it is sent and answers when they are done.
 *
 * @module
 */
import { type BoundWorkerInit, bytesStepIn } from "./bounds.ts";

// deno-lint-ignore no-explicit-any
const scope = globalThis as any;
let step: (() => void) | undefined;

scope.onmessage = async (event: MessageEvent) => {
  try {
    if (step === undefined) {
      const init: BoundWorkerInit = event.data;
      step = await bytesStepIn(init.module, init.rule, init.n, init.scaled);
      scope.postMessage({ ready: true });
      return;
    }
    for (let s = 0; s < event.data.steps; s++) step();
    scope.postMessage({ done: true });
  } catch (error) {
    scope.postMessage({ error: String(error) });
  }
};
