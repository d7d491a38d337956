/**
 * The copy, on the GPU, of some tensors' state from one WebGPU state into another of the same
 * rule: their f32 moments, the codes and scales of their 8-bit moments, and their slow weights
 * (not the params nor the gradients), from the state's sections themselves or from a hold of
 * them taken earlier (packed as a read of them packs them: tensor_state_read.ts). A state
 * remade over another set of tensors (init's option `from`, the tfjs adapter's frozen and
 * unfrozen layers) takes the state of those it shares with the one before it this way, with the
 * same bits and no readback.
 *
 * @module
 */
import type { ArenaLayout } from "../base/arena.ts";
import { statePieces, type TensorStateRead } from "./tensor_state_read.ts";

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
  for (const [i, j] of pairs) {
    const source = statePieces(from.layout, i);
    statePieces(to.layout, j).forEach((p, k) => {
      if (p.bytes === 0) return;
      const s = source[k];
      encoder.copyBufferToBuffer(
        from.sections[s.section],
        s.offset,
        to.sections[p.section],
        p.offset,
        p.bytes,
      );
    });
  }
}

/**
 * Encodes the copies of the state of each tensor `read` packs, held in `held` (one buffer per
 * range of `read`, holding its bytes), into `to`, which holds each of them as `read.layout`
 * does (else a RangeError before anything is encoded).
 *
 * @example
 * ```ts ignore
 * const read = tensorStateRead(layout, ["w"]);
 * // (held: a buffer per range of read.ranges, its pieces copied in back to back)
 * encodeHeldCopy(encoder, read, held, { layout: next, sections: nextSections });
 * ```
 */
export function encodeHeldCopy(
  encoder: GPUCommandEncoder,
  read: TensorStateRead,
  held: readonly GPUBuffer[],
  to: StateBuffers,
): void {
  const targets = read.packed.map((t) => indicesOf(read.layout, to.layout, t.name)[1]);
  read.packed.forEach((t, m) => {
    statePieces(to.layout, targets[m]).forEach((p, k) => {
      if (p.bytes === 0) return;
      const s = t.pieces[k];
      encoder.copyBufferToBuffer(held[s.range], s.at, to.sections[p.section], p.offset, p.bytes);
    });
  });
}

/** The layout indices of `name` in `from` and `to`, which must hold it alike. */
function indicesOf(from: ArenaLayout, to: ArenaLayout, name: string): [number, number] {
  const i = indexIn(from, name), j = indexIn(to, name);
  if (i < 0 || j < 0 || from.lengths[i] !== to.lengths[j] || from.compact[i] !== to.compact[j]) {
    throw new RangeError(
      `Cannot copy the state of tensor ${
        JSON.stringify(name)
      }: the two states do not hold it alike`,
    );
  }
  return [i, j];
}

/** Each layout's index of each of its names (-1: none), made once a layout. */
const INDICES = new WeakMap<ArenaLayout, ReadonlyMap<string, number>>();

/** The index of `name` in `layout` (a scan of its names for each name was n² for n tensors). */
function indexIn(layout: ArenaLayout, name: string): number {
  let at = INDICES.get(layout);
  if (at === undefined) INDICES.set(layout, at = new Map(layout.names.map((n, i) => [n, i])));
  return at.get(name) ?? -1;
}
