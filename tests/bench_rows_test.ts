import assert from "node:assert/strict";
import { OPTIMIZERS } from "../rules/registry.ts";
import { contenderKeys, ruleRatioRows } from "../bench/compare/contenders.ts";
import { bytesPerParameter, factoryOf, ruleRowNames } from "../bench/compare/rule_rows.ts";

Deno.test("bench rows: every element loop of the registry has a row of its own", () => {
  const keys = contenderKeys(2);
  const kernels = new Set(Object.values(OPTIMIZERS).map(({ rule }) => rule.kernel));
  const timed = new Set([OPTIMIZERS.radam.rule.kernel]);
  for (const name of ruleRowNames()) {
    assert.ok(keys.includes(`${name}-wasm`), name);
    assert.ok(!timed.has(OPTIMIZERS[name].rule.kernel), `${name}: a second row of one loop`);
    timed.add(OPTIMIZERS[name].rule.kernel);
  }
  assert.deepEqual(timed, kernels);
  // one ratio to RAdam per rule row, in the same order
  assert.deepEqual(
    ruleRatioRows().map(([, a, b]) => [a, b]),
    ruleRowNames().map((n) => [`${n}-wasm`, "wasm"]),
  );
  // keys name one row each
  assert.equal(new Set(keys).size, keys.length);
});

Deno.test("bench rows: every optimizer of the registry has a factory in mod.ts", async () => {
  for (const name of Object.keys(OPTIMIZERS)) {
    const optimizer = factoryOf(name)({ backend: "js", nonFinite: "propagate" });
    // (Ranger's is "lookahead(ranger)")
    assert.match(optimizer.name, new RegExp(`\\b${name}\\b`));
    const state = await optimizer.init({ w: new Float32Array(4) });
    assert.equal(state.backend, "js");
  }
  assert.throws(() => factoryOf("step"), TypeError);
});

Deno.test("bench rows: bytes a step moves per parameter, from the rule's moments", () => {
  // p, g, exp_avg, exp_avg_sq read; p, exp_avg, exp_avg_sq written
  assert.equal(bytesPerParameter("radam"), 28);
  assert.equal(bytesPerParameter("adamw"), 28);
  // p, g, exp_avg read; p, exp_avg written
  assert.equal(bytesPerParameter("lion"), 20);
});
