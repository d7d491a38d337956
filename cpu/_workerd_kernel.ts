/**
 * What the npm package's `workerd` entries (the `workerd` export condition, which wrangler and
 * the other Cloudflare Workers bundlers apply) do as they load: hand the library the package's
 * `radam.wasm`, which the bundler imports as a compiled `WebAssembly.Module` (wrangler's default
 * `CompiledWasm` rule), so that a Worker trains on wasm with no setup. Private to the library;
 * tools/_npm_entries.ts builds the entries.
 *
 * @module
 */
import { described } from "../base/_errors.ts";
import { useOwnKernel } from "./wasm_backend.ts";

/**
 * Makes `kernel`, the package's `radam.wasm` as the Worker's bundler imported it, the kernel of
 * every single-threaded wasm state (as `setWasmModule` does; a module given before stays).
 * Throws a TypeError where the bundler gave anything but a compiled module (it applied the
 * `workerd` condition but imports `.wasm` files otherwise: bytes, a URL), naming what it gave.
 *
 * @example
 * ```ts
 * import { useKernelFile } from "./_workerd_kernel.ts";
 * import assert from "node:assert/strict";
 *
 * // A bundler that imported radam.wasm as its bytes:
 * assert.throws(() => useKernelFile(new Uint8Array(8)), TypeError);
 * ```
 */
export function useKernelFile(kernel: unknown): void {
  if (!(kernel instanceof WebAssembly.Module)) {
    throw new TypeError(
      `@optim/radam's workerd entry imports its kernel, radam.wasm, as a compiled WebAssembly.Module (as wrangler's default CompiledWasm rule does), got ${
        described(kernel)
      }: import .wasm?module files as compiled modules, or bundle without the "workerd" condition and call setWasmModule`,
    );
  }
  useOwnKernel(kernel);
}
