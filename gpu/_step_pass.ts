/**
 * The compute pass of a WebGPU state's step (webgpu_backend.ts): its dispatches, made once at
 * init (the step's chunks, planned by `planChunks`, arena_plan.ts, and the compact tensors'
 * blocks, compact_plan.ts), and their encoding at each step: the gradient-norm passes or the
 * decision alone, the centralizations, then the step dispatches; or the one dispatch of
 * `step_small`.
 *
 * @module
 */
import { type ArenaLayout, EXP_AVG, EXP_AVG_SQ, hasSection, SLOW } from "../base/arena.ts";
import { type GpuPlanLimits, planChunks } from "./arena_plan.ts";
import type { Centralizations } from "./centralize.ts";
import { compactDispatches, planCompactChunks } from "./compact_plan.ts";
import type { GpuStepCounter } from "./device_counter.ts";
import type { GpuTensor } from "./gpu_tensors.ts";
import { type Dispatch, dispatchEach, type Pipelines } from "./pipelines.ts";
import { buildStepDispatches } from "./step_dispatches.ts";

/** What the dispatches of a state's step are made of. */
export interface StepPassSetup {
  layout: ArenaLayout;
  limits: GpuPlanLimits;
  sections: readonly GPUBuffer[];
  /** The constants uniform (step_consts.ts). */
  consts: GPUBuffer;
  /** The segment table, with its order rows (nonfinite_order.ts). */
  segments: GPUBuffer;
  /** The step counts the device keeps, and the ring of scalars. */
  counter: GpuStepCounter;
  /** The params updated in place in a caller's buffer, by layout index. */
  inPlace: ReadonlyMap<number, GpuTensor>;
  /** Whether the gradient-norm passes run (clipping, or the non-finite check). */
  normComputed: boolean;
  /** A new buffer of the state's besides the sections, freed with it. */
  buffer(label: string, size: number, usage: number): GPUBuffer;
  /** Frees `b` with the state. */
  keep(b: GPUBuffer): void;
}

/** The dispatches of a state's step (see the module doc). */
export interface StepPass {
  /** Whether the gradient-norm passes run (clipping, or the non-finite check). */
  readonly normComputed: boolean;
  /** The whole step in one dispatch (`step_small`), for one chunk of a small arena. */
  readonly small: boolean;
  /** The step dispatches. */
  readonly chunks: Dispatch[];
  /** The 8-bit step dispatches of the compact tensors (a workgroup a block). */
  readonly compact: Dispatch[];
  /** The first pass of the gradient norm: binding-sized chunks of the whole grads section. */
  readonly normChunks: Dispatch[];
  /** The norm's last pass, which decides the step; or the decision alone (no norm). */
  readonly decision: Dispatch;
  /** Masked copies of the params updated in place, caller's buffer → the arena's slot. */
  readonly inPlaceReads: Dispatch[];
  /** Masked copies of the params updated in place, the arena's slot → caller's buffer. */
  readonly inPlaceWrites: Dispatch[];
}

/**
 * Makes the dispatches of a state's step, once, at init: the buffers it makes for them are the
 * state's (`s.buffer`, `s.keep`).
 *
 * @example
 * ```ts ignore
 * const pass = stepPass(device, pipelines, { layout, limits, sections, consts, ... });
 * encodeStepPass(encoder, pipelines, pass, centralizations, false);
 * ```
 */
export function stepPass(device: GPUDevice, pipelines: Pipelines, s: StepPassSetup): StepPass {
  const { layout, limits, inPlace } = s;
  const plan = planChunks(layout, limits, new Set(inPlace.keys()));
  // Bound in place of the sections the state lacks (never read: the rule or LookAhead lacks
  // them).
  const absent = (section: number, label: string) =>
    hasSection(layout, section) ? undefined : s.buffer(label, 16, GPUBufferUsage.STORAGE);
  const { control, ring: { buffer: ring } } = s.counter;
  const dispatches = buildStepDispatches(device, pipelines, plan, inPlace, {
    sections: s.sections,
    consts: s.consts,
    segments: s.segments,
    m: absent(EXP_AVG, "no first moment"),
    v: absent(EXP_AVG_SQ, "no second moment"),
    slow: absent(SLOW, "no slow weights"),
    control,
    ring,
  }, s.normComputed);
  const compact = compactDispatches(device, pipelines, layout, planCompactChunks(layout, limits), {
    sections: s.sections,
    consts: s.consts,
    control,
    ring,
    placeholder: (k) => s.buffer(`no section ${k}`, 16, GPUBufferUsage.STORAGE),
    inPlace,
  });
  if (compact.buffer) s.keep(compact.buffer);
  for (const b of dispatches.buffers) s.keep(b);
  return {
    normComputed: s.normComputed,
    small: plan.small,
    chunks: dispatches.step,
    compact: compact.dispatches,
    normChunks: dispatches.norm,
    decision: dispatches.decision,
    inPlaceReads: [...dispatches.inPlaceReads, ...compact.inPlaceReads],
    inPlaceWrites: [...dispatches.inPlaceWrites, ...compact.inPlaceWrites],
  };
}

/**
 * Encodes a step's compute pass: the gradient-norm passes with clipping or the non-finite
 * check, whose last one decides the step on the device, or the decision alone; the
 * centralizations (where the step requests them); the step dispatches; or the one dispatch of
 * `step_small`.
 *
 * @example
 * ```ts ignore
 * encodeStepPass(encoder, pipelines, pass, centralizations, centralizations.take());
 * ```
 */
export function encodeStepPass(
  encoder: GPUCommandEncoder,
  pipelines: Pipelines,
  s: StepPass,
  centralizations: Centralizations,
  centralize: boolean,
): void {
  const pass = encoder.beginComputePass();
  if (s.small && !centralize) {
    // The norm, the decision and the update in one dispatch of one workgroup.
    pass.setPipeline(pipelines.stepSmall.pipeline);
    pass.setBindGroup(0, s.chunks[0].bindGroup);
    pass.dispatchWorkgroups(1);
  } else {
    if (s.normComputed) {
      // The global norm of the gradients as given (before centralization), and the first
      // non-finite one, on the GPU; its last pass decides the step.
      dispatchEach(pass, pipelines.normPartial.pipeline, s.normChunks);
      pass.setPipeline(pipelines.normTotal.pipeline);
    } else {
      pass.setPipeline(pipelines.decide.pipeline);
    }
    pass.setBindGroup(0, s.decision.bindGroup);
    pass.dispatchWorkgroups(1);
    if (centralize) {
      dispatchEach(pass, pipelines.centralize.pipeline, centralizations.wide);
      dispatchEach(pass, pipelines.centralizeNarrow.pipeline, centralizations.narrow);
    }
    if (s.chunks.length > 0) dispatchEach(pass, pipelines.step.pipeline, s.chunks);
    if (s.compact.length > 0) dispatchEach(pass, pipelines.stepCompact.pipeline, s.compact);
  }
  pass.end();
}
