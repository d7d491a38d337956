/**
 * The allocation of a state's arena on TensorFlow.js's wasm heap (heap_backend.ts): which of its
 * sections are allocated, and the bytes, from tfjs-backend-wasm's `_malloc`, zeroed.
 *
 * Only the sections that are used are allocated. Without a tensor held in the arena, the params
 * section is not; and when, besides, the gradients are always read in place (the default check:
 * no clipping, no `"propagate"`), neither is the gradients' (the arena then starts at the first
 * moment: 8 bytes a parameter fewer than the layout's).
 *
 * @module
 */
import { type ArenaLayout, EXP_AVG, GRADS, PARAMS } from "../base/arena.ts";
import { allocationBytes } from "./heap_layout.ts";
import { memoryOf, type WasmModule } from "./wasm_heap.ts";

/** A state's allocation on tfjs's heap, and how its variables map to the layout's tensors. */
export interface HeapAllocation {
  /** The allocation's first byte. */
  readonly pointer: number;
  /** Per tensor of the layout: whether it keeps its parameters in its variable's data. */
  readonly external: readonly boolean[];
  /** Sections below this index are not allocated (0: all are; 1: no params; 2: nor grads). */
  readonly firstSection: number;
  /** Per variable (the caller's order): its tensor's index in the layout. */
  readonly slot: readonly number[];
}

/**
 * Allocates on `module`'s heap the arena of `layout` for the variables `names` (the caller's
 * order; `external[j]`: whether variable `j` may keep its parameters in its data), or undefined
 * where tfjs cannot. `copiesGradients`: whether steps copy the gradients into slots (clipping,
 * `"propagate"`), not only read them in place.
 *
 * @example
 * ```ts ignore
 * const allocation = allocateArena(heap.wasm, layout, names, external, false);
 * ```
 */
export function allocateArena(
  module: WasmModule,
  layout: ArenaLayout,
  names: readonly string[],
  external: readonly boolean[],
  copiesGradients: boolean,
): HeapAllocation | undefined {
  const at = new Map(layout.names.map((name, i) => [name, i])); // (not a scan per name)
  const slot = names.map((name) => at.get(name) ?? -1);
  const inLayout = layout.names.map(() => false);
  slot.forEach((i, j) => inLayout[i] = external[j]);
  const held = inLayout.some((x, i) => !x && layout.lengths[i] > 0);
  const firstSection = held ? PARAMS : copiesGradients ? GRADS : EXP_AVG;
  const bytes = allocationBytes(layout, inLayout, firstSection);
  let pointer: number;
  try {
    pointer = module._malloc(bytes) >>> 0;
  } catch {
    return undefined;
  }
  if (pointer === 0) return undefined;
  // (malloc gives back freed tensors' bytes: start from zeros, as a fresh memory does.)
  new Uint8Array(memoryOf(module)!.buffer, pointer, bytes).fill(0);
  return { pointer, external: inLayout, firstSection, slot };
}
