// The READMEs' Cloudflare Workers as a new Workers project builds and runs them, with wrangler
// (the Workers CLI, from npm, at the version of package.json) and nothing the READMEs do not say:
// a fresh project (a temporary folder, from wrangler_app/) where the tarball that `npm pack npm/`
// makes is installed, a wrangler.toml of name, main and compatibility date, and the Worker code of
// both READMEs as written (README.md's JavaScript as src/index.js, the npm README's TypeScript as
// src/index.ts, both with no set-up, and its Worker that calls setWasmModule, for bundlers without
// the `workerd` condition, as src/given.ts). `wrangler deploy --dry-run` bundles each from the
// package's workerd entries: the package's radam.wasm kept as a module of its own, the kernel's
// base64 left out; the TypeScript type-checks with @cloudflare/workers-types and with the types
// `wrangler types` writes; `wrangler dev` (workerd under miniflare, local) serves each, and it
// answers "wasm: " and the parameters that Deno's js backend has after the same step.
//
// The project and wrangler's runs are wrangler_project.mjs's (offline; wrangler on Deno under a
// Node older than 22.12).
import assert from "node:assert/strict";
import { mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { codeBlock, newProject, run, withDev, workerCode, wrangler } from "./wrangler_project.mjs";

const expected = JSON.parse(
  readFileSync(new URL("./expected.json", import.meta.url), "utf8"),
);
let app = "";

/** The npm README's Worker for bundlers without the `workerd` condition: it imports radam.wasm. */
function givenWorkerCode(readme) {
  return codeBlock(
    readme,
    "ts",
    (body) => body.includes('from "@optim/radam/radam.wasm"'),
    "Worker that imports @optim/radam/radam.wasm",
  );
}

before(() => {
  app = newProject("radam-wrangler-app-", new URL("./wrangler_app/", import.meta.url));
  mkdirSync(join(app, "src"));
  writeFileSync(
    join(app, "src", "index.js"),
    workerCode(new URL("../../README.md", import.meta.url), "js"),
  );
  const npmReadme = join(app, "node_modules", "@optim", "radam", "README.md");
  writeFileSync(join(app, "src", "index.ts"), workerCode(npmReadme, "ts"));
  writeFileSync(join(app, "src", "given.ts"), givenWorkerCode(npmReadme));
});

after(() => {
  rmSync(app, { recursive: true, force: true });
});

/** The Workers, each a file of the project: the READMEs' own, and the one that calls setWasmModule. */
const SCRIPTS = ["src/index.js", "src/index.ts", "src/given.ts"];

for (const script of SCRIPTS) {
  test(`wrangler deploy --dry-run bundles ${script}: the package's workerd entry, its radam.wasm a module, the kernel's base64 left out`, () => {
    const outdir = `dist-${script.replace(/\W/g, "-")}`;
    run(app, ...wrangler(["deploy", "--dry-run", "--outdir", outdir, script]));
    const files = readdirSync(join(app, outdir));
    const modules = files.filter((f) => f.endsWith(".wasm"));
    assert.equal(modules.length, 1, files.join(", "));
    assert.deepEqual(
      readFileSync(join(app, outdir, modules[0])),
      readFileSync(join(app, "node_modules", "@optim", "radam", "radam.wasm")),
    );
    // (wrangler names the bundle after the script: index.js, given.js.)
    const name = script.replace(/^.*\//, "").replace(/\.[jt]s$/, ".js");
    const bundle = readFileSync(join(app, outdir, name), "utf8");
    assert.match(
      bundle,
      new RegExp(`^import \\w+ from "\\./${modules[0].replace(".", "\\.")}";$`, "m"),
    );
    // The package's workerd entry: it imports the kernel's file, and leaves its bytes out.
    const base64 = readFileSync(join(app, outdir, modules[0])).toString("base64");
    assert.ok(!bundle.includes(base64.slice(0, 200)), "the bundle embeds the kernel's base64");
  });
}

test("the npm README's Workers type-check with @cloudflare/workers-types, and with the types of `wrangler types`", () => {
  const tsc = join(app, "node_modules", "typescript", "bin", "tsc");
  // @cloudflare/workers-types declares no `*.wasm` modules: the package's exports type the file.
  assert.equal(run(app, process.execPath, [tsc, "-p", "tsconfig.json"]), "");
  run(app, ...wrangler(["types"]));
  assert.match(
    readFileSync(join(app, "worker-configuration.d.ts"), "utf8"),
    /declare module "\*\.wasm"/,
  );
  assert.equal(run(app, process.execPath, [tsc, "-p", "tsconfig.generated.json"]), "");
});

for (const script of SCRIPTS) {
  test(`wrangler dev serves ${script}: it trains on wasm, with the parameters of Deno's js backend`, async () => {
    const { status, text, log } = await withDev(
      app,
      [script],
      ({ first, log }) => ({ ...first, log: log() }),
    );
    assert.equal(status, 200, `${text}\n${log}`);
    assert.equal(text, `wasm: ${expected.worker}`);
  });
}
