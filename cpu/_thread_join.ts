/**
 * How the main thread of a threaded wasm state (cpu/threaded_wasm_backend.ts) waits for its
 * workers' share of a job, and what it does when a worker fails: its job threw (the fault word),
 * it died saying so (the died word: its loop threw, or its thread exited, running the exit hook
 * that writes it), it died between steps (an error event), or it stopped outright in the middle
 * of one (terminated, or killed: no word, no event that could reach a main thread waiting
 * synchronously: the progress word stands still).
 *
 * @module
 */
import { CONTROL, DIED_THREW, OP_EXIT } from "./thread_worker.ts";

/**
 * How long the main thread polls for the workers to finish before sleeping (where it may).
 * Short: on a machine with more runnable threads than cores, a polling main thread would keep
 * a preempted worker off the core it needs (measured: median steps 10× slower under load).
 */
const MAIN_SPIN_MS = 0.05;
/**
 * How long the main thread waits, with no worker making progress (no chunk finished, no job
 * taken) and a job still pending, before it declares a worker stopped (terminated, or killed
 * outright, its isolate out of memory): the step then throws as after a worker's fault. 10 s
 * for a chunk of 64K elements is a rate of 6.5K elements (about 130 KB of arena) a second:
 * slower than a thread stepping an arena swapped out to a disk, so a live worker, however
 * slow or preempted, is not taken for dead. Measured on the monotonic clock (performance.now)
 * while the main thread waits, in intervals of at most STALL_CHECK_MS each (a process or
 * machine suspended, or the main thread paused in a debugger, counts one interval, not its
 * length).
 */
export const STALL_MS = 10_000;
/** How often the waiting main thread looks at the progress word (its timed wait's timeout). */
const STALL_CHECK_MS = 100;

/**
 * Why a starting worker that has not said it is ready, with no worker becoming ready for
 * `stallMs` milliseconds of waiting, is taken for stopped.
 */
function notReadyWhy(stallMs: number): string {
  return `it did not say it was ready, no worker becoming ready for ${stallMs / 1000} s; ` +
    "terminated, or killed (out of memory?)";
}

/** The error of a kernel worker that failed to start, `why` (and its `cause`, where one). */
export function startFailed(why: string, cause?: unknown): Error {
  return new Error(`A kernel worker failed to start: ${why}`, cause === undefined ? {} : { cause });
}

/**
 * Resolves when every one of `ready` has; rejects with the first one's error, or once none has
 * resolved for `stallMs` of waiting (a worker that stops outright as it starts, terminated or
 * killed, sends no message and fires no error event). Waiting is measured on the monotonic clock
 * in intervals of at most STALL_CHECK_MS each (a suspended process or busy main thread counts
 * one), as {@linkcode join} does.
 */
export function allReady(ready: Promise<void>[], stallMs: number): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    let left = ready.length;
    let still = 0;
    let looked = performance.now();
    const timer = setInterval(() => {
      const now = performance.now();
      still += Math.min(now - looked, STALL_CHECK_MS);
      looked = now;
      if (still >= stallMs) {
        clearInterval(timer);
        reject(startFailed(notReadyWhy(stallMs)));
      }
    }, STALL_CHECK_MS);
    if (left === 0) {
      clearInterval(timer);
      resolve();
    }
    for (const one of ready) {
      one.then(() => {
        still = 0;
        if (--left === 0) {
          clearInterval(timer);
          resolve();
        }
      }, (error) => {
        clearInterval(timer);
        reject(error);
      });
    }
  });
}

/**
 * A function that stops the workers (once), with `done` telling whether it ran. Made apart from
 * the backend's closures, so that the FinalizationRegistry holding it does not keep the backend
 * alive through a shared closure context.
 */
export function releaser(ints: Int32Array, workers: Worker[]): Release {
  const release: Release = Object.assign(() => {
    if (release.done) return;
    release.done = true;
    Atomics.store(ints, CONTROL.OP, OP_EXIT);
    Atomics.add(ints, CONTROL.GENERATION, 1);
    Atomics.notify(ints, CONTROL.GENERATION);
    for (const worker of workers) worker.terminate();
  }, { done: false, fault: undefined, halfStepped: false, more: 0, reports: [] });
  return release;
}

/**
 * Stops the workers (once); `fault` says why the state is refused, if a thread failed (of the
 * failures told, the root cause where it can be told: {@linkcode rankOf}; among alike ones, the
 * first told), `halfStepped` whether the first failure came as a job that writes the arena (the
 * step) ran, and `more` how many more threads failed too; `reports` holds each failure told.
 */
export type Release = (() => void) & {
  done: boolean;
  fault: string | undefined;
  halfStepped: boolean;
  more: number;
  reports: Report[];
};

/**
 * One thread's failure, as told: `why`, its {@linkcode rankOf}, and `by`, the worker (or
 * {@linkcode MAIN}) whose it is; `undefined` for one the main thread found in the control block
 * (its job threw, it died) or by a stall, which the first word of a worker on the channel it
 * `awaits` (its message, or an event: an error event, its `terminate` called; `any`: either, a
 * stall no trapped worker can account for) tells again.
 */
interface Report {
  why: string;
  rank: number;
  by?: unknown;
  awaits?: "message" | "event" | "any";
}

/** Who a failure of the main thread's own share of a job is by ({@linkcode Report}). */
const MAIN = "main";

/**
 * How telling a reason is, from least to most: a stall (1: a worker stopped, no word saying
 * why), a death told without its cause (2: terminated by other code, exited, an error event with
 * no message), and a cause (3: a trap or an exception of a kernel or of a thread's program, an
 * error event naming one, out of memory among them). Of the failures of a state, the most
 * telling is shown: the others may follow from it (a worker stalls or exits as another traps).
 */
function rankOf(why: string): number {
  if (why.startsWith(STOPPED)) return 1;
  if (why === TERMINATED_WHY || why === DIED_WHY || why.startsWith(EXITED)) return 2;
  return 3;
}

/**
 * Tells `release` of a failure, `why`: by the worker (or {@linkcode MAIN}) `by`, on `channel`
 * (its message, or an event), or, `by` undefined, found in the control block or by a stall (put
 * at `at` of the failures told, where given). A worker's first word fills the first failure found
 * that awaits its channel (the same failure, told again), its words replacing the placeholder's
 * ({@linkcode JOB_THREW}, {@linkcode THREW_WHY}) or less telling ones; its later words replace
 * its own only where more telling. Then `fault` is the most telling, `more` the count of others.
 */
function tell(
  release: Release,
  why: string,
  by: unknown,
  channel: "message" | "event" | "any",
  at?: number,
): void {
  const reports = release.reports;
  const rank = rankOf(why);
  const own = by === undefined ? undefined : reports.find((r) => r.by === by);
  const found = by === undefined || by === MAIN || own !== undefined
    ? undefined
    : reports.find((r) => r.by === undefined && (r.awaits === channel || r.awaits === "any"));
  const told = own ?? found;
  if (told === undefined) {
    const report = by === undefined ? { why, rank, awaits: channel } : { why, rank, by };
    reports.splice(at ?? reports.length, 0, report);
  } else {
    told.by = by;
    const placeholder = found !== undefined && (told.why === JOB_THREW || told.why === THREW_WHY);
    if (rank > told.rank || (placeholder && rank === told.rank)) Object.assign(told, { why, rank });
  }
  const shown = reports.reduce((best, r) => r.rank > best.rank ? r : best);
  release.fault = shown.why;
  release.more = reports.length - 1;
}

/**
 * How the reason begins where the main thread's share of a job threw, the workers' shares
 * done or not waited for: followed by the job and the error.
 */
const MAIN_SHARE_THREW = "its own share of ";

/**
 * The error of a state whose worker failed (its job threw, or it died), or whose main thread's
 * share of a job threw ({@linkcode MAIN_SHARE_THREW}), as `release` says: where the failure
 * came in the step, the arena may be half stepped, and a checkpoint saved now could hold that
 * (`saveState` and init's option `from` refuse it: {@linkcode halfStepWhy});
 * where it came in a pass that only reads (the gradients' sum of squares, the non-finite
 * check) or between steps, nothing was written, and the state can be saved. Either way the
 * state takes no more steps (its workers are not all there).
 */
export function faultError(release: Release): Error {
  const { who, why } = failure(release);
  const what = release.halfStepped
    ? "; the state may be half stepped and takes no more steps: load a checkpoint saved " +
      "before (loadState) to go on (saveState and init's option from refuse this state, " +
      "which could hold part of the step)"
    : " with nothing of the state being written: it is as its last step left it, but takes " +
      "no more steps: save it (saveState) and load that checkpoint (loadState) to go on";
  const whose = `${who[0].toUpperCase()}${who.slice(1)} of this threaded optimizer state`;
  return new Error(`${whose} failed (${why})${what}`);
}

/**
 * Who failed, as `release` says (`the main thread`, its own share of a job having thrown:
 * {@linkcode MAIN_SHARE_THREW}; else `a kernel worker`), and why (its reason, and how many more
 * workers failed too): the words of {@linkcode faultError} and {@linkcode halfStepWhy}.
 */
function failure(release: Release): { who: string; why: string } {
  const why = String(release.fault) + moreFailed(release);
  return { who: why.startsWith(MAIN_SHARE_THREW) ? "the main thread" : "a kernel worker", why };
}

/**
 * How many more workers failed besides the thread whose reason is shown, in words (after it);
 * "" where none. (Not "after it": their reports can arrive in another order than they failed.)
 */
function moreFailed(release: Release): string {
  const more = release.more;
  return more === 0 ? "" : `; ${more} more worker${more === 1 ? "" : "s"} failed too`;
}

/**
 * Why a threaded state may hold part of a step (its step failed half way: a worker failed, or
 * the main thread's own share threw, as the step ran), in words, e.g. `a kernel worker failed
 * (it stopped: …)`; `undefined` where it holds none (no failure, or one in a pass that only
 * reads the gradients, or between steps: the state is as its last step left it).
 */
export function halfStepWhy(release: Release): string | undefined {
  if (release.fault === undefined || !release.halfStepped) return undefined;
  const { who, why } = failure(release);
  return `${who} failed (${why})`;
}

/**
 * What to throw after the main thread's share of a job threw `error` (a kernel trap, or the
 * stack overflowing as the kernel or the wait was called) while the workers were at theirs, or
 * the wait threw (a worker failed: `error` as is): first waits for them (`wait`), so that none is
 * still in the job as the error reaches the caller, who may read the state or step it again. A
 * job that `writes` the arena (the step) is then half done: the state is refused as after a
 * worker's fault ({@linkcode failed}); a reduction's error is thrown as is, unless the workers
 * could not be waited for (the state, intact, is then refused saying so).
 */
export function ownShareThrew(
  error: unknown,
  writes: boolean,
  ints: Int32Array,
  release: Release,
  wait: () => void,
): unknown {
  // (The wait's own error: a worker failed, and the state is refused.)
  if (release.fault !== undefined) return error;
  try {
    wait();
  } catch {
    // a worker failed too (release.fault says why), or the wait itself could not run
  }
  const settled = release.fault === undefined && Atomics.load(ints, CONTROL.PENDING) === 0;
  if (settled && !writes) return error;
  const job = writes ? "the step" : "a pass reading the gradients";
  // (Told first: it threw before the wait found any worker's failure.)
  return failed(release, `${MAIN_SHARE_THREW}${job} threw ${String(error)}`, writes, true);
}

/**
 * Why a worker that made no progress for `stallMs` milliseconds at a job that `writes` the arena
 * (the step), or only reads the gradients, is taken for stopped.
 */
function stoppedWhy(stallMs: number, writes: boolean): string {
  const share = writes ? "the step" : "a pass reading the gradients (which writes nothing)";
  return `${STOPPED} on its share of ${share} for ${stallMs / 1000} s; ` +
    "terminated, or killed (out of memory?)";
}

/** How the reason of a worker taken for stopped by a stall ({@linkcode stoppedWhy}) begins. */
const STOPPED = "it stopped: no progress";
/** How the reason of a worker that exited begins ({@linkcode diedWhy}; on Node.js, its event). */
const EXITED = "it exited (";
/** Why a worker died whose error event has no message. */
const DIED_WHY = "it died";
/** Why a worker whose job threw is taken for failed, until its own message says more. */
const JOB_THREW = "its job threw";
/** Why a worker whose loop threw outside a kernel call is, until its own message says more. */
const THREW_WHY = "it stopped: its program threw outside a kernel call";

/**
 * Why a worker died, as it said in `ints`' control block (its `DIED` word), or `undefined` while
 * every worker lives.
 */
export function diedWhy(ints: Int32Array): string | undefined {
  const died = Atomics.load(ints, CONTROL.DIED);
  if (died === 0) return undefined;
  if (died === DIED_THREW) return THREW_WHY;
  const code = Atomics.load(ints, CONTROL.EXIT_CODE);
  return `${EXITED}exit code ${code}): process.exit in it, or an error nothing caught`;
}

/**
 * Marks a state one of whose workers failed, `why` (found in the control block, or by a stall;
 * or, `main`, its main thread's own share of the job threw: told first), as a job that `writes`
 * the arena ran (or not: a reduction, or between steps): every later job is refused, saying so
 * (its workers run until `dispose`, which a failed worker's message, saying why, must not
 * precede). Told as {@linkcode tell} says; the first failure says whether the state may be half
 * stepped. `anyWord`: a stall that the first word of a worker not told yet tells again, on either
 * channel (its message or an event). Returns the error.
 */
export function failed(
  release: Release,
  why: string,
  writes: boolean,
  main?: boolean,
  anyWord?: boolean,
): Error {
  if (release.reports.length === 0) release.halfStepped = writes;
  const awaits = anyWord ? "any" : why === JOB_THREW || why === THREW_WHY ? "message" : "event";
  if (main) tell(release, why, MAIN, awaits, 0);
  else tell(release, why, undefined, awaits);
  return faultError(release);
}

/**
 * Why a worker whose `terminate` other code called is taken for dead, at once: a terminated Web
 * Worker fires no event, and a `node:worker_threads` one's exit event comes later (a step
 * started before it would wait for the stall bound).
 */
export const TERMINATED_WHY = "it was terminated by other code (its terminate() called)";

/**
 * A new `Class(...args)` (a worker), made through a subclass that notes its `terminate` called
 * as it is made (by a subclass's constructor, or a platform that ends a worker at once: before
 * that could be wrapped to say so, and a terminated Web Worker fires no event), then given back
 * its class's prototype; `undefined` where it was terminated so (the caller's start then fails at
 * once, as for a worker terminated as it starts: {@linkcode startFailed}, `TERMINATED_WHY`).
 * A `Class` with no `prototype` of its own (a bound function) is called as it is, and the object
 * its constructor returns in place of the one made (a polyfill's function returning a Worker)
 * is left as it is: their terminate as they are made is not noted.
 */
export function madeLive<W extends { terminate(): unknown }, A extends unknown[]>(
  Class: new (...args: A) => W,
  args: A,
): W | undefined {
  const prototype: unknown = Object.hasOwn(Class, "prototype") ? Class.prototype : undefined;
  if (typeof prototype !== "object" || prototype === null) return new Class(...args);
  let terminated = false;
  const Noting = class extends (Class as new (...args: A) => { terminate(): unknown }) {
    override terminate(...rest: unknown[]): unknown {
      terminated = true;
      return Reflect.apply(super.terminate, this, rest);
    }
  };
  const made = new Noting(...args) as W;
  if (Object.getPrototypeOf(made) === Noting.prototype) Object.setPrototypeOf(made, prototype);
  return terminated ? undefined : made;
}

/**
 * Watches the started workers: a worker that failed says why (a message), or dies (an error
 * event, delivered between steps), or is terminated by other code than `release` (its
 * `terminate`, wrapped, says so at once): the state is then refused as {@linkcode failed} says,
 * each worker's failure told ({@linkcode tell}: the most telling shown, the others counted).
 */
export function watchWorkers(workers: Worker[], release: Release): void {
  for (const worker of workers) {
    const terminate = worker.terminate;
    // (Its arguments passed on and its value returned, as a Worker of a polyfill may take or
    // return some.)
    worker.terminate = (...args: unknown[]) => {
      if (!release.done) tell(release, TERMINATED_WHY, worker, "event");
      return Reflect.apply(terminate, worker, args);
    };
    // (A word after dispose is not told: a disposed state keeps saying it was disposed.)
    worker.onmessage = (event) => {
      // (After the step in flight threw: later refusals say why.)
      const fault = event.data?.fault;
      if (!release.done && typeof fault === "string") tell(release, fault, worker, "message");
    };
    worker.onerror = (event) => {
      event.preventDefault();
      if (release.done) return;
      const why = event.message;
      tell(release, typeof why === "string" && why !== "" ? why : DIED_WHY, worker, "event");
    };
  }
}

/**
 * Waits until every worker has finished the job started on `ints`' control block; throws if one
 * failed at it, or died (saying so in the control block, as it counted the job done; or, died
 * as the job began, without counting it: found once the progress word stands still), or
 * stopped with no word: the progress word stood still for `stallMs` of waiting (intervals
 * counted at most STALL_CHECK_MS each). Polls first for MAIN_SPIN_MS, then (where `canBlock`)
 * sleeps in a timed `Atomics.wait`, which costs what an untimed one does; else (a browser's main
 * thread) polls on, reading the clock every 1024 polls. Allocates nothing. `writes`: whether
 * the job writes the arena (the step), which a failure's error says ({@linkcode failed}).
 */
export function join(
  ints: Int32Array,
  release: Release,
  canBlock: boolean,
  stallMs: number,
  writes: boolean,
): void {
  let polls = 0;
  let spinEnd = 0;
  let progress = 0;
  let looked = 0;
  let still = 0;
  for (;;) {
    const pending = Atomics.load(ints, CONTROL.PENDING);
    if (pending === 0) {
      if (Atomics.load(ints, CONTROL.FAULT) !== 0) throw failed(release, JOB_THREW, writes);
      const why = diedWhy(ints);
      if (why === undefined) return;
      throw failed(release, why, writes);
    }
    if ((++polls & 1023) !== 0) continue;
    const now = performance.now();
    if (spinEnd === 0) {
      spinEnd = now + MAIN_SPIN_MS;
      progress = Atomics.load(ints, CONTROL.PROGRESS);
      looked = now;
      continue;
    }
    if (now < spinEnd) continue;
    const moved = Atomics.load(ints, CONTROL.PROGRESS);
    if (moved !== progress) {
      progress = moved;
      still = 0;
    } else {
      // A worker that died as the job began (after the check before it, before it was
      // started) said so without counting it done: the others are done, its share never will.
      const why = diedWhy(ints);
      if (why !== undefined) throw failed(release, why, writes);
      if ((still += Math.min(now - looked, STALL_CHECK_MS)) >= stallMs) {
        // No worker that counted the job done had trapped (the fault word clear): a trap's
        // message to come is a stalled worker's own (held, then trapping), told again.
        const trapped = Atomics.load(ints, CONTROL.FAULT) !== 0;
        throw failed(release, stoppedWhy(stallMs, writes), writes, false, !trapped);
      }
    }
    looked = now;
    if (canBlock) Atomics.wait(ints, CONTROL.PENDING, pending, STALL_CHECK_MS);
  }
}

/**
 * Whether this thread may block in `Atomics.wait` (a browser's main thread may not: it throws
 * a TypeError before looking at the value, which the mismatched value below makes harmless
 * elsewhere).
 */
export function mayBlock(ints: Int32Array): boolean {
  try {
    Atomics.wait(ints, CONTROL.PENDING, Atomics.load(ints, CONTROL.PENDING) + 1, 0);
    return true;
  } catch {
    return false;
  }
}
