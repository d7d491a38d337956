/**
 * The step counts the WebGPU backend keeps on the device: whether a step is taken (a non-finite
 * gradient skips it or halts the state) is known only there, so the device counts the steps in
 * a control buffer and the host reads the counts back asynchronously.
 *
 * The control buffer's layout and `decide` (WGSL, run by one invocation before a step's update,
 * which counts the submission and takes, skips or halts the step) are control.ts's;
 * {@linkcode GpuStepCounter} is the host's side.
 *
 * @module
 */
import type { ArenaLayout } from "../base/arena.ts";
import type { DeviceCounter } from "../base/backend.ts";
import { blockCount, type ScalarLayout, type StepScalars } from "../base/scalars.ts";
import { CONTROL_BYTES, CONTROL_WORD, NAN_BITS } from "./control.ts";
import { explainMapFailure } from "./map_failure.ts";
import type { NonFiniteOrder } from "./nonfinite_order.ts";
import { HALT, nonFiniteError, noScalarsError } from "./halt_error.ts";
import { RING_AHEAD, RING_KEPT, ScalarRing } from "./scalar_ring.ts";

export { HALT } from "./halt_error.ts";

/** Steps from one counter readback started with a step to the next (else one a step, awaited). */
const READBACK_EVERY = 8;

/** `count`'s words as the device keeps a count past 2³² (`[low, high]`: control.ts). */
function splitCount(count: number): [number, number] {
  return [count % 2 ** 32, Math.floor(count / 2 ** 32)];
}

/** The count of the words `low` and `high` of `words` (see {@linkcode splitCount}). */
function countOf(words: Uint32Array, low: number, high: number): number {
  return words[high] * 2 ** 32 + words[low];
}

/** The steps submitted before a read began (`GpuStepCounter.mark`), until it ends (`unmark`). */
export interface ReadMark {
  /** Steps submitted, refused ones too. */
  readonly sequence: number;
  /** Steps submitted and not refused: one less for each refusal found after the mark of one before. */
  readonly submitted: number;
}

/** What the device last reported. */
interface Reported {
  submitted: number;
  taken: number;
  skipped: number;
  norm: number;
}

/**
 * The host's side of the device's step counts (`DeviceCounter`), with the ring of scalars: what
 * the device last reported, the steps submitted since, the readbacks, and the halts' errors.
 *
 * @example
 * ```ts ignore
 * const counter = new GpuStepCounter(device, layout, RADAM.scalars, () => backend.checkUsable());
 * counter.beforeSubmit();
 * const report = counter.encodeReport(encoder);
 * device.queue.submit([encoder.finish()]);
 * counter.submitted(report);
 * ```
 */
export class GpuStepCounter implements DeviceCounter {
  /** The control buffer (`Control` in the WGSL). */
  readonly control: GPUBuffer;
  /** The ring of scalars the kernels read. */
  readonly ring: ScalarRing;
  readonly #device: GPUDevice;
  readonly #order: NonFiniteOrder;
  readonly #checkUsable: () => void;
  readonly #staging: GPUBuffer;
  readonly #reported: Reported = { submitted: 0, taken: 0, skipped: 0, norm: NaN };
  /** Steps taken at `start`: the device counts from 0 (at most 2³² − 1: scalar_ring.ts). */
  #baseTaken = 0;
  #readback: Promise<void> | undefined;
  /** Why the last readback failed, if the device was not lost (settle reports it). */
  #readbackError: unknown;
  /** Set by `destroy`: a readback still in flight then finds its buffer gone and ends quietly. */
  #destroyed = false;
  /** `#submitted` when the last readback with a step began. */
  #readbackAt = -Infinity;
  /** Steps submitted since `start`. */
  #submitted = 0;
  /** Submissions up to this one are known not to count (a halt was reported and cleared). */
  #countedFrom = 0;
  /** The halt last reported, until `takeFault` hands it out, and the submission it halted at. */
  #fault: Error | undefined;
  #faultAt = 0;
  /** Why the GPU refused a step's commands, until `takeFault` hands it out, and that step's. */
  #refused: Error | undefined;
  #refusedAt = 0;
  /** Steps refused after that one before it was handed out (its error says how many). */
  #refusedLater = 0;
  /** Steps submitted since `start`, refused ones too (never renumbered: a read's mark). */
  #sequence = 0;
  /** The steps `watch`ed whose check has not settled yet. */
  #checking = 0;
  /** `settle`'s wait for those checks, and what resolves it when the last one settles. */
  #checked: { wait: Promise<void>; resolve: () => void } | undefined;
  /** `#submitted` when the readback in flight (or the last one) began. */
  #readbackFrom = 0;
  /** See `scalarsFrom`: set by `continueFrom`, until the next step's scalars are written. */
  #scalarsFrom = Infinity;
  /** The marks of the reads under way (`#refuse` renumbers them as it does the host's counts). */
  readonly #marks = new Set<{ sequence: number; submitted: number }>();

  /** The counter of a state of `layout` whose rule's blocks are laid out as `scalars`. */
  constructor(
    device: GPUDevice,
    layout: ArenaLayout,
    scalars: ScalarLayout,
    checkUsable: () => void,
    order: NonFiniteOrder,
  ) {
    this.#device = device;
    this.#order = order;
    this.#checkUsable = checkUsable;
    this.ring = new ScalarRing(device, blockCount(layout.segments), scalars);
    this.control = device.createBuffer({
      label: "radam grad norm and step counters",
      size: CONTROL_BYTES,
      usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST | GPUBufferUsage.COPY_SRC,
    });
    this.#staging = device.createBuffer({
      label: "radam step counters readback",
      size: CONTROL_BYTES,
      usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST,
    });
  }

  get steps(): number { // (those since the report first: taken + submitted may pass 2⁵³)
    const r = this.#reported;
    return r.taken + (this.#submitted - Math.max(r.submitted, this.#countedFrom));
  }

  get skipped(): number {
    return this.#reported.skipped;
  }

  /**
   * The steps taken as the device last reported them: at most those taken now, which `steps`
   * bounds from above (it counts every step submitted since as taken).
   */
  get reportedSteps(): number {
    return this.#reported.taken;
  }

  /**
   * The steps taken at `start`, from which the device counts its own (`taken`, and the t' of
   * a step in `step_t`: the step count of a step taken is this plus its t').
   */
  get startSteps(): number {
    return this.#baseTaken;
  }

  get lastNorm(): number {
    return this.#reported.norm;
  }

  /** Steps' scalars `stepOnDevice` writes at once (from t on); uploaded by one `writeBuffer`. */
  get scalarsAhead(): number {
    return RING_AHEAD;
  }

  get scalarsFrom(): number {
    return this.#scalarsFrom;
  }

  /**
   * `visit`: the layout indices in the order gradients are checked in (a halt names the first
   * bad one in it); `submitted`: the submissions to count from (tests start near the u32 wrap).
   */
  start(steps: number, skipped: number, visit?: readonly number[], submitted = 0): void {
    if (visit) this.#order.set(visit);
    Object.assign(this.#reported, { submitted, taken: steps, skipped, norm: NaN });
    this.#baseTaken = steps;
    this.#submitted = this.#countedFrom = this.#readbackFrom = submitted;
    this.#readbackAt = -Infinity;
    this.#fault = undefined;
    this.#scalarsFrom = Infinity;
    this.ring.clear(steps);
    const words = new Uint32Array(CONTROL_BYTES / 4);
    words[CONTROL_WORD.norm_bits] = NAN_BITS; // no norm yet
    words[CONTROL_WORD.submitted] = submitted; // (mod 2³²)
    [words[CONTROL_WORD.skipped], words[CONTROL_WORD.skipped_hi]] = splitCount(skipped);
    this.#device.queue.writeBuffer(this.control, 0, words);
  }

  hasScalars(t: number): boolean {
    return this.ring.has(t);
  }

  knownLearningRate(t: number): number | undefined {
    return this.ring.learningRateOf(t);
  }

  writeScalars(t: number, groups: readonly StepScalars[], lr: number): void {
    this.ring.write(t, groups, lr);
    // (Those below it are written next, or left out where they fail: see stepOnDevice.)
    if (t === this.steps + 1) this.#scalarsFrom = Infinity;
  }

  /**
   * Goes on with the count of `from`, the counter of the state this one's replaces (at a change
   * of its tensors; after `start`, before a step), with no readback: the steps at its start and
   * the counts it last reported; the steps submitted to it since as submitted here and not yet
   * reported (so `steps` is the same bound); on the device, its words `taken` and `skipped`
   * copied into this control buffer on the GPU, after every step submitted to it. So the next
   * step is taken at the t that `from`'s would have been, and a skip the device has not
   * reported yet counts as one. The ring starts with the entries of `from`'s from the step after
   * those reported on (`scalarsFrom`: the device may be at any of them), or where `from` held
   * fewer parameter groups, their learning rates: the next step writes the scalars of those it
   * lacks only, so a schedule is not asked again for a step whose scalars the host computed
   * already. A halt of `from` is not carried over (its reads throw it).
   */
  continueFrom(from: GpuStepCounter): void {
    this.#checkUsable();
    from.#checkUsable();
    const r = from.#reported;
    const since = from.steps - r.taken;
    Object.assign(this.#reported, { submitted: 0, taken: r.taken, skipped: r.skipped, norm: NaN });
    this.#baseTaken = from.#baseTaken;
    this.#countedFrom = 0;
    this.#submitted = this.#readbackFrom = since;
    this.ring.clear(from.#baseTaken);
    // (Past RING_KEPT steps behind, the device would have stopped for want of scalars anyway.)
    this.#scalarsFrom = Math.max(r.taken + 1, from.steps + 1 - RING_KEPT);
    // Those `from` holds already (its steps', and those written ahead) are taken as they are:
    // the next step computes only those it lacks, not every step the device may be at.
    this.ring.adopt(from.ring, this.#scalarsFrom);
    const words = new Uint32Array(CONTROL_BYTES / 4);
    words[CONTROL_WORD.norm_bits] = NAN_BITS;
    words[CONTROL_WORD.submitted] = since; // (mod 2³², as the device counts)
    this.#device.queue.writeBuffer(this.control, 0, words);
    const encoder = this.#device.createCommandEncoder();
    // (Both words of the count skipped: the device's skip limit holds for unreported skips too.)
    for (const word of [CONTROL_WORD.taken, CONTROL_WORD.skipped, CONTROL_WORD.skipped_hi]) {
      encoder.copyBufferToBuffer(from.control, word * 4, this.control, word * 4, 4);
    }
    this.#device.queue.submit([encoder.finish()]);
  }

  /** Before a step's submission: uploads the scalars written since the last one. */
  beforeSubmit(): void {
    this.ring.upload();
  }

  /**
   * Encodes a copy of the counters for a readback with this step when none is in flight and
   * `READBACK_EVERY` steps went by since the last one began (settle reads back whenever it
   * must); whether it did.
   */
  encodeReport(encoder: GPUCommandEncoder): boolean {
    if (this.#readback !== undefined || this.#submitted - this.#readbackAt < READBACK_EVERY) {
      return false;
    }
    this.#readbackAt = this.#submitted;
    this.#encodeReadback(encoder);
    return true;
  }

  /** After a step's submission: counts it, and starts the readback it encoded, if any. */
  submitted(report: boolean): void {
    this.#submitted++;
    this.#sequence++;
    if (report) this.#startReadback();
  }

  /**
   * Watches the validation of the step just submitted (`popped`: its error scope, pushed
   * before it was encoded). If the GPU refused its command buffer, nothing of it ran, the
   * device did not count it: neither does the host, and the next call throws `refusal`'s error.
   */
  watch(popped: Promise<GPUError | null>, refusal: (error: GPUError) => Promise<Error>): void {
    const at = this.#submitted;
    const sequence = this.#sequence;
    this.#checking++;
    popped.then(async (error) => {
      if (error) this.#refuse(at, sequence, await refusal(error));
    }, () => {}).finally(() => { // (a lost device: checkUsable says so)
      if (--this.#checking > 0) return;
      this.#checked?.resolve();
      this.#checked = undefined;
    });
  }

  /** When every step `watch`ed has been checked. */
  #allChecked(): Promise<void> | undefined {
    if (this.#checking === 0) return undefined;
    if (this.#checked === undefined) {
      let resolve = () => {};
      const wait = new Promise<void>((r) => resolve = r);
      this.#checked = { wait, resolve };
    }
    return this.#checked.wait;
  }

  /** Submission `at` (in the host's count) never ran: the later ones are numbered one less. */
  #refuse(at: number, sequence: number, error: Error): void {
    this.#submitted--;
    if (this.#countedFrom >= at) this.#countedFrom--;
    if (this.#readbackAt >= at) this.#readbackAt--;
    if (this.#readbackFrom >= at) this.#readbackFrom--;
    // A read begun after the refused step counted it: a halt of the step after it, submitted
    // after the read began, would otherwise seem to come before the read.
    for (const mark of this.#marks) if (mark.sequence >= sequence) mark.submitted--;
    if (this.#refused) return void this.#refusedLater++;
    this.#refused = error;
    this.#refusedAt = sequence;
  }

  /**
   * Where the steps submitted so far end: a read begun now takes the faults of those only. Kept
   * up to date as refusals are found until `unmark`.
   */
  mark(): ReadMark {
    const mark = { sequence: this.#sequence, submitted: this.#submitted };
    this.#marks.add(mark);
    return mark;
  }

  /** The read of `mark` has ended. */
  unmark(mark: ReadMark): void {
    this.#marks.delete(mark as { sequence: number; submitted: number });
  }

  /**
   * The refusal or halt to hand out, once; with `mark`, only one of a step submitted before
   * that mark was taken (a read begun before a step does not take that step's fault, which the
   * next call gets, but does take a halt before it where a step after it was refused).
   */
  takeFault(mark?: ReadMark): Error | undefined {
    const refused = this.#refused;
    if (refused && (mark === undefined || this.#refusedAt <= mark.sequence)) {
      this.#refused = undefined;
      const later = this.#refusedLater;
      this.#refusedLater = 0;
      if (later > 0) {
        refused.message += `, nor ${later} later step${later > 1 ? "s" : ""} it refused`;
      }
      return refused;
    }
    const fault = this.#fault;
    // (A refusal left here is of a step after the mark, later than the halt of one before it.)
    if (!fault || (mark !== undefined && this.#faultAt > mark.submitted)) return undefined;
    this.#fault = undefined;
    // Steps submitted before this point find the state halted and are not taken; the halt is
    // lifted for the ones after (the write is ordered after them on the queue).
    this.#countedFrom = this.#submitted;
    this.#device.queue.writeBuffer(
      this.control,
      CONTROL_WORD.halted * 4,
      new Uint32Array([HALT.running]),
    );
    return fault;
  }

  /**
   * The step counts that `words`, a copy of the control buffer taken at a point of the queue,
   * give: the steps taken then, and those skipped.
   */
  countsAt(words: Uint32Array): { steps: number; skipped: number } {
    const skipped = countOf(words, CONTROL_WORD.skipped, CONTROL_WORD.skipped_hi);
    return { steps: this.#baseTaken + words[CONTROL_WORD.taken], skipped };
  }

  async settle(): Promise<void> {
    while (true) {
      this.#checkUsable();
      await this.#allChecked();
      this.#checkUsable();
      const failed = this.#readbackError;
      if (failed) {
        this.#readbackError = undefined;
        await explainMapFailure(this.#device, failed, this.#checkUsable); // (a lost device)
        throw new Error("Reading the step counters back from the GPU failed", { cause: failed });
      }
      if (this.#reported.submitted >= this.#submitted) return;
      let own = false;
      if (this.#readback === undefined) {
        const encoder = this.#device.createCommandEncoder();
        this.#encodeReadback(encoder);
        this.#device.queue.submit([encoder.finish()]);
        this.#startReadback();
        own = true;
      }
      await this.#readback;
      await this.#allChecked();
      // (Disposed meanwhile: the readback found its buffer gone, and no step is missing.)
      this.#checkUsable();
      if (own && this.#readbackFrom === this.#submitted) this.#unwatchedRefusals();
    }
  }

  /**
   * After a readback submitted after every step (so the device had run them all): steps the
   * device did not count were refused by the GPU without a watch (`watch`); rather than wait
   * for them forever, the host forgets them and says so.
   */
  #unwatchedRefusals(): void {
    const missing = this.#submitted - this.#reported.submitted;
    if (missing <= 0 || this.#readbackError) return;
    this.#submitted -= missing;
    this.#countedFrom = Math.min(this.#countedFrom, this.#submitted);
    throw new Error(
      `The GPU refused the commands of ${missing} step${
        missing === 1 ? "" : "s"
      } of this state (a validation error, reported to the device's uncapturederror event); ${
        missing === 1 ? "it was" : "they were"
      } not taken`,
    );
  }

  /** Frees the buffers. */
  destroy(): void {
    this.#destroyed = true;
    this.control.destroy();
    this.#staging.destroy();
    this.ring.buffer.destroy();
  }

  #encodeReadback(encoder: GPUCommandEncoder): void {
    encoder.copyBufferToBuffer(this.control, 0, this.#staging, 0, CONTROL_BYTES);
  }

  #startReadback(): void {
    this.#readbackFrom = this.#submitted;
    const staging = this.#staging;
    this.#readback = staging.mapAsync(GPUMapMode.READ).then(
      () => {
        this.#readback = undefined;
        // Disposed while the map was in flight: the buffer is gone and nobody waits for it.
        if (this.#destroyed) return;
        try {
          const words = new Uint32Array(staging.getMappedRange().slice(0));
          staging.unmap();
          this.#report(words);
        } catch (error) {
          this.#readbackError = error;
        }
      },
      (error) => { // (settle says why: a lost device, or the error)
        this.#readback = undefined;
        if (!this.#destroyed) this.#readbackError = error;
      },
    );
  }

  #report(words: Uint32Array): void {
    const r = this.#reported;
    // The device counts submissions in u32s: the counts of the host's, which are not, wrapped.
    const from = this.#readbackFrom;
    const unwrap = (word: number) => from - (from - words[word]) % 2 ** 32;
    r.submitted = unwrap(CONTROL_WORD.submitted);
    r.taken = this.#baseTaken + words[CONTROL_WORD.taken];
    r.skipped = countOf(words, CONTROL_WORD.skipped, CONTROL_WORD.skipped_hi);
    r.norm = new Float32Array(words.buffer, CONTROL_WORD.norm_bits * 4, 1)[0];
    // A halt not yet handed out, and not one that takeFault already lifted.
    const halted = words[CONTROL_WORD.halted];
    const haltedAt = unwrap(CONTROL_WORD.halted_at);
    if (halted !== HALT.running && !this.#fault && haltedAt > this.#countedFrom) {
      const later = this.#submitted - haltedAt;
      const step = r.taken + 1;
      const bad = () => this.#order.locate(words[CONTROL_WORD.first_bad]);
      this.#fault = halted === HALT.noScalars
        ? noScalarsError(step, later)
        : nonFiniteError(bad(), step, later, halted === HALT.skipLimit);
      this.#faultAt = haltedAt;
    }
  }
}
