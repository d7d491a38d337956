/**
 * Reads and writes of the 8-bit moments of a WebGPU state's compact tensors (docs/SPEC.md
 * "Compact states"): their codes and scales as they are (checkpoints), or decoded to f32 and
 * encoded from it (`readMoments`, a restore from f32 values), on the host with base/q8_tensor.ts,
 * so that the host and the GPU hold the same codes.
 *
 * @module
 */
import {
  type ArenaLayout,
  codesSection,
  type CompactMoment,
  scalesSection,
} from "../base/arena.ts";
import { blocksOf, Q8_BLOCK } from "../base/q8.ts";
import { decodeTensor, encodeTensor } from "../base/q8_tensor.ts";
import type { ReadRange } from "./section_io.ts";

/**
 * The bytes a read of the codes and scales of moment `k` copies (none without compact tensors):
 * its codes section, and the scales section up to its scales ({@linkcode compactOf} takes them
 * apart).
 *
 * @example
 * ```ts ignore
 * const snapshot = io.snapshot(compactRanges(layout, 0));
 * ```
 */
export function compactRanges(layout: ArenaLayout, k: number): ReadRange[] {
  if (!layout.compact.includes(true)) return [];
  const count = layout.total - layout.compactStart;
  // The scales of every moment share a section: moment k's from block k · count / 256.
  return [
    { section: codesSection(k), bytes: count },
    { section: scalesSection(0), bytes: (count / Q8_BLOCK) * 4 * (k + 1) },
  ];
}

/**
 * The byte offsets of the codes and scales of moment `k` of compact tensor `i` (a layout index)
 * in their sections (its codes are padded to a block; its scales are one a block).
 *
 * @example
 * ```ts
 * import { compactBytesAt } from "./compact_io.ts";
 * import { planGpuCompactArena } from "./compact_plan.ts";
 * import assert from "node:assert/strict";
 *
 * const layout = planGpuCompactArena(["w", "b"], [5000, 10], { moments: 2 });
 * // w (layout index 1) is the first compact tensor, of 20 blocks (5120 codes): moment 1's
 * // scales come after moment 0's.
 * assert.deepEqual(compactBytesAt(layout, 1, 1), { codes: 0, scales: 20 * 4 });
 * ```
 */
export function compactBytesAt(
  layout: ArenaLayout,
  i: number,
  k: number,
): { codes: number; scales: number } {
  const at = layout.offsets[i] - layout.compactStart;
  const blocks = (layout.total - layout.compactStart) / Q8_BLOCK;
  return { codes: at, scales: (blocks * k + at / Q8_BLOCK) * 4 };
}

/**
 * Copies of the codes and scales of moment `k` of each compact tensor, by name (the padding's
 * codes left out), from the bytes of its {@linkcode compactRanges} a snapshot read.
 *
 * @example
 * ```ts ignore
 * const [codes, scales] = await snapshot.read();
 * const { w } = compactOf(layout, 0, codes, scales);
 * ```
 */
export function compactOf(
  layout: ArenaLayout,
  k: number,
  codes: ArrayBuffer,
  scaleBytes: ArrayBuffer,
): Record<string, CompactMoment> {
  const out: Record<string, CompactMoment> = {};
  if (!layout.compact.includes(true)) return out;
  const count = layout.total - layout.compactStart;
  const scales = new Float32Array(scaleBytes, (count / Q8_BLOCK) * 4 * k);
  layout.names.forEach((name, i) => {
    if (!layout.compact[i]) return;
    const at = layout.offsets[i] - layout.compactStart;
    const n = layout.lengths[i];
    out[name] = {
      codes: layout.unsignedCodes[k]
        ? new Uint8Array(codes.slice(at, at + n))
        : new Int8Array(codes.slice(at, at + n)),
      scales: scales.slice(at / Q8_BLOCK, at / Q8_BLOCK + blocksOf(n)),
    };
  });
  return out;
}

/**
 * The f32 values the codes of each compact tensor hold, into `out` by name.
 *
 * @example
 * ```ts
 * import { decodeCompact, encodeCompact } from "./compact_io.ts";
 * import { planGpuCompactArena } from "./compact_plan.ts";
 * import assert from "node:assert/strict";
 *
 * const layout = planGpuCompactArena(["w"], [4096], { moments: 1 });
 * const w = new Float32Array(4096).fill(0.5);
 * const out: Record<string, Float32Array> = {};
 * decodeCompact(encodeCompact({ w }, layout, 0), layout, out);
 * assert.deepEqual(out.w, w);
 * ```
 */
export function decodeCompact(
  compact: Readonly<Record<string, CompactMoment>>,
  layout: ArenaLayout,
  out: Record<string, Float32Array>,
): void {
  layout.names.forEach((name, i) => {
    if (!layout.compact[i]) return;
    out[name] = new Float32Array(layout.lengths[i]);
    decodeTensor(compact[name].codes, compact[name].scales, out[name]);
  });
}

/**
 * The codes and scales of moment `k` of each compact tensor in `values` (f32, by name), each
 * value to its nearest code (lossy).
 *
 * @example
 * ```ts
 * import { encodeCompact } from "./compact_io.ts";
 * import { planGpuCompactArena } from "./compact_plan.ts";
 * import assert from "node:assert/strict";
 *
 * const layout = planGpuCompactArena(["w"], [4096], { moments: 2, nonNegative: [false, true] });
 * const { w } = encodeCompact({ w: new Float32Array(4096).fill(2) }, layout, 1);
 * assert.ok(w.codes instanceof Uint8Array);
 * assert.deepEqual(w.scales, new Float32Array(16).fill(2));
 * ```
 */
export function encodeCompact(
  values: Readonly<Record<string, Float32Array>>,
  layout: ArenaLayout,
  k: number,
): Record<string, CompactMoment> {
  const out: Record<string, CompactMoment> = {};
  layout.names.forEach((name, i) => {
    if (!layout.compact[i] || !values[name]) return;
    const n = layout.lengths[i];
    const codes = layout.unsignedCodes[k] ? new Uint8Array(n) : new Int8Array(n);
    const scales = new Float32Array(blocksOf(n));
    encodeTensor(values[name], codes, scales);
    out[name] = { codes, scales };
  });
  return out;
}

/**
 * Writes the codes and scales of moment `k` of the compact tensors in `data` (by name, already
 * checked: a tensor's length of codes, a scale a block) into the sections; the padding's codes
 * are written 0.
 *
 * @example
 * ```ts ignore
 * writeCompact(device, sections, layout, 0, encodeCompact({ w }, layout, 0));
 * ```
 */
export function writeCompact(
  device: GPUDevice,
  sections: readonly GPUBuffer[],
  layout: ArenaLayout,
  k: number,
  data: Readonly<Record<string, CompactMoment>>,
): void {
  layout.names.forEach((name, i) => {
    const held = data[name];
    if (!layout.compact[i] || !held) return;
    const at = layout.offsets[i] - layout.compactStart;
    const blocks = blocksOf(layout.lengths[i]);
    const padded = new Uint8Array(blocks * Q8_BLOCK);
    padded.set(new Uint8Array(held.codes.buffer, held.codes.byteOffset, held.codes.length));
    device.queue.writeBuffer(sections[codesSection(k)], at, padded);
    const allBlocks = (layout.total - layout.compactStart) / Q8_BLOCK;
    device.queue.writeBuffer(
      sections[scalesSection(0)],
      (allBlocks * k + at / Q8_BLOCK) * 4,
      held.scales as Float32Array<ArrayBuffer>,
    );
  });
}
