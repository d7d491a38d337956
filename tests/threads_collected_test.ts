/**
 * Threaded states that are never disposed end their workers once they are garbage-collected
 * (cpu/threaded_wasm_backend.ts, a FinalizationRegistry), the first one made too: the registry's
 * callback, made as the first threaded state was, kept that state's backend reachable (a closure
 * sharing its context), and its workers ran until the process ended.
 *
 * In a file of its own, so that its states are the first threaded ones of its isolate. Needs
 * `--v8-flags=--expose-gc` (as `deno task test:core` runs).
 */
import assert from "node:assert/strict";
import { radam, step } from "../mod.ts";

/** Made and terminated kernel workers, counted by `Worker` wrapped while states start. */
const count = { made: 0, terminated: 0 };

/** Makes a threaded state, steps it once, and drops it; its step count. */
async function makeAndDrop(): Promise<number> {
  const Original = globalThis.Worker;
  globalThis.Worker = class extends Original {
    constructor(url: string | URL, options?: WorkerOptions) {
      super(url, options);
      count.made++;
    }
    override terminate(): void {
      count.terminated++;
      super.terminate();
    }
  } as typeof Worker;
  try {
    const state = await radam({ threads: 2, threadThreshold: 0 }).init(new Float32Array(5000));
    return step(state, new Float32Array(5000).fill(1)).step;
  } finally {
    globalThis.Worker = Original;
  }
}

Deno.test("threaded states never disposed end their workers once collected, the first one made too", async () => {
  const gc = (globalThis as { gc?: () => void }).gc;
  assert.ok(gc !== undefined, "run with --v8-flags=--expose-gc");
  for (let i = 0; i < 3; i++) assert.equal(await makeAndDrop(), 1);
  assert.equal(count.made, 3);
  // Collected, then the registry's callbacks run as tasks of their own.
  for (let i = 0; i < 100 && count.terminated < count.made; i++) {
    gc();
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  assert.equal(count.terminated, count.made, "every state's worker was terminated");
});
