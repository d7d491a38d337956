/**
 * What a new user hits first with the core calls that went unsaid: a state whose reported fields
 * `Object.defineProperty` redefined (its step count then read whatever was defined); a tensor's
 * or a moment's name given to `readParams` or `readMoments` (dropped, silently: every tensor was
 * read); a `Set` of gradients given to `step`, and a `Set` or a list of `{ data, shape }` tensors
 * given to `init`, refused without saying that each tensor goes under its name.
 */
import assert from "node:assert/strict";
import {
  adam,
  loadState,
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

const FIELDS = [
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

Deno.test("a state's fields cannot be redefined, nor properties added; it steps as before", async () => {
  const made = await adam({ backend: "js" }).init({ w: new Float32Array([1, 2]) });
  const stepped = step(made, { w: new Float32Array([1, 1]) });
  const loaded = await loadState(await saveState(stepped), { backend: "js" });
  assert.deepEqual(loaded.params.w, stepped.params.w);
  for (const state of [stepped, loaded]) {
    const params = state.params;
    for (const key of FIELDS) {
      assert.throws(
        () => Object.defineProperty(state, key, { value: 99 }),
        TypeError,
        `${key} was redefined`,
      );
      assert.equal(Object.getOwnPropertyDescriptor(state, key), undefined, key);
    }
    assert.throws(() => ((state as unknown as Record<string, unknown>).epoch = 3), TypeError);
    assert.equal(Object.isExtensible(state), false);
    assert.equal(state.step, 1);
    assert.equal(state.optimizer, "adam");
    assert.equal(state.params, params);
    const next = step(state, { w: new Float32Array([1, 1]) });
    assert.equal(next.step, 2);
    assert.equal(Object.isExtensible(next), false);
  }
});

Deno.test("readParams, readMoments and readSlowWeights given a second argument reject with a TypeError saying what they take", async () => {
  const state = await lookahead(adam()).init({
    w: new Float32Array([1, 2]),
    b: new Float32Array(1),
  });
  // deno-lint-ignore no-explicit-any
  const read = (f: (...args: any[]) => Promise<unknown>, ...args: unknown[]) => f(state, ...args);
  for (const args of [["w"], ["w", "b"], [["w"]], [{ names: ["w"] }], [-1], [0.5], [null]]) {
    await assert.rejects(
      read(readParams, ...args),
      saying(TypeError, "readParams takes the state alone, readParams(state), and would drop"),
    );
  }
  await assert.rejects(
    read(readParams, "w", "b"),
    saying(
      TypeError,
      'got a second argument, a string "w": it returns a Promise of copies of ' +
        "every tensor, by name; take the ones you want from that, const { w } = await " +
        "readParams(state)",
    ),
  );
  await assert.rejects(
    read(readMoments, "exp_avg"),
    saying(TypeError, "readMoments takes the state alone, readMoments(state)"),
  );
  await assert.rejects(
    read(readMoments, "exp_avg"),
    saying(TypeError, "const { exp_avg } = await readMoments(state); exp_avg.w"),
  );
  await assert.rejects(
    read(readSlowWeights, "w"),
    saying(TypeError, "readSlowWeights takes the state alone, readSlowWeights(state)"),
  );
  // The state is as it was, and the calls a callback makes (an index, the array) still read.
  assert.equal(state.step, 0);
  const [params] = await Promise.all([state].map(readParams));
  assert.deepEqual(params, { w: new Float32Array([1, 2]), b: new Float32Array(1) });
  const [moments] = await Promise.all([state].map(readMoments));
  assert.deepEqual(Object.keys(moments), ["exp_avg", "exp_avg_sq"]);
  const [slow] = await Promise.all([state].map(readSlowWeights));
  assert.deepEqual(slow.w, new Float32Array([1, 2]));
  assert.deepEqual(
    await (readParams as (...args: unknown[]) => Promise<unknown>)(state, undefined),
    params,
  );
  assert.equal(step(state, { w: new Float32Array(2), b: new Float32Array(1) }).step, 1);
});

Deno.test("a Set of gradients given to step says to name each; the state is as it was", async () => {
  const state = await sgd({ lr: 0.5 }).init({
    "fc.weight": new Float32Array(2),
    "fc.bias": new Float32Array(1),
  });
  assert.throws(
    () => step(state, new Set([new Float32Array(2), new Float32Array(1)]) as never),
    saying(
      TypeError,
      'got Set (a Set: give each gradient under its tensor\'s name, { "fc.weight": …, ' +
        '"fc.bias": … })',
    ),
  );
  const bare = await sgd().init(new Float32Array(2));
  assert.throws(
    () => step(bare, new Set([new Float32Array(2)]) as never),
    saying(
      TypeError,
      "this state holds one tensor, given bare to init: pass its gradient bare, not in a Set",
    ),
  );
  assert.equal(state.step, 0);
  assert.equal(bare.step, 0);
  assert.equal(
    step(state, { "fc.weight": new Float32Array(2), "fc.bias": new Float32Array(1) }).step,
    1,
  );
});

Deno.test("a Set of tensors, or a list of { data, shape }, given to init says to name each", async () => {
  const hint = "as PyTorch's model.parameters(): name each, as its named_parameters() does";
  const w = new Float32Array(4);
  for (
    const [params, what] of [
      [new Set([w, new Float32Array(2)]), "got Set (a Set, "],
      [[{ data: w, shape: [2, 2] }, new Float32Array(2)], "got Array(2) (a list, "],
      [[{ data: w, shape: [2, 2] }], "got Array(1) (a list, "],
    ] as const
  ) {
    await assert.rejects(radam().init(params as never), saying(TypeError, what + hint));
  }
  assert.deepEqual(w, new Float32Array(4));
});

Deno.test("a list of Promises of gradients, or a function of them, given to step says what to pass; the state is as it was", async () => {
  const state = await adam().init({ w: new Float32Array(2), b: new Float32Array(1) });
  const pending = [Promise.resolve(new Float32Array(2)), Promise.resolve(new Float32Array(1))];
  assert.throws(
    () => step(state, pending as never),
    saying(
      TypeError,
      "got Array(2) (a list of Promises: await them, await Promise.all(list), and give each " +
        'gradient under its tensor\'s name, { "w": …, "b": … })',
    ),
  );
  const computeGrads = () => ({ w: new Float32Array(2), b: new Float32Array(1) });
  for (const closure of [computeGrads, async () => await computeGrads()]) {
    assert.throws(
      () => step(state, closure as never),
      saying(
        TypeError,
        "got a function (a function: step takes the gradients themselves, not a function that " +
          "computes them, as PyTorch's optimizer.step(closure) does; call it and pass what it " +
          "returns, step(state, computeGrads())",
      ),
    );
  }
  assert.equal(state.step, 0);
  assert.deepEqual(await readParams(state), { w: new Float32Array(2), b: new Float32Array(1) });
  assert.equal(step(state, computeGrads()).step, 1);
});

Deno.test("tensors given where a state goes (the model's, or state.params) say to make and pass the state", async () => {
  const params = { w: new Float32Array([1, 2]) };
  const state = await adam().init(params);
  const says = "got Object (a record of tensors, not a state: make a state of them, const state " +
    "= await opt.init(params), whose state.params and state.grads they are then, and pass the " +
    "state itself)";
  assert.throws(() => step(params as never, params), saying(TypeError, says));
  await assert.rejects(readParams(state.params as never), saying(TypeError, says));
  await assert.rejects(readMoments(state.grads as never), saying(TypeError, says));
  await assert.rejects(saveState(params as never), saying(TypeError, says));
  // A record whose getter throws is refused as before, without the hint.
  const hostile = {
    get w() {
      throw new Error("read");
    },
  };
  assert.throws(() => step(hostile as never), saying(TypeError, "got Object"));
  assert.equal(state.step, 0);
  assert.deepEqual(params.w, new Float32Array([1, 2]));
});

Deno.test("a number given for the gradients (a loss, a learning rate) says what the gradients are; the state is as it was", async () => {
  const state = await adam().init({ w: new Float32Array(2), b: new Float32Array(1) });
  const bare = await adam().init(new Float32Array(2));
  for (const loss of [0.25, NaN]) {
    assert.throws(
      () => step(state, loss as never),
      saying(
        TypeError,
        `got ${loss} (a number: step takes the gradients, a Float32Array of each tensor's length ` +
          `under its name, { "w": …, "b": … }; not a loss, and a learning rate is the ` +
          "optimizer's option, as in radam({ lr }))",
      ),
    );
    assert.throws(
      () => step(bare, loss as never),
      saying(
        TypeError,
        "(a number: step takes the gradients, a Float32Array of the tensor's length;",
      ),
    );
  }
  assert.equal(state.step, 0);
  assert.equal(bare.step, 0);
  assert.equal(step(bare, new Float32Array(2)).step, 1);
});
