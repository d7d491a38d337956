/**
 * The variables whose data a state on TensorFlow.js's wasm heap (heap_backend.ts) steps in
 * place: where each one's data lies as last attached (its tfjs-backend-wasm id and byte
 * address), each given data of its own first where it shares it or is not on the heap; and,
 * after a step, tfjs-backend-wasm told that their data changed (unregistered and registered
 * again at the same address, which drops the XNNPACK operators it caches with the weights
 * packed, as a new tensor would).
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs-core";
import type { Run } from "./heap_layout.ts";
import type { TfjsWasmHeap, WasmModule } from "./wasm_heap.ts";

/**
 * The data of the variables of the external tensors (those that keep their parameters in their
 * variable's data), by layout index.
 *
 * @example
 * ```ts ignore
 * const variables = new HeapVariables(layout.names.length);
 * variables.attach(heap, items, slot, external, () => views = undefined);
 * // … a step over the runs, at variables.addresses …
 * variables.reregister(module, runs, layout.lengths);
 * ```
 */
export class HeapVariables {
  /** Per tensor: tfjs-backend-wasm's id of its variable's data (external ones), as attached. */
  readonly ids: number[];
  /** Per tensor: the byte address of its variable's data (external ones), as last attached. */
  readonly addresses: number[];
  /** The addresses of the external tensors' data (as last attached). */
  readonly #owned = new Set<number>();

  /** No variable attached yet, of `n` tensors. */
  constructor(n: number) {
    this.ids = new Array(n).fill(0);
    this.addresses = new Array(n).fill(0);
  }

  /**
   * Makes each external tensor's parameters its variable's data (`items[j]`, tensor `slot[j]`
   * of the layout, external where `external[slot[j]]`): a variable whose data is not its own,
   * or not on `heap`, first gets a copy of its own. `moved` is called where a tensor's data is
   * not where it was.
   */
  attach(
    heap: TfjsWasmHeap,
    items: readonly { readonly variable: tf.Variable }[],
    slot: readonly number[],
    external: readonly boolean[],
    moved: () => void,
  ): void {
    this.#owned.clear();
    for (let j = 0; j < items.length; j++) {
      const i = slot[j];
      if (!external[i]) continue;
      const variable = items[j].variable;
      let data = heap.dataIdMap.get(variable.dataId);
      if (data === undefined || data.refCount !== 1) {
        const own = tf.tensor(variable.dataSync().slice(), variable.shape, "float32");
        variable.assign(own);
        own.dispose();
        data = heap.dataIdMap.get(variable.dataId)!;
      }
      const address = data.memoryOffset >>> 0;
      if (address !== this.addresses[i]) moved();
      this.ids[i] = data.id;
      this.addresses[i] = address;
      this.#owned.add(address);
    }
  }

  /** Whether byte `at` is where the data of a variable other than tensor `i`'s lies. */
  another(i: number, at: number): boolean {
    return this.#owned.has(at) && at !== this.addresses[i];
  }

  /**
   * Tells tfjs-backend-wasm that the data of the variable of each external run changed (once a
   * variable: not at the run of a tail, whose variable has a run of its whole blocks too).
   */
  reregister(module: WasmModule, runs: readonly Run[], lengths: readonly number[]): void {
    const tfjs = module.tfjs;
    for (const run of runs) {
      const i = run.external;
      if (i < 0 || run.tail !== 0) continue;
      tfjs.disposeData(this.ids[i]);
      tfjs.registerTensor(this.ids[i], lengths[i], this.addresses[i]);
    }
  }
}
