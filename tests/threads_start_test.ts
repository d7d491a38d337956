/**
 * A threaded state's `init` waits for its kernel workers to say they are ready. A worker that
 * stops before it does (terminated, or killed outright: out of memory) sends no message and
 * fires no error event: `init` must reject once no worker has become ready for the stall bound,
 * having terminated every worker, and not wait for ever. A worker whose start throws after its
 * module compiled must say so (a browser does not tell the page of a worker's unhandled
 * rejection).
 *
 * A worker whose `terminate` other code calls as the state starts (ready or not) makes `init`
 * reject at once, saying so, not after the stall bound (nor resolve with the worker gone).
 *
 * So that a regression fails these tests instead of hanging them, `init` is raced against a
 * watchdog (WATCHDOG_MS, far above the stall bound used, or, where `init` must reject at once,
 * below it) that rejects saying it still waits.
 */
import assert from "node:assert/strict";
import { initState } from "../core/init_state.ts";
import { CONTROL, type ThreadWorkerInit, threadWorkerMain } from "../cpu/thread_worker.ts";
import { createThreadedWasmBackend, type ThreadedOptions } from "../cpu/threaded_wasm_backend.ts";
import { PAGE_BYTES, sharedKernelBytes } from "../cpu/wasm_backend.ts";
import { dispose, type OptimizerState, radam, step } from "../mod.ts";
import { disposeState } from "../core/state.ts";

/** How long `init` may wait before the watchdog rejects it (far above the stall bound). */
const WATCHDOG_MS = 30_000;

/** `promise`, or a rejection saying it was still pending after WATCHDOG_MS. */
async function watched<T>(promise: Promise<T>): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const watchdog = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error("init still pending (watchdog)")), WATCHDOG_MS);
  });
  try {
    return await Promise.race([promise, watchdog]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Starts a threaded radam state on `threads` threads whose worker number `killed` (1-based, in
 * the order made) is terminated as soon as it is sent its start: stopped outright (as if
 * killed: nothing can tell), or by other code calling its `terminate` (`called`); returns
 * `init`'s outcome and how many of the workers made were terminated.
 */
async function startKilling(threads: number, killed: number, called = false, stallMs = 300) {
  const Original = globalThis.Worker;
  const made: { terminated: boolean }[] = [];
  globalThis.Worker = class extends Original {
    #record = { terminated: false };
    constructor(url: string | URL, options?: WorkerOptions) {
      super(url, options);
      made.push(this.#record);
    }
    // deno-lint-ignore no-explicit-any
    override postMessage(message: unknown, transfer?: any): void {
      super.postMessage(message, transfer);
      if (made.length === killed && typeof (message as ThreadWorkerInit)?.start === "number") {
        if (called) this.terminate();
        else super.terminate(); // stops it outright: no message, no event
      }
    }
    override terminate(): void {
      this.#record.terminated = true;
      super.terminate();
    }
  } as typeof Worker;
  try {
    const init = initState(
      radam({ threads, threadThreshold: 0 }).settings,
      new Float32Array(1024),
      (layout) => createThreadedWasmBackend(layout, threads, { stallMs }),
    );
    const error = await watched(init).then(() => undefined, (error: Error) => error);
    return { error, made: made.length, terminated: made.filter((m) => m.terminated).length };
  } finally {
    globalThis.Worker = Original;
  }
}

for (const [threads, killed] of [[2, 1], [3, 1], [3, 2]]) {
  Deno.test(`init rejects when worker ${killed} of ${threads - 1} stops before it is ready, terminating the others`, async () => {
    const { error, made, terminated } = await startKilling(threads, killed);
    assert.ok(error instanceof Error, "init resolved");
    assert.doesNotMatch(error.message, /watchdog/, "init waited for ever");
    assert.match(
      error.message,
      /^A kernel worker failed to start: it did not say it was ready, no worker becoming ready for 0.3 s; terminated, or killed \(out of memory\?\)$/,
    );
    assert.equal(made, threads - 1);
    assert.equal(terminated, made, "every worker is terminated");
  });
}

for (const [threads, killed] of [[2, 1], [3, 2]]) {
  Deno.test(`init rejects at once, saying so, when other code terminates worker ${killed} of ${threads - 1} as it starts`, async () => {
    // (A terminated Web Worker fires no event: init waited for the stall bound, 60 s here, and
    // the watchdog rejected it first.)
    const { error, made, terminated } = await startKilling(threads, killed, true, 60_000);
    assert.ok(error instanceof Error, "init resolved");
    assert.doesNotMatch(error.message, /watchdog/, "init waited for the stall bound");
    assert.equal(
      error.message,
      "A kernel worker failed to start: it was terminated by other code (its terminate() called)",
    );
    assert.equal(made, threads - 1);
    assert.equal(terminated, made, "every worker is terminated");
  });
}

Deno.test("init rejects at once, saying so, when a worker is terminated as it is made (in its constructor), terminating the others", async () => {
  // (Its terminate came before the state could wrap it to say so, and a terminated Web Worker
  // fires no event: init waited for the stall bound, 60 s here, and the watchdog rejected it.)
  const Original = globalThis.Worker;
  const made: Worker[] = [];
  const terminated = new Set<Worker>();
  const Double = class extends Original {
    constructor(url: string | URL, options?: WorkerOptions) {
      super(url, options);
      made.push(this);
      if (made.length === 2) this.terminate();
    }
    override terminate(): void {
      terminated.add(this);
      super.terminate();
    }
  };
  globalThis.Worker = Double;
  let error: Error | undefined;
  try {
    const init = initState(
      radam({ threads: 4, threadThreshold: 0 }).settings,
      new Float32Array(1024),
      (layout) => createThreadedWasmBackend(layout, 4, { stallMs: 60_000 }),
    );
    error = await watched(init).then(disposeState, (e: Error) => e) as Error | undefined;
  } finally {
    globalThis.Worker = Original;
  }
  assert.ok(error instanceof Error, "init resolved");
  assert.doesNotMatch(error.message, /watchdog/, "init waited for the stall bound");
  assert.equal(
    error.message,
    "A kernel worker failed to start: it was terminated by other code (its terminate() called)",
  );
  assert.equal(made.length, 2, "no worker is made after it");
  assert.deepEqual(made.map((w) => terminated.has(w)), [true, true], "every worker is terminated");
  // Each is the Worker as its class made it (its prototype that class's).
  assert.ok(made.every((w) => Object.getPrototypeOf(w) === Double.prototype));
});

Deno.test("a global Worker that is a function returning a Worker, or a bound Worker class, starts the state and steps", async () => {
  // (Each worker was made through a subclass of it and then given its `prototype`: the Worker
  // such a function returned, or a bound class's, lost its methods, and init threw, its release
  // throwing too: "Function.prototype.apply was called on undefined".)
  const Original = globalThis.Worker;
  const made: Worker[] = [];
  /** A polyfill's Worker: a plain function whose `new` returns the Worker it made. */
  function Returning(url: string | URL, options?: WorkerOptions): Worker {
    const worker = new Original(url, options);
    made.push(worker);
    return worker;
  }
  const kinds = [
    ["a function returning a Worker", Returning],
    ["a bound Worker class", Original.bind(null)],
  ] as const;
  for (const [what, Kind] of kinds) {
    globalThis.Worker = Kind as unknown as typeof Worker;
    let state: OptimizerState | undefined;
    try {
      state = await watched(radam({ threads: 3, threadThreshold: 0 }).init(new Float32Array(4096)));
    } finally {
      globalThis.Worker = Original;
    }
    try {
      state = step(state, new Float32Array(4096).fill(1));
      assert.equal(state.step, 1, what);
    } finally {
      dispose(state);
    }
  }
  assert.equal(made.length, 2);
  assert.ok(made.every((w) => Object.getPrototypeOf(w) === Original.prototype));
});

Deno.test("init rejects when other code terminates a worker that said it was ready while another still starts", async () => {
  // Worker 1 is terminated by other code as it says it is ready; worker 2 is sent its start
  // 500 ms later. (The terminate came before the state watched its workers: init resolved with
  // worker 1 gone, and its first step waited for the stall bound, then said "no progress".)
  const Original = globalThis.Worker;
  const made: Worker[] = [];
  const terminated: boolean[] = [];
  globalThis.Worker = class extends Original {
    constructor(url: string | URL, options?: WorkerOptions) {
      super(url, options);
      const i = made.push(this) - 1;
      terminated.push(false);
      if (i === 0) {
        this.addEventListener("message", (event) => {
          // (After the start's own listener took the message: the worker is ready.)
          if ((event as MessageEvent).data?.ready) setTimeout(() => this.terminate(), 50);
        });
      }
    }
    // deno-lint-ignore no-explicit-any
    override postMessage(message: unknown, transfer?: any): void {
      if (made.length === 2 && typeof (message as ThreadWorkerInit)?.start === "number") {
        setTimeout(() => super.postMessage(message, transfer), 500);
      } else super.postMessage(message, transfer);
    }
    override terminate(): void {
      terminated[made.indexOf(this)] = true;
      super.terminate();
    }
  } as typeof Worker;
  let outcome: unknown;
  try {
    const init = initState(
      radam({ threads: 3, threadThreshold: 0 }).settings,
      new Float32Array(1024),
      (layout) => createThreadedWasmBackend(layout, 3, { stallMs: 20_000 }),
    );
    outcome = await watched(init).then((state) => state, (error: Error) => error);
  } finally {
    globalThis.Worker = Original;
  }
  if (!(outcome instanceof Error)) disposeState(outcome as OptimizerState);
  assert.ok(outcome instanceof Error, "init resolved, one of its workers gone");
  assert.equal(
    outcome.message,
    "A kernel worker failed to start: it was terminated by other code (its terminate() called)",
  );
  assert.deepEqual(terminated, [true, true], "every worker is terminated");
});

Deno.test("a worker whose start throws after its module compiled says why, not an unhandled rejection", async () => {
  // The worker's program run here, on a stand-in scope: its views on the memory are placed past
  // the memory's end, so its start throws a RangeError once the module has compiled.
  const scope = globalThis as unknown as Record<string, unknown>;
  const saved = { onmessage: scope.onmessage, postMessage: scope.postMessage, close: scope.close };
  const said = new Promise<unknown>((resolve) => {
    scope.postMessage = resolve;
  });
  scope.close = () => {};
  try {
    threadWorkerMain();
    const memory = new WebAssembly.Memory({ initial: 2, maximum: 2, shared: true });
    const onmessage = scope.onmessage as (event: { data: Partial<ThreadWorkerInit> }) => void;
    onmessage({
      data: { bytes: sharedKernelBytes(), memory, control: 16 * PAGE_BYTES, layout: CONTROL },
    });
    const message = await watched(said) as { error?: string; ready?: boolean };
    assert.equal(message.ready, undefined);
    assert.match(String(message.error), /^RangeError/);
  } finally {
    Object.assign(scope, saved);
  }
});

Deno.test("a Web Worker that cannot be made (its constructor or its postMessage throws) fails init saying a kernel worker failed to start, its error the cause, every worker made terminated", async () => {
  // (The constructor's DOMException, or postMessage's, was thrown as it was: nothing said that
  // a kernel worker of the state failed to start, nor, for a policy's SecurityError, how to
  // allow it.)
  const Original = globalThis.Worker;
  for (const where of ["constructor", "postMessage"] as const) {
    const made: Worker[] = [];
    const terminated = new Set<Worker>();
    const thrown = where === "constructor"
      ? new DOMException("Worker creation refused", "SecurityError")
      : new DOMException("The memory could not be cloned", "DataCloneError");
    globalThis.Worker = class extends Original {
      constructor(url: string | URL, options?: WorkerOptions) {
        if (where === "constructor" && made.length === 1) throw thrown;
        super(url, options);
        made.push(this);
      }
      // deno-lint-ignore no-explicit-any
      override postMessage(message: unknown, transfer?: any): void {
        if (where === "postMessage" && made.length === 2) throw thrown;
        super.postMessage(message, transfer);
      }
      override terminate(): void {
        terminated.add(this);
        super.terminate();
      }
    } as typeof Worker;
    let error: unknown;
    try {
      const state = await watched(
        radam({ threads: 3, threadThreshold: 0 }).init(new Float32Array(1024)),
      );
      dispose(state);
    } catch (e) {
      error = e;
    } finally {
      globalThis.Worker = Original;
    }
    assert.ok(error instanceof Error && !(error instanceof DOMException), `${where}: ${error}`);
    const policy = where === "constructor"
      ? " \\(its script \\(a blob: URL\\) could not be loaded; in a browser, the page's Content-Security-Policy must allow blob: in worker-src"
      : "$";
    assert.match(
      error.message,
      new RegExp(`^A kernel worker failed to start: ${thrown.name}: ${thrown.message}${policy}`),
    );
    assert.equal(error.cause, thrown);
    assert.equal(made.length, where === "constructor" ? 1 : 2);
    assert.ok(made.every((w) => terminated.has(w)), `${where}: every worker made is terminated`);
  }
});

Deno.test("a threaded backend's settings out of range are refused before any worker starts, naming the setting", async () => {
  // (A stall bound of NaN was taken: a worker stopped outright was then never taken for
  // stopped, its state's step waiting for ever; one of 0 took every worker for stopped.)
  const Original = globalThis.Worker;
  let made = 0;
  globalThis.Worker = class extends Original {
    constructor(url: string | URL, options?: WorkerOptions) {
      super(url, options);
      made++;
    }
  } as typeof Worker;
  try {
    const refused: [ThreadedOptions, ErrorConstructor, RegExp][] = [
      [
        { stallMs: NaN },
        RangeError,
        /^ThreadedOptions\.stallMs must be a finite number of milliseconds above 0, got NaN$/,
      ],
      [{ stallMs: 0 }, RangeError, /^ThreadedOptions\.stallMs must be .*, got 0$/],
      [
        { stallMs: "500" as unknown as number },
        TypeError,
        /^ThreadedOptions\.stallMs must be .*, got 500$/,
      ],
      [
        { workerSpinMs: -1 },
        RangeError,
        /^ThreadedOptions\.workerSpinMs must be a finite number ≥ 0, got -1$/,
      ],
      [
        { chunk: 100 },
        RangeError,
        /^ThreadedOptions\.chunk must be a positive multiple of 256, got 100$/,
      ],
      [
        { parallelReduction: 0 as unknown as boolean },
        TypeError,
        /^ThreadedOptions\.parallelReduction must be a boolean, got 0$/,
      ],
    ];
    for (const [options, Kind, message] of refused) {
      await assert.rejects(
        initState(
          radam({ threads: 2, threadThreshold: 0 }).settings,
          new Float32Array(16),
          (layout) => createThreadedWasmBackend(layout, 2, options),
        ),
        (e: Error) => e instanceof Kind && message.test(e.message),
        JSON.stringify(options),
      );
    }
  } finally {
    globalThis.Worker = Original;
  }
  assert.equal(made, 0);
});
