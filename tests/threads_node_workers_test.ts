/**
 * Option `threads` where the runtime has no global `Worker` but gives `node:worker_threads`
 * through `process.getBuiltinModule` (Node.js 20.16+ and 22.3+): the workers are worker_threads
 * ones, wrapped (cpu/_node_worker.ts). Deno has that function too, so these tests hide Deno's
 * `Worker` and run the wrapped path here, with no permissions: the same bits as one thread
 * (RAdam; 8-bit Ranger, clipped), a worker's fault said through the wrapper, and dispose. Node
 * itself runs it in tests/node/threads.test.mjs.
 */
import assert from "node:assert/strict";
import { type NodeWorkerThreads, startNodeWorker } from "../cpu/_node_worker.ts";
import { TERMINATED_WHY } from "../cpu/_thread_join.ts";
import type { ThreadWorkerInit } from "../cpu/thread_worker.ts";
import { dispose, type OptimizerState, radam, ranger, step } from "../mod.ts";
import { assertSameBits } from "./cases.ts";
import { prng, randomTensor } from "./util.ts";

/**
 * Runs `run` with the global `Worker` hidden, counting the worker_threads workers made (each
 * handed to `each`).
 */
async function withoutWebWorkers<T>(
  run: () => Promise<T>,
  each: (worker: { terminate(): Promise<number> }) => void = () => {},
): Promise<{ value: T; made: number }> {
  const global = globalThis as { Worker?: unknown };
  const process = (globalThis as unknown as {
    process: { getBuiltinModule: (id: string) => Record<string, unknown> };
  }).process;
  const saved = { worker: global.Worker, get: process.getBuiltinModule };
  let made = 0;
  delete global.Worker;
  process.getBuiltinModule = (id: string) => {
    const module = saved.get.call(process, id);
    if (id !== "node:worker_threads") return module;
    const Worker = module.Worker as new (...args: unknown[]) => object;
    // A subclass, so that each worker made here is counted.
    class Counted extends Worker {
      constructor(...args: unknown[]) {
        super(...args);
        made++;
        each(this as unknown as { terminate(): Promise<number> });
      }
    }
    return { ...module, Worker: Counted };
  };
  try {
    return { value: await run(), made };
  } finally {
    global.Worker = saved.worker;
    process.getBuiltinModule = saved.get;
  }
}

/** Steps `make()`'s state 10 times on draws of seed 5; the state. */
async function train(make: () => Promise<OptimizerState<unknown>>, n: number) {
  const rand = prng(5);
  let state = await make();
  for (let t = 1; t <= 10; t++) {
    state = step(state, { a: randomTensor(rand, n), b: randomTensor(rand, 33) });
  }
  return state;
}

Deno.test("no Web Workers but node:worker_threads: two and three threads give one thread's bits, and dispose", async () => {
  const n = 20_000;
  const rand = prng(9);
  const params = { a: randomTensor(rand, n), b: randomTensor(rand, 33) };
  const optimizers = [
    ["RAdam", (more: object) => radam({ lr: 1e-2, ...more })],
    [
      "8-bit Ranger, clipped",
      (more: object) => ranger({ lr: 1e-2, states: "8bit", clipGradNorm: 1, ...more }),
    ],
  ] as const;
  for (const [what, optimizer] of optimizers) {
    const one = await train(() => optimizer({}).init(params), n);
    for (const threads of [2, 3]) {
      const { value: many, made } = await withoutWebWorkers(() =>
        train(() => optimizer({ threads, threadThreshold: 0 }).init(params), n)
      );
      try {
        assert.equal(many.threads, threads, what);
        assert.equal(made, threads - 1, `${what}: worker_threads workers`);
        await assertSameBits(many, one, `${what} on ${threads} threads`);
      } finally {
        dispose(many);
      }
      assert.throws(() => step(many, { a: new Float32Array(n), b: new Float32Array(33) }), {
        name: "TypeError",
        message: /disposed/,
      });
    }
  }
});

Deno.test("no Web Workers but node:worker_threads: a worker's trap fails the step and says why", async () => {
  // As tests/threads_test.ts does: the gradients' address in the shared arena descriptor moved
  // so that the worker's half lies past the memory's end.
  const n = 4096;
  const { value: state } = await withoutWebWorkers(() =>
    radam({ threads: 2, threadThreshold: 0 }).init(new Float32Array(n))
  );
  try {
    const grads = state.grads[""];
    const memory = new Uint32Array(grads.buffer);
    const below = new Uint32Array(grads.buffer, 0, state.params[""].byteOffset / 4);
    const at = below.lastIndexOf(grads.byteOffset);
    assert.ok(at > 0);
    memory[at] = grads.buffer.byteLength - (n / 2) * 4;
    assert.throws(() => step(state), /A kernel worker of this threaded optimizer state failed/);
    await new Promise((resolve) => setTimeout(resolve, 50)); // the worker's message says why
    assert.throws(() => step(state), /failed \(RuntimeError: .*\); the state may be half stepped/);
  } finally {
    dispose(state);
  }
});

Deno.test("no Web Workers but node:worker_threads: a worker terminated by other code fails the next step at once, before its exit event, the state intact", async () => {
  const workers: { terminate(): Promise<number> }[] = [];
  const { value: state } = await withoutWebWorkers(
    () => radam({ threads: 3, threadThreshold: 0 }).init(new Float32Array(5000)),
    (worker) => workers.push(worker),
  );
  try {
    const grads = new Float32Array(5000).fill(1);
    const done = workers[1].terminate();
    // At once, its exit event not delivered: the step would have waited for the stall bound.
    for (let i = 0; i < 2; i++) {
      assert.throws(
        () => step(state, grads),
        /^Error: A kernel worker of this threaded optimizer state failed \(it was terminated by other code \(its terminate\(\) called\)\) with nothing of the state being written: .*saveState/,
      );
      await done;
    }
    assert.equal(state.step, 0);
  } finally {
    dispose(state);
  }
});

Deno.test("node:worker_threads: a worker's own terminate, wrapped to say so at once, passes on its arguments (the deprecated callback) and returns its Promise", () => {
  const calls: unknown[][] = [];
  const exited = Promise.resolve(0);
  const made: FakeWorker[] = [];
  /** A worker_threads Worker that runs nothing, recording its terminate's arguments. */
  class FakeWorker {
    constructor() {
      made.push(this);
    }
    on(): this {
      return this;
    }
    postMessage(): void {}
    terminate(...args: unknown[]): Promise<number> {
      calls.push(args);
      return exited;
    }
    unref(): void {}
  }
  const wrapped = startNodeWorker({ Worker: FakeWorker }, "")!;
  const said: string[] = [];
  wrapped.onerror = (event) => said.push((event as ErrorEvent).message);
  const callback = () => {};
  assert.equal(made[0].terminate(callback), exited);
  assert.deepEqual(calls, [[callback]]);
  assert.deepEqual(said, [TERMINATED_WHY]);
  // The library's own terminate (dispose) says nothing more.
  wrapped.terminate();
  assert.deepEqual(calls, [[callback], []]);
  assert.deepEqual(said, [TERMINATED_WHY]);
});

Deno.test("node:worker_threads: a Worker that is a function returning the worker it made (a stand-in's) is wrapped with the worker's own methods", () => {
  // (The worker was given the function's empty prototype: it lost `on`, and the start threw
  // "worker.on is not a function".)
  const posted: unknown[] = [];
  const ended: unknown[] = [];
  class Made {
    on(): this {
      return this;
    }
    postMessage(message: unknown): void {
      posted.push(message);
    }
    terminate(): Promise<number> {
      ended.push(this);
      return Promise.resolve(1);
    }
    unref(): void {}
  }
  const made: Made[] = [];
  function Returning(): Made {
    made.push(new Made());
    return made[0];
  }
  const wrapped = startNodeWorker(
    { Worker: Returning as unknown as NodeWorkerThreads["Worker"] },
    "",
  );
  assert.ok(wrapped !== undefined);
  assert.ok(Object.getPrototypeOf(made[0]) === Made.prototype);
  wrapped.postMessage("start");
  assert.deepEqual(posted, ["start"]);
  wrapped.terminate();
  assert.deepEqual(ended, made);
});

Deno.test("no Web Workers but node:worker_threads: a worker terminated by other code as it is made (its constructor) fails init at once, saying so, every worker terminated", async () => {
  // (Its terminate came before the wrapper could say so: init failed only as its exit event
  // came, saying it exited.)
  const workers: { terminate(): Promise<number> }[] = [];
  const exits: Promise<number>[] = [];
  const started = Date.now();
  const { value: error } = await withoutWebWorkers(
    () =>
      radam({ threads: 3, threadThreshold: 0 }).init(new Float32Array(5000)).then(
        (state) => {
          dispose(state);
          return undefined;
        },
        (error: Error) => error,
      ),
    (worker) => {
      workers.push(worker);
      if (workers.length === 2) exits.push(worker.terminate());
    },
  );
  await Promise.all(exits);
  assert.ok(error instanceof Error, "init resolved");
  assert.equal(
    error.message,
    "A kernel worker failed to start: it was terminated by other code (its terminate() called)",
  );
  assert.equal(workers.length, 2);
  assert.ok(Date.now() - started < 5000);
});

Deno.test("no Web Workers but node:worker_threads: a worker terminated by other code after it said it was ready, while another still starts, fails init", async () => {
  // Worker 1 is terminated by other code once it said it is ready; worker 2 is sent its start
  // 500 ms later. (The wrapper's error event saying so came after the start's own wait for that
  // worker had ended: init resolved with the worker gone, as a Web Worker's did not.)
  type Raw = {
    terminate(): Promise<number>;
    on(event: "message", listener: (data: { ready?: boolean }) => void): void;
    postMessage(message: unknown): void;
  };
  const workers: Raw[] = [];
  const exits: Promise<number>[] = [];
  let posted: Promise<void> | undefined;
  const { value: outcome } = await withoutWebWorkers(
    () =>
      radam({ threads: 3, threadThreshold: 0 }).init(new Float32Array(5000)).then(
        (state) => state,
        (error: Error) => error,
      ),
    (made) => {
      const worker = made as unknown as Raw;
      workers.push(worker);
      if (workers.length === 1) {
        worker.on("message", (data) => {
          if (data?.ready) setTimeout(() => exits.push(worker.terminate()), 50);
        });
      } else {
        const post = worker.postMessage;
        worker.postMessage = (message) =>
          posted = new Promise((resolve) =>
            setTimeout(() => resolve(Reflect.apply(post, worker, [message])), 500)
          );
      }
    },
  );
  await Promise.all([...exits, posted]);
  if (!(outcome instanceof Error)) dispose(outcome);
  assert.ok(outcome instanceof Error, "init resolved, one of its workers gone");
  assert.equal(
    outcome.message,
    "A kernel worker failed to start: it was terminated by other code (its terminate() called)",
  );
  assert.equal(exits.length, 1);
});

Deno.test("no Web Workers, and Node's permission model denying worker threads: a TypeError naming --allow-worker, before any worker is made", async () => {
  const process = (globalThis as unknown as { process: { permission?: unknown } }).process;
  const saved = process.permission;
  process.permission = { has: (scope: string) => scope !== "worker" };
  try {
    const { made } = await withoutWebWorkers(async () => {
      await assert.rejects(
        radam({ threads: 2, threadThreshold: 0 }).init(new Float32Array(8)),
        (e: Error) =>
          e instanceof TypeError &&
          /^Option threads: 2 needs worker threads, which Node\.js's permission model denies this process \(.*\): run node with --allow-worker as well, or use threads: 1$/
            .test(e.message),
      );
      const state = await radam({ threads: 1 }).init(new Float32Array(8));
      assert.equal(state.threads, 1);
    });
    assert.equal(made, 0);
  } finally {
    process.permission = saved;
  }
});

Deno.test("no Web Workers but node:worker_threads: a start in which one worker fails naming its error and another stops outright rejects at once (its exit event), that error shown, the stopped one counted", async () => {
  // Worker 1 is ended by its own class's terminate (not the wrapper's: no word) as it is sent its
  // start, which Node.js tells by its exit event; worker 2's views on the memory lie past its
  // end, so its start throws a RangeError. A Web Worker stopped so fires no event, and its start
  // waits for the stall bound (tests/threads_count_test.ts); this one's is heard.
  type Raw = { terminate(): Promise<number>; postMessage(message: unknown): void };
  const exits: Promise<number>[] = [];
  let made = 0;
  const started = Date.now();
  const { value: outcome } = await withoutWebWorkers(
    () =>
      radam({ threads: 3, threadThreshold: 0 }).init(new Float32Array(5000)).then(
        (state) => state,
        (error: Error) => error,
      ),
    (raw) => {
      const worker = raw as unknown as Raw;
      const number = ++made;
      // (Taken before the wrapper replaces it.)
      const end = Object.getPrototypeOf(worker).terminate.bind(worker) as () => Promise<number>;
      const post = worker.postMessage;
      worker.postMessage = (message) => {
        const init = message as ThreadWorkerInit;
        if (number === 2) message = { ...init, control: init.memory.buffer.byteLength };
        Reflect.apply(post, worker, [message]);
        if (number === 1) exits.push(end());
      };
    },
  );
  await Promise.all(exits);
  if (!(outcome instanceof Error)) dispose(outcome);
  assert.ok(outcome instanceof Error, "init resolved");
  assert.match(
    outcome.message,
    /^A kernel worker failed to start: RangeError[^;]*; 1 more worker failed too$/,
  );
  assert.equal(exits.length, 1);
  assert.ok(Date.now() - started < 8000, "not after the stall bound (10 s)");
});
