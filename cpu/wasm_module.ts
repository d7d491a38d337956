/**
 * `setWasmModule`: the kernel handed to the library as a compiled `WebAssembly.Module`, for
 * runtimes that run WebAssembly only when it arrives compiled (Cloudflare Workers, which compile
 * a Worker's `.wasm` imports as they load it, and refuse to compile bytes at run time).
 *
 * @module
 */
import { described, promiseHint } from "../base/_errors.ts";
import { customSectionOf, exportsOf, KERNEL_MARK } from "./_wasm_memory.ts";
import { kernelBytes, ownKernel, useKernelModule } from "./wasm_backend.ts";

/** The package's file of the kernel, as a Worker imports it. */
const KERNEL_FILE = "@optim/radam/radam.wasm";

let expected: string[] | undefined;

/**
 * The kernel's exports, as `name (kind)`, read once: from the package's own kernel where the
 * runtime compiled it (the npm package's `workerd` build, which carries no bytes), else from the
 * kernel's bytes.
 */
function kernelExports(): string[] {
  const own = ownKernel();
  return expected ??=
    (own === undefined ? exportsOf(kernelBytes()) : WebAssembly.Module.exports(own))
      .map((e) => `${e.name} (${e.kind})`);
}

/** The kernel's mark (see {@linkcode markMismatch}), from the same kernel as its exports. */
function kernelMark(): Uint8Array | undefined {
  const own = ownKernel();
  if (own === undefined) return customSectionOf(kernelBytes(), KERNEL_MARK);
  const [mark] = WebAssembly.Module.customSections(own, KERNEL_MARK);
  return mark === undefined ? undefined : new Uint8Array(mark);
}

/** What `module` has that the kernel has not, or lacks that it has; empty for the kernel. */
function mismatch(module: WebAssembly.Module): string {
  const imports = WebAssembly.Module.imports(module).map((i) => `${i.module}.${i.name}`);
  if (imports.length > 0) return `imports ${imports.join(", ")} (the kernel imports nothing)`;
  const want = kernelExports();
  const have = WebAssembly.Module.exports(module).map((e) => `${e.name} (${e.kind})`);
  const missing = want.filter((e) => !have.includes(e));
  const extra = have.filter((e) => !want.includes(e));
  if (missing.length > 0) {
    return `lacks the kernel's export${missing.length > 1 ? "s" : ""} ${missing.join(", ")}`;
  }
  if (extra.length > 0) return `exports ${extra.join(", ")}, which the kernel does not`;
  return markMismatch(module);
}

/**
 * Where `module`, with the kernel's imports and exports, is not this build of it: its mark (the
 * custom section {@linkcode KERNEL_MARK}, a digest of its code) is missing or another; else
 * empty. A kernel of another version may have the same exports and read its scalars elsewhere.
 */
function markMismatch(module: WebAssembly.Module): string {
  const want = kernelMark();
  const marks = WebAssembly.Module.customSections(module, KERNEL_MARK).map((b) =>
    new Uint8Array(b)
  );
  const same = (mark: Uint8Array) =>
    want !== undefined && mark.length === want.length && mark.every((b, i) => b === want[i]);
  if (marks.some(same)) return "";
  return marks.length === 0
    ? `has the kernel's exports but not its build's mark (a custom section "${KERNEL_MARK}"): another build of the kernel`
    : `is another build of the kernel (its mark, the custom section "${KERNEL_MARK}", differs from this library's: the radam.wasm of another version?)`;
}

/**
 * Gives the library its wasm kernel as a compiled module, for runtimes that refuse to compile
 * WebAssembly from bytes at run time but run a module compiled as the app loads. A Cloudflare
 * Worker bundled by wrangler needs no call: the npm package's entries under the `workerd` export
 * condition, which wrangler applies, import its `radam.wasm` and give it here as they load (and
 * leave out the kernel's bytes). Call it where the bundler does not apply that condition (or in
 * workerd's own config): import the package's `radam.wasm` (`import kernel from
 * "@optim/radam/radam.wasm"`, which wrangler's default `CompiledWasm` rule, or a `wasm` module of
 * workerd's config, makes a `WebAssembly.Module`) and pass it here, once, before making states
 * (the same module again changes nothing). From then on every
 * single-threaded state on the wasm backend runs that module instead of compiling the kernel's
 * bytes: those of `init`, `loadState`, the TensorFlow.js adapter, and the stores'
 * `dataParallel` and `optimisticStep`. So backend `"auto"` picks wasm there (without it, the
 * state goes on js, 14–16 times slower at 1M parameters in workerd), and backend `"wasm"`
 * works.
 *
 * Option `threads` above 1 and a state on TensorFlow.js's wasm heap still need to compile builds
 * of the kernel made from its bytes (they import their memory): where WebAssembly cannot be
 * compiled at run time they stay refused, as without a module. Where it can, a module need not be
 * given (the library compiles its own), but giving one does no harm.
 *
 * Throws a TypeError, and keeps what it had, where `module` is not a `WebAssembly.Module`, or is
 * not this build of this library's kernel: its imports or exports differ from the kernel's, or
 * its mark does (a custom section `radam.kernel`, the digest of the kernel's code, which the
 * build appends: a kernel of another version of the package, whose exports may be the same, is
 * refused, where it would train to other bits). Use the `radam.wasm` of the same version of the
 * package as the code that imports it.
 *
 * @example A Cloudflare Worker whose bundler does not apply the `workerd` condition (one bundled
 * by wrangler needs no call): the package's `radam.wasm`, compiled by the runtime as it loads the
 * Worker. (Not run here: the import needs a Workers bundler.)
 * ```ts ignore
 * import { radam, setWasmModule } from "@optim/radam";
 * import kernel from "@optim/radam/radam.wasm";
 *
 * setWasmModule(kernel); // once, before making states
 *
 * export default {
 *   async fetch() {
 *     const state = await radam({ lr: 1e-2 }).init({ w: new Float32Array([1, 2, 3]) });
 *     return new Response(state.backend); // "wasm"
 *   },
 * };
 * ```
 *
 * @example What it refuses, keeping what it had: bytes, and a module that is not the kernel
 * ```ts
 * import { radam, setWasmModule } from "@optim/radam";
 * import assert from "node:assert/strict";
 *
 * // (module (memory (export "memory") 1))
 * const bytes = new Uint8Array([
 *   0, 97, 115, 109, 1, 0, 0, 0, 5, 3, 1, 0, 1,
 *   7, 10, 1, 6, 109, 101, 109, 111, 114, 121, 2, 0,
 * ]);
 * assert.throws(() => setWasmModule(bytes as unknown as WebAssembly.Module), TypeError);
 * assert.throws(() => setWasmModule(new WebAssembly.Module(bytes)), TypeError);
 *
 * // Where WebAssembly compiles at run time, as here, the library compiles its own kernel:
 * const state = await radam({ lr: 1e-2 }).init({ w: new Float32Array([1, 2, 3]) });
 * assert.equal(state.backend, "wasm");
 * ```
 */
export function setWasmModule(module: WebAssembly.Module): void {
  if (!(module instanceof WebAssembly.Module)) {
    const value: unknown = module;
    const bytes = value instanceof ArrayBuffer || ArrayBuffer.isView(value)
      ? " (bytes: where WebAssembly can be compiled at run time, the library compiles its own kernel and needs none)"
      : promiseHint(module);
    throw new TypeError(
      `setWasmModule expects a WebAssembly.Module (in a Cloudflare Worker: import kernel from "${KERNEL_FILE}"), got ${
        described(module)
      }${bytes}`,
    );
  }
  const why = mismatch(module);
  if (why !== "") {
    throw new TypeError(
      `setWasmModule expects this library's kernel ("${KERNEL_FILE}", of the same version as the library), got a WebAssembly.Module that ${why}`,
    );
  }
  useKernelModule(module);
}
