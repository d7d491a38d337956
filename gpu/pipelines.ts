/**
 * The compute pipelines of the WebGPU backend, compiled once per device (a pipeline cache),
 * each with the bind-group layout made from its kernel's binding table (the table its WGSL
 * declarations come from too, see `declareBindings` in _wgsl.ts), and bind groups made by
 * binding name.
 *
 * @module
 */
import type { Kernel } from "./_wgsl.ts";
import {
  CENTRALIZE,
  COPY_TENSOR,
  DECIDE,
  GRAD_NORM_PARTIAL,
  GRAD_NORM_TOTAL,
  STEP,
  STEP_SMALL,
} from "./wgsl_kernel.ts";

/** The kernels of a state's steps and section copies. */
const KERNELS = {
  step: STEP,
  stepSmall: STEP_SMALL,
  decide: DECIDE,
  normPartial: GRAD_NORM_PARTIAL,
  normTotal: GRAD_NORM_TOTAL,
  centralize: CENTRALIZE,
  copyTensor: COPY_TENSOR,
} as const satisfies Record<string, Kernel>;

/** A kernel of the backend. */
export type KernelName = keyof typeof KERNELS;

/** A compiled kernel: its pipeline and bind-group layout. */
export interface Compiled {
  readonly kernel: Kernel;
  readonly pipeline: GPUComputePipeline;
  readonly layout: GPUBindGroupLayout;
}

/** Every kernel of the backend, compiled for one device. */
export type Pipelines = Readonly<Record<KernelName, Compiled>>;

const cache = new WeakMap<GPUDevice, Promise<Pipelines>>();
/** The pipelines of each device once compiled, by either path. */
const ready = new WeakMap<GPUDevice, Pipelines>();

/**
 * The pipelines of `device`, compiled at the first call (concurrently) and cached; a failed
 * compilation is not cached.
 *
 * @example
 * ```ts ignore
 * const pipelines = await pipelinesOf(device);
 * pass.setPipeline(pipelines.step.pipeline);
 * ```
 */
export function pipelinesOf(device: GPUDevice): Promise<Pipelines> {
  let cached = cache.get(device);
  if (!cached) {
    const known = ready.get(device);
    cached = known
      ? Promise.resolve(known)
      : compileAll(device, (d) => device.createComputePipelineAsync(d));
    cache.set(device, cached);
    cached.then((p) => ready.set(device, p), () => cache.delete(device));
  }
  return cached;
}

/**
 * {@linkcode pipelinesOf}, synchronously: the pipelines an earlier call compiled, or compiled
 * now, blocking (for a state started inside a synchronous call: the TensorFlow.js adapter's
 * first `applyGradients`).
 *
 * @example
 * ```ts ignore
 * const pipelines = pipelinesOfSync(device);
 * ```
 */
export function pipelinesOfSync(device: GPUDevice): Pipelines {
  const known = ready.get(device);
  if (known) return known;
  const compiled = compileAll(device, (d) => device.createComputePipeline(d));
  ready.set(device, compiled);
  return compiled;
}

/** Compiles one pipeline: asynchronously, or synchronously. */
type Compile<R> = (descriptor: GPUComputePipelineDescriptor) => R;

function compileAll(
  device: GPUDevice,
  compile: Compile<Promise<GPUComputePipeline>>,
): Promise<Pipelines>;
function compileAll(device: GPUDevice, compile: Compile<GPUComputePipeline>): Pipelines;
function compileAll(
  device: GPUDevice,
  compile: Compile<GPUComputePipeline | Promise<GPUComputePipeline>>,
): Pipelines | Promise<Pipelines> {
  // Kernels with the same bindings share a layout, and the same WGSL one shader module.
  const layouts = new Map<string, GPUBindGroupLayout>();
  const modules = new Map<string, GPUShaderModule>();
  const names = Object.keys(KERNELS) as KernelName[];
  const parts = names.map((name) => {
    const kernel: Kernel = KERNELS[name];
    const key = kernel.bindings.map((b) => b.kind).join(",");
    let layout = layouts.get(key);
    if (!layout) {
      layout = device.createBindGroupLayout({
        label: `radam ${name}`,
        entries: kernel.bindings.map((b, binding) => ({
          binding,
          visibility: GPUShaderStage.COMPUTE,
          buffer: { type: b.kind },
        })),
      });
      layouts.set(key, layout);
    }
    let module = modules.get(kernel.code);
    if (!module) {
      module = device.createShaderModule({ label: `radam ${name}`, code: kernel.code });
      modules.set(kernel.code, module);
    }
    const pipeline = compile({
      label: `radam ${name}`,
      layout: device.createPipelineLayout({ bindGroupLayouts: [layout] }),
      compute: { module, entryPoint: kernel.entryPoint },
    });
    return { kernel, layout, pipeline };
  });
  const assemble = (pipelines: readonly GPUComputePipeline[]): Pipelines => {
    const out = {} as Record<KernelName, Compiled>;
    names.forEach((name, k) => {
      out[name] = { kernel: parts[k].kernel, layout: parts[k].layout, pipeline: pipelines[k] };
    });
    return out;
  };
  if (parts.some((p) => p.pipeline instanceof Promise)) {
    return Promise.all(parts.map((p) => p.pipeline)).then(assemble);
  }
  return assemble(parts.map((p) => p.pipeline as GPUComputePipeline));
}

/**
 * A bind group of a compiled kernel, its buffers given by binding name (every binding of the
 * kernel's table, no other).
 *
 * @example
 * ```ts ignore
 * const group = bindGroup(device, pipelines.centralize, {
 *   x: { buffer: grads, offset: 0, size: 4096 },
 *   shape: { buffer: shapeUniform },
 * });
 * ```
 */
export function bindGroup(
  device: GPUDevice,
  compiled: Compiled,
  buffers: Readonly<Record<string, GPUBufferBinding>>,
): GPUBindGroup {
  const bindings = compiled.kernel.bindings;
  const extra = Object.keys(buffers).find((name) => !bindings.some((b) => b.name === name));
  if (extra !== undefined) {
    throw new TypeError(`Kernel ${compiled.kernel.entryPoint} has no binding named ${extra}`);
  }
  return device.createBindGroup({
    layout: compiled.layout,
    entries: bindings.map((b, binding) => {
      const resource = buffers[b.name];
      if (!resource) {
        throw new TypeError(
          `The bind group of kernel ${compiled.kernel.entryPoint} is missing binding ${b.name}`,
        );
      }
      return { binding, resource };
    }),
  });
}

/** One dispatch: its bind group and workgroup grid. */
export interface Dispatch {
  readonly bindGroup: GPUBindGroup;
  readonly grid: readonly [number, number];
}

/**
 * Sets `pipeline`, then one dispatch per bind group and grid.
 *
 * @example
 * ```ts ignore
 * dispatchEach(pass, pipelines.step.pipeline, stepDispatches);
 * ```
 */
export function dispatchEach(
  pass: GPUComputePassEncoder,
  pipeline: GPUComputePipeline,
  dispatches: readonly Dispatch[],
): void {
  pass.setPipeline(pipeline);
  for (const d of dispatches) {
    pass.setBindGroup(0, d.bindGroup);
    pass.dispatchWorkgroups(d.grid[0], d.grid[1]);
  }
}
