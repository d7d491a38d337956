/**
 * Backend selection, the one place that decides where a state lives, for `init` and `loadState`
 * alike: on the device (WebGPU) when the backend is `"webgpu"`, or `"auto"` with a device or GPU
 * params; else on the host: wasm where the runtime has WebAssembly SIMD (on threads with option
 * `threads`, from `threadThreshold` parameters), else TypeScript.
 *
 * @module
 */
import { optionError } from "../base/_errors.ts";
import type { Settings } from "../base/settings.ts";
import { createJsBackend } from "../cpu/js_backend.ts";
import { checkThreadSupport, createThreadedWasmBackend } from "../cpu/threaded_wasm_backend.ts";
import { createWasmBackend, wasmSimdSupported } from "../cpu/wasm_backend.ts";
import { ruleOf } from "./origins.ts";
import type { BackendFactory } from "./state.ts";

/** Whether `device` looks like a GPUDevice: the methods and queue a state uses. */
function isDevice(device: unknown): boolean {
  const d = device as Partial<GPUDevice> | null;
  return typeof d === "object" && d !== null && typeof d.createBuffer === "function" &&
    typeof d.createBindGroupLayout === "function" && typeof d.queue === "object" &&
    d.queue !== null;
}

/** Where a state goes: `"device"` (WebGPU), or the factory of its host backend. */
export type Placement = "device" | BackendFactory;

/**
 * Decides where a state of `config` goes, `device` being the GPU device the caller passed (if
 * any) and `gpuParams` whether its params hold GPU buffers. Throws a TypeError for a device
 * passed with a host backend, and an Error for a backend this runtime cannot run; nothing is
 * allocated before. `caller` names the function in errors.
 */
export function placement(
  config: Settings<unknown>,
  device: unknown,
  gpuParams: boolean,
  caller: "init" | "loadState",
): Placement {
  const choice = config.run.backend;
  if (device !== undefined && !isDevice(device)) {
    throw optionError("device", "a GPUDevice (await adapter.requestDevice())", device, false);
  }
  if (device !== undefined && choice !== "webgpu" && choice !== "auto") {
    throw new TypeError(
      `A device was passed to ${caller} but the backend is ${
        JSON.stringify(choice)
      }; use backend "webgpu" or "auto"`,
    );
  }
  if (choice === "webgpu" || (choice === "auto" && (device !== undefined || gpuParams))) {
    return "device";
  }
  const threads = config.run.threads;
  if (choice === "js") return (layout) => Promise.resolve(createJsBackend(layout, ruleOf(config)));
  const simd = wasmSimdSupported();
  if ((choice === "wasm" || threads > 1) && !simd) {
    throw new TypeError(
      `The wasm backend${
        threads > 1 ? ` (option threads: ${threads})` : ""
      } needs WebAssembly SIMD, which this runtime lacks; use backend "js" or "auto"`,
    );
  }
  if (!simd) return (layout) => Promise.resolve(createJsBackend(layout, ruleOf(config)));
  if (threads === 1) return createWasmBackend;
  // Refused before anything is allocated, whatever the size, so that it never depends on it.
  checkThreadSupport(threads);
  return (layout) =>
    layout.total < config.run.threadThreshold
      ? createWasmBackend(layout)
      : createThreadedWasmBackend(layout, threads);
}
