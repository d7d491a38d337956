// The bundle in headless Chromium (Debian's, driven by playwright-core), served from localhost:
// the shared case must give Deno's result bit for bit.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import http from "node:http";
import { fileURLToPath } from "node:url";
import { test } from "node:test";
import { launchChromium, pageResult } from "./chromium.mjs";
import { tfjsCase } from "./shared_case.mjs";

const expected = JSON.parse(
  readFileSync(new URL("./expected.json", import.meta.url), "utf8"),
);

const PAGE = `<!doctype html><meta charset="utf-8"><title>radam</title>
<script type="module">
  import * as lib from "/index.js";
  import { runCase } from "/shared_case.mjs";
  try {
    window.__result = {
      wasm: await runCase(lib, "wasm"),
      js: await runCase(lib, "js"),
      // This page is cross-origin isolated (COOP + COEP): two threads, spinning main thread.
      threads: await runCase(lib, "wasm", undefined, 2),
    };
  } catch (e) {
    window.__error = String(e && e.stack || e);
  }
</script>`;

// Without cross-origin isolation there is no SharedArrayBuffer: threads must be refused.
const PLAIN_PAGE = `<!doctype html><meta charset="utf-8"><title>radam</title>
<script type="module">
  import * as lib from "/index.js";
  try {
    await lib.radam({ threads: 2 }).init(new Float32Array(8));
    window.__refusal = "no error";
  } catch (e) {
    window.__refusal = String(e && e.message || e);
  }
</script>`;

// A worker of a threaded state terminated outright between steps (no word written, no event the
// page's spinning thread can see: its prototype's terminate, as the browser ending it would): the
// next step must throw once no worker has made progress for 10 s, not hang the page. A worker's
// own terminate() (wrapped by the state) fails the next step at once, saying so.
const STOPPED_PAGE = `<!doctype html><meta charset="utf-8"><title>radam stopped worker</title>
<script type="module">
  import * as lib from "/index.js";
  const made = [];
  const Original = globalThis.Worker;
  globalThis.Worker = class extends Original {
    constructor(...args) {
      super(...args);
      made.push(this);
    }
  };
  try {
    const n = 1 << 20;
    let state = await lib.radam({ threads: 2, threadThreshold: 0 }).init(new Float32Array(n));
    const quick = await lib.radam({ threads: 2, threadThreshold: 0 }).init(new Float32Array(64));
    globalThis.Worker = Original;
    made[1].terminate();
    let terminated = "no error";
    try {
      lib.step(quick, new Float32Array(64));
    } catch (e) {
      terminated = String(e && e.message || e);
    }
    lib.dispose(quick);
    const grads = new Float32Array(n).fill(1e-3);
    state = lib.step(state, grads);
    Original.prototype.terminate.call(made[0]);
    // Chromium ends a worker that does not return to its event loop (this one waits for the
    // next job) forcibly, seconds after terminate(), from the page's event loop.
    await new Promise((resolve) => setTimeout(resolve, 5000));
    let message = "no error in 1000 steps";
    try {
      for (let t = 0; t < 1000; t++) state = lib.step(state, grads);
    } catch (e) {
      message = String(e && e.message || e);
    }
    let later = "no error";
    try {
      lib.step(state, grads);
    } catch (e) {
      later = String(e && e.message || e);
    }
    lib.dispose(state);
    window.__result = { message, later, terminated };
  } catch (e) {
    window.__error = String(e && e.stack || e);
  }
</script>`;

// The TensorFlow.js adapter of the bundle (`tfjs.js`) on tfjs's cpu backend: tfjs-core and the
// backend as the ES modules their packages ship (an import map for the bare specifiers; the
// backend's seedrandom import is a stub: no random op runs here).
const TFJS_PAGE = `<!doctype html><meta charset="utf-8"><title>radam tfjs</title>
<script type="importmap">
  { "imports": { "@tensorflow/tfjs-core": "/tfjs-core.js", "seedrandom": "/seedrandom.js" } }
</script>
<script type="module">
  try {
    const tf = await import("@tensorflow/tfjs-core");
    await import("/tfjs-backend-cpu.js");
    const lib = await import("/index.js");
    const { tfOptimizer } = await import("/tfjs.js");
    const { tfjsCase } = await import("/shared_case.mjs");
    tf.env().set("PROD", true);
    await tf.setBackend("cpu");
    window.__tfjs = await tfjsCase(tf, lib, tfOptimizer, "browser");
  } catch (e) {
    window.__error = String(e && e.stack || e);
  }
</script>`;

const packageDir = new URL(".", import.meta.resolve("@optim/radam"));
const tfjsDist = (name) =>
  new URL(`dist/`, import.meta.resolve(`@tensorflow/${name}/package.json`));

/** Headers that make a page cross-origin isolated (SharedArrayBuffer available). */
const ISOLATION = {
  "cross-origin-opener-policy": "same-origin",
  "cross-origin-embedder-policy": "require-corp",
};

const FILES = {
  "/": ["text/html", () => PAGE],
  "/plain": ["text/html", () => PLAIN_PAGE],
  "/stopped": ["text/html", () => STOPPED_PAGE],
  "/index.js": [
    "text/javascript",
    () => readFileSync(fileURLToPath(import.meta.resolve("@optim/radam"))),
  ],
  "/tfjs": ["text/html", () => TFJS_PAGE],
  "/tfjs.js": ["text/javascript", () => readFileSync(new URL("tfjs.js", packageDir))],
  "/tfjs-core.js": [
    "text/javascript",
    () => readFileSync(new URL("tf-core.fesm.js", tfjsDist("tfjs-core"))),
  ],
  "/tfjs-backend-cpu.js": [
    "text/javascript",
    () => readFileSync(new URL("tf-backend-cpu.fesm.js", tfjsDist("tfjs-backend-cpu"))),
  ],
  "/seedrandom.js": [
    "text/javascript",
    () => "export function alea() { throw new Error('seedrandom is stubbed in this test'); }",
  ],
  "/shared_case.mjs": [
    "text/javascript",
    () => readFileSync(new URL("./shared_case.mjs", import.meta.url)),
  ],
};

function serve() {
  const server = http.createServer((req, res) => {
    // The bundle's shared chunks, by name.
    const chunk = /^\/chunks\/[\w-]+\.js$/.test(req.url)
      ? ["text/javascript", () => readFileSync(new URL(req.url.slice(1), packageDir))]
      : undefined;
    const file = FILES[req.url] ?? chunk;
    if (!file) {
      res.writeHead(404).end();
      return;
    }
    const isolated = req.url === "/plain" ? {} : ISOLATION;
    res.writeHead(200, { "content-type": file[0], ...isolated }).end(file[1]());
  });
  return new Promise((resolve) => server.listen(0, "127.0.0.1", () => resolve(server)));
}

test("the bundle in headless Chromium gives Deno's result bit for bit", async () => {
  const server = await serve();
  const browser = await launchChromium();
  try {
    const page = await browser.newPage();
    const result = await pageResult(page, `http://127.0.0.1:${server.address().port}/`);
    assert.deepEqual(result.wasm, expected.wasm);
    assert.deepEqual(result.js, expected.js);
    assert.deepEqual(result.threads, expected.wasm);
    const plain = await browser.newPage();
    await plain.goto(`http://127.0.0.1:${server.address().port}/plain`);
    await plain.waitForFunction(() => globalThis.__refusal, null, {
      timeout: 60_000,
    });
    assert.match(
      await plain.evaluate(() => globalThis.__refusal),
      /SharedArrayBuffer/,
    );
    // The adapter: its steps give the library's bits, and the bits Node gives.
    const tfjs = await browser.newPage();
    await tfjs.goto(`http://127.0.0.1:${server.address().port}/tfjs`);
    await tfjs.waitForFunction(() => globalThis.__tfjs || globalThis.__error, null, {
      timeout: 60_000,
    });
    const tfjsError = await tfjs.evaluate(() => globalThis.__error);
    assert.equal(tfjsError, undefined, `the tfjs page threw: ${tfjsError}`);
    const inBrowser = await tfjs.evaluate(() => globalThis.__tfjs);
    assert.deepEqual(inBrowser.adapter, inBrowser.core);
    const tf = await import("@tensorflow/tfjs-core");
    await import("@tensorflow/tfjs-backend-cpu");
    const lib = await import("@optim/radam");
    const { tfOptimizer } = await import("@optim/radam/tfjs");
    tf.env().set("PROD", true);
    await tf.setBackend("cpu");
    const inNode = await tfjsCase(tf, lib, tfOptimizer, "node-browser-check");
    assert.deepEqual(inBrowser.adapter, inNode.adapter);
  } finally {
    await browser.close();
    server.close();
  }
});

test("in Chromium, a step whose worker was terminated throws after 10 s without progress, or at once where its terminate() was called", async () => {
  // Before, the page's thread spun for ever, and with it this test (closing the browser too):
  // were it to hang again, this file's process ends, failed, after HANG_MS.
  const HANG_MS = 120_000;
  const hung = setTimeout(() => {
    console.error(`the page /stopped hung for ${HANG_MS / 1000} s: its step waits for ever`);
    process.exit(1);
  }, HANG_MS);
  const server = await serve();
  const browser = await launchChromium();
  try {
    const page = await browser.newPage();
    const url = `http://127.0.0.1:${server.address().port}/stopped`;
    const result = await pageResult(page, url, 90_000);
    assert.match(
      result.message,
      /failed \(it stopped: no progress on its share of the step for 10 s;.*load a checkpoint/,
    );
    assert.match(result.later, /failed \(it stopped/);
    assert.match(
      result.terminated,
      /failed \(it was terminated by other code \(its terminate\(\) called\)\) with nothing of the state being written/,
    );
  } finally {
    await browser.close();
    server.close();
    clearTimeout(hung);
  }
});
