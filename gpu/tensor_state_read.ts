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
import { blocksOf } from "../base/q8.ts";
import { compactBytesAt } from "./compact_io.ts";
import type { ReadRange } from "./section_io.ts";

/** The state of one tensor, read back (copies). */
export interface TensorState {
  /**
   * By section: the f32 values of its moments (not of one it holds in 8 bits) and of its slow
   * weights; undefined for the other sections.
   */
  readonly sections: (Float32Array<ArrayBuffer> | undefined)[];
  /**
   * By moment, in a state holding some tensor in 8 bits (none in another): the codes and scales
   * of the moment where this tensor holds it in 8 bits, else undefined.
   */
  readonly codes: (CompactMoment | undefined)[];
}

/** The ranges a read of some tensors' state copies back, and how their bytes are taken apart. */
export interface TensorStateRead {
  /** One range a section, of pieces back to back: each tensor's bytes of that section. */
  readonly ranges: ReadRange[];
  /** The state of each tensor, by name, from the bytes of `ranges` (in their order). */
  parse(bytes: readonly ArrayBuffer[]): Record<string, TensorState>;
}

/** Where one tensor's state lands in the bytes read back: by section, its byte offset there. */
interface Placed {
  readonly name: string;
  readonly length: number;
  /** [section, byte offset] of each f32 section held. */
  readonly f32: [number, number][];
  /** Per moment, where held in 8 bits: the byte offsets of its codes and its scales. */
  readonly codes: ({ codes: number; scales: number } | undefined)[];
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
  const f32 = [EXP_AVG, EXP_AVG_SQ, SLOW].filter((s) => hasSection(layout, s));
  const moments = layout.compact.includes(true) ? layout.unsignedCodes.length : 0;
  const bySection = new Map<number, { pieces: [number, number][]; bytes: number }>();
  /** Adds `length` bytes of `section` from `offset`; where they land in its range. */
  const piece = (section: number, offset: number, length: number): number => {
    if (length === 0) return 0; // (an empty tensor: nothing to copy)
    let range = bySection.get(section);
    if (range === undefined) bySection.set(section, range = { pieces: [], bytes: 0 });
    range.pieces.push([offset, length]);
    range.bytes += length;
    return range.bytes - length;
  };
  const indices = new Map(layout.names.map((name, i) => [name, i]));
  const placed: Placed[] = names.map((name) => {
    const i = indices.get(name);
    if (i === undefined) {
      throw new RangeError(
        `Cannot read the state of tensor ${JSON.stringify(name)}: the state does not hold it`,
      );
    }
    const n = layout.lengths[i], compact = layout.compact[i];
    const at = layout.offsets[i] * 4;
    const held = f32.filter((s) => s === SLOW || !compact);
    const codes = Array.from({ length: moments }, (_, k) => {
      if (!compact) return undefined;
      const from = compactBytesAt(layout, i, k);
      // (A tensor's codes are padded to a block: whole words of them are its own.)
      return {
        codes: piece(codesSection(k), from.codes, Math.ceil(n / 4) * 4),
        scales: piece(scalesSection(0), from.scales, blocksOf(n) * 4),
      };
    });
    return { name, length: n, f32: held.map((s) => [s, piece(s, at, n * 4)]), codes };
  });
  const sections = [...bySection.keys()];
  const ranges = [...bySection].map(([section, r]) => ({ section, ...r }));
  return {
    ranges,
    parse(bytes) {
      const of = (section: number, at: number, length: number) =>
        length === 0 ? new ArrayBuffer(0) : bytes[sections.indexOf(section)].slice(at, at + length);
      const out: Record<string, TensorState> = {};
      for (const p of placed) {
        const n = p.length;
        const values: (Float32Array<ArrayBuffer> | undefined)[] = [];
        for (const [s, at] of p.f32) values[s] = new Float32Array(of(s, at, n * 4));
        const codes = p.codes.map((c, k) => {
          if (c === undefined) return undefined;
          const raw = of(codesSection(k), c.codes, n);
          const scales = of(scalesSection(0), c.scales, blocksOf(n) * 4);
          return {
            codes: layout.unsignedCodes[k] ? new Uint8Array(raw) : new Int8Array(raw),
            scales: new Float32Array(scales),
          };
        });
        out[p.name] = { sections: values, codes };
      }
      return out;
    },
  };
}
