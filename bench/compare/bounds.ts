/**
 * The bounds a step is held to on this machine, timed beside it in bench/compare.ts: the divide
 * and square root of an RAdam step alone (no memory traffic), and a read-modify-write of the
 * bytes a step moves per parameter (16 for 8-bit RAdam, 28 for 32-bit), in the same f32x4
 * WebAssembly SIMD as the library's kernels, and the RAdam and Lion steps with their moments as
 * bytes moved into f32 lanes and back with no codec, the least any 8-bit code does, on one
 * thread and on several, and with a scale a block, the least any block-wise code does (assembly/bounds.ts, compiled here by asc; not part of the library).
 *
 * @module
 */
import {
  instantiateStandalone,
  type StandaloneExports,
  standaloneModule,
} from "../../tools/_asc.ts";
import type { Contender } from "./timing.ts";
import { syncTimer } from "./timing.ts";

/** The bench-only kernels' exports. */
interface BoundKernels extends StandaloneExports {
  divSqrt(x: number, block: number, n: number, eps: number): void;
  rmw16(p: number, g: number, c0: number, c1: number, n: number, one: number): void;
  rmw28(p: number, g: number, m: number, v: number, n: number): void;
  lionBytes(
    p: number,
    g: number,
    codes: number,
    n: number,
    beta1: number,
    beta2: number,
    stepSize: number,
  ): void;
  lionScaled(
    p: number,
    g: number,
    codes: number,
    scales: number,
    n: number,
    beta1: number,
    beta2: number,
    stepSize: number,
  ): void;
  radamScaled(
    p: number,
    g: number,
    mCodes: number,
    vCodes: number,
    mScales: number,
    vScales: number,
    n: number,
    beta1: number,
    beta2: number,
    stepSize: number,
    eps: number,
  ): void;
  radamBytes(
    p: number,
    g: number,
    mCodes: number,
    vCodes: number,
    n: number,
    beta1: number,
    beta2: number,
    stepSize: number,
    eps: number,
  ): void;
}

/** An instance whose memory holds `bytes` after its static data; the first free address. */
async function instance(bytes: number): Promise<{ k: BoundKernels; at: number }> {
  const module = await standaloneModule("bounds.ts");
  const { exports, at } = await instantiateStandalone<BoundKernels>(module, bytes);
  return { k: exports, at };
}

/** A runner timed by `time`, run once first (its memory touched, its code compiled). */
async function warm(time: (steps: number) => Promise<number>): Promise<{ time: typeof time }> {
  await time(1);
  return { time };
}

/** 16 KiB of f32 values: L1-resident. */
const L1_BLOCK = 4096;

/** The divide and square root of an RAdam step alone, per parameter (L1, no memory traffic). */
export function divSqrtContender(): Contender {
  return {
    name: "bound: the divide and square root of an RAdam step alone (wasm f32x4, in L1)",
    key: "bound-divsqrt",
    async setup(n) {
      const { k, at } = await instance(L1_BLOCK * 4);
      new Float32Array(k.memory.buffer, at, L1_BLOCK).fill(0.25);
      const rounded = Math.ceil(n / L1_BLOCK) * L1_BLOCK;
      return warm(syncTimer(() => k.divSqrt(at, L1_BLOCK, rounded, 1e-8)));
    },
  };
}

/** A read-modify-write of `bytes` (16 or 28) bytes a parameter over `n` parameters. */
export function rmwContender(bytes: 16 | 28): Contender {
  return {
    name: `bound: read-modify-write of ${bytes} bytes a parameter (wasm f32x4${
      bytes === 16 ? ": an 8-bit RAdam step's traffic" : ": a 32-bit RAdam step's"
    })`,
    key: `bound-rmw${bytes}`,
    async setup(n) {
      n = Math.ceil(n / 16) * 16;
      // sections 5% apart beyond their size, so that the streams do not alias (base/arena.ts)
      const f = sectionGap(4 * n), c = sectionGap(n);
      const { k, at } = await instance(bytes === 16 ? 2 * f + 2 * c : 4 * f);
      if (bytes === 16) {
        return warm(syncTimer(() => k.rmw16(at, at + f, at + 2 * f, at + 2 * f + c, n, 1)));
      }
      return warm(syncTimer(() => k.rmw28(at, at + f, at + 2 * f, at + 3 * f, n)));
    },
  };
}

/** A section's stride: 5% beyond its size, so that the streams do not alias (base/arena.ts). */
function sectionGap(bytes: number): number {
  return Math.ceil((bytes * 1.05 + 4096) / 4096) * 4096 + 1664;
}

/** A rule whose step the bytes' bounds run. */
export type BytesRule = "radam" | "lion";

/** Elements a block of the scaled bounds (assembly/bounds.ts): one f32 scale each. */
const SCALE_BLOCK = 256;

/**
 * The bytes {@linkcode bytesStepIn} uses for `n` parameters: parameters, gradients, two code
 * sections, two scale sections (two f32 a block).
 */
function bytesFootprint(n: number): number {
  return 2 * sectionGap(4 * n) + 2 * sectionGap(n) + 2 * sectionGap(n / SCALE_BLOCK * 8);
}

/**
 * One step of `rule` with its moments as bytes (assembly/bounds.ts: `radamBytes`, `lionBytes`,
 * or with `scaled` their block-scaled forms) over `n` parameters (a multiple of 256), in a new
 * instance of the bounds' `module`: its memory set up, its step a call.
 */
export async function bytesStepIn(
  module: WebAssembly.Module,
  rule: BytesRule,
  n: number,
  scaled = false,
): Promise<() => void> {
  const { exports: k, at } = await instantiateStandalone<BoundKernels>(module, bytesFootprint(n));
  const f = sectionGap(4 * n), c = sectionGap(n), s = sectionGap(n / SCALE_BLOCK * 8);
  new Float32Array(k.memory.buffer, at, n).fill(0.5);
  new Float32Array(k.memory.buffer, at + f, n).fill(0.01);
  // codes 0x3c: the top byte of 2^-7 (m), of v alike; scales of 1
  new Uint8Array(k.memory.buffer, at + 2 * f, 2 * c).fill(0x3c);
  const codes = at + 2 * f, scales = codes + 2 * c;
  new Float32Array(k.memory.buffer, scales, (s + s) / 4).fill(1);
  if (rule === "lion") {
    if (scaled) return () => k.lionScaled(at, at + f, codes, scales, n, 0.9, 0.99, 1e-4);
    return () => k.lionBytes(at, at + f, codes, n, 0.9, 0.99, 1e-4);
  }
  const hyper = [0.9, 0.999, 1e-3, 1e-8] as const;
  if (scaled) {
    return () => k.radamScaled(at, at + f, codes, codes + c, scales, scales + s, n, ...hyper);
  }
  return () => k.radamBytes(at, at + f, codes, codes + c, n, ...hyper);
}

/** How a bound of bytes is run: on how many threads, and whether with block scales. */
export interface BytesRun {
  /** Threads: this one and `threads − 1` workers (default 1). */
  threads?: number;
  /** With each block's scales and largest magnitude (`radamScaled`, `lionScaled`). */
  scaled?: boolean;
}

/**
 * The plain step of `rule` (RAdam rectified, or Lion) over `n` parameters with its moments as
 * bytes moved into f32 lanes and back with no codec (assembly/bounds.ts): a bound on any 8-bit
 * step here. With `scaled`, what every block-wise code adds at the least: the scales of each
 * block of 256, folded into the step's constants (no multiply an element), and the block's
 * largest new magnitude taken for its next scale (one pass, no clamp; no rounding, no code map):
 * a bound on any block-wise 8-bit step here. On `threads` > 1, each thread (this one and
 * `threads − 1` workers) steps its own `n / threads` parameters in its own memory, `steps` steps
 * with no barrier between them: a bound on any such step on that many threads, which also waits
 * for its threads at every step.
 */
export function bytesContender(rule: BytesRule, run: BytesRun = {}): Contender {
  const { threads = 1, scaled = false } = run;
  const on = threads > 1 ? ` on ${threads} threads` : "";
  return {
    name: `bound: ${rule} step${on}, moments as bytes ${
      scaled
        ? "with a scale a block of 256 (no code map)"
        : "moved into f32 lanes and back (no codec)"
    }`,
    key: `bound-${rule}-${scaled ? "scaled" : "bytes"}${threads > 1 ? "-threads" : ""}`,
    async setup(n) {
      const module = await standaloneModule("bounds.ts");
      const slice = Math.ceil(n / threads / SCALE_BLOCK) * SCALE_BLOCK;
      const step = await bytesStepIn(module, rule, slice, scaled);
      if (threads === 1) return warm(syncTimer(step));
      const workers = await startBoundWorkers(threads - 1, { module, rule, n: slice, scaled });
      const runner = await warm(async (steps) => {
        const t0 = performance.now();
        const done = workers.map((worker) => workerSteps(worker, steps));
        for (let s = 0; s < steps; s++) step();
        await Promise.all(done);
        return (performance.now() - t0) / 1e3 / steps;
      });
      return { ...runner, dispose: () => workers.forEach((worker) => worker.terminate()) };
    },
  };
}

/** What a worker of a threaded bound is sent once (bench/compare/bound_worker.ts). */
export interface BoundWorkerInit {
  module: WebAssembly.Module;
  rule: BytesRule;
  n: number;
  scaled: boolean;
}

/** `count` workers, each with its own instance set up from `init`, ready to step. */
async function startBoundWorkers(count: number, init: BoundWorkerInit): Promise<Worker[]> {
  const url = new URL("./bound_worker.ts", import.meta.url).href;
  const workers = Array.from({ length: count }, () => new Worker(url, { type: "module" }));
  await Promise.all(workers.map((worker) => {
    const ready = reply(worker);
    worker.postMessage(init);
    return ready;
  }));
  return workers;
}

/** Resolves when `worker` has run `steps` steps. */
function workerSteps(worker: Worker, steps: number): Promise<void> {
  const done = reply(worker);
  worker.postMessage({ steps });
  return done;
}

/** `worker`'s next message; rejects with its error. */
function reply(worker: Worker): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    worker.onmessage = (event) => {
      if (event.data?.error) reject(new Error(`A bound's worker failed: ${event.data.error}`));
      else resolve();
    };
    worker.onerror = (event) => {
      event.preventDefault();
      reject(new Error(`A bound's worker failed: ${event.message}`));
    };
  });
}
