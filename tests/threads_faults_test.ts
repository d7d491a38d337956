/**
 * What a threaded state says, and what it leaves, when a thread fails where nothing of the state
 * is being written: a worker's trap in a pass that only reads the gradients (their sum of
 * squares for `clipGradNorm`, the non-finite check), or a worker terminated by other code
 * between steps. The step throws, saying that the state is intact (not "may be half stepped"),
 * the state is as its last step left it and can be saved, and later steps are refused (a worker
 * is gone), on every rule, 8-bit states and LookAhead's slow weights too, after steps. A trap of
 * the main thread's own share of such a pass, the workers' shares done, is thrown as is, and the
 * state steps on. The wrapper that tells of a worker's `terminate` is otherwise the call itself.
 *
 * The stall bound is set far above what these take (60 s), so that a worker taken for dead only
 * after it would fail the tests by its message ("no progress"), not hang them.
 */
import assert from "node:assert/strict";
import { initState } from "../core/init_state.ts";
import { CONTROL, FAILED_JOB, SLOT, type ThreadWorkerInit } from "../cpu/thread_worker.ts";
import { DISPOSED_STATE_MESSAGE } from "../base/_state_errors.ts";
import type { CpuBackend } from "../cpu/cpu_backend.ts";
import {
  faultError,
  halfStepWhy,
  join,
  ownShareThrew,
  releaser,
  TERMINATED_WHY,
  watchWorkers,
} from "../cpu/_thread_join.ts";
import { createThreadedWasmBackend } from "../cpu/threaded_wasm_backend.ts";
import {
  adam,
  adamw,
  dispose,
  lion,
  loadState,
  type OptimizerState,
  radam,
  ranger,
  saveState,
  sgd,
  step,
} from "../mod.ts";

const STALL_MS = 60_000;
const N = 4096;
const FAILED = "A kernel worker of this threaded optimizer state failed";
const INTACT = " with nothing of the state being written: it is as its last step left it, but " +
  "takes no more steps: save it (saveState) and load that checkpoint (loadState) to go on";

/**
 * A threaded radam state (`options`) of N parameters on 2 threads, made with `Worker` changed so
 * that each worker made is handed to `made`, and the first one's start message is `change`d.
 */
async function threaded(
  options: Parameters<typeof radam>[0],
  change: (init: ThreadWorkerInit) => ThreadWorkerInit = (init) => init,
  made: (worker: Worker) => void = () => {},
): Promise<OptimizerState> {
  const Original = globalThis.Worker;
  let changed = false;
  globalThis.Worker = class extends Original {
    constructor(url: string | URL, options?: WorkerOptions) {
      super(url, options);
      made(this);
    }
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
    return await initState(
      radam({ ...options, threads: 2, threadThreshold: 0 }).settings,
      Float32Array.from({ length: N }, (_, i) => Math.sin(i)),
      (layout) => createThreadedWasmBackend(layout, 2, { stallMs: STALL_MS }),
    );
  } finally {
    globalThis.Worker = Original;
  }
}

/** The worker's gradients placed at the memory's end: any read of its share traps. */
function gradsPastTheEnd(init: ThreadWorkerInit): ThreadWorkerInit {
  return { ...init, grads: init.memory.buffer.byteLength };
}

/**
 * Asserts that stepping `state` throws `FAILED (why)` saying the state is intact, that the state
 * is as `before` (its checkpoint) and can still be saved, and that later steps are refused
 * likewise.
 */
async function assertIntactRefusal(state: OptimizerState, why: RegExp, before: Uint8Array) {
  // Written in place: copied-in gradients are checked on the main thread as they are copied.
  state.grads[""].fill(0.5);
  const message = (e: Error) => {
    assert.ok(e.message.startsWith(`${FAILED} (`), e.message);
    assert.match(e.message, why);
    assert.ok(e.message.endsWith(`)${INTACT}`), e.message);
    assert.doesNotMatch(e.message, /half stepped/);
    return true;
  };
  assert.throws(() => step(state), message);
  assert.equal(state.step, 0);
  assert.deepEqual(await saveState(state), before);
  // The worker's own message (or event), delivered now, keeps the state refused, intact.
  await new Promise((resolve) => setTimeout(resolve, 50));
  assert.throws(() => step(state), message);
  assert.deepEqual(await saveState(state), before);
  // The checkpoint goes on, in a new state.
  const resumed = await loadState(before, { threads: 1 });
  assert.equal(step(resumed, new Float32Array(N).fill(0.5)).step, 1);
}

for (
  const [pass, options] of [
    ["the gradients' sum of squares (clipGradNorm)", { clipGradNorm: 1 }],
    ["the non-finite check (nonFinite: 'skip')", { nonFinite: "skip" as const }],
  ] as const
) {
  Deno.test(`a worker's trap in ${pass} fails the step saying the state is intact, which it is`, async () => {
    const state = await threaded(options, gradsPastTheEnd);
    try {
      const before = await saveState(state);
      await assertIntactRefusal(state, /^[^(]*\((its job threw|RuntimeError: .*)\)/, before);
    } finally {
      dispose(state);
    }
    assert.throws(() => step(state), /failed|disposed/);
  });
}

/**
 * `loadState(checkpoint)` on 2 threads, with `Worker` changed so that the worker's gradients lie
 * past the memory's end (its steps run; any pass reading its share of the gradients traps).
 */
async function loadTrapping(checkpoint: Uint8Array): Promise<OptimizerState> {
  const Original = globalThis.Worker;
  globalThis.Worker = class extends Original {
    // deno-lint-ignore no-explicit-any
    override postMessage(message: any, transfer?: any): void {
      const init = typeof message?.start === "number" ? gradsPastTheEnd(message) : message;
      super.postMessage(init, transfer);
    }
  } as typeof Worker;
  try {
    return await loadState(checkpoint, { threads: 2, threadThreshold: 0 });
  } finally {
    globalThis.Worker = Original;
  }
}

// After steps (moments, 8-bit codes and scales, LookAhead's slow weights apart from the params),
// a save from the failed state is the checkpoint it was loaded from, byte for byte.
const RULES = { radam, adam, adamw, lion, ranger, sgd: () => sgd({ momentum: 0.9 }) };
for (const [name, make] of Object.entries(RULES)) {
  Deno.test(`${name}, 32- and 8-bit, stepped: a worker's trap in a pass reading the gradients leaves the state as it was`, async () => {
    const passes = [{ clipGradNorm: 1, gc: true }, { nonFinite: "skip" as const }];
    for (const states of ["32bit", "8bit"] as const) {
      for (const pass of passes) {
        const optimizer = (make as typeof radam)({ ...pass, states });
        let state = await optimizer.init({ w: { data: new Float32Array(N), shape: [64, 64] } });
        for (let t = 1; t <= 5; t++) {
          state = step(state, { w: Float32Array.from({ length: N }, (_, i) => Math.cos(i * t)) });
        }
        const checkpoint = await saveState(state);
        dispose(state);
        const failing = await loadTrapping(checkpoint);
        try {
          failing.grads.w.fill(0.5);
          assert.throws(() => step(failing), (e: Error) => e.message.endsWith(INTACT));
          assert.deepEqual(await saveState(failing), checkpoint, `${states} ${Object.keys(pass)}`);
        } finally {
          dispose(failing);
        }
      }
    }
  });
}

Deno.test("a Web Worker terminated by other code between steps fails the next step at once, saying so, the state intact", async () => {
  const workers: Worker[] = [];
  const state = await threaded({}, undefined, (worker) => workers.push(worker));
  try {
    assert.equal(workers.length, 1);
    const before = await saveState(state);
    // (A terminated Web Worker fires no event: the step began would wait for the stall bound.)
    workers[0].terminate();
    await assertIntactRefusal(
      state,
      /\(it was terminated by other code \(its terminate\(\) called\)\)/,
      before,
    );
  } finally {
    dispose(state);
  }
});

Deno.test("a worker's terminate, wrapped to say so at once, passes on its arguments and returns its value (a polyfill's), and dispose's says nothing", () => {
  const calls: unknown[][] = [];
  const worker = {
    terminate: (...args: unknown[]) => {
      calls.push(args);
      return "its value";
    },
  } as unknown as Worker;
  const release = releaser(
    new Int32Array(new SharedArrayBuffer(CONTROL.SCALARS)),
    [worker],
    new Int32Array(new SharedArrayBuffer(2 * SLOT.BYTES)),
  );
  watchWorkers([worker], release);
  const terminate = worker.terminate as (...args: unknown[]) => unknown;
  assert.equal(terminate(1, "two"), "its value");
  assert.deepEqual(calls, [[1, "two"]]);
  assert.equal(release.fault, TERMINATED_WHY);
  assert.equal(release.halfStepped, false);
  release();
  assert.deepEqual(calls, [[1, "two"], []]);
});

Deno.test("when several workers say their job threw, the first one's words are kept (the root cause) and the others counted", () => {
  const { workers, ints, release, say, mark } = watched(3);
  // As a job that writes threw on every worker: the main thread saw the fault word first.
  for (let t = 1; t <= 3; t++) mark(t, FAILED_JOB);
  Atomics.store(ints, CONTROL.FAULT, 1);
  assert.throws(
    () => join(ints, release, true, STALL_MS, true),
    /failed \(its job threw; 2 more workers failed too\)/,
  );
  say(workers[1], "RuntimeError: unreachable");
  say(workers[0], "RuntimeError: memory access out of bounds");
  say(workers[2], "RuntimeError: divide by zero");
  assert.equal(release.fault, "RuntimeError: unreachable");
  assert.match(
    faultError(release).message,
    /^A kernel worker of this threaded optimizer state failed \(RuntimeError: unreachable; 2 more workers failed too\); the state may be half stepped/,
  );
  release();
});

Deno.test("a step in which two workers trap says the first one's trap and that one more failed", async () => {
  const Original = globalThis.Worker;
  globalThis.Worker = class extends Original {
    // deno-lint-ignore no-explicit-any
    override postMessage(message: any, transfer?: any): void {
      const init = typeof message?.start === "number" ? gradsPastTheEnd(message) : message;
      super.postMessage(init, transfer);
    }
  } as typeof Worker;
  // (Blocks of the sum of squares for each of the 3 threads.)
  const n = 1 << 16;
  let state: OptimizerState;
  try {
    state = await initState(
      radam({ clipGradNorm: 1, threads: 3, threadThreshold: 0 }).settings,
      new Float32Array(n),
      (layout) => createThreadedWasmBackend(layout, 3, { stallMs: STALL_MS }),
    );
  } finally {
    globalThis.Worker = Original;
  }
  try {
    const grads = new Float32Array(n).fill(0.5);
    // (Each worker's slot says its job threw: both are counted at once.)
    assert.throws(
      () => step(state, grads),
      /failed \(its job threw; 1 more worker failed too\) with nothing/,
    );
    // Both workers' messages, delivered now.
    await new Promise((resolve) => setTimeout(resolve, 100));
    assert.throws(
      () => step(state, grads),
      /failed \(RuntimeError: [^;()]*; 1 more worker failed too\) with nothing/,
    );
  } finally {
    dispose(state);
  }
});

/**
 * `count` stand-ins of workers watched by a release of a control block of their own, as its
 * first job runs (its generation 1): `mark(t, failed)` writes thread t's slot as a worker does
 * (`failed` 0: it counted the job done; else how it failed).
 */
function watched(count: number) {
  const workers = Array.from(
    { length: count },
    () => ({ terminate: () => {} }) as unknown as Worker,
  );
  const ints = new Int32Array(new SharedArrayBuffer(CONTROL.SCALARS));
  const slots = new Int32Array(new SharedArrayBuffer((count + 1) * SLOT.BYTES));
  const release = releaser(ints, workers, slots);
  watchWorkers(workers, release);
  Atomics.store(ints, CONTROL.GENERATION, 1);
  const mark = (t: number, failed: number) => {
    const at = t * SLOT.BYTES / 4;
    if (failed === 0) Atomics.store(slots, at + SLOT.DONE, 1);
    else Atomics.store(slots, at + SLOT.FAILED, failed);
  };
  const say = (worker: Worker, fault: string) =>
    worker.onmessage?.(new MessageEvent("message", { data: { fault } }));
  const error = (worker: Worker, message: string) =>
    worker.onerror?.(new ErrorEvent("error", { message, cancelable: true }));
  return { workers, ints, release, say, error, mark };
}

Deno.test("a worker's trap told after another worker's stall is shown as the root cause, the stall counted", () => {
  // (The first failure told was kept: the stall, one more worker counted.)
  const { workers, ints, release, say, mark } = watched(2);
  // One worker trapped and counted the step done; the other never does: it stopped, with no word.
  mark(2, FAILED_JOB);
  Atomics.store(ints, CONTROL.FAULT, 1);
  Atomics.store(ints, CONTROL.PENDING, 1);
  // (The trap, its words to come, is shown before the stall.)
  assert.throws(
    () => join(ints, release, true, 200, true),
    /failed \(its job threw; 1 more worker failed too\)/,
  );
  say(workers[1], "RuntimeError: unreachable");
  assert.equal(release.fault, "RuntimeError: unreachable");
  assert.match(
    faultError(release).message,
    /^A kernel worker of this threaded optimizer state failed \(RuntimeError: unreachable; 1 more worker failed too\); the state may be half stepped/,
  );
  release();
});

Deno.test("a cause told after a death told without one is shown: a trap after an exit, out of memory after a terminate", () => {
  const { workers, release, say, error } = watched(3);
  error(workers[0], "it exited (exit code 0): terminated by other code, or process.exit");
  say(workers[1], "RuntimeError: memory access out of bounds");
  assert.equal(release.fault, "RuntimeError: memory access out of bounds");
  assert.equal(release.more, 1);
  const other = watched(2);
  other.workers[0].terminate();
  other.error(
    other.workers[1],
    "Worker terminated due to reaching memory limit: JS heap out of memory",
  );
  assert.match(
    faultError(other.release).message,
    /failed \(Worker terminated due to reaching memory limit: JS heap out of memory; 1 more worker failed too\) with nothing/,
  );
  // Of alike ones, the first told stays.
  say(workers[2], "RuntimeError: unreachable");
  assert.equal(release.fault, "RuntimeError: memory access out of bounds");
  assert.equal(release.more, 2);
  release();
  other.release();
});

Deno.test("workers failing by an error event or an exit are counted, each worker once (its message, then its exit)", () => {
  const { workers, release, say, error } = watched(4);
  say(workers[0], "RuntimeError: unreachable");
  error(workers[0], "it exited (exit code 0): terminated by other code, or process.exit");
  assert.equal(release.more, 0);
  error(workers[1], "Uncaught Error: boom");
  error(workers[2], "it exited (exit code 3): terminated by other code, or process.exit");
  error(workers[3], "");
  assert.equal(release.fault, "RuntimeError: unreachable");
  assert.match(
    faultError(release).message,
    /\(RuntimeError: unreachable; 3 more workers failed too\)/,
  );
  release();
});

Deno.test("the main thread's trap beside a worker's is shown (it came first), the worker's counted", () => {
  const { workers, ints, release, say, mark } = watched(1);
  // As the step's job threw on the worker (counted done) while the main thread's share trapped.
  mark(1, FAILED_JOB);
  Atomics.store(ints, CONTROL.FAULT, 1);
  const trap = new WebAssembly.RuntimeError("unreachable");
  const wait = () => join(ints, release, true, STALL_MS, true);
  const main =
    /^The main thread of this threaded optimizer state failed \(its own share of the step threw RuntimeError: unreachable; 1 more worker failed too\); the state may be half stepped/;
  assert.match((ownShareThrew(trap, true, ints, release, wait) as Error).message, main);
  // The worker's own words, delivered now, tell its failure again: counted once.
  say(workers[0], "RuntimeError: memory access out of bounds");
  assert.match(faultError(release).message, main);
  assert.equal(release.more, 1);
  release();
});

Deno.test("a stalled worker that later says its job threw (held, then trapping) is counted once, its trap shown", () => {
  for (const count of [1, 2]) {
    const { workers, ints, release, say, error, mark } = watched(count);
    // One worker never counts the step done; none that did had trapped (the fault word clear).
    for (let t = 1; t < count; t++) mark(t, 0);
    Atomics.store(ints, CONTROL.PENDING, 1);
    assert.throws(() => join(ints, release, true, 200, true), /failed \(it stopped: no progress/);
    // Only a worker still in the job can trap in it now: the stalled one, held until now.
    const stalled = workers[count - 1];
    say(stalled, "RuntimeError: unreachable");
    assert.equal(release.fault, "RuntimeError: unreachable");
    assert.equal(release.more, 0, `${count} workers`);
    // Its exit after, told again: still one worker.
    error(stalled, "it exited (exit code 0): terminated by other code, or process.exit");
    assert.equal(release.more, 0);
    assert.match(
      faultError(release).message,
      /^A kernel worker of this threaded optimizer state failed \(RuntimeError: unreachable\); the state may be half stepped/,
    );
    release();
  }
});

Deno.test("a worker's fault message or error event delivered after dispose is not told: the state keeps saying it was disposed", async () => {
  const { workers, release, say, error } = watched(2);
  release();
  say(workers[0], "RuntimeError: unreachable");
  error(workers[1], "Uncaught Error: boom");
  assert.equal(release.fault, undefined);
  assert.equal(release.more, 0);
  assert.equal(halfStepWhy(release), undefined);
  // A real state's backend, disposed as a step's fault message is on its way.
  const made: Worker[] = [];
  const Original = globalThis.Worker;
  globalThis.Worker = class extends Original {
    constructor(url: string | URL, options?: WorkerOptions) {
      super(url, options);
      made.push(this);
    }
  } as typeof Worker;
  let backend: CpuBackend | undefined;
  let state: OptimizerState;
  try {
    state = await initState(
      radam({ threads: 2, threadThreshold: 0 }).settings,
      new Float32Array(N),
      async (layout) => backend = await createThreadedWasmBackend(layout, 2, { stallMs: STALL_MS }),
    );
  } finally {
    globalThis.Worker = Original;
  }
  assert.ok(backend !== undefined);
  assert.equal(made.length, 1);
  dispose(state);
  made[0].onmessage?.(
    new MessageEvent("message", { data: { fault: "RuntimeError: unreachable" } }),
  );
  made[0].onerror?.(new ErrorEvent("error", { message: "Uncaught Error: boom", cancelable: true }));
  assert.throws(() => backend!.update(), (e: Error) => {
    assert.ok(e instanceof TypeError, e.message);
    assert.equal(e.message, DISPOSED_STATE_MESSAGE);
    return true;
  });
  assert.equal(backend.halfStepped(), undefined);
});

Deno.test("two workers that stall are counted as two, still when one of them later traps, and a third that counted the step done is not counted", () => {
  // (The control block did not say which worker stalled: the stall was one failure, which the
  // trap told later filled, and the other stalled worker was counted nowhere.)
  const { workers, ints, release, say, mark } = watched(3);
  mark(2, 0);
  Atomics.store(ints, CONTROL.PENDING, 2);
  assert.throws(
    () => join(ints, release, true, 200, true),
    /failed \(it stopped: no progress [^;]*; terminated, or killed \(out of memory\?\); 1 more worker failed too\)/,
  );
  say(workers[2], "RuntimeError: unreachable");
  assert.equal(release.fault, "RuntimeError: unreachable");
  assert.equal(release.more, 1);
  // The worker that counted the step done, terminated now by other code, is a failure of its own.
  workers[1].terminate();
  assert.equal(release.more, 2);
  release();
});
