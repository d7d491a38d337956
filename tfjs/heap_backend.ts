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
 * Reads tfjs-backend-wasm 4.x internals (`wasm`, `dataIdMap`); {@linkcode tfjsWasmHeap} says
 * undefined where they are not as expected, and the adapter then keeps its state in the
 * kernel's own memory.
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs-core";
import { ARENA_DESCRIPTOR_BYTES, type ArenaLayout, PARAMS } from "../core/arena.ts";
import type { HostBackend } from "../core/backend.ts";
import { BLOCK_BYTES, blockCount } from "../core/scalars.ts";
import { blockViews, CpuBackend } from "../cpu/cpu_backend.ts";
import { type KernelExports, kernelOnMemory, placeArena } from "../cpu/wasm_backend.ts";

/** The parts of tfjs-backend-wasm's emscripten module this file uses. */
interface WasmModule {
  HEAPU8: Uint8Array;
  _malloc(bytes: number): number;
  _free(pointer: number): void;
  tfjs: {
    registerTensor(id: number, size: number, memoryOffset: number): void;
    disposeData(id: number): void;
  };
  wasmMemory?: WebAssembly.Memory;
  asm?: { memory?: WebAssembly.Memory };
}

/** What tfjs-backend-wasm keeps per data id. */
interface TensorData {
  id: number;
  memoryOffset: number;
  refCount: number;
}

/** The parts of tfjs-backend-wasm's `BackendWasm` this file uses. */
export interface TfjsWasmHeap {
  wasm: WasmModule | null;
  dataIdMap: { get(dataId: object): TensorData | undefined };
}

/**
 * The running tfjs wasm backend, when TensorFlow.js runs on it and its internals are those this
 * file knows; undefined otherwise.
 */
export function tfjsWasmHeap(): TfjsWasmHeap | undefined {
  if (tf.getBackend() !== "wasm") return undefined;
  // deno-lint-ignore no-explicit-any
  const backend = tf.backend() as any;
  const wasm = backend?.wasm;
  if (
    typeof backend?.dataIdMap?.get !== "function" || typeof wasm?._malloc !== "function" ||
    typeof wasm._free !== "function" || typeof wasm.tfjs?.registerTensor !== "function" ||
    typeof wasm.tfjs?.disposeData !== "function" || !(wasm.HEAPU8 instanceof Uint8Array) ||
    !(memoryOf(wasm) instanceof WebAssembly.Memory)
  ) {
    return undefined;
  }
  return backend as TfjsWasmHeap;
}

function memoryOf(wasm: WasmModule): WebAssembly.Memory | undefined {
  return wasm.wasmMemory ?? wasm.asm?.memory;
}

/** One call of the kernel: a descriptor and an element range. */
interface Run {
  descriptor: number;
  start: number;
  end: number;
  /** Index of the tensor whose parameters are its variable's data, or -1. */
  external: number;
}

const ALIGN = 64;

/**
 * A host backend on tfjs-backend-wasm's heap. `external[i]` says whether tensor i of the layout
 * keeps its parameters in its variable's data (else in the arena, as on the other backends).
 */
export class HeapBackend implements HostBackend {
  readonly kind = "host" as const;
  readonly name = "wasm" as const;
  readonly threads = 1;
  readonly #heap: TfjsWasmHeap;
  readonly #module: WasmModule;
  readonly #memory: WebAssembly.Memory;
  readonly #k: KernelExports;
  readonly #pointer: number;
  readonly #base: number;
  readonly #scalars: number;
  readonly #runs: Run[];
  readonly #external: readonly boolean[];
  readonly #grads: number;
  /** Per tensor: its variable (external ones), as last attached. */
  #variables: (tf.Variable | undefined)[];
  /** Per tensor: the byte address of its variable's data (external ones), as last attached. */
  readonly #addresses: number[];
  /**
   * Per tensor: the byte address of the gradient the step reads in place (an external tensor's
   * gradient given as a view of tfjs's heap, under the default check), or 0 (its slot).
   */
  readonly #borrowed: number[];
  /** The addresses of the external tensors' data (as last attached). */
  readonly #owned = new Set<number>();
  /** Views on the memory's current buffer (remade when tfjs grows its memory). */
  #views: CpuBackend;
  #descriptorWords: Uint32Array;
  #disposed = false;

  private constructor(
    readonly layout: ArenaLayout,
    heap: TfjsWasmHeap,
    module: WasmModule,
    pointer: number,
    external: readonly boolean[],
  ) {
    this.#heap = heap;
    this.#module = module;
    this.#memory = memoryOf(module)!;
    this.#k = kernelOnMemory(this.#memory);
    this.#pointer = pointer;
    this.#external = external;
    const n = layout.names.length;
    this.#variables = new Array(n).fill(undefined);
    this.#addresses = new Array(n).fill(0);
    this.#borrowed = new Array(n).fill(0);
    // [main descriptor | one descriptor per external tensor | scalar blocks | arena]
    const at = Math.ceil(pointer / ALIGN) * ALIGN;
    const externals = external.filter((x) => x).length;
    this.#scalars = at + ALIGN * (1 + externals);
    const blocks = blockCount(layout.segments) * BLOCK_BYTES;
    this.#base = Math.ceil((this.#scalars + blocks) / ALIGN) * ALIGN;
    const placed = placeArena(this.#memory.buffer, layout, at, this.#base, this.#scalars);
    this.#grads = placed.grads;
    // Consecutive tensors held in the arena step as one run of the main descriptor; each
    // external one with a descriptor of its own, whose params word points at its variable.
    this.#runs = [];
    let next = at + ALIGN;
    for (let i = 0; i < n; i++) {
      const start = layout.offsets[i], end = start + layout.lengths[i];
      if (end === start) continue;
      if (external[i]) {
        this.#runs.push({ descriptor: next, start, end, external: i });
        next += ALIGN;
        continue;
      }
      const last = this.#runs[this.#runs.length - 1];
      if (last && last.external < 0 && last.end === start) last.end = end;
      else this.#runs.push({ descriptor: at, start, end, external: -1 });
    }
    const words = new Uint32Array(this.#memory.buffer);
    for (const run of this.#runs) {
      if (run.external >= 0) {
        words.copyWithin(run.descriptor / 4, at / 4, (at + ARENA_DESCRIPTOR_BYTES) / 4);
      }
    }
    this.#descriptorWords = words;
    this.#views = this.#makeViews();
  }

  /**
   * A backend for `layout` on `heap`, or undefined when tfjs cannot allocate its arena. The
   * variables are attached (see {@linkcode HeapBackend.attach}).
   */
  static create(
    heap: TfjsWasmHeap,
    layout: ArenaLayout,
    external: readonly boolean[],
    items: readonly { readonly variable: tf.Variable }[],
  ): HeapBackend | undefined {
    const module = heap.wasm;
    if (module === null) return undefined;
    const externals = external.filter((x) => x).length;
    const bytes = ALIGN * (2 + externals) + blockCount(layout.segments) * BLOCK_BYTES +
      ALIGN + layout.byteLength;
    let pointer: number;
    try {
      pointer = module._malloc(bytes) >>> 0;
    } catch {
      return undefined;
    }
    if (pointer === 0) return undefined;
    // (malloc gives back freed tensors' bytes: start from zeros, as a fresh memory does.)
    new Uint8Array(memoryOf(module)!.buffer, pointer, bytes).fill(0);
    const backend = new HeapBackend(layout, heap, module, pointer, external);
    if (!backend.attach(items)) {
      backend.dispose();
      return undefined;
    }
    return backend;
  }

  /**
   * Makes each external tensor's parameters its variable's data, before a step (and at the
   * start): a variable whose data is not its own, or not on this tfjs backend, first gets a
   * copy of its own. Returns false, changing nothing, when TensorFlow.js no longer runs on the
   * backend this state is on (the caller then moves the state off it).
   */
  attach(items: readonly { readonly variable: tf.Variable }[]): boolean {
    if (!this.usable()) return false;
    const heap = this.#heap;
    for (let i = 0; i < items.length; i++) {
      if (!this.#external[i]) continue;
      const variable = items[i].variable;
      let data = heap.dataIdMap.get(variable.dataId);
      if (data === undefined || data.refCount !== 1) {
        const own = tf.tensor(variable.dataSync().slice(), variable.shape, "float32");
        variable.assign(own);
        own.dispose();
        data = heap.dataIdMap.get(variable.dataId)!;
      }
      this.#variables[i] = variable;
      this.#addresses[i] = data.memoryOffset >>> 0;
    }
    this.#owned.clear();
    this.#external.forEach((x, i) => x && this.#owned.add(this.#addresses[i]));
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

  /** Whether tensor `i` keeps its parameters in its variable's data. */
  external(i: number): boolean {
    return this.#external[i];
  }

  #makeViews(): CpuBackend {
    const buffer = this.#memory.buffer;
    const k = this.#k, g = this.#grads, n = this.layout.total;
    return new CpuBackend(
      "wasm",
      this.layout,
      buffer,
      this.#base,
      blockViews(buffer, this.#scalars, this.layout),
      {
        update: () => this.update(),
        gradSumSquares: () => k.sumSquares(g, n),
        nonFiniteRange: (offset, count) => k.nonFinite(g + offset * 4, count) !== 0,
        gradsNonFinite: () => k.nonFinite(g, n) !== 0,
        centralize: (offset, rows, cols) => k.centralize(g + offset * 4, rows, cols),
        threads: 1,
        dispose: () => {},
      },
    );
  }

  /** The views on the memory's current buffer. */
  #current(): CpuBackend {
    const buffer = this.#memory.buffer;
    if (this.#views.buffer !== buffer) {
      this.#views = this.#makeViews();
      this.#descriptorWords = new Uint32Array(buffer);
    }
    return this.#views;
  }

  get blocks(): { readonly f32: Float32Array; readonly u32: Uint32Array } {
    return this.#current().blocks;
  }

  /** The gradient slots; a gradient read in place this step shows as its view. */
  get grads(): Readonly<Record<string, Float32Array>> {
    const slots = this.#current().grads;
    if (!this.#borrowed.some((a) => a !== 0)) return slots;
    const out: Record<string, Float32Array> = { ...slots };
    const buffer = this.#memory.buffer;
    this.layout.names.forEach((name, i) => {
      const at = this.#borrowed[i];
      if (at !== 0) out[name] = new Float32Array(buffer, at, this.layout.lengths[i]);
    });
    return out;
  }

  get params(): Readonly<Record<string, Float32Array>> {
    return this.viewSection(PARAMS);
  }

  loadGrads(grads: Float32Array | Readonly<Record<string, Float32Array>>): void {
    this.#borrowed.fill(0);
    this.#current().loadGrads(grads);
  }

  /**
   * The default check. An external tensor's gradient that is a view of tfjs's heap is checked
   * and then read by the step where it is (no copy); any other is copied into its slot and
   * checked there.
   */
  loadGradsChecked(grads: Float32Array | Readonly<Record<string, Float32Array>>): boolean {
    this.#borrowed.fill(0);
    const views = this.#current();
    if (grads instanceof Float32Array || grads === views.grads) {
      return views.loadGradsChecked(grads);
    }
    const { names, lengths, offsets } = this.layout;
    const buffer = this.#memory.buffer;
    const slots = views.grads;
    let found = false;
    for (let i = 0; i < names.length; i++) {
      const src = grads[names[i]];
      if (lengths[i] === 0) continue;
      // (Not a variable this step updates, given as a gradient: its run may come first.)
      const at = src.byteOffset;
      if (
        this.#external[i] && src.buffer === buffer && at % 4 === 0 &&
        (!this.#owned.has(at) || at === this.#addresses[i])
      ) {
        this.#borrowed[i] = at;
        found = this.#k.nonFinite(at, lengths[i]) !== 0 || found;
      } else {
        const slot = slots[names[i]];
        if (src !== slot) slot.set(src);
        found = this.#k.nonFinite(this.#grads + offsets[i] * 4, lengths[i]) !== 0 || found;
      }
    }
    return found;
  }

  gradsNonFinite(): boolean {
    this.#borrowed.fill(0);
    return this.#k.nonFinite(this.#grads, this.layout.total) !== 0;
  }

  gradSumSquares(): number {
    return this.#k.sumSquares(this.#grads, this.layout.total);
  }

  centralize(offset: number, rows: number, cols: number): void {
    this.#k.centralize(this.#grads + offset * 4, rows, cols);
  }

  /**
   * The fused step: each external tensor's run reads and writes its variable's data, then
   * tfjs-backend-wasm is told that data changed (its cached XNNPACK operators are dropped).
   */
  update(): void {
    this.#current();
    const words = this.#descriptorWords;
    const k = this.#k, scalars = this.#scalars;
    for (const run of this.#runs) {
      if (run.external >= 0) {
        // The kernel adds 4 × the element index to the params and grads words (u32, wrapping).
        const word = run.descriptor / 4;
        words[word] = (this.#addresses[run.external] - run.start * 4) >>> 0;
        const borrowed = this.#borrowed[run.external];
        words[word + 1] = borrowed === 0 ? this.#grads : (borrowed - run.start * 4) >>> 0;
      }
      k.step(run.descriptor, scalars, run.start, run.end);
    }
    const tfjs = this.#module.tfjs;
    for (const run of this.#runs) {
      if (run.external < 0) continue;
      const data = this.#heap.dataIdMap.get(this.#variables[run.external]!.dataId)!;
      tfjs.disposeData(data.id);
      tfjs.registerTensor(data.id, run.end - run.start, data.memoryOffset);
    }
  }

  viewSection(section: number): Readonly<Record<string, Float32Array>> {
    const views = this.#current().viewSection(section);
    if (section !== PARAMS) return views;
    const buffer = this.#memory.buffer;
    const out: Record<string, Float32Array> = { ...views };
    this.layout.names.forEach((name, i) => {
      if (this.#external[i]) {
        out[name] = new Float32Array(buffer, this.#addresses[i], this.layout.lengths[i]);
      }
    });
    return out;
  }

  readSection(section: number): Promise<Record<string, Float32Array>> {
    const views = this.viewSection(section);
    const out: Record<string, Float32Array> = {};
    for (const name of this.layout.names) out[name] = views[name].slice();
    return Promise.resolve(out);
  }

  writeSection(section: number, data: Readonly<Record<string, Float32Array>>): void {
    const views = this.viewSection(section);
    for (const name of this.layout.names) {
      const to = views[name], from = data[name];
      if (to.buffer !== from.buffer || to.byteOffset !== from.byteOffset) to.set(from);
    }
  }

  dispose(): void {
    if (this.#disposed) return;
    this.#disposed = true;
    // A tfjs backend that was disposed took its heap, and this arena, with it.
    if (this.#heap.wasm === this.#module) this.#module._free(this.#pointer);
  }
}
