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
