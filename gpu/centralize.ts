/**
 * Gradient centralization on the WebGPU backend, batched: every centralized tensor of a state
 * in two dispatches (one with the default limits where all rows are of one kind), however many
 * tensors, more only past the device's limits; planned at init (`planCentralizeBatches`,
 * `Centralizations`).
 *
 * A row of more than 64 elements (a _wide_ row) takes a workgroup, as one dispatch per tensor
 * did; a row of at most 64 (_narrow_) an invocation, 64 rows a workgroup, summed in the same
 * order and tree as a workgroup sums it (the same bits) without the barriers that are most of a
 * workgroup's cost on a CPU adapter. A batch binds a window of the grads section (from an
 * aligned offset, at most a storage binding) and a table of the runs of rows it covers (whole
 * rows of one tensor), for a dispatch of its wide rows (`centralize`) and one of its narrow
 * rows (`centralize_narrow`). The table's first entry holds the batch's wide rows and runs,
 * then its narrow rows and runs; then per run, wide runs first, the row it starts at (among the
 * batch's wide or narrow rows), the element of the window its first row starts at, and its row
 * length. A workgroup (an invocation, for a narrow row) finds the run of its row by a binary
 * search of the table. A batch ends where the next row would pass its window, a workgroup grid
 * (`maxComputeWorkgroupsPerDimension`²) or its table (a binding); a tensor larger than a window
 * is split between batches at a row. A tensor one of whose rows does not fit a binding is
 * refused when planned.
 *
 * @module
 */
import { label } from "../base/tensors.ts";
import { dispatchGrid, WORKGROUP_SIZE } from "./_wgsl.ts";
import type { GpuPlanLimits } from "./arena_plan.ts";
import { bindGroup, type Compiled, type Dispatch, type Pipelines } from "./pipelines.ts";
import { CENTRALIZE_ENTRY_WORDS, CENTRALIZE_TABLE_BYTES } from "./arena_layout.ts";

/** One planned batch (a dispatch of each kind of row): its window of the grads section, rows, runs. */
export interface CentralizeBatch {
  /** The first element of its window (aligned). */
  start: number;
  /** Elements of its window. */
  length: number;
  /** Rows longer than a workgroup (a workgroup each). */
  wideRows: number;
  /** Flat triples a run of wide rows: its first wide row, its first element in the window, its cols. */
  wide: number[];
  /** Rows of at most a workgroup's size of elements (an invocation each). */
  narrowRows: number;
  /** Flat triples a run of narrow rows, as `wide`. */
  narrow: number[];
}

/** The limits a plan of centralization batches respects. */
export type CentralizeLimits = Pick<
  GpuPlanLimits,
  "maxStorageBufferBindingSize" | "maxBufferSize" | "maxComputeWorkgroupsPerDimension"
>;

/**
 * The dispatches that centralize the tensors of `segments` (flat triples: element offset in
 * the grads section, rows, cols; in increasing offsets), within `limits`, each window bound
 * from an offset aligned to `align` bytes; throws a RangeError naming the tensor (`names[k]` of
 * triple `k`, else its shape) where one of its rows does not fit a binding. Rows of more than
 * 64 (`WORKGROUP_SIZE`) elements take a workgroup each (`wide`), shorter ones an invocation
 * (`narrow`).
 *
 * @example
 * ```ts
 * import { planCentralizeBatches } from "./centralize.ts";
 * import assert from "node:assert/strict";
 *
 * const limits = {
 *   maxStorageBufferBindingSize: 1 << 20,
 *   maxBufferSize: 1 << 20,
 *   maxComputeWorkgroupsPerDimension: 65535,
 * };
 * // 2 × 3 at element 0, 4 × 5 at element 64 and 2 × 100 at element 128: one dispatch
 * const [batch, ...more] = planCentralizeBatches([0, 2, 3, 64, 4, 5, 128, 2, 100], limits, 256);
 * assert.equal(more.length, 0);
 * assert.deepEqual(batch, {
 *   start: 0,
 *   length: 328,
 *   wideRows: 2,
 *   wide: [0, 128, 100],
 *   narrowRows: 6,
 *   narrow: [0, 0, 3, 2, 64, 5],
 * });
 * ```
 */
export function planCentralizeBatches(
  segments: readonly number[],
  limits: CentralizeLimits,
  align: number,
  names: readonly (string | undefined)[] = [],
): CentralizeBatch[] {
  const maxBytes = Math.min(limits.maxStorageBufferBindingSize, limits.maxBufferSize);
  const maxElements = Math.floor(maxBytes / 4);
  const alignElements = Math.max(1, align / 4);
  const maxGroups = limits.maxComputeWorkgroupsPerDimension ** 2;
  // Runs a table holds, after its first entry (the dispatch's counts).
  const maxRuns = Math.floor(maxBytes / (4 * CENTRALIZE_ENTRY_WORDS)) - 1;
  /** Rows of `cols` elements from element `row0` that `b` has room for. */
  const room = (b: CentralizeBatch, row0: number, cols: number) => {
    if ((b.wide.length + b.narrow.length) / 3 >= maxRuns) return 0;
    const groups = cols > WORKGROUP_SIZE
      ? maxGroups - b.wideRows
      : maxGroups * WORKGROUP_SIZE - b.narrowRows;
    return Math.min(groups, Math.floor((b.start + maxElements - row0) / cols));
  };
  const batches: CentralizeBatch[] = [];
  let batch: CentralizeBatch | undefined;
  for (let k = 0; k < segments.length / 3; k++) {
    const [offset, rows, cols] = segments.slice(3 * k, 3 * k + 3);
    for (let from = 0; from < rows;) {
      const row0 = offset + from * cols;
      let fit = batch ? room(batch, row0, cols) : 0;
      if (fit < 1) {
        const start = row0 - row0 % alignElements;
        batch = { start, length: 0, wideRows: 0, wide: [], narrowRows: 0, narrow: [] };
        fit = room(batch, row0, cols);
        if (fit < 1) {
          const what = names[k] === undefined
            ? `a ${rows} × ${cols} tensor`
            : `${label(names[k]!)} (${rows} × ${cols})`;
          throw new RangeError(
            `Gradient centralization of ${what} needs a binding of ${
              Math.max((row0 - start + cols) * 4, CENTRALIZE_TABLE_BYTES)
            } bytes (its row ${from}, from a ${align}-byte aligned offset); this device allows ${maxBytes} (maxStorageBufferBindingSize)`,
          );
        }
        batches.push(batch);
      }
      const n = Math.min(rows - from, fit);
      if (cols > WORKGROUP_SIZE) {
        batch!.wide.push(batch!.wideRows, row0 - batch!.start, cols);
        batch!.wideRows += n;
      } else {
        batch!.narrow.push(batch!.narrowRows, row0 - batch!.start, cols);
        batch!.narrowRows += n;
      }
      batch!.length = row0 + n * cols - batch!.start;
      from += n;
    }
  }
  return batches;
}

/**
 * The centralizations of one state's tensors: the batched dispatches of every tensor planned
 * (`plan`, once, at init), which a step encodes where it requested each of them (`request`).
 */
export class Centralizations {
  readonly #device: GPUDevice;
  readonly #pipelines: Pipelines;
  readonly #limits: GpuPlanLimits;
  readonly #grads: GPUBuffer;
  /** The index of each planned tensor, by element offset. */
  readonly #index = new Map<number, number>();
  /** Per planned tensor, the step (`#steps`) it was last requested for. */
  #stamps = new Float64Array(0);
  /** Steps encoded, plus 1: the step requests are made for. */
  #steps = 1;
  /** Tensors requested for the next step. */
  #count = 0;
  /** The dispatches of the wide rows of every planned tensor (`centralize`). */
  readonly wide: Dispatch[] = [];
  /** The dispatches of the narrow rows of every planned tensor (`centralizeNarrow`). */
  readonly narrow: Dispatch[] = [];
  readonly #tables: GPUBuffer[] = [];

  constructor(device: GPUDevice, pipelines: Pipelines, limits: GpuPlanLimits, grads: GPUBuffer) {
    this.#device = device;
    this.#pipelines = pipelines;
    this.#limits = limits;
    this.#grads = grads;
  }

  /**
   * Makes the dispatches that centralize the tensors of `segments` (flat triples: element
   * offset in the grads section, rows, cols; `names[k]` the name of triple `k`), once; throws a
   * RangeError naming a tensor one of whose rows cannot be bound, making nothing.
   */
  plan(segments: readonly number[], names: readonly (string | undefined)[] = []): void {
    if (this.#index.size > 0) throw new Error("The centralizations of this state are planned");
    const order = Array.from({ length: segments.length / 3 }, (_, k) => k)
      .sort((a, b) => segments[3 * a] - segments[3 * b]);
    const sorted = order.flatMap((k) => segments.slice(3 * k, 3 * k + 3));
    const device = this.#device;
    const batches = planCentralizeBatches(
      sorted,
      this.#limits,
      device.limits.minStorageBufferOffsetAlignment,
      order.map((k) => names[k]),
    );
    for (let k = 0; k < sorted.length; k += 3) this.#index.set(sorted[k], k / 3);
    this.#stamps = new Float64Array(this.#index.size);
    const maxGrid = this.#limits.maxComputeWorkgroupsPerDimension;
    for (const batch of batches) {
      const { start, length, wide, narrow } = batch;
      const table = new Uint32Array(
        CENTRALIZE_ENTRY_WORDS * (1 + (wide.length + narrow.length) / 3),
      );
      table.set([batch.wideRows, wide.length / 3, batch.narrowRows, narrow.length / 3]);
      [...wide, ...narrow].forEach((word, i) => {
        table[CENTRALIZE_ENTRY_WORDS * (1 + Math.floor(i / 3)) + i % 3] = word;
      });
      const buffer = device.createBuffer({
        label: "radam centralize table",
        size: table.byteLength,
        usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST,
      });
      this.#tables.push(buffer);
      device.queue.writeBuffer(buffer, 0, table);
      const bind = (kernel: Compiled) =>
        bindGroup(device, kernel, {
          x: { buffer: this.#grads, offset: start * 4, size: length * 4 },
          table: { buffer },
        });
      const { centralize, centralizeNarrow } = this.#pipelines;
      if (batch.wideRows > 0) {
        this.wide.push({
          bindGroup: bind(centralize),
          grid: dispatchGrid(batch.wideRows, maxGrid),
        });
      }
      if (batch.narrowRows > 0) {
        const groups = Math.ceil(batch.narrowRows / WORKGROUP_SIZE);
        this.narrow.push({
          bindGroup: bind(centralizeNarrow),
          grid: dispatchGrid(groups, maxGrid),
        });
      }
    }
  }

  /** Asks the next step to centralize the planned tensor at element `offset`. */
  request(offset: number): void {
    const k = this.#index.get(offset);
    if (k === undefined) {
      throw new Error(`No centralization was planned for the tensor at element ${offset}`);
    }
    if (this.#stamps[k] !== this.#steps) {
      this.#stamps[k] = this.#steps;
      this.#count++;
    }
  }

  /**
   * Whether the next step centralizes (every planned tensor was requested since the last
   * step), or not (none was); a step that requested some of them only is refused (an Error).
   */
  take(): boolean {
    const count = this.#count;
    this.#count = 0;
    this.#steps++;
    if (count !== 0 && count !== this.#index.size) {
      throw new Error(
        `A step asked to centralize ${count} of the ${this.#index.size} tensors planned: all or none`,
      );
    }
    return count !== 0;
  }

  /** Frees the tables. */
  destroy(): void {
    for (const t of this.#tables) t.destroy();
  }
}
