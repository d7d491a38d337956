/**
 * Tensors on the GPU: the slot type of WebGPU states, and validation of GPU params and grads
 * (errors name the tensor; nothing changes on a bad call).
 *
 * @module
 */
import { described } from "../base/_errors.ts";
import { gradientListHint, tensorHint } from "../base/_input_hints.ts";
import {
  checkParams,
  checkTensorNames,
  gradientHint,
  isRecord,
  missingGradient,
  type ShapedTensor,
  SINGLE_TENSOR_NAME,
  unexpectedGradient,
} from "../base/tensors.ts";

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

/** Where a guarded slot holds the plain slot it shows (the library's own, frozen). */
export const RAW_SLOT: unique symbol = Symbol("raw slot");

/**
 * The plain slot behind `value` where it is a guarded one (a state's `state.grads[name]`, see
 * _slot_guard.ts, given back to `step`), else undefined: checked as it is, a guarded slot's
 * `instanceof` walked the Proxy in its prototype chain, some 100 ns each, several times a tensor
 * a step. One own property read, never the Proxy, for any value.
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
  return typeof value === "object" && value !== null
    ? (value as { [RAW_SLOT]?: GpuTensor })[RAW_SLOT]
    : undefined;
}

/**
 * The device of each buffer of states' arenas: a gradient in one of another device's is refused
 * at the step's call (the GPU's refusal was asynchronous; WebGPU shows no buffer's device).
 */
const SECTION_DEVICES = new WeakMap<GPUBuffer, GPUDevice>();
/** The slots of states' arenas, by their state's device: as gradients, taken as they are. */
const ARENA_SLOTS = new WeakMap<GpuTensor, GPUDevice>();

/**
 * Records `sections` as the arena buffers of a state on `device` (`createSections`,
 * section_io.ts), for {@linkcode checkGpuGrads}.
 *
 * @example
 * ```ts
 * import { recordSections } from "./gpu_tensors.ts";
 *
 * recordSections({} as GPUDevice, [{} as GPUBuffer]); // (device.createBuffer's)
 * ```
 */
export function recordSections(device: GPUDevice, sections: readonly GPUBuffer[]): void {
  for (const buffer of sections) SECTION_DEVICES.set(buffer, device);
}

/**
 * `slot`, a frozen range of an arena's section (`slotsOf`, section_io.ts; its buffer recorded by
 * {@linkcode recordSections}), recorded as sound (whole f32s of a COPY_SRC buffer never mapped)
 * with its device: {@linkcode checkGpuGrads} looks it up once, its buffer's fields not read.
 *
 * @example
 * ```ts
 * import { arenaSlot, checkGpuGrads, recordSections } from "./gpu_tensors.ts";
 * import assert from "node:assert/strict";
 *
 * const [device, other, buffer] = [{} as GPUDevice, {} as GPUDevice, {} as GPUBuffer];
 * recordSections(device, [buffer]);
 * const slot = Object.freeze({ buffer, offset: 0, size: 8, length: 2 });
 * assert.equal(arenaSlot(slot), slot);
 * assert.deepEqual(checkGpuGrads({ w: slot }, device, ["w"], [2], []), [slot]);
 * assert.throws(() => checkGpuGrads({ w: slot }, other, ["w"], [2], []), /another GPUDevice/);
 * ```
 */
export function arenaSlot(slot: GpuTensor): GpuTensor {
  const device = SECTION_DEVICES.get(slot.buffer);
  if (device !== undefined) ARENA_SLOTS.set(slot, device);
  return slot;
}

/**
 * `value`, no Float32Array, as the gradient of tensor `name` of a state on `device`: a state's
 * slot as it is, a caller's GPU tensor checked; else, or on another state's device, a TypeError.
 */
function gpuGradOf(value: unknown, name: string, device: GPUDevice): GpuTensor {
  let t = value as GpuTensor;
  let made = ARENA_SLOTS.get(t);
  if (made === undefined) {
    if (!isGpuTensorInput(value)) {
      throw new TypeError(
        `Expected the gradient of ${
          label(name, "parameter")
        } to be a Float32Array or a GPU tensor, got ${described(value)}${
          lengthHint(value) || gradientHint(value)
        }`,
      );
    }
    t = gpuTensorOf(value, name, "gradient of parameter", 0x04);
    made = SECTION_DEVICES.get(t.buffer);
  }
  if (made !== undefined && made !== device) {
    throw new TypeError(
      `Expected the gradient of ${
        label(name, "parameter")
      } to be in a buffer of the state's GPUDevice, got a range of the buffers of a state on another GPUDevice (the GPU copies nothing between devices): pass its values as a Float32Array (read back from there), or compute it on the state's device`,
    );
  }
  return t;
}

/**
 * A parameter or gradient the caller passes on the GPU: a whole `GPUBuffer` (its length is
 * `buffer.size / 4`, its size a multiple of 4) or `{ buffer, offset?, length }` (offset in
 * bytes, a multiple of 4).
 *
 * A parameter is updated in place, zero copy, when its buffer has STORAGE usage, its offset is
 * a multiple of the device's `minStorageBufferOffsetAlignment` and the buffer extends to the
 * 16-byte boundary after its last element; else, with COPY_SRC | COPY_DST usage, it is copied
 * into the state at init and back after each step (see {@linkcode placeGpuParams}).
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

/** Gradients for a WebGPU state: Float32Arrays or GPU tensors (or the state's own slots). */
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
function lengthHint(x: unknown): string {
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

function label(name: string, what: string): string {
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
        label(name, what)
      } to hold whole f32 elements (a size that is a multiple of 4 bytes), got a ${x.size}-byte buffer; pass { buffer, length } to use part of it`,
    );
  }
  const length = x instanceof GPUBuffer ? x.size / 4 : x.length;
  if (!Number.isSafeInteger(offset) || offset < 0 || offset % 4 !== 0) {
    throw new RangeError(
      `Expected the offset of ${
        label(name, what)
      } to be a byte offset that is a multiple of 4, got ${described(offset)}`,
    );
  }
  if (!Number.isSafeInteger(length) || length < 0) {
    throw new RangeError(
      `Expected the length of ${label(name, what)} to be a whole number of elements, got ${
        described(length)
      }`,
    );
  }
  if (offset + length * 4 > buffer.size) {
    throw new RangeError(
      `Expected ${
        label(name, what)
      } to fit its buffer: ${length} elements at byte ${offset} of a ${buffer.size}-byte buffer`,
    );
  }
  if ((buffer.usage & needUsage) !== needUsage) {
    throw new TypeError(
      `Expected the buffer of ${label(name, what)} to have usage ${
        usageNames(needUsage)
      } (got usage ${buffer.usage})`,
    );
  }
  if (buffer.mapState !== "unmapped") {
    throw new TypeError(
      `Expected the buffer of ${
        label(name, what)
      } to be unmapped (the GPU cannot use a mapped buffer), got one ${buffer.mapState}: unmap it first`,
    );
  }
  return { buffer, offset, size: length * 4, length };
}

/** Validated GPU params: names, and per tensor either host data or a GPU tensor. */
export interface CheckedGpuParams {
  readonly names: readonly string[];
  readonly lengths: readonly number[];
  /** Host data by index (Float32Array params). */
  readonly host: ReadonlyMap<number, Float32Array>;
  /** GPU tensors by index (caller-owned params). */
  readonly device: ReadonlyMap<number, GpuTensor>;
  /** Each tensor's shape: a `{ data, shape }` host tensor's own, else rank 1. */
  readonly shapes: readonly (readonly number[])[];
}

/** GPUBufferUsage.COPY_SRC | COPY_DST: what a param copied into and out of the arena needs. */
const COPY_USAGE = 0x04 | 0x08;
/** GPUBufferUsage.STORAGE: what a param updated in place needs. */
const STORAGE_USAGE = 0x80;

/** Validates params for the WebGPU backend (TypeError/RangeError naming the tensor). */
export function checkGpuParams(params: unknown): CheckedGpuParams {
  const single = params instanceof Float32Array || isGpuTensorInput(params);
  const record: Record<string, unknown> = single
    ? { [SINGLE_TENSOR_NAME]: params }
    : params as Record<string, unknown>;
  const hostOnly: Record<string, Float32Array> = {};
  const device = new Map<number, GpuTensor>();
  const host = new Map<number, Float32Array>();
  if (!isRecord(record)) checkParams(params); // throws the CPU path's message
  const names = Object.keys(record);
  checkTensorNames(names);
  const lengths: number[] = [];
  names.forEach((name, i) => {
    const value = record[name];
    // `{ buffer, offset, size }` (a GPUBufferBinding, as a state's slots are) without `length`:
    // given as the params, its numbers are not tensors; as a tensor, it is none of the CPU's.
    const binding = typeof value === "number" ? record : value;
    if (!isGpuTensorInput(value) && lengthHint(binding) !== "") {
      throw new TypeError(
        (binding === record
          ? `Expected the params to be a GPU tensor or a record of tensors, got { ${
            names.join(", ")
          } }`
          : `Expected ${label(name, "parameter")} to be a Float32Array, { data: Float32Array, ` +
            `shape } or a GPU tensor, got ${described(value)}`) + lengthHint(binding),
      );
    }
    if (isGpuTensorInput(value)) {
      const t = gpuTensorOf(value, name, "parameter", 0), usage = t.buffer.usage;
      if ((usage & STORAGE_USAGE) === 0 && (usage & COPY_USAGE) !== COPY_USAGE) {
        throw new TypeError(
          `Expected the buffer of ${
            label(name, "parameter")
          } to have usage STORAGE (to be updated in place) or COPY_SRC | COPY_DST (to be copied), got usage ${usage}`,
        );
      }
      device.set(i, t);
      lengths.push(t.length);
    } else {
      // A Float32Array, or a { data, shape } host tensor (checked by checkParams below).
      const data = (value as { data?: unknown })?.data instanceof Float32Array
        ? (value as { data: Float32Array }).data
        : value as Float32Array;
      hostOnly[name] = value as Float32Array;
      lengths.push(data?.length ?? 0);
      host.set(i, data);
    }
  });
  checkDisjoint(names, device);
  const shapes: (readonly number[])[] = lengths.map((n) => [n]);
  if (names.length === 0 || host.size > 0) {
    const checked = checkParams(names.length === 0 ? {} : hostOnly);
    const at = new Map(names.map((name, i) => [name, i])); // (not a scan of names for each)
    checked.names.forEach((name, k) => shapes[at.get(name)!] = checked.shapes[k]);
  }
  return { names, lengths, host, device, shapes };
}

/**
 * Throws a RangeError naming two params given as overlapping ranges of one buffer (each step
 * would write both there: neither would hold its own update).
 */
function checkDisjoint(names: readonly string[], device: ReadonlyMap<number, GpuTensor>): void {
  const byBuffer = new Map<GPUBuffer, number[]>();
  for (const [i, t] of device) {
    if (t.length > 0) byBuffer.set(t.buffer, [...byBuffer.get(t.buffer) ?? [], i]);
  }
  for (const indices of byBuffer.values()) {
    indices.sort((a, b) => device.get(a)!.offset - device.get(b)!.offset);
    for (let k = 1; k < indices.length; k++) {
      const a = device.get(indices[k - 1])!, b = device.get(indices[k])!;
      if (a.offset + a.size > b.offset) {
        throw new RangeError(
          `Expected ${label(names[indices[k - 1]], "parameter")} and ${
            label(names[indices[k]], "parameter")
          } to be disjoint ranges of their buffer, got bytes ${a.offset} to ${
            a.offset + a.size
          } and ${b.offset} to ${b.offset + b.size}: a step would write both there`,
        );
      }
    }
  }
}

/** Caller-owned params split by how the step reaches them (see {@linkcode placeGpuParams}). */
export interface PlacedGpuParams {
  /** Bound by the step kernel directly: updated in place, zero copy. */
  readonly inPlace: ReadonlyMap<number, GpuTensor>;
  /** Copied into the arena at init and back to the caller's buffer after each step. */
  readonly copied: ReadonlyMap<number, GpuTensor>;
}

/**
 * Decides for each caller-owned param (as {@linkcode checkGpuParams} returns them) whether the
 * step updates it in place, binding the caller's buffer range directly (zero copy), or copies
 * it: in place when its buffer has STORAGE usage, its byte offset is a multiple of the device's
 * `minStorageBufferOffsetAlignment`, and the buffer extends to the 16-byte boundary after its
 * last element (the kernel moves whole `vec4`s: up to 3 floats past a tensor whose length is not
 * a multiple of 4 are read and written back unchanged); else, with COPY_SRC | COPY_DST usage,
 * copied into the arena at init and back after every step (8 bytes a param a step). (A tensor of
 * 8-bit moments follows the same rule: the 8-bit kernel leaves the vec4s past its last element,
 * where its last block's padding lies, unbound.)
 * Throws a RangeError naming the tensor when neither is possible. Allocates nothing.
 */
export function placeGpuParams(
  checked: CheckedGpuParams,
  minStorageBufferOffsetAlignment: number,
): PlacedGpuParams {
  const inPlace = new Map<number, GpuTensor>();
  const copied = new Map<number, GpuTensor>();
  for (const [i, t] of checked.device) {
    const padded = Math.ceil(t.length / 4) * 16;
    const why = t.length === 0
      ? ""
      : (t.buffer.usage & STORAGE_USAGE) === 0
      ? "its buffer lacks STORAGE usage"
      : t.offset % minStorageBufferOffsetAlignment !== 0
      ? `its byte offset ${t.offset} is not a multiple of the device's minStorageBufferOffsetAlignment (${minStorageBufferOffsetAlignment})`
      : t.offset + padded > t.buffer.size
      ? `the kernel binds whole vec4s, ${padded} bytes from byte ${t.offset}, past the end of its ${t.buffer.size}-byte buffer`
      : "";
    if (why === "") inPlace.set(i, t);
    else if ((t.buffer.usage & COPY_USAGE) === COPY_USAGE) copied.set(i, t);
    else {
      throw new RangeError(
        `Expected ${
          label(checked.names[i], "parameter")
        } to be updatable in place or copyable: ${why}, and its buffer lacks COPY_SRC | COPY_DST usage for copying`,
      );
    }
  }
  return { inPlace, copied };
}

/** A gradient as checked for a step: a Float32Array as given, or a GPU tensor's range. */
export type CheckedGpuGrad = Float32Array | GpuTensor;

/**
 * Validates gradients for a WebGPU state on `device`: same names, Float32Arrays or GPU tensors of
 * the length (none in a buffer of a state on another device; a state's slot taken as it is).
 * Each gradient is read from the record once, into `out` (reused by the caller), which it
 * returns in the order of `names`: a Float32Array as given, a GPU tensor as its checked
 * `{ buffer, offset, size, length }`. The step loads those, never the record again. `visit`
 * (indices into `names`) is the order they are read and checked in (default `names`').
 */
export function checkGpuGrads(
  grads: unknown,
  device: GPUDevice,
  names: readonly string[],
  lengths: readonly number[],
  out: unknown[],
  visit?: readonly number[],
): (Float32Array | GpuTensor)[] {
  grads = unguarded(grads) ?? grads;
  const single = grads instanceof Float32Array || isGpuTensorInput(grads);
  if (single && names.length !== 1) {
    throw new TypeError(
      `A bare gradient needs a state with one tensor; this state has ${names.length}: pass a record keyed by ${
        names.map((n) => JSON.stringify(n)).join(", ")
      }`,
    );
  }
  if (!single && !isRecord(grads)) {
    throw new TypeError(
      `Grads must be a Float32Array, a GPU tensor or a record of them, got ${described(grads)}${
        tensorHint(grads) || gradientListHint(grads, names)
      }`,
    );
  }
  const record = single ? { [names[0]]: grads } : grads as Record<string, unknown>;
  for (let k = 0; k < names.length; k++) {
    const i = visit === undefined ? k : visit[k];
    const name = names[i];
    // Own enumerable keys only, as the CPU backends take them (a missing "constructor" is
    // missing, not Object.prototype's function; a hidden property is not a gradient).
    const given = Object.prototype.propertyIsEnumerable.call(record, name)
      ? record[name]
      : undefined;
    const value = unguarded(given) ?? given; // (a state's own slot: its plain one)
    if (value === undefined) {
      const error = missingGradient(name, record, names);
      error.message += single ? "" : lengthHint(record);
      throw error;
    }
    const checked = value instanceof Float32Array ? value : gpuGradOf(value, name, device);
    if (checked.length !== lengths[i]) {
      throw new RangeError(
        `Expected the gradient of ${label(name, "parameter")} to have length ${
          lengths[i]
        }, got ${checked.length}`,
      );
    }
    out[i] = checked;
  }
  // Every name is an own enumerable key: any more keys are ones of no tensor. (Not a search of
  // the names for each key: a step of a model of 1000 tensors spent a millisecond there.)
  if (Object.keys(record).length !== names.length) throw unexpectedGradient(record, names);
  return out as (Float32Array | GpuTensor)[];
}
