/**
 * The device the GPU tests share: the first adapter's (Mesa's llvmpipe in CI), with its largest
 * buffer and binding limits. Without an adapter the GPU tests fail, unless RADAM_NO_GPU=1 says
 * the machine has none (then `ignore` is true). Also the GPU tolerance and an error-scope guard.
 *
 * GPU tolerance: WGSL allows division within 2.5 ULP and sqrt as an inverse-sqrt-based
 * approximation, and compilers may contract a·b + c into an FMA. The reference's running
 * bound counts K roundings of u = 2⁻²⁴ per quantity; for the GPU we allow K_GPU = 32, room for
 * each of the ~4 operations of a quantity being off by up to ~2.5 ULP instead of 0.5, twice.
 */
import assert from "node:assert/strict";

/** Roundings per quantity the GPU results may be off by (see the module doc). */
export const K_GPU = 32;
const noGpu = Deno.env.get("RADAM_NO_GPU") === "1";
/** The first WebGPU adapter, if any. */
export const adapter: GPUAdapter | null | undefined = await navigator.gpu?.requestAdapter();
if (!adapter && !noGpu) {
  throw new Error(
    "No WebGPU adapter found: the GPU tests need one (Mesa's llvmpipe will do); set RADAM_NO_GPU=1 to skip them on a machine without",
  );
}
/** The shared device (undefined only where RADAM_NO_GPU=1 and no adapter exists). */
export const device: GPUDevice | undefined = adapter
  ? await adapter.requestDevice({
    requiredLimits: {
      maxStorageBufferBindingSize: adapter.limits.maxStorageBufferBindingSize,
      maxBufferSize: adapter.limits.maxBufferSize,
    },
  })
  : undefined;
/** Whether the GPU tests are skipped (no device). */
export const ignore = !device;

/** Runs `f` inside validation and out-of-memory error scopes and fails on any GPU error. */
export async function noGpuErrors<T>(f: () => Promise<T>): Promise<T> {
  device!.pushErrorScope("validation");
  device!.pushErrorScope("out-of-memory");
  const out = await f();
  const oom = await device!.popErrorScope();
  const validation = await device!.popErrorScope();
  assert.equal(oom, null, `GPU out-of-memory error: ${oom?.message}`);
  assert.equal(validation, null, `GPU validation error: ${validation?.message}`);
  return out;
}
