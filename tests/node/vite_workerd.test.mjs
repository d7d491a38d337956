// The package's workerd entries under the Vite toolchains that apply the `workerd` condition,
// built by Vite 8 (package.json's versions) in a new project (vite_app/, in a temporary folder,
// the tarball that `npm pack npm/` makes installed, README.md's Worker as src/index.js), then
// served by `workerd serve`, every `.js` file of the build an ES module and every `.wasm` file a
// `wasm` one (as wrangler deploys them), and asked for its answer: "wasm: " and the parameters of
// Deno's js backend after the same step.
//
// - Cloudflare's Vite plugin (@cloudflare/vite-plugin): `vite build`, with its conditions and its
//   `.wasm` imports; and `vite dev`, whose dev server runs the Worker in workerd (the plugin's
//   miniflare), asked the same on a free port and stopped, its workerd with it, after.
// - Nitro's cloudflare presets, as Vite with the `workerd` condition and unwasm with `esmImport`:
//   there a bare `.wasm` import is the kernel's instance, and only `.wasm?module` a compiled
//   module (the package's entries import `../radam.wasm?module`; with `../radam.wasm` the Worker
//   threw a TypeError as it loaded).
//
// The project is wrangler_project.mjs's; Vite runs on Node (20.19 or later).
import assert from "node:assert/strict";
import { mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { assertKernelFile, freePort, servedBuild } from "./workerd_serve.mjs";
import { newProject, run, withServer, workerCode } from "./wrangler_project.mjs";

const expected = JSON.parse(
  readFileSync(new URL("./expected.json", import.meta.url), "utf8"),
);
let app = "";

before(() => {
  app = newProject("radam-vite-app-", new URL("./vite_app/", import.meta.url), [
    "vite",
    "@cloudflare/vite-plugin",
    "unwasm",
  ]);
  mkdirSync(join(app, "src"));
  writeFileSync(
    join(app, "src", "index.js"),
    workerCode(new URL("../../README.md", import.meta.url), "js"),
  );
});

after(() => {
  rmSync(app, { recursive: true, force: true });
});

const VITE = ["node_modules", "vite", "bin", "vite.js"];

test("vite build with @cloudflare/vite-plugin: the Worker keeps radam.wasm a module, and trains on wasm in workerd with the parameters of Deno's js backend", async () => {
  run(app, process.execPath, [join(app, ...VITE), "build"]);
  const dir = join(app, "dist", "radam_vite_worker");
  assertKernelFile(dir, app);
  const { status, text, log } = await servedBuild(dir, "index.js");
  assert.equal(status, 200, `${text}\n${log}`);
  assert.equal(text, `wasm: ${expected.worker}`);
});

test("vite build with the workerd condition and unwasm (as Nitro's cloudflare presets): the Worker loads, and trains on wasm in workerd with the parameters of Deno's js backend", async () => {
  run(app, process.execPath, [join(app, ...VITE), "build", "-c", "vite.unwasm.config.js"]);
  const dir = join(app, "dist-unwasm");
  assertKernelFile(dir, app);
  const { status, text, log } = await servedBuild(dir, "index.js");
  assert.equal(status, 200, `${text}\n${log}`);
  assert.equal(text, `wasm: ${expected.worker}`);
});

test("vite dev with @cloudflare/vite-plugin: the dev server's Worker, in workerd, trains on wasm with the parameters of Deno's js backend", async () => {
  const port = await freePort();
  const dev = [join(app, ...VITE), "dev", "--host", "127.0.0.1", "--port", String(port)];
  const { status, text, log } = await withServer(
    app,
    [process.execPath, [...dev, "--strictPort"]],
    port,
    ({ first, log }) => ({ ...first, log: log() }),
  );
  assert.equal(status, 200, `${text}\n${log}`);
  assert.equal(text, `wasm: ${expected.worker}`);
});
