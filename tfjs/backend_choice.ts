/**
 * Where a TensorFlow.js optimizer's steps run, from option `backend` and TensorFlow.js's active
 * backend: on the GPU (gpu_path.ts) when tfjs runs on webgpu, else on the CPU, in wasm or
 * TypeScript (cpu_path.ts).
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs-core";
import type { BackendName } from "../base/options.ts";
import type { Settings } from "../base/settings.ts";
import { bytesRefusalSync, compileRefusalSync, wasmSimdSupported } from "../cpu/wasm_backend.ts";
import { type TfjsWasmHeap, tfjsWasmHeap } from "./wasm_heap.ts";

/** Whether the update runs on the GPU: tfjs on webgpu, and backend "auto" or "webgpu". */
export function onWebGpu(config: Settings): boolean {
  const choice = config.run.backend;
  return tf.getBackend() === "webgpu" && (choice === "auto" || choice === "webgpu");
}

/**
 * Where the next step will run while there is no state (`TfOptimizer.backend`); undefined while
 * tfjs has not chosen a backend, or where no step can run.
 */
export function nextBackend(config: Settings): BackendName | undefined {
  const running = tf.getBackend() as string | null | undefined;
  if (running === null || running === undefined) return undefined;
  const choice = config.run.backend;
  if (onWebGpu(config)) return "webgpu";
  if (choice === "webgpu") return undefined;
  if (choice === "js") return "js";
  if (wasmRuns(config.run.threads)) return "wasm";
  return choice === "auto" && config.run.threads === 1 ? "js" : undefined;
}

/**
 * Whether this library's wasm kernel runs here: the runtime has WebAssembly SIMD and compiles
 * WebAssembly at run time (tfjs's own wasm backend runs; else the kernel compiles: once,
 * synchronously, the module a state then runs), or was given the kernel (`setWasmModule`).
 * Backend `"auto"` runs on js where not, and where the kernel does not compile synchronously (a
 * browser's main thread that refuses a synchronous compile over 4 KB with a RangeError): the
 * adapter makes its state synchronously. With `threads` above 1, not where the runtime refuses
 * to compile WebAssembly from bytes, given the kernel or not: threads run a build compiled from
 * them, and a step is refused there (`checkWasmAsked`).
 */
export function wasmRuns(threads = 1): boolean {
  if (!wasmSimdSupported() || tfjsWasmHeap() !== undefined) return wasmSimdSupported();
  try {
    if (threads > 1 && bytesRefusalSync() !== undefined) return false;
  } catch {
    // Only the synchronous compile failed: the threads' build is compiled asynchronously.
  }
  try {
    return compileRefusalSync() === undefined;
  } catch {
    return false;
  }
}

/** tfjs's wasm heap, when a state of `total` parameters is to be made on it. */
export function heapCandidate(config: Settings, total: number): TfjsWasmHeap | undefined {
  if (config.run.backend !== "auto" && config.run.backend !== "wasm") return undefined;
  if (config.run.threads > 1 && total >= config.run.threadThreshold) return undefined;
  return wasmSimdSupported() ? tfjsWasmHeap() : undefined;
}
