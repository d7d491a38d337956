// The WebGPU path under Node, through the npm `webgpu` package (Dawn). Dawn needs a Vulkan
// driver; where there is none (these CI machines) this test says so loudly and skips, and the
// CPU tests beside it still run. And the WebGPU path in headless Chromium on its SwiftShader
// adapter: the bundle's WGSL compiled by Tint (Deno's tests see wgpu's naga), its steps against
// wasm's in the same page; and the TensorFlow.js adapter there on tfjs-backend-webgpu (model.fit).
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import http from "node:http";
import { fileURLToPath } from "node:url";
import { test } from "node:test";
import * as lib from "@optim/radam";
import { launchChromium, pageResult } from "./chromium.mjs";
import { runCase } from "./shared_case.mjs";

const expected = JSON.parse(
  readFileSync(new URL("./expected.json", import.meta.url), "utf8"),
);

async function nodeAdapter() {
  try {
    const { create, globals } = await import("webgpu");
    Object.assign(globalThis, globals);
    return await create([]).requestAdapter();
  } catch (e) {
    console.warn(`webgpu package unusable here: ${e.message}`);
    return null;
  }
}

test("webgpu under Node (Dawn) agrees with Deno's wasm result", async (t) => {
  const adapter = await nodeAdapter();
  if (!adapter) {
    const reason =
      "NO WEBGPU ADAPTER UNDER NODE: Dawn found no Vulkan driver on this machine; the WebGPU path was NOT run under Node (the CPU path was)";
    console.warn(`\n*** ${reason} ***\n`);
    t.skip(reason);
    return;
  }
  const device = await adapter.requestDevice();
  const result = await runCase(lib, "webgpu", device);
  assert.equal(result.backend, "webgpu");
  assert.equal(result.step, expected.wasm.step);
  // Not bit-identical (WGSL division and sqrt are not correctly rounded): a close agreement.
  result.sample.forEach((x, i) => {
    const y = expected.wasm.sample[i];
    assert.ok(
      Math.abs(x - y) <= 1e-4 * (1 + Math.abs(y)),
      `sample ${i}: ${x} vs ${y}`,
    );
  });
});

const PAGE = `<!doctype html><meta charset="utf-8"><title>radam webgpu</title>
<script type="module">
  import * as lib from "/index.js";
  import { runCase } from "/shared_case.mjs";
  import { webgpuCases } from "/webgpu_case.mjs";
  try {
    const adapter = await navigator.gpu?.requestAdapter();
    if (!adapter) window.__result = { adapter: null };
    else {
      const device = await adapter.requestDevice();
      const shared = await runCase(lib, "webgpu", device);
      window.__result = { adapter: true, shared, ...await webgpuCases(lib, device) };
    }
  } catch (e) {
    window.__error = String(e && e.stack || e);
  }
</script>`;

// The device lost (destroyed) while a read or a checkpoint waits for the GPU: each must reject
// saying so, as a call after the loss does (Chromium aborts the pending maps before it resolves
// `device.lost`), and the checkpoint saved before the loss resumes on a new device.
const LOST_PAGE = `<!doctype html><meta charset="utf-8"><title>radam device lost</title>
<script type="module">
  import * as lib from "/index.js";
  const within = (p) => Promise.race([
    p,
    new Promise((_, reject) => setTimeout(() => reject(new Error("no answer in 20 s")), 20_000)),
  ]);
  const grads = () => ({ w: new Float32Array(300).fill(0.1) });
  try {
    const adapter = await navigator.gpu?.requestAdapter();
    if (!adapter) window.__result = { adapter: null };
    else {
      const out = { adapter: true, pending: {} };
      const ops = {
        readParams: lib.readParams,
        readMoments: lib.readMoments,
        saveState: lib.saveState,
      };
      for (const [name, op] of Object.entries(ops)) {
        const device = await (await navigator.gpu.requestAdapter()).requestDevice();
        const state = lib.step(
          await lib.radam().init({ w: new Float32Array(300).fill(1) }, { device }),
          grads(),
        );
        if (name === "saveState") out.saved = await lib.saveState(state);
        const pending = op(state);
        device.destroy();
        out.pending[name] = await within(pending).then(
          () => "resolved",
          (e) => String(e && e.message || e),
        );
      }
      const device = await (await navigator.gpu.requestAdapter()).requestDevice();
      const resumed = lib.step(await lib.loadState(out.saved, { device }), grads());
      out.resumed = [resumed.step, (await lib.readParams(resumed)).w[0]];
      const cpu = lib.step(await lib.loadState(out.saved, { backend: "js" }), grads());
      out.cpu = [cpu.step, (await lib.readParams(cpu)).w[0]];
      delete out.saved;
      window.__result = out;
    }
  } catch (e) {
    window.__error = String(e && e.stack || e);
  }
</script>`;

// The TensorFlow.js adapter of the bundle (`tfjs.js`) on tfjs-backend-webgpu: a model trained by
// model.fit with tfOptimizer(radam()), in 32 and 8 bits (its 64 × 64 kernel's moments held as
// codes on the GPU). tfjs-core, -layers and -backend-webgpu as the ES modules their packages
// ship (an import map for the bare specifier they share).
const TFJS_PAGE = `<!doctype html><meta charset="utf-8"><title>radam tfjs webgpu</title>
<script type="importmap">{ "imports": { "@tensorflow/tfjs-core": "/tfjs-core.js" } }</script>
<script type="module">
  let stage = "import";
  try {
    const tf = await import("@tensorflow/tfjs-core");
    const tfl = await import("/tfjs-layers.js");
    await import("/tfjs-backend-webgpu.js");
    const lib = await import("/index.js");
    const { tfOptimizer } = await import("/tfjs.js");
    if (!(await navigator.gpu?.requestAdapter())) window.__result = { adapter: null };
    else {
      tf.env().set("PROD", true);
      if (!(await tf.setBackend("webgpu"))) throw new Error("tfjs found no webgpu backend");
      await tf.ready();
      stage = "data";
      const out = { adapter: true, runs: {} };
      const n = 64, features = 64;
      const x = tf.tensor2d(Array.from({ length: n * features }, (_, i) => Math.sin(i)), [
        n,
        features,
      ]);
      const y = tf.tensor2d(Array.from({ length: n }, (_, i) => Math.cos(i)), [n, 1]);
      for (const states of ["32bit", "8bit"]) {
        const model = tfl.sequential({ layers: [
          tfl.layers.dense({ units: 64, inputShape: [features], activation: "relu" }),
          tfl.layers.dense({ units: 1 }),
        ] });
        const optimizer = tfOptimizer(lib.radam({ lr: 1e-2, states }));
        model.compile({ optimizer, loss: "meanSquaredError" });
        stage = \`fit \${states}\`;
        const h = await model.fit(x, y, { epochs: 8, batchSize: n, verbose: 0 });
        stage = \`weights \${states}\`;
        const weights = await optimizer.getWeights();
        // (Read asynchronously: after tfjs-backend-webgpu's dataSync, which reads through a
        // canvas, Chromium's mapAsync rejects: "A valid external Instance reference no longer
        // exists".)
        const values = await Promise.all(model.getWeights().map((w) => w.data()));
        out.runs[states] = {
          loss: h.history.loss,
          backend: optimizer.backend,
          iterations: optimizer.iterations,
          finite: values.every((v) => v.every(Number.isFinite)),
          codes: weights.filter((w) => w.name.endsWith(".codes")).length,
        };
        model.dispose();
        optimizer.dispose();
      }
      tf.dispose([x, y]);
      window.__result = out;
    }
  } catch (e) {
    window.__error = \`at \${stage}: \${e && e.stack || e}\`;
  }
</script>`;

const packageDir = new URL(".", import.meta.resolve("@optim/radam"));
/** A tfjs package's ES module (`dist/<file>`). */
const tfjsModule = (name, file) => () =>
  readFileSync(new URL(`dist/${file}`, import.meta.resolve(`@tensorflow/${name}/package.json`)));
const FILES = {
  "/": () => PAGE,
  "/lost": () => LOST_PAGE,
  "/tfjs": () => TFJS_PAGE,
  "/tfjs.js": () => readFileSync(new URL("tfjs.js", packageDir)),
  "/tfjs-core.js": tfjsModule("tfjs-core", "tf-core.fesm.js"),
  "/tfjs-layers.js": tfjsModule("tfjs-layers", "tf-layers.fesm.js"),
  "/tfjs-backend-webgpu.js": tfjsModule("tfjs-backend-webgpu", "tf-backend-webgpu.fesm.js"),
  "/index.js": () => readFileSync(fileURLToPath(import.meta.resolve("@optim/radam"))),
  "/shared_case.mjs": () => readFileSync(new URL("./shared_case.mjs", import.meta.url)),
  "/webgpu_case.mjs": () => readFileSync(new URL("./webgpu_case.mjs", import.meta.url)),
};

function serve() {
  const server = http.createServer((req, res) => {
    const chunk = /^\/chunks\/[\w-]+\.js$/.test(req.url)
      ? () => readFileSync(new URL(req.url.slice(1), packageDir))
      : undefined;
    const file = FILES[req.url] ?? chunk;
    if (!file) {
      res.writeHead(404).end();
      return;
    }
    const type = ["/", "/lost", "/tfjs"].includes(req.url) ? "text/html" : "text/javascript";
    res.writeHead(200, { "content-type": type }).end(file());
  });
  return new Promise((resolve) => server.listen(0, "127.0.0.1", () => resolve(server)));
}

/**
 * Opens `path` of the test server in headless Chromium with WebGPU (SwiftShader) and gives its
 * result to `check`; where Chromium finds no adapter, the test is skipped, loudly, saying `what`
 * was not run.
 */
async function onWebGpuPage(t, path, what, check) {
  const server = await serve();
  const browser = await launchChromium([
    "--enable-unsafe-webgpu",
    "--use-webgpu-adapter=swiftshader",
    "--enable-features=Vulkan",
  ]);
  try {
    const page = await browser.newPage();
    const url = `http://127.0.0.1:${server.address().port}${path}`;
    const result = await pageResult(page, url, 120_000);
    if (!result.adapter) {
      const reason =
        `NO WEBGPU ADAPTER IN CHROMIUM: SwiftShader's Vulkan was not found; ${what} was NOT run in the browser`;
      console.warn(`\n*** ${reason} ***\n`);
      t.skip(reason);
      return;
    }
    check(result);
  } finally {
    await browser.close();
    server.close();
  }
}

test("webgpu in headless Chromium (Tint, SwiftShader) compiles every kernel and agrees with wasm, non-finite and overflowing gradients in 32 and 8 bits included", async (t) => {
  await onWebGpuPage(t, "/", "the WebGPU path", (result) => {
    assert.equal(result.shared.backend, "webgpu");
    assert.equal(result.shared.step, expected.wasm.step);
    result.shared.sample.forEach((x, i) => {
      const y = expected.wasm.sample[i];
      assert.ok(
        Math.abs(x - y) <= 1e-4 * (1 + Math.abs(y)),
        `sample ${i}: ${x} vs ${y}`,
      );
    });
    assert.deepEqual(result.gpuErrors, []);
    assert.deepEqual(result.failures, []);
  });
});

test("webgpu in headless Chromium: a read or a checkpoint under way when the device is lost rejects saying so; the last checkpoint resumes", async (t) => {
  await onWebGpuPage(t, "/lost", "the lost-device case", (result) => {
    for (const [name, message] of Object.entries(result.pending)) {
      assert.match(
        message,
        /^The WebGPU device of this optimizer state was lost \(destroyed: .*To resume/,
        name,
      );
    }
    assert.deepEqual(Object.keys(result.pending), [
      "readParams",
      "readMoments",
      "saveState",
    ]);
    // One step after the checkpoint of one step, on the GPU and on the CPU: close agreement.
    assert.equal(result.resumed[0], 2);
    assert.equal(result.cpu[0], 2);
    assert.ok(
      Math.abs(result.resumed[1] - result.cpu[1]) <= 1e-6,
      `${result.resumed} ${result.cpu}`,
    );
  });
});

test("tfjs-backend-webgpu in headless Chromium: model.fit with tfOptimizer(radam()), 32 and 8 bits, lowers the loss on the GPU", async (t) => {
  await onWebGpuPage(t, "/tfjs", "the tfjs webgpu case", (result) => {
    for (const [states, run] of Object.entries(result.runs)) {
      assert.equal(run.backend, "webgpu", states);
      assert.equal(run.iterations, 8, states);
      assert.ok(run.finite, `${states}: a weight is not finite`);
      assert.ok(run.loss.every(Number.isFinite), `${states}: ${run.loss}`);
      assert.ok(run.loss.at(-1) < run.loss[0], `${states}: the loss did not fall: ${run.loss}`);
    }
    // The kernel's two moments as codes in 8 bits (4096 elements), none in 32.
    assert.deepEqual([result.runs["32bit"].codes, result.runs["8bit"].codes], [0, 2]);
  });
});
