/**
 * Three slips a newcomer makes with a state, and that each now says what to do: setting what a
 * state reports (`state.step = 5`, to resume at a step count: JavaScript's "has only a getter",
 * and in a sloppy-mode script nothing, silently), a slot assigned under a name the state does not
 * hold (`state.grads.v = g`: JavaScript's "object is not extensible", or nothing, silently), and
 * the Promise of a read or save given where a state goes (`readMoments(readParams(state))`),
 * whose error said that `init()` and `loadState()` return a Promise; an optimizer's name given
 * where the optimizer goes (`lookahead("radam")`); and an optimizer's learning rate set
 * (`opt.lr = 1e-4`: "object is not extensible", or nothing, silently).
 */
import assert from "node:assert/strict";
import {
  lookahead,
  radam,
  readMoments,
  readParams,
  readSlowWeights,
  saveState,
  sgd,
  step,
} from "../mod.ts";
import { saying } from "./util.ts";

// A Function's body is sloppy-mode code, as a script without "use strict" (a CommonJS file's) is.
const sloppySet = new Function("object", "key", "value", "object[key] = value;");

/** Sets `object[key]` in strict mode (this module's) and in sloppy mode: both must throw. */
function bothModes(object: unknown, key: string, value: unknown, says: string): void {
  const strict = () => ((object as Record<string, unknown>)[key] = value);
  assert.throws(strict, saying(TypeError, says));
  assert.throws(() => sloppySet(object, key, value), saying(TypeError, says));
}

Deno.test("state.step = 5, or another thing a state reports, is a TypeError saying what to write; nothing changes", async () => {
  const state = await radam().init({ w: new Float32Array([1, 2]) });
  bothModes(
    state,
    "step",
    5,
    "Cannot set state.step: what a state reports is read-only (the assignment would change " +
      "nothing); step() counts the steps, one each, for the bias corrections and a schedule: " +
      "to go on at a run's step count, load that run's checkpoint, " +
      "state = await loadState(bytes), or make a state of new tensors that takes a state's " +
      "moments and step count, await opt.init(params, { from: state })",
  );
  bothModes(state, "backend", "js", 'await loadState(await saveState(state), { backend: "js" })');
  bothModes(state, "threads", 4, "radam({ threads: 4 })");
  bothModes(state, "names", ["v"], "await opt.init(params, { from: state })");
  for (const key of ["optimizer", "skippedSteps", "lastGradNorm"]) {
    bothModes(
      state,
      key,
      0,
      `Cannot set state.${key}: what a state reports is read-only (the assignment would change nothing)`,
    );
  }
  assert.equal(state.step, 0);
  assert.equal(state.backend === "wasm" || state.backend === "js", true);
  assert.deepEqual(state.names, ["w"]);
  assert.equal(state.optimizer, "radam");
  assert.equal(Object.hasOwn(state, "step"), false);
  // The state is as it was: it steps from step 0, as a twin never touched does.
  const twin = await radam().init({ w: new Float32Array([1, 2]) });
  const g = { w: new Float32Array([0.5, -0.5]) };
  const next = step(state, g);
  assert.equal(next.step, 1);
  assert.deepEqual(await readParams(next), await readParams(step(twin, g)));
});

Deno.test("state.grads.v = g (or params) for a name the state does not hold says which it holds; nothing changes", async () => {
  const params = { w: new Float32Array([1, 2]), "fc1.bias": new Float32Array([3]) };
  const state = await radam().init(params);
  const added = "(a state's tensors, and their lengths, are those given to init: a tensor, or " +
    "rows, added to the model later train in a state of their own";
  for (const record of ["grads", "params"] as const) {
    bothModes(
      state[record],
      "v",
      new Float32Array(2),
      `Cannot add state.${record}.v: the state has no tensor "v", only "w" and "fc1.bias" ${added}`,
    );
    bothModes(state[record], "fc1.weight", new Float32Array(2), `state.${record}["fc1.weight"]`);
    assert.deepEqual(Object.keys(state[record]), ["w", "fc1.bias"]);
    assert.equal(Object.hasOwn(state[record], "v"), false);
  }
  // Many names: a few, and how many more. A bare Float32Array's state: its one slot.
  const many = await sgd().init(
    Object.fromEntries(["a", "b", "c", "d", "e", "f"].map((n) => [n, new Float32Array(1)])),
  );
  bothModes(many.grads, "g", new Float32Array(1), 'only "a", "b", "c", "d" and 2 more (');
  const bare = await radam().init(new Float32Array(2));
  bothModes(
    bare.grads,
    "w",
    new Float32Array(2),
    'only the one given to init as a bare Float32Array, state.grads[""] (',
  );
  // The records are as before: their names read, spread and step as they did.
  assert.deepEqual({ ...state.grads }, { w: state.grads.w, "fc1.bias": state.grads["fc1.bias"] });
  assert.equal("w" in state.grads && !("v" in state.grads), true);
  assert.equal(readOf(state.grads, "v"), undefined);
  state.grads.w.set([1, 1]);
  state.grads["fc1.bias"].set([1]);
  const next = step(state, state.grads);
  const twin = await radam().init(params);
  const g = { w: new Float32Array([1, 1]), "fc1.bias": new Float32Array([1]) };
  assert.deepEqual(await readParams(next), await readParams(step(twin, g)));
});

/** `key` of `value`, as a newcomer's code reads it. */
function readOf(value: unknown, key: string): unknown {
  return (value as Record<string, unknown>)[key];
}

Deno.test("the Promise of a read or save where a state goes names the call that made it, not init", async () => {
  const state = await lookahead(radam()).init({ w: new Float32Array([1, 2]) });
  const expected = "Expected an optimizer state made by init() or step(), got Promise (";
  const cases: [string, () => Promise<unknown>, string][] = [
    ["readParams", () => readParams(state), "copies of the parameters"],
    ["readMoments", () => readMoments(state), "copies of the moments"],
    ["readSlowWeights", () => readSlowWeights(state), "copies of the slow weights"],
    ["saveState", () => saveState(state), "the checkpoint's bytes"],
  ];
  for (const [call, made, what] of cases) {
    const says = `${expected}${call}() returns a Promise of ${what}, not a state: pass the ` +
      `state itself, as ${call}(state) takes it`;
    await assert.rejects(() => readMoments(made() as never), saying(TypeError, says));
    await assert.rejects(() => saveState(made() as never), saying(TypeError, says));
    assert.throws(() => step(made() as never, { w: new Float32Array(2) }), saying(TypeError, says));
  }
  await assert.rejects(
    () => readParams(saveState(state) as never),
    saying(TypeError, "; a state is made of those bytes by await loadState(bytes))"),
  );
  // A rejected read (no slow weights) is marked too; a Promise of one's own keeps init's hint.
  const plain = await radam().init({ w: new Float32Array(2) });
  const refused = readSlowWeights(plain);
  await assert.rejects(() => readParams(refused as never), saying(TypeError, "readSlowWeights()"));
  await assert.rejects(refused, saying(TypeError, "keeps no slow weights"));
  await assert.rejects(
    () => readParams(Promise.resolve(state) as never),
    saying(TypeError, "(init() and loadState() return a Promise: await it"),
  );
  assert.equal(state.step, 0);
});

Deno.test("an optimizer's name given to lookahead says the call to write", () => {
  const expects =
    "lookahead() expects an optimizer made by this library, e.g. radam(), got a string";
  assert.throws(
    () => lookahead("Adam" as never),
    saying(
      TypeError,
      `${expects} "Adam" (an optimizer's name: call its factory, lookahead(adam()))`,
    ),
  );
  assert.throws(
    () => lookahead("ranger" as never),
    saying(TypeError, "(an optimizer's name: ranger() is RAdam in LookAhead already)"),
  );
  assert.throws(() => lookahead("rmsprop" as never), saying(TypeError, "e.g. lookahead(adam()))"));
});

Deno.test("opt.lr = x (or learningRate) on an optimizer says how to change it mid-run, in sloppy mode too", async () => {
  const opt = sgd({ lr: 0.1 });
  for (const key of ["lr", "learningRate"]) {
    bothModes(
      opt,
      key,
      0.5,
      `An optimizer has no ${key} to set (the assignment would change nothing): its options are ` +
        "fixed when it is made, sgd({ lr }). To change it mid-run, give lr as a schedule that " +
        "reads yours, let lr = 1e-3; radam({ lr: () => lr })",
    );
  }
  bothModes(lookahead(radam()), "lr", 0.5, "fixed when it is made, radam({ lr })");
  assert.equal(opt.settings.hyperparameters.lr, 0.1);
  assert.deepEqual(Object.keys(opt), ["name", "settings", "init"]);
  const state = step(await opt.init({ w: new Float32Array([1]) }), { w: new Float32Array([1]) });
  assert.deepEqual(state.params.w, new Float32Array([0.9]));
});

Deno.test("state.grads and state.params are plain records: instanceof Object, and init takes them", async () => {
  const opt = radam({ backend: "js" });
  let state = await opt.init({ w: new Float32Array([1, 2]), "": new Float32Array(1) });
  for (const record of [state.grads, state.params]) {
    assert.ok(record instanceof Object);
    assert.ok(Object.prototype.isPrototypeOf.call(Object.prototype, record));
    assert.equal(Object.prototype.toString.call(record), "[object Object]");
    assert.equal((record as Record<string, unknown>).nope, undefined);
    assert.ok(!("nope" in record) && "toString" in record);
  }
  state.grads.w.set([0.5, 0.5]);
  state = step(state, state.grads);
  const again = await opt.init(state.params, { from: state });
  assert.deepEqual(Object.keys(again.params), ["w", ""]);
  assert.equal(again.step, 1);
});
