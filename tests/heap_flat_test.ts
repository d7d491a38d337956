import assert from "node:assert/strict";
import { adamw, dispose, radam, ranger, step } from "../mod.ts";

// Heap use over 10,000 steps stays flat: a step keeps nothing alive that the previous one did
// not. Needs `gc` (the test task passes --v8-flags=--expose-gc); without it the test is skipped,
// since young-generation garbage would hide a leak.
const gc = (globalThis as { gc?: () => void }).gc;
const STEPS = 10_000;
/** 10,000 steps that each kept 8 bytes alive would grow the heap by 80 KB. */
const BOUND_BYTES = 32 * 1024;
/** The most windows of `STEPS` steps measured before a growth past the bound is a failure. */
const WINDOWS = 3;

/** Heap in use once work left pending by earlier test files (timers, finalizers) has run. */
async function heapAfterGc(): Promise<number> {
  await new Promise((resolve) => setTimeout(resolve, 0));
  gc!();
  gc!();
  return Deno.memoryUsage().heapUsed;
}

// The threaded wasm state (2 threads, split at any size) also runs the parallel non-finite check
// each step (the default nonFinite "skip").
const VARIANTS = [
  { label: "wasm", backend: "wasm", threads: 1 },
  { label: "js", backend: "js", threads: 1 },
  { label: "wasm on 2 threads", backend: "wasm", threads: 2 },
] as const;

for (const { label, backend, threads } of VARIANTS) {
  for (const copied of [false, true]) {
    const how = copied ? "copied-in" : "zero-copy";
    Deno.test({
      name: `${label}, ${how} gradients: heap stays flat over ${STEPS} steps`,
      ignore: typeof gc !== "function",
      fn: async () => {
        const params = { a: new Float32Array(1000).fill(0.5), b: new Float32Array(37).fill(-1) };
        const grads = { a: new Float32Array(1000).fill(1e-2), b: new Float32Array(37).fill(-2) };
        // Ranger in 8 bits, its kernel centralized, clipped by a factor below 2⁻¹²⁶ (the float64
        // scaling of the gradient slots): the paths that step only in rare cases.
        const kernel = { a: { data: new Float32Array(5000).fill(0.5), shape: [50, 100] } };
        const rare = { ...grads, a: new Float32Array(5000).map((_, i) => (i % 7) * 1e-2) };
        const more = { backend, threads, threadThreshold: 0 };
        const runs = [
          [radam(more), params, grads],
          [adamw(more), params, grads],
          [
            ranger({ ...more, states: "8bit", clipGradNorm: 1e-40 }),
            { ...params, ...kernel },
            rare,
          ],
        ] as const;
        for (const [optimizer, params, grads] of runs) {
          let state = await optimizer.init(params);
          assert.equal(state.threads, threads);
          const stepOnce = copied ? () => state = step(state, grads) : () => state = step(state);
          if (!copied) {
            state.grads.a.set(grads.a);
            state.grads.b.set(grads.b);
          }
          // warm up: past rectification, compiled code, lazily created fields
          for (let t = 0; t < 1000; t++) stepOnce();
          // A leak grows the heap in every window; V8's own one-off work (code tiering up,
          // feedback) can add some 20-40 KB to one window on a loaded machine: the least growth
          // of up to three windows is compared with the bound.
          const growths: number[] = [];
          do {
            const before = await heapAfterGc();
            for (let t = 0; t < STEPS; t++) stepOnce();
            growths.push(await heapAfterGc() - before);
          } while (growths.length < WINDOWS && Math.min(...growths) >= BOUND_BYTES);
          assert.ok(
            Math.min(...growths) < BOUND_BYTES,
            `${optimizer.name}: heap grew by ${
              growths.join(", ")
            } bytes over windows of ${STEPS} steps`,
          );
          assert.equal(state.step, 1000 + STEPS * growths.length);
          dispose(state);
        }
      },
    });
  }
}

/**
 * Bytes the heap grew by, a call, over `n` calls of `f` right after a collection: what each call
 * allocates, garbage included (`n` calls allocate far less than the young generation holds, so
 * no collection runs between).
 */
function allocatedPerCall(f: () => void, n: number): number {
  gc!();
  const before = Deno.memoryUsage().heapUsed;
  for (let i = 0; i < n; i++) f();
  return (Deno.memoryUsage().heapUsed - before) / n;
}

/** The most bytes a step with gradients copied in may allocate beyond a zero-copy step's. */
const COPY_BOUND_BYTES = 8;

// A step allocates its new handle (the one given is consumed: tests/step_alloc_test.ts); the
// check and copy of the gradients given allocate nothing more (their check once allocated a
// closure context on every call, 40 bytes a step).
for (const { label, backend, threads } of VARIANTS) {
  Deno.test({
    name: `${label}: a step with gradients copied in allocates no more than a zero-copy one`,
    ignore: typeof gc !== "function",
    fn: async () => {
      const params = { a: new Float32Array(1000).fill(0.5), b: new Float32Array(37).fill(-1) };
      const grads = { a: new Float32Array(1000).fill(1e-2), b: new Float32Array(37).fill(-2) };
      const more = { backend, threads, threadThreshold: 0 };
      let state = await radam(more).init(params);
      const zeroCopy = () => state = step(state);
      const copied = () => state = step(state, grads);
      for (let t = 0; t < 2000; t++) (t % 2 ? zeroCopy : copied)();
      const extra: number[] = [];
      do {
        extra.push(allocatedPerCall(copied, 1000) - allocatedPerCall(zeroCopy, 1000));
      } while (extra.length < WINDOWS && Math.min(...extra) >= COPY_BOUND_BYTES);
      assert.ok(
        Math.min(...extra) < COPY_BOUND_BYTES,
        `copied-in steps allocated ${extra.join(", ")} bytes a step more than zero-copy ones`,
      );
      dispose(state);
    },
  });
}
