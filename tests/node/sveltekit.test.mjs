// The npm package in a SvelteKit app built for Cloudflare Workers: a new app (sveltekit_app/, in
// a temporary folder, the tarball that `npm pack npm/` makes installed) with
// @sveltejs/adapter-cloudflare and an endpoint, src/routes/train/+server.ts, that trains a step
// with radam. `vite build` builds it: SvelteKit's server build leaves the package's imports to the
// Worker's bundler (Vite keeps a dependency external in a server build), and the adapter writes a
// Worker that imports that build, for wrangler to bundle with its conditions (`workerd` among
// them) and its `CompiledWasm` rule. `wrangler dev` serves it, and /train answers "wasm: " and
// the parameters of Deno's js backend after the same step: no set-up in the app.
//
// SvelteKit, the adapter, Svelte and Vite are the test folder's (package.json's versions), linked
// into the app; wrangler_project.mjs makes the project and runs wrangler (offline; on Deno under a
// Node older than 22.12). The adapter reads the wrangler config with wrangler's API as it builds.
import assert from "node:assert/strict";
import { readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { newProject, run, withDev } from "./wrangler_project.mjs";

const expected = JSON.parse(
  readFileSync(new URL("./expected.json", import.meta.url), "utf8"),
);
let app = "";

before(() => {
  app = newProject("radam-sveltekit-app-", new URL("./sveltekit_app/", import.meta.url), [
    "vite",
    "svelte",
    "@sveltejs/kit",
    "@sveltejs/adapter-cloudflare",
    "@sveltejs/vite-plugin-svelte",
  ]);
});

after(() => {
  rmSync(app, { recursive: true, force: true });
});

test("SvelteKit with @sveltejs/adapter-cloudflare: vite build leaves the package to wrangler, and the Worker's endpoint trains on wasm under wrangler dev with the parameters of Deno's js backend", async () => {
  run(app, process.execPath, [join(app, "node_modules", "vite", "bin", "vite.js"), "build"]);
  // The server build imports the package, whose entry wrangler then picks by its conditions.
  const endpoint = readFileSync(
    join(app, ".svelte-kit", "output", "server", "entries", "endpoints", "train", "_server.ts.js"),
    "utf8",
  );
  assert.match(endpoint, /^import \{[^}]*\} from "@optim\/radam";$/m);
  const { status, text, log } = await withDev(app, [], async ({ origin, log, signal }) => {
    const response = await fetch(`${origin}/train`, { signal });
    return { status: response.status, text: await response.text(), log: log() };
  });
  assert.equal(status, 200, `${text}\n${log}`);
  assert.equal(text, `wasm: ${expected.worker}`);
});
