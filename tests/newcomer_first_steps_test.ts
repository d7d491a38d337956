/**
 * A newcomer's first two slips with a state, and that each now says what to do: a state stored
 * as JSON (`JSON.stringify(state)` wrote `{}`, silently: a serverless function that kept its
 * state so lost everything), and `init` or `loadState` not awaited (`state.params.w` on the
 * Promise was JavaScript's own "Cannot read properties of undefined", `state.step` undefined).
 */
import assert from "node:assert/strict";
import {
  dispose,
  loadState,
  type OptimizerState,
  radam,
  readMoments,
  readParams,
  readSlowWeights,
  saveState,
  step,
} from "../mod.ts";
import { saying } from "./util.ts";

const NOT_JSON = "An optimizer state is not JSON (JSON.stringify would write it as {}, which " +
  "holds nothing: its tensors live in its backend): keep its checkpoint, const bytes = await " +
  "saveState(state), a Uint8Array, or where text is needed base64 of it (Node's " +
  'Buffer.from(bytes).toString("base64")), and resume with await loadState(bytes); to write an ' +
  "object that holds one, leave the state out first, const { state, ...rest } = result (a " +
  "replacer of JSON.stringify cannot: a state's toJSON runs before it)";

Deno.test("JSON.stringify of a state, or of what holds one, is a TypeError saying how to keep it; the state is as it was", async () => {
  let state: OptimizerState = await radam({ lr: 0.1 }).init({ w: new Float32Array([1, 2]) });
  state = step(state, { w: new Float32Array([1, -1]) });
  const params = await readParams(state);
  const checkpoint = await saveState(state);
  assert.throws(() => JSON.stringify(state), saying(TypeError, NOT_JSON));
  const result = { run: "a", state };
  assert.throws(() => JSON.stringify(result), saying(TypeError, NOT_JSON));
  assert.throws(
    () => JSON.stringify(result, (k, v) => k === "state" ? undefined : v),
    saying(TypeError, NOT_JSON),
  );
  // What it says works: the state left out first.
  const { state: _, ...rest } = result;
  assert.equal(JSON.stringify(rest), '{"run":"a"}');
  // Consumed or disposed, it is no JSON either (not {}).
  const next = step(state, { w: new Float32Array([1, 1]) });
  assert.throws(() => JSON.stringify(state), saying(TypeError, NOT_JSON));
  // Nothing changed: its inspection, its copies' hint and its steps are as before.
  assert.match(Deno.inspect(next), /^OptimizerState \{\n\s+optimizer: "radam",/);
  assert.deepEqual(Object.keys(next), []);
  assert.throws(
    () => step({ ...next } as never),
    saying(TypeError, "got Object (an empty object: structuredClone(state)"),
  );
  assert.equal(step(next, { w: new Float32Array(2) }).step, 3);
  // What it says works, through text: the bytes as base64, decoded, resume the state.
  let text = "";
  for (const b of checkpoint) text += String.fromCharCode(b);
  const stored = JSON.stringify({ run: "a", state: btoa(text) });
  const bytes = Uint8Array.from(atob(JSON.parse(stored).state), (c) => c.charCodeAt(0));
  const resumed = await loadState(bytes);
  assert.equal(resumed.step, 1);
  assert.deepEqual(await readParams(resumed), params);
});

/** A state's property `key` read from a Promise of one, where an `await` was forgotten. */
function readFromPromise(promise: Promise<OptimizerState>, key: string): unknown {
  return (promise as unknown as Record<string, unknown>)[key];
}

Deno.test("init and loadState not awaited: reading the state's properties, or any operation, says to await them", async () => {
  const opt = radam();
  const params = { w: new Float32Array([1, 2]) };
  const pending = opt.init(params);
  const keys = [
    "optimizer",
    "backend",
    "step",
    "names",
    "params",
    "grads",
    "skippedSteps",
    "lastGradNorm",
    "threads",
  ];
  for (const key of keys) {
    assert.throws(
      () => readFromPromise(pending, key),
      saying(
        TypeError,
        `Cannot read ${key} of a Promise: init() returns a Promise of the state; await it, ` +
          "const state = await opt.init(params)",
      ),
    );
  }
  // Each operation given the Promise says so too, with the call to write.
  const says = "got Promise (init() and loadState() return a Promise: await it, const state = " +
    "await opt.init(params), or await loadState(bytes))";
  const p = pending as never;
  assert.throws(() => step(p), saying(TypeError, says));
  assert.throws(() => step(p, { w: new Float32Array(2) }), saying(TypeError, says));
  for (const read of [readParams, readMoments, readSlowWeights, saveState]) {
    await assert.rejects(() => read(p), saying(TypeError, says));
  }
  assert.throws(() => dispose(p), saying(TypeError, says));
  await assert.rejects(() => opt.init(params, { from: p }), saying(TypeError, says));
  // It is a Promise as before: awaited, the state; inspected, a Promise with nothing shown.
  assert.match(Deno.inspect(pending), /^Promise \{\n\s+OptimizerState \{\n[^[]+\}\n\}$/);
  assert.deepEqual(Object.keys(pending), []);
  const state = await pending;
  assert.equal(state.step, 0);
  // loadState's says its own call.
  const loading = loadState(await saveState(state));
  assert.throws(
    () => readFromPromise(loading, "params"),
    saying(
      TypeError,
      "loadState() returns a Promise of the state; await it, " +
        "const state = await loadState(bytes)",
    ),
  );
  assert.deepEqual((await readParams(await loading)).w, new Float32Array([1, 2]));
  // A rejected init's Promise says the same, and still rejects with its own error.
  const refused = opt.init({ w: new Float32Array([NaN]) });
  assert.throws(() => readFromPromise(refused, "step"), saying(TypeError, "await opt.init"));
  await assert.rejects(refused, RangeError);
});
