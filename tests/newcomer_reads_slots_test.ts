/**
 * Two slips of a newcomer's first training loop, and that each now says what to do: a read not
 * awaited (`const { w } = readParams(state)` gave `undefined`, silently: the Promise has no
 * property `w`), and a gradient or parameter assigned into the state (`state.grads.w = g` was
 * JavaScript's own "Cannot assign to read only property", and in a sloppy-mode script, a
 * CommonJS file's, changed nothing, silently).
 */
import assert from "node:assert/strict";
import {
  adam,
  lookahead,
  type OptimizerState,
  radam,
  readMoments,
  readParams,
  readSlowWeights,
  sgd,
  step,
} from "../mod.ts";
import { saying } from "./util.ts";

/** `key` of `value`, read as a newcomer's destructuring of a Promise reads it. */
function readOf(value: unknown, key: string): unknown {
  return (value as Record<string, unknown>)[key];
}

Deno.test("a read not awaited: each name it will hold says to await it, with the call to write", async () => {
  const params = { w: new Float32Array([1, 2]), "fc1.bias": new Float32Array([3]) };
  const state = await lookahead(adam()).init(params);
  const cases: [Promise<unknown>, string, string][] = [
    [
      readParams(state),
      "w",
      "Cannot read w of a Promise: readParams() returns a Promise of " +
      "the copies; await it, const { w } = await readParams(state)",
    ],
    [
      readParams(state),
      "fc1.bias",
      'Cannot read "fc1.bias" of a Promise: readParams() returns ' +
      'a Promise of the copies; await it, (await readParams(state))["fc1.bias"]',
    ],
    [readMoments(state), "exp_avg", "const { exp_avg } = await readMoments(state)"],
    [readMoments(state), "exp_avg_sq", "const { exp_avg_sq } = await readMoments(state)"],
    [readSlowWeights(state), "w", "const { w } = await readSlowWeights(state)"],
  ];
  for (const [pending, key, says] of cases) {
    assert.throws(() => readOf(pending, key), saying(TypeError, says));
    // Still a Promise as before: nothing of its own shown or listed; awaited, the copies.
    assert.deepEqual(Object.keys(pending), []);
    assert.match(Deno.inspect(pending), /^Promise \{/);
    assert.ok(key in (await pending as Record<string, unknown>));
  }
  const { w } = await readParams(state);
  assert.deepEqual(w, params.w);
  // SGD's moment is its own name; a name the state does not hold is left alone.
  const momentum = await sgd({ momentum: 0.9 }).init(params);
  assert.throws(() => readOf(readMoments(momentum), "momentum_buffer"), saying(TypeError, "await"));
  assert.equal(readOf(readMoments(momentum), "exp_avg"), undefined);
  assert.equal(readOf(readParams(state), "v"), undefined);
});

Deno.test("a read not awaited: tensors named as a Promise's own properties leave those as they are", async () => {
  const params = {
    then: new Float32Array([1]),
    constructor: new Float32Array([2]),
    toString: new Float32Array([3]),
    catch: new Float32Array([4]),
    w: new Float32Array([5]),
  };
  const state = await radam().init(params);
  const pending = readParams(state);
  assert.equal(typeof pending.then, "function");
  assert.equal(pending.constructor, Promise);
  assert.equal(String(pending), "[object Promise]");
  assert.throws(() => readOf(pending, "w"), TypeError);
  const read = await pending;
  assert.deepEqual(read.then, new Float32Array([1]));
  assert.deepEqual(read.toString, new Float32Array([3]));
});

Deno.test("state.grads.w = g, or state.grads = grads, says how a gradient is given; the state is as it was", async () => {
  let state: OptimizerState = await radam({ lr: 0.1 }).init({
    w: new Float32Array([1, 2]),
    "fc1.bias": new Float32Array([3]),
  });
  const slot = state.grads.w;
  const g = new Float32Array([1, -1]);
  const slots = state.grads as Record<string, Float32Array>;
  assert.throws(
    () => (slots.w = g),
    saying(
      TypeError,
      "Cannot assign state.grads.w: the gradient slots are views of the state's memory, which " +
        "step reads, and cannot be replaced; pass the gradient to step, state = step(state, " +
        "{ w: g }), or write it into the slot in place, state.grads.w.set(g), then state = " +
        "step(state) (computed in the slot, state.grads.w[i] = …, a gradient is never copied)",
    ),
  );
  assert.throws(
    () => (slots["fc1.bias"] = new Float32Array(1)),
    saying(
      TypeError,
      'state = step(state, { "fc1.bias": g }), or write it into the slot in place, ' +
        'state.grads["fc1.bias"].set(g)',
    ),
  );
  assert.throws(
    () => ((state as { grads: unknown }).grads = { w: g }),
    saying(
      TypeError,
      "Cannot assign state.grads: the gradient slots are views of the state's " +
        "memory, which step reads, and cannot be replaced; pass the gradients to step, state = " +
        "step(state, grads), or write each into its slot in place, state.grads[name].set(g)",
    ),
  );
  // Nothing changed: the same slot, untouched, and the state steps from the ways it names.
  assert.equal(state.grads.w, slot);
  assert.deepEqual(slot, new Float32Array(2));
  state.grads.w.set(g);
  state = step(state);
  state = step(state, { w: g, "fc1.bias": new Float32Array(1) });
  assert.equal(state.step, 2);
  // The slots are a record as before: keys, spread, inspected as their views.
  assert.deepEqual(Object.keys(state.grads), ["w", "fc1.bias"]);
  assert.equal({ ...state.grads }.w, slot);
  assert.ok(Object.isFrozen(state.grads));
  assert.equal(Deno.inspect(state.grads), Deno.inspect({ ...state.grads }));
  state = step(state, state.grads);
  assert.equal(state.step, 3);
});

Deno.test("a one-tensor state's slot assigned says to pass the bare gradient", async () => {
  const state = await radam().init(new Float32Array(2));
  assert.throws(
    () => ((state.grads as Record<string, Float32Array>)[""] = new Float32Array(2)),
    saying(
      TypeError,
      'state.grads[""]: the gradient slots are views of the state\'s memory, ' +
        "which step reads, and cannot be replaced; pass the gradient to step, state = step(state, " +
        'g), or write it into the slot in place, state.grads[""].set(g)',
    ),
  );
});

Deno.test("state.params.w = values, or state.params = params, says to write into the view; that way trains on from them", async () => {
  const opt = radam({ lr: 0.1 });
  let state = await opt.init({ w: new Float32Array([1, 2]), "fc1.bias": new Float32Array([3]) });
  state = step(state, { w: new Float32Array([1, 1]), "fc1.bias": new Float32Array([1]) });
  const view = state.params.w;
  const before = view.slice();
  const values = new Float32Array([5, 6]);
  const params = state.params as Record<string, Float32Array>;
  assert.throws(
    () => (params.w = values),
    saying(
      TypeError,
      "Cannot assign state.params.w: the parameters are views of the state's memory, which " +
        "each step updates, and cannot be replaced; to go on from other values, write them " +
        "into it in place, state.params.w.set(values) (the next step updates them, the " +
        "moments kept)",
    ),
  );
  assert.throws(
    () => (params["fc1.bias"] = new Float32Array(1)),
    saying(TypeError, 'state.params["fc1.bias"].set(values)'),
  );
  assert.throws(
    () => ((state as { params: unknown }).params = { w: values }),
    saying(
      TypeError,
      "Cannot assign state.params: the parameters are views of the state's " +
        "memory, which each step updates, and cannot be replaced; to go on from other values, " +
        "write each into its view in place, state.params[name].set(values)",
    ),
  );
  assert.equal(state.params.w, view);
  assert.deepEqual(view, before);
  // The way it names: the next step updates the values written, with the moments kept, as a
  // state given them with this one's moments does.
  state.params.w.set(values);
  const twin = await opt.init({ ...state.params }, { from: state });
  const g = { w: new Float32Array([0.5, -0.5]), "fc1.bias": new Float32Array([2]) };
  state = step(state, g);
  assert.deepEqual(await readParams(state), await readParams(step(twin, g)));
  assert.deepEqual(Object.keys(state.params), ["w", "fc1.bias"]);
  assert.equal(Deno.inspect(state.params), Deno.inspect({ ...state.params }));
});

Deno.test("in sloppy mode (a CommonJS script's) an assignment into the state throws too, where it changed nothing", async () => {
  const state = await radam().init({ w: new Float32Array(2) });
  // A Function's body is sloppy-mode code, as a script without "use strict" is.
  const assign = new Function("record", "value", "record.w = value;");
  assert.throws(
    () => assign(state.grads, new Float32Array([1, 1])),
    saying(TypeError, "state.grads.w"),
  );
  assert.throws(
    () => assign(state.params, new Float32Array([1, 1])),
    saying(TypeError, "state.params.w"),
  );
  assert.deepEqual(state.grads.w, new Float32Array(2));
  assert.deepEqual(state.params.w, new Float32Array(2));
});
