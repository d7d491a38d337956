/**
 * The gradients of a WebGPU step: their check against the state's tensors (Float32Arrays or GPU
 * tensors of the lengths; errors name the tensor, the state left as it was), and the buffers of
 * states' arenas by device, so that a state's own slot is taken as it is and another device's
 * refused at the call.
 *
 * @module
 */
import { described } from "../base/_errors.ts";
import { gradientListHint, tensorHint } from "../base/_input_hints.ts";
import { gradientHint, isRecord, missingGradient, unexpectedGradient } from "../base/tensors.ts";
import {
  type GpuTensor,
  gpuTensorOf,
  isGpuTensorInput,
  lengthHint,
  tensorLabel as label,
  unguarded,
} from "./gpu_tensors.ts";

/**
 * The buffers of one state's arena (its device, and whether `dispose` has destroyed them), or a
 * buffer of the caller's (`caller`) that the GPU has taken on a device.
 */
interface Arena {
  readonly device: GPUDevice;
  freed: boolean;
  readonly caller: boolean;
}

/**
 * The arena of each buffer of states' arenas, and the device of each buffer of the caller's the
 * GPU has taken (a param at init, a gradient of a step): a gradient in one of another device's,
 * or of a disposed state's, is refused at the step's call. WebGPU shows neither a buffer's
 * device nor whether it is destroyed, and refuses a step that uses one asynchronously (the
 * error scope of `WebGpuBackend.update`: the call after throws); a buffer the library has not
 * seen is the GPU's to find.
 */
const KNOWN_BUFFERS = new WeakMap<GPUBuffer, Arena>();
/**
 * Devices lost (as their states heard): an error scope of one pops clean with nothing checked,
 * so a buffer of the caller's it "took" may be another device's, and is neither recorded as its
 * own nor refused by such a record.
 */
const LOST_DEVICES = new WeakSet<GPUDevice>();
/** The slots of states' arenas, by their state's arena: as gradients, taken as they are. */
const ARENA_SLOTS = new WeakMap<GpuTensor, Arena>();

/**
 * Records `sections` as the arena buffers of a state on `device` (`createSections`,
 * section_io.ts), for {@linkcode checkGpuGrads}.
 *
 * @example
 * ```ts
 * import { recordSections } from "./_gpu_grads.ts";
 *
 * recordSections({} as GPUDevice, [{} as GPUBuffer]); // (device.createBuffer's)
 * ```
 */
export function recordSections(device: GPUDevice, sections: readonly GPUBuffer[]): void {
  const arena: Arena = { device, freed: false, caller: false };
  for (const buffer of sections) KNOWN_BUFFERS.set(buffer, arena);
}

/**
 * Records `buffers`, the caller's, as of `device`, whose GPU has taken them (an error scope
 * around their use popped clean): given as a gradient of a state on another device, one is
 * refused by {@linkcode checkGpuGrads} at the call, naming the tensor.
 *
 * @example
 * ```ts
 * import { recordCallerBuffers } from "./_gpu_grads.ts";
 *
 * recordCallerBuffers({} as GPUDevice, [{} as GPUBuffer]); // (a buffer the GPU took)
 * ```
 */
export function recordCallerBuffers(device: GPUDevice, buffers: readonly GPUBuffer[]): void {
  if (LOST_DEVICES.has(device)) return; // (its scope popped clean unchecked)
  for (const buffer of buffers) {
    if (!KNOWN_BUFFERS.has(buffer)) {
      KNOWN_BUFFERS.set(buffer, { device, freed: false, caller: true });
    }
  }
}

/**
 * The device of the state whose arena `buffer` is one of (recorded by
 * {@linkcode recordSections}), while that state is not disposed; else undefined (a buffer of the
 * caller's, or of a disposed state).
 *
 * @example
 * ```ts
 * import { recordSections, stateBufferDevice } from "./_gpu_grads.ts";
 * import assert from "node:assert/strict";
 *
 * const [device, buffer] = [{} as GPUDevice, {} as GPUBuffer];
 * recordSections(device, [buffer]);
 * assert.equal(stateBufferDevice(buffer), device);
 * assert.equal(stateBufferDevice({} as GPUBuffer), undefined);
 * ```
 */
export function stateBufferDevice(buffer: GPUBuffer): GPUDevice | undefined {
  const arena = KNOWN_BUFFERS.get(buffer);
  return arena === undefined || arena.caller || arena.freed ? undefined : arena.device;
}

/**
 * Records `device` as lost (its `lost` promise resolved): the buffers of the caller's recorded
 * as its own are no longer told from others' by that record (a scope that popped clean as it
 * was lost checked nothing), and none is recorded as its own any more; the GPU refuses a step
 * of another device that uses one.
 *
 * @example
 * ```ts
 * import { recordLost } from "./_gpu_grads.ts";
 *
 * recordLost({} as GPUDevice); // (its lost promise resolved)
 * ```
 */
export function recordLost(device: GPUDevice): void {
  LOST_DEVICES.add(device);
}

/**
 * Records `sections` (of {@linkcode recordSections}) as destroyed with their state: a gradient
 * in one of them is refused by {@linkcode checkGpuGrads} at the call, naming the tensor.
 *
 * @example
 * ```ts
 * import { arenaSlot, checkGpuGrads, recordFreed, recordSections } from "./_gpu_grads.ts";
 * import assert from "node:assert/strict";
 *
 * const [device, buffer] = [{} as GPUDevice, {} as GPUBuffer];
 * recordSections(device, [buffer]);
 * const slot = arenaSlot(Object.freeze({ buffer, offset: 0, size: 8, length: 2 }));
 * recordFreed([buffer]);
 * assert.throws(() => checkGpuGrads({ w: slot }, device, ["w"], [2], []), /a disposed state/);
 * ```
 */
export function recordFreed(sections: readonly GPUBuffer[]): void {
  for (const buffer of sections) {
    const arena = KNOWN_BUFFERS.get(buffer);
    if (arena !== undefined) arena.freed = true;
  }
}

/**
 * `slot`, a frozen range of an arena's section (`slotsOf`, section_io.ts; its buffer recorded by
 * {@linkcode recordSections}), recorded as sound (whole f32s of a COPY_SRC buffer never mapped)
 * with its arena: {@linkcode checkGpuGrads} looks it up once, its buffer's fields not read.
 *
 * @example
 * ```ts
 * import { arenaSlot, checkGpuGrads, recordSections } from "./_gpu_grads.ts";
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
  const arena = KNOWN_BUFFERS.get(slot.buffer);
  if (arena !== undefined) ARENA_SLOTS.set(slot, arena);
  return slot;
}

/**
 * `value`, no Float32Array, as the gradient of tensor `name` of a state on `device`: a state's
 * slot as it is, a caller's GPU tensor checked; else, or in the buffers of a disposed state or
 * of a state on another device, a TypeError.
 */
function gpuGradOf(value: unknown, name: string, device: GPUDevice): GpuTensor {
  let t = value as GpuTensor;
  let arena = ARENA_SLOTS.get(t);
  if (arena === undefined) {
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
    arena = KNOWN_BUFFERS.get(t.buffer);
    // (Recorded by a device lost since: maybe as its scope popped clean, unchecked.)
    if (arena?.caller && LOST_DEVICES.has(arena.device)) arena = undefined;
  }
  if (arena !== undefined && (arena.freed || arena.device !== device)) {
    throw new TypeError(
      `Expected the gradient of ${label(name, "parameter")} ${
        arena.freed
          ? "to be in a live GPU buffer, got a range of the buffers of a disposed state (dispose destroyed them): pass a slot of a state in use, or the values as a Float32Array"
          : `to be in a buffer of the state's GPUDevice, got ${
            arena.caller
              ? "a GPUBuffer of another GPUDevice (one a state there has used)"
              : "a range of the buffers of a state on another GPUDevice"
          } (the GPU copies nothing between devices): pass its values as a Float32Array (read back from there), or compute it on the state's device`
      }`,
    );
  }
  return t;
}

/**
 * `value` (no state's guarded slot) as the gradient of tensor `name` of `length` elements of a
 * state on `device`: a Float32Array as given, a GPU tensor as {@linkcode gpuGradOf} takes it.
 */
function checkedGrad(
  value: unknown,
  name: string,
  length: number,
  device: GPUDevice,
): CheckedGpuGrad {
  const checked = value instanceof Float32Array ? value : gpuGradOf(value, name, device);
  if (checked.length !== length) {
    throw new RangeError(
      `Expected the gradient of ${
        label(name, "parameter")
      } to have length ${length}, got ${checked.length}`,
    );
  }
  return checked;
}

/** A gradient as checked for a step: a Float32Array as given, or a GPU tensor's range. */
export type CheckedGpuGrad = Float32Array | GpuTensor;

/**
 * Validates gradients for a WebGPU state on `device`: same names, Float32Arrays or GPU tensors of
 * the length (none in a buffer of a disposed state or of a state on another device; a state's
 * slot taken as it is).
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
  if (single) { // (checked as it is: no record made around it)
    out[0] = checkedGrad(grads, names[0], lengths[0], device);
    return out as CheckedGpuGrad[];
  }
  const record = grads as Record<string, unknown>;
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
      error.message += lengthHint(record);
      throw error;
    }
    out[i] = checkedGrad(value, name, lengths[i], device);
  }
  // Every name is an own enumerable key: any more keys are ones of no tensor. (Not a search of
  // the names for each key: a step of a model of 1000 tensors spent a millisecond there.)
  if (Object.keys(record).length !== names.length) throw unexpectedGradient(record, names);
  return out as (Float32Array | GpuTensor)[];
}
