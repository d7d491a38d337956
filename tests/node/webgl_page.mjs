// The page of webgl.test.mjs and webgl_bench.mjs: the bundle's TensorFlow.js adapter (`tfjs.js`)
// on tfjs-backend-webgl in headless Chromium, whose WebGL is SwiftShader's (ANGLE on its Vulkan:
// software, on the CPU). tfjs-core, -layers and -backend-webgl as the ES modules their packages
// ship (an import map for the bare specifier they share). `/?run=cases` runs webglCases,
// `/?run=bench` webglBench (webgl_case.mjs), `&f16` on half-float textures; each sets `__result`
// or `__error`.
import { readFileSync } from "node:fs";
import http from "node:http";
import { fileURLToPath } from "node:url";
import { launchChromium, pageResult } from "./chromium.mjs";

const PAGE = `<!doctype html><meta charset="utf-8"><title>radam tfjs webgl</title>
<script type="importmap">{ "imports": { "@tensorflow/tfjs-core": "/tfjs-core.js" } }</script>
<script type="module">
  let stage = "import";
  try {
    const run = new URLSearchParams(location.search).get("run");
    const tf = await import("@tensorflow/tfjs-core");
    const tfl = await import("/tfjs-layers.js");
    await import("/tfjs-backend-webgl.js");
    const lib = await import("/index.js");
    const { tfOptimizer } = await import("/tfjs.js");
    const { tfjsCase } = await import("/shared_case.mjs");
    const { webglBench, webglCases, webglInfo } = await import("/webgl_case.mjs");
    tf.env().set("PROD", true);
    if (new URLSearchParams(location.search).has("f16")) {
      tf.env().set("WEBGL_FORCE_F16_TEXTURES", true); // (half-float textures, as without float32)
    }
    stage = "setBackend";
    if (!(await tf.setBackend("webgl"))) throw new Error("tfjs could not start its webgl backend");
    await tf.ready();
    stage = run;
    window.__result = run === "bench"
      ? { info: webglInfo(tf), bench: await webglBench(tf, lib, tfOptimizer) }
      : await webglCases(tf, tfl, lib, tfOptimizer, tfjsCase);
  } catch (e) {
    window.__error = \`at \${stage}: \${e && e.stack || e}\`;
  }
</script>`;

/**
 * Chromium's flags for WebGL on SwiftShader, named rather than left to the software fallback that
 * Chromium (started `--disable-gpu`) takes today, and is putting behind an opt-in.
 */
export const WEBGL_FLAGS = ["--use-angle=swiftshader", "--enable-unsafe-swiftshader"];

const packageDir = new URL(".", import.meta.resolve("@optim/radam"));
/** A tfjs package's ES module (`dist/<file>`). */
const tfjsModule = (name, file) => () =>
  readFileSync(new URL(`dist/${file}`, import.meta.resolve(`@tensorflow/${name}/package.json`)));
const here = (file) => () => readFileSync(new URL(file, import.meta.url));
const FILES = {
  "/tfjs.js": () => readFileSync(new URL("tfjs.js", packageDir)),
  "/tfjs-core.js": tfjsModule("tfjs-core", "tf-core.fesm.js"),
  "/tfjs-layers.js": tfjsModule("tfjs-layers", "tf-layers.fesm.js"),
  "/tfjs-backend-webgl.js": tfjsModule("tfjs-backend-webgl", "tf-backend-webgl.fesm.js"),
  "/index.js": () => readFileSync(fileURLToPath(import.meta.resolve("@optim/radam"))),
  "/shared_case.mjs": here("./shared_case.mjs"),
  "/webgl_case.mjs": here("./webgl_case.mjs"),
};

function serve() {
  const server = http.createServer((req, res) => {
    const path = req.url.replace(/\?.*$/, "");
    const chunk = /^\/chunks\/[\w-]+\.js$/.test(path)
      ? () => readFileSync(new URL(path.slice(1), packageDir))
      : undefined;
    const file = path === "/" ? () => PAGE : FILES[path] ?? chunk;
    if (!file) {
      res.writeHead(404).end();
      return;
    }
    res.writeHead(200, { "content-type": path === "/" ? "text/html" : "text/javascript" })
      .end(file());
  });
  return new Promise((resolve) => server.listen(0, "127.0.0.1", () => resolve(server)));
}

/** Runs the page's `run` ("cases" or "bench") in headless Chromium; its result. */
export async function webglPage(run, timeout = 240_000) {
  const server = await serve();
  const browser = await launchChromium(WEBGL_FLAGS);
  try {
    const page = await browser.newPage();
    const logs = [];
    page.on("console", (m) => logs.push(`${m.type()}: ${m.text()}`));
    const url = `http://127.0.0.1:${server.address().port}/?run=${run}`;
    return await pageResult(page, url, timeout, logs);
  } finally {
    await browser.close();
    server.close();
  }
}
