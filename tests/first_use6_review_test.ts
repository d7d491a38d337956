/**
 * Calls the first-use hints of reads and of a value given where a state goes must leave as they
 * were: a read passed as a callback over an object or a `Map` (given the key and the collection,
 * as lodash's `_.mapValues(states, readParams)` does) reads, as it did; a model's parameters given
 * bare where a state goes (`step(w, g)`, a Float32Array of millions) are refused at once, without
 * reading each element; a list or a `Set` of objects whose getter throws, given for tensors, is
 * refused in the library's words, not with the getter's error.
 */
import assert from "node:assert/strict";
import { adam, lookahead, readMoments, readParams, readSlowWeights, step } from "../mod.ts";
import { saying } from "./util.ts";

Deno.test("a read passed as a callback over an object or a Map, with the key, reads the state", async () => {
  const gen = await lookahead(adam()).init({ w: new Float32Array([1, 2]) });
  const disc = await lookahead(adam()).init({ b: new Float32Array([3]) });
  const states = { gen, disc };
  // As lodash's _.mapValues and _.map over an object pass them: (value, key, object).
  const byKey = <T>(read: (...args: unknown[]) => Promise<T>) =>
    Promise.all(Object.keys(states).map((k) => read(states[k as "gen"], k, states)));
  const [params, moments, slow] = await Promise.all([
    byKey(readParams as never),
    byKey(readMoments as never),
    byKey(readSlowWeights as never),
  ]) as [Record<string, Float32Array>[], Record<string, unknown>[], Record<string, Float32Array>[]];
  assert.deepEqual(params, [{ w: new Float32Array([1, 2]) }, { b: new Float32Array([3]) }]);
  assert.deepEqual(Object.keys(moments[0]), ["exp_avg", "exp_avg_sq"]);
  assert.deepEqual(slow[1], { b: new Float32Array([3]) });
  // Map.prototype.forEach passes (value, key, map).
  const map = new Map<unknown, unknown>([["gen", gen], [7.5, disc]]);
  const reads: Promise<unknown>[] = [];
  map.forEach((...args) =>
    reads.push((readParams as (...a: unknown[]) => Promise<unknown>)(...args))
  );
  assert.deepEqual(await Promise.all(reads), params);
  // A key that holds another state, or none, is the name it looks like: refused as before.
  const says = "readParams takes the state alone, readParams(state), and would drop the others";
  await assert.rejects(
    (readParams as (...a: unknown[]) => Promise<unknown>)(gen, "disc", states),
    saying(TypeError, says),
  );
  await assert.rejects(
    (readParams as (...a: unknown[]) => Promise<unknown>)(gen, "w", { w: gen.params.w }),
    saying(TypeError, says),
  );
  await assert.rejects(
    (readParams as (...a: unknown[]) => Promise<unknown>)(gen, "toString", {}),
    saying(TypeError, says),
  );
  assert.equal(gen.step, 0);
});

Deno.test("a Float32Array given where a state goes is refused without reading its elements", async () => {
  let reads = 0;
  const w = new Proxy(new Float32Array(10_000), {
    get(target, key) {
      if (typeof key === "string" && /^\d+$/.test(key)) reads++;
      return Reflect.get(target, key);
    },
  });
  const says = "Expected an optimizer state made by init() or step(), got Float32Array";
  assert.throws(() => step(w as never, { w: new Float32Array(10_000) }), saying(TypeError, says));
  await assert.rejects(readParams(w as never), saying(TypeError, says));
  assert.equal(reads, 0);
  // A model's parameters given bare, as init takes them: refused at once (it took seconds).
  const big = new Float32Array(10_000_000);
  const start = performance.now();
  assert.throws(() => step(big as never, big), saying(TypeError, says));
  assert.ok(performance.now() - start < 500, `took ${performance.now() - start} ms`);
  // A record of tensors (plain, or without a prototype) still says to make a state of them.
  const record = Object.assign(Object.create(null), { w: new Float32Array(2) });
  assert.throws(() => step(record), saying(TypeError, "a record of tensors, not a state"));
});

Deno.test("a list or a Set of objects whose getter throws, given for tensors, is refused in the library's words", async () => {
  const params = { w: new Float32Array([1, 2]) };
  const state = await adam().init(params);
  let reads = 0;
  const hostile = {
    get then() {
      reads++;
      throw new Error("then read");
    },
    get data() {
      reads++;
      throw new Error("data read");
    },
  };
  assert.throws(
    () => step(state, [hostile] as never),
    saying(
      TypeError,
      "Grads must be a Float32Array or a record of named Float32Arrays, got Array(1)",
    ),
  );
  assert.throws(
    () => step(state, new Set([hostile]) as never),
    saying(TypeError, "Grads must be a Float32Array or a record of named Float32Arrays, got Set"),
  );
  await assert.rejects(
    adam().init([hostile] as never),
    saying(
      TypeError,
      "Params must be a Float32Array or a record of named Float32Arrays, got Array(1)",
    ),
  );
  // A GPU tensor's buffer read where GPUBuffer exists (Deno): the same.
  const buffer = {
    get buffer() {
      reads++;
      throw new Error("buffer read");
    },
  };
  assert.throws(
    () => step(state, [buffer] as never),
    saying(
      TypeError,
      "Grads must be a Float32Array or a record of named Float32Arrays, got Array(1)",
    ),
  );
  assert.ok(reads <= 4, `read ${reads} times`); // once a call at most
  assert.equal(state.step, 0);
  assert.deepEqual(await readParams(state), params);
});
