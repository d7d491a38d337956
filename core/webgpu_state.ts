/**
 * Starting an optimizer state on the WebGPU backend: validate the params, get a device, decide
 * which caller-owned GPU params are updated in place (zero copy) and which are copied, build the
 * GPU arena, upload host params once. `init` and `loadState` load this module (and with it the
 * WebGPU backend of gpu/) with a dynamic `import()` when a state goes on the GPU, having made
 * their checks with core/webgpu_checks.ts; the TensorFlow.js adapter imports it statically.
 *
 * @module
 */
import {
  type ArenaLayout,
  type CompactMoment,
  EXP_AVG,
  EXP_AVG_SQ,
  hasSection,
  SLOW,
} from "../base/arena.ts";
import type { DeviceBackend } from "../base/backend.ts";
import type { Settings } from "../base/settings.ts";
import { label } from "../base/tensors.ts";
import { type CheckedGpuParams, checkGpuParams, placeGpuParams } from "../gpu/_gpu_params.ts";
import { recordCallerBuffers, stateBufferDevice } from "../gpu/_gpu_grads.ts";
import type { GpuTensor } from "../gpu/gpu_tensors.ts";
import type { GpuPlanLimits } from "../gpu/arena_plan.ts";
import { planGpuLayout } from "../gpu/arena_layout.ts";
import { buffersRefused } from "../gpu/buffer_probe.ts";
import { requestLargeDevice } from "../gpu/device.ts";
import { prepareOnLiveDevice } from "../gpu/device_lost.ts";
import {
  createWebGpuBackend,
  createWebGpuBackendSync,
  prepareWebGpu,
} from "../gpu/webgpu_create.ts";
import type { WebGpuBackend } from "../gpu/webgpu_backend.ts";
import type { DeviceStart } from "./carry.ts";
import { ruleOf } from "./origins.ts";
import { checkAttached, checkCopiedFinite } from "./init_state.ts";
import { disposeState, inLayoutOrder, type OptimizerState, restoreState } from "./state.ts";
import { checkSavableSize } from "./checkpoint_header.ts";
import { checkSavableNames } from "./checkpoint_tensors.ts";
import { checkGroupsMatch, layoutIndices, planOptionsOf } from "./plan.ts";
import { checkGpuConfig, checkWebGpuInit, type GpuInitOptions } from "./webgpu_checks.ts";

/**
 * Makes a WebGPU state at step 0; `limits` lowers the planning limits (for tests). `init` loads
 * this module only once it has checked the call ({@linkcode initCheckedWebGpuState}).
 */
export function initWebGpuState(
  config: Settings<unknown>,
  params: unknown,
  options: GpuInitOptions = {},
  limits?: Partial<GpuPlanLimits>,
): Promise<OptimizerState<GpuTensor>> {
  try {
    return initCheckedWebGpuState(
      config,
      checkWebGpuInit(config, params, options),
      options,
      limits,
    );
  } catch (error) {
    return Promise.reject(error);
  }
}

/** {@linkcode initWebGpuState} of params that `checkWebGpuInit` has checked. */
export async function initCheckedWebGpuState(
  config: Settings<unknown>,
  checked: CheckedGpuParams,
  options: GpuInitOptions,
  limits?: Partial<GpuPlanLimits>,
  from?: DeviceStart,
): Promise<OptimizerState<GpuTensor>> {
  checkGroupsMatch(config, checked.names);
  const device = options.device ?? from?.device ?? await requestLargeDevice();
  await prepareOnLiveDevice(device, "init", () => prepareWebGpu(device, ruleOf(config)));
  // (Then synchronously: a WebGPU from's state is copied as its counts say.)
  await from?.settle();
  if (checked.device.size === 0) return startWebGpuState(config, checked, device, limits, from);
  // The caller's buffers: the GPU alone finds one destroyed, or of another device.
  device.pushErrorScope("validation");
  let state: OptimizerState<GpuTensor>;
  try {
    state = startWebGpuState(config, checked, device, limits, from);
  } catch (error) {
    await device.popErrorScope();
    throw error;
  }
  const error = await device.popErrorScope();
  const buffers = [...checked.device.values()].map((t) => t.buffer);
  if (error) {
    disposeState(state);
    const names = [...checked.device.keys()].map((i) => label(checked.names[i])).join(", ");
    if (await buffersRefused(device, buffers) === false) {
      throw new Error(
        `The GPU refused the library's own commands of a state's start (${error.message}): your buffers of ${names} are live GPUBuffers of the state's device, so the fault is not theirs but of this library or of the GPU's driver`,
      );
    }
    throw new TypeError(
      `The GPU refused the buffers of the params (${error.message}): those of ${names} must be live GPUBuffers (not destroyed) of the device the state runs on, init's device option (pass the GPUDevice that made them: TensorFlow.js's own for its tensors' buffers)`,
    );
  }
  // Given as a gradient on another device: refused. (Not the buffer of an empty tensor: the GPU
  // read none of it, so it may be another device's.)
  const read = [...checked.device.values()].filter((t) => t.length > 0).map((t) => t.buffer);
  recordCallerBuffers(device, read);
  return state;
}

/**
 * {@linkcode initWebGpuState} on a given device, synchronously (the device's pipelines are
 * compiled now, blocking, unless an earlier state compiled them): for callers that must start a
 * state inside a synchronous call (the TensorFlow.js adapter's first `applyGradients`).
 */
export function initWebGpuStateSync(
  config: Settings<unknown>,
  params: unknown,
  device: GPUDevice,
): OptimizerState<GpuTensor> {
  checkGpuConfig(config);
  return startWebGpuState(config, checkGpuParams(params), device);
}

function startWebGpuState(
  config: Settings<unknown>,
  checked: CheckedGpuParams,
  device: GPUDevice,
  limits?: Partial<GpuPlanLimits>,
  from?: DeviceStart,
): OptimizerState<GpuTensor> {
  // Float32Arrays checked at init's call, read only now (after its awaits).
  const host = [...checked.host];
  checkAttached(
    { names: host.map(([i]) => checked.names[i]), arrays: host.map(([, array]) => array) },
    host.map(([i]) => checked.lengths[i]),
  );
  const layout = gpuLayoutOf(config, checked.names, checked.lengths);
  const shapes = inLayoutOrder(layout, checked.names, checked.shapes);
  checkSavableSize(config, layout, shapes, checked.names);
  // Ranges of a live state's buffers on this device (`init(state.params)`): copied into this
  // state's own arena, not updated in place there (that state's, which its dispose destroys).
  const seeded = [...checked.device].filter(([, t]) => stateBufferDevice(t.buffer) === device);
  const owned = seeded.length === 0 ? checked : { ...checked, device: new Map(checked.device) };
  for (const [i] of seeded) (owned.device as Map<number, GpuTensor>).delete(i);
  const placed = placeGpuParams(owned, device.limits.minStorageBufferOffsetAlignment);
  // By index in the layout's order (8-bit states: the compact tensors last).
  const at = layoutIndices(layout, checked.names);
  const copied = new Map<number, GpuTensor>();
  const inPlace = new Map<number, GpuTensor>();
  for (const [i, t] of placed.copied) copied.set(at[i], t);
  for (const [i, t] of placed.inPlace) inPlace.set(at[i], t);
  const backend = createWebGpuBackendSync(device, layout, ruleOf(config), {
    limits,
    externalParams: copied,
    inPlaceParams: inPlace,
    clipGradNorm: config.loop.clipGradNorm,
    nonFinite: config.loop.nonFinite,
  });
  if (checked.host.size > 0) {
    const data: Record<string, Float32Array> = {};
    for (const [i, array] of checked.host) data[checked.names[i]] = array;
    backend.writeHostParams(data);
    try { // (written by copies taken now: the arrays hold what they copied)
      checkCopiedFinite(Object.keys(data), data);
    } catch (error) {
      backend.destroy();
      throw error;
    }
  }
  if (seeded.length > 0) backend.copyParamsFrom(new Map(seeded.map(([i, t]) => [at[i], t])));
  backend.copyParamsToSlow();
  if (from === undefined) {
    return restoreState<GpuTensor>(config, backend, { shapes, order: checked.names });
  }
  let counts;
  try {
    writeStart(backend, from);
    counts = from.counts();
  } catch (error) {
    backend.destroy();
    throw error;
  }
  return restoreState<GpuTensor>(config, backend, { shapes, order: checked.names, ...counts });
}

/**
 * Writes into a new state's `backend` (its params and fresh slow weights written) the state
 * `start` takes: copied on the GPU from a WebGPU `from`, or uploaded from a CPU one's copies.
 */
function writeStart(backend: WebGpuBackend, start: DeviceStart): void {
  if (start.held !== undefined) {
    start.held.copyInto(backend);
    return;
  }
  const layout = backend.layout;
  const compact = new Set(layout.names.filter((_, i) => layout.compact[i]));
  const taken = start.taken ?? [];
  [EXP_AVG, EXP_AVG_SQ, SLOW].forEach((s) => {
    if (!hasSection(layout, s)) return;
    const data: Record<string, Float32Array> = {};
    for (const t of taken) {
      const values = t.sections[s];
      if (values !== undefined && (s === SLOW || !compact.has(t.name))) data[t.name] = values;
    }
    if (Object.keys(data).length > 0) backend.writeSection(s, data);
  });
  layout.unsignedCodes.forEach((_, k) => {
    const data: Record<string, CompactMoment> = {};
    for (const t of taken) {
      const c = t.codes[k];
      if (c !== undefined && compact.has(t.name)) data[t.name] = c;
    }
    if (Object.keys(data).length > 0) backend.writeCompact(k, data);
  });
}

/**
 * A WebGPU backend for a checkpoint being restored: the checkpoint's tensors laid out anew
 * for the GPU (its own alignment) on `device`, or on a device of the first adapter.
 */
export async function restoreWebGpuBackend(
  layout: ArenaLayout,
  device: GPUDevice | undefined,
  config: Settings<unknown>,
): Promise<DeviceBackend<GpuTensor>> {
  checkGpuConfig(config);
  const gpuLayout = gpuLayoutOf(config, layout.names, layout.lengths);
  const on = device ?? await requestLargeDevice();
  await prepareOnLiveDevice(on, "loadState", () => prepareWebGpu(on, ruleOf(config)));
  return await createWebGpuBackend(
    on,
    gpuLayout,
    ruleOf(config),
    { clipGradNorm: config.loop.clipGradNorm, nonFinite: config.loop.nonFinite },
  );
}

/** The GPU arena of tensors of these names and lengths for `config`. */
function gpuLayoutOf(
  config: Settings<unknown>,
  names: readonly string[],
  lengths: readonly number[],
): ArenaLayout {
  const layout = planGpuLayout(names, lengths, planOptionsOf(config, names), config.run.states);
  checkSavableNames(config, layout);
  return layout;
}
