// The npm package in the server routes of two frameworks that build Workers, each a new app in a
// temporary folder (astro_app/, nitro_app/; the tarball that `npm pack npm/` makes installed, the
// framework's packages the test folder's, linked), built by the framework's own build and served
// by `workerd serve` (workerd_serve.mjs's servedBuild: the build's modules as wrangler deploys
// them). Each route, /train, trains a step and answers "wasm: " and the parameters of Deno's js
// backend after the same step.
//
// - Astro with @astrojs/cloudflare: `astro build`, no set-up. The adapter builds with
//   Cloudflare's Vite plugin (its conditions, `workerd` among them, and its `.wasm` imports).
//   Astro refuses a Node older than its engines' (22.23.4 for 7.4); under one it runs on Deno.
// - Nitro 2 (nitropack) with the `cloudflare-module` preset: `nitropack build`. The preset applies
//   `workerd`, but Nitro 2 loads `.wasm` imports (unwasm) only with `experimental.wasm`: without
//   it the build stops at the package's `../radam.wasm?module`; with it (the READMEs' config,
//   README.md's and the npm package's, the same block, as the app's nitro.config.js) the route
//   trains on wasm.
import assert from "node:assert/strict";
import { readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, test } from "node:test";
import { assertKernelFile, servedBuild } from "./workerd_serve.mjs";
import { codeBlock, newProject, run } from "./wrangler_project.mjs";

const expected = JSON.parse(
  readFileSync(new URL("./expected.json", import.meta.url), "utf8"),
);
const apps = [];

after(() => {
  for (const app of apps) rmSync(app, { recursive: true, force: true });
});

/** A new project from the template folder `name` (beside this file), its `linked` packages. */
function project(name, linked) {
  const app = newProject(`radam-${name}-`, new URL(`./${name}/`, import.meta.url), linked);
  apps.push(app);
  return app;
}

/** Whether this Node satisfies `engines.node` of the form `>=X.Y.Z` (Astro's). */
function nodeAtLeast(engines) {
  const want = engines.match(/^>=(\d+)\.(\d+)\.(\d+)$/)?.slice(1).map(Number);
  assert.ok(want, `engines.node ${engines} is not >=X.Y.Z`);
  const have = process.versions.node.split(".").map(Number);
  const i = have.findIndex((v, i) => v !== want[i]);
  return i === -1 || have[i] > want[i];
}

test("Astro with @astrojs/cloudflare: astro build, with no set-up, keeps radam.wasm a module, and the endpoint trains on wasm in workerd with the parameters of Deno's js backend", async () => {
  const app = project("astro_app", [
    "astro",
    "@astrojs/cloudflare",
    "vite",
    "@cloudflare/vite-plugin",
  ]);
  const astro = join(app, "node_modules", "astro");
  const { engines } = JSON.parse(readFileSync(join(astro, "package.json"), "utf8"));
  const cli = join(astro, "bin", "astro.mjs");
  if (nodeAtLeast(engines.node)) run(app, process.execPath, [cli, "build"]);
  else run(app, "deno", ["run", "-A", "--no-prompt", cli, "build"]);
  const dir = join(app, "dist", "server");
  assertKernelFile(dir, app);
  const { status, text, log } = await servedBuild(dir, "entry.mjs", "/train");
  assert.equal(status, 200, `${text}\n${log}`);
  assert.equal(text, `wasm: ${expected.worker}`);
});

test("Nitro with the cloudflare-module preset: nitropack build stops at radam.wasm?module without experimental.wasm, and with the READMEs' config the route trains on wasm in workerd with the parameters of Deno's js backend", async () => {
  const app = project("nitro_app", ["nitropack"]);
  const isConfig = (code) => code.startsWith("// nitro.config.js");
  const readme = codeBlock(new URL("../../README.md", import.meta.url), "js", isConfig, "config");
  const npmReadme = join(app, "node_modules", "@optim", "radam", "README.md");
  assert.equal(codeBlock(npmReadme, "js", isConfig, "config"), readme);
  const bare = readme.replace(/^\s*experimental: \{ wasm: true \},.*\n/m, "");
  assert.notEqual(bare, readme);
  const config = join(app, "nitro.config.js");
  // Unminified (the preset minifies by default): the same modules and imports, in half the time.
  const cli = join(app, "node_modules", "nitropack", "dist", "cli", "index.mjs");
  const nitro = [cli, "build", "--no-minify"];
  writeFileSync(config, bare);
  assert.throws(() => run(app, process.execPath, nitro), /Could not load \S*radam\.wasm\?module/);
  writeFileSync(config, readme);
  run(app, process.execPath, nitro);
  const dir = join(app, ".output", "server");
  assertKernelFile(dir, app);
  const { status, text, log } = await servedBuild(dir, "index.mjs", "/train");
  assert.equal(status, 200, `${text}\n${log}`);
  assert.equal(text, `wasm: ${expected.worker}`);
});
