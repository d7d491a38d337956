/**
 * Where WebAssembly compiles only asynchronously (a browser's main thread that refuses a
 * synchronous compile of more than 4 KB), backend "wasm" runs as it did before the check of
 * runtimes that refuse to compile WebAssembly: that check must not turn the synchronous
 * compile's RangeError into the error of `init`. Played by a worker (sync_limit_runtime.ts)
 * whose `WebAssembly.Module` refuses, before the library is imported. The TensorFlow.js adapter,
 * which must make its state synchronously, trains on js there.
 */
import assert from "node:assert/strict";
import type { SyncLimitReport } from "./sync_limit_runtime.ts";

Deno.test('a runtime that compiles WebAssembly only asynchronously: backend "wasm" and "auto" run on wasm', async () => {
  const worker = new Worker(new URL("./sync_limit_runtime.ts", import.meta.url), {
    type: "module",
  });
  try {
    const report = await new Promise<SyncLimitReport>((done, fail) => {
      worker.onmessage = (event) => done(event.data);
      worker.onerror = (event) => {
        event.preventDefault();
        fail(new Error(event.message));
      };
      worker.postMessage("start");
    });
    // The adapter makes its state synchronously: where the kernel cannot compile so, it runs
    // on js (bit for bit as wasm), as where WebAssembly is refused.
    assert.deepEqual(report, {
      tfjsBefore: "js",
      tfjs: "js",
      wasm: "wasm",
      auto: "wasm",
      loaded: "wasm",
    });
  } finally {
    worker.terminate();
  }
});
