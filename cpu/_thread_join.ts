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
import { CONTROL, DIED_THREW, FAILED_JOB, OP_EXIT, SLOT } from "./thread_worker.ts";

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
export const STALL_CHECK_MS = 100;

/** The error of a kernel worker that failed to start, `why` (and its `cause`, where one). */
export function startFailed(why: string, cause?: unknown): Error {
  return new Error(`A kernel worker failed to start: ${why}`, cause === undefined ? {} : { cause });
}

/**
 * A function that stops the workers (once), with `done` telling whether it ran. Made apart from
 * the backend's closures, so that the FinalizationRegistry holding it does not keep the backend
 * alive through a shared closure context. `ints`: the control block; `workers`: threads 1 on;
 * `slots`: the threads' slots (cpu/thread_worker.ts `SLOT`, thread 0's unused).
 */
export function releaser(ints: Int32Array, workers: Worker[], slots: Int32Array): Release {
  const release: Release = Object.assign(() => {
    if (release.done) return;
    release.done = true;
    Atomics.store(ints, CONTROL.OP, OP_EXIT);
    Atomics.add(ints, CONTROL.GENERATION, 1);
    Atomics.notify(ints, CONTROL.GENERATION);
    for (const worker of workers) worker.terminate();
  }, {
    done: false,
    fault: undefined,
    halfStepped: false,
    more: 0,
    reports: [],
    ints,
    slots,
    workers,
  });
  return release;
}

/**
 * Stops the workers (once); `fault` says why the state is refused, if a thread failed (of the
 * failures told, the root cause where it can be told: {@linkcode rankOf}; among alike ones, the
 * first told), `halfStepped` whether the first failure came as a job that writes the arena (the
 * step) ran, and `more` how many more threads failed too; `reports` holds each failure told.
 * `ints`, `slots`, `workers`: as {@linkcode releaser} was given them.
 */
export type Release = (() => void) & {
  done: boolean;
  fault: string | undefined;
  halfStepped: boolean;
  more: number;
  reports: Report[];
  readonly ints: Int32Array;
  readonly slots: Int32Array;
  readonly workers: readonly Worker[];
};

/**
 * One thread's failure, as told: `why`, its {@linkcode rankOf}, and `by`, the worker (or
 * {@linkcode MAIN}) whose it is, as its words or its slot in the control block say; `undefined`
 * for one found in the control block that no slot accounts for (its words written by other
 * code), which the first word of a worker not told yet tells again.
 */
interface Report {
  why: string;
  rank: number;
  by?: unknown;
}

/** Who a failure of the main thread's own share of a job is by ({@linkcode Report}). */
const MAIN = "main";

/**
 * How telling a reason is, from least to most: a stall (1: a worker stopped, or did not start,
 * no word saying why), a death told without its cause (2: terminated by other code, exited, an
 * error event with no message), a failure whose cause is yet to be told (3: its job threw, its
 * program threw, as its slot says, until its message names the error), and a cause (4: a trap or
 * an exception of a kernel or of a thread's program, an error event naming one, out of memory
 * among them). Of the failures of a state (or of its start), the most telling is shown: the
 * others may follow from it (a worker stalls or exits as another traps).
 */
export function rankOf(why: string): number {
  if (why.startsWith(STOPPED) || why.startsWith(NOT_READY)) return 1;
  if (why === TERMINATED_WHY || why === DIED_WHY || why.startsWith(EXITED)) return 2;
  if (why === JOB_THREW || why === THREW_WHY) return 3;
  return 4;
}

/**
 * Tells `release` of a failure, `why`: by the worker (or {@linkcode MAIN}) `by` (its words, or
 * its slot), or, `by` undefined, found in the control block with no slot accounting for it (put
 * at `at` of the failures told, where given). Each worker is counted once: its later words
 * replace its failure only where more telling, which then counts as told last (among alike
 * failures, the first told is shown); a worker's first word fills the first failure no worker
 * accounts for (the same failure, told again). Then `fault` is the most telling, `more` the count
 * of others.
 */
function tell(release: Release, why: string, by: unknown, at?: number): void {
  const reports = release.reports;
  const rank = rankOf(why);
  const own = by === undefined ? undefined : reports.find((r) => r.by === by) ??
    (by === MAIN ? undefined : reports.find((r) => r.by === undefined));
  if (own === undefined) reports.splice(at ?? reports.length, 0, { why, rank, by });
  else {
    own.by = by;
    if (rank > own.rank) {
      reports.splice(reports.indexOf(own), 1);
      reports.push({ why, rank, by });
    }
  }
  const shown = reports.reduce((best, r) => r.rank > best.rank ? r : best);
  release.fault = shown.why;
  release.more = reports.length - 1;
}

/**
 * Tells `release` of the failures the workers' slots say (their job threw, they died; with
 * `stall`, the reason of a stall, those that have not counted the current job done too), each
 * by its worker; returns whether any was told.
 */
function tellSlots(release: Release, stall: string | undefined): boolean {
  const { ints, slots, workers } = release;
  const generation = Atomics.load(ints, CONTROL.GENERATION);
  let told = false;
  for (let t = 1; t * SLOT_WORDS < slots.length && t <= workers.length; t++) {
    const at = t * SLOT_WORDS;
    const kind = Atomics.load(slots, at + SLOT.FAILED);
    const why = kind === FAILED_JOB
      ? JOB_THREW
      : kind !== 0
      ? diedKindWhy(kind, Atomics.load(slots, at + SLOT.EXIT_CODE))
      : stall !== undefined && Atomics.load(slots, at + SLOT.DONE) !== generation
      ? stall
      : undefined;
    if (why === undefined) continue;
    tell(release, why, workers[t - 1]);
    told = true;
  }
  return told;
}

/** Words of a slot (cpu/thread_worker.ts `SLOT`). */
const SLOT_WORDS = SLOT.BYTES / 4;

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
/** How the reason of a worker taken for stopped as it started (no word, no event) begins. */
export const NOT_READY = "it did not say it was ready";
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
  return died === 0 ? undefined : diedKindWhy(died, Atomics.load(ints, CONTROL.EXIT_CODE));
}

/** Why a worker died that said so as `kind` (`DIED_THREW`, `DIED_EXITED`), exiting with `code`. */
function diedKindWhy(kind: number, code: number): string {
  if (kind === DIED_THREW) return THREW_WHY;
  return `${EXITED}exit code ${code}): process.exit in it, or an error nothing caught`;
}

/**
 * Marks a state one of whose workers failed, `why` (found in the control block, or by a stall;
 * or, `main`, its main thread's own share of the job threw: told first), as a job that `writes`
 * the arena ran (or not: a reduction, or between steps): every later job is refused, saying so
 * (its workers run until `dispose`, which a failed worker's message, saying why, must not
 * precede). A worker's failure is told by the workers' slots, each failed (or, `why` a stall,
 * stalled) worker by its own ({@linkcode tellSlots}), or as `why` where none accounts for it;
 * the first failure says whether the state may be half stepped. Returns the error.
 */
export function failed(release: Release, why: string, writes: boolean, main?: boolean): Error {
  if (release.reports.length === 0) release.halfStepped = writes;
  if (main) tell(release, why, MAIN, 0);
  else if (!tellSlots(release, why.startsWith(STOPPED) ? why : undefined)) {
    tell(release, why, undefined);
  }
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
      if (!release.done) tell(release, TERMINATED_WHY, worker);
      return Reflect.apply(terminate, worker, args);
    };
    // (A word after dispose is not told: a disposed state keeps saying it was disposed.)
    worker.onmessage = (event) => {
      // (After the step in flight threw: later refusals say why.)
      const fault = event.data?.fault;
      if (!release.done && typeof fault === "string") tell(release, fault, worker);
    };
    worker.onerror = (event) => {
      event.preventDefault();
      if (release.done) return;
      const why = event.message;
      tell(release, typeof why === "string" && why !== "" ? why : DIED_WHY, worker);
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
        // (Each worker that has not counted the job done, by its slot: its words to come, a
        // trap as it was held, tell its failure again.)
        throw failed(release, stoppedWhy(stallMs, writes), writes);
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
