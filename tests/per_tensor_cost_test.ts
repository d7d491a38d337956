/**
 * What a model of many tensors costs, per tensor, told by counts, not times: a state's init,
 * step, save and load (and the reads of its parameters) do work that grows linearly with the
 * number of tensors, and no JSON work for each of them (a model may have hundreds of thousands;
 * each `JSON.stringify` of a name, or `JSON.parse` of a header key, was then seconds).
 *
 * The built-ins the library's per-tensor work goes through are counted while it runs, at n, 2n
 * and 4n tensors (tests/work_counts.ts).
 */
import assert from "node:assert/strict";
import { assertLinear, counted, type Work } from "./work_counts.ts";
import {
  loadState,
  lookahead,
  type Optimizer,
  radam,
  readParams,
  saveState,
  sgd,
  step,
} from "../mod.ts";

/** Names of one length (a name of more digits is no more work), `n` of them. */
function paramsOf(n: number): Record<string, Float32Array> {
  const params: Record<string, Float32Array> = {};
  for (let i = 0; i < n; i++) {
    params[`layers.${String(i).padStart(7, "0")}.w`] = new Float32Array([i, -i, 1]);
  }
  return params;
}

/** The work of init, a step, a save, a load and a read of the loaded parameters, of n tensors. */
function lifeOf(opt: Optimizer, n: number): Promise<Work> {
  const params = paramsOf(n);
  return counted(async () => {
    const state = step(await opt.init(params));
    const loaded = await loadState(await saveState(state));
    await readParams(loaded);
  });
}

const OPTIMIZERS: [string, () => Optimizer][] = [
  ["radam", () => radam({ lr: 1e-2 })],
  ["lookahead(radam)", () => lookahead(radam({ lr: 1e-2 }))],
  ["sgd with momentum", () => sgd({ lr: 1e-2, momentum: 0.9 })],
];

for (const [what, make] of OPTIMIZERS) {
  Deno.test(`${what}: init, step, save and load do work linear in the tensors`, async () => {
    const n = 100;
    await lifeOf(make(), n); // (what is done once, the first time, is not counted)
    const [a, b, c] = [
      await lifeOf(make(), n),
      await lifeOf(make(), 2 * n),
      await lifeOf(make(), 4 * n),
    ];
    assertLinear(a, b, c, n);
  });

  Deno.test(`${what}: init, step, save and load make no JSON per tensor`, async () => {
    const few = await lifeOf(make(), 50), many = await lifeOf(make(), 200);
    for (const key of ["JSON.stringify", "JSON.parse"]) {
      assert.equal(many.get(key) ?? 0, few.get(key) ?? 0, `${key} at 50 and 200 tensors`);
    }
  });
}
