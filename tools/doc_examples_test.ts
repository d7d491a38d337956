/**
 * The TSDoc examples of the package's public exports (what JSR's pages and an editor's hover
 * show) import only what a user can: the package by its name, and other packages (`node:`,
 * `npm:`, …), never a file of the library by its path: `setWasmModule`'s imported the kernel's
 * private base64 module, `./kernels_wasm.generated.ts`.
 */
import assert from "node:assert/strict";
import ts from "typescript";

/** The package's entry points (deno.json's `exports`). */
const ENTRIES = ["mod.ts", "tfjs.ts", "store.ts", "kv.ts"];

/**
 * `name: specifier` for each import of a relative path in the examples of `entry`'s exports;
 * `read`: counts the examples read.
 */
function relativeImports(program: ts.Program, entry: string, read: { examples: number }): string[] {
  const checker = program.getTypeChecker();
  const file = program.getSourceFile(entry);
  const module = file && checker.getSymbolAtLocation(file);
  assert.ok(module, `no module for ${entry}`);
  const found: string[] = [];
  for (const exported of checker.getExportsOfModule(module)) {
    const symbol = exported.flags & ts.SymbolFlags.Alias
      ? checker.getAliasedSymbol(exported)
      : exported;
    for (const tag of symbol.getJsDocTags(checker).filter((t) => t.name === "example")) {
      const text = ts.displayPartsToString(tag.text);
      read.examples++;
      for (const [, specifier] of text.matchAll(/\b(?:from|import)\s*\(?\s*"([^"]+)"/g)) {
        if (specifier.startsWith(".")) found.push(`${exported.name}: ${specifier}`);
      }
    }
  }
  return found;
}

Deno.test("the examples of the public exports import the package by its name, no file of the library by its path", () => {
  const program = ts.createProgram(ENTRIES, {
    target: ts.ScriptTarget.ES2022,
    module: ts.ModuleKind.ESNext,
    moduleResolution: ts.ModuleResolutionKind.Bundler,
    allowImportingTsExtensions: true,
    noEmit: true,
    lib: ["lib.es2022.d.ts", "lib.dom.d.ts"],
    types: [],
  });
  const read = { examples: 0 };
  for (const entry of ENTRIES) assert.deepEqual(relativeImports(program, entry, read), [], entry);
  assert.ok(read.examples >= 50, `only ${read.examples} examples read`);
});
