import assert from "node:assert/strict";
import fc from "fast-check";
import { step } from "../mod.ts";
import { bits, caseArb, caseData, optimizerFor, readAll } from "./cases.ts";

Deno.test("wasm and js give bit-identical params, moments, slow weights and norms at every step", async () => {
  await fc.assert(
    fc.asyncProperty(caseArb(50), async (c) => {
      const { params, grads } = caseData(c);
      let wasm = await optimizerFor(c, "wasm").init(params);
      let js = await optimizerFor(c, "js").init(params);
      assert.equal(wasm.backend, "wasm");
      assert.equal(js.backend, "js");
      for (let t = 1; t <= c.steps; t++) {
        wasm = step(wasm, grads(t));
        js = step(js, grads(t));
        assert.ok(Object.is(wasm.lastGradNorm, js.lastGradNorm), `norm at step ${t}`);
        assert.equal(wasm.skippedSteps, js.skippedSteps);
        assert.equal(wasm.step, js.step);
        const [a, b] = [await readAll(wasm), await readAll(js)];
        for (const name of Object.keys(a)) {
          for (const field of ["p", "m", "v", "s"] as const) {
            if (!a[name][field]) continue;
            assert.deepEqual(
              bits(a[name][field]!),
              bits(b[name][field]!),
              `${field} of ${name} at step ${t}`,
            );
          }
        }
      }
    }),
    { numRuns: 100 },
  );
});
