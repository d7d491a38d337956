/**
 * A threaded state whose step failed half way (a worker failed, or the main thread's own share
 * threw, as the step ran) may hold part of that step: its error says so, and `saveState` and
 * init's option `from` refuse it, with a TypeError naming the failure and saying to resume from
 * the last checkpoint, leaving the state as it was (still refusing steps, disposable). A state
 * whose failure came in a pass that only reads the gradients (their sum of squares for
 * `clipGradNorm`) is intact: both still take it.
 *
 * The stall bound is set far above what these take (60 s), so that a worker taken for dead only
 * after it fails the tests by its message ("no progress"), not by hanging them.
 */
import assert from "node:assert/strict";
import { initState } from "../core/init_state.ts";
import type { ThreadWorkerInit } from "../cpu/thread_worker.ts";
import { createThreadedWasmBackend } from "../cpu/threaded_wasm_backend.ts";
import {
  dispose,
  type OptimizerState,
  radam,
  readMoments,
  readParams,
  saveState,
  step,
} from "../mod.ts";

const STALL_MS = 60_000;
const N = 4096;
const OPTIONS = { clipGradNorm: 1 } as const;

/**
 * A threaded radam state (clipping: a pass reading the gradients before each step) of N
 * parameters on 2 threads, its worker's start message `change`d, stepped once with both threads
 * well.
 */
async function threaded(change: (init: ThreadWorkerInit) => ThreadWorkerInit) {
  const Original = globalThis.Worker;
  globalThis.Worker = class extends Original {
    // deno-lint-ignore no-explicit-any
    override postMessage(message: any, transfer?: any): void {
      super.postMessage(typeof message?.start === "number" ? change(message) : message, transfer);
    }
  } as typeof Worker;
  try {
    return await initState(
      radam({ ...OPTIONS, threads: 2, threadThreshold: 0 }).settings,
      Float32Array.from({ length: N }, (_, i) => Math.sin(i)),
      (layout) => createThreadedWasmBackend(layout, 2, { stallMs: STALL_MS }),
    );
  } finally {
    globalThis.Worker = Original;
  }
}

/** The worker's arena descriptor past the memory's end: its share of the step traps. */
function stepTraps(init: ThreadWorkerInit): ThreadWorkerInit {
  return { ...init, arena: init.memory.buffer.byteLength };
}

/**
 * The words of every refusal of a state whose step failed half way (saveState, init's from, the
 * TensorFlow.js adapter's getWeights and step): why, what it may hold, what would keep it, and how
 * to go on.
 */
const HALF_WAY_REFUSAL =
  /: a step of it failed half way \(.*\), so it may hold part of that step, which .* would keep\. Nothing was \w+: resume from the last checkpoint saved before that step \(loadState\)/;

/** The worker's gradients past the memory's end: its share of the sum of squares traps. */
function readTraps(init: ThreadWorkerInit): ThreadWorkerInit {
  return { ...init, grads: init.memory.buffer.byteLength };
}

/** The state's parameters and moments, copied. */
async function contents(state: OptimizerState) {
  return { params: await readParams(state), moments: await readMoments(state) };
}

Deno.test("a threaded state whose step failed half way is refused by saveState and init's from, naming the failure, changing nothing", async () => {
  const state = await threaded(stepTraps);
  try {
    const grads = new Float32Array(N).fill(0.5);
    assert.throws(() => step(state, grads), /may be half stepped/);
    // The worker's own message (why its job threw), delivered now.
    await new Promise((resolve) => setTimeout(resolve, 50));
    const before = await contents(state);
    const named = (call: RegExp) => (e: Error) => {
      assert.ok(e instanceof TypeError, String(e));
      assert.match(e.message, call);
      assert.match(e.message, /failed half way \(a kernel worker failed \(RuntimeError: /);
      // (Worded alike: saveState's and from's by the same words.)
      assert.match(e.message, HALF_WAY_REFUSAL);
      return true;
    };
    await assert.rejects(saveState(state), named(/^saveState refuses this threaded/));
    const opt = radam(OPTIONS);
    await assert.rejects(
      opt.init({ "": new Float32Array(N) }, { from: state }),
      named(/^Option from of init is a threaded optimizer state .*which the new state would keep/),
    );
    // Left as it was: the same contents, the same step count, steps still refused.
    assert.deepEqual(await contents(state), before);
    assert.equal(state.step, 0);
    assert.throws(() => step(state, grads), /failed \(RuntimeError: .*\); the state may be half/);
  } finally {
    dispose(state);
  }
  assert.throws(() => step(state), /disposed/);
});

Deno.test("a threaded state whose main thread's share of the step threw is refused by saveState and init's from", async () => {
  // The gradients' address in the arena descriptor (every thread's step reads it) moved so
  // that the main thread's first half is past the memory's end and traps, while the worker's
  // half, its address wrapping around 2³², reads the memory's first (unused) page, zeros.
  // (The sum of squares reads the gradients at each thread's own address: it runs well.)
  const state = await threaded((init) => init);
  try {
    const grads = new Float32Array(N).fill(0.5);
    const memory = new Uint32Array(state.grads[""].buffer);
    const below = new Uint32Array(memory.buffer, 0, state.params[""].byteOffset / 4);
    const at = below.lastIndexOf(state.grads[""].byteOffset); // the descriptor's gradients
    assert.ok(at > 0);
    const saved = memory[at];
    memory[at] = 2 ** 32 - (N / 2) * 4 + 1024;
    assert.throws(() => step(state, grads), /^Error: The main thread .*may be half stepped/);
    memory[at] = saved;
    const main = /failed half way \(the main thread failed \(its own share of the step threw/;
    await assert.rejects(
      saveState(state),
      (e: Error) => e instanceof TypeError && main.test(e.message),
    );
    await assert.rejects(
      radam(OPTIONS).init({ "": new Float32Array(N) }, { from: state }),
      (e: Error) => e instanceof TypeError && main.test(e.message),
    );
  } finally {
    dispose(state);
  }
});

Deno.test("a threaded state whose failure came in a pass reading the gradients stays savable, and init's from takes it", async () => {
  const state = await threaded(readTraps);
  try {
    const before = await saveState(state);
    assert.throws(() => step(state, new Float32Array(N).fill(0.5)), /with nothing of the state/);
    await new Promise((resolve) => setTimeout(resolve, 50));
    assert.deepEqual(await saveState(state), before);
    const next = await radam(OPTIONS).init({ "": state.params[""] }, { from: state });
    try {
      assert.deepEqual(await contents(next), await contents(state));
    } finally {
      dispose(next);
    }
  } finally {
    dispose(state);
  }
});
