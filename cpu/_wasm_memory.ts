/**
 * The kernel's builds that import their memory, made at load time from the one that defines it,
 * so that the package carries one copy of the kernel's code instead of three. AssemblyScript's
 * `--importMemory` builds (a shared memory for threaded states, a plain one for another module's
 * heap) differ from the plain build only there: where the plain build has a memory section (its
 * own memory, exported as `memory`), they have an import section with one import, `env.memory`,
 * and keep the export. {@linkcode importMemory} rewrites the plain build so; tools/build_wasm.ts
 * checks, at every build and in its test, that what it makes is byte for byte what the compiler
 * makes for each of {@linkcode KERNEL_MEMORIES}. And the mark every build carries
 * ({@linkcode KERNEL_MARK}), by which `setWasmModule` knows the kernel's build. Private to the
 * library.
 *
 * @module
 */

/** How a derived module declares the memory it imports. */
export interface ImportedMemory {
  /** Whether the memory is a shared one (threads); a shared memory needs a maximum. */
  readonly shared: boolean;
  /** Its maximum, in 64 KiB pages; absent: none. */
  readonly maximum?: number;
}

/**
 * The memories of the kernel's derived builds: `shared` (threaded states, one arena up to 4 GiB
 * that every thread's instance steps) and `imported` (a plain memory, TensorFlow.js's wasm heap).
 *
 * @example
 * ```ts
 * import { KERNEL_MEMORIES } from "./_wasm_memory.ts";
 * const { maximum } = KERNEL_MEMORIES.shared;
 * const memory = new WebAssembly.Memory({ initial: 1, maximum, shared: true });
 * console.log(memory.buffer.byteLength); // 65536
 * ```
 */
export const KERNEL_MEMORIES: Readonly<Record<"shared" | "imported", ImportedMemory>> = {
  shared: { shared: true, maximum: 65536 },
  imported: { shared: false },
};

const TYPE_SECTION = 1;
const IMPORT_SECTION = 2;
const MEMORY_SECTION = 5;
const CUSTOM_SECTION = 0;
/** `\0asm`, version 1. */
const HEADER = [0, 97, 115, 109, 1, 0, 0, 0];
const MEMORY_KIND = 2;

/** One section of a module: its id, and where it starts, its body starts and it ends. */
interface Section {
  readonly id: number;
  readonly start: number;
  readonly body: number;
  readonly end: number;
}

function malformed(why: string): TypeError {
  return new TypeError(
    `Expected a WebAssembly module that defines one memory, got one that ${why}`,
  );
}

/** The unsigned LEB128 number at `at` and where it ends. */
function readU32(bytes: Uint8Array, at: number): [number, number] {
  let value = 0;
  for (let shift = 0; shift < 35; shift += 7) {
    if (at >= bytes.length) throw malformed(`ends inside a number at byte ${at}`);
    const byte = bytes[at++];
    value += (byte & 127) * 2 ** shift;
    if (!(byte & 128)) return [value, at];
  }
  throw malformed(`has a number longer than 5 bytes before byte ${at}`);
}

/** `value` in unsigned LEB128, in as few bytes as it takes (as binaryen writes it). */
function u32(value: number): number[] {
  const out: number[] = [];
  do {
    const byte = value % 128;
    value = Math.floor(value / 128);
    out.push(value > 0 ? byte | 128 : byte);
  } while (value > 0);
  return out;
}

/** The sections of a module, in order. */
function sections(bytes: Uint8Array): Section[] {
  if (!HEADER.every((b, i) => bytes[i] === b)) throw malformed("lacks the header of version 1");
  const list: Section[] = [];
  for (let at = HEADER.length; at < bytes.length;) {
    const [size, body] = readU32(bytes, at + 1);
    const end = body + size;
    if (end > bytes.length) throw malformed(`has a section past its end at byte ${at}`);
    list.push({ id: bytes[at], start: at, body, end });
    at = end;
  }
  return list;
}

/** The initial pages of the one memory a memory section defines (with no maximum, not shared). */
function initialPages(bytes: Uint8Array, section: Section): number {
  const [count, flagsAt] = readU32(bytes, section.body);
  if (count !== 1) throw malformed(`defines ${count} memories`);
  if (bytes[flagsAt] !== 0) throw malformed(`declares its memory with flags ${bytes[flagsAt]}`);
  const [initial, end] = readU32(bytes, flagsAt + 1);
  if (end !== section.end) throw malformed("has more in its memory section than one memory");
  return initial;
}

/** An import section holding one import: `env.memory`, of `initial` pages, as `memory` says. */
function importSection(initial: number, memory: ImportedMemory): number[] {
  const { shared, maximum } = memory;
  if (shared && maximum === undefined) throw new RangeError("A shared memory needs a maximum");
  // A name: its length, then its bytes (ASCII here).
  const name = (text: string) => [...u32(text.length), ...Array.from(text, (c) => c.charCodeAt(0))];
  const limits = maximum === undefined ? [0, ...u32(initial)] : [
    shared ? 3 : 1,
    ...u32(initial),
    ...u32(maximum),
  ];
  const body = [...u32(1), ...name("env"), ...name("memory"), MEMORY_KIND, ...limits];
  return [IMPORT_SECTION, ...u32(body.length), ...body];
}

/**
 * `bytes`, a module that defines one memory (no maximum, not shared) and imports nothing,
 * rewritten to import that memory as `env.memory` instead, declared as `memory` says, with the
 * same initial size: its memory section dropped, an import section put after its type section.
 * Everything else, the memory's export included, is kept byte for byte. A TypeError for a
 * module that is not such a one.
 *
 * @example
 * ```ts
 * import { importMemory } from "./_wasm_memory.ts";
 * import assert from "node:assert/strict";
 *
 * // (module (memory (export "memory") 1))
 * const own = new Uint8Array([
 *   0, 97, 115, 109, 1, 0, 0, 0, 5, 3, 1, 0, 1,
 *   7, 10, 1, 6, 109, 101, 109, 111, 114, 121, 2, 0,
 * ]);
 * const module = new WebAssembly.Module(importMemory(own, { shared: false }));
 * assert.deepEqual(WebAssembly.Module.imports(module), [
 *   { module: "env", name: "memory", kind: "memory" },
 * ]);
 * ```
 */
export function importMemory(bytes: Uint8Array, memory: ImportedMemory): Uint8Array<ArrayBuffer> {
  const list = sections(bytes);
  if (list.some((s) => s.id === IMPORT_SECTION)) throw malformed("imports something already");
  const defined = list.filter((s) => s.id === MEMORY_SECTION);
  if (defined.length !== 1) throw malformed(`has ${defined.length} memory sections`);
  const imports = importSection(initialPages(bytes, defined[0]), memory);
  const dropped = defined[0].end - defined[0].start;
  const out = new Uint8Array(bytes.length - dropped + imports.length);
  out.set(HEADER);
  let at = HEADER.length;
  let placed = false;
  for (const section of list) {
    if (!placed && section.id !== CUSTOM_SECTION && section.id !== TYPE_SECTION) {
      out.set(imports, at);
      at += imports.length;
      placed = true;
    }
    if (section.id === MEMORY_SECTION) continue;
    out.set(bytes.subarray(section.start, section.end), at);
    at += section.end - section.start;
  }
  return out;
}

const EXPORT_SECTION = 7;
/** The kinds of exports by their code, as `WebAssembly.Module.exports` names them. */
const EXPORT_KINDS: readonly WebAssembly.ImportExportKind[] = [
  "function",
  "table",
  "memory",
  "global",
];

/**
 * The exports of the module `bytes`, read from its export section without compiling it: their
 * names and kinds, in order, as `WebAssembly.Module.exports` gives them for the module compiled.
 * A TypeError for bytes that are not a module.
 *
 * @example
 * ```ts
 * import { exportsOf } from "./_wasm_memory.ts";
 * import assert from "node:assert/strict";
 *
 * // (module (memory (export "memory") 1))
 * const own = new Uint8Array([
 *   0, 97, 115, 109, 1, 0, 0, 0, 5, 3, 1, 0, 1,
 *   7, 10, 1, 6, 109, 101, 109, 111, 114, 121, 2, 0,
 * ]);
 * assert.deepEqual(exportsOf(own), [{ name: "memory", kind: "memory" }]);
 * assert.deepEqual(exportsOf(own), WebAssembly.Module.exports(new WebAssembly.Module(own)));
 * ```
 */
export function exportsOf(bytes: Uint8Array): WebAssembly.ModuleExportDescriptor[] {
  const out: WebAssembly.ModuleExportDescriptor[] = [];
  for (const section of sections(bytes).filter((s) => s.id === EXPORT_SECTION)) {
    let [count, at] = readU32(bytes, section.body);
    for (; count > 0; count--) {
      const [length, name] = readU32(bytes, at);
      const kind = EXPORT_KINDS[bytes[name + length]];
      if (kind === undefined) throw malformed(`has an export of kind ${bytes[name + length]}`);
      out.push({ name: new TextDecoder().decode(bytes.subarray(name, name + length)), kind });
      at = readU32(bytes, name + length + 1)[1];
    }
  }
  return out;
}

/**
 * The name of the custom section that marks a build of the kernel: the SHA-256 of its
 * {@linkcode sharedSections}, appended by tools/build_wasm.ts to every build, so that the three
 * builds of one kernel carry the same mark and builds of other code another. `setWasmModule`
 * compares a given module's mark with the embedded kernel's (exports alone do not tell builds
 * apart: a kernel of another version may have the same names and read its scalars elsewhere).
 */
export const KERNEL_MARK = "radam.kernel";

/** A name as a module spells it: its length, then its bytes (ASCII here). */
function nameBytes(text: string): number[] {
  return [...u32(text.length), ...Array.from(text, (c) => c.charCodeAt(0))];
}

/**
 * The sections of the module `bytes` that its builds importing their memory share with it, one
 * after the other: all but its custom, import and memory sections (types, functions, globals,
 * exports, code). What {@linkcode KERNEL_MARK} digests.
 *
 * @example
 * ```ts
 * import { importMemory, sharedSections } from "./_wasm_memory.ts";
 * import assert from "node:assert/strict";
 *
 * // (module (memory (export "memory") 1)): its export section alone is shared.
 * const own = new Uint8Array([
 *   0, 97, 115, 109, 1, 0, 0, 0, 5, 3, 1, 0, 1,
 *   7, 10, 1, 6, 109, 101, 109, 111, 114, 121, 2, 0,
 * ]);
 * assert.deepEqual(sharedSections(own), own.subarray(13));
 * assert.deepEqual(sharedSections(importMemory(own, { shared: false })), own.subarray(13));
 * ```
 */
export function sharedSections(bytes: Uint8Array): Uint8Array<ArrayBuffer> {
  const kept = sections(bytes).filter((s) =>
    s.id !== CUSTOM_SECTION && s.id !== IMPORT_SECTION && s.id !== MEMORY_SECTION
  );
  const out = new Uint8Array(kept.reduce((n, s) => n + s.end - s.start, 0));
  let at = 0;
  for (const s of kept) {
    out.set(bytes.subarray(s.start, s.end), at);
    at += s.end - s.start;
  }
  return out;
}

/**
 * `bytes` with a custom section `name` (ASCII) holding `content` appended.
 *
 * @example
 * ```ts
 * import { customSectionOf, withCustomSection } from "./_wasm_memory.ts";
 * import assert from "node:assert/strict";
 *
 * const empty = new Uint8Array([0, 97, 115, 109, 1, 0, 0, 0]);
 * const marked = withCustomSection(empty, "mark", new Uint8Array([1, 2, 3]));
 * const [read] = WebAssembly.Module.customSections(new WebAssembly.Module(marked), "mark");
 * assert.deepEqual(new Uint8Array(read), new Uint8Array([1, 2, 3]));
 * assert.deepEqual(customSectionOf(marked, "mark"), new Uint8Array([1, 2, 3]));
 * ```
 */
export function withCustomSection(
  bytes: Uint8Array,
  name: string,
  content: Uint8Array,
): Uint8Array<ArrayBuffer> {
  sections(bytes); // a module
  const head = nameBytes(name);
  const size = u32(head.length + content.length);
  const out = new Uint8Array(bytes.length + 1 + size.length + head.length + content.length);
  out.set(bytes);
  out.set([CUSTOM_SECTION, ...size, ...head], bytes.length);
  out.set(content, out.length - content.length);
  return out;
}

/**
 * The content of the first custom section `name` (ASCII) of the module `bytes`, read without
 * compiling it (as `WebAssembly.Module.customSections` gives it for the module compiled), or
 * undefined where it has none.
 *
 * @example
 * ```ts
 * import { customSectionOf } from "./_wasm_memory.ts";
 * import assert from "node:assert/strict";
 *
 * assert.equal(customSectionOf(new Uint8Array([0, 97, 115, 109, 1, 0, 0, 0]), "mark"), undefined);
 * ```
 */
export function customSectionOf(bytes: Uint8Array, name: string): Uint8Array | undefined {
  const want = nameBytes(name);
  for (const s of sections(bytes).filter((s) => s.id === CUSTOM_SECTION)) {
    if (s.body + want.length <= s.end && want.every((b, i) => bytes[s.body + i] === b)) {
      return bytes.subarray(s.body + want.length, s.end);
    }
  }
  return undefined;
}
