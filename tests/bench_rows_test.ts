import assert from "node:assert/strict";
import REGISTRY from "../core/registry.ts";
import { compactRatioRows, contenderKeys, ruleRatioRows } from "../bench/compare/contenders.ts";
import { bytesPerParameter, factoryOf, ruleRowNames } from "../bench/compare/rule_rows.ts";

Deno.test("bench rows: every element loop of the registry has a row of its own", () => {
  const keys = contenderKeys(2);
  const optimizers: Record<string, { rule: { name: string } }> = REGISTRY.optimizers;
  const rules = new Set(REGISTRY.rules.map((rule) => rule.name));
  const timed = new Set([optimizers.radam.rule.name]);
  for (const name of ruleRowNames()) {
    assert.ok(keys.includes(`${name}-wasm`), name);
    assert.ok(!timed.has(optimizers[name].rule.name), `${name}: a second row of one loop`);
    timed.add(optimizers[name].rule.name);
  }
  assert.deepEqual(timed, rules);
  // one ratio to RAdam per rule row, in the same order
  assert.deepEqual(
    ruleRatioRows().map(([, a, b]) => [a, b]),
    ruleRowNames().map((n) => [`${n}-wasm`, "wasm"]),
  );
  // keys name one row each
  assert.equal(new Set(keys).size, keys.length);
});

Deno.test("bench rows: the 8-bit ratios and their bounds compare rows of the bench", () => {
  const keys = new Set(contenderKeys(2));
  const rows = compactRatioRows(2);
  for (const [title, a, b] of rows) {
    assert.ok(keys.has(a) && keys.has(b), `${title}: ${a} / ${b}`);
  }
  // the bounds of bytes with no codec and with block scales, on one thread and on the threads,
  // for each 8-bit rule, over its 32-bit step
  for (const rule of ["radam", "lion"]) {
    const base = rule === "radam" ? "wasm" : "lion-wasm";
    for (const bound of ["bytes", "scaled"]) {
      for (const threads of ["", "-threads"]) {
        const key = `bound-${rule}-${bound}${threads}`;
        assert.ok(rows.some(([, a, b]) => a === key && b === base + threads), key);
      }
    }
  }
});

Deno.test("bench rows: every optimizer of the registry has a factory in mod.ts", async () => {
  for (const name of Object.keys(REGISTRY.optimizers)) {
    const optimizer = factoryOf(name)({ backend: "js", nonFinite: "propagate" });
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
  // p, g read; p written (SGD without momentum keeps no buffer)
  assert.equal(bytesPerParameter("sgd"), 12);
});
