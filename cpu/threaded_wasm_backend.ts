/**
 * The wasm backend on several threads (option `threads`): the arena lives in one shared
 * `WebAssembly.Memory`; the main thread and `threads - 1` workers each run an instance of the
 * kernel built to import that memory (cpu/kernels_wasm.generated.ts, `shared` build), and each
 * steps its own slice of the arena.
 *
 * Memory map (bytes): `[0, 64 KiB)` the module's static data; at 64 KiB the control block
 * (cpu/thread_worker.ts `CONTROL`, the step's scalar blocks embedded), then a slot per thread
 * (`SLOT`: which worker finished a job, and which failed and how), then the f64 block sums
 * of the reduction, then (8-bit states) a 2 KiB scratch per thread, then the arena descriptor and
 * the arena, 64-byte aligned. The memory is sized once (initial = maximum) and never grows.
 *
 * A step stays synchronous: the state has written the step's scalars into the control block,
 * the main thread sets the pending count, bumps the generation and notifies the workers, steps its own slice,
 * then polls the pending count (and sleeps on it with `Atomics.wait` where the thread may block:
 * not a browser's main thread, which only polls) until every worker is done. Slices are cut at
 * multiples of 16 elements (64 bytes: no cache line is written by two threads), or of 256 with
 * 8-bit moments (a block: its codes and scale are encoded by one thread). Since each element's
 * update depends on that element only (with 8-bit moments, on its block only), the result is
 * bit-identical to one thread's.
 *
 * The non-finite check (`nonFinite` without clipping) runs on every thread, each on its slice,
 * any finding setting one flag of the control block; copied-in gradients are checked on the
 * main thread as they are copied (cpu/cpu_backend.ts `loadGradsChecked`).
 *
 * The gradient sum of squares (clipping) is defined blockwise (blocks of
 * SUM_BLOCK elements, block sums added in order, see assembly/index.ts): each thread writes the
 * sums of its blocks, and the main thread adds them in block order, the same bits as the
 * single-threaded kernel's.
 *
 * A worker whose job throws (a trap) still counts it done, having set the control block's fault
 * word, which the main thread reads once the job is done: that step throws, and the state
 * refuses every later one (as after a worker's error event, between steps, or a worker's
 * `terminate` called by other code), its error saying whether the state may be half stepped
 * (the failure came in the step's update: `saveState` and init's option `from` then refuse it,
 * the backend's `halfStepped` saying why) or is intact (in a pass that only reads the gradients,
 * the sum of squares or the non-finite check, or between steps: it can be saved and loaded).
 * Where several threads fail, the root cause is shown where it can be told (a trap or an
 * exception, out of memory among them, before a death told without its cause, before a stall),
 * the first told among alike ones, and the others counted.
 *
 * The main thread's own share of a job that throws (a trap, or the stack overflowing as the kernel
 * or the wait is called) waits for the workers' shares before its error is thrown: where the job
 * was the step, the state, half stepped, then refuses every later step as after a worker's fault;
 * the reductions change nothing, and their error is thrown as is (as one thread's would be).
 *
 * A worker that dies while it can still run code (its loop throws outside a kernel call; on
 * Node.js, its thread exits: `process.exit` in it) says so in the control block's died word,
 * counting done the job it owed: the step throws as soon as the other workers are done, and
 * every later step at once (cpu/thread_worker.ts `CONTROL.DIED`).
 *
 * A worker that stops outright (terminated, or its isolate killed: out of memory) writes nothing,
 * and no event reaches a main thread waiting synchronously. So a worker runs its share in chunks
 * (CHUNK elements), bumping the control block's progress word as it takes the job and after each
 * chunk, and the main thread, waiting (a timed `Atomics.wait`, which costs what an untimed one
 * does, or polling on a browser's main thread), looks at that word every 100 ms: when it has
 * stood still for 10 s of waiting with a job still pending, the step throws as after a fault. A
 * live worker, however slow, finishes a chunk well within that (cpu/_thread_join.ts `join`,
 * `STALL_MS`). Likewise while the workers start: a worker that stops before it says it is ready
 * fires no event, so `init` rejects once no worker has become ready for that bound, and
 * terminates the others; one whose `terminate` other code calls (ready or not), wrapped as
 * between steps, fails the start, which rejects once every other worker has said it is ready or
 * failed, with the root cause, as a step's failure says it (cpu/_thread_start.ts `watchStart`).
 *
 * @module
 */
import type { ArenaLayout } from "../base/arena.ts";
import { Q8_BLOCK } from "../base/q8.ts";
import { BLOCK_BYTES, blockCount } from "../base/scalars.ts";
import { blockViews, CpuBackend } from "./cpu_backend.ts";
import { SUM_BLOCK } from "./js_backend.ts";
import {
  CONTROL,
  DIED_EXITED,
  DIED_THREW,
  FAILED_JOB,
  OP_EXIT,
  OP_NON_FINITE,
  OP_STEP,
  OP_SUM_SQUARES,
  SLOT,
  type ThreadWorkerInit,
} from "./thread_worker.ts";
import { halfStepWhy, releaser, STALL_MS, watchWorkers } from "./_thread_join.ts";
import { blockBounds, sliceBounds, type Team, teamKernels } from "./_thread_jobs.ts";
import { nodeWorkersDenied, nodeWorkerThreads } from "./_node_worker.ts";
import { startWorkers } from "./_thread_start.ts";
import {
  checkWasmCapacity,
  headerBytes,
  type KernelExports,
  PAGE_BYTES,
  placeArena,
  scratchBytes,
  sharedKernelBytes,
} from "./wasm_backend.ts";

/**
 * How long a worker polls for the next job before sleeping in `Atomics.wait` (as OpenMP's
 * default spin, a fraction of a millisecond): back-to-back steps find it awake, while a training
 * loop that computes gradients between steps does not have a core burnt for long. Waking a
 * sleeping worker costs a futex wake (microseconds on bare metal; up to ~0.4 ms measured on the
 * 2-vCPU VM of bench/ANALYSIS.md, where an idle vCPU halts).
 */
const WORKER_SPIN_MS = 0.3;
/**
 * Elements a worker steps between two bumps of the progress word (a multiple of 256: whole
 * blocks of 8-bit moments). 64K elements take tens of microseconds at the kernel's rates
 * (0.8–1.6 G elements/s a thread here), so the extra call and atomic add a chunk cost nothing
 * measurable, while a chunk is small enough for the bound below.
 */
const CHUNK = 65536;

/** Settings of a threaded backend (for tests and benchmarks; the option is `threads`). */
export interface ThreadedOptions {
  /** Reduce the sum of squares on every thread (default), or on the main thread alone. */
  parallelReduction?: boolean;
  /** Milliseconds a worker polls for the next job after one (default WORKER_SPIN_MS). */
  workerSpinMs?: number;
  /** Elements a worker steps between progress bumps (default CHUNK; a multiple of 256). */
  chunk?: number;
  /**
   * Milliseconds with no progress after which a worker is declared stopped (default STALL_MS):
   * in a step, or while the workers start (none becoming ready).
   */
  stallMs?: number;
}

/**
 * `options` with their defaults, checked before anything is made: a RangeError (TypeError for
 * one not a number, or not a boolean) naming the option and what it takes, where one is out of
 * range (a stall bound of NaN, or not above 0, would never, or at once, take a worker for
 * stopped).
 */
function settingsOf(options: ThreadedOptions): Required<ThreadedOptions> {
  const chunk = options.chunk ?? CHUNK;
  const stallMs = options.stallMs ?? STALL_MS;
  const workerSpinMs = options.workerSpinMs ?? WORKER_SPIN_MS;
  const parallelReduction = options.parallelReduction ?? true;
  const finite = Number.isFinite;
  checkSetting("chunk", chunk, chunk > 0 && chunk % Q8_BLOCK === 0, "a positive multiple of 256");
  checkSetting(
    "stallMs",
    stallMs,
    finite(stallMs) && stallMs > 0,
    "a finite number of milliseconds above 0",
  );
  checkSetting(
    "workerSpinMs",
    workerSpinMs,
    finite(workerSpinMs) && workerSpinMs >= 0,
    "a finite number ≥ 0",
  );
  checkSetting("parallelReduction", parallelReduction, true, "a boolean");
  return { chunk, stallMs, workerSpinMs, parallelReduction };
}

/**
 * Throws where setting `name`'s `value` is not of the type `expected` names (a TypeError), or is
 * not `valid` (a RangeError), saying what it takes.
 */
function checkSetting(name: string, value: unknown, valid: boolean, expected: string): void {
  const typed = expected === "a boolean" ? typeof value === "boolean" : typeof value === "number";
  if (typed && valid) return;
  const Kind = typed ? RangeError : TypeError;
  throw new Kind(`ThreadedOptions.${name} must be ${expected}, got ${String(value)}`);
}

/**
 * What this runtime lacks to run threaded states, in words: SharedArrayBuffer / shared
 * WebAssembly memory (browsers without cross-origin isolation) or Web Workers (Node.js before
 * 20.16, which cannot give `node:worker_threads` through `process.getBuiltinModule`); or
 * `undefined` where it has both.
 */
function threadsMissing(): { what: string; isolation: boolean; denied?: true } | undefined {
  const isolation = typeof SharedArrayBuffer !== "function" ||
    (globalThis as { crossOriginIsolated?: boolean }).crossOriginIsolated === false;
  if (isolation) {
    return {
      what:
        "SharedArrayBuffer (in a browser, the page must be cross-origin isolated: served with " +
        "Cross-Origin-Opener-Policy: same-origin and Cross-Origin-Embedder-Policy: require-corp)",
      isolation,
    };
  }
  if (typeof Worker !== "function" && nodeWorkerThreads() === undefined) {
    return {
      what: "Web Workers, or Node.js's node:worker_threads through process.getBuiltinModule " +
        "(Deno, Bun and browsers have the one, Node.js 22.3+ and 20.16+ the other)",
      isolation,
    };
  }
  if (typeof Worker !== "function" && nodeWorkersDenied()) {
    return {
      what: "worker threads, which Node.js's permission model denies this process (started " +
        "with --permission, or --experimental-permission, without --allow-worker)",
      isolation,
      denied: true,
    };
  }
  return undefined;
}

/** Whether this runtime can run threaded states (see {@linkcode checkThreadSupport}). */
export function threadsRunHere(): boolean {
  return threadsMissing() === undefined;
}

/**
 * Throws a TypeError saying what is missing when this runtime cannot run threaded states:
 * SharedArrayBuffer / shared WebAssembly memory (browsers without cross-origin isolation) or
 * Web Workers (Node.js older than 20.16, with no `process.getBuiltinModule` to reach
 * `node:worker_threads`), or the permission to start them (Node.js's permission model without
 * `--allow-worker`).
 */
export function checkThreadSupport(threads: number): void {
  const missing = threadsMissing();
  if (missing !== undefined) {
    const guard = missing.isolation
      ? ` (or threads: globalThis.crossOriginIsolated ? ${threads} : 1)`
      : "";
    const fix = missing.denied
      ? ": run node with --allow-worker as well, or"
      : ", which this runtime lacks;";
    throw new TypeError(
      `Option threads: ${threads} needs ${missing.what}${fix} use threads: 1${guard}`,
    );
  }
}

/**
 * Ends workers still running when their state is garbage-collected without `dispose`. Made by the
 * first threaded state, not on import: a runtime without FinalizationRegistry (React Native's
 * Hermes) has no Web Workers either, and runs the other backends.
 */
let orphans: FinalizationRegistry<() => void> | undefined;

/**
 * The registry's callback: a function of the module, not a closure made in
 * {@linkcode createThreadedWasmBackend}, which would share the context of the first state's
 * closures and keep that state's backend, and its workers, alive for ever.
 */
function releaseOrphan(release: () => void): void {
  release();
}

/** Where the parts of a threaded state lie in its shared memory (byte addresses). */
interface SharedMap {
  /** The control block (cpu/thread_worker.ts `CONTROL`). */
  readonly control: number;
  /** The scalar blocks, inside the control block. */
  readonly scalars: number;
  /** The workers' slots (cpu/thread_worker.ts `SLOT`; thread t's `SLOT.BYTES` × t after it). */
  readonly slots: number;
  /** The f64 block sums of the reduction. */
  readonly partials: number;
  /** The scratch of thread 0 (8-bit states; thread t's is `scratchBytes` × t after it). */
  readonly scratch: number;
  /** The arena descriptor, and the arena itself. */
  readonly descriptor: number;
  readonly base: number;
  /** Blocks of the reduction (SUM_BLOCK elements each). */
  readonly blocks: number;
  /** 64 KiB pages of the memory. */
  readonly pages: number;
}

/** The memory map of a threaded state of `layout` on `threads` threads (see the module doc). */
function sharedMap(layout: ArenaLayout, threads: number): SharedMap {
  const blocks = Math.ceil(layout.total / SUM_BLOCK);
  const control = PAGE_BYTES;
  const scalars = control + CONTROL.SCALARS;
  const slots = scalars + blockCount(layout.segments) * BLOCK_BYTES;
  const partials = slots + Math.ceil(threads * SLOT.BYTES / 64) * 64;
  const scratch = Math.ceil((partials + blocks * 8) / 64) * 64;
  const descriptor = scratch + threads * scratchBytes(layout);
  const base = descriptor + headerBytes(layout, false);
  // (What it holds more than one thread's memory: the control block, the block sums, the
  // other threads' scratch. The figure checked is then this memory's.)
  checkWasmCapacity(layout, base - PAGE_BYTES - headerBytes(layout, true));
  const pages = Math.ceil((base + layout.byteLength) / PAGE_BYTES);
  return { control, scalars, slots, partials, scratch, descriptor, base, blocks, pages };
}

/** A shared memory of `pages` pages (never grown), or a RangeError naming the model's size. */
function sharedMemory(pages: number, parameters: number): WebAssembly.Memory {
  try {
    return new WebAssembly.Memory({ initial: pages, maximum: pages, shared: true });
  } catch (cause) {
    throw new RangeError(
      `Cannot allocate ${
        pages * PAGE_BYTES
      } bytes of shared WebAssembly memory for ${parameters} parameters`,
      { cause },
    );
  }
}

/** A backend of the arena of `map` in `buffer` that only reads and writes it: no kernel runs. */
function arenaViews(layout: ArenaLayout, buffer: ArrayBufferLike, map: SharedMap): CpuBackend {
  const notRunning = () => {
    throw new Error("The kernel does not run on an arena being filled");
  };
  return new CpuBackend("wasm", layout, buffer, map.base, blockViews(buffer, map.scalars, layout), {
    update: notRunning,
    gradSumSquares: notRunning,
    nonFiniteRange: notRunning,
    gradsNonFinite: notRunning,
    centralize: notRunning,
    threads: 1,
    dispose: () => {},
  });
}

/**
 * Instantiates the shared kernel on `threads` threads with an arena for `layout`. `fill`, where
 * given, is called on views of the arena as soon as its memory is made, before any await (the
 * kernel is not running yet: a step on them throws), and its error thrown before the workers
 * start (core/state.ts `BackendFactory`).
 */
export async function createThreadedWasmBackend(
  layout: ArenaLayout,
  threads: number,
  options?: ThreadedOptions,
  fill?: (backend: CpuBackend) => void,
): Promise<CpuBackend> {
  const { chunk, stallMs, workerSpinMs: spinMs, parallelReduction } = settingsOf(options ?? {});
  checkThreadSupport(threads);
  const map = sharedMap(layout, threads);
  const memory = sharedMemory(map.pages, layout.total);
  if (fill !== undefined) fill(arenaViews(layout, memory.buffer, map));
  const bytes = sharedKernelBytes();
  const { instance } = await WebAssembly.instantiate(bytes, { env: { memory } });
  const k = instance.exports as unknown as KernelExports;
  if (k.heapBase() > map.control) throw new Error("The kernel's static data overlaps its arena");
  const arena = placeArena(memory.buffer, layout, map.descriptor, map.base, map.scalars);
  const ints = new Int32Array(memory.buffer, map.control, CONTROL.SCALARS / 4);
  const workers: Worker[] = [];
  const slots = new Int32Array(memory.buffer, map.slots, threads * SLOT.BYTES / 4);
  const release = releaser(ints, workers, slots);
  const n = layout.total;
  try {
    await startWorkers(workers, threads, stallMs, (t): ThreadWorkerInit => {
      const [start, end] = sliceBounds(layout, threads, t);
      const [firstBlock, lastBlock] = blockBounds(map.blocks, threads, t);
      const { control, scalars, partials } = map;
      return {
        bytes,
        memory,
        control,
        slot: map.slots + t * SLOT.BYTES,
        arena: map.descriptor,
        scalars,
        grads: arena.grads,
        partials,
        scratch: map.scratch + t * scratchBytes(layout),
        total: n,
        start,
        end,
        firstBlock,
        lastBlock,
        chunk,
        chunkBlocks: Math.max(1, Math.floor(chunk / SUM_BLOCK)),
        spinMs,
        layout: CONTROL,
        ops: { step: OP_STEP, sumSquares: OP_SUM_SQUARES, exit: OP_EXIT, nonFinite: OP_NON_FINITE },
        slotLayout: SLOT,
        died: { threw: DIED_THREW, exited: DIED_EXITED, job: FAILED_JOB },
      };
    });
  } catch (error) {
    release();
    throw error;
  }
  watchWorkers(workers, release);
  const sums = new Float64Array(memory.buffer, map.partials, map.blocks);
  const team: Team = { k, arena, map, ints, sums, threads, layout, release };
  const blocks = blockViews(memory.buffer, map.scalars, layout);
  const registry = orphans ??= new FinalizationRegistry(releaseOrphan);
  const backend = new CpuBackend("wasm", layout, memory.buffer, map.base, blocks, {
    ...teamKernels(team, parallelReduction, stallMs),
    threads,
    halfStepped: () => halfStepWhy(release),
    dispose: () => {
      release();
      registry.unregister(backend);
    },
  });
  registry.register(backend, release, backend);
  return backend;
}
