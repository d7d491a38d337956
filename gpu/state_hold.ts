/**
 * A hold of some tensors' state and of the step counts of a WebGPU state, as they are at a point
 * of its queue (`holdTensorState`): their bytes copied on the GPU into buffers of the hold's own,
 * packed as a read of them packs them (tensor_state_read.ts), and the control buffer's words
 * (device_counter.ts) copied in the same submission, so that steps submitted after it change
 * nothing of it. Init's option `from` takes a WebGPU state's so at the call.
 *
 * @module
 */
import type { DeviceBackend, HeldState, TensorState } from "../base/backend.ts";
import { CONTROL_BYTES } from "./control.ts";
import type { GpuStepCounter, ReadMark } from "./device_counter.ts";
import { explainMapFailure } from "./map_failure.ts";
import { encodeHeldCopy, type StateBuffers } from "./state_copy.ts";
import { type TensorStateRead, tensorStateRead } from "./tensor_state_read.ts";

/** The state a hold is taken of, and how it waits for its steps' report. */
export interface HoldSource {
  readonly device: GPUDevice;
  readonly buffers: StateBuffers;
  readonly counter: GpuStepCounter;
  /** Throws if the state can no longer be read (disposed, its device lost). */
  readonly checkUsable: () => void;
  /**
   * Runs `work` once the device has reported every step submitted before `mark` (after the
   * state's reads begun before), rejecting instead with the halt or refusal of one of them;
   * unmarks `mark` either way.
   */
  readonly afterSteps: <R>(mark: ReadMark, work: () => Promise<R>) => Promise<R>;
  /** The buffers of `target`, a live state on the same device; else throws. */
  readonly buffersOf: (target: DeviceBackend) => StateBuffers;
}

// (Read at the call, not at load: the module is in the bundle of apps that never reach WebGPU,
// where GPUBufferUsage is not defined.)
const heldUsage = () => GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST;
const mappedUsage = () => GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST;

/**
 * Holds the state of the tensors `names` of `source` and its step counts as they are now (a
 * RangeError, holding nothing, where its layout lacks one of them).
 *
 * @example
 * ```ts ignore
 * const held = holdState(source, ["w"]); // the state now
 * const { steps } = await held.settled;
 * held.copyInto(next);
 * held.discard();
 * ```
 */
export function holdState(source: HoldSource, names: readonly string[]): HeldState {
  source.checkUsable();
  const { device, buffers } = source;
  const read = tensorStateRead(buffers.layout, names);
  const sizes = read.ranges.map((r) => Math.max(16, r.bytes));
  const held = sizes.map((size) =>
    device.createBuffer({ label: "radam held state", size, usage: heldUsage() })
  );
  const control = device.createBuffer({
    label: "radam held step counters",
    size: CONTROL_BYTES,
    usage: mappedUsage(),
  });
  submitHoldCopy(source, read, held, control);
  return heldCopy(source, read, { held, sizes, control });
}

/** The buffers of a hold: the tensors' state (`held`, of `sizes`) and the step counters. */
interface HoldBuffers {
  readonly held: readonly GPUBuffer[];
  readonly sizes: readonly number[];
  readonly control: GPUBuffer;
}

/** Copies the ranges of `read` into `held`, and the control words into `control`, at once. */
function submitHoldCopy(
  source: HoldSource,
  read: TensorStateRead,
  held: readonly GPUBuffer[],
  control: GPUBuffer,
): void {
  const { device, buffers } = source;
  const encoder = device.createCommandEncoder();
  read.ranges.forEach((r, k) => {
    let at = 0;
    for (const [offset, length] of r.pieces ?? []) {
      encoder.copyBufferToBuffer(buffers.sections[r.section], offset, held[k], at, length);
      at += length;
    }
  });
  encoder.copyBufferToBuffer(source.counter.control, 0, control, 0, CONTROL_BYTES);
  device.queue.submit([encoder.finish()]);
}

/** The hold of the copy `submitHoldCopy` submitted into `buffers`: settled, read, copied, discarded. */
function heldCopy(source: HoldSource, read: TensorStateRead, buffers: HoldBuffers): HeldState {
  const { device } = source;
  const { held, sizes, control } = buffers;
  let discarded = false;
  const given = () => new Error("The held state was discarded before it was read");
  /** Maps `buffer` (of the hold's), saying why where it fails. */
  const map = async (buffer: GPUBuffer) => {
    if (discarded) throw given();
    try {
      await buffer.mapAsync(GPUMapMode.READ);
    } catch (error) {
      if (discarded) throw given(); // (aborted by discard: the device may well live on)
      await explainMapFailure(device, error, () => {});
      throw error;
    }
  };
  const settled = source.afterSteps(source.counter.mark(), async () => {
    await map(control);
    const words = new Uint32Array(control.getMappedRange().slice(0));
    control.unmap();
    return source.counter.countsAt(words);
  });
  settled.catch(() => {}); // (a hold given up unread)
  return {
    settled,
    read: async () => {
      await settled;
      if (discarded) throw given();
      return await readHeld(device, held, sizes, map, read.parse);
    },
    copyInto: (target) => {
      if (discarded) throw given();
      const to = source.buffersOf(target);
      const encoder = device.createCommandEncoder();
      encodeHeldCopy(encoder, read, held, to);
      device.queue.submit([encoder.finish()]);
    },
    discard: () => {
      if (discarded) return;
      discarded = true;
      for (const buffer of held) buffer.destroy();
      control.destroy();
    },
  };
}

/** The bytes of `held` (of `sizes`), copied back to the host, taken apart by `parse`. */
async function readHeld(
  device: GPUDevice,
  held: readonly GPUBuffer[],
  sizes: readonly number[],
  map: (buffer: GPUBuffer) => Promise<void>,
  parse: (bytes: ArrayBuffer[]) => Record<string, TensorState>,
): Promise<Record<string, TensorState>> {
  const back = sizes.map((size) =>
    device.createBuffer({ label: "radam readback", size, usage: mappedUsage() })
  );
  try {
    const encoder = device.createCommandEncoder();
    held.forEach((buffer, k) => encoder.copyBufferToBuffer(buffer, 0, back[k], 0, sizes[k]));
    device.queue.submit([encoder.finish()]);
    await Promise.all(back.map(map));
    return parse(back.map((buffer, k) => buffer.getMappedRange(0, sizes[k])));
  } finally {
    for (const buffer of back) buffer.destroy();
  }
}
