import assert from "node:assert/strict";
import { compileKernels, GENERATED_PATH, generatedModule } from "./build_wasm.ts";

Deno.test("the committed kernel module is what assembly/ compiles to", async () => {
  const rebuilt = generatedModule(await compileKernels());
  const committed = await Deno.readTextFile(GENERATED_PATH);
  assert.ok(
    rebuilt === committed,
    `${GENERATED_PATH} differs from a fresh build of assembly/: run \`deno task build\``,
  );
});

Deno.test("the kernel module imports nothing and exports the raw kernel", async () => {
  const module = await WebAssembly.compile(await compileKernels());
  assert.deepEqual(WebAssembly.Module.imports(module), []);
  const exports = WebAssembly.Module.exports(module).map((e) => `${e.kind}:${e.name}`).sort();
  assert.deepEqual(exports, [
    "function:centralize",
    "function:heapBase",
    "function:step",
    "function:sumSquares",
    "memory:memory",
  ]);
});
