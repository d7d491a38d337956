// The bundle in headless Chromium on a page whose Content-Security-Policy does not let WebAssembly
// be compiled (script-src without 'wasm-unsafe-eval'): the default backend trains there, on js,
// with Deno's bits, and so does the TensorFlow.js adapter; backend "wasm" says why it cannot.
// The same page with 'wasm-unsafe-eval' trains on wasm. On a cross-origin-isolated page, threads
// start their workers from a blob: URL: a policy without blob: for workers is refused with an error
// that says so, and one with it trains on two threads with Deno's bits.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import http from "node:http";
import { fileURLToPath } from "node:url";
import { test } from "node:test";
import { launchChromium, pageResult } from "./chromium.mjs";

const expected = JSON.parse(
  readFileSync(new URL("./expected.json", import.meta.url), "utf8"),
);

// The import map is inline, so the policy lets it in by its nonce; every script is the page's own.
const NONCE = "radam-csp-test";
const POLICIES = {
  "/strict": `script-src 'self' 'nonce-${NONCE}'`,
  "/allowed": `script-src 'self' 'nonce-${NONCE}' 'wasm-unsafe-eval'`,
};

/** Cross-origin-isolated pages (SharedArrayBuffer) for threads, without and with blob: workers. */
const THREAD_POLICIES = {
  "/threads-no-blob": `script-src 'self' 'wasm-unsafe-eval'`,
  "/threads-blob": `script-src 'self' 'wasm-unsafe-eval'; worker-src blob:`,
};
const THREAD_PAGE = `<!doctype html><meta charset="utf-8"><title>radam csp threads</title>
<script type="module" src="/threads.mjs"></script>`;
const THREAD_SCRIPT = `import * as lib from "/index.js";
import { runCase } from "/shared_case.mjs";
try {
  window.__result = await runCase(lib, "wasm", undefined, 2);
} catch (e) {
  window.__error = e.name + ": " + e.message;
}`;

const PAGE = `<!doctype html><meta charset="utf-8"><title>radam csp</title>
<script type="importmap" nonce="${NONCE}">
  { "imports": { "@tensorflow/tfjs-core": "/tfjs-core.js", "seedrandom": "/seedrandom.js" } }
</script>
<script type="module" src="/page.mjs"></script>`;

// The page's script: the shared case on the default backend, backend "wasm" asked for, and the
// adapter on tfjs's cpu backend with the default backend.
const SCRIPT = `import * as lib from "/index.js";
import { runCase, tfjsCase } from "/shared_case.mjs";
const said = async (run) => {
  try {
    await run();
    return "no error";
  } catch (e) {
    return e.name + ": " + e.message;
  }
};
try {
  const auto = await runCase(lib, "auto");
  const wasm = await said(() => lib.radam({ backend: "wasm" }).init(new Float32Array(8)));
  const tf = await import("@tensorflow/tfjs-core");
  await import("/tfjs-backend-cpu.js");
  const { tfOptimizer } = await import("/tfjs.js");
  tf.env().set("PROD", true);
  await tf.setBackend("cpu");
  const optimizer = tfOptimizer(lib.radam());
  const tfjsBackend = optimizer.backend;
  optimizer.dispose();
  const tfjs = await tfjsCase(tf, lib, tfOptimizer, "csp");
  window.__result = { auto, wasm, tfjsBackend, tfjs };
} catch (e) {
  window.__error = String(e && e.stack || e);
}`;

const packageDir = new URL(".", import.meta.resolve("@optim/radam"));
const tfjsDist = (name) =>
  new URL(`dist/`, import.meta.resolve(`@tensorflow/${name}/package.json`));

const FILES = {
  "/page.mjs": () => SCRIPT,
  "/threads.mjs": () => THREAD_SCRIPT,
  "/index.js": () => readFileSync(fileURLToPath(import.meta.resolve("@optim/radam"))),
  "/tfjs.js": () => readFileSync(new URL("tfjs.js", packageDir)),
  "/tfjs-core.js": () => readFileSync(new URL("tf-core.fesm.js", tfjsDist("tfjs-core"))),
  "/tfjs-backend-cpu.js": () =>
    readFileSync(new URL("tf-backend-cpu.fesm.js", tfjsDist("tfjs-backend-cpu"))),
  "/seedrandom.js": () =>
    "export function alea() { throw new Error('seedrandom is stubbed in this test'); }",
  "/shared_case.mjs": () => readFileSync(new URL("./shared_case.mjs", import.meta.url)),
};

function serve() {
  const server = http.createServer((req, res) => {
    const policy = POLICIES[req.url];
    if (policy !== undefined) {
      res.writeHead(200, { "content-type": "text/html", "content-security-policy": policy })
        .end(PAGE);
      return;
    }
    const threadPolicy = THREAD_POLICIES[req.url];
    if (threadPolicy !== undefined) {
      res.writeHead(200, {
        "content-type": "text/html",
        "content-security-policy": threadPolicy,
        "cross-origin-opener-policy": "same-origin",
        "cross-origin-embedder-policy": "require-corp",
      }).end(THREAD_PAGE);
      return;
    }
    const file = FILES[req.url] ??
      (/^\/chunks\/[\w-]+\.js$/.test(req.url)
        ? () => readFileSync(new URL(req.url.slice(1), packageDir))
        : undefined);
    if (!file) {
      res.writeHead(404).end();
      return;
    }
    res.writeHead(200, { "content-type": "text/javascript" }).end(file());
  });
  return new Promise((resolve) => server.listen(0, "127.0.0.1", () => resolve(server)));
}

/** What the page at `path` reports, with what Chromium's console said about the policy. */
async function run(browser, server, path) {
  const page = await browser.newPage();
  const logs = [];
  page.on("console", (m) => logs.push(m.text()));
  const url = `http://127.0.0.1:${server.address().port}${path}`;
  return await pageResult(page, url, 60_000, logs);
}

test("a page whose Content-Security-Policy refuses WebAssembly trains on the default backend (js), with Deno's bits", async () => {
  const server = await serve();
  const browser = await launchChromium();
  try {
    const strict = await run(browser, server, "/strict");
    assert.deepEqual(strict.auto, expected.js); // backend "js", and the bits of every backend
    assert.match(strict.wasm, /^TypeError: The wasm backend needs WebAssembly, which cannot be/);
    assert.match(strict.wasm, /Content.Security.Policy/i); // Chromium's own words
    assert.match(strict.wasm, /use backend "js" or "auto"/);
    assert.equal(strict.tfjsBackend, "js");
    assert.deepEqual(strict.tfjs.adapter, strict.tfjs.core);

    const allowed = await run(browser, server, "/allowed");
    assert.deepEqual(allowed.auto, expected.wasm);
    assert.equal(allowed.wasm, "no error");
    assert.equal(allowed.tfjsBackend, "wasm");
    assert.deepEqual(allowed.tfjs, strict.tfjs);
  } finally {
    await browser.close();
    server.close();
  }
});

test("threads on a page whose Content-Security-Policy refuses blob: workers: an error that says so", async () => {
  const server = await serve();
  const browser = await launchChromium();
  const port = server.address().port;
  try {
    const refused = await browser.newPage();
    await refused.goto(`http://127.0.0.1:${port}/threads-no-blob`);
    await refused.waitForFunction(() => globalThis.__result || globalThis.__error, null, {
      timeout: 60_000,
    });
    // It said "A kernel worker failed to start: undefined".
    assert.match(
      await refused.evaluate(() => globalThis.__error),
      /^Error: A kernel worker failed to start: .*Content-Security-Policy must allow blob: in worker-src/,
    );
    const allowed = await browser.newPage();
    const url = `http://127.0.0.1:${port}/threads-blob`;
    assert.deepEqual(await pageResult(allowed, url), expected.wasm);
  } finally {
    await browser.close();
    server.close();
  }
});
