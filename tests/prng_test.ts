/**
 * The one seeded generator (mulberry32, examples/demo/random.ts) that the tests, the benchmarks'
 * orders and the demo draw from, and its plain-JavaScript twin for Node
 * (tests/node/shared_case.mjs): they draw the same numbers, and the numbers stay those every
 * seeded test, benchmark order and demo run was made with.
 */
import assert from "node:assert/strict";
import { seededRandom } from "../examples/demo/random.ts";
import { seeded } from "../bench/order.ts";
import { prng } from "./util.ts";
import { prng as nodePrng } from "./node/shared_case.mjs";

Deno.test("prng: the TypeScript generator and the Node case's draw the same numbers", () => {
  for (const seed of [0, 1, 7, 42, 0xdeadbeef, 2 ** 32 - 1, -5, 3.7]) {
    const draws = (make: (seed: number) => () => number) => {
      const random = make(seed);
      return Array.from({ length: 1000 }, () => random());
    };
    const ours = draws(seededRandom);
    assert.deepEqual(draws(nodePrng), ours, `seed ${seed}`);
    assert.deepEqual(draws(prng), ours);
    assert.deepEqual(draws(seeded), ours);
    assert.ok(ours.every((x) => x >= 0 && x < 1));
    assert.ok(new Set(ours).size > 990, "no short cycle");
  }
});

Deno.test("prng: mulberry32's numbers are the ones the seeded tests and orders were made with", () => {
  const random = seededRandom(42);
  assert.deepEqual([random(), random(), random()], [
    0.6011037519201636,
    0.44829055899754167,
    0.8524657934904099,
  ]);
  assert.equal(seededRandom(0)(), 0.26642920868471265);
});
