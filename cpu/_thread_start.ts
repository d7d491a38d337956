/**
 * How a threaded wasm state (cpu/threaded_wasm_backend.ts) starts its workers: as Web Workers
 * from a blob: URL of their source, or as Node.js's `worker_threads` from the source text, each
 * given its share and waited for until it says it is ready; then unreferenced, so that a script
 * that forgets `dispose` still exits.
 *
 * @module
 */
import { type ThreadWorkerInit, threadWorkerSource } from "./thread_worker.ts";
import {
  madeLive,
  NOT_READY,
  rankOf,
  STALL_CHECK_MS,
  startFailed,
  TERMINATED_WHY,
} from "./_thread_join.ts";
import { nodeWorkerThreads, startNodeWorker, type WrappedNodeWorker } from "./_node_worker.ts";

/**
 * Why a worker failed whose error event has no message: its script never ran. A browser says
 * nothing more to the page (its console names the policy).
 */
const WORKER_NOT_LOADED = "its script (a blob: URL) could not be loaded; in a browser, the " +
  "page's Content-Security-Policy must allow blob: in worker-src (or, without worker-src, in " +
  "script-src or default-src)";

/**
 * Why a starting worker that has not said it is ready, with no worker becoming ready for
 * `stallMs` milliseconds of waiting, is taken for stopped.
 */
function notReadyWhy(stallMs: number): string {
  return `${NOT_READY}, no worker becoming ready for ${stallMs / 1000} s; ` +
    "terminated, or killed (out of memory?)";
}

/**
 * The start of workers 0 to `count - 1`, as each says it is `ready` or `failed` (`ready`: even
 * after it said it was ready, as where it is terminated; else its failure after it is not told
 * here, but at the state's first step, as it says in the control block; a worker's later word
 * replaces its failure only where more telling, cpu/_thread_join.ts `rankOf`). `done` resolves once
 * every one is ready; rejects once every one has said and one failed, or none has become ready for
 * `stallMs` of waiting (a worker that stops outright as it starts, terminated or killed, sends no
 * message and fires no error event; waiting measured on the monotonic clock in intervals of at most
 * STALL_CHECK_MS each, as cpu/_thread_join.ts `join` does): with the root cause, as a step's
 * failure says it (the most telling failure; among alike ones, the first told; those yet to say
 * taken for stopped), the others counted. `stop` ends its timer.
 */
interface StartWatch {
  readonly done: Promise<void>;
  ready(t: number): void;
  failed(t: number, why: string, ready?: boolean): void;
  stop(): void;
}

/** A {@linkcode StartWatch} of `count` workers. */
function watchStart(count: number, stallMs: number): StartWatch {
  /** What each worker said: `true`, ready; its failure; `undefined`, nothing yet. */
  const said: (string | true | undefined)[] = Array.from({ length: count }, () => undefined);
  /** The workers failed, in the order told. */
  const order: number[] = [];
  let settle: (error?: Error) => void = () => {};
  const done = new Promise<void>((resolve, reject) => {
    settle = (error) => {
      clearInterval(timer);
      if (error === undefined) resolve();
      else reject(error);
    };
  });
  // (Where the start throws before it waits, no one does: its rejection is not left unhandled.)
  done.catch(() => {});
  let still = 0;
  let looked = performance.now();
  const timer = setInterval(() => {
    const now = performance.now();
    still += Math.min(now - looked, STALL_CHECK_MS);
    looked = now;
    if (still >= stallMs) settle(startError(said, order, notReadyWhy(stallMs)));
  }, STALL_CHECK_MS);
  const check = () => {
    if (said.includes(undefined)) return;
    settle(order.length === 0 ? undefined : startError(said, order));
  };
  check();
  return {
    done,
    ready: (t) => {
      if (said[t] !== undefined) return;
      said[t] = true;
      still = 0;
      check();
    },
    failed: (t, why, ready) => {
      const was = said[t];
      if (was === true ? !ready : typeof was === "string" && rankOf(why) <= rankOf(was)) return;
      said[t] = why;
      if (order.includes(t)) order.splice(order.indexOf(t), 1);
      order.push(t);
      check();
    },
    stop: () => clearInterval(timer),
  };
}

/**
 * The error of a start whose workers `order` failed, as `said`, those yet to say taken for
 * stopped (`stalled`, where given): the most telling (among alike ones, the first told), and
 * how many more workers failed too.
 */
function startError(said: (string | true | undefined)[], order: number[], stalled?: string): Error {
  const whys = order.map((t) => said[t] as string);
  if (stalled !== undefined) { for (const one of said) if (one === undefined) whys.push(stalled); }
  const why = whys.reduce((best, one) => rankOf(one) > rankOf(best) ? one : best);
  const more = whys.length - 1;
  return startFailed(
    more === 0 ? why : `${why}; ${more} more worker${more === 1 ? "" : "s"} failed too`,
  );
}

/**
 * Tells `watch` when `worker`, thread `t + 1`, says it is ready, or fails (its message, its
 * error event). Where other code calls its `terminate` (wrapped to say so: a terminated Web
 * Worker fires no event, and the start would wait for the stall bound; one stopped outright,
 * killed, still does; a `node:worker_threads` one's own `terminate`, wrapped, fires an error
 * event saying so), it fails, before or after it said it was ready (else the state would
 * start with it gone, and its first step wait for the stall bound: a terminated worker runs
 * nothing more, and writes no word in the control block, as one that exits does).
 */
function watchStarting(worker: Worker, t: number, watch: StartWatch): void {
  const terminate = worker.terminate;
  // (Its arguments passed on and its value returned, as cpu/_thread_join.ts `watchWorkers`'s.)
  worker.terminate = (...args: unknown[]) => {
    watch.failed(t, TERMINATED_WHY, true);
    return Reflect.apply(terminate, worker, args);
  };
  worker.onmessage = (event) => {
    if (event.data?.ready) watch.ready(t);
    else watch.failed(t, String(event.data?.error));
  };
  worker.onerror = (event) => {
    event.preventDefault();
    // A script that could not be loaded (a Content-Security-Policy without blob:) fires a
    // plain Event, with no message.
    const why = typeof event.message === "string" && event.message !== ""
      ? event.message
      : WORKER_NOT_LOADED;
    // (A node:worker_threads worker's own terminate, wrapped, says so by an error event.)
    watch.failed(t, why, why === TERMINATED_WHY);
  };
}

/**
 * Starts threads 1 to `threads - 1` (the main thread is thread 0) as workers, pushed onto
 * `workers` as they are made, thread `t` given `init(t)`; resolves when every one is ready,
 * rejects when one fails, with the root cause once every one has said (or none becomes ready
 * for `stallMs`: {@linkcode watchStart}); at once, where one is terminated as it is made.
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
  const watch = watchStart(threads - 1, stallMs);
  try {
    for (let t = 1; t < threads; t++) {
      const worker = node === undefined
        ? refusedAs(() => madeLive(Worker, [url, { type: "module" }]))
        : startNodeWorker(node, threadWorkerSource());
      // (Terminated as it was made: see madeLive.)
      if (worker === undefined) throw startFailed(TERMINATED_WHY);
      workers.push(worker);
      watchStarting(worker, t - 1, watch);
      const message = init(t);
      refusedAs(() => worker.postMessage(message));
    }
    await watch.done;
  } finally {
    watch.stop();
    if (url !== "") URL.revokeObjectURL(url);
  }
  for (const worker of workers) unrefWorker(worker);
}

/**
 * What `make` returns (making a Web Worker, or sending it its start); where it throws (a
 * browser's policy refusing the worker, a SecurityError; a memory that cannot be sent, a
 * DataCloneError), an Error saying that a kernel worker failed to start, naming the error (its
 * cause), and for a SecurityError how a page's policy allows the worker.
 */
function refusedAs<T>(make: () => T): T {
  try {
    return make();
  } catch (cause) {
    const policy = (cause as { name?: unknown } | null)?.name === "SecurityError"
      ? ` (${WORKER_NOT_LOADED})`
      : "";
    throw startFailed(`${String(cause)}${policy}`, cause);
  }
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
