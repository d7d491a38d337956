/**
 * Backend selection, the one place that decides where a state lives, for `init` and `loadState`
 * alike: on the device (WebGPU) when the backend is `"webgpu"`, or `"auto"` with a device or GPU
 * params (init's option `from` on WebGPU gives its device, core/optimizer.ts); else on the host:
 * wasm where the runtime runs the kernel (it has WebAssembly SIMD, and lets WebAssembly be
 * compiled at run time: the kernel is compiled once, and the module kept for the states that run
 * it), on threads with option `threads` (from `threadThreshold` parameters), else TypeScript.
 * Where WebAssembly cannot be compiled at run time, a kernel module given to `setWasmModule`
 * (cpu/wasm_module.ts) runs the single-threaded wasm states.
 *
 * @module
 */
import { optionError } from "../base/_errors.ts";
import type { Settings } from "../base/settings.ts";
import { createJsBackend } from "../cpu/js_backend.ts";
import { checkThreadSupport, createThreadedWasmBackend } from "../cpu/threaded_wasm_backend.ts";
import {
  bytesRefusal,
  bytesRefusalSync,
  compiledNow,
  compileRefusal,
  compileRefusalSync,
  createWasmBackend,
  filled,
  kernelModuleGiven,
  wasmSimdSupported,
} from "../cpu/wasm_backend.ts";
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
 * Throws a TypeError, before anything is allocated, where the wasm backend is asked for (backend
 * `"wasm"`, or option `threads` above 1) and this runtime cannot run it: it lacks WebAssembly
 * SIMD, or it does not let WebAssembly be compiled at run time (the message quotes its error).
 * Synchronous: it compiles the kernel, once (the module the states then run). Where the
 * runtime compiles it only asynchronously (a browser's main thread that refuses a synchronous
 * compile over 4 KB with a RangeError), it throws nothing: the asynchronous compile decides
 * ({@linkcode wasmRefused}).
 */
export function checkWasmAsked(config: Settings<unknown>): void {
  const { backend, threads } = config.run;
  if (backend !== "wasm" && threads === 1) return;
  if (!wasmSimdSupported()) throw wasmAskedError(config, undefined);
  let refusal: Error | undefined;
  try {
    // Threads run a build of the kernel that imports its memory: compiled from bytes.
    refusal = threads > 1 ? bytesRefusalSync() : compileRefusalSync();
  } catch {
    return; // not a refusal: the synchronous compile alone failed
  }
  if (refusal !== undefined) throw wasmAskedError(config, refusal);
}

/**
 * The TypeError of wasm asked for where it cannot run: without SIMD (`refusal` undefined), or
 * where the runtime refuses to compile WebAssembly (its error).
 */
function wasmAskedError(config: Settings<unknown>, refusal: Error | undefined): TypeError {
  const threads = config.run.threads;
  const given = threads > 1 && kernelModuleGiven()
    ? " (the module given to setWasmModule runs single-threaded states only)"
    : "";
  const needs = refusal === undefined
    ? "needs WebAssembly SIMD, which this runtime lacks"
    : `needs WebAssembly, which cannot be compiled in this runtime (${refusal.name}: ${refusal.message})${given}`;
  return new TypeError(
    threads > 1
      ? `The wasm backend (option threads: ${threads}) ${needs}; use threads: 1, with backend ${
        given === "" ? "" : `"wasm", `
      }"js" or "auto"`
      : `The wasm backend ${needs}; use backend "js" or "auto"`,
  );
}

/**
 * Whether the state goes on TypeScript as the kernel does not compile here (asynchronously),
 * for backend `"auto"`; a TypeError where wasm was asked for ({@linkcode checkWasmAsked}, which
 * could not tell where only an asynchronous compile runs).
 */
async function wasmRefused(config: Settings<unknown>): Promise<boolean> {
  return refusedBy(config, config.run.threads > 1 ? await bytesRefusal() : await compileRefusal());
}

/** {@linkcode wasmRefused}, of the compile's `refusal` (undefined: it compiled). */
function refusedBy(config: Settings<unknown>, refusal: Error | undefined): boolean {
  if (refusal === undefined) return false;
  if (config.run.backend === "wasm" || config.run.threads > 1) {
    throw wasmAskedError(config, refusal);
  }
  return true;
}

/**
 * Decides where a state of `config` goes, `device` being the GPU device the caller passed (if
 * any) and `gpuParams` whether its params hold GPU buffers. Throws a TypeError for a device
 * passed with a host backend, and for a backend this runtime cannot run
 * ({@linkcode checkWasmAsked}); nothing is allocated before. With backend `"auto"`, the state
 * goes on wasm where the kernel compiles here, else on TypeScript. `caller` names the function
 * in errors.
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
  // (The executor runs during the call, `fill` too; what it throws rejects.)
  const js: BackendFactory = (layout, fill) =>
    new Promise((resolve) => {
      const backend = createJsBackend(layout, ruleOf(config));
      resolve(fill === undefined ? backend : filled(backend, fill));
    });
  if (choice === "js") return js;
  checkWasmAsked(config);
  if (!wasmSimdSupported()) return js;
  const threads = config.run.threads;
  // Refused before anything is allocated, whatever the size, so that it never depends on it.
  if (threads > 1) checkThreadSupport(threads);
  const wasm: BackendFactory = (layout, fill) => {
    // Parameters, not arena elements (an 8-bit arena's block padding counts for none).
    const parameters = layout.lengths.reduce((sum, n) => sum + n, 0);
    return threads > 1 && parameters >= config.run.threadThreshold
      ? createThreadedWasmBackend(layout, threads, {}, fill)
      : createWasmBackend(layout, fill);
  };
  return async (layout, fill) => {
    // Where the compile's outcome is known (any state after the first), nothing is awaited
    // before the backend is made: `fill` runs during the call.
    const known = compiledNow(threads > 1);
    if (known !== undefined) {
      return refusedBy(config, known.refusal) ? js(layout, fill) : wasm(layout, fill);
    }
    return await wasmRefused(config) ? js(layout) : wasm(layout);
  };
}
