/**
 * The tensor slots of a WebGPU state (webgpu_backend.ts): its params, each in the arena's params
 * section or, where the caller owns it, in the caller's buffer, and its grads, every one in the
 * arena's grads section; with the caller-owned params, copied (externals) or updated in place.
 *
 * @module
 */
import { gradSlots, paramViews } from "../base/_state_slots.ts";
import { type ArenaLayout, GRADS, PARAMS } from "../base/arena.ts";
import type { GpuTensor } from "./gpu_tensors.ts";
import { type External, slotsOf } from "./section_io.ts";
import { guardedSlot, type SlotRecord } from "./_slot_guard.ts";

/** The params a caller owns (see `BackendSetup`, webgpu_backend.ts). */
export interface CallerOwned {
  /** Caller-owned params copied into the arena at init and back after each step. */
  externalParams?: ReadonlyMap<number, GpuTensor>;
  /** Caller-owned params updated in place (zero copy). */
  inPlaceParams?: ReadonlyMap<number, GpuTensor>;
}

/** The slots of a state's tensors, by name, and the params its caller owns. */
export interface BackendSlots {
  /** Each param's slot: the arena's, or the caller's buffer. */
  readonly params: Readonly<Record<string, GpuTensor>>;
  /** Each gradient's slot in the arena's grads section. */
  readonly grads: Readonly<Record<string, GpuTensor>>;
  /** The params copied to and from a caller's buffer. */
  readonly externals: External[];
  /** The params updated in place in a caller's buffer, by layout index (empty where none). */
  readonly inPlace: ReadonlyMap<number, GpuTensor>;
  /** The params in caller's buffers, which the GPU checks at each step (layout indices). */
  readonly callerParams: number[];
}

/**
 * The slots of the tensors of `layout` in its `sections`, the params the caller owns in the
 * caller's buffers.
 *
 * @example
 * ```ts ignore
 * const { params, grads } = backendSlots(layout, sections, { inPlaceParams });
 * ```
 */
export function backendSlots(
  layout: ArenaLayout,
  sections: readonly GPUBuffer[],
  owned: CallerOwned,
): BackendSlots {
  const inPlace = owned.inPlaceParams ?? new Map<number, GpuTensor>();
  const params = slotsOf(layout, sections[PARAMS]);
  const externals: External[] = [];
  for (const [index, slot] of owned.externalParams ?? []) {
    externals.push({ index, slot });
    params[layout.names[index]] = slot;
  }
  for (const [index, slot] of inPlace) params[layout.names[index]] = slot;
  return {
    params: paramViews(guarded(params, "params"), "device"),
    grads: gradSlots(guarded(slotsOf(layout, sections[GRADS]), "grads"), "device"),
    externals,
    inPlace,
    callerParams: [...externals.map((e) => e.index), ...inPlace.keys()],
  };
}

/** `slots` (of a state's `record`), each guarded against a use as a Float32Array. */
function guarded(
  slots: Readonly<Record<string, GpuTensor>>,
  record: SlotRecord,
): Record<string, GpuTensor> {
  const names = Object.keys(slots);
  const out: Record<string, GpuTensor> = {};
  for (const name of names) out[name] = guardedSlot(slots[name], record, name, names.length);
  return out;
}
