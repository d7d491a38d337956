/**
 * What a model of many tensors costs, per tensor, told by counts, not times: a state's init,
 * step, save and load (and the reads of its parameters) do work that grows linearly with the
 * number of tensors, and no JSON work for each of them (a model may have hundreds of thousands;
 * each `JSON.stringify` of a name, or `JSON.parse` of a header key, was then seconds).
 *
 * The built-ins the library's per-tensor work goes through are counted while it runs (an array
 * method weighed by the array's length: a scan of all the names for each name counts n² where
 * one lookup each counts n), at n, 2n and 4n tensors; counts that grow linearly grow as much
 * from 2n to 4n as twice from n to 2n, and a quadratic term makes the second far larger.
 */
import assert from "node:assert/strict";
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

/** Counted work by what did it (`Array.includes`, `JSON.parse`, …) during {@linkcode counted}. */
type Work = Map<string, number>;

/** Array methods, weighed by the length of the array each runs on. */
const ARRAY_METHODS = [
  "includes",
  "indexOf",
  "lastIndexOf",
  "find",
  "findIndex",
  "some",
  "every",
  "filter",
  "map",
  "forEach",
  "flatMap",
  "flat",
  "slice",
  "join",
  "concat",
  "sort",
  "reduce",
  "splice",
  "fill",
  "values",
] as const;

/** Replaces `owner[key]` by a function that adds `weight` of each call made while `on()`. */
function spy(
  owner: Record<string, unknown>,
  key: string,
  label: string,
  weight: (self: unknown, result: unknown) => number,
  work: Work,
  on: { now: boolean },
): () => void {
  const original = owner[key] as (...args: unknown[]) => unknown;
  owner[key] = function (this: unknown, ...args: unknown[]) {
    const result = Reflect.apply(original, this, args);
    if (on.now) {
      on.now = false; // (what the weighing calls is not counted)
      work.set(label, (work.get(label) ?? 0) + weight(this, result));
      on.now = true;
    }
    return result;
  };
  return () => owner[key] = original;
}

/** The work `run` does, counted (the built-ins put back after, whatever it throws). */
async function counted(run: () => Promise<void>): Promise<Work> {
  const work: Work = new Map();
  const on = { now: false };
  const length = (self: unknown) => (self as { length?: number })?.length ?? 0;
  const size = (_: unknown, result: unknown) => Array.isArray(result) ? result.length : 1;
  const one = () => 1;
  const restore = [
    ...ARRAY_METHODS.map((k) => spy(Array.prototype as never, k, `Array.${k}`, length, work, on)),
    ...["has", "get", "set", "delete"].map((k) =>
      spy(Map.prototype as never, k, `Map.${k}`, one, work, on)
    ),
    ...["has", "add", "delete"].map((k) =>
      spy(Set.prototype as never, k, `Set.${k}`, one, work, on)
    ),
    ...["keys", "entries", "values", "fromEntries", "assign", "defineProperty"].map((k) =>
      spy(Object as never, k, `Object.${k}`, size, work, on)
    ),
    ...["stringify", "parse"].map((k) => spy(JSON as never, k, `JSON.${k}`, one, work, on)),
  ];
  try {
    on.now = true;
    await run();
  } finally {
    on.now = false;
    restore.forEach((put) => put());
  }
  return work;
}

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
    for (const key of new Set([...a.keys(), ...b.keys(), ...c.keys()])) {
      const [x, y, z] = [a.get(key) ?? 0, b.get(key) ?? 0, c.get(key) ?? 0];
      // Linear: z - y = 2(y - x) (a few calls of slack); n² adds 6n² to the left side alone.
      assert.ok(z - y <= 2 * (y - x) + 8, `${key}: ${x}, ${y}, ${z} at ${n}, ${2 * n}, ${4 * n}`);
    }
  });

  Deno.test(`${what}: init, step, save and load make no JSON per tensor`, async () => {
    const few = await lifeOf(make(), 50), many = await lifeOf(make(), 200);
    for (const key of ["JSON.stringify", "JSON.parse"]) {
      assert.equal(many.get(key) ?? 0, few.get(key) ?? 0, `${key} at 50 and 200 tensors`);
    }
  });
}
