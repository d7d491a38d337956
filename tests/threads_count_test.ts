/**
 * Where several kernel workers of a threaded state fail, each is counted once and the root cause
 * is shown (a trap before a death told without its cause, before a stall), in a step and as the
 * state starts: two workers that stall in a step are two failures, still two when one of them
 * later traps (its trap then shown); a start in which one worker is terminated by other code and
 * another fails naming its error says that error, not the terminate that came first.
 */
import assert from "node:assert/strict";
import { initState } from "../core/init_state.ts";
import { CONTROL, type ThreadWorkerInit, threadWorkerSource } from "../cpu/thread_worker.ts";
import { createThreadedWasmBackend } from "../cpu/threaded_wasm_backend.ts";
import { dispose, type OptimizerState, radam, step } from "../mod.ts";

const N = 1 << 16;
const FAILED = "A kernel worker of this threaded optimizer state failed";

/**
 * A threaded radam state of N parameters on 3 threads (chunks of 256 elements: many of them)
 * whose workers run `prefix` before their program, stalled after `stallMs` with no progress.
 */
async function prefixed(prefix: string, stallMs: number): Promise<OptimizerState> {
  const Original = globalThis.Worker;
  const url = URL.createObjectURL(
    new Blob([`${prefix}\n${threadWorkerSource()}`], { type: "text/javascript" }),
  );
  globalThis.Worker = class extends Original {
    constructor(_url: string | URL, options?: WorkerOptions) {
      super(url, options);
    }
  } as typeof Worker;
  try {
    return await initState(
      radam({ threads: 3, threadThreshold: 0 }).settings,
      new Float32Array(N),
      (layout) => createThreadedWasmBackend(layout, 3, { stallMs, chunk: 256 }),
    );
  } finally {
    globalThis.Worker = Original;
    URL.revokeObjectURL(url);
  }
}

Deno.test("two workers that stall in a step are two failures, still two when one of them later traps, its trap shown", async () => {
  // Each worker is held after its first chunk of the step: the first to get there for 1.5 s,
  // then its job throws; the other for 3 s, then it goes on.
  const ticket = CONTROL.PROGRESS + 4;
  const prefix = "{ const add = Atomics.add; let bumps = 0;\n" +
    `Atomics.add = (a, i, v) => { if (i === ${CONTROL.PROGRESS} && ++bumps === 2) {\n` +
    "const sleep = new Int32Array(new SharedArrayBuffer(4));\n" +
    `const first = add(a, ${ticket}, 1) === 0; Atomics.wait(sleep, 0, 0, first ? 1500 : 3000);\n` +
    'if (first) throw new Error("held, then trapped"); } return add(a, i, v); }; }';
  const state = await prefixed(prefix, 500);
  try {
    const grads = new Float32Array(N).fill(1e-3);
    assert.throws(
      () => step(state, grads),
      new RegExp(
        `^Error: ${FAILED} \\(it stopped: no progress [^;]*; terminated, or killed \\(out of memory\\?\\); 1 more worker failed too\\); the state may be half stepped`,
      ),
    );
    // The first worker's trap, delivered now: shown, the other worker still counted.
    await new Promise((resolve) => setTimeout(resolve, 2000));
    assert.throws(
      () => step(state, grads),
      new RegExp(
        `^Error: ${FAILED} \\(Error: held, then trapped; 1 more worker failed too\\); the state may be half stepped`,
      ),
    );
  } finally {
    dispose(state);
  }
  // (The other worker's hold ends before the test does.)
  await new Promise((resolve) => setTimeout(resolve, 1200));
});

Deno.test("a start in which one worker is terminated by other code and another fails naming its error says that error, the terminate counted", async () => {
  // Worker 1 is terminated as it is sent its start; worker 2's views on the memory lie past
  // its end, so its start throws a RangeError once its module has compiled (later).
  const Original = globalThis.Worker;
  let made = 0;
  globalThis.Worker = class extends Original {
    #number = ++made;
    // deno-lint-ignore no-explicit-any
    override postMessage(message: any, transfer?: any): void {
      const init = message as ThreadWorkerInit;
      if (this.#number === 2 && typeof init?.start === "number") {
        message = { ...init, control: init.memory.buffer.byteLength };
      }
      super.postMessage(message, transfer);
      if (this.#number === 1 && typeof init?.start === "number") this.terminate();
    }
  } as typeof Worker;
  let error: unknown;
  try {
    const state = await initState(
      radam({ threads: 3, threadThreshold: 0 }).settings,
      new Float32Array(1024),
      (layout) => createThreadedWasmBackend(layout, 3, { stallMs: 20_000 }),
    );
    dispose(state);
  } catch (e) {
    error = e;
  } finally {
    globalThis.Worker = Original;
  }
  assert.ok(error instanceof Error, "init resolved");
  assert.match(
    error.message,
    /^A kernel worker failed to start: RangeError[^;]*; 1 more worker failed too$/,
  );
});

Deno.test("a start in which one worker fails naming its error and another stops outright says that error once the stall bound has passed, the stopped worker counted", async () => {
  // Worker 1's views on the memory lie past its end (its start throws a RangeError); worker 2 is
  // stopped outright as it is sent its start (no message, no event).
  const Original = globalThis.Worker;
  let made = 0;
  globalThis.Worker = class extends Original {
    #number = ++made;
    // deno-lint-ignore no-explicit-any
    override postMessage(message: any, transfer?: any): void {
      const init = message as ThreadWorkerInit;
      const starting = typeof init?.start === "number";
      if (this.#number === 1 && starting) {
        message = { ...init, control: init.memory.buffer.byteLength };
      }
      super.postMessage(message, transfer);
      if (this.#number === 2 && starting) super.terminate();
    }
  } as typeof Worker;
  const started = performance.now();
  let error: unknown;
  try {
    const state = await initState(
      radam({ threads: 3, threadThreshold: 0 }).settings,
      new Float32Array(1024),
      (layout) => createThreadedWasmBackend(layout, 3, { stallMs: 300 }),
    );
    dispose(state);
  } catch (e) {
    error = e;
  } finally {
    globalThis.Worker = Original;
  }
  assert.ok(error instanceof Error, "init resolved");
  assert.match(
    error.message,
    /^A kernel worker failed to start: RangeError[^;]*; 1 more worker failed too$/,
  );
  assert.ok(performance.now() - started < 20_000);
});
