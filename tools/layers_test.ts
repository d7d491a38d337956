/**
 * The layering of tools/layers.ts holds for the repository: no import runs upward, no folders
 * import each other, and no library file imports itself around a cycle. To see it fail, add an
 * upward import (e.g. `import "../core/state.ts";` to base/arena.ts) and run `deno task test`
 * (or `deno test --allow-read tools/layers_test.ts`).
 */
import assert from "node:assert/strict";
import {
  cycles,
  type Import,
  layerViolations,
  repositoryImports,
  resolve,
  specifiers,
  staticClosure,
  staticValueSpecifiers,
  unitCycles,
  unitOf,
} from "./layers.ts";

const root = new URL("..", import.meta.url).pathname;
const imports = await repositoryImports(root);

Deno.test("layers: every import of the repository points to its own layer or a lower one", () => {
  assert.ok(imports.length > 300, `only ${imports.length} imports read`);
  assert.deepEqual(layerViolations(imports), []);
});

Deno.test("layers: no two folders import each other, directly or around a cycle", () => {
  assert.deepEqual(unitCycles(imports), []);
});

Deno.test("layers: no library file imports itself around a cycle", () => {
  const library = imports.filter(({ from }) => !/^(tools|bench|tests|examples)\//.test(from));
  assert.deepEqual(cycles(library.map(({ from, to }) => [from, to])), []);
});

/**
 * Of gpu/ and core/webgpu_state.ts, what importing mod.ts may load at once: the GPU arena's
 * layout, pure functions of the tensors' lengths (`checkpointInfo` reports the largest buffer a
 * state takes on the GPU), and the GPU tensor type and the params' checks (`init` tells GPU
 * params from host ones, and checks them, at the call; the gradients' checks are the backend's). The WebGPU backend (its pipelines, WGSL, devices) is
 * loaded by `init` and `loadState` with `import()` when a state goes on the GPU, so that CPU
 * apps (and their bundles) do without it.
 */
const LIGHT_GPU = ["gpu/_gpu_params.ts", "gpu/arena_layout.ts", "gpu/gpu_tensors.ts"];

Deno.test("layers: mod.ts loads the WebGPU backend only through import(), when a state goes on the GPU", async () => {
  const closure = await staticClosure(root, "mod.ts");
  assert.ok(closure.includes("core/optimizer.ts") && closure.includes("cpu/wasm_backend.ts"));
  const gpu = closure.filter((f) => f.startsWith("gpu/") || f === "core/webgpu_state.ts");
  assert.deepEqual(gpu, LIGHT_GPU, "a static import of the WebGPU backend from mod.ts's graph");
  // Still reachable, through import(): init's and loadState's.
  for (const from of ["core/optimizer.ts", "core/operations.ts"]) {
    assert.ok(imports.some((i) => i.from === from && i.to === "core/webgpu_state.ts"), from);
  }
  // The TensorFlow.js adapter starts GPU states synchronously: it imports it at once.
  assert.ok((await staticClosure(root, "tfjs.ts")).includes("core/webgpu_state.ts"));
});

Deno.test("layers (the check itself): a static closure follows value imports only", () => {
  const text = `
    import { a } from "./a.ts";
    import type { B } from "../base/b.ts";
    import { type C } from "./c.ts";
    import "./d.ts";
    export * from "./e.ts";
    export type { F } from "./f.ts";
    export { g } from "./g.ts";
    const h = await import("./h.ts");
    import fc from "fast-check";
  `;
  assert.deepEqual(staticValueSpecifiers(text), ["./a.ts", "./c.ts", "./d.ts", "./e.ts", "./g.ts"]);
});

Deno.test("layers (the check itself): an upward import is reported", () => {
  const upward: Import[] = [
    { from: "base/arena.ts", to: "core/state.ts" },
    { from: "rules/adam.ts", to: "cpu/js_backend.ts" },
    { from: "core/state.ts", to: "mod.ts" },
    { from: "gpu/pipelines.ts", to: "core/origins.ts" },
    { from: "assembly/index.ts", to: "base/arena.ts" },
    { from: "core/state.ts", to: "elsewhere/x.ts" },
  ];
  const found = layerViolations(upward);
  assert.equal(found.length, upward.length, found.join("\n"));
  assert.match(found[0], /base\/arena\.ts \(layer 0, base\/\) imports core\/state\.ts \(layer 3/);
  assert.match(found[5], /elsewhere\/x\.ts is in no layer/);
  // Downward and sideways imports are fine.
  const fine: Import[] = [
    { from: "core/state.ts", to: "base/arena.ts" },
    { from: "tests/x_test.ts", to: "mod.ts" },
    { from: "cpu/js_backend.ts", to: "rules/lookahead.ts" },
    { from: "core/state.ts", to: "core/origins.ts" },
    { from: "assembly/index.ts", to: "assembly/adam" },
  ];
  assert.deepEqual(layerViolations(fine), []);
});

Deno.test("layers (the check itself): folders importing each other are a cycle", () => {
  const found = unitCycles([
    { from: "cpu/a.ts", to: "gpu/b.ts" },
    { from: "gpu/c.ts", to: "cpu/d.ts" },
    { from: "core/e.ts", to: "cpu/a.ts" },
  ]);
  assert.deepEqual(found, [["cpu/", "gpu/"]]);
  assert.deepEqual(cycles([["a", "b"], ["b", "c"], ["c", "a"], ["c", "d"]]), [["a", "b", "c"]]);
  assert.deepEqual(cycles([["a", "b"], ["b", "c"]]), []);
});

Deno.test("layers (the check itself): imports are read as TypeScript reads them", () => {
  const text = `
    import { a } from "./a.ts";
    import type { B } from "../base/b.ts";
    export * from "./c.ts";
    export { d } from "./d.ts";
    const e = await import("./e.ts");
    import assert from "node:assert/strict";
    import fc from "fast-check";
    /** import { f } from "./f.ts" (a doc example, not an import) */
    // import "./g.ts";
    const h = "import './h.ts'";
  `;
  assert.deepEqual(specifiers(text), ["./a.ts", "../base/b.ts", "./c.ts", "./d.ts", "./e.ts"]);
  assert.equal(resolve("core/state.ts", "../base/arena.ts"), "base/arena.ts");
  assert.equal(resolve("mod.ts", "./core/registry.ts"), "core/registry.ts");
  assert.equal(resolve("mod.ts", "../outside.ts"), null);
  assert.equal(unitOf("tfjs.ts"), "tfjs.ts");
  assert.equal(unitOf("tests/gpu/x_test.ts"), "tests/");
});
