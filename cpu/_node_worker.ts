/**
 * The workers of a threaded wasm state (cpu/threaded_wasm_backend.ts) on Node.js, which has no
 * Web Workers but `node:worker_threads`. Reached through `process.getBuiltinModule` (Node.js
 * 22.3+ and 20.16+), only where there is no global `Worker`, so that the library imports no
 * `node:` module (its npm build is bundled for browsers as is). A worker of `worker_threads` is
 * wrapped in the part of the Web Worker interface the threaded backend uses (`onmessage`,
 * `onerror`, `postMessage`, `terminate`) and given, before the worker's program
 * (cpu/thread_worker.ts), a prelude that makes the globals that program uses (`onmessage`,
 * `postMessage`, `close`) out of its `parentPort`, and calls the program's `onexit(code)` as
 * the thread exits (so that a worker exiting in the middle of a step says so at once, in the
 * shared memory: its `exit` event could not reach the main thread, which waits synchronously).
 * Private to the library.
 *
 * @module
 */
import { madeLive, startFailed, TERMINATED_WHY } from "./_thread_join.ts";

/** The part of a `node:worker_threads` Worker used here. */
interface NodeWorker {
  on(event: "message", listener: (data: unknown) => void): unknown;
  on(event: "error", listener: (error: unknown) => void): unknown;
  on(event: "exit", listener: (code: number) => void): unknown;
  postMessage(message: unknown): void;
  terminate(): Promise<number>;
  unref(): void;
}

/** The part of `node:worker_threads` used here. */
export interface NodeWorkerThreads {
  Worker: new (source: string, options: { eval: boolean; name?: string }) => NodeWorker;
}

/**
 * `node:worker_threads`, where this runtime has no global `Worker` and can give it (Node.js
 * 22.3+ and 20.16+, through `process.getBuiltinModule`); else `undefined`.
 */
export function nodeWorkerThreads(): NodeWorkerThreads | undefined {
  if (typeof Worker === "function") return undefined;
  const process = (globalThis as {
    process?: { getBuiltinModule?: (id: string) => unknown };
  }).process;
  if (typeof process?.getBuiltinModule !== "function") return undefined;
  try {
    const threads = process.getBuiltinModule("node:worker_threads") as
      | Partial<NodeWorkerThreads>
      | undefined;
    return typeof threads?.Worker === "function" ? threads as NodeWorkerThreads : undefined;
  } catch {
    return undefined;
  }
}

/**
 * The prelude of a worker's program on Node.js: the globals of a Web Worker that the program
 * uses, made out of `parentPort`. Stringified: it must not refer to anything outside its body.
 */
function nodeWorkerPrelude(): void {
  // deno-lint-ignore no-explicit-any
  const scope = globalThis as any;
  const port = scope.process.getBuiltinModule("node:worker_threads").parentPort;
  scope.postMessage = (message: unknown) => port.postMessage(message);
  // (Deno's node:worker_threads has no close on its port: the thread exits instead.)
  scope.close = () => typeof port.close === "function" ? port.close() : scope.process.exit(0);
  port.on("message", (data: unknown) => {
    if (typeof scope.onmessage === "function") scope.onmessage({ data });
  });
  // As its thread exits (`process.exit` in it, or an error nothing caught; not `terminate`,
  // which runs nothing more in it): the program's hook, which tells a waiting main thread.
  scope.process.on("exit", (code: number) => {
    if (typeof scope.onexit === "function") scope.onexit(code);
  });
}

/** A worker wrapped for the threaded backend: a Web Worker's interface, and `unref`. */
export type WrappedNodeWorker = Worker & { unref(): void };

/**
 * Whether Node.js's permission model (`--permission`, `--experimental-permission` before 22)
 * denies this process worker threads (no `--allow-worker`): making one would throw Node's bare
 * `ERR_ACCESS_DENIED`.
 */
export function nodeWorkersDenied(): boolean {
  const permission = (globalThis as {
    process?: { permission?: { has?: (scope: string) => boolean } };
  }).process?.permission;
  try {
    return typeof permission?.has === "function" && permission.has("worker") === false;
  } catch {
    return false;
  }
}

/**
 * Starts a worker of `threads` running `source` (a program written for a Web Worker, see the
 * module doc), wrapped in a Web Worker's interface. Its error events carry the message of the
 * error the worker threw, or say that it exited (terminated by other code, or `process.exit` in
 * it: Node.js fires no error event then); the worker's own `terminate`, called by other code,
 * fires one at once, saying so (and is otherwise as it was: its arguments passed on, its Promise
 * returned). The wrapper's `terminate` ends it without waiting. Throws an Error
 * saying that a kernel worker failed to start where Node.js refuses to make one; `undefined`
 * where it was terminated as it was made (cpu/_thread_join.ts `madeLive`).
 */
export function startNodeWorker(
  threads: NodeWorkerThreads,
  source: string,
): WrappedNodeWorker | undefined {
  let made: NodeWorker | undefined;
  try {
    made = madeLive(threads.Worker, [`(${nodeWorkerPrelude.toString()})();\n${source}`, {
      eval: true,
      name: "radam kernel",
    }]);
  } catch (cause) {
    throw startFailed(cause instanceof Error ? cause.message : String(cause), cause);
  }
  // (Terminated as it was made, by a subclass's constructor: see madeLive.)
  if (made === undefined) return undefined;
  const worker = made;
  /** Whether its end was asked for (terminate) or already said (an error event). */
  let ended = false;
  const terminate = worker.terminate;
  const wrapped = {
    onmessage: null as ((event: { data: unknown }) => void) | null,
    onerror: null as ((event: { message: string; preventDefault(): void }) => void) | null,
    postMessage: (message: unknown) => worker.postMessage(message),
    terminate: () => {
      ended = true;
      terminate.call(worker).catch(() => {});
    },
    unref: () => worker.unref(),
  };
  // Terminated by other code (the worker's own object, given to a subclass of Worker): said at
  // once, not as its exit event comes (a step started before would wait for the stall bound).
  // Its arguments passed on, its value returned: a caller's callback (Node.js's deprecated
  // `terminate(callback)`) is still called.
  worker.terminate = (...args: unknown[]) => {
    if (!ended) {
      ended = true;
      wrapped.onerror?.({ message: TERMINATED_WHY, preventDefault: () => {} });
    }
    return Reflect.apply(terminate, worker, args);
  };
  worker.on("message", (data) => wrapped.onmessage?.({ data }));
  worker.on("error", (error) => {
    ended = true;
    const message = error instanceof Error ? error.message : String(error);
    wrapped.onerror?.({ message, preventDefault: () => {} });
  });
  worker.on("exit", (code) => {
    if (ended) return;
    ended = true;
    const message = `it exited (exit code ${code}): terminated by other code, or process.exit`;
    wrapped.onerror?.({ message, preventDefault: () => {} });
  });
  // Its handlers get what the backend's handlers read of a MessageEvent and an ErrorEvent.
  return wrapped as unknown as WrappedNodeWorker;
}
