/**
 * Builds the npm package from the same sources as the JSR one: `deno task build:npm`.
 *
 * Output, in the git-ignored folder `npm/`:
 * - `index.js` (mod.ts) and `tfjs.js` (tfjs.ts, the TensorFlow.js adapter, `@optim/radam/tfjs`):
 *   bundled by esbuild as ES modules that share their code through `chunks/` (one copy of the
 *   library, so a state made through one entry is recognised by the other; the kernel's wasm is
 *   already inlined as base64, so nothing is read from disk at run time). `@tensorflow/tfjs-core`
 *   stays an import: a peer dependency (`^4`, optional: only `tfjs.js` needs it); `store.js`
 *   (store.ts, the runtime-agnostic serverless store, `@optim/radam/store`) shares them too;
 * - `types/`: `.d.ts` declarations emitted by the TypeScript compiler;
 * - `package.json` (name and version from deno.json, `exports` for Node ≥ 20 and bundlers),
 *   README.md and LICENSE.
 *
 * @module
 */
import * as esbuild from "esbuild";
import ts from "typescript";

const OUT = "npm";
/** The WebGPU type declarations the public types refer to (GPUDevice, GPUBuffer, …). */
const WEBGPU_TYPES = "@webgpu/types@0.1.74";
const TOOLS = "build/npm_tools";
/** tfjs-core, for the adapter's declarations (the package takes it as a peer dependency). */
const TFJS_CORE = "@tensorflow/tfjs-core@4.22.0";

/**
 * Installs the WebGPU types and tfjs-core's (for the declaration build); returns the WebGPU
 * types' entry file.
 */
async function webgpuTypes(): Promise<string> {
  const entry = `${TOOLS}/node_modules/@webgpu/types/dist/index.d.ts`;
  const tfjs = `${TOOLS}/node_modules/@tensorflow/tfjs-core/package.json`;
  try {
    await Deno.stat(entry);
    await Deno.stat(tfjs);
    return entry;
  } catch {
    // not installed yet
  }
  await Deno.mkdir(TOOLS, { recursive: true });
  const npm = new Deno.Command("npm", {
    args: [
      "install",
      "--prefix",
      TOOLS,
      "--no-audit",
      "--no-fund",
      "--no-save",
      WEBGPU_TYPES,
      TFJS_CORE,
    ],
    stdout: "null",
  });
  const { success } = await npm.output();
  if (!success) {
    throw new Error(`npm install ${WEBGPU_TYPES} ${TFJS_CORE} failed`);
  }
  return entry;
}

async function bundle(): Promise<void> {
  await esbuild.build({
    entryPoints: { index: "mod.ts", tfjs: "tfjs.ts", store: "store.ts" },
    bundle: true,
    splitting: true,
    chunkNames: "chunks/[name]-[hash]",
    external: ["@tensorflow/tfjs-core"],
    format: "esm",
    platform: "neutral",
    target: "es2022",
    outdir: OUT,
    legalComments: "inline",
    logLevel: "warning",
  });
  await esbuild.stop();
}

function declarations(webgpu: string): void {
  const options: ts.CompilerOptions = {
    declaration: true,
    emitDeclarationOnly: true,
    allowImportingTsExtensions: true,
    outDir: `${OUT}/types`,
    rootDir: ".",
    target: ts.ScriptTarget.ES2022,
    module: ts.ModuleKind.ESNext,
    moduleResolution: ts.ModuleResolutionKind.Bundler,
    lib: ["lib.es2022.d.ts", "lib.dom.d.ts"],
    strict: true,
    skipLibCheck: true,
    types: [],
    // The adapter's imports of tfjs-core resolve to the copy installed for this build.
    baseUrl: ".",
    paths: {
      "@tensorflow/tfjs-core": [`${TOOLS}/node_modules/@tensorflow/tfjs-core`],
    },
  };
  const program = ts.createProgram(
    ["mod.ts", "tfjs.ts", "store.ts", webgpu],
    options,
  );
  const diagnostics = [...ts.getPreEmitDiagnostics(program)];
  const emitted = program.emit(undefined, (name, text) => {
    // Declarations refer to each other as ./x.js (which resolves to ./x.d.ts), not ./x.ts.
    if (!name.startsWith(`${OUT}/types/`)) return;
    let fixed = text.replace(
      /(from\s+["']\.{1,2}\/[^"']+)\.ts(["'])/g,
      "$1.js$2",
    )
      .replace(/(import\(["']\.{1,2}\/[^"']+)\.ts(["']\))/g, "$1.js$2")
      .replace(/from "\.\/mod\.js"/g, 'from "@optim/radam"');
    if (name.endsWith("/mod.d.ts") || name.endsWith("/tfjs.d.ts")) {
      fixed = `/// <reference types="@webgpu/types" />\n${fixed}`;
    }
    Deno.mkdirSync(name.slice(0, name.lastIndexOf("/")), { recursive: true });
    Deno.writeTextFileSync(name, fixed);
  });
  diagnostics.push(...emitted.diagnostics);
  if (diagnostics.length > 0) {
    const host: ts.FormatDiagnosticsHost = {
      getCanonicalFileName: (f) => f,
      getCurrentDirectory: () => Deno.cwd(),
      getNewLine: () => "\n",
    };
    throw new Error(ts.formatDiagnosticsWithColorAndContext(diagnostics, host));
  }
}

async function packageFiles(): Promise<void> {
  const deno = JSON.parse(await Deno.readTextFile("deno.json"));
  const pkg = {
    name: deno.name,
    version: deno.version,
    description:
      "Fast optimizer kernels: RAdam, Adam and AdamW on WebAssembly SIMD, with a TypeScript fallback.",
    license: deno.license,
    type: "module",
    main: "./index.js",
    types: "./types/mod.d.ts",
    exports: {
      ".": {
        types: "./types/mod.d.ts",
        import: "./index.js",
        default: "./index.js",
      },
      "./tfjs": {
        types: "./types/tfjs.d.ts",
        import: "./tfjs.js",
        default: "./tfjs.js",
      },
      "./store": {
        types: "./types/store.d.ts",
        import: "./store.js",
        default: "./store.js",
      },
      "./package.json": "./package.json",
    },
    files: [
      "index.js",
      "tfjs.js",
      "store.js",
      "chunks/",
      "types/",
      "README.md",
      "LICENSE",
    ],
    sideEffects: false,
    engines: { node: ">=20" },
    // The public types mention WebGPU's (GPUDevice, GPUBuffer): types only, no code.
    dependencies: { "@webgpu/types": WEBGPU_TYPES.split("@").pop() },
    // The TensorFlow.js adapter (`@optim/radam/tfjs`) runs on the tfjs the user has.
    peerDependencies: { "@tensorflow/tfjs-core": "^4" },
    peerDependenciesMeta: { "@tensorflow/tfjs-core": { optional: true } },
    keywords: [
      "radam",
      "adam",
      "adamw",
      "optimizer",
      "wasm",
      "simd",
      "machine-learning",
    ],
  };
  await Deno.writeTextFile(
    `${OUT}/package.json`,
    JSON.stringify(pkg, null, 2) + "\n",
  );
  await Deno.copyFile("README.md", `${OUT}/README.md`);
  await Deno.copyFile("LICENSE", `${OUT}/LICENSE`);
}

if (import.meta.main) {
  await Deno.remove(OUT, { recursive: true }).catch(() => {});
  await Deno.mkdir(OUT, { recursive: true });
  await bundle();
  declarations(await webgpuTypes());
  await packageFiles();
  console.log(
    `built ${OUT}/ (index.js, tfjs.js, chunks/, types/, package.json)`,
  );
}
