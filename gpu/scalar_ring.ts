/**
 * The ring of per-step scalars of the WebGPU backend: the host's float64 scalars of each step t
 * (rounded to f32), written ahead into entry `t' mod RING_SIZE` of a GPU buffer and tagged with
 * t', so that the kernels read the entry of the step count the device keeps: t' = t − the steps
 * at the state's start (its init or loadState; for a state that goes on with another's count,
 * `GpuStepCounter.continueFrom`, that one's), which the device counts from (in a u32: a
 * checkpoint of any step count resumes, and 2³² − 1 steps are taken from there).
 *
 * An entry is a tag ({@linkcode RING_HEAD}), then the step's scalar blocks: one per parameter
 * group, each in the rule's block layout, the one table (name → word, type) the host's writer
 * (`writeBlock`, base/scalars.ts) and the WGSL struct and accessor of the rule's loop
 * (`wgslBlock`) are both made from.
 *
 * @module
 */
import {
  BLOCK_WORDS,
  HEADER,
  type ScalarLayout,
  type StepScalars,
  writeBlock,
} from "../base/scalars.ts";
import { wordsOf, type WordType } from "./_wgsl.ts";
import { RING_AHEAD, RING_KEPT, RING_SIZE, ringStride } from "./arena_layout.ts";

export { RING_AHEAD, RING_KEPT, RING_SIZE, ringStride };

/**
 * The head of a ring entry: the step t the entry was written for (`tag`), padded to a block.
 * The scalar blocks of the step follow it, one per parameter group (block 0 the optimizer's
 * own; base/scalars.ts), in the rule's layout (rules/).
 *
 * @example The word of the tag
 * ```ts
 * import { RING_WORD } from "./scalar_ring.ts";
 * import assert from "node:assert/strict";
 *
 * assert.equal(RING_WORD.tag, 0);
 * ```
 */
export const RING_HEAD = { tag: "u32" } as const satisfies Record<string, WordType>;

/** The word of each field of a ring entry's head. */
export const RING_WORD = wordsOf(RING_HEAD);

/**
 * Throws a RangeError, before anything is allocated, where a ring of entries of `blocks` scalar
 * blocks (one per parameter group up to the largest a run uses) is past what one storage
 * binding of `limits` holds: the kernels bind it whole.
 *
 * @example
 * ```ts
 * import { checkRingFits } from "./scalar_ring.ts";
 * import assert from "node:assert/strict";
 *
 * const limits = { maxStorageBufferBindingSize: 2 ** 27, maxBufferSize: 2 ** 28 };
 * checkRingFits(1000, limits);
 * assert.throws(() => checkRingFits(3000, limits), RangeError);
 * ```
 */
export function checkRingFits(
  blocks: number,
  limits: { readonly maxStorageBufferBindingSize: number; readonly maxBufferSize: number },
): void {
  const bytes = RING_SIZE * ringStride(blocks) * 4;
  const most = Math.min(limits.maxStorageBufferBindingSize, limits.maxBufferSize);
  if (bytes <= most) return;
  throw new RangeError(
    `The WebGPU backend keeps the step scalars of ${RING_SIZE} steps, a block each for ${
      blocks - 1
    } parameter groups: ${bytes} bytes, more than this device binds at once (${most}, maxStorageBufferBindingSize and maxBufferSize). Use fewer groups (tensors of the same lrScale and weightDecay can share one), or a device requested with larger limits`,
  );
}

/**
 * WGSL of the ring as the kernels read it (`ring: array<u32>` and the `Consts` uniform `s` with
 * `ring_size` and `stride` must be bound): `ring_entry(t)` (the first word of t's entry),
 * `ring_tag(e0)`, and `block_at(e0, group)` (the first word of a group's scalar block, which the
 * rule's `rule_values` reads), `block_grad_scale`, `block_sync` and `block_alpha` (the header
 * words of a block).
 */
export const RING_WGSL = /* wgsl */ `
fn ring_entry(t: u32) -> u32 { return (t % s.ring_size) * s.stride; }

fn ring_tag(e0: u32) -> u32 { return ring[e0 + ${RING_WORD.tag}u]; }

fn block_at(e0: u32, group: u32) -> u32 { return e0 + ${BLOCK_WORDS}u * (1u + group); }

// The gradient scale (word ${HEADER.gradScale} of every block: maximize's sign) of the block at base.
fn block_grad_scale(base: u32) -> f32 { return bitcast<f32>(ring[base + ${HEADER.gradScale}u]); }

// LookAhead's sync flag and alpha (words ${HEADER.sync} and ${HEADER.alpha} of every block) of the block at base.
fn block_sync(base: u32) -> u32 { return ring[base + ${HEADER.sync}u]; }
fn block_alpha(base: u32) -> f32 { return bitcast<f32>(ring[base + ${HEADER.alpha}u]); }
`;

/**
 * The ring of one state: its GPU buffer and a host copy of it. {@linkcode ScalarRing.write}
 * fills the host copy; {@linkcode ScalarRing.upload} sends what changed since the last upload
 * with one `writeBuffer` (two where it wraps).
 *
 * @example
 * ```ts ignore
 * const ring = new ScalarRing(device, 1, RADAM.scalars);
 * ring.write(1, [scalars], 1e-3);
 * ring.upload(); // before the submission of step 1
 * ```
 */
export class ScalarRing {
  /** The GPU buffer (`ring: array<u32>` in the kernels). */
  readonly buffer: GPUBuffer;
  /** u32 words of an entry. */
  readonly stride: number;
  readonly #queue: GPUQueue;
  readonly #f32: Float32Array<ArrayBuffer>;
  readonly #u32: Uint32Array<ArrayBuffer>;
  readonly #tags = new Float64Array(RING_SIZE).fill(-1);
  /** By slot: the learning rate the host computed for step `#lrTags[slot]` (-1: none). */
  readonly #lrs = new Float64Array(RING_SIZE);
  readonly #lrTags = new Float64Array(RING_SIZE).fill(-1);
  readonly #layout: ScalarLayout;
  readonly #blocks: number;
  /** The steps at the state's start, which the device counts from (see the module doc). */
  #base = 0;
  /** The steps (t') `[#from, #to)` whose entries are not uploaded yet. */
  #from = Infinity;
  #to = -Infinity;

  /** A ring of entries of `blocks` scalar blocks in `layout`, on `device`. */
  constructor(device: GPUDevice, blocks: number, layout: ScalarLayout) {
    this.#layout = layout;
    this.#blocks = blocks;
    this.stride = ringStride(blocks);
    const data = new ArrayBuffer(RING_SIZE * this.stride * 4);
    this.#f32 = new Float32Array(data);
    this.#u32 = new Uint32Array(data);
    this.#queue = device.queue;
    this.buffer = device.createBuffer({
      label: "radam step scalars",
      size: data.byteLength,
      usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST,
    });
  }

  /** Whether the entry of step `t` holds t's scalars. */
  has(t: number): boolean {
    return this.#tags[(t - this.#base) % RING_SIZE] === t;
  }

  /**
   * The learning rate the host computed for step `t`, where this ring knows it (written with t's
   * entry, or taken with it by {@linkcode ScalarRing.adopt}), else undefined.
   */
  learningRateOf(t: number): number | undefined {
    const slot = (t - this.#base) % RING_SIZE;
    return this.#lrTags[slot] === t ? this.#lrs[slot] : undefined;
  }

  /** Forgets every entry (a state restarting its count, at `base` steps). */
  clear(base: number): void {
    this.#base = base;
    this.#tags.fill(-1);
    this.#lrTags.fill(-1);
    this.#from = Infinity;
    this.#to = -Infinity;
  }

  /**
   * Writes the entry of step `t`: its tag, and the scalars of each parameter group, `groups[0]`
   * the optimizer's own (uploaded by the next {@linkcode ScalarRing.upload}), computed from the
   * learning rate `lr` (kept: see {@linkcode ScalarRing.learningRateOf}).
   */
  write(t: number, groups: readonly StepScalars[], lr: number): void {
    const own = t - this.#base;
    if (own > 0xffffffff) {
      throw new RangeError(
        `The WebGPU backend takes at most 2³² − 1 steps from a state's init or loadState (this one from step ${this.#base}); save the state and load it again to go on`,
      );
    }
    const slot = own % RING_SIZE;
    const first = slot * (1 + this.#blocks);
    this.#u32[first * BLOCK_WORDS + RING_WORD.tag] = own;
    for (let g = 0; g < this.#blocks; g++) {
      writeBlock(this.#layout, groups[g], this.#f32, this.#u32, first + 1 + g);
    }
    this.#tags[slot] = t;
    [this.#lrs[slot], this.#lrTags[slot]] = [lr, t];
    this.#from = Math.min(this.#from, own);
    this.#to = Math.max(this.#to, own + 1);
  }

  /**
   * Takes the entries of `other` (the ring of the state this one's replaces, counting from the
   * same base, of entries of the same layout) of the steps from `from` on that it holds (also
   * those written ahead of a count since lowered by skips reported): their scalars are those the
   * host computed for it, so a schedule is not asked again for them (uploaded by the next
   * {@linkcode ScalarRing.upload}). Its entries hold a block per parameter group up to the last
   * its state's tensors take: where that is before this one's (fewer blocks), only the learning
   * rates they were computed from are taken (the scalars of every group are computed from them);
   * where the layouts differ, nothing.
   */
  adopt(other: ScalarRing, from: number): void {
    if (other.#base !== this.#base || other.#layout !== this.#layout) return;
    const [stride, theirs] = [this.stride, other.stride];
    for (let t = from; t < from + RING_SIZE; t++) {
      const own = t - this.#base, slot = own % RING_SIZE;
      if (other.#lrTags[slot] !== t) continue;
      [this.#lrs[slot], this.#lrTags[slot]] = [other.#lrs[slot], t];
      if (!other.has(t) || theirs < stride) continue;
      // (The head and the blocks of the groups this one has: the same, group for group.)
      this.#u32.set(other.#u32.subarray(slot * theirs, slot * theirs + stride), slot * stride);
      this.#tags[slot] = t;
      this.#from = Math.min(this.#from, own);
      this.#to = Math.max(this.#to, own + 1);
    }
  }

  /** Uploads the entries written since the last upload. */
  upload(): void {
    if (this.#from >= this.#to) return;
    const stride = this.stride;
    const send = (a: number, b: number) =>
      this.#queue.writeBuffer(this.buffer, a * stride * 4, this.#u32, a * stride, (b - a) * stride);
    if (this.#to - this.#from >= RING_SIZE) send(0, RING_SIZE);
    else {
      const from = this.#from % RING_SIZE;
      const to = (this.#to - 1) % RING_SIZE + 1;
      if (from < to) send(from, to);
      else {
        send(from, RING_SIZE);
        send(0, to);
      }
    }
    this.#from = Infinity;
    this.#to = -Infinity;
  }
}
