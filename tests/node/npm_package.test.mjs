// The built npm package under Node's own test runner: same results as Deno, bit for bit.
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { cpSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, relative } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { test } from "node:test";
import { inspect } from "node:util";
import * as lib from "@optim/radam";
import { runCase } from "./shared_case.mjs";

const expected = JSON.parse(
  readFileSync(new URL("./expected.json", import.meta.url), "utf8"),
);

test("the package resolves through its exports, with types beside it", () => {
  const entry = fileURLToPath(import.meta.resolve("@optim/radam"));
  assert.match(entry, /index\.js$/);
  const pkgUrl = import.meta.resolve("@optim/radam/package.json");
  const pkg = JSON.parse(readFileSync(new URL(pkgUrl), "utf8"));
  assert.equal(pkg.type, "module");
  const types = fileURLToPath(new URL(pkg.exports["."].types, pkgUrl));
  assert.ok(existsSync(types), `types at ${types}`);
  for (
    const name of [
      "radam",
      "adam",
      "adamw",
      "step",
      "readParams",
      "readMoments",
    ]
  ) {
    assert.equal(typeof lib[name], "function", name);
  }
});

test("Node resolves each entry to its default build, not the workerd one (which imports radam.wasm?module)", () => {
  const pkgUrl = import.meta.resolve("@optim/radam/package.json");
  const pkg = JSON.parse(readFileSync(new URL(pkgUrl), "utf8"));
  for (const subpath of [".", "./tfjs", "./store"]) {
    const { workerd, import: entry } = pkg.exports[subpath];
    // Conditions apply in order: the workerd entry comes before the others, or none would apply.
    assert.ok(
      Object.keys(pkg.exports[subpath]).indexOf("workerd") === 1,
      subpath,
    );
    assert.match(workerd, /^\.\/workerd\/\w+\.js$/);
    assert.ok(existsSync(new URL(workerd, pkgUrl)), workerd);
    assert.match(
      readFileSync(new URL(workerd, pkgUrl), "utf8"),
      /^import \w+ from "\.\.\/radam\.wasm\?module";$/m,
    );
    const specifier = subpath.replace(/^\./, "@optim/radam");
    assert.equal(import.meta.resolve(specifier), new URL(entry, pkgUrl).href);
  }
});

for (const backend of ["wasm", "js"]) {
  test(`${backend}: init, steps, reads and a checkpoint round trip give Deno's result bit for bit`, async () => {
    const result = await runCase(lib, backend);
    assert.equal(result.backend, backend);
    assert.deepEqual(result, expected[backend]);
  });
}

test("the examples of the declarations (an editor's hover) import the package by its name", () => {
  // They imported "../mod.js", "../tfjs.js": paths of the repository, which a user's file cannot.
  const types = fileURLToPath(
    new URL("types/", import.meta.resolve("@optim/radam")),
  );
  const entries = ["mod.js", "tfjs.js", "store.js"];
  const byPath = [];
  let byName = 0;
  for (const file of readdirSync(types, { recursive: true })) {
    if (!file.endsWith(".d.ts")) continue;
    const text = readFileSync(join(types, file), "utf8");
    for (
      const [line, specifier] of text.matchAll(/^\s*\*.*\bfrom\s+"([^"]+)"/gm)
    ) {
      if (/^@optim\/radam(\/(tfjs|store))?$/.test(specifier)) byName++;
      if (!specifier.startsWith(".")) continue;
      const target = relative(types, join(types, dirname(file), specifier));
      if (entries.includes(target)) byPath.push(`${file}: ${line.trim()}`);
    }
  }
  assert.deepEqual(byPath, []);
  assert.ok(byName >= 30, `only ${byName} examples import the package`);
});

test("a runtime without FinalizationRegistry or WebAssembly (React Native's Hermes) imports every entry and trains on js with Deno's bits", () => {
  // The import failed ("FinalizationRegistry is not defined"), before any backend was chosen:
  // only a threaded state needs it, and such a runtime has no Web Workers either.
  const code = `delete globalThis.FinalizationRegistry;
delete globalThis.WebAssembly;
const lib = await import("@optim/radam");
await import("@optim/radam/store");
const { runCase } = await import("./shared_case.mjs");
console.log(JSON.stringify(await runCase(lib, "auto")));`;
  const output = execFileSync(process.execPath, [
    "--preserve-symlinks",
    "--input-type=module",
    "--eval",
    code,
  ], { cwd: fileURLToPath(new URL(".", import.meta.url)), encoding: "utf8" });
  assert.deepEqual(JSON.parse(output), expected.js);
});

test("@optim/radam/tfjs-core-global resolves to the packaged file, which exports the adapter's tfjs-core names from a global tf, and without one is an Error", () => {
  const url = import.meta.resolve("@optim/radam/tfjs-core-global");
  const pkgUrl = import.meta.resolve("@optim/radam/package.json");
  assert.equal(url, new URL("tfjs-core-global.js", pkgUrl).href);
  // As a page's module: a global tf (tfjs-core here, as tf.min.js holds it), then none.
  const code = `import * as core from "@tensorflow/tfjs-core";
globalThis.tf = core;
const shim = await import("@optim/radam/tfjs-core-global");
const same = Object.keys(shim).every((name) => shim[name] === core[name]);
delete globalThis.tf;
const again = \`\${import.meta.resolve("@optim/radam/tfjs-core-global")}?again\`;
const none = await import(again).catch((e) => e);
console.log(JSON.stringify({ names: Object.keys(shim), same, none: [none.name, none.message] }));`;
  const output = execFileSync(process.execPath, [
    "--preserve-symlinks",
    "--input-type=module",
    "--eval",
    code,
  ], { cwd: fileURLToPath(new URL(".", import.meta.url)), encoding: "utf8" });
  const { names, same, none } = JSON.parse(output);
  assert.ok(
    names.includes("Optimizer") && names.includes("variableGrads"),
    `${names}`,
  );
  assert.ok(same);
  assert.equal(none[0], "Error");
  assert.match(
    none[1],
    /there is no global tf\b.*<script src="[^"]*\/tf\.min\.js">/,
  );
});

test("tfjs-core: JSR's package asks for the npm package's peer range (any tfjs 4), not one version", () => {
  // deno publish writes deno.json's import map into the published imports: it pinned
  // npm:@tensorflow/tfjs-core@4.22.0, so an app on another tfjs 4 got a second tfjs-core beside
  // its own, which the adapter registered its class with: tf.loadLayersModel of a model saved
  // with it failed ("Unknown layer: RadamTfOptimizer"). Deno shares one copy between a range and
  // the app's version within it.
  const pkg = JSON.parse(
    readFileSync(
      new URL(import.meta.resolve("@optim/radam/package.json")),
      "utf8",
    ),
  );
  const deno = JSON.parse(
    readFileSync(new URL("../../deno.json", import.meta.url), "utf8"),
  );
  const name = "@tensorflow/tfjs-core";
  assert.equal(pkg.peerDependencies[name], "^4");
  assert.equal(deno.imports[name], `npm:${name}@${pkg.peerDependencies[name]}`);
});

test("the scoped package publishes as public (npm makes a scoped package private unless told)", () => {
  const pkg = JSON.parse(
    readFileSync(
      new URL(import.meta.resolve("@optim/radam/package.json")),
      "utf8",
    ),
  );
  assert.ok(pkg.name.startsWith("@"));
  assert.equal(pkg.publishConfig?.access, "public");
});

test("the package needs no Deno globals (every file of its code: entries and chunks)", () => {
  const dir = dirname(fileURLToPath(import.meta.resolve("@optim/radam")));
  const files = readdirSync(dir, { recursive: true }).filter((f) => f.endsWith(".js"));
  assert.ok(
    files.some((f) => f.startsWith("chunks")),
    `no chunks among ${files}`,
  );
  for (const file of files) {
    // (Out of its strings: an error's advice may name Deno.readFile, which is no use of it.)
    const code = readFileSync(join(dir, file), "utf8").replace(
      /"(?:[^"\\\n]|\\.)*"/g,
      '""',
    );
    assert.doesNotMatch(code, /\bDeno\./, file);
  }
});

/**
 * The package's files of code that importing `file` loads at once: it and its static imports,
 * transitively (not the workerd entries' radam.wasm).
 */
function loadedAtOnce(dir, file, seen = new Set()) {
  if (seen.has(file)) return seen;
  seen.add(file);
  const code = readFileSync(join(dir, file), "utf8");
  for (
    const [, , spec] of code.matchAll(
      /^(import|export)\b[^;]*?"(\.\.?\/[^"]+\.js)";/gm,
    )
  ) {
    loadedAtOnce(dir, join(dirname(file), spec), seen);
  }
  return seen;
}

test("index.js loads the WebGPU backend (its WGSL) only with import(), when a state goes on the GPU", () => {
  const dir = dirname(fileURLToPath(import.meta.resolve("@optim/radam")));
  const read = (file) => readFileSync(join(dir, file), "utf8");
  const wgsl = /@compute @workgroup_size/;
  const atOnce = [...loadedAtOnce(dir, "index.js")];
  assert.ok(
    atOnce.some((f) => /\bfunction radam\b/.test(read(f))),
    "the graph was read",
  );
  for (const file of atOnce) {
    assert.doesNotMatch(read(file), wgsl, `${file} holds WGSL`);
  }
  const later = atOnce.flatMap((file) =>
    [...read(file).matchAll(/\bimport\("(\.\.?\/[^"]+)"\)/g)].map(([, spec]) =>
      join(dirname(file), spec)
    )
  );
  const gpu = later.flatMap((file) => [...loadedAtOnce(dir, file)]);
  assert.ok(
    gpu.some((file) => wgsl.test(read(file))),
    `no WGSL behind import(): ${later}`,
  );
  // The TensorFlow.js adapter starts its GPU states synchronously: it loads it at once.
  assert.ok(
    [...loadedAtOnce(dir, "tfjs.js")].some((file) => wgsl.test(read(file))),
  );
});

test("the default and workerd entries share one copy of the library: each loads the chunks of the other but one, the kernel's bytes (default) or its hand-off (workerd)", () => {
  // The workerd build had chunks of its own, workerd/chunks/: the library twice in the package.
  const dir = dirname(fileURLToPath(import.meta.resolve("@optim/radam")));
  const read = (file) => readFileSync(join(dir, file), "utf8");
  const files = readdirSync(dir, { recursive: true }).filter((f) => f.endsWith(".js"));
  assert.deepEqual(
    files.filter((f) => /\bfunction radam\b/.test(read(f))).length,
    1,
    `${files}`,
  );
  const base64 = readFileSync(join(dir, "radam.wasm")).toString("base64").slice(
    0,
    200,
  );
  for (const out of ["index", "tfjs", "store"]) {
    const plain = loadedAtOnce(dir, `${out}.js`);
    const worker = loadedAtOnce(dir, join("workerd", `${out}.js`));
    const onlyPlain = [...plain].filter((f) => !worker.has(f) && f !== `${out}.js`);
    const onlyWorker = [...worker].filter((f) => !plain.has(f) && !f.startsWith("workerd"));
    assert.equal(onlyPlain.length, 1, `${out}.js alone loads ${onlyPlain}`);
    assert.ok(
      read(onlyPlain[0]).includes(base64),
      `${onlyPlain[0]} holds no kernel`,
    );
    assert.equal(
      onlyWorker.length,
      1,
      `workerd/${out}.js alone loads ${onlyWorker}`,
    );
    assert.match(read(onlyWorker[0]), /radam\.wasm/);
    for (const file of worker) assert.ok(!read(file).includes(base64), file);
  }
});

test("under Node too: a state's fields cannot be redefined, a read given a tensor's name rejects, a Set of gradients says to name each", async () => {
  const state = await lib.adam({ backend: "js" }).init({
    w: new Float32Array([1, 2]),
  });
  assert.throws(
    () => Object.defineProperty(state, "step", { value: 9 }),
    TypeError,
  );
  assert.equal(state.step, 0);
  await assert.rejects(
    lib.readParams(state, "w"),
    (e) =>
      e instanceof TypeError &&
      /^readParams takes the state alone, readParams\(state\)/.test(
        e.message,
      ) &&
      /const \{ w \} = await readParams\(state\)/.test(e.message),
  );
  assert.throws(
    () => lib.step(state, new Set([new Float32Array(2)])),
    (e) =>
      e instanceof TypeError &&
      /got Set \(a Set: give each gradient under/.test(e.message),
  );
  assert.deepEqual((await lib.readParams(state)).w, new Float32Array([1, 2]));
  assert.equal(lib.step(state, { w: new Float32Array(2) }).step, 1);
});

test("console.log(state) shows its summary under Node too", async () => {
  let state = await lib.adam({ backend: "js" }).init({
    w: new Float32Array(3),
  });
  state = lib.step(state, { w: new Float32Array(3).fill(1) });
  assert.equal(
    inspect(state, { breakLength: Infinity }),
    "OptimizerState { optimizer: 'adam', backend: 'js', step: 1, tensors: 1, parameters: 3, states: '32bit' }",
  );
});

test("a state or optimizer of another copy of the package is refused with an error that says so", async () => {
  // Two copies loaded side by side (two versions in node_modules, a bundle beside the package):
  // each steps only its own states, and it refused the other's, just made by init(), saying only
  // "got StateHandle" (and its settings as "not a copy").
  const dir = mkdtempSync(join(tmpdir(), "radam-second-copy-"));
  try {
    const packageDir = fileURLToPath(
      new URL(".", import.meta.resolve("@optim/radam")),
    );
    for (const file of ["index.js", "chunks"]) {
      cpSync(join(packageDir, file), join(dir, file), { recursive: true });
    }
    const other = await import(pathToFileURL(join(dir, "index.js")).href);
    assert.notEqual(other.step, lib.step);
    const state = await other.radam({ backend: "js" }).init({
      w: new Float32Array(3),
    });
    for (
      const use of [
        () => lib.step(state),
        () => lib.readParams(state),
        () => lib.dispose(state),
      ]
    ) {
      await assert.rejects(
        async () => await use(),
        (e) =>
          e instanceof TypeError &&
          /made by init\(\) or step\(\), got .*another copy of this library/
            .test(e.message) &&
          /saveState/.test(e.message),
      );
    }
    // The copy that made it still steps it, and a checkpoint carries it across.
    const moved = await lib.loadState(await other.saveState(other.step(state)));
    assert.equal(moved.step, 1);
    assert.throws(
      () => lib.lookahead(other.adam()),
      (e) =>
        e instanceof TypeError &&
        /another copy of this library/.test(e.message),
    );
    // The other copy's factory given uncalled is known by its mark (a registered symbol), not
    // by its name, which a function of the app's may share.
    assert.throws(
      () => lib.lookahead(other.radam),
      (e) =>
        e instanceof TypeError &&
        e.message.endsWith("got a function (a factory: call it, radam())"),
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
