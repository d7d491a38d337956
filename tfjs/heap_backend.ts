/**
 * The state on TensorFlow.js's own wasm heap: a host backend whose arena is allocated in
 * tfjs-backend-wasm's memory (its `_malloc`), stepped by an instance of this library's kernel
 * running on that memory, so that the parameters are updated where tfjs keeps them.
 *
 * For a variable held in the tfjs layout (every one but a kernel transposed for `gc`), the
 * parameter slot of the step *is* the variable's data: the kernel reads and writes it in place,
 * and nothing is copied out. Under the default non-finite check (no clipping), its gradient is
 * read where tfjs keeps it too: checked, then read by the step, never copied. Where the step
 * needs the gradients' f64 norm (`clipGradNorm`) or `nonFinite: "propagate"`, they are copied
 * into the arena's slots, so that the norm sums the same contiguous section in the same order as
 * on every other backend. Either way the bits are the wasm backend's. After an update,
 * tfjs-backend-wasm is told that the variable's data changed (its tensor id is unregistered and
 * registered again at the same address), which drops the XNNPACK operators it caches with the
 * weights packed, as a new tensor would.
 *
 * A variable whose data is shared with another tensor (a reshape or the initial value still
 * held), or is not on this tfjs backend, first gets data of its own (one copy, as tfjs's own
 * optimizers make at every step), so nothing else ever sees the update.
 *
 * With 8-bit moments (`states: "8bit"`), the codes and scales are in the arena like the f32
 * sections (heap_layout.ts), and the kernel's 8-bit step gets 2 KiB of scratch of its own in the
 * allocation. A compact tensor is held as above too. The kernel steps whole blocks of 256, its
 * padding included, so where the length is not a multiple of 256 the last block (fewer than 256
 * elements) would read and write past the end of the variable's data: that block is stepped by
 * a run of its own in a _tail_ (heap_layout.ts), a padded copy of its parameters (and of its
 * gradient, where that is read in place) in the allocation, whose padding is 0 as in the arena of
 * the other backends; its parameters are copied in before and back after (fewer than 256 values
 * each way). A tail keeps the kernel as it is (one loop for every backend, no per-block test of a
 * length) at the cost of one more call and two copies of under 1 KiB a step. The bits are the wasm
 * backend's either way.
 *
 * Reads tfjs-backend-wasm 4.x internals (`wasm`, `dataIdMap`: wasm_heap.ts); where they are not
 * as expected, the adapter keeps its state in the kernel's own memory.
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs-core";
import {
  ARENA_DESCRIPTOR_BYTES,
  type ArenaLayout,
  type CompactMoment,
  compactViews,
  GRADS,
  PARAMS,
  sectionViews,
} from "../base/arena.ts";
import type { CompactHostBackend } from "../base/backend.ts";
import { blockViews } from "../cpu/cpu_backend.ts";
import { type KernelExports, kernelOnMemory, placeArena } from "../cpu/wasm_backend.ts";
import { sectionValues, writeSectionValues } from "../base/arena_compact.ts";
import { allocateArena, type HeapAllocation } from "./_heap_allocation.ts";
import { HeapVariables } from "./_heap_variables.ts";
import {
  allocationBytes,
  leaveTail,
  placement,
  planRuns,
  pointRun,
  type Run,
} from "./heap_layout.ts";
import { memoryOf, type TfjsWasmHeap, type WasmModule } from "./wasm_heap.ts";

/** Per section, views of a buffer, remade when the buffer changes (tfjs grew its memory). */
type ViewCache = (Readonly<Record<string, Float32Array>> | undefined)[];

/**
 * A host backend on tfjs-backend-wasm's heap. `external[i]` says whether tensor i of the layout
 * keeps its parameters in its variable's data (else in the arena, as on the other backends).
 * Only the sections that are used are allocated (_heap_allocation.ts).
 */
export class HeapBackend implements CompactHostBackend {
  readonly kind = "host" as const;
  readonly name = "wasm" as const;
  readonly threads = 1;
  readonly #heap: TfjsWasmHeap;
  readonly #module: WasmModule;
  readonly #memory: WebAssembly.Memory;
  readonly #k: KernelExports;
  readonly #pointer: number;
  /** The arena's (virtual) start: sections that are not allocated lie before the allocation. */
  readonly #base: number;
  readonly #scalars: number;
  /** The 8-bit step's scratch (2 KiB; no bytes for a 32-bit state). */
  readonly #scratch: number;
  readonly #runs: Run[];
  /** Per tensor of the caller's order (the variables'): its index in the layout. */
  readonly #slot: readonly number[];
  readonly #external: readonly boolean[];
  /** Sections below this index are not allocated (0: all are; 1: no params; 2: nor grads). */
  readonly #firstSection: number;
  readonly #grads: number;
  /** The data of the external tensors' variables, as last attached. */
  readonly #variables: HeapVariables;
  /**
   * Per tensor: the byte address of the gradient the step reads in place (an external tensor's
   * gradient given as a view of tfjs's heap, under the default check), or 0 (its slot).
   */
  readonly #borrowed: number[];
  /** Per tensor, in `loadGradsChecked`: whether its gradient is read in place. */
  readonly #inPlace: boolean[];
  #buffer: ArrayBufferLike;
  #views: ViewCache = [];
  /**
   * The params section's views (an external tensor's: its variable's data), remade when tfjs
   * grows its memory or a variable's data moves (see {@linkcode HeapBackend.attach}).
   */
  #paramViews: Readonly<Record<string, Float32Array>> | undefined;
  #blocks: { readonly f32: Float32Array; readonly u32: Uint32Array };
  /** The whole heap as words: the descriptors' words, and the tails' copies (copyWithin). */
  #words: Uint32Array;
  #disposed = false;
  /** What `grads` shows between steps when there are no slots. */
  readonly #noGrads: Readonly<Record<string, Float32Array>>;

  private constructor(
    readonly layout: ArenaLayout,
    heap: TfjsWasmHeap,
    module: WasmModule,
    { pointer, external, firstSection, slot }: HeapAllocation,
  ) {
    this.#heap = heap;
    this.#module = module;
    this.#memory = memoryOf(module)!;
    this.#k = kernelOnMemory(this.#memory);
    this.#pointer = pointer;
    this.#external = external;
    this.#firstSection = firstSection;
    this.#slot = slot;
    const n = layout.names.length;
    this.#variables = new HeapVariables(n);
    this.#inPlace = new Array(n).fill(false);
    this.#borrowed = new Array(n).fill(0);
    const { at, scalars, scratch, base } = placement(layout, pointer, external, firstSection);
    this.#scalars = scalars;
    this.#scratch = scratch;
    this.#base = base;
    const buffer = this.#memory.buffer;
    this.#grads = placeArena(buffer, layout, at, base, scalars).grads;
    this.#runs = planRuns(layout, external, at);
    const words = new Uint32Array(buffer);
    for (const run of this.#runs) {
      if (run.external >= 0) {
        words.copyWithin(run.descriptor / 4, at / 4, (at + ARENA_DESCRIPTOR_BYTES) / 4);
      }
    }
    this.#buffer = buffer;
    this.#words = words;
    this.#blocks = blockViews(buffer, this.#scalars, layout);
    this.#noGrads = Object.freeze(
      Object.fromEntries(layout.names.map((name) => [name, new Float32Array(0)])),
    );
  }

  /**
   * A backend for `layout` on `heap`, or undefined when tfjs cannot allocate its arena. The
   * variables are given in their own order (`names[i]`, `items[i]`, `external[i]`: whether it
   * may keep its parameters in its variable's data), which every method taking an index uses;
   * an 8-bit state's layout may order them otherwise. The variables are attached (see
   * {@linkcode HeapBackend.attach}). `copiesGradients`: whether steps copy the gradients into
   * slots (clipping, `"propagate"`), not only read them in place.
   */
  static create(
    heap: TfjsWasmHeap,
    layout: ArenaLayout,
    names: readonly string[],
    external: readonly boolean[],
    items: readonly { readonly variable: tf.Variable }[],
    copiesGradients: boolean,
  ): HeapBackend | undefined {
    const module = heap.wasm;
    if (module === null) return undefined;
    const allocation = allocateArena(module, layout, names, external, copiesGradients);
    if (allocation === undefined) return undefined;
    const backend = new HeapBackend(layout, heap, module, allocation);
    let attached = false;
    try {
      attached = backend.attach(items);
    } finally {
      // (Refused, or failed: a variable's data could not be read or copied.)
      if (!attached) backend.dispose();
    }
    return attached ? backend : undefined;
  }

  /** Bytes of tfjs's heap this backend allocated. */
  get allocatedBytes(): number {
    return allocationBytes(this.layout, this.#external, this.#firstSection);
  }

  /**
   * Makes each external tensor's parameters its variable's data, before a step (and at the
   * start): a variable whose data is not its own, or not on this tfjs backend, first gets a
   * copy of its own. Returns false, changing nothing, when TensorFlow.js no longer runs on the
   * backend this state is on (the caller then moves the state off it).
   */
  attach(items: readonly { readonly variable: tf.Variable }[]): boolean {
    if (!this.usable()) return false;
    const moved = () => this.#paramViews = undefined;
    this.#variables.attach(this.#heap, items, this.#slot, this.#external, moved);
    return true;
  }

  /** Whether TensorFlow.js still runs on the tfjs backend (and module) this state is on. */
  usable(): boolean {
    return !this.#disposed && tf.getBackend() === "wasm" &&
      (tf.backend() as unknown) === this.#heap && this.#heap.wasm === this.#module;
  }

  /** Whether the tfjs module holding this state is gone (its backend disposed). */
  get lost(): boolean {
    return this.#heap.wasm !== this.#module;
  }

  /** Whether variable `j` (the caller's order) keeps its parameters in its variable's data. */
  external(j: number): boolean {
    return this.#external[this.#slot[j]];
  }

  /**
   * Whether a step may read `values`, the gradient of variable `j` (the caller's order), where
   * they are (see {@linkcode #readsInPlace}).
   */
  readsInPlace(j: number, values: Float32Array): boolean {
    return this.#readsInPlace(this.#slot[j], values);
  }

  /**
   * Whether a step may read `values`, the gradient of tensor `i` of the layout, where they are:
   * an external tensor's, in tfjs's heap, and not the data of another variable this step
   * updates (whose run may come first).
   */
  #readsInPlace(i: number, values: Float32Array): boolean {
    const at = values.byteOffset;
    return this.#external[i] && values.buffer === this.#memory.buffer &&
      !this.#variables.another(i, at);
  }

  /** Refreshes the views when tfjs has grown its memory (a new buffer). */
  #fresh(): ArrayBufferLike {
    const buffer = this.#memory.buffer;
    if (buffer !== this.#buffer) {
      this.#buffer = buffer;
      this.#views = [];
      this.#paramViews = undefined;
      this.#blocks = blockViews(buffer, this.#scalars, this.layout);
      this.#words = new Uint32Array(buffer);
    }
    return buffer;
  }

  /** Views of an allocated arena section. */
  #section(section: number): Readonly<Record<string, Float32Array>> {
    const buffer = this.#fresh();
    if (section < this.#firstSection) {
      throw new Error(`Internal error: section ${section} of this state is not allocated`);
    }
    return this.#views[section] ??= sectionViews(buffer, this.#base, this.layout, section);
  }

  get blocks(): { readonly f32: Float32Array; readonly u32: Uint32Array } {
    this.#fresh();
    return this.#blocks;
  }

  /**
   * The gradient slots; a gradient read in place this step shows as its view (without slots,
   * an empty array until the step reads one).
   */
  get grads(): Readonly<Record<string, Float32Array>> {
    const buffer = this.#fresh();
    const slots = this.#firstSection <= GRADS ? this.#section(GRADS) : undefined;
    if (!this.#borrowed.some((a) => a !== 0)) return slots ?? this.#noGrads;
    const out: Record<string, Float32Array> = {};
    this.layout.names.forEach((name, i) => {
      const at = this.#borrowed[i];
      out[name] = at !== 0
        ? new Float32Array(buffer, at, this.layout.lengths[i])
        : slots?.[name] ?? new Float32Array(0);
    });
    return out;
  }

  get params(): Readonly<Record<string, Float32Array>> {
    return this.viewSection(PARAMS);
  }

  /** Refuses, changing nothing, a step this state cannot take: one without gradient slots. */
  #needSlots(): void {
    if (this.#firstSection > GRADS) {
      throw new TypeError(
        "This optimizer state reads its gradients from TensorFlow.js tensors: step it through the TensorFlow.js optimizer's applyGradients, not with step()",
      );
    }
  }

  loadGrads(grads: readonly Float32Array[]): void {
    this.#needSlots();
    this.#borrowed.fill(0);
    const slots = this.#section(GRADS);
    const names = this.layout.names;
    for (let i = 0; i < names.length; i++) {
      const src = grads[i];
      if (src !== slots[names[i]]) slots[names[i]].set(src);
    }
  }

  /**
   * The default check. An external tensor's gradient that is a view of tfjs's heap is checked
   * and then read by the step where it is (no copy); any other is copied into its slot and
   * checked there.
   */
  loadGradsChecked(grads: readonly Float32Array[]): boolean {
    const { names, lengths, offsets } = this.layout;
    this.#fresh();
    // Where each gradient is read: in place, or in a slot (without slots, a refusal first).
    const inPlace = this.#inPlace;
    let copies = false;
    for (let i = 0; i < names.length; i++) {
      inPlace[i] = this.#readsInPlace(i, grads[i]);
      copies ||= !inPlace[i] && lengths[i] > 0;
    }
    if (copies) this.#needSlots();
    this.#borrowed.fill(0);
    const slots = this.#firstSection <= GRADS ? this.#section(GRADS) : undefined;
    let found = false;
    for (let i = 0; i < names.length; i++) {
      if (lengths[i] === 0) continue;
      const src = grads[i];
      if (inPlace[i]) {
        this.#borrowed[i] = src.byteOffset;
        found = this.#k.nonFinite(src.byteOffset, lengths[i]) !== 0 || found;
      } else {
        const slot = slots![names[i]];
        if (src !== slot) slot.set(src);
        found = this.#k.nonFinite(this.#grads + offsets[i] * 4, lengths[i]) !== 0 || found;
      }
    }
    return found;
  }

  gradsNonFinite(): boolean {
    this.#needSlots();
    this.#borrowed.fill(0);
    return this.#k.nonFinite(this.#grads, this.layout.total) !== 0;
  }

  gradSumSquares(): number {
    this.#needSlots();
    return this.#k.sumSquares(this.#grads, this.layout.total);
  }

  centralize(offset: number, rows: number, cols: number): void {
    this.#needSlots();
    this.#k.centralize(this.#grads + offset * 4, rows, cols);
  }

  /**
   * The fused step: each external tensor's run reads and writes its variable's data (a partial
   * last block: in its tail, heap_layout.ts `enterTail`), then tfjs-backend-wasm is told that data
   * changed (its cached XNNPACK operators are dropped).
   */
  update(): void {
    this.#fresh();
    const words = this.#words;
    const k = this.#k, scalars = this.#scalars, { addresses } = this.#variables;
    for (const run of this.#runs) {
      const i = run.external;
      if (i >= 0) pointRun(words, this.layout, run, addresses[i], this.#borrowed[i], this.#grads);
      k.step(run.descriptor, scalars, run.start, run.end, this.#scratch);
      if (run.tail !== 0) leaveTail(words, this.layout, run, addresses[i]);
    }
    // After every run: registering may allocate in tfjs's heap, and so grow it (a new buffer
    // under `words`).
    this.#variables.reregister(this.#module, this.#runs, this.layout.lengths);
    // (The gradients read in place belong to tfjs, which may free them once the step is over.)
    this.#borrowed.fill(0);
  }

  viewSection(section: number): Readonly<Record<string, Float32Array>> {
    if (section === GRADS) return this.grads;
    if (section !== PARAMS) return this.#section(section);
    const buffer = this.#fresh();
    if (this.#paramViews !== undefined) return this.#paramViews;
    const held = this.#firstSection <= PARAMS ? this.#section(PARAMS) : undefined;
    const out: Record<string, Float32Array> = {};
    this.layout.names.forEach((name, i) => {
      out[name] = this.#external[i]
        ? new Float32Array(buffer, this.#variables.addresses[i], this.layout.lengths[i])
        : held?.[name] ?? new Float32Array(0);
    });
    return this.#paramViews = out;
  }

  viewCompact(k: number): Readonly<Record<string, CompactMoment>> {
    return compactViews(this.#fresh(), this.#base, this.layout, k);
  }

  readSection(section: number): Promise<Record<string, Float32Array<ArrayBuffer>>> {
    return Promise.resolve(sectionValues(this, section));
  }

  writeSection(section: number, data: Readonly<Record<string, Float32Array>>): void {
    if (section === GRADS) {
      this.loadGrads(this.layout.names.map((n) => data[n]));
      return;
    }
    writeSectionValues(this, section, data);
  }

  dispose(): void {
    if (this.#disposed) return;
    this.#disposed = true;
    // A tfjs backend that was disposed took its heap, and this arena, with it.
    if (this.#heap.wasm === this.#module) this.#module._free(this.#pointer);
  }
}
