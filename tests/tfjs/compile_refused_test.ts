/**
 * Where WebAssembly cannot be compiled at run time (Cloudflare Workers; a page whose
 * Content-Security-Policy has no 'wasm-unsafe-eval') or has no SIMD, the default backend trains
 * on TypeScript, bit for bit as `backend: "js"`, in the library and in the TensorFlow.js adapter;
 * asking for wasm is a TypeError that says why. Each runtime is played by a worker
 * (refusing_runtime.ts) whose WebAssembly globals are replaced before anything is imported.
 */
import assert from "node:assert/strict";
import type { ErrorSeen, RefusingRuntimeReport } from "./refusing_runtime.ts";

/** What the worker playing `scenario` reports. */
async function report(scenario: "compile" | "simd" | "module"): Promise<RefusingRuntimeReport> {
  const worker = new Worker(new URL("./refusing_runtime.ts", import.meta.url), { type: "module" });
  try {
    const answer = await new Promise<RefusingRuntimeReport | { error: string }>((done, fail) => {
      worker.onmessage = (event) => done(event.data);
      worker.onerror = (event) => {
        event.preventDefault();
        fail(new Error(event.message));
      };
      worker.postMessage(scenario);
    });
    if ("error" in answer) throw new Error(`in the worker: ${answer.error}`);
    return answer;
  } finally {
    worker.terminate();
  }
}

function assertTypeError(error: ErrorSeen, what: RegExp, advice: RegExp): void {
  assert.equal(error.name, "TypeError", error.message);
  assert.match(error.message, what);
  assert.match(error.message, advice);
}

const DISALLOWED = /Wasm code generation disallowed by embedder/;

Deno.test('a runtime that refuses to compile WebAssembly: "auto" trains on js, bit for bit as backend "js"; "wasm" says why', async () => {
  const r = await report("compile");
  assert.equal(r.auto.backend, "js");
  assert.ok(r.auto.bits.length > 0);
  assert.deepEqual(r.auto.bits, r.auto.jsBits);
  assert.equal(r.loaded, "js");
  assertTypeError(r.wasm, /cannot be compiled in this runtime/, /use backend "js" or "auto"/);
  assert.match(r.wasm.message, DISALLOWED);
  assertTypeError(r.threads, /option threads: 2\).*cannot be compiled/, /use threads: 1/);
  assert.match(r.threads.message, DISALLOWED);
});

Deno.test("a runtime that refuses to compile WebAssembly: the tfjs adapter trains on js (cpu backend), bit for bit; backend wasm refuses before making anything", async () => {
  const r = await report("compile");
  assert.equal(r.tfjs.before, "js");
  assert.equal(r.tfjs.after, "js");
  assert.ok(r.tfjs.moved);
  assert.deepEqual(r.tfjs.bits, r.tfjs.jsBits);
  assert.equal(r.tfjsWasm.before, undefined);
  assertTypeError(r.tfjsWasm.error, /cannot be compiled in this runtime/, /backend "js" or "auto"/);
  assert.match(r.tfjsWasm.error.message, DISALLOWED);
  assert.equal(r.tfjsWasm.state, false);
  assert.ok(r.tfjsWasm.unchanged);
  assert.equal(r.tfjsThreads.before, undefined);
  assertTypeError(r.tfjsThreads.error, /option threads: 2\).*cannot be compiled/, /use threads: 1/);
});

Deno.test('a runtime without WebAssembly SIMD: "auto" trains on js in the library and the tfjs adapter; "wasm" says why', async () => {
  const r = await report("simd");
  assert.equal(r.auto.backend, "js");
  assert.deepEqual(r.auto.bits, r.auto.jsBits);
  assert.equal(r.tfjs.after, "js");
  assert.deepEqual(r.tfjs.bits, r.tfjs.jsBits);
  for (const error of [r.wasm, r.tfjsWasm.error]) {
    assertTypeError(error, /needs WebAssembly SIMD, which this runtime lacks/, /"js" or "auto"/);
  }
  assertTypeError(r.threads, /option threads: 2\).*SIMD/, /use threads: 1/);
  assert.equal(r.tfjsWasm.state, false);
  assert.ok(r.tfjsWasm.unchanged);
});

Deno.test('a runtime that refuses to compile WebAssembly, given the compiled kernel (setWasmModule): "auto", "wasm", loadState and the tfjs adapter train on wasm, bit for bit as js; threads stay refused', async () => {
  const r = await report("module");
  assert.equal(r.auto.backend, "wasm");
  assert.ok(r.auto.bits.length > 0);
  assert.deepEqual(r.auto.bits, r.auto.jsBits);
  assert.equal(r.loaded, "wasm");
  assert.deepEqual(r.wasm, { name: "none", message: "no error" });
  // Threads run a build compiled from bytes, which this runtime still refuses.
  assertTypeError(r.threads, /option threads: 2\).*cannot be compiled/, /use threads: 1/);
  assert.match(r.threads.message, DISALLOWED);
  assert.match(
    r.threads.message,
    /module given to setWasmModule runs single-threaded states only.*use threads: 1, with backend "wasm", "js" or "auto"/,
  );
  assert.equal(r.tfjs.before, "wasm");
  assert.equal(r.tfjs.after, "wasm");
  assert.ok(r.tfjs.moved);
  assert.deepEqual(r.tfjs.bits, r.tfjs.jsBits);
  assert.equal(r.tfjsWasm.before, "wasm");
  assert.deepEqual(r.tfjsWasm.error, { name: "none", message: "no error" });
  assert.equal(r.tfjsWasm.state, true);
  assert.ok(!r.tfjsWasm.unchanged);
  // With threads, no step can run (the threads' build is compiled from bytes): no backend named.
  assert.equal(r.tfjsThreads.before, undefined);
  assertTypeError(r.tfjsThreads.error, /option threads: 2\).*cannot be compiled/, /use threads: 1/);
  assert.match(r.tfjsThreads.error.message, /module given to setWasmModule runs single-threaded/);
});
