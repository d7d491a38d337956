/**
 * The bounds a step is held to on this machine, timed beside it in bench/compare.ts: the divide
 * and square root of an RAdam step alone (no memory traffic), and a read-modify-write of the
 * bytes a step moves per parameter (16 for 8-bit RAdam, 28 for 32-bit), in the same f32x4
 * WebAssembly SIMD as the library's kernels (assembly/bounds.ts, compiled here by asc; not part of
 * the library). The bounds of any 8-bit step are in bench/compare/bytes_bounds.ts.
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
export interface BoundKernels extends StandaloneExports {
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
export async function warm(
  time: (steps: number) => Promise<number>,
): Promise<{ time: typeof time }> {
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
      // The gradients are only read: written once here, so that they are read from memory and
      // not from the zero page an untouched page maps to (which would leave 4 of the bytes
      // out of the traffic).
      new Float32Array(k.memory.buffer, at + f, n).fill(0.01);
      if (bytes === 16) {
        return warm(syncTimer(() => k.rmw16(at, at + f, at + 2 * f, at + 2 * f + c, n, 1)));
      }
      return warm(syncTimer(() => k.rmw28(at, at + f, at + 2 * f, at + 3 * f, n)));
    },
  };
}

/** A section's stride: 5% beyond its size, so the streams do not alias (base/section_spread.ts). */
export function sectionGap(bytes: number): number {
  return Math.ceil((bytes * 1.05 + 4096) / 4096) * 4096 + 1664;
}
