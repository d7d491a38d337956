/**
 * The layers of the repository and a check of its imports against them. Folders (and the
 * entry files at the root) are layers; an import may point only to its own layer or a lower one,
 * and no two folders may import each other, directly or around a cycle:
 *
 * 0. `base/`: the foundation (arena, words, scalar blocks, option schemas, the rule and backend
 *    interfaces, tensors, safetensors, the common option and settings types)
 * 1. `rules/`: one module per update rule, and LookAhead's part of every rule's loop
 * 2. `cpu/`, `gpu/`: the backends (handed a rule; they name none)
 * 3. `core/`: the public operations (option resolution, the registry and its factories, states,
 *    backend selection, checkpoints, schedules)
 * 4. `mod.ts`: the table of contents
 * 5. `tfjs/`, `tfjs.ts`, `store/`, `store.ts`: the TensorFlow.js adapter and the store
 * 6. `kv/`, `kv.ts`: Deno KV
 * 7. `tools/`, `bench/`, `tests/`, `examples/`, `web/`: anything below
 *
 * `assembly/` (AssemblyScript, compiled apart) is an island: it imports only itself.
 *
 * Imports are read with TypeScript's own scanner (`import` and `export … from`, type-only ones
 * included, and `import()` of a string literal); specifiers that are not relative (`npm:`,
 * `node:`, mapped packages) are outside the repository and not checked.
 *
 * {@linkcode staticClosure} is what importing an entry loads at once (its static value imports,
 * read with TypeScript's parser): tools/layers_test.ts keeps the WebGPU backend out of mod.ts's,
 * which loads it with `import()` when a state goes on the GPU.
 *
 * ```sh
 * deno run --allow-read --allow-env tools/layers.ts   # prints every violation; exit 1 if any
 * ```
 *
 * @module
 */
import ts from "typescript";

/** The layers, lowest first: the folders (ending in `/`) and root files of each. */
export const LAYERS: readonly (readonly string[])[] = [
  ["base/"],
  ["rules/"],
  ["cpu/", "gpu/"],
  ["core/"],
  ["mod.ts"],
  ["tfjs/", "tfjs.ts", "store/", "store.ts"],
  ["kv/", "kv.ts"],
  ["tools/", "bench/", "tests/", "examples/", "web/"],
];

/** A folder that only imports itself. */
const ISLANDS = ["assembly/"];

/** One import: the importing file and the file imported, both relative to the root. */
export interface Import {
  readonly from: string;
  readonly to: string;
}

/** The unit (folder, with its `/`, or root file) of a path, or undefined outside every layer. */
export function unitOf(path: string): string | undefined {
  for (const unit of [...LAYERS.flat(), ...ISLANDS]) {
    if (unit.endsWith("/") ? path.startsWith(unit) : path === unit) return unit;
  }
  return undefined;
}

/** The layer of a unit (the islands: -1), or undefined. */
function layerOf(unit: string): number | undefined {
  if (ISLANDS.includes(unit)) return -1;
  const i = LAYERS.findIndex((units) => units.includes(unit));
  return i < 0 ? undefined : i;
}

/**
 * Imports that break the layering, each described: an import into a higher layer, out of or
 * into an island, or from or to a file outside every layer.
 */
export function layerViolations(imports: readonly Import[]): string[] {
  const out: string[] = [];
  for (const { from, to } of imports) {
    const a = unitOf(from), b = unitOf(to);
    if (a === undefined || b === undefined) {
      out.push(`${from} imports ${to}: ${a === undefined ? from : to} is in no layer`);
      continue;
    }
    const la = layerOf(a)!, lb = layerOf(b)!;
    if ((la < 0 || lb < 0) && a !== b) {
      out.push(`${from} imports ${to}: ${la < 0 ? a : b} imports only itself`);
    } else if (lb > la) {
      out.push(`${from} (layer ${la}, ${a}) imports ${to} (layer ${lb}, ${b}): an upward import`);
    }
  }
  return out;
}

/**
 * The cycles of a graph given as edges: its strongly connected components of more than one
 * node (Tarjan's algorithm), each sorted.
 */
export function cycles(edges: readonly (readonly [string, string])[]): string[][] {
  const next = new Map<string, string[]>();
  for (const [a, b] of edges) {
    if (!next.has(a)) next.set(a, []);
    if (!next.has(b)) next.set(b, []);
    if (a !== b) next.get(a)!.push(b);
  }
  const index = new Map<string, number>(), low = new Map<string, number>();
  const stack: string[] = [], on = new Set<string>(), out: string[][] = [];
  const visit = (v: string) => {
    index.set(v, index.size);
    low.set(v, index.get(v)!);
    stack.push(v);
    on.add(v);
    for (const w of next.get(v)!) {
      if (!index.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v)!, low.get(w)!));
      } else if (on.has(w)) low.set(v, Math.min(low.get(v)!, index.get(w)!));
    }
    if (low.get(v) === index.get(v)) {
      const component: string[] = [];
      let w;
      do {
        w = stack.pop()!;
        on.delete(w);
        component.push(w);
      } while (w !== v);
      if (component.length > 1) out.push(component.sort());
    }
  };
  for (const v of next.keys()) if (!index.has(v)) visit(v);
  return out;
}

/** Cycles between units (folders and root files) of the imports. */
export function unitCycles(imports: readonly Import[]): string[][] {
  return cycles(imports.map(({ from, to }) => [unitOf(from) ?? from, unitOf(to) ?? to]));
}

/** The relative specifiers a source file imports (static, re-exports, literal dynamic ones). */
export function specifiers(text: string): string[] {
  return ts.preProcessFile(text, true, true).importedFiles.map((f) => f.fileName)
    .filter((name) => name.startsWith("./") || name.startsWith("../"));
}

/**
 * The relative specifiers a source file imports statically with values: `import` and
 * `export … from`, but not `import type`, `export type … from` (erased) nor `import()` (loaded
 * when called). An import of type-only names (`import { type A } from`) counts: a bundler may
 * keep it as an import of the module for its side effects.
 */
export function staticValueSpecifiers(text: string): string[] {
  const file = ts.createSourceFile("x.ts", text, ts.ScriptTarget.Latest);
  const out: string[] = [];
  for (const node of file.statements) {
    let specifier: ts.Expression | undefined;
    if (ts.isImportDeclaration(node) && !node.importClause?.isTypeOnly) {
      specifier = node.moduleSpecifier;
    } else if (ts.isExportDeclaration(node) && !node.isTypeOnly) specifier = node.moduleSpecifier;
    if (specifier && ts.isStringLiteral(specifier) && /^\.\.?\//.test(specifier.text)) {
      out.push(specifier.text);
    }
  }
  return out;
}

/**
 * The files that importing `entry` loads at once (paths relative to `root`): its static value
 * imports ({@linkcode staticValueSpecifiers}), transitively, `entry` included, sorted.
 */
export async function staticClosure(root: string, entry: string): Promise<string[]> {
  const seen = new Set<string>();
  const queue = [entry];
  for (let file; (file = queue.pop()) !== undefined;) {
    if (seen.has(file)) continue;
    seen.add(file);
    const text = await Deno.readTextFile(`${root}/${file}`);
    for (const specifier of staticValueSpecifiers(text)) {
      const to = resolve(file, specifier);
      if (to !== null) queue.push(to);
    }
  }
  return [...seen].sort();
}

/** `specifier` imported by `from`, as a path relative to the root (`null` if it leaves it). */
export function resolve(from: string, specifier: string): string | null {
  const parts = from.split("/").slice(0, -1);
  for (const part of specifier.split("/")) {
    if (part === "..") {
      if (parts.length === 0) return null;
      parts.pop();
    } else if (part !== ".") parts.push(part);
  }
  return parts.join("/");
}

/** Folders never read: dependencies and build outputs. */
const SKIPPED = new Set([".git", "node_modules", "npm", "build", "demo-output", ".device", ".gl"]);

/** Every `.ts` file under `root` (paths relative to it), outside dependencies and builds. */
export async function sourceFiles(root: string, dir = ""): Promise<string[]> {
  const out: string[] = [];
  for await (const entry of Deno.readDir(`${root}/${dir || "."}`)) {
    const path = dir ? `${dir}/${entry.name}` : entry.name;
    if (entry.isDirectory && !SKIPPED.has(entry.name)) out.push(...await sourceFiles(root, path));
    else if (entry.isFile && entry.name.endsWith(".ts")) out.push(path);
  }
  return out.sort();
}

/** Every import between the repository's source files under `root`. */
export async function repositoryImports(root: string): Promise<Import[]> {
  const imports: Import[] = [];
  for (const from of await sourceFiles(root)) {
    const text = await Deno.readTextFile(`${root}/${from}`);
    for (const specifier of specifiers(text)) {
      const to = resolve(from, specifier);
      imports.push({ from, to: to ?? specifier });
    }
  }
  return imports;
}

if (import.meta.main) {
  const imports = await repositoryImports(".");
  const problems = [
    ...layerViolations(imports),
    ...unitCycles(imports).map((c) => `a cycle between ${c.join(", ")}`),
  ];
  for (const p of problems) console.error(p);
  console.log(`${imports.length} imports, ${problems.length} problems`);
  if (problems.length > 0) Deno.exit(1);
}
