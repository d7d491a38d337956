// What the wrangler, Vite and SvelteKit tests share (wrangler.test.mjs, wrangler_example.test.mjs,
// vite_workerd.test.mjs, sveltekit.test.mjs): a new Workers project in a temporary folder, where
// the tarball that `npm pack npm/` makes is installed, wrangler run in it, offline, a dev server
// (`wrangler dev`, `vite dev`) run until it answers and then stopped, and the READMEs' Workers.
//
// wrangler, @cloudflare/workers-types and TypeScript are the test folder's (tests/node/setup.sh
// installs them), linked into the project's node_modules: installing them there would copy
// 250 MB a run. Nothing reaches the network: metrics, the `Request.cf` download and the update
// banner are off. wrangler 4 refuses Node below 22.12; under an older Node it runs on Deno.
import assert from "node:assert/strict";
import { execFileSync, spawn } from "node:child_process";
import { cpSync, mkdirSync, mkdtempSync, readFileSync, symlinkSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { installPacked } from "./packed.mjs";
import { freePort, stopChild } from "./workerd_serve.mjs";

const here = fileURLToPath(new URL(".", import.meta.url));
/** The test folder's packages that a project links to, as if it had installed them. */
const LINKED = ["wrangler", "@cloudflare/workers-types", "typescript"];
const WRANGLER = join(here, "node_modules", "wrangler", "bin", "wrangler.js");

/** The environment wrangler runs in, in project `app`: offline, quiet, its logs in the project. */
function env(app) {
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
export function wrangler(args) {
  const [major, minor] = process.versions.node.split(".").map(Number);
  return major > 22 || (major === 22 && minor >= 12)
    ? [process.execPath, [WRANGLER, ...args]]
    : ["deno", ["run", "-A", "--no-prompt", WRANGLER, ...args]];
}

/** Runs a command in project `app`; its stdout, or an error with its output. */
export function run(app, command, args) {
  try {
    return execFileSync(command, args, {
      cwd: app,
      encoding: "utf8",
      stdio: "pipe",
      env: env(app),
    });
  } catch (e) {
    throw new Error(
      `${command} ${args.join(" ")} failed:\n${e.stdout}\n${e.stderr}`,
    );
  }
}

/**
 * A new project in a temporary folder (its path): the files of `template` (a URL of a folder),
 * the packed npm package installed from its tarball, and the test folder's wrangler,
 * @cloudflare/workers-types and TypeScript linked, and its packages named in `linked` too.
 */
export function newProject(prefix, template, linked = []) {
  const app = mkdtempSync(join(tmpdir(), prefix));
  cpSync(template, app, { recursive: true });
  installPacked(app, (command, args) => run(app, command, args), ["--offline"]);
  for (const name of [...LINKED, ...linked]) {
    const link = join(app, "node_modules", name);
    mkdirSync(join(link, ".."), { recursive: true });
    symlinkSync(join(here, "node_modules", name), link, "dir");
  }
  return app;
}

/**
 * Runs `wrangler dev ...args` in project `app` until it answers at / (any status), then
 * `use({ origin, first, log, signal })`, as `withServer` does. What `use` returns; wrangler (its
 * process group) is always stopped after.
 */
export async function withDev(app, args, use, limitMs = 60_000) {
  const [port, inspector] = [await freePort(), await freePort()];
  const [command, argv] = wrangler([
    "dev",
    ...args,
    "--ip",
    "127.0.0.1",
    "--port",
    String(port),
    "--inspector-port",
    String(inspector),
    "--show-interactive-dev-session=false",
  ]);
  return await withServer(app, [command, argv], port, use, limitMs);
}

/**
 * Runs `command` (`[command, args]`, a dev server that listens on 127.0.0.1:`port`: `wrangler
 * dev`, `vite dev`) in project `app` until it answers at / (any status), then
 * `use({ origin, first, log, signal })`: its origin, that first answer ({ status, text }), a
 * function that returns the server's output so far, and a signal for `use`'s requests, aborted
 * `limitMs` after (a Worker that never answers fails the test instead of hanging it). What `use`
 * returns; the server (its process group: workerd goes with it) is always stopped after.
 */
export async function withServer(app, [command, argv], port, use, limitMs = 60_000) {
  const name = `${command.replace(/^.*\//, "")} ${argv.join(" ")}`;
  let log = "";
  const child = spawn(command, argv, {
    cwd: app,
    env: env(app),
    detached: true, // its own process group: workerd goes with it
    stdio: ["ignore", "pipe", "pipe"],
  });
  child.stdout.on("data", (d) => log += d);
  child.stderr.on("data", (d) => log += d);
  const exited = new Promise((resolve) => child.once("exit", () => resolve(null)));
  const origin = `http://127.0.0.1:${port}`;
  try {
    const starting = AbortSignal.timeout(limitMs);
    while (!starting.aborted) {
      // workerd may take the connection and never answer (a Worker it failed to load): each
      // probe gives up after a while, and another is sent.
      const signal = AbortSignal.any([starting, AbortSignal.timeout(5000)]);
      const answer = fetch(`${origin}/`, { signal }).then(
        async (r) => ({ status: r.status, text: await r.text() }),
        () => undefined,
      );
      const first = await Promise.race([answer, exited]);
      if (first === null) throw new Error(`${name} exited:\n${log}`);
      if (first !== undefined) {
        return await use({ origin, first, log: () => log, signal: AbortSignal.timeout(limitMs) });
      }
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new Error(`${name} did not answer at ${origin}/ in ${limitMs} ms:\n${log}`);
  } finally {
    await stopChild(child, { group: true });
  }
}

/** The code block (```lang) of `readme` that `find` accepts. */
export function codeBlock(readme, lang, find, what) {
  const text = readFileSync(readme, "utf8");
  const code = [...text.matchAll(new RegExp(`^\`\`\`${lang}\\n([\\s\\S]*?)^\`\`\`$`, "gm"))]
    .map((m) => m[1]).find(find);
  assert.ok(code, `${readme} has no ${lang} ${what}`);
  return code;
}

/** The Worker of `readme` (```lang), the file `// src/index.<lang>`, with no set-up. */
export function workerCode(readme, lang) {
  return codeBlock(readme, lang, (body) => body.startsWith(`// src/index.${lang}`), "Worker");
}
