/**
 * The code a worker of a threaded wasm state runs (see cpu/threaded_wasm_backend.ts), and the
 * layout of the control block it shares with the main thread.
 *
 * The worker is started from the source text of {@linkcode threadWorkerMain} (a Blob URL; on
 * Node.js, a `worker_threads` worker evaluating the text after a prelude that makes the Web
 * Worker globals it uses, cpu/_node_worker.ts), so that it needs no file, no permission and no
 * bundler support: the function must therefore refer to nothing outside itself but the globals
 * every worker has (`Atomics`, `WebAssembly`, `performance`, `postMessage`), and it uses no
 * Deno-only API, so the same text runs in a browser's worker.
 *
 * @module
 */

/**
 * The control block: i32 words (indices into an Int32Array over it), then the scalar blocks of
 * the step (base/scalars.ts) at byte {@linkcode CONTROL}`.SCALARS`, which the main thread writes
 * before it starts a step and every thread's kernel reads. The generation counter and the
 * pending count sit on separate 64-byte cache lines, since the main thread writes the one and
 * the workers the other.
 */
export const CONTROL = {
  /** Bumped by the main thread to start a job; workers wait on it. */
  GENERATION: 0,
  /** The job: one of the OP_ values. */
  OP: 1,
  /** Workers that have not finished the current job; the last one to finish notifies. */
  PENDING: 16,
  /**
   * Set to 1 by any thread whose slice of the gradients holds a NaN or ±Infinity (job
   * OP_NON_FINITE); the main thread clears it before the job.
   */
  NON_FINITE: 32,
  /**
   * Set to 1 by a worker whose job threw (a trap of the kernel): it leaves its loop, and the
   * main thread, seeing it once the job is done, refuses every later job.
   */
  FAULT: 40,
  /**
   * Bumped by a worker as it takes a job and after each chunk of it: the main thread, waiting,
   * tells a worker that stopped (terminated, or dead) from a slow one by this word standing
   * still (cpu/_thread_join.ts `STALL_MS`).
   */
  PROGRESS: 48,
  /**
   * Set by a worker as it dies while the state lives (0 while every one lives): DIED_THREW, its
   * program threw outside a kernel call; DIED_EXITED, its thread exited (on Node.js:
   * `process.exit` in it, or an error nothing caught), with the code in EXIT_CODE. It counts
   * the job it had taken, or one started that it had not taken, done first: the main thread
   * waiting on it sees this word at once, not after the stall bound.
   */
  DIED: 56,
  /** The exit code of a worker that set DIED to DIED_EXITED (written before DIED). */
  EXIT_CODE: 57,
  /** Byte offset of the scalar blocks (after the i32 words above, on cache lines of their own). */
  SCALARS: 256,
} as const;

/**
 * A worker's slot: i32 words (indices into an Int32Array over it), SLOT.BYTES bytes a thread
 * after the state's slots (cpu/threaded_wasm_backend.ts `SharedMap`), which only that worker
 * writes: whose failure the main thread finds in the control block (a stall, a trap, a death)
 * is then told by worker, each worker counted once.
 */
export const SLOT = {
  /** The generation of the last job the worker counted done (written before it does). */
  DONE: 0,
  /**
   * How the worker failed (0 while it has not): FAILED_JOB, or as `CONTROL.DIED` says
   * (DIED_THREW, DIED_EXITED); written before the control block's words that say so.
   */
  FAILED: 1,
  /** The exit code of a worker whose FAILED is DIED_EXITED (written before FAILED). */
  EXIT_CODE: 2,
  /** Bytes of a slot. */
  BYTES: 16,
} as const;

/** SLOT.FAILED: the worker's job threw (a trap of the kernel), as `CONTROL.FAULT` says. */
export const FAILED_JOB = 3;

/** CONTROL.DIED: a worker's program threw outside a kernel call, and it stopped. */
export const DIED_THREW = 1;
/** CONTROL.DIED: a worker's thread exited (code in CONTROL.EXIT_CODE). */
export const DIED_EXITED = 2;

/** Job: one optimizer step over the worker's slice. */
export const OP_STEP = 1;
/** Job: the block sums of the gradients' sum of squares, for the worker's blocks. */
export const OP_SUM_SQUARES = 2;
/** Job: leave the loop (the state is being disposed). */
export const OP_EXIT = 3;
/** Job: the non-finite check of the gradients of the worker's slice. */
export const OP_NON_FINITE = 4;

/** What a worker is sent once, at start. */
export interface ThreadWorkerInit {
  /** The shared kernel module's bytes (compiled in the worker). */
  bytes: Uint8Array;
  /** The state's shared memory. */
  memory: WebAssembly.Memory;
  /** Byte address of the control block. */
  control: number;
  /** Byte address of this worker's slot ({@linkcode SLOT}). */
  slot: number;
  /**
   * Byte addresses of the arena descriptor, the scalar blocks, the gradients, the block sums,
   * and this worker's scratch (8-bit states).
   */
  arena: number;
  scalars: number;
  grads: number;
  partials: number;
  scratch: number;
  /** Elements in all. */
  total: number;
  /** This worker's slice of the step, `[start, end)`, and of the reduction's blocks. */
  start: number;
  end: number;
  firstBlock: number;
  lastBlock: number;
  /**
   * Elements a job's call covers at most (a multiple of 256, so that chunks of an 8-bit slice
   * are whole blocks; sum-of-squares jobs cover `chunk / SUM_BLOCK` blocks, at least one): the
   * worker bumps `PROGRESS` after each.
   */
  chunk: number;
  /** Blocks of the reduction a sum-of-squares call covers at most. */
  chunkBlocks: number;
  /** Milliseconds to poll the generation after a job before sleeping on it. */
  spinMs: number;
  /** The values of CONTROL and the OP_ constants (the worker's source cannot import). */
  layout: typeof CONTROL;
  ops: { step: number; sumSquares: number; exit: number; nonFinite: number };
  /** The values of SLOT. */
  slotLayout: typeof SLOT;
  /** The values of DIED_THREW, DIED_EXITED and FAILED_JOB. */
  died: { threw: number; exited: number; job: number };
}

/**
 * The worker's program. Receives one {@linkcode ThreadWorkerInit} message, instantiates the
 * shared kernel on the state's memory, answers `{ ready: true }` (or `{ error }`, whatever part of
 * its start failed), then loops:
 * wait for the generation to change (polling for `spinMs`, then sleeping in
 * `Atomics.wait`), run the job
 * on its own slice in chunks, bumping the progress word as it takes the job and after each
 * chunk, decrement the pending count (the last one notifies the main thread), until the job is
 * OP_EXIT. It never returns to its event loop while the state lives. Should it die first (its
 * loop throws outside a kernel call; on Node.js, its thread exits, `process.exit` in it), it
 * sets `CONTROL.DIED` and counts done the job it owes (`onexit`, which Node.js's prelude calls).
 *
 * Stringified: it must not refer to anything outside its own body.
 */
export function threadWorkerMain(): void {
  // No async/await and no named inner function: an app's bundler may rewrite those into calls of
  // helpers of its own (`__async(…)` for an older target, `__name(…)` to keep names), which the
  // worker, given only this function's text, does not have.
  // deno-lint-ignore no-explicit-any
  const scope = globalThis as any;
  scope.onmessage = (event: MessageEvent) => {
    scope.onmessage = null;
    const init = event.data;
    WebAssembly.instantiate(init.bytes, { env: { memory: init.memory } }).then((result) => {
      // deno-lint-ignore no-explicit-any
      const k: any = result.instance.exports;
      const c = init.layout;
      const buffer = init.memory.buffer;
      const ints = new Int32Array(buffer, init.control, c.SCALARS / 4);
      const s = init.slotLayout;
      const slot = new Int32Array(buffer, init.slot, s.BYTES / 4);
      const { arena, scalars, grads, partials, total, scratch } = init;
      const { start, end, firstBlock, lastBlock, spinMs, chunk, chunkBlocks } = init;
      let seen = Atomics.load(ints, c.GENERATION);
      /** Whether it has taken a job it has not counted done; whether its loop has ended. */
      let busy = false;
      let stopped = false;
      // Called as it dies (its loop threw, below; on Node.js, as its thread exits, by the
      // prelude): says so, counting done the job it owes, so that the main thread waits no more.
      scope.onexit = (code?: number) => {
        if (stopped) return false;
        stopped = true;
        const kind = code === undefined ? init.died.threw : init.died.exited;
        Atomics.store(slot, s.EXIT_CODE, code === undefined ? 0 : code);
        Atomics.store(slot, s.FAILED, kind);
        Atomics.store(ints, c.EXIT_CODE, code === undefined ? 0 : code);
        Atomics.compareExchange(ints, c.DIED, 0, kind);
        // A job started that it had not taken yet is owed too (the main thread counted it).
        if (!busy && Atomics.load(ints, c.GENERATION) !== seen) {
          busy = Atomics.load(ints, c.OP) !== init.ops.exit;
        }
        if (busy) Atomics.sub(ints, c.PENDING, 1);
        Atomics.notify(ints, c.PENDING);
        return true;
      };
      scope.postMessage({ ready: true });
      for (;;) {
        let polls = 0;
        let deadline = 0;
        while (Atomics.load(ints, c.GENERATION) === seen) {
          if ((++polls & 1023) !== 0) continue;
          const now = performance.now();
          if (deadline === 0) deadline = now + spinMs;
          else if (now > deadline) Atomics.wait(ints, c.GENERATION, seen);
        }
        seen = Atomics.load(ints, c.GENERATION);
        const op = Atomics.load(ints, c.OP);
        if (op === init.ops.exit) break;
        busy = true;
        let failed = false;
        Atomics.add(ints, c.PROGRESS, 1);
        try {
          if (op === init.ops.step) {
            for (let lo = start; lo < end; lo += chunk) {
              k.step(arena, scalars, lo, Math.min(end, lo + chunk), scratch);
              Atomics.add(ints, c.PROGRESS, 1);
            }
          } else if (op === init.ops.sumSquares) {
            for (let b = firstBlock; b < lastBlock; b += chunkBlocks) {
              k.sumSquaresBlocks(grads, total, b, Math.min(lastBlock, b + chunkBlocks), partials);
              Atomics.add(ints, c.PROGRESS, 1);
            }
          } else if (op === init.ops.nonFinite) {
            for (let lo = start; lo < end; lo += chunk) {
              if (k.nonFinite(grads + lo * 4, Math.min(end, lo + chunk) - lo) !== 0) {
                Atomics.store(ints, c.NON_FINITE, 1);
              }
              Atomics.add(ints, c.PROGRESS, 1);
            }
          }
        } catch (error) {
          // Said before the job is counted done: the main thread, waiting on it, sees it then.
          failed = true;
          Atomics.store(slot, s.FAILED, init.died.job);
          Atomics.store(ints, c.FAULT, 1);
          scope.postMessage({ fault: String(error) });
        }
        busy = false;
        Atomics.store(slot, s.DONE, seen);
        if (Atomics.sub(ints, c.PENDING, 1) === 1) Atomics.notify(ints, c.PENDING);
        if (failed) break;
      }
      stopped = true;
      scope.close();
    }).catch((error) => {
      if (typeof scope.onexit === "function") {
        // Its loop threw outside a kernel call: it stops, saying so (later refusals say why).
        if (scope.onexit()) {
          scope.postMessage({ fault: `it stopped, its program having thrown ${String(error)}` });
          scope.close();
        }
        return;
      }
      // Its start failed (the module, or the views on the memory): said, not left unhandled (a
      // browser does not tell the page of a worker's unhandled rejection, which would leave
      // the state's init waiting for ever).
      scope.postMessage({ error: String(error) });
    });
  };
}

/** The worker's source text: {@linkcode threadWorkerMain}, called. */
export function threadWorkerSource(): string {
  return `(${threadWorkerMain.toString()})();\n`;
}
