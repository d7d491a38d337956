import assert from "node:assert/strict";
import { runInNewContext } from "node:vm";
import { dispose, loadState, radam, saveState, step } from "../mod.ts";
import { saying } from "./util.ts";

Deno.test("a Promise or numbers of another type where a Float32Array belongs say what to do", async () => {
  // A value not awaited (tensor.data(), saveState()) says to await it; numbers in an Array or in
  // a typed array of another type say how to convert them.
  const opt = radam();
  const awaitIt = "got Promise (a Promise: await it)";
  const convert = "(convert it: new Float32Array(values))";
  const pending = Promise.resolve(new Float32Array(2));
  await assert.rejects(() => opt.init(pending as never), saying(TypeError, awaitIt));
  await assert.rejects(() => opt.init({ w: pending } as never), saying(TypeError, awaitIt));
  await assert.rejects(
    () => opt.init([1, 2] as never),
    saying(TypeError, `got Array(2) ${convert}`),
  );
  await assert.rejects(
    () => opt.init({ w: new Float64Array(2) } as never),
    saying(TypeError, `got Float64Array ${convert}`),
  );
  await assert.rejects(
    () => opt.init({ w: [1, 2] } as never),
    saying(TypeError, `got Array(2) ${convert}`),
  );
  const state = await opt.init({ w: new Float32Array(2) });
  const cases: [unknown, string][] = [
    [{ w: pending }, awaitIt],
    [pending, awaitIt],
    [{ w: [0.5, 0.5] }, `got Array(2) ${convert}`],
    [{ w: new Int32Array(2) }, `got Int32Array ${convert}`],
  ];
  for (const [grads, text] of cases) {
    assert.throws(() => step(state, grads as never), saying(TypeError, text));
  }
  // Only numbers convert: an array of tensors, an empty one, or BigInts get no such advice.
  for (const value of [[new Float32Array(2)], [], new BigInt64Array(2)]) {
    assert.throws(
      () => step(state, { w: value } as never),
      (e: Error) => e instanceof TypeError && !e.message.includes("convert"),
    );
  }
  assert.equal(state.step, 0);
  const bytes = saveState(state);
  await assert.rejects(
    () => loadState(bytes as never),
    saying(
      TypeError,
      "A checkpoint must be a Uint8Array, got Promise (saveState() returns a Promise: await it)",
    ),
  );
  const numbers = [...await bytes];
  await assert.rejects(
    () => loadState(numbers as never),
    saying(
      TypeError,
      `A checkpoint must be a Uint8Array, got Array(${numbers.length}) (convert it: new Uint8Array(values))`,
    ),
  );
  assert.equal((await loadState(await bytes)).step, 0);
});

Deno.test("typed arrays of another realm (an iframe's, a vm context's) are refused saying so and how to copy them", async () => {
  // Such a Float32Array is not an instance of this realm's class of its name: the refusals read
  // "must be a Float32Array, got Float32Array".
  const other = runInNewContext("({ F: Float32Array, U: Uint8Array, D: Float64Array })");
  const realm = "of another realm (another window's, an iframe's or a vm context's)";
  const opt = radam();
  await assert.rejects(
    () => opt.init({ w: new other.F(2) }),
    saying(
      TypeError,
      `parameter "w" to be a Float32Array or { data: Float32Array, shape }, got a Float32Array ${realm} (convert it: new Float32Array(values))`,
    ),
  );
  const state = await opt.init({ w: new Float32Array(2) });
  assert.throws(
    () => step(state, { w: new other.F(2) }),
    saying(TypeError, `got a Float32Array ${realm} (convert it: new Float32Array(values))`),
  );
  assert.throws(
    () => step(state, { w: new other.D(2) }),
    saying(TypeError, `got a Float64Array ${realm} (convert it: new Float32Array(values))`),
  );
  const bytes = await saveState(state);
  const foreign = new other.U(bytes.length);
  foreign.set(bytes);
  await assert.rejects(
    () => loadState(foreign),
    saying(
      TypeError,
      `A checkpoint must be a Uint8Array, got a Uint8Array ${realm} (copy it into this realm: new Uint8Array(bytes))`,
    ),
  );
  assert.equal((await loadState(new Uint8Array(foreign))).step, 0);
  assert.equal(state.step, 0);
});
Deno.test("a Uint8Array of float32 bytes (a Node Buffer read from a file) where a Float32Array belongs says how to take its bytes, and that way gives the values back", async () => {
  const values = new Float32Array([0.5, -2, 3.25]);
  // At an odd offset of a larger buffer, as Node's pooled Buffers are.
  const pool = new Uint8Array(64);
  pool.set(new Uint8Array(values.buffer), 5);
  const bytes = pool.subarray(5, 5 + 12);
  const hint = "new Float32Array(new Uint8Array(bytes).buffer)";
  const state = await radam().init({ w: new Float32Array(3) });
  try {
    assert.throws(
      () => step(state, { w: bytes } as never),
      saying(
        TypeError,
        `got Uint8Array (convert it: new Float32Array(values); or, where it holds float32 bytes, as a Buffer read with node:fs does, ${hint})`,
      ),
    );
    // The hint, run: the values whose bytes they are.
    assert.deepEqual(new Float32Array(new Uint8Array(bytes).buffer), values);
    // Bytes that are no whole number of float32 get the plain hint.
    assert.throws(
      () => step(state, { w: new Uint8Array(3) } as never),
      saying(TypeError, "got Uint8Array (convert it: new Float32Array(values))"),
    );
  } finally {
    dispose(state);
  }
});
