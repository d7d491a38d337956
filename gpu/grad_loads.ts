/**
 * The gradients of a WebGPU step, loaded into the state's gradient slots: Float32Arrays by one
 * `queue.writeBuffer` each, GPU tensors by a buffer copy in the step's command buffer, a slot
 * given for its own tensor not at all.
 *
 * A gradient may be a range of the state's own grads buffer other than its tensor's slot
 * (another tensor's slot, a range overlapping slots). WebGPU copies nothing within one buffer,
 * and that range may be overwritten by this very step's loads; so such ranges are first copied
 * into a scratch buffer of the state's (made at the first step that needs one, grown when a
 * later one needs more), in a submission before any of the step's writes, then from there into
 * their slots with the other copies: every gradient is read as it was when `step` was called.
 * Ranges of the state's other buffers (its params) are copied directly, before the update.
 *
 * @module
 */
import type { GpuTensor } from "./gpu_tensors.ts";

/**
 * The gradient loads of one state, pending until its next step is encoded.
 *
 * @example
 * ```ts ignore
 * const loads = new GradLoads(device, sections[GRADS], gradSlots, sections);
 * loads.load(checkedGrads); // uploads the Float32Arrays
 * const encoder = device.createCommandEncoder();
 * loads.encode(encoder); // the GPU tensors' copies, before the step's compute pass
 * ```
 */
export class GradLoads {
  readonly #device: GPUDevice;
  /** The grads section. */
  readonly #grads: GPUBuffer;
  /** The state's buffers a gradient may be read from without a check by the GPU. */
  readonly #own: ReadonlySet<GPUBuffer>;
  readonly #slots: readonly GpuTensor[];
  /** Pending copies (reused arrays): source buffer and byte offset, target tensor. */
  readonly #sources: GPUBuffer[] = [];
  readonly #offsets: number[] = [];
  readonly #targets: number[] = [];
  /** Tensors whose pending copy reads a buffer the state does not own. */
  readonly #foreign: number[] = [];
  /** The buffers those copies read, in the same order. */
  readonly #foreignBuffers: GPUBuffer[] = [];
  #scratch: GPUBuffer | undefined;

  /**
   * The loads into `slots` (the gradient slots, in the layout's order, in `grads`); `own` are
   * the state's buffers, which need no check by the GPU.
   */
  constructor(
    device: GPUDevice,
    grads: GPUBuffer,
    slots: readonly GpuTensor[],
    own: readonly GPUBuffer[],
  ) {
    this.#device = device;
    this.#grads = grads;
    this.#slots = slots;
    this.#own = new Set(own);
  }

  /**
   * Loads checked gradients, one per tensor in the layout's order: a Float32Array uploaded now,
   * a GPU tensor copied when the step is encoded ({@linkcode encode}); a pending load of an
   * earlier call that no step encoded is replaced.
   */
  load(grads: readonly (Float32Array | GpuTensor)[]): void {
    this.#clear();
    const staged = this.#stage(grads);
    for (let i = 0; i < this.#slots.length; i++) {
      const value = grads[i];
      const slot = this.#slots[i];
      if (value instanceof Float32Array) {
        // (a zero-length writeBuffer panics Deno 2.9's WebGPU)
        if (value.length > 0) {
          this.#device.queue.writeBuffer(
            slot.buffer,
            slot.offset,
            value as Float32Array<ArrayBuffer>,
          );
        }
      } else if (value.length > 0 && !isSlot(value, slot) && !staged) {
        this.#push(value.buffer, value.offset, i);
      }
    }
  }

  /** Whether a pending copy reads a buffer the state does not own (the GPU checks it). */
  get foreign(): readonly number[] {
    return this.#foreign;
  }

  /** The buffers the pending copies of {@linkcode foreign} read, in the same order. */
  get foreignBuffers(): readonly GPUBuffer[] {
    return this.#foreignBuffers;
  }

  /** Encodes the pending copies into `encoder` (before the step's compute pass), and clears them. */
  encode(encoder: GPUCommandEncoder): void {
    for (let k = 0; k < this.#sources.length; k++) {
      const slot = this.#slots[this.#targets[k]];
      encoder.copyBufferToBuffer(
        this.#sources[k],
        this.#offsets[k],
        slot.buffer,
        slot.offset,
        slot.size,
      );
    }
    this.#clear();
  }

  /** Frees the scratch buffer. */
  destroy(): void {
    this.#scratch?.destroy();
  }

  #clear(): void {
    this.#sources.length = 0;
    this.#offsets.length = 0;
    this.#targets.length = 0;
    this.#foreign.length = 0;
    this.#foreignBuffers.length = 0;
  }

  #push(buffer: GPUBuffer, offset: number, target: number): void {
    this.#sources.push(buffer);
    this.#offsets.push(offset);
    this.#targets.push(target);
    if (buffer !== this.#scratch && !this.#own.has(buffer)) {
      this.#foreign.push(target);
      this.#foreignBuffers.push(buffer);
    }
  }

  /**
   * Where some gradient is a range of the grads buffer other than its slot: every GPU tensor
   * gradient (but the slots given for their own tensor) is made a pending copy, those ranges
   * from the scratch buffer they are copied into now (one submission); whether it did.
   */
  #stage(grads: readonly (Float32Array | GpuTensor)[]): boolean {
    let bytes = 0;
    for (let i = 0; i < this.#slots.length; i++) {
      const g = grads[i];
      if (!(g instanceof Float32Array) && this.#inGrads(g, i)) bytes += g.size;
    }
    if (bytes === 0) return false;
    if (this.#scratch === undefined || this.#scratch.size < bytes) {
      // (Steps already submitted keep the old one alive until they have run.)
      this.#scratch?.destroy();
      this.#scratch = this.#device.createBuffer({
        label: "radam gradients staged from the grads buffer",
        size: Math.ceil(bytes / 256) * 256,
        usage: GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST,
      });
    }
    const scratch = this.#scratch;
    const encoder = this.#device.createCommandEncoder();
    let at = 0;
    for (let i = 0; i < this.#slots.length; i++) {
      const g = grads[i];
      if (g instanceof Float32Array || g.length === 0 || isSlot(g, this.#slots[i])) continue;
      if (this.#inGrads(g, i)) {
        encoder.copyBufferToBuffer(g.buffer, g.offset, scratch, at, g.size);
        this.#push(scratch, at, i);
        at += g.size;
      } else this.#push(g.buffer, g.offset, i);
    }
    this.#device.queue.submit([encoder.finish()]);
    return true;
  }

  /** Whether gradient `g` of tensor `i` is a range of the grads buffer other than its slot. */
  #inGrads(g: GpuTensor, i: number): boolean {
    return g.buffer === this.#grads && g.length > 0 && !isSlot(g, this.#slots[i]);
  }
}

/** Whether `value` names the bytes of `slot` (the slot itself, or a copy of its fields). */
function isSlot(value: GpuTensor, slot: GpuTensor): boolean {
  return value === slot || (value.buffer === slot.buffer && value.offset === slot.offset);
}
