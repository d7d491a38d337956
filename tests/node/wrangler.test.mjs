// The READMEs' Cloudflare Worker as a new Workers project builds and runs it, with wrangler (the
// Workers CLI, from npm, at the version of package.json) and nothing the READMEs do not say: a
// fresh project (a temporary folder, from wrangler_app/) where the tarball that `npm pack npm/`
// makes is installed, a wrangler.toml of name, main and compatibility date, and the Worker code
// of both READMEs as written (README.md's JavaScript as src/index.js, the npm README's TypeScript
// as src/index.ts). `wrangler deploy --dry-run` bundles each with the package's radam.wasm kept as
// a module of its own; the TypeScript type-checks with @cloudflare/workers-types and with the
// types `wrangler types` writes; `wrangler dev` (workerd under miniflare, local) serves each, and
// it answers "wasm: " and the parameters that Deno's js backend has after the same step.
//
// wrangler, @cloudflare/workers-types and TypeScript are the test folder's (tests/node/setup.sh
// installs them), linked into the project's node_modules: installing them there would copy
// 250 MB a run. Nothing reaches the network: metrics, the `Request.cf` download and the update
// banner are off. wrangler 4 refuses Node below 22.12; under an older Node it runs on Deno.
import assert from "node:assert/strict";
import { execFileSync, spawn } from "node:child_process";
import {
  cpSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { after, before, test } from "node:test";

const here = fileURLToPath(new URL(".", import.meta.url));
const built = fileURLToPath(new URL("../../npm", import.meta.url));
const expected = JSON.parse(
  readFileSync(new URL("./expected.json", import.meta.url), "utf8"),
);
/** The test folder's packages that the project links to, as if it had installed them. */
const LINKED = ["wrangler", "@cloudflare/workers-types", "typescript"];
const WRANGLER = join(here, "node_modules", "wrangler", "bin", "wrangler.js");
let app = "";

/** The environment wrangler runs in: offline, quiet, its logs in the project. */
function env() {
  return {
    ...process.env,
    CI: "1",
    WRANGLER_SEND_METRICS: "false",
    WRANGLER_SEND_ERROR_REPORTS: "false",
    WRANGLER_HIDE_BANNER: "true",
    CLOUDFLARE_CF_FETCH_ENABLED: "false",
    WRANGLER_LOG_PATH: join(app, "logs"),
  };
}

/** The command that runs wrangler with `args`: Node where it is new enough, else Deno. */
function wrangler(args) {
  const [major, minor] = process.versions.node.split(".").map(Number);
  return major > 22 || (major === 22 && minor >= 12)
    ? [process.execPath, [WRANGLER, ...args]]
    : ["deno", ["run", "-A", "--no-prompt", WRANGLER, ...args]];
}

/** Runs a command in the project; its stdout, or an error with its output. */
function run(command, args) {
  try {
    return execFileSync(command, args, {
      cwd: app,
      encoding: "utf8",
      stdio: "pipe",
      env: env(),
    });
  } catch (e) {
    throw new Error(
      `${command} ${args.join(" ")} failed:\n${e.stdout}\n${e.stderr}`,
    );
  }
}

/** The code block (```lang) of `readme` that imports the package's radam.wasm. */
function workerCode(readme, lang) {
  const text = readFileSync(readme, "utf8");
  const code = [...text.matchAll(new RegExp(`^\`\`\`${lang}\\n([\\s\\S]*?)^\`\`\`$`, "gm"))]
    .map((m) => m[1]).find((body) => body.includes('from "@optim/radam/radam.wasm"'));
  assert.ok(code, `${readme} has no ${lang} Worker that imports @optim/radam/radam.wasm`);
  return code;
}

/** A port free on 127.0.0.1 now. */
function freePort() {
  return new Promise((resolve, reject) => {
    const server = net.createServer().once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

/** Stops a process this test started, and its children (its own process group). */
async function stop(child) {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const gone = new Promise((resolve) => child.once("exit", resolve));
  process.kill(-child.pid, "SIGTERM");
  const timer = setTimeout(() => process.kill(-child.pid, "SIGKILL"), 5000);
  await gone;
  clearTimeout(timer);
}

/** What `wrangler dev` answers at / when it serves `script` (it is always stopped after). */
async function devAnswer(script) {
  const [port, inspector] = [await freePort(), await freePort()];
  const [command, args] = wrangler([
    "dev",
    script,
    "--ip",
    "127.0.0.1",
    "--port",
    String(port),
    "--inspector-port",
    String(inspector),
    "--show-interactive-dev-session=false",
  ]);
  let log = "";
  const child = spawn(command, args, {
    cwd: app,
    env: env(),
    detached: true, // its own process group: workerd goes with it
    stdio: ["ignore", "pipe", "pipe"],
  });
  child.stdout.on("data", (d) => log += d);
  child.stderr.on("data", (d) => log += d);
  const exited = new Promise((resolve) => child.once("exit", () => resolve(null)));
  try {
    for (let i = 0; i < 600; i++) {
      const answer = fetch(`http://127.0.0.1:${port}/`).then(
        async (r) => ({ status: r.status, text: await r.text() }),
        () => undefined,
      );
      const got = await Promise.race([answer, exited]);
      if (got === null) throw new Error(`wrangler dev exited:\n${log}`);
      if (got !== undefined) return { ...got, log };
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new Error(`wrangler dev did not answer on port ${port}:\n${log}`);
  } finally {
    await stop(child);
  }
}

before(() => {
  app = mkdtempSync(join(tmpdir(), "radam-wrangler-app-"));
  cpSync(new URL("./wrangler_app/", import.meta.url), app, { recursive: true });
  const [{ filename }] = JSON.parse(
    run("npm", ["pack", built, "--pack-destination", app, "--json", "--loglevel=error"]),
  );
  run("npm", [
    "install",
    `./${filename}`,
    "--offline",
    "--no-audit",
    "--no-fund",
    "--loglevel=error",
  ]);
  for (const name of LINKED) {
    const link = join(app, "node_modules", name);
    mkdirSync(join(link, ".."), { recursive: true });
    symlinkSync(join(here, "node_modules", name), link, "dir");
  }
  mkdirSync(join(app, "src"));
  writeFileSync(
    join(app, "src", "index.js"),
    workerCode(new URL("../../README.md", import.meta.url), "js"),
  );
  writeFileSync(
    join(app, "src", "index.ts"),
    workerCode(join(app, "node_modules", "@optim", "radam", "README.md"), "ts"),
  );
});

after(() => {
  rmSync(app, { recursive: true, force: true });
});

for (const script of ["src/index.js", "src/index.ts"]) {
  test(`wrangler deploy --dry-run bundles ${script} and keeps the package's radam.wasm a module`, () => {
    const outdir = `dist-${script.slice(-2)}`;
    run(...wrangler(["deploy", "--dry-run", "--outdir", outdir, script]));
    const files = readdirSync(join(app, outdir));
    const modules = files.filter((f) => f.endsWith(".wasm"));
    assert.equal(modules.length, 1, files.join(", "));
    assert.deepEqual(
      readFileSync(join(app, outdir, modules[0])),
      readFileSync(join(app, "node_modules", "@optim", "radam", "radam.wasm")),
    );
    const bundle = readFileSync(join(app, outdir, "index.js"), "utf8");
    assert.match(
      bundle,
      new RegExp(`^import \\w+ from "\\./${modules[0].replace(".", "\\.")}";$`, "m"),
    );
  });
}

test("the npm README's Worker type-checks with @cloudflare/workers-types, and with the types of `wrangler types`", () => {
  const tsc = join(app, "node_modules", "typescript", "bin", "tsc");
  // @cloudflare/workers-types declares no `*.wasm` modules: the package's exports type the file.
  assert.equal(run(process.execPath, [tsc, "-p", "tsconfig.json"]), "");
  run(...wrangler(["types"]));
  assert.match(
    readFileSync(join(app, "worker-configuration.d.ts"), "utf8"),
    /declare module "\*\.wasm"/,
  );
  assert.equal(run(process.execPath, [tsc, "-p", "tsconfig.generated.json"]), "");
});

for (const script of ["src/index.js", "src/index.ts"]) {
  test(`wrangler dev serves ${script}: it trains on wasm, with the parameters of Deno's js backend`, async () => {
    const { status, text, log } = await devAnswer(script);
    assert.equal(status, 200, `${text}\n${log}`);
    assert.equal(text, `wasm: ${expected.worker}`);
  });
}
