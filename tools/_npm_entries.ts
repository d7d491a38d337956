/**
 * The npm package's entries (tools/build_npm.ts), bundled by esbuild in one build so that they
 * share one copy of the library, in `chunks/`, and differ only in where the library's kernel comes
 * from (cpu/_kernel_bytes.ts):
 *
 * - the default entries (`<out>.js`, the package's `import` and `default` conditions) import a
 *   module of their own, {@link BYTES}, that hands the library the kernel's bytes as base64 (about
 *   51 KB): it lands in a chunk that only they import;
 * - the `workerd` entries (`workerd/<out>.js`, the `workerd` condition) import the package's
 *   `radam.wasm` as `../radam.wasm?module` and hand it to the library compiled
 *   (cpu/_workerd_kernel.ts): no file they load holds the base64 (tools/build_npm.ts checks).
 *
 * The library's own import of the base64 (cpu/kernels_wasm.generated.ts) is emptied in the bundle.
 *
 * wrangler bundles a Worker with the conditions `workerd`, `worker` and `browser` (wrangler 4's
 * `getBuildConditions`), and imports its `.wasm` files as compiled modules (its default
 * `CompiledWasm` rule); `workerd` names Cloudflare's runtime, and the bundlers that apply it
 * build for it. Not `worker`: webpack applies it to web workers, and edge runtimes other than
 * Cloudflare's apply it too; they import a `.wasm` file otherwise (an instance's exports, a URL),
 * or not at all. `../radam.wasm?module` is the form that the Workers bundlers that apply `workerd`
 * make a compiled `WebAssembly.Module`: wrangler (its `CompiledWasm` rule globs `**\/*.wasm` and
 * `**\/*.wasm?module`), Cloudflare's Vite plugin, Nitro's cloudflare presets (unwasm: a bare
 * `.wasm` import is the instance's exports there, and the entry threw at import), Astro's
 * Cloudflare adapter (`wasmModuleImports`). So `backend: "auto"` runs on wasm in a Worker, where
 * WebAssembly cannot be compiled at run time, with no `setWasmModule`. Only builds compiled from
 * bytes need the base64 (threads, tfjs's wasm heap), and those are refused in a Worker anyway
 * (cpu/wasm_backend.ts).
 *
 * @module
 */
import * as esbuild from "esbuild";

/** The folder of the `workerd` entries, in the package. */
export const WORKERD_DIR = "workerd";
/** The kernel's file as the `workerd` entries import it, from `workerd/`. */
const KERNEL_IMPORT = "../radam.wasm?module";
/** What matches {@linkcode KERNEL_IMPORT} alone, for esbuild's `onResolve`. */
const KERNEL_FILTER = new RegExp(`^${KERNEL_IMPORT.replace(/[.?*+^$()[\]{}|\\/]/g, "\\$&")}$`);
/** The namespace of the entries' own modules, which the plugin writes. */
const NAMESPACE = "radam-npm";
/** The module that hands the library the kernel's bytes: the default entries' alone. */
const BYTES = `${NAMESPACE}:kernel-bytes`;
/** The library's import of the kernel's base64, emptied in the bundle. */
const GENERATED = /[\\/]cpu[\\/]kernels_wasm\.generated\.ts$/;

/** One entry: its output name (`<out>.js`) and its source module at the project's root. */
export interface NpmEntry {
  readonly out: string;
  readonly source: string;
}

/** Which build of an entry: the default one, or the `workerd` one. */
type Flavor = "default" | "workerd";

/**
 * An entry's code: the kernel handed to the library (its bytes, or its file as the Worker's
 * bundler compiled it), then the source's exports. (An entry's imports are evaluated before its
 * body, the library's modules included; none of them compiles the kernel as it loads, and the
 * app's code runs after.)
 */
function entryCode(flavor: Flavor, source: string): string {
  return (flavor === "default" ? [`import "${BYTES}";`, `export * from "./${source}";`] : [
    `import kernel from "${KERNEL_IMPORT}";`,
    `import { useKernelFile } from "./cpu/_workerd_kernel.ts";`,
    `export * from "./${source}";`,
    `useKernelFile(kernel);`,
  ]).concat("").join("\n");
}

/** {@link BYTES}'s code: `base64` handed to the library as it loads. */
function bytesCode(base64: string): string {
  return `import { embedKernelBytes } from "./cpu/_kernel_bytes.ts";\nembedKernelBytes("${base64}");\n`;
}

/**
 * The entries and {@link BYTES} as esbuild plugins see them, the kernel's file external, the
 * library's base64 emptied.
 */
function entriesPlugin(base64: string): esbuild.Plugin {
  return {
    name: "radam-npm-entries",
    setup(b) {
      b.onResolve({ filter: new RegExp(`^${NAMESPACE}:`) }, (args) => ({
        path: args.path.slice(NAMESPACE.length + 1),
        namespace: NAMESPACE,
      }));
      b.onLoad({ filter: /.*/, namespace: NAMESPACE }, (args) => {
        const [flavor, source] = args.path.split(":");
        return {
          contents: args.path === BYTES.slice(NAMESPACE.length + 1)
            ? bytesCode(base64)
            : entryCode(flavor as Flavor, source),
          loader: "ts",
          resolveDir: Deno.cwd(),
        };
      });
      b.onResolve({ filter: KERNEL_FILTER }, () => ({ path: KERNEL_IMPORT, external: true }));
      b.onLoad({ filter: GENERATED }, () => ({
        contents: 'export const KERNELS_WASM_BASE64 = "";\n',
        loader: "ts",
      }));
    },
  };
}

/** The package's files that a Worker bundles with `file`: it and its imports, transitively. */
function bundledWith(metafile: esbuild.Metafile, file: string, seen: Set<string>): Set<string> {
  if (seen.has(file)) return seen;
  seen.add(file);
  const output = metafile.outputs[file];
  if (output === undefined) throw new Error(`esbuild wrote no ${file}`);
  for (const { path, external } of output.imports) {
    if (!external) bundledWith(metafile, path, seen);
  }
  return seen;
}

/** What {@linkcode bundleEntries} built: the files of each build of the entries, under `out`. */
export interface BuiltEntries {
  /** Every `.js` file of the package's code: the entries of both builds, and the chunks. */
  readonly code: string[];
  /** The files that the `workerd` entries load, with any `import()` of theirs: no base64 here. */
  readonly workerd: string[];
}

/**
 * Bundles `entries` into `<out>/` and `<out>/workerd/`, with esbuild `options` (`chunkNames`, …),
 * sharing their chunks; `base64`: the kernel's bytes, for the default entries.
 */
export async function bundleEntries(
  out: string,
  entries: readonly NpmEntry[],
  options: esbuild.BuildOptions,
  base64: string,
): Promise<BuiltEntries> {
  const points = (flavor: Flavor, dir: string) =>
    entries.map((e) => [`${dir}${e.out}`, `${NAMESPACE}:${flavor}:${e.source}`]);
  const { metafile } = await esbuild.build({
    ...options,
    entryPoints: Object.fromEntries([
      ...points("default", ""),
      ...points("workerd", `${WORKERD_DIR}/`),
    ]),
    outdir: out,
    plugins: [entriesPlugin(base64)],
    metafile: true,
  });
  const code = Object.keys(metafile.outputs).filter((f) => f.endsWith(".js")).sort();
  const workerd = new Set<string>();
  for (const e of entries) bundledWith(metafile, `${out}/${WORKERD_DIR}/${e.out}.js`, workerd);
  return { code, workerd: [...workerd].sort() };
}
