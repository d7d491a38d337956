/**
 * Gradient centralization on the WebGPU backend: the dispatches of each centralized tensor,
 * planned at init (`plan`), and those a step encodes (`request`, then `take`). A tensor larger
 * than a storage binding is centralized by several dispatches, each over whole rows bound from
 * an aligned offset at or before the first of them (the kernel starts at element `first` of its
 * binding); a tensor one of whose rows does not fit a binding is refused when planned.
 *
 * @module
 */
import { label } from "../base/tensors.ts";
import { dispatchGrid } from "./_wgsl.ts";
import type { GpuPlanLimits } from "./arena_plan.ts";
import { bindGroup, type Dispatch, type Pipelines } from "./pipelines.ts";
import { CENTRALIZE_UNIFORM_BYTES, CENTRALIZE_WORD } from "./wgsl_kernel.ts";

/**
 * The row ranges `[from, to)` of a `rows × cols` tensor at element `offset` that one binding of
 * at most `maxBytes` bytes each covers, from an offset aligned to `align` bytes; throws a
 * RangeError naming the tensor (`what`, by default its shape) where a row does not fit one.
 *
 * @example
 * ```ts
 * import { centralizeWindows } from "./centralize.ts";
 * import assert from "node:assert/strict";
 *
 * // 10 rows of 100 floats (400 bytes) in bindings of 1024 bytes, from 256-byte offsets
 * assert.deepEqual(centralizeWindows(64, 10, 100, 1024, 256).map((w) => [w.from, w.to]), [
 *   [0, 2],
 *   [2, 4],
 *   [4, 6],
 *   [6, 8],
 *   [8, 10],
 * ]);
 * ```
 */
export function centralizeWindows(
  offset: number,
  rows: number,
  cols: number,
  maxBytes: number,
  align: number,
  what = `a ${rows} × ${cols} tensor`,
): { from: number; to: number; start: number; first: number }[] {
  const maxElements = Math.floor(maxBytes / 4);
  const alignElements = Math.max(1, align / 4);
  const windows = [];
  for (let from = 0; from < rows;) {
    const row0 = offset + from * cols;
    const start = row0 - row0 % alignElements;
    const first = row0 - start;
    const fit = Math.floor((maxElements - first) / cols);
    if (fit < 1) {
      throw new RangeError(
        `Gradient centralization of ${what} needs a binding of ${
          (first + cols) * 4
        } bytes (its row ${from}, from a ${align}-byte aligned offset); this device allows ${maxBytes} (maxStorageBufferBindingSize)`,
      );
    }
    const to = Math.min(rows, from + fit);
    windows.push({ from, to, start, first });
    from = to;
  }
  return windows;
}

/** The centralizations of one state's tensors. */
export class Centralizations {
  readonly #device: GPUDevice;
  readonly #pipelines: Pipelines;
  readonly #limits: GpuPlanLimits;
  readonly #grads: GPUBuffer;
  /** The dispatches of each planned tensor, by element offset. */
  readonly #planned = new Map<number, Dispatch[]>();
  readonly #uniforms: GPUBuffer[] = [];
  /** The dispatches the next step encodes (a reused array). */
  readonly pending: Dispatch[] = [];

  constructor(device: GPUDevice, pipelines: Pipelines, limits: GpuPlanLimits, grads: GPUBuffer) {
    this.#device = device;
    this.#pipelines = pipelines;
    this.#limits = limits;
    this.#grads = grads;
  }

  /**
   * Makes the dispatches of the tensor of `rows × cols` elements at element `offset` of the
   * grads section (once); throws a RangeError naming it (`name`, a parameter's, else its
   * shape), making nothing, where a row cannot be bound or its rows are too many workgroups for
   * a dispatch.
   */
  plan(offset: number, rows: number, cols: number, name?: string): readonly Dispatch[] {
    const made = this.#planned.get(offset);
    if (made) return made;
    const what = name === undefined
      ? `a ${rows} × ${cols} tensor`
      : `${label(name)} (${rows} × ${cols})`;
    const maxGrid = this.#limits.maxComputeWorkgroupsPerDimension;
    const windows = centralizeWindows(
      offset,
      rows,
      cols,
      this.#limits.maxStorageBufferBindingSize,
      this.#device.limits.minStorageBufferOffsetAlignment,
      what,
    );
    // A workgroup a row.
    const grids = windows.map(({ from, to }) => {
      try {
        return dispatchGrid(to - from, maxGrid);
      } catch {
        throw new RangeError(
          `Gradient centralization of ${what} needs a dispatch of ${
            to - from
          } workgroups (one a row); this device allows ${maxGrid}² (maxComputeWorkgroupsPerDimension)`,
        );
      }
    });
    const dispatches = windows.map(({ from, to, start, first }, w) => {
      const uniform = this.#device.createBuffer({
        label: "radam centralize shape",
        size: CENTRALIZE_UNIFORM_BYTES,
        usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST,
      });
      this.#uniforms.push(uniform);
      const shape = new Uint32Array(CENTRALIZE_UNIFORM_BYTES / 4);
      shape[CENTRALIZE_WORD.rows] = to - from;
      shape[CENTRALIZE_WORD.cols] = cols;
      shape[CENTRALIZE_WORD.first] = first;
      this.#device.queue.writeBuffer(uniform, 0, shape);
      const size = (first + (to - from) * cols) * 4;
      return {
        bindGroup: bindGroup(this.#device, this.#pipelines.centralize, {
          x: { buffer: this.#grads, offset: start * 4, size },
          shape: { buffer: uniform },
        }),
        grid: grids[w],
      };
    });
    this.#planned.set(offset, dispatches);
    return dispatches;
  }

  /** Adds the tensor's dispatches (planned now if they were not) to the next step's. */
  request(offset: number, rows: number, cols: number): void {
    for (const d of this.plan(offset, rows, cols)) this.pending.push(d);
  }

  /** Frees the uniforms. */
  destroy(): void {
    for (const u of this.#uniforms) u.destroy();
  }
}
