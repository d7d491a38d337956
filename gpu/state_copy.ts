/**
 * The copy, on the GPU, of some tensors' state from one WebGPU state into another of the same
 * rule: their f32 moments, the codes and scales of their 8-bit moments, and their slow weights
 * (not the params nor the gradients). A state remade over another set of tensors (the tfjs
 * adapter's frozen and unfrozen layers) takes the state of those it shares with the one before
 * it this way, with the same bits and no readback.
 *
 * @module
 */
import {
  type ArenaLayout,
  codesSection,
  EXP_AVG,
  EXP_AVG_SQ,
  hasSection,
  scalesSection,
  SLOW,
} from "../base/arena.ts";
import { blocksOf } from "../base/q8.ts";
import { compactBytesAt } from "./compact_io.ts";

/** One state's layout and section buffers. */
export interface StateBuffers {
  readonly layout: ArenaLayout;
  readonly sections: readonly GPUBuffer[];
}

/**
 * Encodes the copies of the state of each of `names` from `from` into `to`: both layouts hold
 * each of them with the same length, and in 8 bits or not alike (a RangeError before anything
 * is encoded where one does not, or lacks it).
 *
 * @example
 * ```ts ignore
 * const encoder = device.createCommandEncoder();
 * encodeStateCopy(encoder, { layout, sections }, { layout: next, sections: nextSections }, ["w"]);
 * device.queue.submit([encoder.finish()]);
 * ```
 */
export function encodeStateCopy(
  encoder: GPUCommandEncoder,
  from: StateBuffers,
  to: StateBuffers,
  names: readonly string[],
): void {
  const pairs = names.map((name) => indicesOf(from.layout, to.layout, name));
  const f32 = [EXP_AVG, EXP_AVG_SQ, SLOW].filter((s) => hasSection(to.layout, s));
  const moments = to.layout.unsignedCodes.length;
  for (const [i, j] of pairs) {
    const n = to.layout.lengths[j];
    if (n === 0) continue;
    const compact = to.layout.compact[j];
    for (const s of f32) {
      if (compact && s !== SLOW) continue;
      const bytes = n * 4;
      encoder.copyBufferToBuffer(
        from.sections[s],
        from.layout.offsets[i] * 4,
        to.sections[s],
        to.layout.offsets[j] * 4,
        bytes,
      );
    }
    if (!compact) continue;
    for (let k = 0; k < moments; k++) {
      const a = compactBytesAt(from.layout, i, k), b = compactBytesAt(to.layout, j, k);
      // (A tensor's codes are padded to a block: whole words of them are its own.)
      const codes = Math.ceil(n / 4) * 4;
      encoder.copyBufferToBuffer(
        from.sections[codesSection(k)],
        a.codes,
        to.sections[codesSection(k)],
        b.codes,
        codes,
      );
      encoder.copyBufferToBuffer(
        from.sections[scalesSection(0)],
        a.scales,
        to.sections[scalesSection(0)],
        b.scales,
        blocksOf(n) * 4,
      );
    }
  }
}

/** The layout indices of `name` in `from` and `to`, which must hold it alike. */
function indicesOf(from: ArenaLayout, to: ArenaLayout, name: string): [number, number] {
  const i = from.names.indexOf(name), j = to.names.indexOf(name);
  if (i < 0 || j < 0 || from.lengths[i] !== to.lengths[j] || from.compact[i] !== to.compact[j]) {
    throw new RangeError(
      `Cannot copy the state of tensor ${
        JSON.stringify(name)
      }: the two states do not hold it alike`,
    );
  }
  return [i, j];
}
