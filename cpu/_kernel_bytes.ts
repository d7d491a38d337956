/**
 * Where the library reads its kernel's bytes (cpu/wasm_backend.ts), as base64 text. The sources
 * (JSR, Deno) take them from cpu/kernels_wasm.generated.ts, so that every module of the library
 * has them with no set-up. The npm build (tools/_npm_entries.ts) bundles this module with that
 * import emptied: the package's default entries hand the text in as they load
 * ({@linkcode embedKernelBytes}, from a chunk of their own), and its `workerd` entries hand in the
 * kernel compiled instead (cpu/_workerd_kernel.ts). So both share one copy of the library, and
 * what a Worker bundles holds no base64. Private to the library.
 *
 * @module
 */
import { KERNELS_WASM_BASE64 } from "./kernels_wasm.generated.ts";

let text: string = KERNELS_WASM_BASE64;

/**
 * Makes `base64` the kernel's bytes, where this build of the library carries none yet (the npm
 * package's default entries call it as they load); else keeps those it has.
 *
 * @example
 * ```ts
 * import { embedKernelBytes, kernelBase64 } from "./_kernel_bytes.ts";
 * import assert from "node:assert/strict";
 *
 * const before = kernelBase64();
 * embedKernelBytes("AGFzbQEAAAA="); // an empty module's
 * assert.equal(kernelBase64(), before); // the sources carry the kernel's: kept
 * ```
 */
export function embedKernelBytes(base64: string): void {
  if (text === "") text = base64;
}

/**
 * The kernel's bytes as base64 text, or "" where this build carries none (the npm package's
 * `workerd` entries, which give the kernel compiled).
 *
 * @example
 * ```ts
 * import { kernelBase64 } from "./_kernel_bytes.ts";
 * import assert from "node:assert/strict";
 *
 * assert.ok(kernelBase64().startsWith("AGFzbQ")); // "\0asm", a WebAssembly module's magic
 * ```
 */
export function kernelBase64(): string {
  return text;
}
