/**
 * The compute pipelines of the WebGPU backend, compiled once per device (a pipeline cache),
 * each with the bind-group layout made from its kernel's binding table (the table its WGSL
 * declarations come from too, see `declareBindings` in _wgsl.ts), and bind groups made by
 * binding name.
 *
 * @module
 */
import type { Rule } from "../base/rule.ts";
import type { Kernel } from "./_wgsl.ts";
import {
  CENTRALIZE,
  CENTRALIZE_NARROW,
  COPY_TENSOR,
  DECIDE,
  GRAD_NORM_PARTIAL,
  GRAD_NORM_TOTAL,
  stepKernels,
} from "./wgsl_kernel.ts";
import { compactKernel } from "./wgsl_compact.ts";

/** The kernels of a state's steps and section copies, for a rule. */
function kernelsOf(rule: Rule) {
  const { step, stepSmall } = stepKernels(rule);
  return {
    step,
    stepSmall,
    stepCompact: compactKernel(rule),
    decide: DECIDE,
    normPartial: GRAD_NORM_PARTIAL,
    normTotal: GRAD_NORM_TOTAL,
    centralize: CENTRALIZE,
    centralizeNarrow: CENTRALIZE_NARROW,
    copyTensor: COPY_TENSOR,
  } as const satisfies Record<string, Kernel>;
}

/** The kernels of a state, by name. */
type Kernels = ReturnType<typeof kernelsOf>;

/** A kernel of the backend. */
export type KernelName = keyof Kernels;

/** A compiled kernel: its pipeline and bind-group layout. */
export interface Compiled {
  readonly kernel: Kernel;
  readonly pipeline: GPUComputePipeline;
  readonly layout: GPUBindGroupLayout;
}

/** Every kernel of the backend, compiled for one device. */
export type Pipelines = Readonly<Record<KernelName, Compiled>>;

/** Per device, the pipelines being compiled, by element loop (`Rule.kernel`). */
const cache = new WeakMap<GPUDevice, Map<string, Promise<Pipelines>>>();
/** Per device, the pipelines once compiled (by either path), by element loop. */
const ready = new WeakMap<GPUDevice, Map<string, Pipelines>>();

/** The map of `device` in `maps`, made at the first use. */
function perDevice<V>(maps: WeakMap<GPUDevice, Map<string, V>>, device: GPUDevice): Map<string, V> {
  let map = maps.get(device);
  if (!map) maps.set(device, map = new Map());
  return map;
}

/**
 * The pipelines of `rule` on `device`, compiled at the first call (concurrently) and cached; a
 * failed compilation is not cached. Rules of one family (one element loop) share them.
 *
 * @example
 * ```ts ignore
 * const pipelines = await pipelinesOf(device, RADAM);
 * pass.setPipeline(pipelines.step.pipeline);
 * ```
 */
export function pipelinesOf(device: GPUDevice, rule: Rule): Promise<Pipelines> {
  const compiling = perDevice(cache, device);
  let cached = compiling.get(rule.name);
  if (!cached) {
    const known = perDevice(ready, device).get(rule.name);
    cached = known
      ? Promise.resolve(known)
      : compileAll(device, kernelsOf(rule), (d) => device.createComputePipelineAsync(d));
    compiling.set(rule.name, cached);
    cached.then(
      (p) => perDevice(ready, device).set(rule.name, p),
      () => compiling.delete(rule.name),
    );
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
 * const pipelines = pipelinesOfSync(device, RADAM);
 * ```
 */
export function pipelinesOfSync(device: GPUDevice, rule: Rule): Pipelines {
  const done = perDevice(ready, device);
  const known = done.get(rule.name);
  if (known) return known;
  const compiled = compileAll(device, kernelsOf(rule), (d) => device.createComputePipeline(d));
  done.set(rule.name, compiled);
  return compiled;
}

/** Compiles one pipeline: asynchronously, or synchronously. */
type Compile<R> = (descriptor: GPUComputePipelineDescriptor) => R;

function compileAll(
  device: GPUDevice,
  kernels: Kernels,
  compile: Compile<Promise<GPUComputePipeline>>,
): Promise<Pipelines>;
function compileAll(
  device: GPUDevice,
  kernels: Kernels,
  compile: Compile<GPUComputePipeline>,
): Pipelines;
function compileAll(
  device: GPUDevice,
  kernels: Kernels,
  compile: Compile<GPUComputePipeline | Promise<GPUComputePipeline>>,
): Pipelines | Promise<Pipelines> {
  // Kernels with the same bindings share a layout, and the same WGSL one shader module.
  const layouts = new Map<string, GPUBindGroupLayout>();
  const modules = new Map<string, GPUShaderModule>();
  const names = Object.keys(kernels) as KernelName[];
  const parts = names.map((name) => {
    const kernel: Kernel = kernels[name];
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
