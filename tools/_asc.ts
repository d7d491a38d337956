/**
 * What the builds of AssemblyScript share (tools/build_wasm.ts, tools/build_q8_wasm.ts and the
 * bench's bounds, bench/compare/bounds.ts): running the compiler and catching its wasm output,
 * the settings of a standalone build and an instance of one, and the base64 text of the
 * generated modules. Private to
 * the tools and the bench.
 *
 * @module
 */

/**
 * Runs the AssemblyScript compiler with `args` and returns the wasm it writes. The compiler is
 * loaded on first use, not on import: it reads the environment as it loads, which the tools
 * and the bench allow and the tests that only read the bench's rows do not.
 *
 * @example
 * ```ts ignore
 * import { compileAssembly, standaloneArgs } from "./_asc.ts";
 * const wasm = await compileAssembly(standaloneArgs("bounds.ts"));
 * ```
 */
export async function compileAssembly(args: readonly string[]): Promise<Uint8Array<ArrayBuffer>> {
  const { default: asc } = await import("assemblyscript/asc");
  let wasm: Uint8Array | undefined;
  const { error, stderr } = await asc.main([...args], {
    writeFile(name: string, contents: Uint8Array | string) {
      if (name.endsWith(".wasm") && typeof contents !== "string") wasm = contents;
    },
  });
  if (error) throw new Error(`asc failed: ${error.message}\n${stderr.toString()}`);
  if (!wasm) throw new Error("asc produced no .wasm output");
  return new Uint8Array(wasm);
}

/**
 * The arguments of a standalone build of `entry` (a file of assembly/) with the kernels'
 * optimization settings (asconfig.json's release target), no runtime and no abort: `--baseDir
 * assembly` resolves the entry there, where no asconfig.json (the kernels' entries) is found.
 *
 * @example
 * ```ts
 * import { standaloneArgs } from "./_asc.ts";
 * console.log(standaloneArgs("q8_exports.ts").slice(0, 3)); // ["q8_exports.ts", "--baseDir", "assembly"]
 * ```
 */
export function standaloneArgs(entry: string): string[] {
  return [
    entry,
    "--baseDir",
    "assembly",
    "--outFile",
    entry.replace(/\.ts$/, ".wasm"),
    "--optimizeLevel",
    "3",
    "--shrinkLevel",
    "0",
    "--converge",
    "--noAssert",
    "--runtime",
    "stub",
    "--enable",
    "simd",
    "--use",
    "abort=",
  ];
}

/** What a standalone module exports for {@linkcode standaloneInstance}. */
export interface StandaloneExports {
  memory: WebAssembly.Memory;
  /** The first byte after the module's static data. */
  heapBase(): number;
}

const modules = new Map<string, Promise<WebAssembly.Module>>();

/**
 * The standalone build of `entry` (a file of assembly/), compiled once per entry: a module that
 * {@linkcode instantiateStandalone} instantiates, here or in a worker it is posted to.
 *
 * @example
 * ```ts ignore
 * import { standaloneModule } from "./_asc.ts";
 * const module = await standaloneModule("bounds.ts");
 * ```
 */
export function standaloneModule(entry: string): Promise<WebAssembly.Module> {
  let module = modules.get(entry);
  if (module === undefined) {
    module = compileAssembly(standaloneArgs(entry)).then((wasm) => WebAssembly.compile(wasm));
    modules.set(entry, module);
  }
  return module;
}

/**
 * A new instance of a standalone `module` whose memory holds `bytes` from `at`, the first 4 KiB
 * boundary after its static data.
 *
 * @example
 * ```ts ignore
 * import { instantiateStandalone, standaloneModule } from "./_asc.ts";
 * const { exports, at } = await instantiateStandalone(await standaloneModule("bounds.ts"), 4096);
 * ```
 */
export async function instantiateStandalone<T extends StandaloneExports>(
  module: WebAssembly.Module,
  bytes: number,
): Promise<{ exports: T; at: number }> {
  const exports = (await WebAssembly.instantiate(module, {})).exports as unknown as T;
  const at = Math.ceil(exports.heapBase() / 4096) * 4096;
  const grow = at + bytes - exports.memory.buffer.byteLength;
  if (grow > 0) exports.memory.grow(Math.ceil(grow / 65536));
  return { exports, at };
}

/**
 * A new instance of the standalone build of `entry` (compiled once per entry), whose memory
 * holds `bytes` from `at`, the first 4 KiB boundary after its static data.
 *
 * @example
 * ```ts ignore
 * import { standaloneInstance } from "./_asc.ts";
 * const { exports, at } = await standaloneInstance("bounds.ts", 1 << 20);
 * ```
 */
export async function standaloneInstance<T extends StandaloneExports>(
  entry: string,
  bytes: number,
): Promise<{ exports: T; at: number }> {
  return instantiateStandalone<T>(await standaloneModule(entry), bytes);
}

/**
 * `bytes` in base64, for the generated modules that carry wasm as text.
 *
 * @example
 * ```ts
 * import { toBase64 } from "./_asc.ts";
 * console.log(toBase64(new Uint8Array([0, 97, 115, 109]))); // "AGFzbQ=="
 * ```
 */
export function toBase64(bytes: Uint8Array): string {
  let binary = "";
  for (let i = 0; i < bytes.length; i += 0x8000) {
    binary += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  }
  return btoa(binary);
}
