/**
 * The making of the adapter's CPU state (cpu_path.ts): its variables and layout, the backend it
 * runs on (tfjs's wasm heap, the kernel's own memory, or js), and its moments from the states
 * kept aside.
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs-core";
import { type ArenaLayout, EXP_AVG, hasSection, SLOW } from "../base/arena.ts";
import type { HostBackend } from "../base/backend.ts";
import type { Settings } from "../base/settings.ts";
import { inLayoutOrder, type OptimizerState, planState, restoreState } from "../core/state.ts";
import { createJsBackend } from "../cpu/js_backend.ts";
import { createWasmBackendSync } from "../cpu/wasm_backend.ts";
import { checkSavableSize } from "../core/checkpoint_header.ts";
import { momentsOf, ruleOf } from "../core/origins.ts";
import type { GradItem } from "./gradients.ts";
import { HeapBackend } from "./heap_backend.ts";
import type { KeptStates } from "./kept.ts";
import { writeKept } from "./kept_write.ts";
import { type Entry, entryOf } from "./layout.ts";
import { readHost } from "./wasm_heap.ts";
import { heapCandidate, wasmRuns } from "./backend_choice.ts";

/** The variables of a CPU state, its layout, and the shapes its checkpoints record. */
export interface CpuPlan {
  readonly entries: Entry[];
  readonly layout: ArenaLayout;
  readonly shapes: (readonly number[])[];
}

/**
 * The variables of a state over `items`, its layout, and the shapes its checkpoints record (in
 * layout order). Throws the RangeError of a state whose checkpoint's header would pass the cap
 * (too many variables, or too long names), as the library's `init` does (and the webgpu path's):
 * `saveState(optimizer.state)` could never save it, so it is refused before it trains.
 */
export function planOf(config: Settings, items: readonly GradItem[]): CpuPlan {
  const entries = items.map((i) =>
    entryOf(i.name, i.variable.shape, config.loop.gc, i.variable.id)
  );
  const names = entries.map((e) => e.name);
  const layout = planState(config, names, entries.map((e) => e.size));
  const shapes = inLayoutOrder(layout, names, entries.map((e) => e.arenaShape));
  checkSavableSize(config, layout, shapes, names);
  return { entries, layout, shapes };
}

/** The backend a new state of `layout` runs on. */
export function hostBackend(
  config: Settings,
  layout: ArenaLayout,
  entries: readonly Entry[],
  items: readonly GradItem[],
): HostBackend {
  const choice = config.run.backend;
  if (choice === "js" || (choice === "auto" && !wasmRuns())) {
    return createJsBackend(layout, ruleOf(config));
  }
  if (choice === "webgpu" && tf.getBackend() !== "webgpu") {
    throw new TypeError(
      `The optimizer's backend is "webgpu" but TensorFlow.js runs on ${
        JSON.stringify(tf.getBackend())
      }; use tf.setBackend("webgpu"), or backend "auto"`,
    );
  }
  // On tfjs-backend-wasm, one thread: the state on tfjs's own heap, the parameters updated in
  // their variables' data (heap_backend.ts). With threads, the kernel's own (shared) memory.
  const heap = heapCandidate(config, layout.total);
  if (heap !== undefined) {
    const external = entries.map((e) => !e.transposed);
    const { clipGradNorm, nonFinite } = config.loop;
    const copies = clipGradNorm !== undefined || nonFinite === "propagate";
    const names = entries.map((e) => e.name);
    const backend = HeapBackend.create(heap, layout, names, external, items, copies);
    if (backend !== undefined) return backend;
  }
  return createWasmBackendSync(layout);
}

/**
 * A state over `items` on `backend`, from the states kept aside in `kept` that fit them (else
 * fresh).
 */
export function restoredState(
  config: Settings,
  backend: HostBackend,
  items: readonly GradItem[],
  { entries, layout, shapes }: CpuPlan,
  kept: KeptStates,
): OptimizerState<unknown> {
  const sections = momentsOf(config).map((_, k) => EXP_AVG + k);
  if (hasSection(layout, SLOW)) sections.push(SLOW);
  writeKept(
    backend,
    entries,
    items.map((i) => readHost(i.variable)),
    sections,
    kept.fitting(entries, config.loop.gc, tf.engine().registeredVariables),
  );
  return restoreState(config, backend, {
    steps: kept.steps,
    skipped: kept.skipped,
    shapes,
    // The variables' order, which its checkpoints' tensor_order holds, as init's order does
    // (an 8-bit arena's order, small tensors first, derives from it on load).
    order: entries.map((e) => e.name),
  });
}
