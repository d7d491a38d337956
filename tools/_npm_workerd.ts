/**
 * The npm package's `workerd` build (tools/build_npm.ts): one entry per entry of the package,
 * in `workerd/`, which the package's `exports` give under the `workerd` condition. wrangler
 * bundles a Worker with the conditions `workerd`, `worker` and `browser` (wrangler 4's
 * `getBuildConditions`), and imports its `.wasm` files as compiled modules (its default
 * `CompiledWasm` rule); `workerd` names Cloudflare's runtime, and the bundlers that apply it
 * build for it. Not `worker`: webpack applies it to web workers, and edge runtimes other than
 * Cloudflare's apply it too; they import a `.wasm` file otherwise (an instance's exports, a URL),
 * or not at all.
 *
 * Each entry imports the package's `radam.wasm` as `../radam.wasm?module`, the form that the
 * Workers bundlers that apply `workerd` make a compiled `WebAssembly.Module`: wrangler (its
 * `CompiledWasm` rule globs `**\/*.wasm` and `**\/*.wasm?module`), Cloudflare's Vite plugin,
 * Nitro's cloudflare presets (unwasm: a bare `.wasm` import is the instance's exports there, and
 * the entry threw at import), Astro's Cloudflare adapter (`wasmModuleImports`). It hands the
 * module to the library (cpu/_workerd_kernel.ts) and exports what the entry of the default build
 * does: `backend: "auto"` runs on wasm in a Worker, where WebAssembly cannot be compiled at run
 * time, with no `setWasmModule`. The entries share their code through `workerd/chunks/` (one copy
 * of the library, so one kernel for all). The build leaves out the kernel's base64 text, which
 * only builds compiled from bytes need (threads, tfjs's wasm heap), and those are refused in a
 * Worker anyway (cpu/wasm_backend.ts).
 *
 * @module
 */
import * as esbuild from "esbuild";

/** The folder of the build, in the package. */
export const WORKERD_DIR = "workerd";
/** The kernel's file as the entries import it, from `workerd/`. */
const KERNEL_IMPORT = "../radam.wasm?module";
/** What matches {@linkcode KERNEL_IMPORT} alone, for esbuild's `onResolve`. */
const KERNEL_FILTER = new RegExp(`^${KERNEL_IMPORT.replace(/[.?*+^$()[\]{}|\\/]/g, "\\$&")}$`);
const NAMESPACE = "radam-workerd-entry";

/** One entry: its output name (`<out>.js`) and its source module at the project's root. */
export interface WorkerdEntry {
  readonly out: string;
  readonly source: string;
}

/**
 * An entry's code: the kernel's file handed to the library, then the source's exports. (An
 * entry's imports are evaluated before its body, the library's modules included; none of them
 * compiles the kernel as it loads, and the app's code runs after.)
 */
function entryCode(source: string): string {
  return [
    `import kernel from "${KERNEL_IMPORT}";`,
    `import { useKernelFile } from "./cpu/_workerd_kernel.ts";`,
    `export * from "./${source}";`,
    `useKernelFile(kernel);`,
    "",
  ].join("\n");
}

/** Its entries as esbuild plugins see them, the kernel's file external, its base64 left out. */
const workerdPlugin: esbuild.Plugin = {
  name: "radam-workerd",
  setup(b) {
    b.onResolve({ filter: new RegExp(`^${NAMESPACE}:`) }, (args) => ({
      path: args.path.slice(NAMESPACE.length + 1),
      namespace: NAMESPACE,
    }));
    b.onLoad({ filter: /.*/, namespace: NAMESPACE }, (args) => ({
      contents: entryCode(args.path),
      loader: "ts",
      resolveDir: Deno.cwd(),
    }));
    b.onResolve({ filter: KERNEL_FILTER }, () => ({
      path: KERNEL_IMPORT,
      external: true,
    }));
    b.onLoad({ filter: /[\\/]cpu[\\/]kernels_wasm\.generated\.ts$/ }, () => ({
      contents: 'export const KERNELS_WASM_BASE64 = "";\n',
      loader: "ts",
    }));
  },
};

/**
 * Bundles `entries` into `<out>/workerd/`, with esbuild `options` (those of the default build);
 * returns the files to list in the package's `sideEffects` (every one: each entry registers the
 * kernel), as `./workerd/…`.
 */
export async function bundleWorkerd(
  out: string,
  entries: readonly WorkerdEntry[],
  options: esbuild.BuildOptions,
): Promise<string[]> {
  const { metafile } = await esbuild.build({
    ...options,
    entryPoints: Object.fromEntries(entries.map((e) => [e.out, `${NAMESPACE}:${e.source}`])),
    outdir: `${out}/${WORKERD_DIR}`,
    plugins: [workerdPlugin],
    metafile: true,
  });
  return Object.keys(metafile.outputs).filter((f) => f.endsWith(".js"))
    .map((f) => `./${f.slice(out.length + 1)}`).sort();
}
