// The bytes README.md says a Vite app that imports `radam` and `step` loads (size_app/, built by
// Vite 8 as a production build): its entry and the chunks it imports statically at start, the
// WebGPU backend's chunk that `init` imports only for a GPU state, and the same app built in one
// file (code splitting off), each in kB (1000 bytes) and gzipped. The README's figures are
// rounded and drift with every change of the library: each must be within 3% (or 1 kB) of the
// measured one, so that a change of a few hundred bytes passes and a stale figure fails.
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { gzipSync } from "node:zlib";
import { after, test } from "node:test";
import { build } from "vite";

const app = fileURLToPath(new URL("./size_app/", import.meta.url));
const readme = readFileSync(new URL("../../README.md", import.meta.url), "utf8");
const out = mkdtempSync(join(tmpdir(), "radam-size-"));

after(() => rmSync(out, { recursive: true, force: true }));

/** Vite's production build of the app into `dir`, split or not; its manifest. */
async function buildApp(dir, codeSplitting) {
  await build({
    root: app,
    configFile: false,
    logLevel: "error",
    resolve: { preserveSymlinks: true },
    build: {
      outDir: join(out, dir),
      emptyOutDir: true,
      manifest: true,
      chunkSizeWarningLimit: 4096,
      rolldownOptions: { output: { codeSplitting } },
    },
  });
  return JSON.parse(readFileSync(join(out, dir, ".vite", "manifest.json"), "utf8"));
}

/** The bytes, raw and gzipped, of the manifest's chunks `keys` and those they import statically. */
function loaded(dir, manifest, keys, skip = new Set()) {
  const seen = new Set(skip);
  const visit = (key) => {
    if (seen.has(key)) return;
    seen.add(key);
    for (const next of manifest[key].imports ?? []) visit(next);
  };
  keys.forEach(visit);
  let raw = 0, gzipped = 0;
  for (const key of seen) {
    if (skip.has(key)) continue;
    const bytes = readFileSync(join(out, dir, manifest[key].file));
    raw += bytes.length;
    gzipped += gzipSync(bytes).length;
  }
  return { raw: raw / 1000, gzipped: gzipped / 1000, keys: seen };
}

/** Whether the README's `quoted` kB are within 3% (or 1 kB) of the `measured`. */
function near(quoted, measured, what) {
  const slack = Math.max(1, 0.03 * measured);
  assert.ok(
    Math.abs(Number(quoted) - measured) <= slack,
    `README.md says ${what} is ${quoted} kB, Vite's build gives ${measured.toFixed(1)} kB`,
  );
}

test("README: the kB a Vite app that imports radam and step loads at start, in one file, and for the GPU", async () => {
  const claim =
    /loads (\d+) kB \((\d+) kB gzipped\) at start instead of (\d+) kB \((\d+) kB\), and the GPU's (\d+) kB \((\d+)\s+kB\)/
      .exec(readme.replaceAll(/\s+/g, " "));
  assert.ok(claim, "README.md quotes no bundle sizes of a Vite app");
  const [, start, startGz, whole, wholeGz, gpu, gpuGz] = claim;

  const split = await buildApp("split", true);
  const entries = Object.keys(split).filter((key) => split[key].isEntry);
  assert.equal(entries.length, 1);
  const atStart = loaded("split", split, entries);
  const dynamic = split[entries[0]].dynamicImports ?? [];
  assert.equal(dynamic.length, 1, "one chunk imported on demand: the WebGPU backend's");
  assert.match(dynamic[0], /webgpu/);
  const onGpu = loaded("split", split, dynamic, atStart.keys);
  near(start, atStart.raw, "the app at start");
  near(startGz, atStart.gzipped, "the app at start, gzipped");
  near(gpu, onGpu.raw, "the GPU's chunk");
  near(gpuGz, onGpu.gzipped, "the GPU's chunk, gzipped");

  const one = await buildApp("whole", false);
  const all = loaded("whole", one, Object.keys(one).filter((key) => one[key].isEntry));
  near(whole, all.raw, "the app in one file");
  near(wholeGz, all.gzipped, "the app in one file, gzipped");
});
