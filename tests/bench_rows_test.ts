import assert from "node:assert/strict";
import REGISTRY from "../core/registry.ts";
import { compactRatioRows, contenderKeys, ruleRatioRows } from "../bench/compare/contenders.ts";
import { fillOf, gradient } from "../bench/compare/library.ts";
import { type Contender, measureSize } from "../bench/compare/timing.ts";
import { seeded } from "../bench/order.ts";
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

/** Contenders that count their live runners (none is timed: each reports `seconds` a step). */
function countedContenders(seconds: number[]) {
  const count = { alive: 0, made: 0, disposed: 0, events: [] as string[] };
  const contenders: Contender[] = seconds.map((s, i) => ({
    name: `row ${i}`,
    key: `row-${i}`,
    setup() {
      count.made++;
      count.events.push(`made ${i}`);
      count.alive++;
      let disposed = false;
      return Promise.resolve({
        time: () => {
          assert.ok(!disposed, `row ${i} was timed after it was disposed`);
          return Promise.resolve(s);
        },
        dispose() {
          assert.ok(!disposed, `row ${i} was disposed twice`);
          disposed = true;
          count.alive--;
          count.disposed++;
          count.events.push(`let go ${i}`);
        },
      });
    },
  }));
  return { count, contenders };
}

Deno.test("bench rows: states are each made once, held for every round, and all let go", async () => {
  const timing = { rounds: 3, sampleSeconds: 0.1, random: seeded(2) };
  const { count, contenders } = countedContenders([0.01, 0.02, 2, 0.03]);
  const measures = await measureSize(4096, contenders, timing);
  assert.equal(count.made, contenders.length);
  // the slow row (its set-up's step "took" 2 s) is let go after its one sample, before the next
  // row is made; the others are held together until the last round
  const made = count.events.indexOf("made 2");
  assert.equal(count.events[made + 1], "let go 2");
  assert.equal(count.events.slice(0, 5).filter((e) => e.startsWith("made")).length, 4);
  assert.equal(count.alive, 0);
  assert.equal(count.disposed, contenders.length);
  assert.equal(measures.get("row-2")?.note, "one sample (slow)");
  assert.equal(measures.get("row-1")?.seconds, 0.02);
});

Deno.test("bench rows: a size's rows share one fill of its parameters and gradients", () => {
  const sizes = [5, 3];
  const fill = fillOf(sizes);
  // the same arrays for every row of the size (none holds a copy of its own)
  assert.equal(fillOf([5, 3]), fill);
  sizes.forEach((n, t) => {
    assert.deepEqual(fill.params[t], Float32Array.from({ length: n }, (_, i) => Math.sin(i + t)));
    assert.deepEqual(fill.grads[t], Float32Array.from({ length: n }, (_, i) => gradient(t, i)));
  });
  // another size's rows get their own (and the last size's is let go)
  assert.notEqual(fillOf([4]), fill);
});
