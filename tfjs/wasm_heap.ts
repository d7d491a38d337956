/**
 * What the adapter reads of tfjs-backend-wasm 4.x's internals: its emscripten module (`wasm`:
 * the heap, `_malloc`, the tensor registry) and its `dataIdMap` (where each tensor's data lies on
 * the heap). {@linkcode tfjsWasmHeap} says undefined where they are not as expected; the adapter
 * then keeps its state in the kernel's own memory, and reads tensors with `dataSync`.
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs-core";

/** The parts of tfjs-backend-wasm's emscripten module the adapter uses. */
export interface WasmModule {
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

/** The parts of tfjs-backend-wasm's `BackendWasm` the adapter uses. */
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

/** The memory of tfjs-backend-wasm's module. */
export function memoryOf(wasm: WasmModule): WebAssembly.Memory | undefined {
  return wasm.wasmMemory ?? wasm.asm?.memory;
}

/** A tensor's values on the host, copying as little as the tfjs backend allows. */
export function readHost(tensor: tf.Tensor): Float32Array {
  // tfjs-backend-wasm's dataSync copies out of its heap; read the heap in place instead.
  return (tf.getBackend() === "wasm" ? wasmHeapOf(tensor) : undefined) ??
    tensor.dataSync() as Float32Array;
}

/** The tfjs-backend-wasm heap view of a tensor's data (read only), or undefined if not there. */
function wasmHeapOf(tensor: tf.Tensor): Float32Array | undefined {
  // deno-lint-ignore no-explicit-any
  const backend = tf.backend() as any;
  const info = backend.dataIdMap?.get(tensor.dataId);
  const heap = backend.wasm?.HEAPU8;
  if (!info || typeof info.memoryOffset !== "number" || !(heap instanceof Uint8Array)) {
    return undefined;
  }
  return new Float32Array(heap.buffer, heap.byteOffset + info.memoryOffset, tensor.size);
}
