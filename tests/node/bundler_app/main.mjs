// A browser app as Vite and webpack build it (bundlers.test.mjs): the shared case (../shared_case.mjs)
// on two threads, which needs a cross-origin-isolated page, and an import of @optim/radam/tfjs
// for its registration only, which a bundler must keep. Its result goes on the page.
import * as tf from "@tensorflow/tfjs-core";
import * as lib from "@optim/radam";
import "@optim/radam/tfjs";
import { runCase } from "../shared_case.mjs";

async function main() {
  const isolated = globalThis.crossOriginIsolated;
  const registered = "RadamTfOptimizer" in tf.serialization.SerializationMap.getMap().classNameMap;
  const threads = isolated ? await runCase(lib, "wasm", undefined, 2) : undefined;
  return { isolated, registered, threads };
}

main().then(
  (result) => globalThis.__result = result,
  (e) => globalThis.__error = String(e && e.stack || e),
);
