/**
 * setWasmModule takes the kernel compiled elsewhere (a Cloudflare Worker's import of the npm
 * package's radam.wasm) and refuses anything else with a TypeError that says what it got, keeping
 * what it had. Training with a given module in a runtime that refuses to compile is in
 * tests/tfjs/compile_refused_test.ts (played in Deno) and tests/node/workerd.test.mjs (workerd).
 */
import assert from "node:assert/strict";
import { radam, readParams, setWasmModule, step } from "../mod.ts";
import {
  customSectionOf,
  exportsOf,
  importMemory,
  KERNEL_MARK,
  KERNEL_MEMORIES,
  withCustomSection,
} from "../cpu/_wasm_memory.ts";
import { kernelBytes, kernelModuleGiven } from "../cpu/wasm_backend.ts";

/** (module (memory (export "memory") 1)) */
const MEMORY_ONLY = new Uint8Array([
  0x00,
  0x61,
  0x73,
  0x6d,
  0x01,
  0x00,
  0x00,
  0x00,
  0x05,
  0x03,
  0x01,
  0x00,
  0x01,
  0x07,
  0x0a,
  0x01,
  0x06,
  0x6d,
  0x65,
  0x6d,
  0x6f,
  0x72,
  0x79,
  0x02,
  0x00,
]);

function refused(value: unknown, message: RegExp): void {
  assert.throws(() => setWasmModule(value as WebAssembly.Module), (e: unknown) => {
    assert.ok(e instanceof TypeError, String(e));
    assert.match(e.message, /^setWasmModule expects /);
    assert.match(e.message, message);
    return true;
  });
  assert.equal(kernelModuleGiven(), false, "a refused module was kept");
}

Deno.test("setWasmModule refuses what is not the kernel's compiled module, and keeps none", () => {
  const bytes = kernelBytes();
  refused(undefined, /a WebAssembly\.Module .*radam\.wasm.*got undefined$/);
  refused(bytes, /got Uint8Array \(bytes: .*compiles its own kernel/);
  refused(bytes.buffer, /got ArrayBuffer \(bytes/);
  refused(WebAssembly.compile(bytes), /got Promise \(a Promise: await it\)/);
  refused(
    new WebAssembly.Module(MEMORY_ONLY),
    /this library's kernel .*got a WebAssembly\.Module that lacks the kernel's exports heapBase \(function\), step \(function\)/,
  );
  // The build that imports its memory (tfjs's wasm heap) is not the one to give.
  const imported = new WebAssembly.Module(importMemory(bytes, KERNEL_MEMORIES.imported));
  refused(
    imported,
    /got a WebAssembly\.Module that imports env\.memory \(the kernel imports nothing\)/,
  );
});

Deno.test("setWasmModule refuses a kernel of another build with the same exports (another version's radam.wasm), and keeps none", () => {
  const bytes = kernelBytes();
  // The kernel's mark is its last section: the kernel without it is the same code, unmarked.
  const mark = customSectionOf(bytes, KERNEL_MARK)!;
  assert.equal(mark.byteOffset + mark.length, bytes.length);
  const unmarked = bytes.slice(0, mark.byteOffset - KERNEL_MARK.length - 3);
  assert.deepEqual(withCustomSection(unmarked, KERNEL_MARK, mark), bytes);
  const same = WebAssembly.Module.exports(new WebAssembly.Module(bytes));
  const other = mark.slice();
  other[0] ^= 1;
  for (const build of [unmarked, withCustomSection(unmarked, KERNEL_MARK, other)]) {
    const module = new WebAssembly.Module(build);
    assert.deepEqual(WebAssembly.Module.exports(module), same);
    refused(
      module,
      build === unmarked
        ? /got a WebAssembly\.Module that has the kernel's exports but not its build's mark \(a custom section "radam\.kernel"\)/
        : /got a WebAssembly\.Module that is another build of the kernel \(its mark, .* differs from this library's: the radam\.wasm of another version\?\)/,
    );
  }
});

Deno.test("the kernel's exports are read from its bytes as the compiled module gives them", () => {
  const bytes = kernelBytes();
  assert.deepEqual(exportsOf(bytes), WebAssembly.Module.exports(new WebAssembly.Module(bytes)));
  assert.ok(exportsOf(bytes).some((e) => e.name === "step" && e.kind === "function"));
});

Deno.test("setWasmModule takes the kernel's module, and states run on it with the same bits", async () => {
  const params = () => ({ w: Float32Array.from({ length: 300 }, (_, i) => Math.sin(i)) });
  const train = async (backend: "wasm" | "js") => {
    let state = await radam({ lr: 1e-2, backend }).init(params());
    for (let t = 0; t < 5; t++) {
      state = step(state, { w: Float32Array.from({ length: 300 }, (_, i) => Math.cos(i + t)) });
    }
    return { backend: state.backend, w: (await readParams(state)).w };
  };
  setWasmModule(await WebAssembly.compile(kernelBytes()));
  assert.equal(kernelModuleGiven(), true);
  const wasm = await train("wasm"), js = await train("js");
  assert.equal(wasm.backend, "wasm");
  assert.deepEqual(new Uint32Array(wasm.w.buffer), new Uint32Array(js.w.buffer));
});
