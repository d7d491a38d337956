/**
 * Making a WebGPU backend: a rule's pipelines on a device (compiled once per device, ahead or
 * on demand), the planning limits (the device's, or lower ones for tests), and the backend of a
 * layout (webgpu_backend.ts).
 *
 * @module
 */
import type { ArenaLayout } from "../base/arena.ts";
import type { Rule } from "../base/rule.ts";
import { blockCount } from "../base/scalars.ts";
import type { GpuPlanLimits } from "./arena_plan.ts";
import type { GpuTensor } from "./gpu_tensors.ts";
import { type Pipelines, pipelinesOf, pipelinesOfSync } from "./pipelines.ts";
import { checkRingFits } from "./scalar_ring.ts";
import { type BackendSetup, WebGpuBackend } from "./webgpu_backend.ts";
import { SMALL_STEP_ELEMENTS } from "./wgsl_kernel.ts";

/** Options of {@linkcode createWebGpuBackend}. */
export interface WebGpuBackendOptions extends BackendSetup {
  /** Lower planning limits than the device's (for tests). */
  limits?: Partial<GpuPlanLimits>;
  /**
   * Caller-owned params updated in place (zero copy), as `placeGpuParams` in _gpu_params.ts
   * admits them: STORAGE usage, offset a multiple of `minStorageBufferOffsetAlignment`, and
   * the buffer extends to the 16-byte boundary after the last element.
   */
  inPlaceParams?: ReadonlyMap<number, GpuTensor>;
}

/**
 * Makes the WebGPU backend of a layout on `device`, stepped by `rule`'s element loop.
 *
 * @example
 * ```ts ignore
 * const backend = await createWebGpuBackend(device, planGpuArena(["w"], [1000]), ADAM, {
 *   nonFinite: "skip",
 * });
 * ```
 */
export async function createWebGpuBackend(
  device: GPUDevice,
  layout: ArenaLayout,
  rule: Rule,
  options: WebGpuBackendOptions = {},
): Promise<WebGpuBackend> {
  return backendOn(device, layout, rule, await pipelinesOf(device, rule), options);
}

/**
 * {@linkcode createWebGpuBackend}, synchronously: the device's pipelines are compiled now
 * (blocking) unless an earlier state compiled them. For callers that must start a state inside a
 * synchronous call (the TensorFlow.js adapter's first `applyGradients`).
 *
 * @example
 * ```ts ignore
 * const backend = createWebGpuBackendSync(device, planGpuArena(["w"], [1000]), ADAM);
 * ```
 */
export function createWebGpuBackendSync(
  device: GPUDevice,
  layout: ArenaLayout,
  rule: Rule,
  options: WebGpuBackendOptions = {},
): WebGpuBackend {
  return backendOn(device, layout, rule, pipelinesOfSync(device, rule), options);
}

/**
 * Compiles the device's pipelines of `rule` ahead (asynchronously), so that a later
 * {@linkcode createWebGpuBackendSync} does not block on them.
 *
 * @example
 * ```ts ignore
 * await prepareWebGpu(device, ADAM);
 * ```
 */
export async function prepareWebGpu(device: GPUDevice, rule: Rule): Promise<void> {
  await pipelinesOf(device, rule);
}

/** The device's planning limits, lowered where `given` says (never above the device's). */
function limitsOf(device: GPUDevice, given: Partial<GpuPlanLimits>): GpuPlanLimits {
  return {
    maxStorageBufferBindingSize: given.maxStorageBufferBindingSize ??
      device.limits.maxStorageBufferBindingSize,
    maxBufferSize: given.maxBufferSize ?? device.limits.maxBufferSize,
    maxComputeWorkgroupsPerDimension: given.maxComputeWorkgroupsPerDimension ??
      device.limits.maxComputeWorkgroupsPerDimension,
    smallStepElements: Math.min(
      given.smallStepElements ?? SMALL_STEP_ELEMENTS,
      SMALL_STEP_ELEMENTS,
    ),
  };
}

function backendOn(
  device: GPUDevice,
  layout: ArenaLayout,
  rule: Rule,
  pipelines: Pipelines,
  options: WebGpuBackendOptions,
): WebGpuBackend {
  const limits = limitsOf(device, options.limits ?? {});
  checkRingFits(blockCount(layout.segments), device.limits); // (bound whole: not planned in chunks)
  return new WebGpuBackend(device, layout, rule, pipelines, limits, options);
}
