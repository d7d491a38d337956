/**
 * The light part of the WebGPU path: what `init` and `loadState` check before a state goes on
 * the GPU (whether params hold GPU tensors, the options, the params themselves), so that they
 * check at the call while the WebGPU backend itself (core/webgpu_state.ts and gpu/: its
 * pipelines, WGSL, device handling) is loaded only then, with a dynamic `import()`: an app that
 * trains on the CPU never loads it, and a bundler puts it in a chunk of its own
 * (tools/layers_test.ts keeps it out of mod.ts's static imports).
 *
 * @module
 */
import type { Settings } from "../base/settings.ts";
import { label } from "../base/tensors.ts";
import { type CheckedGpuParams, checkGpuParams } from "../gpu/_gpu_params.ts";
import { isGpuTensorInput } from "../gpu/gpu_tensors.ts";

/**
 * Options of `init` for the WebGPU backend.
 *
 * @example Keep the weights on the GPU
 * ```ts
 * import { adamw, readParams, step } from "@optim/radam";
 * import assert from "node:assert/strict";
 *
 * const adapter = await navigator.gpu?.requestAdapter();
 * if (adapter) {
 *   const device = await adapter.requestDevice();
 *   let state = await adamw({ lr: 1e-3 }).init({ w: new Float32Array([1, 2]) }, { device });
 *   state = step(state, { w: new Float32Array([0.1, 0.2]) }); // one writeBuffer, one dispatch
 *   assert.equal(state.backend, "webgpu");
 *   const { w } = await readParams(state); // async readback
 *   assert.ok(Math.abs(w[0] - (1 - 1e-3 - 1e-5)) < 1e-6); // ≈ lr against the gradient, and decay
 * }
 * ```
 */
export interface GpuInitOptions {
  /**
   * The device to run on (the one your model's buffers live on). Default: a device of the
   * first adapter, requested with the adapter's largest buffer and binding limits; params given
   * as GPU buffers need theirs (without it, `init` rejects with a TypeError saying so).
   */
  device?: GPUDevice;
}

/** Whether params hold any GPU tensor (so "auto" picks WebGPU). */
export function hasGpuParams(params: unknown): boolean {
  if (isGpuTensorInput(params)) return true;
  if (typeof params !== "object" || params === null || params instanceof Float32Array) {
    return false;
  }
  return Object.values(params).some(isGpuTensorInput);
}

/** Throws a TypeError for options the webgpu backend does not run (`threads`: a CPU option). */
export function checkGpuConfig(config: Settings<unknown>): void {
  if (config.run.threads > 1) {
    throw new TypeError(
      `The webgpu backend does not take threads: ${config.run.threads} (worker threads split the wasm backend's arena); remove the option or use backend "wasm"`,
    );
  }
}

/**
 * The checks of `init` on the WebGPU backend, made at the call: the options, the params (see
 * `checkGpuParams`), and a device where params are GPU buffers. Returns the checked params.
 */
export function checkWebGpuInit(
  config: Settings<unknown>,
  params: unknown,
  options: GpuInitOptions,
): CheckedGpuParams {
  checkGpuConfig(config);
  const checked = checkGpuParams(params);
  if (options.device === undefined && checked.device.size > 0) throw deviceNeeded(checked);
  return checked;
}

/**
 * The TypeError for params given as GPU buffers without init's `device`: a device the library
 * requests is never the one that made them, so the GPU would refuse them.
 */
function deviceNeeded(checked: CheckedGpuParams): TypeError {
  const names = [...checked.device.keys()].map((i) => label(checked.names[i])).join(", ");
  return new TypeError(
    `Expected init's device option with params given as GPU buffers (${names}): pass the GPUDevice that made them, init(params, { device }); a device the library requests itself cannot use them`,
  );
}
