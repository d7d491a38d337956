/**
 * A read back of the state of some tensors of a WebGPU state alone: their f32 moments, their
 * slow weights, and the codes and scales of their 8-bit moments, copying back only their bytes
 * of each section (the tfjs adapter reads so the state of the variables a step leaves out, not
 * the whole state).
 *
 * @module
 */
import {
  type ArenaLayout,
  codesSection,
  type CompactMoment,
  EXP_AVG,
  EXP_AVG_SQ,
  hasSection,
  scalesSection,
  SLOW,
} from "../base/arena.ts";
import type { TensorState } from "../base/backend.ts";
import { blocksOf } from "../base/q8.ts";
import { compactBytesAt } from "./compact_io.ts";
import type { ReadRange } from "./section_io.ts";

/**
 * One piece of a tensor's state: `bytes` bytes from byte `offset` of section `section`; for the
 * codes and scales of a moment held in 8 bits, that moment (the scales of both share a section).
 */
export interface StatePiece {
  readonly section: number;
  readonly offset: number;
  readonly bytes: number;
  readonly moment?: number;
}

/**
 * The pieces of the state of tensor `i` (a layout index) of `layout`: its f32 moments (not where
 * it holds them in 8 bits) and slow weights, then, where it holds its moments in 8 bits, each
 * moment's codes (padded to a block: whole words of them are its own) and scales. Two layouts
 * that hold a tensor alike (of one length, in 8 bits or not alike) give the same pieces in the
 * same order, but for their offsets. An empty tensor's pieces are of 0 bytes.
 *
 * @example
 * ```ts
 * import { statePieces } from "./tensor_state_read.ts";
 * import { planGpuArena } from "./arena_plan.ts";
 * import { EXP_AVG, EXP_AVG_SQ } from "../base/arena.ts";
 * import assert from "node:assert/strict";
 *
 * const layout = planGpuArena(["a", "b"], [300, 8], { moments: 2 });
 * // b's 32 bytes of each moment's section, at its offset (a's 300 elements padded to 320).
 * assert.deepEqual(statePieces(layout, 1), [
 *   { section: EXP_AVG, offset: 1280, bytes: 32 },
 *   { section: EXP_AVG_SQ, offset: 1280, bytes: 32 },
 * ]);
 * ```
 */
export function statePieces(layout: ArenaLayout, i: number): StatePiece[] {
  const n = layout.lengths[i], compact = layout.compact[i];
  const at = layout.offsets[i] * 4;
  const pieces: StatePiece[] = [EXP_AVG, EXP_AVG_SQ, SLOW]
    .filter((s) => hasSection(layout, s) && (s === SLOW || !compact))
    .map((section) => ({ section, offset: at, bytes: n * 4 }));
  if (!compact) return pieces;
  for (let k = 0; k < layout.unsignedCodes.length; k++) {
    const from = compactBytesAt(layout, i, k);
    const codes = Math.ceil(n / 4) * 4;
    pieces.push({ section: codesSection(k), offset: from.codes, bytes: codes, moment: k });
    pieces.push({
      section: scalesSection(0),
      offset: from.scales,
      bytes: blocksOf(n) * 4,
      moment: k,
    });
  }
  return pieces;
}

/** One tensor's state packed into the ranges of a {@linkcode TensorStateRead}. */
export interface PackedTensor {
  readonly name: string;
  /** Its layout index. */
  readonly index: number;
  /** Its {@linkcode statePieces}, each with `range`, the index of its range, and `at`, its byte offset there. */
  readonly pieces: readonly (StatePiece & { readonly range: number; readonly at: number })[];
}

/** The ranges a read of some tensors' state copies back, and how their bytes are taken apart. */
export interface TensorStateRead {
  /** The layout read. */
  readonly layout: ArenaLayout;
  /** One range a section, of pieces back to back: each tensor's bytes of that section. */
  readonly ranges: ReadRange[];
  /** Where each tensor's pieces land in the ranges, in the order of the names read. */
  readonly packed: readonly PackedTensor[];
  /** The state of each tensor, by name, from the bytes of `ranges` (in their order). */
  parse(bytes: readonly ArrayBuffer[]): Record<string, TensorState>;
}

/**
 * The read of the state of the tensors `names` of `layout` (each once) alone: no range where
 * `names` is empty. A RangeError where the layout lacks one of them.
 *
 * @example
 * ```ts
 * import { tensorStateRead } from "./tensor_state_read.ts";
 * import { planGpuArena } from "./arena_plan.ts";
 * import { EXP_AVG, EXP_AVG_SQ } from "../base/arena.ts";
 * import assert from "node:assert/strict";
 *
 * const layout = planGpuArena(["a", "b"], [300, 8], { moments: 2 });
 * const read = tensorStateRead(layout, ["b"]);
 * // b's 32 bytes of each moment's section, at its offset (a's 300 elements padded to 320).
 * assert.deepEqual(read.ranges.map((r) => [r.section, r.pieces]), [
 *   [EXP_AVG, [[1280, 32]]],
 *   [EXP_AVG_SQ, [[1280, 32]]],
 * ]);
 * const bytes = read.ranges.map(() => new Float32Array(8).fill(0.5).buffer);
 * assert.deepEqual(read.parse(bytes).b.sections[EXP_AVG], new Float32Array(8).fill(0.5));
 * assert.deepEqual(tensorStateRead(layout, []).ranges, []);
 * ```
 */
export function tensorStateRead(layout: ArenaLayout, names: readonly string[]): TensorStateRead {
  const ranges: (ReadRange & { pieces: [number, number][] })[] = [];
  const bySection = new Map<number, number>();
  const indices = new Map(layout.names.map((name, i) => [name, i]));
  const packed: PackedTensor[] = names.map((name) => {
    const index = indices.get(name);
    if (index === undefined) {
      throw new RangeError(
        `Cannot read the state of tensor ${JSON.stringify(name)}: the state does not hold it`,
      );
    }
    const pieces = statePieces(layout, index).map((p) => {
      if (p.bytes === 0) return { ...p, range: -1, at: 0 }; // (an empty tensor: nothing to copy)
      let range = bySection.get(p.section);
      if (range === undefined) {
        bySection.set(p.section, range = ranges.length);
        ranges.push({ section: p.section, pieces: [], bytes: 0 });
      }
      const r = ranges[range], at = r.bytes;
      r.pieces.push([p.offset, p.bytes]);
      r.bytes += p.bytes;
      return { ...p, range, at };
    });
    return { name, index, pieces };
  });
  return { layout, ranges, packed, parse: (bytes) => parseState(layout, packed, bytes) };
}

/** The state of each of `packed`, from the bytes of the ranges read (in their order). */
function parseState(
  layout: ArenaLayout,
  packed: readonly PackedTensor[],
  bytes: readonly ArrayBuffer[],
): Record<string, TensorState> {
  const of = (p: PackedTensor["pieces"][number], length: number) =>
    p.bytes === 0 ? new ArrayBuffer(0) : bytes[p.range].slice(p.at, p.at + length);
  const out: Record<string, TensorState> = {};
  for (const { name, index, pieces } of packed) {
    const n = layout.lengths[index];
    const sections: (Float32Array<ArrayBuffer> | undefined)[] = [];
    const codes: (CompactMoment | undefined)[] = layout.compact.includes(true)
      ? layout.unsignedCodes.map(() => undefined)
      : [];
    pieces.forEach((p, j) => {
      if (p.moment === undefined) sections[p.section] = new Float32Array(of(p, n * 4));
      else if (p.section === scalesSection(0)) { // (its codes: the piece before, padded)
        const k = p.moment, raw = of(pieces[j - 1], n);
        codes[k] = {
          codes: layout.unsignedCodes[k] ? new Uint8Array(raw) : new Int8Array(raw),
          scales: new Float32Array(of(p, p.bytes)),
        };
      }
    });
    out[name] = { sections, codes };
  }
  return out;
}
