/**
 * The TSDoc examples of the package's public exports (what JSR's pages and an editor's hover
 * show) import only what a user can: the package by its name, and other packages (`node:`,
 * `npm:`, …), never a file of the library by its path: `setWasmModule`'s imported the kernel's
 * private base64 module, `./kernels_wasm.generated.ts`. And no public function's parameter has a
 * default in its signature, which the generated documentation shows as a required parameter
 * (`registerTfOptimizer(tfjs = tf)` showed as `registerTfOptimizer(tfjs: …)`).
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

/** The TypeScript program of the package's entry points, as their documentation reads them. */
function entriesProgram(): ts.Program {
  return ts.createProgram(ENTRIES, {
    target: ts.ScriptTarget.ES2022,
    module: ts.ModuleKind.ESNext,
    moduleResolution: ts.ModuleResolutionKind.Bundler,
    allowImportingTsExtensions: true,
    noEmit: true,
    lib: ["lib.es2022.d.ts", "lib.dom.d.ts"],
    types: [],
  });
}

Deno.test("the examples of the public exports import the package by its name, no file of the library by its path", () => {
  const program = entriesProgram();
  const read = { examples: 0 };
  for (const entry of ENTRIES) assert.deepEqual(relativeImports(program, entry, read), [], entry);
  assert.ok(read.examples >= 50, `only ${read.examples} examples read`);
});

/**
 * `name(param)` for each parameter of `entry`'s exported functions, and of its exported classes'
 * constructors and methods, that has a default in its signature, which the generated
 * documentation (`deno doc`, JSR's pages) shows as a required parameter.
 */
function defaultedParameters(program: ts.Program, entry: string): string[] {
  const checker = program.getTypeChecker();
  const module = checker.getSymbolAtLocation(program.getSourceFile(entry)!);
  assert.ok(module, `no module for ${entry}`);
  const found: string[] = [];
  const check = (name: string, decl: ts.SignatureDeclaration) => {
    for (const p of decl.parameters) {
      if (p.initializer !== undefined) found.push(`${name}(${p.name.getText()})`);
    }
  };
  for (const exported of checker.getExportsOfModule(module)) {
    const symbol = exported.flags & ts.SymbolFlags.Alias
      ? checker.getAliasedSymbol(exported)
      : exported;
    for (const decl of symbol.declarations ?? []) {
      if (ts.isFunctionDeclaration(decl)) check(exported.name, decl);
      if (!ts.isClassDeclaration(decl)) continue;
      for (const member of decl.members) {
        const hidden = (ts.getCombinedModifierFlags(member) & ts.ModifierFlags.Private) !== 0 ||
          (member.name !== undefined && ts.isPrivateIdentifier(member.name));
        if (!hidden && (ts.isMethodDeclaration(member) || ts.isConstructorDeclaration(member))) {
          check(`${exported.name}.${member.name?.getText() ?? "constructor"}`, member);
        }
      }
    }
  }
  return found;
}

Deno.test("no public function's parameter has a default in its signature, which the documentation shows as required", () => {
  // (registerTfOptimizer(tfjs = tf) and emaCallback(optimizer, options = {}) showed as
  // registerTfOptimizer(tfjs: …) and emaCallback(optimizer, options: …): optional parameters
  // are written `?` and defaulted in the body.)
  const program = entriesProgram();
  for (const entry of ENTRIES) assert.deepEqual(defaultedParameters(program, entry), [], entry);
});
