/**
 * Builds the npm package from the same sources as the JSR one: `deno task build:npm`.
 *
 * Output, in the git-ignored folder `npm/`:
 * - one ES module per entry point of {@link ENTRIES} (`index.js` for mod.ts, `tfjs.js` for the
 *   TensorFlow.js adapter, `@optim/radam/tfjs`), bundled by esbuild so that they share their code
 *   through `chunks/` (one copy of the library, so a state made through one entry is recognised by
 *   another), with the `workerd/` entries too; the default entries hand the library the kernel's
 *   wasm inlined as base64, from a chunk only they import, so nothing is read from disk at run
 *   time (see tools/_npm_entries.ts). `@tensorflow/tfjs-core` stays an import: a peer dependency
 *   (`^4`, optional: only `tfjs.js` needs it);
 * - `types/`: `.d.ts` declarations emitted by the TypeScript compiler, those that the entries'
 *   types reach (see {@link pruneDeclarations}), which name no WebGPU package: the few WebGPU types they use are declared in `types/_webgpu.d.ts` (see
 *   {@link webgpuShim}), so that they type-check beside tfjs-core's copy of `@webgpu/types`, any
 *   other, or none; their TSDoc examples import the entry points by the package's name, as
 *   the sources' do (tests/node checks);
 * - `radam.wasm`: the kernel, byte for byte the one the bundle embeds (checked), for runtimes
 *   that run WebAssembly only when it arrives compiled (Cloudflare Workers: see setWasmModule),
 *   typed by `types/radam_wasm.d.ts` as a `WebAssembly.Module` (see {@link KERNEL_TYPES});
 * - `workerd/`: the entries again, for the `workerd` export condition (wrangler's), on the same
 *   chunks: each imports `radam.wasm` and hands it to the library as it loads, and loads no file
 *   that holds the kernel's base64 (checked; see tools/_npm_entries.ts);
 * - `tfjs-core-global.js` (`@optim/radam/tfjs-core-global`): for a page that loads tfjs with a
 *   `<script>` tag (`tf.min.js`), the adapter's `@tensorflow/tfjs-core` from the global `tf`, made
 *   from the adapter's list of what it uses (see tools/_npm_core_global.ts);
 * - `package.json` (name and version from deno.json, `exports` for Node ≥ 20 and bundlers,
 *   `sideEffects` naming the files of code, each of which does something on import (the entries
 *   hand the library its kernel), `homepage`: the package's
 *   page on JSR; no `repository`, as the project has no public one yet), LICENSE, the update
 *   rules (`docs/SPEC.md`), and a README.md for npm users made from `tools/npm_readme.md` and the
 *   sections of README.md marked for it, every link absolute (see tools/_npm_readme.ts).
 *
 * @module
 */
import * as esbuild from "esbuild";
import ts from "typescript";
import { decodeBase64 } from "../base/_base64.ts";
import { KERNELS_WASM_BASE64 } from "../cpu/kernels_wasm.generated.ts";
import { toBase64 } from "./_asc.ts";
import { importMapVersions, npmInstall } from "./_npm.ts";
import { CORE_GLOBAL_FILE, coreGlobalModule } from "./_npm_core_global.ts";
import { type BuiltEntries, bundleEntries, WORKERD_DIR } from "./_npm_entries.ts";
import { jsrPublishedFiles, npmReadme } from "./_npm_readme.ts";

const OUT = "npm";
/** The WebGPU type declarations the sources are compiled against (GPUDevice, GPUBuffer, …). */
const WEBGPU_TYPES = "@webgpu/types@0.1.74";
const TOOLS = "build/npm_tools";
/** tfjs-core, for the adapter's declarations (the package takes it as a peer dependency). */
const TFJS_CORE = "@tensorflow/tfjs-core";
/** The npm README's own text (see tools/_npm_readme.ts). */
const README_TEMPLATE = "tools/npm_readme.md";
/**
 * The kernel as a file, for runtimes that run WebAssembly only when it arrives compiled (a
 * Cloudflare Worker imports it: the package's workerd entries do, or the app, `import kernel from
 * "@optim/radam/radam.wasm"`, then `setWasmModule(kernel)`): the plain build, byte for byte the
 * one the bundle embeds.
 */
const KERNEL_FILE = "radam.wasm";
/**
 * The kernel file's declarations, in `types/`: a default export of type `WebAssembly.Module`, so
 * that `import kernel from "@optim/radam/radam.wasm"` type-checks with `@cloudflare/workers-types`
 * (which declares no `*.wasm` modules) as well as with `wrangler types`'s output (which does).
 */
const KERNEL_TYPES = "types/radam_wasm.d.ts";
/** Files of the repository the package ships as they are, at the same paths. */
const SHIPPED = ["LICENSE", "docs/SPEC.md"];

/** One entry point of the package. */
interface Entry {
  /** Its output file, `<out>.js`, and its declarations' `types/<source>.d.ts`. */
  readonly out: string;
  /** Its source module, at the project's root. */
  readonly source: string;
  /** The subpath it is exported as. */
  readonly subpath: string;
  /** Whether it imports `@tensorflow/tfjs-core` (the optional peer dependency). */
  readonly tfjs: boolean;
}

/** Where an entry's declarations are, in the package (its `types/` mirrors the sources). */
function typesOf(entry: Entry): string {
  return `types/${entry.source.replace(/\.ts$/, ".d.ts")}`;
}

/** The package's entry points: one line each. */
const ENTRIES: readonly Entry[] = [
  { out: "index", source: "mod.ts", subpath: ".", tfjs: false },
  // Registers the optimizer class with tfjs's serialization, for tf.loadLayersModel.
  { out: "tfjs", source: "tfjs.ts", subpath: "./tfjs", tfjs: true },
  // The runtime-agnostic serverless store (optimistic steps, data-parallel training).
  { out: "store", source: "store.ts", subpath: "./store", tfjs: false },
];

/**
 * The WebGPU types the declarations name. Interfaces are declared in `types/_webgpu.d.ts` empty
 * but for {@link WEBGPU_MEMBERS}: a global interface merges with the same interface of whichever
 * WebGPU typings the app has (tfjs-core brings `@webgpu/types` 0.1.38; a newer copy or
 * TypeScript's DOM library may come too), so the app's own `GPUDevice` goes in and our
 * `GPUBuffer` comes out, and it stands alone where there are none. A type alias cannot merge (a
 * second one is a conflict): it is written out.
 */
const WEBGPU_INTERFACES = [
  "GPUBindGroup",
  "GPUBindGroupLayout",
  "GPUBuffer",
  "GPUBufferBinding",
  "GPUCommandEncoder",
  "GPUComputePassEncoder",
  "GPUComputePipeline",
  "GPUDevice",
] as const;
/**
 * Members of those interfaces as the WebGPU spec has them, declared as every typings declares
 * them (a merge must find the same types and modifiers: `readonly size: number` and `readonly
 * usage: number` in `@webgpu/types` 0.1.38 to 0.1.74 and in Deno's own): where the app has no
 * WebGPU typings, an empty `GPUBuffer` took any value, an Array where a gradient goes
 * (`step(state, { w: [1, 2] })` type-checked, and failed when run).
 */
const WEBGPU_MEMBERS: Readonly<Record<string, string>> = {
  GPUBuffer: "readonly size: number; readonly usage: number; destroy(): undefined;",
};
const WEBGPU_ALIASES: Readonly<Record<string, string>> = {
  GPUBufferBindingType: '"uniform" | "storage" | "read-only-storage"',
};
const WEBGPU_SHIM = "_webgpu.d.ts";

/**
 * Installs the WebGPU types and tfjs-core (at the import map's version), for the declaration
 * build; returns the WebGPU types' entry file.
 */
async function webgpuTypes(): Promise<string> {
  await npmInstall(TOOLS, [WEBGPU_TYPES, ...await importMapVersions([TFJS_CORE])]);
  return `${TOOLS}/node_modules/@webgpu/types/dist/index.d.ts`;
}

/**
 * Bundles the entries, default and `workerd` (see tools/_npm_entries.ts); returns what it built.
 * Every entry does something on import (it hands the library its kernel; tfjs.js registers the
 * optimizer class too), and where esbuild puts a module's code depends on which entries import
 * it, so the package's `sideEffects` names every file of its code.
 */
async function bundle(): Promise<BuiltEntries> {
  const options: esbuild.BuildOptions = {
    bundle: true,
    splitting: true,
    chunkNames: "chunks/[name]-[hash]",
    external: ["@tensorflow/tfjs-core"],
    format: "esm",
    platform: "neutral",
    target: "es2022",
    legalComments: "inline",
    logLevel: "warning",
  };
  const built = await bundleEntries(OUT, ENTRIES, options, KERNELS_WASM_BASE64);
  await esbuild.stop();
  return built;
}

/** `types/_webgpu.d.ts`: the WebGPU types the declarations name (see {@link WEBGPU_INTERFACES}). */
function webgpuShim(): string {
  return [
    "// The WebGPU types this package's declarations name, declared empty or with members of the",
    "// WebGPU spec: each merges with the same interface of whichever WebGPU typings the program",
    "// has (@webgpu/types of any version, as tfjs-core brings, or TypeScript's DOM library), and",
    "// conflicts with none.",
    ...WEBGPU_INTERFACES.map((name) =>
      `interface ${name} {${WEBGPU_MEMBERS[name] ? ` ${WEBGPU_MEMBERS[name]} ` : ""}}`
    ),
    "// setWasmModule's parameter: merges with the DOM library's WebAssembly.Module (or Node's,",
    "// or a Worker's types), and stands alone where a program has none (lib es2022 alone).",
    "declare namespace WebAssembly { interface Module {} }",
    "",
  ].join("\n");
}

/** Rewrites one emitted declaration file for the package (paths, WebGPU types). */
function fixDeclaration(name: string, text: string): string {
  // Declarations refer to each other as ./x.js (which resolves to ./x.d.ts), not ./x.ts.
  let fixed = text.replace(/(from\s+["']\.{1,2}\/[^"']+)\.ts(["'])/g, "$1.js$2")
    .replace(/(import\(["']\.{1,2}\/[^"']+)\.ts(["']\))/g, "$1.js$2");
  for (const [alias, union] of Object.entries(WEBGPU_ALIASES)) {
    fixed = fixed.replace(new RegExp(`\\b${alias}\\b`, "g"), union);
  }
  if (ENTRIES.some((e) => name === `${OUT}/${typesOf(e)}`)) {
    fixed = `/// <reference path="./${WEBGPU_SHIM}" />\n${fixed}`;
  }
  return fixed;
}

/** Formats TypeScript diagnostics into an error, if there are any. */
function failOn(diagnostics: readonly ts.Diagnostic[], what: string): void {
  if (diagnostics.length === 0) return;
  const host: ts.FormatDiagnosticsHost = {
    getCanonicalFileName: (f) => f,
    getCurrentDirectory: () => Deno.cwd(),
    getNewLine: () => "\n",
  };
  throw new Error(`${what}:\n${ts.formatDiagnosticsWithColorAndContext(diagnostics, host)}`);
}

/** Compiler options shared by the declaration build and its check. */
function baseOptions(): ts.CompilerOptions {
  return {
    target: ts.ScriptTarget.ES2022,
    module: ts.ModuleKind.ESNext,
    moduleResolution: ts.ModuleResolutionKind.Bundler,
    lib: ["lib.es2022.d.ts", "lib.dom.d.ts"],
    strict: true,
    types: [],
    // The adapter's imports of tfjs-core resolve to the copy installed for this build.
    baseUrl: ".",
    paths: { "@tensorflow/tfjs-core": [`${TOOLS}/node_modules/@tensorflow/tfjs-core`] },
  };
}

/** Emits the entries' declarations into `types/`. */
function declarations(webgpu: string): void {
  const options: ts.CompilerOptions = {
    ...baseOptions(),
    declaration: true,
    emitDeclarationOnly: true,
    allowImportingTsExtensions: true,
    outDir: `${OUT}/types`,
    rootDir: ".",
    skipLibCheck: true,
  };
  const program = ts.createProgram([...ENTRIES.map((e) => e.source), webgpu], options);
  const diagnostics = [...ts.getPreEmitDiagnostics(program)];
  const emitted = program.emit(undefined, (name, text) => {
    if (!name.startsWith(`${OUT}/types/`)) return;
    Deno.mkdirSync(name.slice(0, name.lastIndexOf("/")), { recursive: true });
    Deno.writeTextFileSync(name, fixDeclaration(name, text));
  });
  diagnostics.push(...emitted.diagnostics);
  failOn(diagnostics, "declarations");
  Deno.writeTextFileSync(`${OUT}/types/${WEBGPU_SHIM}`, webgpuShim());
}

/**
 * Removes the emitted declarations that no entry's types reach (TypeScript emits one for every
 * module of the sources: the kernels' base64 text, the private helpers, …): the package ships only
 * the files a program that imports it reads.
 */
function pruneDeclarations(): void {
  const program = ts.createProgram(
    [...ENTRIES.map((e) => `${OUT}/${typesOf(e)}`), `${OUT}/types/${WEBGPU_SHIM}`],
    { ...baseOptions(), noEmit: true },
  );
  const root = `${OUT}/types/`;
  const reached = new Set(
    program.getSourceFiles().map((f) => f.fileName).filter((f) => f.includes(root))
      .map((f) => f.slice(f.lastIndexOf(root))),
  );
  const prune = (dir: string): boolean => {
    let kept = false;
    for (const entry of Deno.readDirSync(dir)) {
      const path = `${dir}/${entry.name}`;
      if (entry.isDirectory ? prune(path) : reached.has(path)) kept = true;
      else Deno.removeSync(path, { recursive: true });
    }
    return kept;
  };
  prune(`${OUT}/types`);
}

/** Writes {@link KERNEL_TYPES}: the kernel file's default export, a compiled module. */
function kernelDeclaration(): void {
  Deno.writeTextFileSync(
    `${OUT}/${KERNEL_TYPES}`,
    `/// <reference path="./${WEBGPU_SHIM}" />
/**
 * The library's wasm kernel (the package's \`radam.wasm\`), as a Cloudflare Worker's bundler
 * imports a \`.wasm\` file: compiled, as the Worker loads. Give it to \`setWasmModule\`.
 */
declare const kernel: WebAssembly.Module;
export default kernel;
`,
  );
}

/**
 * Type-checks the emitted declarations as an app would (strict, library files checked too):
 * the entries without tfjs-core (so without any WebGPU typings: a WebGPU type missing from the
 * shim fails here), then all of them beside tfjs-core and its `@webgpu/types`.
 */
function checkDeclarations(): void {
  const options = { ...baseOptions(), noEmit: true, skipLibCheck: false };
  const alone = ts.createProgram(
    [
      ...ENTRIES.filter((e) => !e.tfjs).map((e) => `${OUT}/${typesOf(e)}`),
      `${OUT}/${KERNEL_TYPES}`,
    ],
    { ...options, lib: ["lib.es2022.d.ts"], paths: {} },
  );
  failOn(ts.getPreEmitDiagnostics(alone), "declarations without tfjs-core or WebGPU typings");
  // As in an app, with the global types of tfjs-core's dependencies (@types/long, …).
  const typeRoots = [`${TOOLS}/node_modules/@types`];
  const beside = ts.createProgram(ENTRIES.map((e) => `${OUT}/${typesOf(e)}`), {
    ...options,
    types: undefined,
    typeRoots,
  });
  failOn(
    ts.getPreEmitDiagnostics(beside),
    "declarations beside tfjs-core's @webgpu/types",
  );
}

/**
 * The version range of package `name` in deno.json's import map (`npm:name@range`): what JSR's
 * package asks for, as deno publish writes the map into its imports. A range, not one version,
 * so that the app's own copy (of any version in it) is the only one.
 */
function importMapRange(deno: { imports?: Record<string, string> }, name: string): string {
  const range = deno.imports?.[name]?.match(/^npm:@?[^@]+@(.+)$/)?.[1];
  if (range === undefined || /^\d/.test(range)) {
    throw new Error(`deno.json's import map must give ${name} a range (^4), not ${range}`);
  }
  return range;
}

async function packageFiles(sideEffects: string[]): Promise<void> {
  const deno = JSON.parse(await Deno.readTextFile("deno.json"));
  const entryExports = ENTRIES.map((e) => [e.subpath, {
    types: `./${typesOf(e)}`,
    // Cloudflare Workers' bundlers (wrangler): the entry that hands the library its radam.wasm.
    workerd: `./${WORKERD_DIR}/${e.out}.js`,
    import: `./${e.out}.js`,
    default: `./${e.out}.js`,
  }]);
  const pkg = {
    name: deno.name,
    version: deno.version,
    description: "Fast optimizer kernels with PyTorch's semantics: RAdam, Adam, AdamW, Lion, SGD " +
      "and Ranger (LookAhead) on WebAssembly SIMD (threaded or not), plain TypeScript or " +
      "WebGPU; a TensorFlow.js optimizer adapter; safetensors checkpoints.",
    license: deno.license,
    // Its home and documentation; a `repository` belongs here only once there is a public one.
    homepage: `https://jsr.io/${deno.name}`,
    type: "module",
    main: "./index.js",
    types: "./types/mod.d.ts",
    exports: {
      ...Object.fromEntries(entryExports),
      [`./${KERNEL_FILE}`]: { types: `./${KERNEL_TYPES}`, default: `./${KERNEL_FILE}` },
      // An import map's "@tensorflow/tfjs-core" on a page with tf.min.js's global tf.
      [`./${CORE_GLOBAL_FILE.replace(/\.js$/, "")}`]: `./${CORE_GLOBAL_FILE}`,
      "./package.json": "./package.json",
    },
    // TypeScript's `moduleResolution: "node"` (node10: still the default with `module:
    // "commonjs"`) reads no `exports`; it finds the subpaths' types here.
    typesVersions: {
      "*": Object.fromEntries(
        ENTRIES.filter((e) => e.subpath !== ".").map((e) => [
          e.subpath.slice("./".length),
          [`./${typesOf(e)}`],
        ]).concat([[KERNEL_FILE, [`./${KERNEL_TYPES}`]]]),
      ),
    },
    files: [
      ...ENTRIES.map((e) => `${e.out}.js`),
      "chunks/",
      `${WORKERD_DIR}/`,
      "types/",
      KERNEL_FILE,
      CORE_GLOBAL_FILE,
      "README.md",
      ...SHIPPED,
    ],
    // Bundlers may drop an import of any other file whose exports go unused.
    sideEffects,
    engines: { node: ">=20" },
    // npm makes a scoped package private (a paid feature) unless told otherwise: a first
    // `npm publish` without `--access public` failed (402).
    publishConfig: { access: "public" },
    // The TensorFlow.js adapter (`@optim/radam/tfjs`) runs on the tfjs the user has: any that
    // the range of deno.json's import map admits, which JSR's package asks for too.
    peerDependencies: { [TFJS_CORE]: importMapRange(deno, TFJS_CORE) },
    peerDependenciesMeta: { "@tensorflow/tfjs-core": { optional: true } },
    keywords: [
      "radam",
      "adam",
      "adamw",
      "lion",
      "ranger",
      "lookahead",
      "optimizer",
      "tensorflow",
      "tfjs",
      "webgpu",
      "wasm",
      "simd",
      "machine-learning",
    ],
  };
  await Deno.writeTextFile(
    `${OUT}/package.json`,
    JSON.stringify(pkg, null, 2) + "\n",
  );
  await Deno.writeTextFile(`${OUT}/README.md`, await readme(deno.name, deno.version));
  for (const file of SHIPPED) {
    await Deno.mkdir(`${OUT}/${file}`.replace(/\/?[^/]*$/, "") || OUT, { recursive: true });
    await Deno.copyFile(file, `${OUT}/${file}`);
  }
}

/**
 * Writes the kernel's file ({@link KERNEL_FILE}) from the bytes the library embeds, and checks
 * that the file, read back, is byte for byte what the bundle embeds (its base64 text in one of
 * the files of `built`'s code), and that no file the `workerd` entries load holds that text.
 */
async function kernelFile(built: BuiltEntries): Promise<void> {
  const path = `${OUT}/${KERNEL_FILE}`;
  await Deno.writeFile(path, decodeBase64(KERNELS_WASM_BASE64));
  const shipped = toBase64(await Deno.readFile(path));
  const holders = built.code.filter((f) => Deno.readTextFileSync(f).includes(shipped.slice(0, 64)));
  if (!holders.some((f) => Deno.readTextFileSync(f).includes(`"${shipped}"`))) {
    throw new Error(`${path} is not byte for byte the kernel the bundle embeds`);
  }
  const leaked = holders.filter((f) => built.workerd.includes(f));
  if (leaked.length > 0) {
    throw new Error(
      `${
        leaked.join(", ")
      } embeds the kernel's base64, and the workerd entries load it (a Worker would bundle it): only the default entries may`,
    );
  }
}

/** The package's README.md: its template with README.md's marked sections, links on JSR. */
async function readme(name: string, version: string): Promise<string> {
  return npmReadme(
    { path: README_TEMPLATE, text: await Deno.readTextFile(README_TEMPLATE) },
    { path: "README.md", text: await Deno.readTextFile("README.md") },
    { jsrBase: `https://jsr.io/${name}/${version}`, published: await jsrPublishedFiles() },
  );
}

if (import.meta.main) {
  await Deno.remove(OUT, { recursive: true }).catch(() => {});
  await Deno.mkdir(OUT, { recursive: true });
  const built = await bundle();
  declarations(await webgpuTypes());
  pruneDeclarations();
  kernelDeclaration();
  checkDeclarations();
  await Deno.writeTextFile(`${OUT}/${CORE_GLOBAL_FILE}`, coreGlobalModule());
  // Every file of code does something on import: this one throws where there is no global tf.
  const code = [...built.code.map((f) => f.slice(OUT.length + 1)), CORE_GLOBAL_FILE];
  await packageFiles(code.map((f) => `./${f}`));
  await kernelFile(built);
  const outputs = [...ENTRIES.map((e) => `${e.out}.js`), CORE_GLOBAL_FILE].join(", ");
  console.log(`built ${OUT}/ (${outputs}, chunks/, types/, package.json)`);
}
