// The package in apps built by Vite and by webpack 5 (production builds, as most browser users get
// it, and Vite's dev server, which pre-bundles it): bundler_app/ imports the package, on two
// threads, and @optim/radam/tfjs for its registration only. Each app, served with the headers of
// the config files that the npm README's Threads paragraph gives (Vite's own servers apply its
// config; webpack's bundle is served with the headers of its devServer), must be cross-origin
// isolated in headless Chromium, keep the registration and step with Deno's bits.
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import http from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { after, test } from "node:test";
import { build, createServer, mergeConfig, preview } from "vite";
import webpack from "webpack";
import { launchChromium, pageResult } from "./chromium.mjs";

const app = fileURLToPath(new URL("./bundler_app/", import.meta.url));
const expected = JSON.parse(
  readFileSync(new URL("./expected.json", import.meta.url), "utf8"),
);
const readme = readFileSync(
  new URL(".", import.meta.resolve("@optim/radam/package.json")).pathname + "README.md",
  "utf8",
);
const out = mkdtempSync(join(tmpdir(), "radam-bundlers-"));

after(() => rmSync(out, { recursive: true, force: true }));

/** The default export of the README's config file `name` (a fenced block that begins `// name`). */
async function configFile(name) {
  const fence = /^( *)```js\n([\s\S]*?)^ *```$/gm;
  const bodies = [...readme.matchAll(fence)].map(([, indent, body]) =>
    body.replace(new RegExp(`^${indent}`, "gm"), "")
  );
  const code = bodies.find((body) => body.startsWith(`// ${name}`));
  assert.ok(code, `the npm README gives no ${name}`);
  const url = `data:text/javascript;base64,${Buffer.from(code).toString("base64")}`;
  return (await import(url)).default;
}

/** What the app's page reports in Chromium at `url`. */
async function appResult(url) {
  const browser = await launchChromium();
  try {
    return await pageResult(await browser.newPage(), url);
  } finally {
    await browser.close();
  }
}

/** The app's result, checked: isolated, the registration kept, two threads with Deno's bits. */
function assertApp(result) {
  assert.equal(result.isolated, true, "the page is not cross-origin isolated");
  assert.equal(result.registered, true, "the bundler dropped @optim/radam/tfjs's registration");
  assert.deepEqual(result.threads, expected.wasm);
}

test("Vite: a production build, served by vite preview with the README's vite.config.js", async () => {
  const config = mergeConfig(await configFile("vite.config.js"), {
    root: app,
    configFile: false,
    logLevel: "error",
    // tests/node links the package (file:../../npm): resolve its imports from here, as an app's
    // installed copy would.
    resolve: { preserveSymlinks: true },
    build: { outDir: join(out, "vite"), emptyOutDir: true, chunkSizeWarningLimit: 4096 },
    preview: { host: "127.0.0.1", port: 0 },
  });
  await build(config);
  const server = await preview(config);
  try {
    assertApp(await appResult(server.resolvedUrls.local[0]));
  } finally {
    await server.close();
  }
});

test("Vite: its dev server (dependencies pre-bundled, modules served as they are) with the README's vite.config.js", async () => {
  const config = mergeConfig(await configFile("vite.config.js"), {
    root: app,
    configFile: false,
    logLevel: "error",
    resolve: { preserveSymlinks: true },
    cacheDir: join(out, "vite-cache"),
    server: { host: "127.0.0.1", port: 0, hmr: false, watch: null },
  });
  const server = await createServer(config);
  await server.listen();
  try {
    assertApp(await appResult(server.resolvedUrls.local[0]));
  } finally {
    await server.close();
  }
});

test("webpack 5: a production build, served with the headers of the README's webpack.config.js", async () => {
  const { devServer } = await configFile("webpack.config.js");
  const dist = join(out, "webpack");
  const stats = await new Promise((resolve, reject) =>
    webpack({
      mode: "production",
      context: app,
      entry: "./main.mjs",
      output: { path: dist, filename: "main.js" },
      resolve: { symlinks: false },
      performance: { hints: false },
    }, (error, stats) => error ? reject(error) : resolve(stats))
  );
  const { errors, warnings } = stats.toJson({ all: false, errors: true, warnings: true });
  assert.deepEqual({ errors, warnings }, { errors: [], warnings: [] });
  const page = '<!doctype html><meta charset="utf-8"><script src="/main.js"></script>';
  const server = http.createServer((req, res) => {
    const body = req.url === "/"
      ? page
      : req.url === "/main.js"
      ? readFileSync(join(dist, "main.js"))
      : undefined;
    if (body === undefined) return void res.writeHead(404).end();
    const type = req.url === "/" ? "text/html" : "text/javascript";
    res.writeHead(200, { "content-type": type, ...devServer.headers }).end(body);
  });
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  try {
    assertApp(await appResult(`http://127.0.0.1:${server.address().port}/`));
  } finally {
    server.close();
  }
});
