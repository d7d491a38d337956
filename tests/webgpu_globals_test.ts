/**
 * Every entry point loads where WebGPU's globals are not defined (Node.js, Bun, a worker of an
 * older browser): a module of the WebGPU path that a bundle puts in a chunk the CPU path shares
 * must read `GPUBufferUsage` and its kin at a call, never as it is loaded. Node's tests of the
 * package find the same, once it is built; this finds it here, at once.
 */
import assert from "node:assert/strict";

const GLOBALS = [
  "GPUBufferUsage",
  "GPUMapMode",
  "GPUShaderStage",
  "GPUTextureUsage",
  "GPUColorWrite",
  "GPUDevice",
  "GPUBuffer",
  "GPUAdapter",
] as const;

Deno.test("every entry point loads where WebGPU's globals (GPUBufferUsage, ...) are not defined", async () => {
  const global = globalThis as Record<string, unknown>;
  const saved = GLOBALS.map((name) => Object.getOwnPropertyDescriptor(global, name));
  for (const name of GLOBALS) delete global[name];
  try {
    assert.equal(typeof global.GPUBufferUsage, "undefined");
    const loaded = await Promise.all([
      import("../mod.ts"),
      import("../tfjs.ts"),
      import("../store.ts"),
      import("../kv.ts"),
      import("../gpu/webgpu_backend.ts"),
    ]);
    assert.equal(typeof loaded[0].radam, "function");
    assert.equal(typeof loaded[1].tfOptimizer, "function");
  } finally {
    GLOBALS.forEach((name, i) => {
      if (saved[i] !== undefined) Object.defineProperty(global, name, saved[i]!);
    });
  }
});
