/**
 * The allocation of a state's arena on tfjs's wasm heap maps each variable to its tensor of the
 * layout with work linear in the variables (a scan of the layout's names for each made it grow
 * with their square), and maps each to the same tensor as that scan.
 */
import assert from "node:assert/strict";
import { radam } from "../../mod.ts";
import { planState } from "../../core/plan.ts";
import { allocateArena } from "../../tfjs/_heap_allocation.ts";
import type { WasmModule } from "../../tfjs/wasm_heap.ts";
import { assertLinear, counted } from "../work_counts.ts";

/** A heap of its own: a memory, and a malloc that gives its 8th byte. */
function heap(): WasmModule {
  return {
    wasmMemory: new WebAssembly.Memory({ initial: 256 }),
    _malloc: () => 8,
  } as unknown as WasmModule;
}

/** The variables' names, in an order of their own (the caller's), and the layout of them. */
function arenaOf(n: number) {
  const names = Array.from({ length: n }, (_, i) => `v${String((i * 7) % n).padStart(6, "0")}`);
  const layout = planState(radam().settings, [...names].sort(), names.map(() => 3));
  return { names, layout, external: names.map((_, j) => j % 2 === 0) };
}

Deno.test("allocateArena maps each variable to its tensor with work linear in the variables", async () => {
  const work = async (n: number) => {
    const { names, layout, external } = arenaOf(n);
    return await counted(() => {
      allocateArena(heap(), layout, names, external, false);
      return Promise.resolve();
    });
  };
  await work(100);
  assertLinear(await work(100), await work(200), await work(400), 100);
  const { names, layout, external } = arenaOf(50);
  const allocation = allocateArena(heap(), layout, names, external, false)!;
  assert.deepEqual(allocation.slot, names.map((name) => layout.names.indexOf(name)));
  assert.deepEqual(
    allocation.external,
    layout.names.map((name) => external[names.indexOf(name)]),
  );
});
