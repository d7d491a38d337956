import assert from "node:assert/strict";
import {
  adam,
  adamw,
  dispose,
  lion,
  type Optimizer,
  type OptimizerState,
  radam,
  ranger,
  sgd,
  step,
} from "../mod.ts";

// A step allocates nothing but the handle it returns (the one given is consumed): the per-step
// scalars are computed and written in place. Needs `gc` (the test task passes
// --v8-flags=--expose-gc); without it the test is skipped.
const gc = (globalThis as { gc?: () => void }).gc;

/**
 * The most bytes a step may allocate: its handle (40 bytes in Deno) and some slack. The scalars
 * kept in plain records allocated 48 to 128 bytes more (V8 boxed each float64 written into one).
 */
const BOUND_BYTES = 64;
/** Steps a window measures: what they allocate fits in the young generation. */
const WINDOW = 1000;
/**
 * Windows stepped before a step allocating past the bound is a failure: V8 compiles a rule's
 * `computeScalars` into code that keeps its numbers unboxed only after some 10,000 to 45,000
 * steps.
 */
const WINDOWS = 120;

/**
 * Bytes the heap grew by, a step, over `WINDOW` steps right after a collection: what each step
 * allocates, garbage included. A collection in the middle could only lower it.
 */
function allocatedPerStep(next: () => void): number {
  gc!();
  const before = Deno.memoryUsage().heapUsed;
  for (let i = 0; i < WINDOW; i++) next();
  return (Deno.memoryUsage().heapUsed - before) / WINDOW;
}

/** Each rule's scalars, rectified or not, with decoupled decay, LookAhead, 8-bit states. */
const OPTIMIZERS: [string, (more: object) => Optimizer][] = [
  ["radam", (more) => radam(more)],
  ["adam", (more) => adam(more)],
  ["adamw", (more) => adamw({ weightDecay: 0.01, ...more })],
  ["lion", (more) => lion({ weightDecay: 0.1, ...more })],
  ["sgd with momentum", (more) => sgd({ momentum: 0.9, weightDecay: 1e-4, ...more })],
  ["ranger, 8-bit states", (more) => ranger({ states: "8bit", ...more })],
];

// The scalars are the host's, whatever the backend: on threads (slow steps on a loaded machine),
// two of the optimizers.
const BACKENDS = [
  { label: "wasm", backend: "wasm", threads: 1, optimizers: OPTIMIZERS },
  { label: "js", backend: "js", threads: 1, optimizers: OPTIMIZERS },
  {
    label: "wasm on 2 threads",
    backend: "wasm",
    threads: 2,
    optimizers: [OPTIMIZERS[0], OPTIMIZERS[5]],
  },
] as const;

for (const { label, backend, threads, optimizers } of BACKENDS) {
  Deno.test({
    name: `${label}: a step allocates nothing but its handle`,
    ignore: typeof gc !== "function",
    fn: async () => {
      for (const [name, make] of optimizers) {
        const optimizer = make({ backend, threads, threadThreshold: 0 });
        let state: OptimizerState = await optimizer.init({
          w: { data: new Float32Array(256).fill(0.5), shape: [16, 16] },
          b: new Float32Array(16).fill(-1),
        });
        state.grads.w.fill(1e-2);
        state.grads.b.fill(-2e-2);
        const next = () => state = step(state);
        const seen: number[] = [];
        do seen.push(allocatedPerStep(next)); while (
          seen.length < WINDOWS && seen[seen.length - 1] >= BOUND_BYTES
        );
        assert.ok(
          Math.min(...seen) < BOUND_BYTES,
          `${name}: steps allocated ${
            Math.min(...seen)
          } bytes each at least, over ${seen.length} windows of ${WINDOW} steps`,
        );
        dispose(state);
      }
    },
  });
}
