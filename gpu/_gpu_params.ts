/**
 * The params of a WebGPU state as the caller gives them: their check (names, Float32Arrays or
 * GPU tensors, disjoint ranges; errors name the tensor) and, for those on the GPU, whether the
 * step updates each in place or copies it. Loaded with `init`'s checks, before the backend.
 *
 * @module
 */
import { described } from "../base/_errors.ts";
import { checkParams, checkTensorNames, isRecord, SINGLE_TENSOR_NAME } from "../base/tensors.ts";
import {
  type GpuTensor,
  gpuTensorOf,
  isGpuTensorInput,
  lengthHint,
  tensorLabel as label,
} from "./gpu_tensors.ts";

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
      const t = gpuTensorOf(value, name, "parameter", 0);
      const usage = t.buffer.usage;
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
