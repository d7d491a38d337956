/**
 * The WASM SIMD backend: the compiled AssemblyScript kernel (assembly/index.ts), one instance
 * per state, with the arena in that instance's linear memory. The memory grows once, at init,
 * and never again, so the per-tensor views stay valid for the life of the state.
 *
 * @module
 */
import {
  type ArenaLayout,
  EXP_AVG,
  EXP_AVG_SQ,
  GRADS,
  PARAMS,
  SECTION_ALIGN_BYTES,
  SLOW,
} from "../core/arena.ts";
import type { StepScalars } from "../core/scalars.ts";
import { CpuBackend } from "./cpu_backend.ts";
import { KERNELS_SHARED_WASM_BASE64, KERNELS_WASM_BASE64 } from "./kernels_wasm.generated.ts";

/** Largest linear memory a 32-bit WebAssembly module can address: 65536 pages of 64 KiB. */
export const MAX_WASM_MEMORY_BYTES = 65536 * 65536;

/** Bytes of a WebAssembly memory page. */
export const PAGE_BYTES = 65536;

/** The kernel module's exports (assembly/index.ts). */
export interface KernelExports {
  memory: WebAssembly.Memory;
  heapBase(): number;
  step(
    params: number,
    grads: number,
    m: number,
    v: number,
    start: number,
    end: number,
    gradScale: number,
    coupledDecay: number,
    beta1: number,
    oneMinusBeta1: number,
    beta2: number,
    oneMinusBeta2: number,
    paramDecay: number,
    stepSize: number,
    eps: number,
    mode: number,
    slow: number,
    alpha: number,
    sync: number,
    gradMix: number,
    segments: number,
    segmentCount: number,
  ): void;
  sumSquares(ptr: number, n: number): number;
  sumSquaresBlocks(ptr: number, n: number, first: number, last: number, out: number): void;
  nonFinite(ptr: number, n: number): number;
  centralize(ptr: number, rows: number, cols: number): void;
}

let bytes: Uint8Array<ArrayBuffer> | undefined;
let sharedBytes: Uint8Array<ArrayBuffer> | undefined;
let compiled: Promise<WebAssembly.Module> | undefined;

function decode(base64: string): Uint8Array<ArrayBuffer> {
  const binary = atob(base64);
  const out = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) out[i] = binary.charCodeAt(i);
  return out;
}

/** The kernel module's bytes, decoded once. */
export function kernelBytes(): Uint8Array<ArrayBuffer> {
  return bytes ??= decode(KERNELS_WASM_BASE64);
}

/** The bytes of the kernel build that imports a shared memory (threaded states), decoded once. */
export function sharedKernelBytes(): Uint8Array<ArrayBuffer> {
  return sharedBytes ??= decode(KERNELS_SHARED_WASM_BASE64);
}

/** Whether this runtime can run the kernel module (it needs WebAssembly SIMD). */
export function wasmSimdSupported(): boolean {
  return typeof WebAssembly === "object" && WebAssembly.validate(kernelBytes());
}

/**
 * Where the arena starts after the module's static data: at a cache line (64 bytes), so that no
 * vector of a section straddles two lines; the sections' own offsets (core/arena.ts) are
 * multiples of 64 too.
 */
function arenaBase(heapBase: number): number {
  return Math.ceil(heapBase / SECTION_ALIGN_BYTES) * SECTION_ALIGN_BYTES;
}

/** Bytes of linear memory a state of this layout needs, static data included. */
function requiredBytes(heapBase: number, layout: ArenaLayout): number {
  return arenaBase(heapBase) + layout.byteLength;
}

/**
 * Throws a RangeError, before anything is allocated, when `layout` cannot fit in 32-bit
 * WebAssembly memory.
 */
export function checkWasmCapacity(layout: ArenaLayout, extraBytes = 0): void {
  // The static data of the kernel module is a few bytes; one page bounds it.
  const needed = requiredBytes(PAGE_BYTES, layout) + extraBytes;
  if (needed > MAX_WASM_MEMORY_BYTES) {
    throw new RangeError(
      `The model has ${layout.total} parameters; its optimizer arena (params, grads, exp_avg, exp_avg_sq: 16 bytes a parameter, 20 with LookAhead, and gaps of up to 5% between sections against cache aliasing) needs ${needed} bytes, more than 32-bit WebAssembly memory can address (4 GiB). Split the parameters between several optimizers, or use the webgpu backend.`,
    );
  }
}

/** Byte addresses of an arena's sections and segment table in a kernel's memory. */
export interface ArenaAddresses {
  p: number;
  g: number;
  m: number;
  v: number;
  /** The slow weights, or `p` where there are none (the kernel then never reads it). */
  slow: number;
  table: number;
  segmentCount: number;
}

/** Where the sections of `layout` lie in memory when the arena starts at byte `base`. */
export function arenaAddresses(layout: ArenaLayout, base: number): ArenaAddresses {
  const at = layout.sectionOffsets;
  const p = base + at[PARAMS];
  return {
    p,
    g: base + at[GRADS],
    m: base + at[EXP_AVG],
    v: base + at[EXP_AVG_SQ],
    slow: layout.sectionCount > SLOW ? base + at[SLOW] : p,
    table: base + layout.segmentTableOffset,
    segmentCount: layout.segments.length,
  };
}

/** One step of the elements `[start, end)` of the arena at `a`, with the scalars `s`. */
export function stepSlice(
  k: KernelExports,
  a: ArenaAddresses,
  start: number,
  end: number,
  s: StepScalars,
): void {
  k.step(
    a.p,
    a.g,
    a.m,
    a.v,
    start,
    end,
    s.gradScale,
    s.coupledDecay,
    s.beta1,
    s.oneMinusBeta1,
    s.beta2,
    s.oneMinusBeta2,
    s.paramDecay,
    s.stepSize,
    s.eps,
    s.mode,
    a.slow,
    s.alpha,
    s.sync,
    s.gradMix,
    a.table,
    a.segmentCount,
  );
}

/** Instantiates the kernel with an arena for `layout` in its memory. */
export async function createWasmBackend(layout: ArenaLayout): Promise<CpuBackend> {
  checkWasmCapacity(layout);
  compiled ??= WebAssembly.compile(kernelBytes());
  const module = await compiled;
  compiledSync ??= module;
  return backendOn(await WebAssembly.instantiate(module, {}), layout);
}

/** The compiled kernel, once some compile has finished (async or sync). */
let compiledSync: WebAssembly.Module | undefined;

/**
 * {@linkcode createWasmBackend}, synchronously (a synchronous compile, once, and a synchronous
 * instantiation; the compile is skipped where an async one has finished): for callers that must
 * start a state inside a synchronous call (the TensorFlow.js adapter's first `applyGradients`).
 */
export function createWasmBackendSync(layout: ArenaLayout): CpuBackend {
  checkWasmCapacity(layout);
  compiledSync ??= new WebAssembly.Module(kernelBytes());
  return backendOn(new WebAssembly.Instance(compiledSync, {}), layout);
}

/** The backend on a fresh kernel instance: its memory grown to hold the arena of `layout`. */
function backendOn(instance: WebAssembly.Instance, layout: ArenaLayout): CpuBackend {
  const k = instance.exports as unknown as KernelExports;
  const heapBase = k.heapBase();
  const base = arenaBase(heapBase);
  const needed = requiredBytes(heapBase, layout);
  const have = k.memory.buffer.byteLength;
  if (needed > have) {
    try {
      k.memory.grow(Math.ceil((needed - have) / PAGE_BYTES));
    } catch (cause) {
      throw new RangeError(
        `Cannot grow WebAssembly memory to ${needed} bytes for ${layout.total} parameters`,
        { cause },
      );
    }
  }
  const a = arenaAddresses(layout, base);
  const { g } = a;
  const n = layout.total;
  const kernel = (s: StepScalars) => stepSlice(k, a, 0, n, s);
  return new CpuBackend("wasm", layout, k.memory.buffer, base, kernel, {
    gradSumSquares: () => k.sumSquares(g, n),
    nonFiniteRange: (offset, count) => k.nonFinite(g + offset * 4, count) !== 0,
    centralize: (offset, rows, cols) => k.centralize(g + offset * 4, rows, cols),
  });
}
