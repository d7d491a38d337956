// cpu/_wasm_memory.ts: the kernel's builds that import their memory, made from the plain one at
// load time. tools/build_wasm_test.ts checks that they are the compiler's builds byte for byte;
// here, modules of every initial and maximum size, among custom sections, and the modules the
// rewrite refuses.
import assert from "node:assert/strict";
import fc from "fast-check";
import { importMemory, KERNEL_MEMORIES } from "../cpu/_wasm_memory.ts";
import { kernelBytes, kernelOnMemory, sharedKernelBytes } from "../cpu/wasm_backend.ts";

/** `value` in unsigned LEB128 (written here independently of the module under test). */
function leb(value: number): number[] {
  const out = [];
  for (;;) {
    const low = value & 127;
    value = Math.floor(value / 128);
    if (value === 0) return [...out, low];
    out.push(low | 128);
  }
}

const ascii = (text: string) => [...leb(text.length), ...[...text].map((c) => c.charCodeAt(0))];
const section = (id: number, body: number[]) => [id, ...leb(body.length), ...body];
const HEADER = [0, 97, 115, 109, 1, 0, 0, 0];
/** A type section (`() -> i32`), a function section and a code section returning `memory.size`. */
const TYPES = section(1, [1, 0x60, 0, 1, 0x7f]);
const FUNCTIONS = section(3, [1, 0]);
const CODE = section(10, [1, 4, 0, 0x3f, 0, 0x0b]);
/** Exports `size` (the function) and `memory`. */
const EXPORTS = section(7, [2, ...ascii("size"), 0, 0, ...ascii("memory"), 2, 0]);
const custom = (name: string) => section(0, [...ascii(name), 1, 2, 3]);

/** A module that defines one memory of `initial` pages (exported) and a function reading it. */
function ownMemory(initial: number, customs: string[] = []): Uint8Array<ArrayBuffer> {
  return new Uint8Array([
    ...HEADER,
    ...customs.flatMap(custom),
    ...TYPES,
    ...FUNCTIONS,
    ...section(5, [1, 0, ...leb(initial)]),
    ...EXPORTS,
    ...CODE,
    ...customs.flatMap(custom),
  ]);
}

Deno.test("the rewritten module imports env.memory as asked, runs on it and exports it", () => {
  fc.assert(
    fc.property(
      fc.integer({ min: 0, max: 16 }),
      fc.option(fc.integer({ min: 17, max: 65536 }), { nil: undefined }), // ≥ initial + 1
      fc.boolean(),
      fc.array(fc.constantFrom("name", "producers", "x"), { maxLength: 2 }),
      (initial, maximum, shared, customs) => {
        if (shared && maximum === undefined) return;
        const own = ownMemory(initial, customs);
        const before = own.slice();
        const module = new WebAssembly.Module(importMemory(own, { shared, maximum }));
        assert.deepEqual(own, before);
        assert.deepEqual(WebAssembly.Module.imports(module), [
          { module: "env", name: "memory", kind: "memory" },
        ]);
        const memory = new WebAssembly.Memory({ initial: initial + 1, maximum, shared });
        const exports = new WebAssembly.Instance(module, { env: { memory } }).exports;
        assert.equal(exports.memory, memory);
        assert.equal((exports.size as () => number)(), initial + 1);
        // Fewer pages than it declares, or the other kind of memory: refused.
        if (initial > 0) {
          const small = new WebAssembly.Memory({ initial: initial - 1, maximum, shared });
          assert.throws(() => new WebAssembly.Instance(module, { env: { memory: small } }));
        }
        if (maximum !== undefined) {
          const other = new WebAssembly.Memory({ initial, maximum, shared: !shared });
          assert.throws(() => new WebAssembly.Instance(module, { env: { memory: other } }));
        }
      },
    ),
  );
});

Deno.test("a module that is not one defining a single plain memory and importing nothing is refused", () => {
  const own = [...TYPES, ...FUNCTIONS, ...section(5, [1, 0, 1]), ...EXPORTS, ...CODE];
  const cases: [number[], RegExp][] = [
    [[0, 97, 115, 109, 2, 0, 0, 0, ...own], /header of version 1/],
    [[...HEADER, ...TYPES, ...FUNCTIONS, ...CODE], /has 0 memory sections/],
    [[...HEADER, ...section(2, [0]), ...own], /imports something already/],
    [[...HEADER, ...TYPES, ...section(5, [2, 0, 1, 0, 1])], /defines 2 memories/],
    [[...HEADER, ...TYPES, ...section(5, [1, 1, 1, 2])], /declares its memory with flags 1/],
    [[...HEADER, ...TYPES, ...section(5, [1, 0, 1, 0])], /more in its memory section/],
    [[...HEADER, ...TYPES, 5, 9, 1, 0], /section past its end/],
    [[...HEADER, ...TYPES, 5, 0x80, 0x80], /ends inside a number/],
  ];
  for (const [bytes, message] of cases) {
    assert.throws(() => importMemory(new Uint8Array(bytes), { shared: false }), {
      name: "TypeError",
      message,
    });
  }
  assert.throws(
    () => importMemory(ownMemory(1), { shared: true }),
    { name: "RangeError", message: /A shared memory needs a maximum/ },
  );
});

Deno.test("the kernel's derived builds run on the memories they are for", async () => {
  const shared = new WebAssembly.Memory({ initial: 1, maximum: 65536, shared: true });
  const { instance } = await WebAssembly.instantiate(sharedKernelBytes(), {
    env: { memory: shared },
  });
  assert.equal(instance.exports.memory, shared);
  const plain = new WebAssembly.Memory({ initial: 2 });
  assert.equal(kernelOnMemory(plain).memory, plain);
  // Only the memory differs: the plain build and the derived ones have the same exports.
  const names = (bytes: Uint8Array<ArrayBuffer>) =>
    WebAssembly.Module.exports(new WebAssembly.Module(bytes)).map((e) => `${e.kind}:${e.name}`);
  const expected = names(kernelBytes());
  assert.deepEqual(names(sharedKernelBytes()), expected);
  assert.deepEqual(names(importMemory(kernelBytes(), KERNEL_MEMORIES.imported)), expected);
});
