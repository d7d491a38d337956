// The npm package as a user gets it: the tarball that `npm pack npm/` makes, installed with
// `npm install <tarball>` into a fresh project (a temporary folder, from packed_app/) beside
// tfjs 4.22.0, esbuild and TypeScript from the npm registry (fetched once into an npm cache in
// this folder's node_modules/.cache, then installed from it). Shows that an esbuild bundle of an
// app that only imports the adapter keeps its registration, and resumes a saved model bit for
// bit; and that the declarations type-check under `tsc --strict` without skipLibCheck, with every
// moduleResolution a project may have (node10 included, through typesVersions), and that a
// TypeScript file compiled to CommonJS requires every entry and runs; and that a browser
// bundle built for an older target steps on two threads in headless Chromium with Deno's bits.
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { cpSync, lstatSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import http from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { after, before, test } from "node:test";
import { launchChromium, pageResult } from "./chromium.mjs";
import { installPacked } from "./packed.mjs";

const here = fileURLToPath(new URL(".", import.meta.url));
const built = fileURLToPath(new URL("../../npm", import.meta.url));
const cache = join(here, "node_modules", ".cache", "packed-app-npm");
let app = "", out = "";

/** Runs a command; its stdout, or an error with its output. */
function run(command, args, cwd) {
  try {
    return execFileSync(command, args, {
      cwd,
      encoding: "utf8",
      stdio: "pipe",
    });
  } catch (e) {
    throw new Error(
      `${command} ${args.join(" ")} failed:\n${e.stdout}\n${e.stderr}`,
    );
  }
}

before(() => {
  app = mkdtempSync(join(tmpdir(), "radam-packed-app-"));
  out = mkdtempSync(join(tmpdir(), "radam-packed-bundle-"));
  cpSync(new URL("./packed_app/", import.meta.url), app, { recursive: true });
  cpSync(
    new URL("./shared_case.mjs", import.meta.url),
    join(app, "shared_case.mjs"),
  );
  installPacked(app, (command, args) => run(command, args, app), [
    "--prefer-offline",
    `--cache=${cache}`,
  ]);
});

after(() => {
  rmSync(app, { recursive: true, force: true });
  rmSync(out, { recursive: true, force: true });
});

test("the tarball installs as a folder of files (not a link), its package.json as built", () => {
  const installed = join(app, "node_modules", "@optim", "radam");
  assert.ok(lstatSync(installed).isDirectory());
  const pkg = JSON.parse(readFileSync(join(installed, "package.json"), "utf8"));
  assert.deepEqual(
    pkg,
    JSON.parse(readFileSync(join(built, "package.json"), "utf8")),
  );
});

test("the tarball ships only the declarations that its entry points' types reach", () => {
  const installed = join(app, "node_modules", "@optim", "radam");
  const types = join(installed, "types");
  const shipped = readdirSync(types, { recursive: true })
    .filter((f) => f.endsWith(".d.ts")).map((f) => join(types, f)).sort();
  const tsc = join(app, "node_modules", "typescript", "bin", "tsc");
  // (radam_wasm: the types of the kernel's file, @optim/radam/radam.wasm.)
  const entries = ["mod", "tfjs", "store", "radam_wasm"].map((e) => join(types, `${e}.d.ts`));
  const read = run(process.execPath, [
    tsc,
    "--listFilesOnly",
    "--module",
    "nodenext",
    ...entries,
  ], app).split("\n").filter((f) => f.startsWith(types)).sort();
  // It shipped every module's declarations: 47 files no import reaches (private helpers, and
  // the kernels' base64 text, 148 kB, as string literal types).
  assert.deepEqual(shipped, read);
});

test("an esbuild bundle of an app that only imports @optim/radam/tfjs resumes a saved ranger model bit for bit", () => {
  // Saved by an unbundled Node script, which also trains the same model without a break.
  run(process.execPath, ["save.mjs"], app);
  const json = JSON.parse(
    readFileSync(join(app, "saved", "model.json"), "utf8"),
  );
  assert.equal(
    json.trainingConfig.optimizer_config.class_name,
    "RadamTfOptimizer",
  );
  const warnings = JSON.parse(
    run(process.execPath, ["bundle.mjs", join(out, "app.mjs")], app),
  );
  const ours = warnings.filter((w) => JSON.stringify(w).includes("@optim/radam"));
  assert.deepEqual(
    ours,
    [],
    "esbuild dropped or flagged an import of the package",
  );
  // The bundle runs from a folder with no node_modules above it: all it needs is inside.
  const resumed = JSON.parse(
    run(process.execPath, [join(out, "app.mjs")], app),
  );
  const whole = JSON.parse(
    readFileSync(join(app, "saved", "uninterrupted.json"), "utf8"),
  );
  assert.equal(resumed.className, "RadamTfOptimizer");
  assert.equal(resumed.iterations, 20);
  assert.equal(whole.iterations, 20);
  assert.deepEqual(resumed.weights, whole.weights);
  // iterations, then m, v and LookAhead's slow weights of each of the 4 weights
  assert.equal(resumed.optimizer.length, 13);
  assert.deepEqual(resumed.optimizer, whole.optimizer);
});

test("tsc --strict, without skipLibCheck: both entry points beside tfjs-core 4.22 and its @webgpu/types", () => {
  const tsc = join(app, "node_modules", "typescript", "bin", "tsc");
  assert.equal(run(process.execPath, [tsc, "-p", "tsconfig.json"], app), "");
  // The main entry alone, with no WebGPU typings and no DOM library in the program.
  assert.equal(
    run(process.execPath, [tsc, "-p", "tsconfig.core.json"], app),
    "",
  );
});

test("tsc --strict beside tfjs-layers 4.22 (npm README): errors in tfjs-layers' declarations only, none with skipLibCheck", () => {
  // What `npm install @tensorflow/tfjs` brings: tfjs-layers' own .d.ts fail under strict, which
  // the README says, with the fix. The package's declarations and the user's file must pass.
  const tsc = join(app, "node_modules", "typescript", "bin", "tsc");
  let output = "";
  try {
    run(process.execPath, [tsc, "-p", "tsconfig.layers.json"], app);
  } catch (e) {
    output = e.message;
  }
  const files = [...output.matchAll(/^(\S+?)\(\d+,\d+\): error TS\d+/gm)].map((m) => m[1]);
  assert.ok(
    files.length > 0,
    "tfjs-layers' declarations passed strict: the README's note is stale",
  );
  assert.deepEqual(
    files.filter((f) => !f.startsWith("node_modules/@tensorflow/tfjs-layers/")),
    [],
    output,
  );
  assert.equal(
    run(process.execPath, [tsc, "-p", "tsconfig.layers.json", "--skipLibCheck"], app),
    "",
  );
  const readme = readFileSync(join(app, "node_modules", "@optim", "radam", "README.md"), "utf8");
  assert.match(
    readme.replace(/\s+/g, " "),
    /tfjs-layers 4\.22's own declarations .{0,120}do not pass `strict`.{0,200}`"skipLibCheck": true`/,
    "the npm README does not say that tfjs-layers needs skipLibCheck",
  );
});

test("CommonJS: a TypeScript file compiled for it under module nodenext requires every entry point, and runs (npm README)", () => {
  // The npm README says that Node 20.19 and later can `require` the package (require(esm)):
  // a top-level await anywhere in an entry's graph would make it ERR_REQUIRE_ASYNC_MODULE.
  const [major, minor] = process.versions.node.split(".").map(Number);
  assert.ok(major > 20 || minor >= 19, `Node ${process.versions.node}: the tests need 20.19+`);
  const tsc = join(app, "node_modules", "typescript", "bin", "tsc");
  assert.equal(
    run(process.execPath, [tsc, "-p", "tsconfig.commonjs.json"], app),
    "",
  );
  const compiled = join(app, "cjs-out", "commonjs.cjs");
  const code = readFileSync(compiled, "utf8");
  for (const entry of ["@optim/radam", "@optim/radam/store", "@optim/radam/tfjs"]) {
    assert.ok(code.includes(`require("${entry}")`), `${entry} compiled to a require`);
  }
  const [line] = run(process.execPath, [compiled], app).split("\n");
  const result = JSON.parse(line);
  assert.equal(result.backend, "wasm");
  assert.equal(result.step, 1);
  // One RAdam step is SGD with bias-corrected momentum: lr · g.
  assert.deepEqual(result.w, [1, 2, 3].map((g) => Math.fround(-0.1 * g)));
  assert.deepEqual(result.v, [Math.fround(-0.1), Math.fround(-0.1)]);
});

test('tsc under moduleResolution "node10", which reads no exports: every entry point has its types', () => {
  const tsc = join(app, "node_modules", "typescript", "bin", "tsc");
  assert.equal(
    run(process.execPath, [tsc, "-p", "tsconfig.node10.json"], app),
    "",
  );
});

test("a browser bundle for ES2016 with names kept steps on two threads with Deno's bits", async () => {
  // The workers run the text of one function of the package: a helper the app's bundler put
  // outside it (`__async`, `__name`) was undefined there ("A kernel worker failed to start").
  const bundle = join(out, "threads.js");
  run(process.execPath, ["bundle_browser.mjs", bundle], app);
  const expected = JSON.parse(
    readFileSync(new URL("./expected.json", import.meta.url), "utf8"),
  );
  const page = '<!doctype html><meta charset="utf-8"><script src="/threads.js"></script>';
  const server = http.createServer((req, res) => {
    const file = {
      "/": ["text/html", () => page],
      "/threads.js": ["text/javascript", () => readFileSync(bundle)],
    }[req.url];
    if (!file) {
      return void res.writeHead(404).end();
    }
    // Cross-origin isolated: SharedArrayBuffer is there.
    res.writeHead(200, {
      "content-type": file[0],
      "cross-origin-opener-policy": "same-origin",
      "cross-origin-embedder-policy": "require-corp",
    }).end(file[1]());
  });
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  const browser = await launchChromium();
  try {
    const tab = await browser.newPage();
    const url = `http://127.0.0.1:${server.address().port}/`;
    assert.deepEqual(await pageResult(tab, url), expected.wasm);
  } finally {
    await browser.close();
    server.close();
  }
});
