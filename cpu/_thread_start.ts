/**
 * How a threaded wasm state (cpu/threaded_wasm_backend.ts) starts its workers: as Web Workers
 * from a blob: URL of their source, or as Node.js's `worker_threads` from the source text, each
 * given its share and waited for until it says it is ready; then unreferenced, so that a script
 * that forgets `dispose` still exits.
 *
 * @module
 */
import { type ThreadWorkerInit, threadWorkerSource } from "./thread_worker.ts";
import { allReady, madeLive, startFailed, TERMINATED_WHY } from "./_thread_join.ts";
import { nodeWorkerThreads, startNodeWorker, type WrappedNodeWorker } from "./_node_worker.ts";

/**
 * Why a worker failed whose error event has no message: its script never ran. A browser says
 * nothing more to the page (its console names the policy).
 */
const WORKER_NOT_LOADED = "its script (a blob: URL) could not be loaded; in a browser, the " +
  "page's Content-Security-Policy must allow blob: in worker-src (or, without worker-src, in " +
  "script-src or default-src)";

/**
 * Resolves when `worker` says it is ready; rejects with its error. Where other code calls its
 * `terminate` (wrapped to say so: a terminated Web Worker fires no event, and the start would
 * wait for the stall bound; one stopped outright, killed, still does; a `node:worker_threads`
 * one's own `terminate`, wrapped, fires an error event saying so), calls `terminated` with the
 * error, at once, before or after it said it was ready (else the state would start with it gone,
 * and its first step wait for the stall bound: a terminated worker runs nothing more, and writes
 * no word in the control block, as one that exits does).
 */
function workerReady(worker: Worker, terminated: (error: Error) => void): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    const terminate = worker.terminate;
    // (Its arguments passed on and its value returned, as cpu/_thread_join.ts `watchWorkers`'s.)
    worker.terminate = (...args: unknown[]) => {
      const error = startFailed(TERMINATED_WHY);
      reject(error);
      terminated(error);
      return Reflect.apply(terminate, worker, args);
    };
    worker.onmessage = (event) => {
      if (event.data?.ready) resolve();
      else reject(startFailed(String(event.data?.error)));
    };
    worker.onerror = (event) => {
      event.preventDefault();
      // A script that could not be loaded (a Content-Security-Policy without blob:) fires a
      // plain Event, with no message.
      const why = typeof event.message === "string" && event.message !== ""
        ? event.message
        : WORKER_NOT_LOADED;
      const error = startFailed(why);
      reject(error);
      if (why === TERMINATED_WHY) terminated(error);
    };
  });
}

/**
 * Starts threads 1 to `threads - 1` (the main thread is thread 0) as workers, pushed onto
 * `workers` as they are made, thread `t` given `init(t)`; resolves when every one is ready,
 * rejects when one fails, or none becomes ready for `stallMs` (cpu/_thread_join.ts `allReady`).
 */
export async function startWorkers(
  workers: Worker[],
  threads: number,
  stallMs: number,
  init: (t: number) => ThreadWorkerInit,
): Promise<void> {
  // Node.js: worker_threads, from the source text (it loads no blob: URL).
  const node = nodeWorkerThreads();
  const url = node === undefined
    ? URL.createObjectURL(new Blob([threadWorkerSource()], { type: "text/javascript" }))
    : "";
  // Rejected where other code terminates a worker as the state starts, ready or not (and by
  // `release` after: then no one waits for it).
  let terminated: (error: Error) => void = () => {};
  const stopped = new Promise<never>((_, reject) => terminated = reject);
  stopped.catch(() => {});
  try {
    const ready: Promise<void>[] = [];
    for (let t = 1; t < threads; t++) {
      const worker = node === undefined
        ? madeLive(Worker, [url, { type: "module" }])
        : startNodeWorker(node, threadWorkerSource());
      // (Terminated as it was made: see madeLive.)
      if (worker === undefined) throw startFailed(TERMINATED_WHY);
      workers.push(worker);
      const one = workerReady(worker, terminated);
      // (Where a later worker's start throws, no one waits for it: its rejection as `release`
      // terminates it is not left unhandled.)
      one.catch(() => {});
      ready.push(one);
      worker.postMessage(init(t));
    }
    await Promise.race([allReady(ready, stallMs), stopped]);
  } finally {
    if (url !== "") URL.revokeObjectURL(url);
  }
  for (const worker of workers) unrefWorker(worker);
}

/**
 * Deno keeps a process alive while a worker's message channel is referenced; `node:worker_
 * threads`' `unref()` is built on a hook of Deno's Worker class (a symbol-keyed method taking
 * `false`), looked for along the worker's prototype chain (a subclass of Worker, an app's or a
 * stand-in, does not hold it itself). Calling it lets a script that forgets `dispose` still
 * exit. On Node.js, the wrapped `worker_threads` worker's own `unref()` does the same. Returns
 * whether it was found; elsewhere (browsers) workers end with the page anyway.
 */
function unrefWorker(worker: Worker): boolean {
  const unref = (worker as Partial<WrappedNodeWorker>).unref;
  if (typeof unref === "function") {
    unref.call(worker);
    return true;
  }
  if (typeof (globalThis as { Deno?: unknown }).Deno !== "object") return false;
  try {
    for (let proto = Object.getPrototypeOf(worker); proto !== null && proto !== Object.prototype;) {
      for (const key of Object.getOwnPropertySymbols(proto)) {
        const hook = Object.getOwnPropertyDescriptor(proto, key)?.value;
        if (key.description === undefined && typeof hook === "function" && hook.length === 1) {
          hook.call(worker, false);
          return true;
        }
      }
      proto = Object.getPrototypeOf(proto);
    }
  } catch {
    // not this Deno's shape: the worker stays referenced until dispose
  }
  return false;
}
