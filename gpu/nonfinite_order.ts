/**
 * Which non-finite gradient a WebGPU state names under `nonFinite: "throw"`: the first one in
 * the order the tensors were given to `init` (or a checkpoint's `tensor_order`), as the CPU
 * backends name it, although the arena may lay the tensors out in another order (8-bit states
 * put the compact tensors last).
 *
 * The GPU finds the first bad gradient by a max-reduction of keys (wgsl_norm.ts `bad_key`):
 * 0xffffffff − the element's position in init's order, the tensors of that order laid back to
 * back. A bad element finds its tensor in the order rows (a binary search, run only for a vec4
 * holding a NaN or ±Infinity): rows of the segment table after its `segment_count` rows of
 * parameter-group runs, one a non-empty tensor in arena order, `start` its offset in a section
 * and `group` the position of its first element in init's order (`end`, `padded` unread).
 *
 * @module
 */
import {
  type ArenaLayout,
  SEGMENT_ROW_BYTES,
  SEGMENT_ROW_WORDS,
  SEGMENT_WORD,
  writeSegmentTable,
} from "../base/arena.ts";

/**
 * The segment table of a WebGPU state with its order rows, and the host's side of the order: it
 * writes the rows for the order the gradients are checked in, and locates a position in it.
 *
 * @example
 * ```ts ignore
 * const order = new NonFiniteOrder(device, layout);
 * order.set([1, 0]); // layout indices, in init's order
 * order.locate(firstBad); // { name: "w", index: 3 }
 * ```
 */
export class NonFiniteOrder {
  /** The segment table: the parameter-group runs, then the order rows. */
  readonly segments: GPUBuffer;
  /** Order rows: the tensors holding at least one element, in arena order (layout indices). */
  readonly #tensors: number[];
  readonly #device: GPUDevice;
  readonly #layout: ArenaLayout;
  /** Layout indices in init's order, and the position of each one's first element in it. */
  #visit: readonly number[];
  #positions: number[] = [];

  /** The table of `layout`, its order rows in the layout's order until `set`. */
  constructor(device: GPUDevice, layout: ArenaLayout) {
    this.#device = device;
    this.#layout = layout;
    this.#tensors = layout.lengths.flatMap((n, k) => n > 0 ? [k] : []);
    this.#tensors.sort((a, b) => layout.offsets[a] - layout.offsets[b]);
    this.segments = device.createBuffer({
      label: "radam segments and gradient order",
      size: (layout.segments.length + this.rows) * SEGMENT_ROW_BYTES,
      usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST,
    });
    this.#visit = layout.names.map((_, k) => k);
    this.#write();
  }

  /** Order rows (`order_rows` of the constants; at least one, read where no tensor has any). */
  get rows(): number {
    return Math.max(1, this.#tensors.length);
  }

  /** Names bad gradients in the order of `visit` (layout indices, each once) from now on. */
  set(visit: readonly number[]): void {
    this.#visit = visit;
    this.#write();
  }

  /** The name of the tensor at position `position` of the order, and the index in it. */
  locate(position: number): { name: string; index: number } {
    const { names, lengths } = this.#layout;
    const positions = this.#positions;
    let k = positions.length - 1;
    while (k > 0 && (positions[k] > position || lengths[this.#visit[k]] === 0)) k--;
    return { name: names[this.#visit[k]], index: position - positions[k] };
  }

  #write(): void {
    const layout = this.#layout;
    const start = new Map<number, number>();
    let at = 0;
    this.#positions = this.#visit.map((k) => {
      start.set(k, at);
      at += layout.lengths[k];
      return at - layout.lengths[k];
    });
    const first = layout.segments.length;
    const words = new Uint32Array((first + this.rows) * SEGMENT_ROW_WORDS);
    writeSegmentTable(layout, words);
    this.#tensors.forEach((k, j) => {
      const row = (first + j) * SEGMENT_ROW_WORDS;
      words[row + SEGMENT_WORD.start] = layout.offsets[k];
      words[row + SEGMENT_WORD.end] = layout.offsets[k] + layout.lengths[k];
      words[row + SEGMENT_WORD.group] = start.get(k)!;
    });
    this.#device.queue.writeBuffer(this.segments, 0, words);
  }
}
