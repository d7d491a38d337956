/**
 * Tensors on the GPU: the slot type of WebGPU states, the GPU tensors a caller passes as params
 * or gradients, and the check of one such tensor (errors name the tensor). The checks of a
 * whole record of params are in _gpu_params.ts, of gradients in _gpu_grads.ts.
 *
 * @module
 */
import { described } from "../base/_errors.ts";
import { type ShapedTensor, SINGLE_TENSOR_NAME } from "../base/tensors.ts";

/**
 * A tensor of f32 elements in a GPU buffer: a `GPUBufferBinding` (bind it directly in a
 * compute pass) plus its element count. The slots of a WebGPU state (`state.params[name]`,
 * `state.grads[name]`) are of this type: ranges of the state's arena buffers. They hold no
 * elements: a loop written for the CPU backends' views (`g[i] = …`, `state.params.w[i]`,
 * `g.fill(0)`) throws a TypeError naming the slot; pass Float32Arrays to `step`
 * (`step(state, { w: g })`) and read the values with `await readParams(state)`.
 *
 * @example Bind a state's gradient slot in your backward pass, then step without copying
 * ```ts
 * import { radam, step } from "@optim/radam";
 *
 * const adapter = await navigator.gpu.requestAdapter();
 * if (adapter) {
 *   const device = await adapter.requestDevice();
 *   let state = await radam().init({ w: new Float32Array(1024) }, { device });
 *   const slot = state.grads.w; // { buffer, offset, size, length }
 *   device.queue.writeBuffer(slot.buffer, slot.offset, new Float32Array(slot.length).fill(1));
 *   state = step(state); // zero copy: the kernel reads the slot
 * }
 * ```
 */
export interface GpuTensor {
  /** The buffer holding the elements. */
  readonly buffer: GPUBuffer;
  /** Byte offset in `buffer` (a multiple of 256 for arena slots). */
  readonly offset: number;
  /** Bytes: `length · 4`. */
  readonly size: number;
  /** Number of f32 elements. */
  readonly length: number;
}

/** The plain slot behind each guarded one (the library's own, frozen; see _slot_guard.ts). */
const RAW_SLOTS = new WeakMap<object, GpuTensor>();

/**
 * Records `raw` as the plain slot behind `guarded` (a state's guarded slot, _slot_guard.ts), for
 * {@linkcode unguarded}.
 *
 * @example
 * ```ts
 * import { markGuarded, unguarded } from "./gpu_tensors.ts";
 * import assert from "node:assert/strict";
 *
 * const raw = Object.freeze({ buffer: {} as GPUBuffer, offset: 0, size: 8, length: 2 });
 * const guarded = Object.freeze({ ...raw }); // (what a state shows)
 * markGuarded(guarded, raw);
 * assert.equal(unguarded(guarded), raw);
 * ```
 */
export function markGuarded(guarded: object, raw: GpuTensor): void {
  RAW_SLOTS.set(guarded, raw);
}

/**
 * The plain slot behind `value` where it is a guarded one (a state's `state.grads[name]`, see
 * _slot_guard.ts, given back to `step`), else undefined: checked as it is, a guarded slot's
 * `instanceof` walked the Proxy in its prototype chain, some 100 ns each, several times a tensor
 * a step. One WeakMap lookup, no read of the slot itself, for any value.
 *
 * @example
 * ```ts
 * import { unguarded } from "./gpu_tensors.ts";
 * import assert from "node:assert/strict";
 *
 * assert.equal(unguarded(new Float32Array(2)), undefined);
 * assert.equal(unguarded(undefined), undefined);
 * ```
 */
export function unguarded(value: unknown): GpuTensor | undefined {
  return typeof value === "object" && value !== null ? RAW_SLOTS.get(value) : undefined;
}

/**
 * A parameter or gradient the caller passes on the GPU: a whole `GPUBuffer` (its length is
 * `buffer.size / 4`, its size a multiple of 4) or `{ buffer, offset?, length }` (offset in
 * bytes, a multiple of 4).
 *
 * A parameter is updated in place, zero copy, when its buffer has STORAGE usage, its offset is
 * a multiple of the device's `minStorageBufferOffsetAlignment` and the buffer extends to the
 * 16-byte boundary after its last element; else, with COPY_SRC | COPY_DST usage, it is copied
 * into the state at init and back after each step. A range of another state's buffers on the
 * device (its slots: `opt.init(state.params, { device })`) is copied into the new state at
 * init, its own after (that state's steps and `dispose` leave it as it is).
 *
 * Its numeric `length` is what tells `{ buffer, length }`, one tensor, from
 * `{ buffer: aGPUBuffer }`, a record naming a tensor `"buffer"`.
 */
export type GpuTensorInput = GPUBuffer | {
  readonly buffer: GPUBuffer;
  readonly offset?: number;
  readonly length: number;
};

/**
 * Params for the WebGPU backend: Float32Arrays (uploaded once) or GPU tensors (updated in place
 * where they can be bound, see {@linkcode GpuTensorInput}), by name.
 */
export type GpuParams =
  | Float32Array
  | GpuTensorInput
  | Readonly<Record<string, Float32Array | ShapedTensor | GpuTensorInput>>;

/**
 * Gradients for a WebGPU state: Float32Arrays or GPU tensors (or the state's own slots).
 *
 * A GPU tensor in a buffer of a state on another device, or of a disposed state, or in a buffer of
 * yours that a state on another device has used (its param, a gradient it stepped from), is
 * refused at `step`'s call with a TypeError naming the tensor. Of a buffer you destroyed, or one
 * of another device that no state has used (or only states on a device lost since: a lost
 * device's checks pop clean unchecked, so what it took says nothing of the buffer's device),
 * WebGPU tells nothing at the call (it shows neither a buffer's device nor whether it is
 * destroyed, and checks them asynchronously): the GPU refuses that step (nothing of it runs, nor
 * is it counted), and the first call after its report (a `step`, which then loads nothing of its
 * own, or a read, which waits for it) throws a TypeError naming the tensor, the state as it was
 * before the refused step. Until that report, `state.step` counts the refused step, and steps
 * called in the meantime (a synchronous loop) are taken.
 */
export type GpuGrads =
  | Float32Array
  | GpuTensorInput
  | Readonly<Record<string, Float32Array | GpuTensorInput | GpuTensor>>;

function hasGpu(): boolean {
  return typeof GPUBuffer !== "undefined";
}

/**
 * Whether `x` is one GPU tensor: a GPUBuffer, or `{ buffer: GPUBuffer, offset?, length }` with
 * a numeric `length`. A record of tensors never has a number for a value, so a record naming a
 * tensor "buffer" (`{ buffer: aGPUBuffer }`, no length) is not one tensor.
 */
export function isGpuTensorInput(x: unknown): x is GpuTensorInput {
  if (!hasGpu() || typeof x !== "object" || x === null) return false;
  if (x instanceof GPUBuffer) return true;
  const t = x as { buffer?: unknown; length?: unknown };
  return t.buffer instanceof GPUBuffer && typeof t.length === "number";
}

/**
 * What to add to an error about a value that should have been a GPU tensor when it is
 * `{ buffer: GPUBuffer, … }` without a numeric length. Empty for anything else.
 */
export function lengthHint(x: unknown): string {
  const t = x as { buffer?: unknown; length?: unknown } | null;
  if (!hasGpu() || typeof t !== "object" || t === null || !(t.buffer instanceof GPUBuffer)) {
    return "";
  }
  const size = (t as { size?: unknown }).size;
  return ` (a GPU tensor { buffer, offset?, length } needs its length, a number of elements; got ${
    described(t.length)
  }${typeof size === "number" ? `: a GPUBufferBinding's size is in bytes, length: size / 4` : ""})`;
}

/** Names of the usage flags in `usage` that a tensor's buffer needs. */
function usageNames(usage: number): string {
  const names = [[0x04, "COPY_SRC"], [0x08, "COPY_DST"], [0x80, "STORAGE"]] as const;
  return names.filter(([bit]) => (usage & bit) !== 0).map(([, n]) => n).join(" | ");
}

/**
 * How an error names tensor `name` as a `what` ("parameter", "gradient of parameter"): the
 * tensor of a bare one, else by its name.
 *
 * @example
 * ```ts
 * import { tensorLabel } from "./gpu_tensors.ts";
 * import assert from "node:assert/strict";
 *
 * assert.equal(tensorLabel("w", "parameter"), 'parameter "w"');
 * assert.equal(tensorLabel("", "parameter"), "the parameter tensor");
 * ```
 */
export function tensorLabel(name: string, what: string): string {
  return name === SINGLE_TENSOR_NAME ? `the ${what} tensor` : `${what} ${JSON.stringify(name)}`;
}

/** The checked `{ buffer, offset, size, length }` of a GPU tensor input. */
export function gpuTensorOf(
  x: GpuTensorInput,
  name: string,
  what: string,
  needUsage: number,
): GpuTensor {
  const buffer = x instanceof GPUBuffer ? x : x.buffer;
  const offset = x instanceof GPUBuffer ? 0 : x.offset ?? 0;
  if (x instanceof GPUBuffer && x.size % 4 !== 0) {
    throw new RangeError(
      `Expected the buffer of ${
        tensorLabel(name, what)
      } to hold whole f32 elements (a size that is a multiple of 4 bytes), got a ${x.size}-byte buffer; pass { buffer, length } to use part of it`,
    );
  }
  const length = x instanceof GPUBuffer ? x.size / 4 : x.length;
  if (!Number.isSafeInteger(offset) || offset < 0 || offset % 4 !== 0) {
    throw new RangeError(
      `Expected the offset of ${
        tensorLabel(name, what)
      } to be a byte offset that is a multiple of 4, got ${described(offset)}`,
    );
  }
  if (!Number.isSafeInteger(length) || length < 0) {
    throw new RangeError(
      `Expected the length of ${tensorLabel(name, what)} to be a whole number of elements, got ${
        described(length)
      }`,
    );
  }
  if (offset + length * 4 > buffer.size) {
    throw new RangeError(
      `Expected ${
        tensorLabel(name, what)
      } to fit its buffer: ${length} elements at byte ${offset} of a ${buffer.size}-byte buffer`,
    );
  }
  if ((buffer.usage & needUsage) !== needUsage) {
    throw new TypeError(
      `Expected the buffer of ${tensorLabel(name, what)} to have usage ${
        usageNames(needUsage)
      } (got usage ${buffer.usage})`,
    );
  }
  if (buffer.mapState !== "unmapped") {
    throw new TypeError(
      `Expected the buffer of ${
        tensorLabel(name, what)
      } to be unmapped (the GPU cannot use a mapped buffer), got one ${buffer.mapState}: unmap it first`,
    );
  }
  return { buffer, offset, size: length * 4, length };
}
