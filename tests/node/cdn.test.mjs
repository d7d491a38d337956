// The npm package loaded from a CDN by a page with no bundler: the packed tarball's files served
// from a second origin (a stand-in for cdn.jsdelivr.net's raw files: `/npm/<name>@<version>/<path>`,
// with its CORS, Cross-Origin-Resource-Policy and MIME headers), imported by a page of the first
// origin through the npm README's import map (tfjs 4.22's ES module from the same CDN) and by URL.
// In headless Chromium: wasm, js, two threads (on a cross-origin-isolated page), WebGPU on
// SwiftShader, a checkpoint's round trip, and the TensorFlow.js adapter, against Deno's bits.
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync } from "node:fs";
import http from "node:http";
import { tmpdir } from "node:os";
import { extname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { after, before, test } from "node:test";
import { launchChromium, pageResult } from "./chromium.mjs";

const expected = JSON.parse(
  readFileSync(new URL("./expected.json", import.meta.url), "utf8"),
);
const built = fileURLToPath(new URL("../../npm", import.meta.url));
const pkg = JSON.parse(readFileSync(join(built, "package.json"), "utf8"));
const tfjsDir = fileURLToPath(
  new URL(".", import.meta.resolve("@tensorflow/tfjs/package.json")),
);
const tfjsCoreDir = fileURLToPath(
  new URL(".", import.meta.resolve("@tensorflow/tfjs-core/package.json")),
);
const tfjsVersion = JSON.parse(readFileSync(join(tfjsDir, "package.json"), "utf8")).version;
/** The CDN the README names, replaced in its HTML by the stand-in's origin. */
const JSDELIVR = "https://cdn.jsdelivr.net";

/**
 * The npm README's HTML example that loads the package from jsDelivr: with tfjs from a `<script>`
 * tag (`tf.min.js`) where `global`, else with tfjs as an ES module.
 */
function readmeCdnPage(global = false) {
  const readme = readFileSync(join(built, "README.md"), "utf8");
  const pages = [...readme.matchAll(/^( *)```html\n([\s\S]*?)^ *```$/gm)].map((
    [, indent, body],
  ) => body.replace(new RegExp(`^${indent}`, "gm"), "")).filter((page) =>
    page.includes(JSDELIVR) && page.includes("/dist/tf.min.js") === global
  );
  assert.equal(pages.length, 1, "the npm README has no (or several) HTML examples on jsDelivr");
  // The stand-in serves only these versions: the README must name them.
  for (const [name, version] of [[pkg.name, pkg.version], ["@tensorflow/tfjs", tfjsVersion]]) {
    const named = [...pages[0].matchAll(new RegExp(`/npm/${name}@([^/]+)/`, "g"))];
    assert.ok(named.length > 0 && named.every(([, v]) => v === version), `${name}@${version}`);
  }
  return pages[0];
}

/** The packed tarball's files (what the CDN serves), in a temporary folder. */
function unpacked() {
  const dir = mkdtempSync(join(tmpdir(), "radam-cdn-"));
  const [{ filename }] = JSON.parse(
    execFileSync("npm", [
      "pack",
      built,
      "--pack-destination",
      dir,
      "--json",
      "--loglevel=error",
    ], {
      encoding: "utf8",
    }),
  );
  execFileSync("tar", ["-xzf", join(dir, filename), "-C", dir]);
  return dir;
}

const MIME = {
  ".js": "application/javascript; charset=utf-8",
  ".mjs": "application/javascript; charset=utf-8",
  ".wasm": "application/wasm",
  ".json": "application/json; charset=utf-8",
  ".ts": "text/plain; charset=utf-8",
  ".md": "text/markdown; charset=utf-8",
};

/** The headers jsDelivr sends with a raw file of an npm package. */
const CDN_HEADERS = {
  "access-control-allow-origin": "*",
  "cross-origin-resource-policy": "cross-origin",
  "timing-allow-origin": "*",
  "x-content-type-options": "nosniff",
};

/** The stand-in CDN: `/npm/<name>@<version>/<path>` from the package folders of `roots`. */
function cdnServer(roots, served) {
  return http.createServer((req, res) => {
    served.add(req.url);
    const match = /^\/npm\/((?:@[\w.-]+\/)?[\w.-]+)@([\w.-]+)\/([\w./@-]+)$/
      .exec(req.url);
    const root = match && roots[`${match[1]}@${match[2]}`];
    const file = root && !match[3].includes("..") ? join(root, match[3]) : undefined;
    if (!file || !existsSync(file) || !statSync(file).isFile()) {
      res.writeHead(404, CDN_HEADERS).end();
      return;
    }
    const type = MIME[extname(file)] ?? "application/octet-stream";
    res.writeHead(200, { ...CDN_HEADERS, "content-type": type }).end(
      readFileSync(file),
    );
  });
}

/** Headers that make a page cross-origin isolated (SharedArrayBuffer available). */
const ISOLATION = {
  "cross-origin-opener-policy": "same-origin",
  "cross-origin-embedder-policy": "require-corp",
};

/**
 * The page's script (after the README's import map): the shared case on wasm and js, on two
 * threads where the page is isolated (else the refusal), on WebGPU where Chromium has an adapter,
 * and the adapter's case on tfjs's cpu backend, all from the CDN.
 */
const CASES = `
import * as lib from "@optim/radam";
import { registerTfOptimizer, tfOptimizer } from "@optim/radam/tfjs";
import * as tf from "@tensorflow/tfjs";
import { runCase, tfjsCase } from "/shared_case.mjs";
const said = async (run) => {
  try {
    await run();
    return "no error";
  } catch (e) {
    return e.name + ": " + e.message;
  }
};
// A model saved with its optimizer and loaded back: tfjs must know the class tfjs.js registered.
const reloaded = async (tf, lib, tfOptimizer) => {
  const model = tf.sequential({ layers: [tf.layers.dense({ units: 2, inputShape: [3] })] });
  model.compile({ optimizer: tfOptimizer(lib.radam()), loss: "meanSquaredError" });
  await model.fit(tf.ones([4, 3]), tf.ones([4, 2]), { epochs: 1, verbose: 0 });
  let saved;
  const info = { dateSaved: new Date(), modelTopologyType: "JSON" };
  await model.save({ save: async (a) => (saved = a, { modelArtifactsInfo: info }) }, {
    includeOptimizer: true,
  });
  try {
    const back = await tf.loadLayersModel({ load: async () => saved });
    return back.optimizer.getClassName();
  } catch (e) {
    return e.name + ": " + e.message;
  }
};
try {
  const result = { wasm: await runCase(lib, "wasm"), js: await runCase(lib, "js") };
  result.isolated = globalThis.crossOriginIsolated;
  if (crossOriginIsolated) result.threads = await runCase(lib, "wasm", undefined, 2);
  else result.threads = await said(() => lib.radam({ threads: 2 }).init(new Float32Array(8)));
  const adapter = await navigator.gpu?.requestAdapter();
  if (adapter) result.webgpu = await runCase(lib, "webgpu", await adapter.requestDevice());
  tf.env().set("PROD", true);
  await tf.setBackend("cpu");
  result.tfjs = await tfjsCase(tf, lib, tfOptimizer, "cdn");
  result.reloaded = await reloaded(tf, lib, tfOptimizer);
  window.__result = result;
} catch (e) {
  window.__error = String(e && e.stack || e);
}`;

/**
 * The README's page, its CDN the stand-in, its script replaced by `script`, its import map by
 * `map(importMap)`.
 */
function casesPage(readmePage, script = CASES, map = (importMap) => importMap) {
  const [importMap] = /<script type="importmap">[\s\S]*?<\/script>/.exec(
    readmePage,
  );
  return `<!doctype html><meta charset="utf-8"><title>radam cdn</title>
${map(importMap)}
<script type="module">${script}</script>`;
}

/**
 * The README's warning: `@tensorflow/tfjs-core` mapped to tfjs-core's own file beside
 * `@tensorflow/tfjs` makes two tfjs on the page, and the one that loads a model does not know the
 * optimizer class that tfjs.js registered with the other.
 */
const TWO_TFJS = CASES.replace(
  /^try \{[\s\S]*/m,
  `try {
  await tf.setBackend("cpu");
  const tfjs = await tfjsCase(tf, lib, tfOptimizer, "two");
  const unknown = await reloaded(tf, lib, tfOptimizer);
  registerTfOptimizer(tf);
  window.__result = { tfjs, unknown, registered: await reloaded(tf, lib, tfOptimizer) };
} catch (e) {
  window.__error = String(e && e.stack || e);
}`,
);
const tfjsCoreFile = (map) =>
  map.replace(
    /("@tensorflow\/tfjs-core": ")[^"]*"/,
    (_, key) => `${key}${cdnOrigin}/npm/@tensorflow/tfjs-core@${tfjsVersion}/dist/tf-core.fesm.js"`,
  );

/** `map` with `@tensorflow/tfjs-core` mapped to `url`. */
const coreMappedTo = (map, url) =>
  map.replace(/("@tensorflow\/tfjs-core": ")[^"]*"/, (_, key) => `${key}${url}"`);
const MIN_JS = () => `${cdnOrigin}/npm/@tensorflow/tfjs@${tfjsVersion}/dist/tf.min.js`;

/** The package's `tfjs-core-global.js` (tfjs-core's exports from tf.min.js's global `tf`). */
const globalShim = () => readFileSync(join(packDir, "package", "tfjs-core-global.js"), "utf8");

/** A model's `model.fit` as the README's pages write it, and its weights' bits. */
const MODULE_FIT = CASES.replace(
  /^try \{[\s\S]*/m,
  `try {
  tf.env().set("PROD", true);
  await tf.setBackend("cpu");
  window.__result = { fit: await tfjsFitCase(tf, tf, lib, tfOptimizer) };
} catch (e) {
  window.__error = String(e && e.stack || e);
}`,
).replace("{ runCase, tfjsCase }", "{ tfjsFitCase }");

/**
 * The cases with tf.min.js's global `tf` (a classic script): the adapter's steps against the
 * library's, `model.fit`'s bits, a model saved with its optimizer and loaded back before and after
 * `registerTfOptimizer(tf)`.
 */
const GLOBAL_CASES = `
import * as lib from "@optim/radam";
import { registerTfOptimizer, tfOptimizer } from "@optim/radam/tfjs";
import { tfjsCase, tfjsFitCase } from "/shared_case.mjs";
const tf = globalThis.tf;
${/^const reloaded = [\s\S]*?^\};$/m.exec(CASES)[0]}
try {
  tf.env().set("PROD", true);
  await tf.setBackend("cpu");
  const tfjs = await tfjsCase(tf, lib, tfOptimizer, "global");
  const fit = await tfjsFitCase(tf, tf, lib, tfOptimizer);
  const loaded = await reloaded(tf, lib, tfOptimizer);
  registerTfOptimizer(tf);
  window.__result = { tfjs, fit, loaded, registered: await reloaded(tf, lib, tfOptimizer) };
} catch (e) {
  window.__error = String(e && e.stack || e);
}`;

/** The README's tf.min.js page (its CDN the stand-in), its import map by `map`, with the cases. */
function globalTfPage(readmeGlobal, map) {
  const [script] = /<script src="[^"]*\/dist\/tf\.min\.js"><\/script>/.exec(readmeGlobal);
  return `${script}\n${casesPage(readmeGlobal, GLOBAL_CASES, map)}`;
}

/** The paths the CDN was asked for. */
const served = new Set();
let cdn, site, browser, cdnOrigin, siteOrigin, packDir;

before(async () => {
  packDir = unpacked();
  cdn = cdnServer({
    [`${pkg.name}@${pkg.version}`]: join(packDir, "package"),
    [`@tensorflow/tfjs@${tfjsVersion}`]: tfjsDir,
    [`@tensorflow/tfjs-core@${tfjsVersion}`]: tfjsCoreDir,
  }, served);
  await new Promise((resolve) => cdn.listen(0, "127.0.0.1", resolve));
  // Another host than the page's, not only another port: cross-site, as a CDN is.
  cdnOrigin = `http://localhost:${cdn.address().port}`;
  const readmePage = readmeCdnPage().replaceAll(JSDELIVR, cdnOrigin);
  const readmeGlobal = readmeCdnPage(true).replaceAll(JSDELIVR, cdnOrigin);
  const pages = {
    "/readme": readmePage,
    "/isolated": casesPage(readmePage),
    "/plain": casesPage(readmePage),
    "/two-tfjs": casesPage(readmePage, TWO_TFJS, tfjsCoreFile),
    "/readme-global": readmeGlobal,
    "/module-fit": casesPage(readmePage, MODULE_FIT),
    "/global-shim": globalTfPage(readmeGlobal, (m) => m),
    "/global-core-file": globalTfPage(readmeGlobal, tfjsCoreFile),
    "/global-min": globalTfPage(readmeGlobal, (map) => coreMappedTo(map, MIN_JS())),
    // The README's page without its tf.min.js: no global tf.
    "/global-none": casesPage(readmeGlobal, GLOBAL_CASES),
  };
  site = http.createServer((req, res) => {
    if (req.url === "/shared_case.mjs") {
      res.writeHead(200, { "content-type": "text/javascript", ...ISOLATION })
        .end(
          readFileSync(new URL("./shared_case.mjs", import.meta.url)),
        );
    } else if (pages[req.url]) {
      const headers = req.url === "/plain" ? {} : ISOLATION;
      res.writeHead(200, { "content-type": "text/html", ...headers }).end(
        `<!doctype html>${pages[req.url]}`,
      );
    } else res.writeHead(404).end();
  });
  await new Promise((resolve) => site.listen(0, "127.0.0.1", resolve));
  siteOrigin = `http://127.0.0.1:${site.address().port}`;
  browser = await launchChromium([
    "--enable-unsafe-webgpu",
    "--use-webgpu-adapter=swiftshader",
    "--enable-features=Vulkan",
  ]);
});

after(async () => {
  await browser?.close();
  cdn?.close();
  site?.close();
  if (packDir) rmSync(packDir, { recursive: true, force: true });
});

/** Opens `path` of the page's origin; its result, with its console and failed requests. */
async function open(path) {
  const page = await browser.newPage();
  const logs = [];
  page.on("console", (m) => logs.push(`console: ${m.text()}`));
  page.on(
    "requestfailed",
    (r) => logs.push(`failed: ${r.url()} ${r.failure()?.errorText}`),
  );
  return await pageResult(page, `${siteOrigin}${path}`, 120_000, logs);
}

test("the npm README's page that imports the package from jsDelivr runs, from another origin", async () => {
  const page = await browser.newPage();
  const errors = [];
  page.on("pageerror", (e) => errors.push(String(e)));
  await page.goto(`${siteOrigin}/readme`);
  await page.waitForFunction(
    () => document.body?.textContent.trim() || null,
    null,
    {
      timeout: 60_000,
    },
  ).catch(() => {});
  assert.deepEqual(errors, []);
  assert.match(
    await page.evaluate(() => document.body.textContent.trim()),
    /^wasm: /,
  );
});

/** The checks of a page's cases from the CDN: Deno's bits, but on WebGPU (close agreement). */
function checkCases(result) {
  assert.deepEqual(result.wasm, expected.wasm);
  assert.deepEqual(result.js, expected.js);
  assert.deepEqual(result.tfjs.adapter, result.tfjs.core);
  assert.equal(result.reloaded, "RadamTfOptimizer");
  if (!result.webgpu) {
    console.warn(
      "\n*** NO WEBGPU ADAPTER IN CHROMIUM: WebGPU from a CDN was NOT run ***\n",
    );
    return;
  }
  assert.equal(result.webgpu.backend, "webgpu");
  assert.equal(result.webgpu.step, expected.wasm.step);
  assert.equal(result.webgpu.resumedStep, expected.wasm.resumedStep);
  result.webgpu.sample.forEach((x, i) => {
    const y = expected.wasm.sample[i];
    assert.ok(
      Math.abs(x - y) <= 1e-4 * (1 + Math.abs(y)),
      `webgpu sample ${i}: ${x} vs ${y}`,
    );
  });
}

test("from a CDN, on a cross-origin-isolated page: wasm, js, 2 threads, WebGPU, checkpoints and the tfjs adapter", async () => {
  const result = await open("/isolated");
  assert.equal(result.isolated, true);
  // Every file of the package came from the CDN's origin, the WebGPU chunk (import()ed) too.
  const base = `/npm/${pkg.name}@${pkg.version}/`;
  for (const file of ["index.js", "tfjs.js", "chunks/webgpu_state-"]) {
    assert.ok([...served].some((path) => path.startsWith(base + file)), `${file} not from the CDN`);
  }
  checkCases(result);
  assert.deepEqual(result.threads, expected.wasm);
});

test("from a CDN, on a page that is not isolated: all but threads, which say why", async () => {
  const result = await open("/plain");
  assert.equal(result.isolated, false);
  checkCases(result);
  assert.match(
    result.threads,
    /^TypeError: .*SharedArrayBuffer.*cross-origin isolated/,
  );
});

test("tfjs-core mapped to its own file beside tfjs: a model's optimizer is unknown until registerTfOptimizer(tf)", async () => {
  const result = await open("/two-tfjs");
  assert.deepEqual(result.tfjs.adapter, result.tfjs.core); // it trains all the same
  assert.match(result.unknown, /^Error: Unknown layer: RadamTfOptimizer\b/);
  // registerTfOptimizer(tf), given the tfjs that loads the model, registers the class there.
  assert.equal(result.registered, "RadamTfOptimizer");
});

test("the npm README's page with tfjs from a <script> tag (tf.min.js) and the package's tfjs-core-global.js trains", async () => {
  const page = await browser.newPage();
  const errors = [];
  page.on("pageerror", (e) => errors.push(String(e)));
  await page.goto(`${siteOrigin}/readme-global`);
  const text = () => document.body?.textContent.trim() || null;
  await page.waitForFunction(text, null, { timeout: 60_000 }).catch(() => {});
  assert.deepEqual(errors, []);
  assert.match(await page.evaluate(text), /^\w+: 2 steps$/);
});

test("tf.min.js's global tf with the package's tfjs-core-global.js: one tfjs, the bits of tfjs as a module, a saved model loads", async () => {
  const result = await open("/global-shim");
  // The README's import map takes the file from the CDN, where the package ships it.
  assert.ok(served.has(`/npm/${pkg.name}@${pkg.version}/tfjs-core-global.js`), [...served]);
  const single = await open("/module-fit");
  assert.deepEqual(result.tfjs.adapter, result.tfjs.core);
  assert.deepEqual(result.fit, single.fit);
  assert.equal(result.fit.iterations, 8);
  assert.equal(result.loaded, "RadamTfOptimizer"); // no registerTfOptimizer(tf) needed
  assert.equal(result.registered, "RadamTfOptimizer");
});

test("tf.min.js's global tf with tfjs-core's own file: the same bits; a saved model loads after registerTfOptimizer(tf)", async () => {
  const result = await open("/global-core-file");
  const single = await open("/module-fit");
  assert.deepEqual(result.tfjs.adapter, result.tfjs.core);
  assert.deepEqual(result.fit, single.fit);
  assert.match(result.loaded, /^Error: Unknown layer: RadamTfOptimizer\b/);
  assert.equal(result.registered, "RadamTfOptimizer");
});

test("tfjs-core mapped to tf.min.js itself (no exports): importing the adapter is a TypeError that says what to map", async () => {
  const page = await browser.newPage();
  const error = new Promise((resolve) => page.on("pageerror", (e) => resolve(e)));
  await page.goto(`${siteOrigin}/global-min`);
  const { name, message } = await error;
  assert.equal(name, "TypeError");
  assert.match(message, /"@tensorflow\/tfjs-core" resolves to does not export Optimizer, Tensor, /);
  // It names the package's tfjs-core-global.js, which exports every name the adapter missed.
  assert.match(message, /map "@tensorflow\/tfjs-core" in the import map to tfjs-core-global\.js\b/);
  const missing = /does not export ([\w, ]+) \(/.exec(message)[1].split(", ");
  const exported = /^export const \{([^}]*)\}/m.exec(globalShim())[1].split(",")
    .map((n) => n.trim()).filter(Boolean);
  assert.deepEqual(missing, exported);
});

test(
  "the README's import map with no tf.min.js (no global tf): the package's tfjs-core-global.js is an Error at import that says to load it with a <script> tag",
  {
    timeout: 60_000,
  },
  async () => {
    const page = await browser.newPage();
    const error = new Promise((resolve) => page.on("pageerror", (e) => resolve(e)));
    await page.goto(`${siteOrigin}/global-none`);
    const { name, message } = await error;
    assert.equal(name, "Error");
    assert.match(message, /^@optim\/radam\/tfjs-core-global: there is no global tf\b/);
    assert.match(message, /<script src="[^"]*\/tf\.min\.js"><\/script>/);
  },
);
