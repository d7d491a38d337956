// Training across page loads in headless Chromium (Debian's, driven by playwright-core), as browser
// users do: a model saved with `model.save("indexeddb://…" | "localstorage://…",
// { includeOptimizer: true })`, the page reloaded, `tf.loadLayersModel` and training on, on tfjs's
// cpu backend and on webgpu (SwiftShader); and `saveState`'s bytes kept in IndexedDB, the Cache
// API and the Origin Private File System, `loadState` after the reload, on wasm, js and two
// threads (the page is cross-origin isolated). Each against the same training uninterrupted.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import http from "node:http";
import { fileURLToPath } from "node:url";
import { test } from "node:test";
import { launchChromium, pageResult } from "./chromium.mjs";
import {
  CORE_PAGE,
  QUOTA_PAGE,
  readmePage,
  TFJS_PAGE,
  TFJS_UNION,
  THREADS_PAGE,
} from "./reload_pages.mjs";

const packageDir = new URL(".", import.meta.resolve("@optim/radam"));
/** A tfjs package's ES module (`dist/<file>`). */
const tfjsModule = (name, file) => () =>
  readFileSync(
    new URL(
      `dist/${file}`,
      import.meta.resolve(`@tensorflow/${name}/package.json`),
    ),
  );
const FILES = {
  "/tfjs": () => TFJS_PAGE,
  "/quota": () => QUOTA_PAGE,
  "/core": () => CORE_PAGE,
  "/threads": () => THREADS_PAGE,
  "/index.js": () => readFileSync(fileURLToPath(import.meta.resolve("@optim/radam"))),
  "/tfjs.js": () => readFileSync(new URL("tfjs.js", packageDir)),
  "/tfjs-core.js": tfjsModule("tfjs-core", "tf-core.fesm.js"),
  "/tfjs-layers.js": tfjsModule("tfjs-layers", "tf-layers.fesm.js"),
  "/tfjs-backend-cpu.js": tfjsModule(
    "tfjs-backend-cpu",
    "tf-backend-cpu.fesm.js",
  ),
  "/tfjs-backend-webgpu.js": tfjsModule(
    "tfjs-backend-webgpu",
    "tf-backend-webgpu.fesm.js",
  ),
  // tfjs-backend-cpu imports seedrandom for its random kernels, which no test here runs.
  "/tfjs-union.js": () => TFJS_UNION,
  "/seedrandom.js": () =>
    "export function alea() { throw new Error('seedrandom is stubbed in this test'); }",
};

/**
 * Serves FILES and `extra` (and the bundle's chunks) cross-origin isolated, so that threads can
 * run.
 */
function serve(extra = {}) {
  const server = http.createServer((req, res) => {
    const path = req.url.split("?")[0];
    const chunk = /^\/chunks\/[\w-]+\.js$/.test(path)
      ? () => readFileSync(new URL(path.slice(1), packageDir))
      : undefined;
    const file = extra[path] ?? FILES[path] ?? chunk;
    if (!file) {
      res.writeHead(404).end();
      return;
    }
    // (`plain=1`: not isolated.)
    const isolation = req.url.includes("plain=1") ? {} : {
      "cross-origin-opener-policy": "same-origin",
      "cross-origin-embedder-policy": "require-corp",
    };
    res.writeHead(200, {
      "content-type": path.endsWith(".js") ? "text/javascript" : "text/html",
      ...isolation,
    }).end(file());
  });
  return new Promise((resolve) => server.listen(0, "127.0.0.1", () => resolve(server)));
}

/**
 * Runs `path`'s two halves in one browser context: `?half=1` in a page that is then closed, and
 * `?half=2` in a new page of the same context (so of the same origin's storage), and gives the
 * results of both halves, `{ first, second }`.
 */
async function twoLoads(args, path, query = "", extra = {}, secondQuery = "") {
  const server = await serve(extra);
  const browser = await launchChromium(args);
  try {
    const context = await browser.newContext();
    const base = `http://127.0.0.1:${server.address().port}${path}?${query}`;
    const logs = [];
    const first = await context.newPage();
    first.on("console", (m) => logs.push(m.text()));
    const one = await pageResult(first, `${base}&half=1`, 120_000, logs);
    await first.close();
    if (one.adapter === null) return { first: one, second: one };
    const second = await context.newPage();
    second.on("console", (m) => logs.push(m.text()));
    return {
      first: one,
      second: await pageResult(second, `${base}&half=2${secondQuery}`, 120_000, logs),
    };
  } finally {
    await browser.close();
    server.close();
  }
}

/** The README.md example whose first line is `// ${title}`, with `exports` exported. */
function readmeExample(title, exports) {
  const readme = readFileSync(
    new URL("../../README.md", import.meta.url),
    "utf8",
  );
  const found = [...readme.matchAll(/^```ts\n([\s\S]*?)^```$/gm)]
    .map((m) => m[1]).filter((b) => b.startsWith(`// ${title}\n`));
  assert.equal(found.length, 1, `one example "${title}" in README.md`);
  return `${found[0]}\nexport { ${exports} };\n`;
}

/** The weights of `run` (`weights`: one array a tensor), as their float32 bits. */
const bits = (weights) => weights.map((w) => [...new Uint32Array(new Float32Array(w).buffer)]);

/** Checks a tfjs page's two halves: each resumed run the uninterrupted one's bits. */
function checkTfjs({ first, second }, backend) {
  assert.equal(second.backend, backend);
  const resumed = Object.entries(second.runs);
  assert.equal(resumed.length, 4);
  for (const [key, run] of resumed) {
    const [name] = key.split("/");
    assert.equal(run.className, "RadamTfOptimizer", key);
    // N = 3 epochs of one batch saved, M = 4 after the reload.
    assert.deepEqual([run.iterations, run.after], [3, 7], key);
    assert.equal(
      run.optimizerBackend,
      backend === "webgpu" ? "webgpu" : "wasm",
      key,
    );
    // 8-bit RAdam's 64 × 64 kernel: its two moments as int32 codes, through either store.
    assert.deepEqual(
      run.codes,
      name === "radam8bit" ? ["int32", "int32"] : [],
      key,
    );
    assert.deepEqual(
      bits(run.weights),
      bits(first.runs[name].uninterrupted),
      key,
    );
  }
}

const WEBGPU = [
  "--enable-unsafe-webgpu",
  "--use-webgpu-adapter=swiftshader",
  "--enable-features=Vulkan",
];

test("Chromium, tfjs cpu: model.save with includeOptimizer to indexeddb:// and localstorage://, a reload, tf.loadLayersModel and M more epochs give the bits of N + M uninterrupted (Ranger, 8-bit RAdam)", async () => {
  checkTfjs(await twoLoads([], "/tfjs", "backend=cpu"), "cpu");
});

test("Chromium, tfjs webgpu (SwiftShader): the same, bit for bit", async (t) => {
  const result = await twoLoads(WEBGPU, "/tfjs", "backend=webgpu");
  if (!result.second.adapter) {
    const reason =
      "NO WEBGPU ADAPTER IN CHROMIUM: SwiftShader's Vulkan was not found; the webgpu reload case was NOT run";
    console.warn(`\n*** ${reason} ***\n`);
    t.skip(reason);
    return;
  }
  checkTfjs(result, "webgpu");
});

test("Chromium, localstorage:// past its quota: tfjs's own error, and the earlier save of the name is gone", async () => {
  const server = await serve();
  const browser = await launchChromium();
  let first;
  try {
    const url = `http://127.0.0.1:${server.address().port}/quota`;
    first = await pageResult(await browser.newPage(), url, 120_000);
  } finally {
    await browser.close();
    server.close();
  }
  const MiB = 1 << 20;
  for (const [name, run] of Object.entries(first)) {
    // Without the optimizer, 3 MiB of weights fit (4 Mi base64 characters).
    assert.equal(run.plainBytes, 3 * MiB, name);
    assert.match(
      run.error,
      new RegExp(
        `^Failed to save model 'radam-quota-${name}' to local storage: size quota being exceeded is a possible cause of this failure: .*weightDataBytes=\\d+\\.$`,
      ),
      name,
    );
    const weightDataBytes = Number(run.error.match(/weightDataBytes=(\d+)/)[1]);
    assert.equal(weightDataBytes, 3 * MiB + run.state, name);
    // The five keys of the save without the optimizer, all removed by the failed one.
    assert.equal(run.stored, 5, name);
    assert.deepEqual(run.left, [], `${name}: tfjs removed the model's keys`);
  }
  // Ranger: iter, then m, v and slow of the 1024 × 768 kernel; 8-bit RAdam: its codes and scales.
  assert.equal(first.ranger.state, 4 + 9 * MiB);
  // One byte a code, a float32 scale a block of 256.
  assert.equal(first.radam8bit.state, 4 + 2 * (768 * 1024) + 2 * 4 * (3 * 1024));
});

test("Chromium, core: saveState's bytes in IndexedDB, the Cache API and OPFS, a reload, loadState and M more steps give the bits of N + M uninterrupted (wasm, js, 2 threads, 8-bit Ranger)", async () => {
  const { second } = await twoLoads([], "/core");
  assert.equal(second.isolated, true);
  assert.deepEqual(Object.keys(second.runs), [
    "wasm",
    "js",
    "threads",
    "ranger8bit",
  ]);
  for (const [name, run] of Object.entries(second.runs)) {
    const { uninterrupted } = run;
    assert.equal(uninterrupted.step, 11, name);
    assert.equal(uninterrupted.threads, name === "threads" ? 2 : 1, name);
    for (const where of ["indexeddb", "cache", "opfs"]) {
      const resumed = run[where];
      assert.equal(resumed.backend, uninterrupted.backend, `${name} ${where}`);
      assert.equal(resumed.threads, uninterrupted.threads, `${name} ${where}`);
      assert.equal(resumed.step, 11, `${name} ${where}`);
      assert.deepEqual(
        bits(Object.values(resumed.params)),
        bits(Object.values(uninterrupted.params)),
        `${name} ${where}`,
      );
      assert.equal(
        resumed.checkpoint,
        uninterrupted.checkpoint,
        `${name} ${where}: checkpoint`,
      );
    }
  }
  // An OPFS File or a Cache API Response given as it is: a TypeError saying how to read it.
  assert.match(
    second.unread.file,
    /^TypeError: .*got File .*new Uint8Array\(await file\.arrayBuffer\(\)\)/,
  );
  assert.match(
    second.unread.response,
    /^TypeError: .*got Response .*new Uint8Array\(await response\.arrayBuffer\(\)\)/,
  );
});

test("Chromium: README's tfjs example, run as written on two loads, trains a fresh model, then the saved one on from its step", async () => {
  const example = readmeExample(
    "In a browser: training that goes on across page loads",
    "model",
  );
  const report = async ({ model }, _, tf) => ({
    className: model.optimizer.getClassName(),
    iterations: model.optimizer.iterations,
    saved: Object.keys(await tf.io.listModels()),
  });
  const { first, second } = await twoLoads([], "/readme", "", {
    "/readme": () => readmePage(report),
    "/readme-example.js": () => example,
  });
  // 8 examples, one batch an epoch, 5 epochs a load.
  assert.deepEqual(first, {
    className: "RadamTfOptimizer",
    iterations: 5,
    saved: ["indexeddb://my-model"],
  });
  assert.deepEqual(second, { ...first, iterations: 10 });
});

test("Chromium: README's OPFS example, run as written on two loads, gives the bits of its steps uninterrupted", async () => {
  const example = readmeExample(
    "In a browser: the checkpoint in the Origin Private File System, kept across page loads",
    "state",
  );
  const report = async ({ state }, lib) => {
    let reference = await lib.radam({ lr: 1e-3 }).init({
      w: globalThis.weights,
    });
    for (let k = 0; k < state.step; k++) {
      reference = lib.step(
        reference,
        globalThis.batches[k % globalThis.batches.length],
      );
    }
    const [got, want] = await Promise.all(
      [state, reference].map((s) => lib.readParams(s)),
    );
    return { step: state.step, got: [...got.w], want: [...want.w] };
  };
  const { first, second } = await twoLoads([], "/readme", "", {
    "/readme": () => readmePage(report),
    "/readme-example.js": () => example,
  });
  assert.deepEqual([first.step, second.step], [3, 6]);
  for (const run of [first, second]) {
    assert.deepEqual(bits([run.got]), bits([run.want]));
  }
});

test("Chromium, tfjs: a model saved from threads: 2 in an isolated page loads in a page that is not, and trains on, on one thread, with the uninterrupted bits", async () => {
  const { first, second } = await twoLoads([], "/threads", "", {}, "&plain=1");
  assert.deepEqual([first.isolated, second.isolated], [true, false]);
  // The saved optimizer ran on two threads; the loaded one runs on one (before: its first step
  // threw "Option threads: 2 needs SharedArrayBuffer …; use threads: 1").
  assert.deepEqual([first.threads, second.threads], [2, 1]);
  assert.equal(second.iterations, 8);
  assert.deepEqual(bits(second.weights), bits(first.uninterrupted));
});
