/**
 * A kernel worker of a threaded state that dies while it can still run code (its loop throws
 * outside a kernel call; on `node:worker_threads`, its thread exits: `process.exit` in it) says
 * so in the control block: the step waiting on it throws as soon as the other workers are done,
 * saying that the worker stopped or exited, not after the stall bound; so does the next step
 * when it died between steps, even before its event could be delivered (steps in a loop). The
 * state is then refused as after a fault, and `dispose` works.
 *
 * The stall bound is set to STALL_MS (60 s), far above what these take, so that only the
 * worker's word can make the step throw as these tests expect (after the stall bound, the
 * message says "no progress" instead).
 */
import assert from "node:assert/strict";
import { initState } from "../core/init_state.ts";
import { CONTROL, DIED_EXITED, type ThreadWorkerInit } from "../cpu/thread_worker.ts";
import { createThreadedWasmBackend } from "../cpu/threaded_wasm_backend.ts";
import { PAGE_BYTES } from "../cpu/wasm_backend.ts";
import { dispose, type OptimizerState, radam, step } from "../mod.ts";

const STALL_MS = 60_000;
const N = 1 << 16;

/** A threaded radam state of N parameters on 3 threads (1 KiB chunks: many of them). */
function threaded(): Promise<OptimizerState> {
  return initState(
    radam({ threads: 3, threadThreshold: 0 }).settings,
    new Float32Array(N),
    (layout) => createThreadedWasmBackend(layout, 3, { stallMs: STALL_MS, chunk: 256 }),
  );
}

/** Runs `make` with `Worker` changed so that its first worker's start message is `change`d. */
async function changingFirstInit<T>(
  change: (init: ThreadWorkerInit) => unknown,
  make: () => Promise<T>,
): Promise<T> {
  const Original = globalThis.Worker;
  let changed = false;
  globalThis.Worker = class extends Original {
    // deno-lint-ignore no-explicit-any
    override postMessage(message: any, transfer?: any): void {
      if (!changed && typeof message?.start === "number") {
        changed = true;
        message = change(message);
      }
      super.postMessage(message, transfer);
    }
  } as typeof Worker;
  try {
    return await make();
  } finally {
    globalThis.Worker = Original;
  }
}

/**
 * Runs `make` with no global `Worker` (the node:worker_threads path), the first worker's program
 * preceded by `prefix`.
 */
async function nodeWorkersFirstPrefixed<T>(prefix: string, make: () => Promise<T>): Promise<T> {
  const global = globalThis as { Worker?: unknown };
  const process = (globalThis as unknown as {
    process: { getBuiltinModule: (id: string) => Record<string, unknown> };
  }).process;
  const saved = { worker: global.Worker, get: process.getBuiltinModule };
  let first = true;
  delete global.Worker;
  process.getBuiltinModule = (id: string) => {
    const module = saved.get.call(process, id);
    if (id !== "node:worker_threads") return module;
    const Worker = module.Worker as new (source: string, options: object) => object;
    class Prefixed extends Worker {
      constructor(source: string, options: object) {
        super(first ? `${prefix}\n${source}` : source, options);
        first = false;
      }
    }
    return { ...module, Worker: Prefixed };
  };
  try {
    return await make();
  } finally {
    global.Worker = saved.worker;
    process.getBuiltinModule = saved.get;
  }
}

/**
 * Asserts that stepping `state` throws `why` (the worker's word), as do later steps, and that
 * `dispose` works.
 */
async function assertRefused(state: OptimizerState, why: RegExp, later: RegExp): Promise<void> {
  const grads = new Float32Array(N).fill(1e-3);
  try {
    assert.throws(() => step(state, grads), why);
    assert.equal(state.step, 0);
    assert.throws(() => step(state, grads), later);
    // The worker's own message (or exit event), delivered now, keeps the state refused.
    await new Promise((resolve) => setTimeout(resolve, 50));
    assert.throws(() => step(state, grads), later);
  } finally {
    dispose(state);
  }
  assert.throws(() => step(state, grads), /failed \(it (stopped|exited)|disposed/);
}

const FAILED = "A kernel worker of this threaded optimizer state failed";
const HALF = "; the state may be half stepped and takes no more steps: load a checkpoint";

Deno.test("a Web Worker whose loop throws as it takes a step's job fails the step, saying it stopped, not after the stall bound", async () => {
  // Its progress word out of its view: the bump as it takes the job throws, outside the try.
  const state = await changingFirstInit(
    (init) => ({ ...init, layout: { ...CONTROL, PROGRESS: 1 << 20 } }),
    threaded,
  );
  await assertRefused(
    state,
    new RegExp(
      `^Error: ${FAILED} \\(it stopped: its program threw outside a kernel call\\)${HALF}`,
    ),
    /failed \(it stopped/,
  );
});

Deno.test("a node:worker_threads worker that exits in the middle of a step fails it, saying it exited, not after the stall bound", async () => {
  // process.exit(7) at its third progress bump: after its first chunk of the step.
  const prefix = "{ const add = Atomics.add; let bumps = 0;\n" +
    "Atomics.add = (a, i, v) => { if (++bumps === 3) process.exit(7); return add(a, i, v); }; }";
  const state = await nodeWorkersFirstPrefixed(prefix, threaded);
  await assertRefused(
    state,
    new RegExp(`^Error: ${FAILED} \\(it exited \\(exit code 7\\): process\\.exit in it`),
    /failed \(it exited \(exit code 7\)/,
  );
});

Deno.test("a node:worker_threads worker that exits between steps fails the next step at once, its exit event not delivered yet", async () => {
  // process.exit(5) as it goes to sleep waiting for the first job.
  const prefix = "Atomics.wait = () => process.exit(5);";
  const state = await nodeWorkersFirstPrefixed(prefix, threaded);
  // Waits for its word without going back to the event loop, as a loop of steps would.
  const ints = new Int32Array(state.params[""].buffer, PAGE_BYTES, CONTROL.SCALARS / 4);
  const sleep = new Int32Array(new SharedArrayBuffer(4));
  for (let i = 0; i < 3000 && Atomics.load(ints, CONTROL.DIED) === 0; i++) {
    Atomics.wait(sleep, 0, 0, 10);
  }
  await assertRefused(
    state,
    new RegExp(`^Error: ${FAILED} \\(it exited \\(exit code 5\\): process\\.exit in it`),
    /failed \(it exited \(exit code 5\)/,
  );
});

Deno.test("a worker that dies as a step's job begins, before it could count the job its own, fails the step once the others are done, not after the stall bound", async () => {
  // Its exit hook not called (as if it died after the check before the step, before the step
  // was started: the hook found no job to count); it writes its word and exits as it takes the
  // job, which it never counts done.
  const prefix = "process.on = () => process; { const add = Atomics.add;\n" +
    `Atomics.add = (a, i, v) => { if (i === ${CONTROL.PROGRESS}) { ` +
    `Atomics.store(a, ${CONTROL.EXIT_CODE}, 9); Atomics.store(a, ${CONTROL.DIED}, ${DIED_EXITED}); ` +
    "process.exit(9); } return add(a, i, v); }; }";
  const state = await nodeWorkersFirstPrefixed(prefix, threaded);
  await assertRefused(
    state,
    new RegExp(`^Error: ${FAILED} \\(it exited \\(exit code 9\\): process\\.exit in it`),
    /failed \(it exited \(exit code 9\)/,
  );
});
