// The package in a Cloudflare Worker, run by workerd (the Workers runtime, from npm, at the
// version of package.json): workerd_app/worker.mjs bundled by esbuild as wrangler does (the
// package's radam.wasm, imported through the package's exports, left as a module of its own),
// then served by `workerd serve` with the bundle as an ES module and radam.wasm as a `wasm`
// module. Without setWasmModule the runtime refuses to compile WebAssembly and the library trains
// on js, with Deno's bits; with the kernel given, "auto" and "wasm" train on wasm, with Deno's bits
// and the js backend's in the same worker (32-bit and 8-bit states). RADAM_WORKERD_BENCH=1 also
// times 100 steps of a million parameters on js and on wasm (printed, not asserted). The npm
// README's Worker example runs there too, as its second Worker; workerd_app/tfjs_worker.mjs, with
// tfjs-core, tfjs-layers and tfjs-backend-cpu bundled, trains by model.fit with
// tfOptimizer(radam()) as its third, to the bits of the same training here in Node.
import assert from "node:assert/strict";
import { copyFileSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { after, before, test } from "node:test";
import { build } from "esbuild";
import * as tf from "@tensorflow/tfjs-core";
import "@tensorflow/tfjs-backend-cpu";
import * as tfl from "@tensorflow/tfjs-layers";
import { radam } from "@optim/radam";
import { tfOptimizer } from "@optim/radam/tfjs";
import { tfjsFitCase } from "./shared_case.mjs";
import { compiledWasm, freePort, serveWorkerd, stopChild } from "./workerd_serve.mjs";

const expected = JSON.parse(
  readFileSync(new URL("./expected.json", import.meta.url), "utf8"),
);
const dir = mkdtempSync(join(tmpdir(), "radam-workerd-"));
/** The path of workerd's binary for this platform (the package's `default` export). */
let workerd, origin = "", readmeOrigin = "", tfjsOrigin = "";

/** The npm README's Worker: its TypeScript block that imports the kernel's file. */
function readmeWorker() {
  const readme = readFileSync(
    new URL("README.md", import.meta.resolve("@optim/radam/package.json")),
    "utf8",
  );
  const code = [...readme.matchAll(/^```ts\n([\s\S]*?)^```$/gm)].map((m) => m[1])
    .find((body) => body.includes('from "@optim/radam/radam.wasm"'));
  assert.ok(
    code,
    "the npm README has no Worker that imports @optim/radam/radam.wasm",
  );
  return code;
}

/**
 * The Workers, `worker.mjs`, the README's and `tfjs_worker.mjs`, bundled as wrangler bundles one: `.wasm` imports
 * kept as modules of their own.
 */
async function bundle() {
  const kernel = fileURLToPath(import.meta.resolve("@optim/radam/radam.wasm"));
  copyFileSync(kernel, join(dir, "radam.wasm"));
  const app = fileURLToPath(new URL("./workerd_app/", import.meta.url));
  const options = {
    bundle: true,
    format: "esm",
    platform: "neutral",
    target: "es2022",
    // (tests/node links the package: resolve its files from here, as an installed copy.)
    preserveSymlinks: true,
    logLevel: "warning",
    plugins: [compiledWasm],
  };
  await build({
    ...options,
    entryPoints: [join(app, "worker.mjs")],
    outfile: join(dir, "worker.js"),
  });
  await build({
    ...options,
    stdin: {
      contents: readmeWorker(),
      resolveDir: app,
      loader: "ts",
      sourcefile: "readme.ts",
    },
    outfile: join(dir, "readme.js"),
  });
  await build({
    ...options,
    // tfjs 4 has no `exports`, and its `browser` maps (which leave out its Node platform: `util`,
    // `node-fetch`) hold for esbuild only on platform "browser".
    platform: "browser",
    entryPoints: [join(app, "tfjs_worker.mjs")],
    outfile: join(dir, "tfjs.js"),
  });
}

/** workerd's config: each bundle as an ES module, the kernel as a `wasm` module beside it. */
function config(port, readmePort, tfjsPort) {
  const worker = (name) =>
    `(
  modules = [
    (name = "${name}.js", esModule = embed "${name}.js"),
    (name = "radam.wasm", wasm = embed "radam.wasm"),
  ],
  compatibilityDate = "2025-06-01",
)`;
  return `using Workerd = import "/workerd/workerd.capnp";
const config :Workerd.Config = (
  services = [(name = "main", worker = ${worker("worker")}), (name = "readme", worker = ${
    worker("readme")
  }), (name = "tfjs", worker = ${worker("tfjs")})],
  sockets = [
    (name = "http", address = "127.0.0.1:${port}", http = (), service = "main"),
    (name = "readme", address = "127.0.0.1:${readmePort}", http = (), service = "readme"),
    (name = "tfjs", address = "127.0.0.1:${tfjsPort}", http = (), service = "tfjs"),
  ],
);
`;
}

before(async () => {
  await bundle();
  const [port, readmePort, tfjsPort] = [await freePort(), await freePort(), await freePort()];
  origin = `http://127.0.0.1:${port}`;
  readmeOrigin = `http://127.0.0.1:${readmePort}`;
  tfjsOrigin = `http://127.0.0.1:${tfjsPort}`;
  ({ child: workerd } = await serveWorkerd(dir, config(port, readmePort, tfjsPort), [origin]));
});

after(async () => {
  await stopChild(workerd);
  rmSync(dir, { recursive: true, force: true });
});

/** What the Worker answers at `path` (on `at`, the main Worker's origin by default), parsed. */
async function get(path, at = origin) {
  const response = await fetch(`${at}${path}`);
  const body = await response.json();
  assert.equal(response.status, 200, body.error);
  return body;
}

test("workerd: without setWasmModule the runtime refuses to compile and the library trains on js; with the package's radam.wasm given, on wasm, bit for bit", async () => {
  const { without, notModule, given } = await get("/case");
  // workerd's own words for a compile at run time.
  assert.match(
    without.compile,
    /^CompileError: .*Wasm code generation disallowed by embedder/,
  );
  assert.deepEqual(without.auto, expected.js); // backend "js", and Deno's bits
  assert.match(
    without.wasm,
    /^TypeError: The wasm backend needs WebAssembly, which cannot be/,
  );
  assert.match(
    without.wasm,
    /disallowed by embedder.*use backend "js" or "auto"/,
  );
  assert.match(
    notModule,
    /^TypeError: setWasmModule expects a WebAssembly\.Module .*Uint8Array/,
  );

  assert.deepEqual(given.auto, expected.wasm); // backend "wasm", and Deno's bits
  assert.deepEqual(given.wasm, expected.wasm);
  assert.deepEqual(given.radam, { backend: "wasm", same: true });
  assert.deepEqual(given.radam8bit, { backend: "wasm", same: true });
  assert.equal(given.loaded, "wasm");
  // Threads need Workers (and a compile at run time), which a Worker has not.
  assert.match(
    given.threads,
    /^TypeError: The wasm backend \(option threads: 2\) needs WebAssembly/,
  );
  assert.match(
    given.threads,
    /setWasmModule runs single-threaded states only.*use threads: 1/,
  );
});

test("workerd: the npm README's Worker trains on wasm", async () => {
  const response = await fetch(readmeOrigin);
  const text = await response.text();
  assert.equal(response.status, 200, text);
  const [backend, values] = text.split(": ");
  assert.equal(backend, "wasm");
  const w = values.split(", ").map(Number);
  // One step of RAdam, unrectified: w − lr·g.
  const want = [1 - 0.05, 2 + 0.05, 3 - 0.1];
  assert.ok(
    w.length === 3 && w.every((x, i) => Math.abs(x - want[i]) < 1e-6),
    text,
  );
});

test("workerd: TensorFlow.js trains by model.fit with tfOptimizer(radam()) on js without setWasmModule, on wasm with it, to the bits of Node", async () => {
  tf.env().set("PROD", true);
  const { without, given } = await get("/tfjs", tfjsOrigin);
  const node = (states) => tfjsFitCase(tf, tfl, { radam }, tfOptimizer, states);
  const [want, want8bit] = [await node("32bit"), await node("8bit")];
  // Node compiles the kernel itself: the same training, on wasm, from the same package.
  assert.equal(want.backend, "wasm");
  assert.equal(want.iterations, 8); // 4 epochs of 2 batches
  assert.deepEqual(without, { ...want, backend: "js" });
  assert.deepEqual(given.radam, want);
  assert.deepEqual(given.radam8bit, want8bit);
  assert.notDeepEqual(want8bit.weights, want.weights);
});

test(
  "workerd: 100 RAdam steps of a million parameters, js and wasm (RADAM_WORKERD_BENCH=1)",
  {
    skip: process.env.RADAM_WORKERD_BENCH !== "1",
  },
  async () => {
    const time = async (backend, steps) => {
      const start = performance.now();
      const body = await get(
        `/bench?backend=${backend}&n=1000000&steps=${steps}`,
      );
      assert.equal(body.backend, backend);
      return performance.now() - start;
    };
    const row = {};
    for (const backend of ["js", "wasm"]) {
      await time(backend, 1); // warm-up
      row[backend] = (await time(backend, 101)) - (await time(backend, 1));
    }
    console.log(
      `workerd, 100 steps of 1M params: js ${row.js.toFixed(0)} ms, wasm ${
        row.wasm.toFixed(0)
      } ms, ratio ${(row.js / row.wasm).toFixed(1)}x`,
    );
  },
);
