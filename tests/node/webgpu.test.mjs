// The WebGPU path under Node, through the npm `webgpu` package (Dawn). Dawn needs a Vulkan
// driver; where there is none (these CI machines) this test says so loudly and skips, and the
// CPU tests beside it still run.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";
import * as lib from "@optim/radam";
import { runCase } from "./shared_case.mjs";

const expected = JSON.parse(
  readFileSync(new URL("./expected.json", import.meta.url), "utf8"),
);

async function nodeAdapter() {
  try {
    const { create, globals } = await import("webgpu");
    Object.assign(globalThis, globals);
    return await create([]).requestAdapter();
  } catch (e) {
    console.warn(`webgpu package unusable here: ${e.message}`);
    return null;
  }
}

test("webgpu under Node (Dawn) agrees with Deno's wasm result", async (t) => {
  const adapter = await nodeAdapter();
  if (!adapter) {
    const reason =
      "NO WEBGPU ADAPTER UNDER NODE: Dawn found no Vulkan driver on this machine; the WebGPU path was NOT run under Node (the CPU path was)";
    console.warn(`\n*** ${reason} ***\n`);
    t.skip(reason);
    return;
  }
  const device = await adapter.requestDevice();
  const result = await runCase(lib, "webgpu", device);
  assert.equal(result.backend, "webgpu");
  assert.equal(result.step, expected.wasm.step);
  // Not bit-identical (WGSL division and sqrt are not correctly rounded): a close agreement.
  result.sample.forEach((x, i) => {
    const y = expected.wasm.sample[i];
    assert.ok(
      Math.abs(x - y) <= 1e-4 * (1 + Math.abs(y)),
      `sample ${i}: ${x} vs ${y}`,
    );
  });
});
