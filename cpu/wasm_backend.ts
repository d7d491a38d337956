/**
 * The WASM SIMD backend: the compiled AssemblyScript kernel (assembly/index.ts), one instance
 * per state, with the arena in that instance's linear memory. The memory grows once, at init,
 * and never again, so the per-tensor views stay valid for the life of the state.
 *
 * @module
 */
import {
  ARENA_DESCRIPTOR,
  ARENA_DESCRIPTOR_BYTES,
  type ArenaLayout,
  codesSection,
  EXP_AVG,
  EXP_AVG_SQ,
  GRADS,
  hasSection,
  PARAMS,
  scalesSection,
  SEGMENT_ROW_WORDS,
  SLOW,
  writeSegmentTable,
} from "../base/arena.ts";
import { SECTION_ALIGN_BYTES } from "../base/section_spread.ts";
import { decodeBase64 } from "../base/_base64.ts";
import { Q8_BLOCK } from "../base/q8.ts";
import { BLOCK_BYTES, blockCount } from "../base/scalars.ts";
import { importMemory, KERNEL_MEMORIES } from "./_wasm_memory.ts";
import { blockViews, CpuBackend } from "./cpu_backend.ts";
import { kernelBase64 } from "./_kernel_bytes.ts";

/** Largest linear memory a 32-bit WebAssembly module can address: 65536 pages of 64 KiB. */
export const MAX_WASM_MEMORY_BYTES = 65536 * 65536;

/** Bytes of a WebAssembly memory page. */
export const PAGE_BYTES = 65536;

/** The kernel module's exports (assembly/index.ts). */
export interface KernelExports {
  memory: WebAssembly.Memory;
  heapBase(): number;
  /**
   * One step of `[start, end)` (assembly/index.ts); `scratch`: the calling thread's 2 KiB, which
   * only an arena with 8-bit moments uses (absent: 0).
   */
  step(arena: number, scalars: number, start: number, end: number, scratch?: number): void;
  sumSquares(ptr: number, n: number): number;
  sumSquaresBlocks(ptr: number, n: number, first: number, last: number, out: number): void;
  nonFinite(ptr: number, n: number): number;
  centralize(ptr: number, rows: number, cols: number): void;
}

let bytes: Uint8Array<ArrayBuffer> | undefined;
let sharedBytes: Uint8Array<ArrayBuffer> | undefined;
let importedModule: WebAssembly.Module | undefined;
let sharedModule: WebAssembly.Module | undefined;

/**
 * Whether this build of the library carries the kernel's bytes (cpu/_kernel_bytes.ts): all but
 * the npm package's `workerd` entries (tools/_npm_entries.ts), which are given the kernel
 * compiled, its `radam.wasm`, as they load ({@linkcode useOwnKernel}), and leave the bytes out.
 */
function carriesBytes(): boolean {
  return kernelBase64() !== "";
}

/** The kernel module's bytes, decoded once; a TypeError in a build that carries none. */
export function kernelBytes(): Uint8Array<ArrayBuffer> {
  if (!carriesBytes()) throw noBytes();
  return bytes ??= decodeBase64(kernelBase64());
}

/** The error of a build without the kernel's bytes, where they are needed. */
function noBytes(): TypeError {
  return new TypeError(
    "This build of @optim/radam (its workerd export, for Cloudflare Workers) carries its kernel as radam.wasm, compiled as the Worker loads, not as bytes: option threads above 1 and a state on tfjs's wasm heap, which compile builds of the kernel from its bytes, do not run on it",
  );
}

/**
 * The bytes of the kernel build that imports a shared memory (threaded states), made once from
 * the kernel's (cpu/_wasm_memory.ts).
 */
export function sharedKernelBytes(): Uint8Array<ArrayBuffer> {
  return sharedBytes ??= importMemory(kernelBytes(), KERNEL_MEMORIES.shared);
}

/**
 * An instance of the kernel running on `memory`, another module's (synchronous: a compile once,
 * then an instantiation). The build that imports a plain memory, or the shared one for a shared
 * memory; neither writes anything into the memory when instantiated (no data segment), so the
 * caller places its arena in memory the owner allocated for it.
 */
export function kernelOnMemory(memory: WebAssembly.Memory): KernelExports {
  const shared = typeof SharedArrayBuffer === "function" &&
    memory.buffer instanceof SharedArrayBuffer;
  const module = shared
    ? sharedModule ??= new WebAssembly.Module(sharedKernelBytes())
    : importedModule ??= new WebAssembly.Module(
      importMemory(kernelBytes(), KERNEL_MEMORIES.imported),
    );
  return new WebAssembly.Instance(module, { env: { memory } }).exports as unknown as KernelExports;
}

let simd: boolean | undefined;

/**
 * Whether this runtime can run the kernel module (it needs WebAssembly SIMD): whether
 * `WebAssembly.validate` accepts it, asked once.
 */
export function wasmSimdSupported(): boolean {
  return simd ??= typeof WebAssembly === "object" && WebAssembly.validate(kernelBytes());
}

/** The kernel's module compiled elsewhere and given to the library (cpu/wasm_module.ts). */
let given: WebAssembly.Module | undefined;

/**
 * Makes `module`, the kernel compiled by the runtime as it loaded the app (a Cloudflare Worker's
 * import of the package's `radam.wasm`), the module of every single-threaded state made from now
 * on, in place of compiling the kernel's bytes; the caller checked that it is the kernel
 * (cpu/wasm_module.ts). The builds that import their memory (threads, tfjs's wasm heap) are
 * still compiled from bytes.
 */
export function useKernelModule(module: WebAssembly.Module): void {
  given = module;
  simd = true; // compiled, so the runtime has SIMD
}

/** The package's own kernel, as the runtime compiled it ({@linkcode useOwnKernel}). */
let own: WebAssembly.Module | undefined;

/**
 * Makes `module`, the package's own `radam.wasm` as the runtime compiled it while loading the
 * app (the npm package's `workerd` entries import it), the kernel of every single-threaded state,
 * unless one was given already; and the kernel a module given to `setWasmModule` is checked
 * against, where this build carries no bytes. The npm build checks that the file is byte for
 * byte the kernel the library embeds.
 */
export function useOwnKernel(module: WebAssembly.Module): void {
  own ??= module;
  given ??= module;
  simd = true;
}

/** The package's own kernel module, where the runtime compiled it ({@linkcode useOwnKernel}). */
export function ownKernel(): WebAssembly.Module | undefined {
  return own;
}

/** Whether a module was given ({@linkcode useKernelModule}). */
export function kernelModuleGiven(): boolean {
  return given !== undefined;
}

/**
 * The kernel compiled, once: its module, or the error of a runtime that will not compile it
 * although `WebAssembly.validate` accepts it, which is a runtime that refuses to compile
 * WebAssembly from bytes at run time (Cloudflare Workers: "Wasm code generation disallowed by
 * embedder"; a page whose Content-Security-Policy has no 'wasm-unsafe-eval'). Engines throw a
 * CompileError there (older JavaScriptCore an EvalError); any other error (out of memory) is
 * thrown as it is and not kept.
 */
export type Compiled = { module: WebAssembly.Module; refusal?: undefined } | {
  module?: undefined;
  refusal: Error;
};

let kernel: Compiled | undefined;
let compiling: Promise<Compiled> | undefined;

function refused(error: unknown): Compiled {
  if (error instanceof WebAssembly.CompileError || error instanceof EvalError) {
    return { refusal: error };
  }
  throw error;
}

/**
 * {@linkcode compileKernel}, synchronously (a synchronous compile, unless one has finished, or a
 * module was given).
 */
export function compileKernelSync(): Compiled {
  return given !== undefined ? { module: given } : compileBytesSync();
}

/**
 * The kernel's bytes compiled, once, synchronously (unless a compile has finished), whether or
 * not a module was given: whether this runtime compiles WebAssembly at run time.
 */
function compileBytesSync(): Compiled {
  if (kernel !== undefined) return kernel;
  try {
    return kernel = compiledBytes(new WebAssembly.Module(bytesToCompile()));
  } catch (error) {
    return kernel = refused(error);
  }
}

/** An empty module: what a build without the kernel's bytes compiles, to learn whether it can. */
const PROBE = new Uint8Array([0, 97, 115, 109, 1, 0, 0, 0]);

/** The kernel's bytes, or, in a build that carries none, {@linkcode PROBE}. */
function bytesToCompile(): Uint8Array<ArrayBuffer> {
  return carriesBytes() ? kernelBytes() : PROBE;
}

/**
 * What compiling {@linkcode bytesToCompile} gave: the kernel's module; in a build without its
 * bytes, where the runtime compiles WebAssembly all the same, their absence.
 */
function compiledBytes(module: WebAssembly.Module): Compiled {
  return carriesBytes() ? { module } : { refusal: noBytes() };
}

/**
 * The kernel module: the one given ({@linkcode useKernelModule}), else compiled once
 * (asynchronously, unless a compile has finished), or the runtime's refusal to compile it. Call
 * only where {@linkcode wasmSimdSupported}.
 */
export function compileKernel(): Promise<Compiled> {
  return given !== undefined ? Promise.resolve({ module: given }) : compileBytes();
}

/** {@linkcode compileBytesSync}, asynchronously (unless a compile has finished). */
function compileBytes(): Promise<Compiled> {
  if (kernel !== undefined) return Promise.resolve(kernel);
  compiling ??= WebAssembly.compile(bytesToCompile()).then(
    (module): Compiled => kernel ??= compiledBytes(module),
    (error) => {
      compiling = undefined;
      return kernel ??= refused(error);
    },
  );
  return compiling;
}

/**
 * Why this runtime cannot compile the kernel (the error it threw), or undefined where it can:
 * found by compiling it once, and the module kept for the states that run it. Call only where
 * {@linkcode wasmSimdSupported}.
 */
export async function compileRefusal(): Promise<Error | undefined> {
  return (await compileKernel()).refusal;
}

/** {@linkcode compileRefusal}, synchronously (a synchronous compile, unless one has finished). */
export function compileRefusalSync(): Error | undefined {
  return compileKernelSync().refusal;
}

/**
 * Why this runtime cannot compile WebAssembly from bytes (the error it threw), or undefined where
 * it can, a module given or not: what the builds that import their memory need (threads).
 */
export async function bytesRefusal(): Promise<Error | undefined> {
  return (await compileBytes()).refusal;
}

/** {@linkcode bytesRefusal}, synchronously (a synchronous compile, unless one has finished). */
export function bytesRefusalSync(): Error | undefined {
  return compileBytesSync().refusal;
}

/**
 * Bytes of scratch a thread's step of an arena of `layout` needs: 2 × 256 f32 (the new moments
 * of one block) where it holds 8-bit moments, else none.
 */
export function scratchBytes(layout: ArenaLayout): number {
  return layout.compactStart < layout.total ? 2 * Q8_BLOCK * 4 : 0;
}

/**
 * Bytes before the arena that a kernel's memory holds for it: the arena descriptor (a cache
 * line), then the scalar blocks and the step's scratch (single-threaded states; a threaded one
 * keeps its blocks in its control block and a scratch per thread beside it). A multiple of 64,
 * so that an arena placed after them at a cache line starts at one too (no vector of a section
 * straddles two lines; the sections' own offsets, base/arena.ts, are multiples of 64 too).
 */
export function headerBytes(layout: ArenaLayout, single: boolean): number {
  return ARENA_DESCRIPTOR_BYTES +
    (single ? blockCount(layout.segments) * BLOCK_BYTES + scratchBytes(layout) : 0);
}

/**
 * The bytes of WebAssembly memory a state of `layout` needs, at most, with `extraBytes` more (a
 * threaded state's): the kernel's static data (one page bounds it), the arena's descriptor,
 * scalars and scratch, and the arena, in whole 64 KiB pages, as a memory grows: the
 * `memory.buffer.byteLength` of the state is at most this (of a single-threaded one, at least
 * this less a page). {@linkcode checkWasmCapacity} refuses it above
 * {@linkcode MAX_WASM_MEMORY_BYTES}, a whole number of pages (the rounding moves no state across
 * it).
 *
 * @example
 * ```ts
 * import { MAX_WASM_MEMORY_BYTES, wasmMemoryBytes } from "./wasm_backend.ts";
 * import { planArena } from "../base/arena.ts";
 * import assert from "node:assert/strict";
 *
 * const layout = planArena(["w"], [1000]);
 * assert.ok(wasmMemoryBytes(layout) > layout.byteLength);
 * assert.equal(wasmMemoryBytes(layout) % 65536, 0); // (whole pages)
 * assert.ok(wasmMemoryBytes(planArena(["w"], [300_000_000])) > MAX_WASM_MEMORY_BYTES);
 * ```
 */
export function wasmMemoryBytes(layout: ArenaLayout, extraBytes = 0): number {
  const bytes = PAGE_BYTES + headerBytes(layout, true) + layout.byteLength + extraBytes;
  return Math.ceil(bytes / PAGE_BYTES) * PAGE_BYTES;
}

/**
 * Throws a RangeError, before anything is allocated, when `layout` cannot fit in 32-bit
 * WebAssembly memory with `extraBytes` more.
 */
export function checkWasmCapacity(layout: ArenaLayout, extraBytes = 0): void {
  const needed = wasmMemoryBytes(layout, extraBytes);
  if (needed > MAX_WASM_MEMORY_BYTES) {
    // The model's parameters (an 8-bit arena pads its compact tensors to whole blocks).
    const parameters = layout.lengths.reduce((a, b) => a + b, 0);
    const perParameter = (layout.byteLength / parameters).toFixed(1);
    // 8-bit states shrink 32-bit moments only: not an arena already 8-bit, nor one with none.
    const shrinks = layout.states === "32bit" && hasSection(layout, EXP_AVG);
    throw new RangeError(
      `The model has ${parameters} parameters; its optimizer arena (${layout.sectionCount} sections: ${perParameter} bytes a parameter, gaps of up to 5% between sections against cache aliasing included) needs ${needed} bytes, more than 32-bit WebAssembly memory can address (4 GiB). Split the parameters between several optimizers, ${
        shrinks ? 'use states: "8bit", ' : ""
      }or use the webgpu backend.`,
    );
  }
}

/** Byte addresses of an arena's sections and segment table, as the arena descriptor's words. */
export type ArenaAddresses = Record<keyof typeof ARENA_DESCRIPTOR, number>;

/** Where the sections of `layout` lie in memory when the arena starts at byte `base`. */
export function arenaAddresses(layout: ArenaLayout, base: number): ArenaAddresses {
  const at = (section: number) =>
    base + layout.sectionOffsets[hasSection(layout, section) ? section : PARAMS];
  return {
    p: at(PARAMS),
    g: at(GRADS),
    m: at(EXP_AVG),
    v: at(EXP_AVG_SQ),
    slow: at(SLOW),
    table: base + layout.segmentTableOffset,
    segmentCount: layout.segments.length,
    compactStart: layout.compactStart,
    mCodes: at(codesSection(0)),
    vCodes: at(codesSection(1)),
    mScales: at(scalesSection(0)),
    vScales: at(scalesSection(1)),
  };
}

/**
 * Where a kernel finds an arena: its descriptor, its scalar blocks, the gradients and element
 * count the reductions read, and the scratch of the thread stepping it (8-bit states).
 */
export interface PlacedArena {
  descriptor: number;
  scalars: number;
  grads: number;
  total: number;
  scratch: number;
}

/**
 * Writes the descriptor of `layout` (arena at `base`) at byte `at` of `buffer`, and its segment
 * table; the scalar blocks are at `scalars`, the scratch of a single-threaded step after them.
 */
export function placeArena(
  buffer: ArrayBufferLike,
  layout: ArenaLayout,
  at: number,
  base: number,
  scalars: number,
): PlacedArena {
  const a = arenaAddresses(layout, base);
  const descriptor = new Uint32Array(buffer, at, ARENA_DESCRIPTOR_BYTES / 4);
  (Object.keys(ARENA_DESCRIPTOR) as (keyof ArenaAddresses)[])
    .forEach((field, i) => descriptor[i] = a[field]);
  const rows = layout.segments.length * SEGMENT_ROW_WORDS;
  writeSegmentTable(layout, new Uint32Array(buffer, a.table, rows));
  const scratch = scalars + blockCount(layout.segments) * BLOCK_BYTES;
  return { descriptor: at, scalars, grads: a.g, total: layout.total, scratch };
}

/**
 * One step of the elements `[start, end)` of the arena at `a`, with its scalar blocks and the
 * scratch at `scratch` (default: the single-threaded one).
 */
export function stepSlice(
  k: KernelExports,
  a: PlacedArena,
  start: number,
  end: number,
  scratch = a.scratch,
): void {
  k.step(a.descriptor, a.scalars, start, end, scratch);
}

/**
 * Instantiates the kernel with an arena for `layout` in its memory. `fill`, where given, is
 * called on the backend before any await where the kernel is compiled (or given) and the
 * runtime instantiates it synchronously, else not at all (core/state.ts `BackendFactory`).
 */
export async function createWasmBackend(
  layout: ArenaLayout,
  fill?: (backend: CpuBackend) => void,
): Promise<CpuBackend> {
  checkWasmCapacity(layout);
  const now = fill === undefined ? undefined : instanceNow();
  if (now !== undefined) return filled(backendOn(now, layout), fill!);
  const { module, refusal } = await compileKernel();
  if (module === undefined) throw refusal;
  return backendOn(await WebAssembly.instantiate(module, {}), layout);
}

/**
 * The kernel compiled, or its refusal, where that is known without waiting (a module was given,
 * or a compile has finished), else undefined; `bytes`: of the kernel's bytes, whether or not a
 * module was given (what threads compile).
 */
export function compiledNow(bytes: boolean): Compiled | undefined {
  return !bytes && given !== undefined ? { module: given } : kernel;
}

/**
 * A kernel instance made synchronously, where the module is at hand and the runtime instantiates
 * it so (a browser's main thread may refuse a module over 4 KB), else undefined: the async path
 * then makes it, and throws what the runtime has to say.
 */
function instanceNow(): WebAssembly.Instance | undefined {
  const module = compiledNow(false)?.module;
  if (module === undefined) return undefined;
  try {
    return new WebAssembly.Instance(module, {});
  } catch {
    return undefined;
  }
}

/** `backend` once `fill` ran on it; what `fill` throws, with the backend released. */
export function filled(backend: CpuBackend, fill: (backend: CpuBackend) => void): CpuBackend {
  try {
    fill(backend);
  } catch (error) {
    backend.dispose();
    throw error;
  }
  return backend;
}

/**
 * {@linkcode createWasmBackend}, synchronously (a synchronous compile, once, and a synchronous
 * instantiation; the compile is skipped where an async one has finished): for callers that must
 * start a state inside a synchronous call (the TensorFlow.js adapter's first `applyGradients`).
 */
export function createWasmBackendSync(layout: ArenaLayout): CpuBackend {
  checkWasmCapacity(layout);
  const { module, refusal } = compileKernelSync();
  if (module === undefined) throw refusal;
  return backendOn(new WebAssembly.Instance(module, {}), layout);
}

/** The backend on a fresh kernel instance: its memory grown to hold the arena of `layout`. */
function backendOn(instance: WebAssembly.Instance, layout: ArenaLayout): CpuBackend {
  const k = instance.exports as unknown as KernelExports;
  const at = Math.ceil(k.heapBase() / SECTION_ALIGN_BYTES) * SECTION_ALIGN_BYTES;
  const scalars = at + ARENA_DESCRIPTOR_BYTES;
  const base = at + headerBytes(layout, true);
  const needed = base + layout.byteLength;
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
  const buffer = k.memory.buffer;
  const a = placeArena(buffer, layout, at, base, scalars);
  const { grads: g, total: n } = a;
  return new CpuBackend("wasm", layout, buffer, base, blockViews(buffer, scalars, layout), {
    update: () => stepSlice(k, a, 0, n),
    gradSumSquares: () => k.sumSquares(g, n),
    nonFiniteRange: (offset, count) => k.nonFinite(g + offset * 4, count) !== 0,
    gradsNonFinite: () => k.nonFinite(g, n) !== 0,
    centralize: (offset, rows, cols) => k.centralize(g + offset * 4, rows, cols),
    threads: 1,
    dispose: () => {},
  });
}
