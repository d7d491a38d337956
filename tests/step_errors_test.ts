import assert from "node:assert/strict";
import {
  adam,
  type OptimizerState,
  radam,
  readMoments,
  readParams,
  saveState,
  step,
} from "../mod.ts";
import { saying } from "./util.ts";

/** What a TensorFlow.js tensor looks like to the checks (tfjs is not imported by this suite). */
class Tensor {
  readonly shape: number[];
  constructor(readonly values: Float32Array) {
    this.shape = [values.length];
  }
  dataSync(): Float32Array {
    return this.values;
  }
}

/** Two identical states, one to receive bad calls, one never to see them. */
async function twins(backend: "wasm" | "js"): Promise<[OptimizerState, OptimizerState]> {
  const params = { w: new Float32Array([1, 2, 3, 4, 5]), b: new Float32Array([0.5, -0.5]) };
  const opt = radam({ backend, lr: (t) => 0.01 * t, weightDecay: 0.01 });
  let a = await opt.init(params), b = await opt.init(params);
  for (let t = 0; t < 3; t++) {
    const g = { w: new Float32Array(5).fill(t + 1), b: new Float32Array(2).fill(-t) };
    a = step(a, g);
    b = step(b, g);
  }
  return [a, b];
}

for (const backend of ["wasm", "js"] as const) {
  Deno.test(`${backend}: bad gradients throw, name the tensor, and leave the state intact`, async () => {
    const [state, twin] = await twins(backend);
    const good = { w: new Float32Array(5).fill(0.3), b: new Float32Array(2).fill(0.7) };
    // the slot holds something that must survive a failed step
    state.grads.w.fill(9);
    twin.grads.w.fill(9);
    const bad: [unknown, ErrorConstructor, RegExp][] = [
      [{ w: good.w }, TypeError, /Missing gradient for parameter "b"$/],
      // A misspelled name is reported as such, not only as the name it misses.
      [
        { w: good.w, bias: good.b },
        TypeError,
        /Missing gradient for parameter "b"; got an unexpected "bias"/,
      ],
      [{ ...good, c: new Float32Array(1) }, TypeError, /Unexpected gradient "c"/],
      [
        { w: good.w, b: [0.7, 0.7] },
        TypeError,
        /gradient of parameter "b" to be a Float32Array, got Array/,
      ],
      [
        { w: new Float32Array(4), b: good.b },
        RangeError,
        /gradient of parameter "w" to have length 5, got 4/,
      ],
      [{ w: good.w, b: new Float32Array(3) }, RangeError, /parameter "b" to have length 2, got 3/],
      [new Float32Array(5), TypeError, /needs a state with one tensor; this state has 2/],
      [42, TypeError, /Grads must be a Float32Array or a record/],
      [null, TypeError, /got null/],
      [{ w: new Float64Array(5), b: good.b }, TypeError, /got Float64Array/],
      [
        new Map(Object.entries(good)),
        TypeError,
        /record of named Float32Arrays, got Map \(a Map: pass a plain object, Object\.fromEntries\(map\)\)$/,
      ],
      [
        { w: new Tensor(good.w), b: good.b },
        TypeError,
        /parameter "w" to be a Float32Array, got Tensor \(a TensorFlow.js tensor/,
      ],
      [
        { w: { data: good.w, shape: [5] }, b: good.b },
        TypeError,
        /got Object \(a gradient is a bare Float32Array, without its shape: pass its data\)/,
      ],
    ];
    for (const [grads, type, message] of bad) {
      assert.throws(() => step(state, grads as never), (e: Error) => {
        assert.ok(e instanceof type, `${e.constructor.name}: ${e.message}`);
        assert.match(e.message, message);
        return true;
      });
    }
    assert.equal(state.step, 3, "step count unchanged");
    assert.deepEqual(await readParams(state), await readParams(twin));
    assert.deepEqual(await readMoments(state), await readMoments(twin));
    assert.deepEqual(state.grads.w, twin.grads.w, "gradient slots not half-written");
    // the next valid step gives what it would have had the bad calls never happened
    const next = step(state, good), twinNext = step(twin, good);
    assert.deepEqual(await readParams(next), await readParams(twinNext));
    assert.deepEqual(await readMoments(next), await readMoments(twinNext));
  });

  Deno.test(`${backend}: a schedule returning a bad lr throws and changes nothing`, async () => {
    let calls = 0;
    const opt = radam({ backend, lr: () => (++calls === 2 ? -1 : 1e-3) });
    let state = await opt.init({ w: new Float32Array([1, 2]) });
    state = step(state, { w: new Float32Array([1, 1]) });
    const before = await readParams(state);
    assert.throws(
      () => step(state, { w: new Float32Array([5, 5]) }),
      saying(RangeError, "returned -1 at step 2"),
    );
    assert.equal(state.step, 1);
    assert.deepEqual(await readParams(state), before);
    state = step(state, { w: new Float32Array([1, 1]) });
    assert.equal(state.step, 2);
  });

  Deno.test(`${backend}: a missing gradient named as a property of every object (constructor, toString, …) is reported missing`, async () => {
    // It was looked up through the record's prototype: "Expected the gradient of parameter
    // "constructor" to be a Float32Array, got a function".
    for (const name of ["constructor", "toString", "hasOwnProperty", "__defineGetter__"]) {
      const state = await adam({ backend }).init({
        [name]: new Float32Array(2),
        w: new Float32Array(1),
      });
      assert.throws(
        () => step(state, { w: new Float32Array(1) }),
        saying(TypeError, `Missing gradient for parameter "${name}"`),
      );
      assert.throws(
        () => step(state, { w: new Float32Array(1), [name]: undefined } as never),
        saying(TypeError, `gradient of parameter "${name}" to be a Float32Array, got undefined`),
      );
      assert.equal(step(state, { w: new Float32Array(1), [name]: new Float32Array(2) }).step, 1);
    }
  });

  Deno.test(`${backend}: a schedule returning a string is a TypeError saying so`, async () => {
    const opt = radam({ backend, lr: (t) => (t === 2 ? "1e-3" as unknown as number : 1e-3) });
    let state = await opt.init({ w: new Float32Array([1, 2]) });
    state = step(state, { w: new Float32Array([1, 1]) });
    const before = await readParams(state);
    assert.throws(
      () => step(state, { w: new Float32Array([5, 5]) }),
      saying(TypeError, 'The learning-rate schedule returned a string "1e-3" at step 2'),
    );
    assert.equal(state.step, 1);
    assert.deepEqual(await readParams(state), before);
  });

  Deno.test(`${backend}: an async schedule is refused, its rejection handled, the state unchanged`, async () => {
    // Its Promise, refused and never awaited, rejected unhandled: the end of a Deno process.
    const unhandled: unknown[] = [];
    const listen = (e: PromiseRejectionEvent) => {
      unhandled.push(e.reason);
      e.preventDefault();
    };
    globalThis.addEventListener("unhandledrejection", listen);
    try {
      const lr = (t: number) =>
        t === 1 ? 1e-3 : Promise.reject(new Error(`schedule failed at ${t}`)); // (an async schedule's)
      const opt = radam({ backend, lr: lr as (t: number) => number });
      let state = await opt.init({ w: new Float32Array([1, 2]) });
      state = step(state, { w: new Float32Array([1, 1]) });
      const before = await readParams(state);
      for (let k = 0; k < 2; k++) {
        assert.throws(
          () => step(state, { w: new Float32Array([5, 5]) }),
          saying(
            TypeError,
            "The learning-rate schedule returned a Promise at step 2; a schedule must return a finite number ≥ 0 synchronously, not a Promise (it cannot be an async function)",
          ),
        );
      }
      assert.equal(state.step, 1);
      assert.equal(state.skippedSteps, 0);
      assert.deepEqual(await readParams(state), before);
      await new Promise((resolve) => setTimeout(resolve, 0)); // rejections are reported by now
      assert.deepEqual(unhandled, []);
    } finally {
      globalThis.removeEventListener("unhandledrejection", listen);
    }
  });
}
Deno.test("step rejects things that are not states, and says what it got", async () => {
  assert.throws(
    () => step({} as OptimizerState),
    saying(TypeError, "Expected an optimizer state made by init() or step(), got Object"),
  );
  // The most common way to get here: a state used without awaiting init() or loadState().
  const pending = radam().init({ w: new Float32Array(2) });
  const forgot = "got Promise (init() and loadState() return a Promise: await it, " +
    "const state = await opt.init(params), or await loadState(bytes))";
  assert.throws(
    () => step(pending as never, { w: new Float32Array(2) }),
    saying(TypeError, forgot),
  );
  await assert.rejects(() => readParams(pending as never), saying(TypeError, forgot));
  await assert.rejects(() => saveState(pending as never), saying(TypeError, forgot));
  assert.equal((await pending).step, 0);
  // The optimizer given where its state belongs says how to make the state.
  const opt = radam();
  const optimizer = "got Object (an optimizer: make its state with await opt.init(params))";
  assert.throws(() => step(opt as never, { w: new Float32Array(2) }), saying(TypeError, optimizer));
  await assert.rejects(() => readParams(opt as never), saying(TypeError, optimizer));
});
