/**
 * A kernel worker of a threaded state that stops in the middle of a step (terminated, or
 * killed outright, its isolate out of memory) sends the main thread nothing it could see: it
 * waits synchronously for the worker's share of the step. The step must throw once no worker
 * has made progress for the state's stall bound, as after a worker's fault, and not wait for
 * ever; a slow worker, still making progress, is waited for.
 *
 * A worker is made to stop by changing the message that starts it (`Worker` wrapped while the
 * state starts): `"at start"` makes the step's job its exit (it closes as it takes the job,
 * writing nothing: a worker terminated as the step starts); `"mid-job"` points its pending
 * count at a word nothing reads (it steps its slice, chunk by chunk, and never counts the job
 * done: a worker killed after making progress).
 *
 * So that a regression fails these tests instead of hanging them, a watchdog worker (from a
 * Blob URL: no permission needed) releases the main thread if the step still waits after
 * WATCHDOG_MS: it counts the job done with the fault word set, so the step throws "its job
 * threw", which the test refuses.
 */
import assert from "node:assert/strict";
import { initState } from "../core/init_state.ts";
import { CONTROL, OP_STEP, OP_SUM_SQUARES, type ThreadWorkerInit } from "../cpu/thread_worker.ts";
import { createThreadedWasmBackend, type ThreadedOptions } from "../cpu/threaded_wasm_backend.ts";
import { PAGE_BYTES } from "../cpu/wasm_backend.ts";
import { dispose, type OptimizerState, radam, saveState, step } from "../mod.ts";

/** How long a step may wait before the watchdog releases it (far above the stall bounds). */
const WATCHDOG_MS = 30_000;
/** A word of the control block nothing reads or writes: on the progress word's cache line. */
const UNUSED_WORD = CONTROL.PROGRESS + 4;

type Stop = "at start" | "mid-job" | "at a read" | "none";

/**
 * A threaded radam state of `n` parameters on 3 threads whose first worker stops as `stop`
 * says (`"at a read"`: as it takes the job of the gradients' sum of squares, writing nothing),
 * with `options`, and with clipping (that job before each step) for `"at a read"`.
 */
async function stateWith(
  stop: Stop,
  n: number,
  options: ThreadedOptions,
): Promise<OptimizerState> {
  const Original = globalThis.Worker;
  let changed = false;
  globalThis.Worker = class extends Original {
    // deno-lint-ignore no-explicit-any
    override postMessage(message: unknown, transfer?: any): void {
      const init = message as ThreadWorkerInit;
      if (!changed && stop !== "none" && typeof init?.start === "number") {
        changed = true;
        message = stop === "at start"
          ? { ...init, ops: { ...init.ops, exit: OP_STEP } }
          : stop === "at a read"
          ? { ...init, ops: { ...init.ops, exit: OP_SUM_SQUARES } }
          : { ...init, layout: { ...CONTROL, PENDING: UNUSED_WORD } };
      }
      super.postMessage(message, transfer);
    }
  } as typeof Worker;
  try {
    return await initState(
      radam({ threads: 3, threadThreshold: 0, clipGradNorm: stop === "at a read" ? 1 : undefined })
        .settings,
      new Float32Array(n),
      (layout) => createThreadedWasmBackend(layout, 3, options),
    );
  } finally {
    globalThis.Worker = Original;
  }
}

/**
 * The helper's source: given the memory and a word to be stopped by. `"watchdog"`: see the
 * module doc. `"slow"`: plays a worker slower than the stall bound: bumps the progress word
 * every 20 ms for `ms`, then counts the job done (pending 0, notified), unless stopped first.
 */
const HELPER = `onmessage = (e) => {
  const { mode, buffer, control, words, ms } = e.data;
  const ints = new Int32Array(buffer, control, 64);
  const stop = new Int32Array(e.data.stop);
  postMessage("ready");
  if (mode === "slow") {
    const end = performance.now() + ms;
    while (performance.now() < end) {
      if (Atomics.wait(stop, 0, 0, 20) !== "timed-out") return close();
      Atomics.add(ints, words.PROGRESS, 1);
    }
  } else if (Atomics.wait(stop, 0, 0, ms) !== "timed-out") {
    return close();
  } else {
    Atomics.store(ints, words.FAULT, 1);
  }
  Atomics.store(ints, words.PENDING, 0);
  Atomics.notify(ints, words.PENDING);
  close();
};`;

/** Runs `body` with a helper on `state`'s control block started as `mode` for `ms`. */
async function helped<T>(
  state: OptimizerState,
  mode: "watchdog" | "slow",
  ms: number,
  body: () => T | Promise<T>,
): Promise<T> {
  const url = URL.createObjectURL(new Blob([HELPER], { type: "text/javascript" }));
  const helper = new Worker(url, { type: "module" });
  URL.revokeObjectURL(url);
  const stop = new Int32Array(new SharedArrayBuffer(4));
  const ready = new Promise((resolve) => helper.addEventListener("message", resolve));
  helper.postMessage({
    mode,
    buffer: state.params[""].buffer,
    control: PAGE_BYTES,
    words: CONTROL,
    ms,
    stop: stop.buffer,
  });
  await ready;
  try {
    return await body();
  } finally {
    Atomics.store(stop, 0, 1);
    Atomics.notify(stop, 0);
    helper.terminate();
  }
}

for (const stop of ["at start", "mid-job"] as const) {
  Deno.test(`a worker that stops ${stop} of a step fails it after the stall bound, not never`, async () => {
    const n = 1 << 16; // each worker's share: 85 chunks of 256
    let state = await stateWith(stop, n, { stallMs: 500, chunk: 256 });
    try {
      const grads = new Float32Array(n).fill(1e-3);
      const error = await helped(state, "watchdog", WATCHDOG_MS, () => {
        try {
          state = step(state, grads);
        } catch (error) {
          return error as Error;
        }
      });
      assert.ok(error instanceof Error, "the step returned");
      assert.doesNotMatch(error.message, /its job threw/, "the watchdog had to release the step");
      assert.match(
        error.message,
        /A kernel worker of this threaded optimizer state failed \(it stopped: no progress on its share of the step for 0.5 s; terminated, or killed \(out of memory\?\)\); the state may be half stepped/,
      );
      assert.match(error.message, /load a checkpoint saved before \(loadState\)/);
      assert.equal(state.step, 0);
      // Later steps are refused, saying why, with no wait.
      assert.throws(() => step(state, grads), /failed \(it stopped: no progress/);
    } finally {
      dispose(state);
    }
    assert.throws(() => step(state), /failed \(it stopped|disposed/);
  });
}

Deno.test("a worker that stops in a pass reading the gradients fails the step after the stall bound, saying the state is intact, which it is", async () => {
  const n = 1 << 16;
  let state = await stateWith("at a read", n, { stallMs: 500, chunk: 256 });
  try {
    const before = await saveState(state);
    const grads = new Float32Array(n).fill(1e-3);
    const error = await helped(state, "watchdog", WATCHDOG_MS, () => {
      try {
        state = step(state, grads);
      } catch (error) {
        return error as Error;
      }
    });
    assert.ok(error instanceof Error, "the step returned");
    assert.doesNotMatch(error.message, /its job threw/, "the watchdog had to release the step");
    assert.match(
      error.message,
      /^A kernel worker of this threaded optimizer state failed \(it stopped: no progress on its share of a pass reading the gradients \(which writes nothing\) for 0.5 s; terminated, or killed \(out of memory\?\)\) with nothing of the state being written: it is as its last step left it/,
    );
    assert.doesNotMatch(error.message, /share of the step|half stepped/);
    assert.equal(state.step, 0);
    assert.deepEqual(await saveState(state), before);
    assert.throws(() => step(state, grads), /failed \(it stopped: no progress/);
  } finally {
    dispose(state);
  }
});

Deno.test("a worker slower than the stall bound, still making progress, is waited for", async () => {
  // The stopped worker's share is played by a helper that bumps the progress word every 20 ms
  // for 3 s (6 times the bound), then counts the job done: the step must return, not throw.
  const n = 1 << 16;
  let state = await stateWith("at start", n, { stallMs: 500, chunk: 256 });
  try {
    state = await helped(state, "slow", 3000, () => {
      return helped(state, "watchdog", WATCHDOG_MS, () => step(state, new Float32Array(n)));
    });
    assert.equal(state.step, 1);
  } finally {
    dispose(state);
  }
});
