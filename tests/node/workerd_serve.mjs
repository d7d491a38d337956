// What the tests that run workerd (the Workers runtime, from npm) and wrangler share: a free
// local port, workerd serving a config until it answers on every origin, a bundler's build of a
// Worker served as wrangler deploys it, and a stop that always ends the process (SIGTERM, then
// SIGKILL after 5 s).
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { readdirSync, readFileSync, writeFileSync } from "node:fs";
import net from "node:net";
import { basename, join, relative } from "node:path";
import workerdPackage from "workerd";

/**
 * An esbuild plugin that bundles as wrangler does a Worker's `.wasm` imports: each left a module
 * of its own, named by its file's name (`./radam.wasm`, the package's kernel, whether the app
 * imports `@optim/radam/radam.wasm` or the package's workerd entry `../radam.wasm?module`; the test
 * copies each file beside the bundle, and lists it as a `wasm` module in workerd's config).
 */
export const compiledWasm = {
  name: "compiled-wasm",
  setup(b) {
    b.onResolve({ filter: /\.wasm(\?module)?$/ }, (args) => ({
      path: `./${basename(args.path.replace(/\?module$/, ""))}`,
      external: true,
    }));
  },
};

/**
 * The esbuild options of wrangler's bundle of a Worker that decide which files of a package it
 * gets: wrangler 4.164 (package.json) builds with the conditions `workerd`, `worker` and
 * `browser` (its `getBuildConditions`, unless WRANGLER_BUILD_CONDITIONS says otherwise) and
 * esbuild's default platform, `browser` (its `getBuildPlatform`: unset).
 */
export const WRANGLER_RESOLVE = {
  conditions: ["workerd", "worker", "browser"],
  platform: "browser",
};

/** A port free on 127.0.0.1 now. */
export function freePort() {
  return new Promise((resolve, reject) => {
    const server = net.createServer().once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

/**
 * `workerd serve` of `config` (the text of a capnp config), written into `dir`, resolved once it
 * answers on each of `origins`: `{ child, log }`, `log()` what it printed so far. Rejects, with
 * that log, where workerd exits first or an origin does not answer within 10 s.
 */
export async function serveWorkerd(dir, config, origins) {
  writeFileSync(join(dir, "config.capnp"), config);
  const child = spawn(workerdPackage.default, ["serve", "config.capnp"], {
    cwd: dir,
    stdio: ["ignore", "pipe", "pipe"],
  });
  let text = "";
  child.stdout.on("data", (d) => text += d);
  child.stderr.on("data", (d) => text += d);
  const log = () => text;
  const exited = new Promise((_, reject) =>
    child.once("exit", (code) => reject(new Error(`workerd exited (${code}):\n${log()}`)))
  );
  try {
    for (const origin of origins) await answering(origin, exited, log);
  } catch (error) {
    await stopChild(child);
    throw error;
  }
  return { child, log };
}

/** Resolves once `origin` answers (or rejects where `exited` does first, or after 200 tries). */
async function answering(origin, exited, log) {
  for (let i = 0; i < 200; i++) {
    const answered = fetch(`${origin}/ping`, { method: "HEAD" }).then(() => true, () => false);
    if (await Promise.race([answered, exited])) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`workerd did not answer on ${origin}:\n${log()}`);
}

/**
 * Ends `child` (if it still runs): SIGTERM, then SIGKILL after 5 s; resolves once it exited.
 * With `group`, signals its whole process group (a child spawned `detached`, with its own
 * children: wrangler and its workerd).
 */
export async function stopChild(child, { group = false } = {}) {
  if (!child || child.exitCode !== null || child.signalCode !== null) return;
  const gone = new Promise((resolve) => child.once("exit", resolve));
  const signal = (name) => group ? process.kill(-child.pid, name) : child.kill(name);
  signal("SIGTERM");
  const timer = setTimeout(() => signal("SIGKILL"), 5000);
  await gone;
  clearTimeout(timer);
}

/** The files of `dir`, its subfolders' too, as paths relative to it. */
export function filesOf(dir) {
  return readdirSync(dir, { recursive: true, withFileTypes: true }).filter((e) => e.isFile())
    .map((e) => relative(dir, join(e.parentPath, e.name)));
}

/**
 * Asserts that the build in `dir` holds the package's radam.wasm (as installed in project `app`),
 * byte for byte, once.
 */
export function assertKernelFile(dir, app) {
  const kernels = filesOf(dir).filter((f) => f.endsWith(".wasm"));
  assert.equal(kernels.length, 1, filesOf(dir).join(", "));
  assert.deepEqual(
    readFileSync(join(dir, kernels[0])),
    readFileSync(join(app, "node_modules", "@optim", "radam", "radam.wasm")),
  );
}

/**
 * workerd's config of the build in `dir` (a bundler's output), as wrangler deploys one with
 * `no_bundle`: `main` first, its other `.js` and `.mjs` files ES modules and its `.wasm` files
 * `wasm` modules; no bindings.
 */
function buildConfig(dir, main, port) {
  const files = filesOf(dir);
  const modules = [main, ...files.filter((f) => f !== main && /\.m?js$/.test(f))]
    .map((f) => `(name = "${f}", esModule = embed "${f}")`)
    .concat(
      files.filter((f) => f.endsWith(".wasm")).map((f) => `(name = "${f}", wasm = embed "${f}")`),
    );
  return `using Workerd = import "/workerd/workerd.capnp";
const config :Workerd.Config = (
  services = [(name = "main", worker = (
    modules = [${modules.join(", ")}],
    compatibilityDate = "2025-06-01",
  ))],
  sockets = [(name = "main", address = "127.0.0.1:${port}", http = (), service = "main")],
);
`;
}

/**
 * What the build in `dir` (its entry `main`) answers at `path` in workerd:
 * `{ status, text, log }`, `log` what workerd printed. workerd is stopped after.
 */
export async function servedBuild(dir, main, path = "/") {
  const origin = `http://127.0.0.1:${await freePort()}`;
  const config = buildConfig(dir, main, new URL(origin).port);
  const { child, log } = await serveWorkerd(dir, config, [origin]);
  try {
    const response = await fetch(`${origin}${path}`);
    return { status: response.status, text: await response.text(), log: log() };
  } finally {
    await stopChild(child);
  }
}
