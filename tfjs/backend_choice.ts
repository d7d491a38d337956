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
import { wasmRuns } from "./cpu_path.ts";

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
