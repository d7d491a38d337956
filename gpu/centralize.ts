/**
 * Gradient centralization on the WebGPU backend, batched: every centralized tensor of a state
 * in as few dispatches as the device's limits allow (one with the default limits, however many
 * tensors), planned at init (`planCentralizeBatches`, `Centralizations`).
 *
 * A dispatch binds a window of the grads section (from an aligned offset, at most a storage
 * binding) and a table of the row runs it covers: its first entry the dispatch's row count and
 * number of runs, then per run (whole rows of one tensor) the dispatch row it starts at, the
 * element of the window its first row starts at, and its row length. Workgroup `r` finds the
 * run of its row by a binary search of the table, then centralizes that row exactly as one
 * dispatch per tensor did. A dispatch ends where the next row would pass its window, its
 * workgroup grid (`maxComputeWorkgroupsPerDimension`²) or its table (a binding); a tensor
 * larger than a window is split between dispatches at a row. A tensor one of whose rows does
 * not fit a binding is refused when planned.
 *
 * @module
 */
import { label } from "../base/tensors.ts";
import { dispatchGrid } from "./_wgsl.ts";
import type { GpuPlanLimits } from "./arena_plan.ts";
import { bindGroup, type Dispatch, type Pipelines } from "./pipelines.ts";
import { CENTRALIZE_ENTRY_WORDS } from "./wgsl_kernel.ts";

/** One planned centralization dispatch: its window of the grads section, rows and table. */
export interface CentralizeBatch {
  /** The first element of its window (aligned). */
  start: number;
  /** Elements of its window. */
  length: number;
  /** Rows (workgroups) in all. */
  rows: number;
  /** Flat triples a run: its first dispatch row, its first element in the window, its cols. */
  runs: number[];
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
 * triple `k`, else its shape) where one of its rows does not fit a binding.
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
 * // 2 × 3 at element 0 and 4 × 5 at element 64: one dispatch of 6 rows, 2 runs
 * const [batch, ...more] = planCentralizeBatches([0, 2, 3, 64, 4, 5], limits, 256);
 * assert.equal(more.length, 0);
 * assert.deepEqual(batch, { start: 0, length: 84, rows: 6, runs: [0, 0, 3, 2, 64, 5] });
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
  const maxRows = limits.maxComputeWorkgroupsPerDimension ** 2;
  // Runs a table holds, after its first entry (the dispatch's counts).
  const maxRuns = Math.floor(maxBytes / (4 * CENTRALIZE_ENTRY_WORDS)) - 1;
  const batches: CentralizeBatch[] = [];
  let batch: CentralizeBatch | undefined;
  for (let k = 0; k < segments.length / 3; k++) {
    const [offset, rows, cols] = segments.slice(3 * k, 3 * k + 3);
    for (let from = 0; from < rows;) {
      const row0 = offset + from * cols;
      let fit = batch && batch.runs.length / 3 < maxRuns
        ? Math.min(maxRows - batch.rows, Math.floor((batch.start + maxElements - row0) / cols))
        : 0;
      if (fit < 1) {
        const start = row0 - row0 % alignElements;
        fit = Math.min(maxRows, Math.floor((maxElements - (row0 - start)) / cols));
        if (fit < 1) {
          const what = names[k] === undefined
            ? `a ${rows} × ${cols} tensor`
            : `${label(names[k]!)} (${rows} × ${cols})`;
          throw new RangeError(
            `Gradient centralization of ${what} needs a binding of ${
              (row0 - start + cols) * 4
            } bytes (its row ${from}, from a ${align}-byte aligned offset); this device allows ${maxBytes} (maxStorageBufferBindingSize)`,
          );
        }
        batches.push(batch = { start, length: 0, rows: 0, runs: [] });
      }
      const n = Math.min(rows - from, fit);
      batch!.runs.push(batch!.rows, row0 - batch!.start, cols);
      batch!.rows += n;
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
  /** The dispatches of every planned tensor. */
  readonly dispatches: Dispatch[] = [];
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
    for (const { start, length, rows, runs } of batches) {
      const table = new Uint32Array(CENTRALIZE_ENTRY_WORDS * (1 + runs.length / 3));
      table[0] = rows;
      table[1] = runs.length / 3;
      for (let r = 0; r < runs.length / 3; r++) {
        table.set(runs.slice(3 * r, 3 * r + 3), CENTRALIZE_ENTRY_WORDS * (r + 1));
      }
      const buffer = device.createBuffer({
        label: "radam centralize table",
        size: table.byteLength,
        usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST,
      });
      this.#tables.push(buffer);
      device.queue.writeBuffer(buffer, 0, table);
      this.dispatches.push({
        bindGroup: bindGroup(device, this.#pipelines.centralize, {
          x: { buffer: this.#grads, offset: start * 4, size: length * 4 },
          table: { buffer },
        }),
        grid: dispatchGrid(rows, maxGrid),
      });
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
