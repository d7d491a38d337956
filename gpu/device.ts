/**
 * Getting a WebGPU device when `init` is given none.
 *
 * @module
 */

/**
 * A device with the adapter's largest buffer and binding limits, or a clear error when this
 * runtime has no WebGPU adapter (never a silent fallback).
 *
 * @example
 * ```ts ignore
 * const device = await requestLargeDevice();
 * device.limits.maxStorageBufferBindingSize; // the adapter's largest
 * ```
 */
export async function requestLargeDevice(): Promise<GPUDevice> {
  const gpu = (globalThis.navigator as { gpu?: GPU } | undefined)?.gpu;
  if (!gpu) {
    throw new Error(
      'The webgpu backend was requested but this runtime has no WebGPU (navigator.gpu is missing); use backend "auto" or "wasm", or pass a device',
    );
  }
  const adapter = await gpu.requestAdapter();
  if (!adapter) {
    throw new Error(
      'The webgpu backend was requested but no WebGPU adapter was found; use backend "auto" or "wasm", or pass a device',
    );
  }
  return await adapter.requestDevice({
    requiredLimits: {
      maxStorageBufferBindingSize: adapter.limits.maxStorageBufferBindingSize,
      maxBufferSize: adapter.limits.maxBufferSize,
      maxComputeWorkgroupsPerDimension: adapter.limits.maxComputeWorkgroupsPerDimension,
    },
  });
}
