// A test build of the 8-bit codes (assembly/q8.ts): the whole-block encode and decode, exported
// over the module's own memory, so that the tests compare them with base/q8.ts bit for bit.
// Compiled by tools/build_q8_wasm.ts into tests/q8_wasm.generated.ts; not part of the kernels.

export {
  decodeSignedBlocks,
  decodeUnsignedBlocks,
  encodeSignedBlocks,
  encodeUnsignedBlocks,
} from "./q8";

/** First byte after the module's static data. */
export function heapBase(): usize {
  return __heap_base;
}
