// The package in a Cloudflare Worker, run by workerd (the Workers runtime, from npm, at the
// version of package.json): workerd_app/worker.mjs bundled by esbuild as wrangler does (with
// wrangler's conditions, `workerd` first, so from the package's workerd entries, which import its
// radam.wasm; `.wasm` imports left as modules of their own), then served by `workerd serve` with
// the bundle as an ES module and radam.wasm as a `wasm` module. It trains on wasm with no
// setWasmModule, with Deno's bits and the js backend's in the same worker (32-bit and 8-bit
// states), though the runtime refuses to compile WebAssembly; setWasmModule takes the kernel again
// and refuses another module. The same Worker bundled without the `workerd` condition (the
// package's default entries, as a bundler that does not apply it) trains on js until given the
// kernel, then on wasm, with the same bits. RADAM_WORKERD_BENCH=1 also times 100 steps of a
// million parameters on js and on wasm (printed, not asserted). The npm README's Worker example
// runs there too; workerd_app/tfjs_worker.mjs, with tfjs-core, tfjs-layers and tfjs-backend-cpu
// bundled, trains by model.fit with tfOptimizer(radam()), to the bits of the same training here in
// Node, with and without the `workerd` condition.
import assert from "node:assert/strict";
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
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
import {
  compiledWasm,
  freePort,
  serveWorkerd,
  stopChild,
  WRANGLER_RESOLVE,
} from "./workerd_serve.mjs";

const expected = JSON.parse(
  readFileSync(new URL("./expected.json", import.meta.url), "utf8"),
);
const dir = mkdtempSync(join(tmpdir(), "radam-workerd-"));
/** workerd's process. */
let workerd;
/** Each Worker's origin, by the name of its service (see {@link WORKERS}). */
const origins = {};
/** Each bundle's bytes of JavaScript, by name. */
const sizes = {};

/** The npm README's Worker: its TypeScript block `// src/index.ts`, with no set-up. */
function readmeWorker() {
  const readme = readFileSync(
    new URL("README.md", import.meta.resolve("@optim/radam/package.json")),
    "utf8",
  );
  const code = [...readme.matchAll(/^```ts\n([\s\S]*?)^```$/gm)].map((m) => m[1])
    .find((body) => body.startsWith("// src/index.ts"));
  assert.ok(code, "the npm README has no Worker `// src/index.ts`");
  return code;
}

/** `(module (memory (export "memory") 1))`: a module that is not the kernel (other.wasm). */
const OTHER_WASM = new Uint8Array([
  0,
  97,
  115,
  109,
  1,
  0,
  0,
  0,
  5,
  3,
  1,
  0,
  1,
  7,
  10,
  1,
  6,
  109,
  101,
  109,
  111,
  114,
  121,
  2,
  0,
]);

/**
 * The Workers, bundled as wrangler bundles one (`.wasm` imports kept as modules of their own),
 * each `<name>.js`: `worker.mjs`, the README's and `tfjs_worker.mjs` with wrangler's conditions
 * (`worker`, `readme`, `tfjs`: the package's workerd entries), and `worker.mjs` and
 * `tfjs_worker.mjs` again without them (`plain`, `tfjsPlain`: its default entries, as a bundler
 * that does not apply the `workerd` condition gets them).
 */
async function bundle() {
  const kernel = fileURLToPath(import.meta.resolve("@optim/radam/radam.wasm"));
  copyFileSync(kernel, join(dir, "radam.wasm"));
  writeFileSync(join(dir, "other.wasm"), OTHER_WASM);
  const app = fileURLToPath(new URL("./workerd_app/", import.meta.url));
  const options = {
    bundle: true,
    format: "esm",
    target: "es2022",
    // (tests/node links the package: resolve its files from here, as an installed copy.)
    preserveSymlinks: true,
    logLevel: "warning",
    plugins: [compiledWasm],
  };
  // A bundler without the `workerd` condition (esbuild's own defaults).
  const plain = { platform: "neutral" };
  // tfjs 4 has no `exports`, and its `browser` maps (which leave out its Node platform: `util`,
  // `node-fetch`) hold for esbuild only on platform "browser".
  const plainBrowser = { platform: "browser" };
  const builds = [
    ["worker", "worker.mjs", WRANGLER_RESOLVE],
    ["plain", "worker.mjs", plain],
    ["tfjs", "tfjs_worker.mjs", WRANGLER_RESOLVE],
    ["tfjsPlain", "tfjs_worker.mjs", plainBrowser],
  ];
  for (const [name, file, resolve] of builds) {
    await build({
      ...options,
      ...resolve,
      entryPoints: [join(app, file)],
      outfile: join(dir, `${name}.js`),
      metafile: true,
    }).then(({ metafile }) => sizes[name] = bundled(metafile));
  }
  await build({
    ...options,
    ...WRANGLER_RESOLVE,
    stdin: {
      contents: readmeWorker(),
      resolveDir: app,
      loader: "ts",
      sourcefile: "readme.ts",
    },
    outfile: join(dir, "readme.js"),
  });
}

/** The bytes of the JavaScript of a build (its `.wasm` modules apart). */
function bundled(metafile) {
  return Object.entries(metafile.outputs).filter(([f]) => f.endsWith(".js"))
    .reduce((sum, [, o]) => sum + o.bytes, 0);
}

/** The Workers, by service name (each served on a port of its own). */
const WORKERS = ["worker", "plain", "readme", "tfjs", "tfjsPlain"];

/** workerd's config: each bundle as an ES module, the `.wasm` files as `wasm` modules beside it. */
function config(ports) {
  const worker = (name) =>
    `(
  modules = [
    (name = "${name}.js", esModule = embed "${name}.js"),
    (name = "radam.wasm", wasm = embed "radam.wasm"),
    (name = "other.wasm", wasm = embed "other.wasm"),
  ],
  compatibilityDate = "2025-06-01",
)`;
  const services = WORKERS.map((name) => `(name = "${name}", worker = ${worker(name)})`);
  const sockets = WORKERS.map((name) =>
    `(name = "${name}", address = "127.0.0.1:${ports[name]}", http = (), service = "${name}")`
  );
  return `using Workerd = import "/workerd/workerd.capnp";
const config :Workerd.Config = (
  services = [${services.join(", ")}],
  sockets = [${sockets.join(", ")}],
);
`;
}

before(async () => {
  await bundle();
  const ports = {};
  for (const name of WORKERS) {
    ports[name] = await freePort();
    origins[name] = `http://127.0.0.1:${ports[name]}`;
  }
  ({ child: workerd } = await serveWorkerd(dir, config(ports), [origins.worker]));
});

after(async () => {
  await stopChild(workerd);
  rmSync(dir, { recursive: true, force: true });
});

/** What the Worker answers at `path` (on `at`, the main Worker's origin by default), parsed. */
async function get(path, at = origins.worker) {
  const response = await fetch(`${at}${path}`);
  const body = await response.json();
  assert.equal(response.status, 200, body.error);
  return body;
}

/** What every Worker of worker.mjs answers once given the kernel, whichever its entry. */
function assertGiven({ notModule, otherModule, given }) {
  assert.match(
    notModule,
    /^TypeError: setWasmModule expects a WebAssembly\.Module .*Uint8Array/,
  );
  assert.match(
    otherModule,
    /^TypeError: setWasmModule expects this library's kernel .*lacks the kernel's exports/,
  );
  assert.deepEqual(given.auto, expected.wasm); // backend "wasm", and Deno's bits
  assert.deepEqual(given.wasm, expected.wasm);
  assert.deepEqual(given.radam, { backend: "wasm", same: true });
  assert.deepEqual(given.radam8bit, { backend: "wasm", same: true });
  assert.equal(given.loaded, "wasm");
  // Threads need Workers (and a compile at run time), which a Worker has not.
  assert.match(
    given.threads,
    /^TypeError: The wasm backend \(option threads: 2\) needs WebAssembly.*disallowed by embedder/,
  );
  assert.match(
    given.threads,
    /setWasmModule runs single-threaded states only.*use threads: 1/,
  );
}

test("workerd: bundled with wrangler's conditions, a Worker trains on wasm with no setWasmModule, bit for bit; setWasmModule still takes the kernel and refuses another module", async () => {
  const body = await get("/case");
  const { without } = body;
  // workerd's own words for a compile at run time: the package's workerd entry compiles nothing.
  assert.match(without.compile, /^CompileError: .*Wasm code generation disallowed by embedder/);
  assert.deepEqual(without.auto, expected.wasm); // backend "wasm", and Deno's bits
  assert.deepEqual(without.wasm, expected.wasm);
  assert.deepEqual(without.radam, { backend: "wasm", same: true });
  assert.deepEqual(without.radam8bit, { backend: "wasm", same: true });
  assertGiven(body);
});

test("workerd: bundled without the workerd condition, the runtime refuses to compile and the library trains on js; with the package's radam.wasm given, on wasm, bit for bit", async () => {
  const body = await get("/case", origins.plain);
  const { without } = body;
  assert.match(without.compile, /^CompileError: .*Wasm code generation disallowed by embedder/);
  assert.deepEqual(without.auto, expected.js); // backend "js", and Deno's bits
  assert.match(without.wasm, /^TypeError: The wasm backend needs WebAssembly, which cannot be/);
  assert.match(without.wasm, /disallowed by embedder.*use backend "js" or "auto"/);
  assertGiven(body);
});

test("workerd: the package's workerd entries leave out the kernel's base64 (the bundles' sizes)", () => {
  // The kernel's bytes are about 38 KB, 51 KB as base64: the workerd bundle has none of them.
  console.log(
    `worker bundle (JavaScript): ${sizes.worker} bytes with wrangler's conditions, ${sizes.plain} without; tfjs Worker: ${sizes.tfjs} and ${sizes.tfjsPlain}`,
  );
  const base64 = readFileSync(fileURLToPath(import.meta.resolve("@optim/radam/radam.wasm")))
    .toString("base64");
  assert.ok(readFileSync(join(dir, "plain.js"), "utf8").includes(base64.slice(0, 200)));
  assert.ok(!readFileSync(join(dir, "worker.js"), "utf8").includes(base64.slice(0, 200)));
  assert.ok(sizes.plain - sizes.worker > base64.length * 0.9, JSON.stringify(sizes));
});

test("workerd: the npm README's Worker trains on wasm", async () => {
  const response = await fetch(origins.readme);
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

test("workerd: TensorFlow.js trains by model.fit with tfOptimizer(radam()) to the bits of Node: on wasm with no setWasmModule under wrangler's conditions; without them, on js until setWasmModule, then on wasm", async () => {
  tf.env().set("PROD", true);
  const node = (states) => tfjsFitCase(tf, tfl, { radam }, tfOptimizer, states);
  const [want, want8bit] = [await node("32bit"), await node("8bit")];
  // Node compiles the kernel itself: the same training, on wasm, from the same package.
  assert.equal(want.backend, "wasm");
  assert.equal(want.iterations, 8); // 4 epochs of 2 batches
  assert.notDeepEqual(want8bit.weights, want.weights);
  const workerd = await get("/tfjs", origins.tfjs);
  assert.deepEqual(workerd.without, want);
  const plain = await get("/tfjs", origins.tfjsPlain);
  assert.deepEqual(plain.without, { ...want, backend: "js" });
  for (const { given } of [workerd, plain]) {
    assert.deepEqual(given.radam, want);
    assert.deepEqual(given.radam8bit, want8bit);
  }
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
