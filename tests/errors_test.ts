import assert from "node:assert/strict";
import { adam, type OptimizerState, radam, readMoments, readParams, step } from "../mod.ts";

Deno.test("invalid options throw RangeError/TypeError naming the option", () => {
  const cases: [() => unknown, ErrorConstructor, RegExp][] = [
    [() => radam({ lr: -1 }), RangeError, /lr must be ≥ 0, got -1/],
    [() => radam({ lr: NaN }), RangeError, /lr must be a finite number, got NaN/],
    [() => radam({ lr: Infinity }), RangeError, /lr must be a finite number/],
    // A wrong type is a TypeError, and every check says what it got the same way.
    [
      () => radam({ lr: "1e-3" as unknown as number }),
      TypeError,
      /Option lr must be a finite number, got a string "1e-3"/,
    ],
    [
      () => radam({ eps: null as unknown as number }),
      TypeError,
      /Option eps must be a finite number, got null/,
    ],
    [
      () => radam({ maximize: "yes" as unknown as boolean }),
      TypeError,
      /Option maximize must be a boolean, got a string "yes"/,
    ],
    [
      () => radam({ threads: "2" as unknown as number }),
      TypeError,
      /Option threads must be an integer from 1 to 256, got a string "2"/,
    ],
    [
      () => radam({ backend: 1 as unknown as "js" }),
      TypeError,
      /Option backend must be one of auto, wasm, js, webgpu, got 1/,
    ],
    [
      () => radam({ betas: "0.9" as unknown as [number, number] }),
      TypeError,
      /Option betas must be an array of two numbers \[β1, β2\], got a string "0.9"/,
    ],
    [
      () => radam({ groups: [{ match: "bias" as unknown as RegExp }] }),
      TypeError,
      /Option groups\[0\].match must be a RegExp or a function of the name, got a string "bias"/,
    ],
    [() => radam(5 as unknown as object), TypeError, /Options of radam must be an object, got 5/],
    [() => radam({ eps: -1e-8 }), RangeError, /eps must be ≥ 0/],
    [() => radam({ betas: [1, 0.999] }), RangeError, /betas\[0\] must be ≥ 0 and < 1, got 1/],
    [() => radam({ betas: [-0.1, 0.999] }), RangeError, /betas\[0\]/],
    [() => radam({ betas: [0.9, 1] }), RangeError, /betas\[1\] must be ≥ 0 and < 1, got 1/],
    [() => radam({ betas: [0.9, NaN] }), RangeError, /betas\[1\] must be a finite number/],
    [() => radam({ betas: [0.9] as unknown as [number, number] }), TypeError, /betas/],
    [() => radam({ weightDecay: -0.1 }), RangeError, /weightDecay must be ≥ 0/],
    [() => radam({ threshold: 3 }), RangeError, /threshold must be ≥ 4/],
    [() => radam({ maximize: 1 as unknown as boolean }), TypeError, /maximize must be a boolean/],
    [() => radam({ backend: "cuda" as "js" }), RangeError, /backend must be one of/],
    [
      () => radam({ states: "4bit" as "8bit" }),
      RangeError,
      /Option states must be one of 32bit, 8bit, got a string "4bit"/,
    ],
    [
      () => radam({ states: 8 as unknown as "8bit" }),
      TypeError,
      /Option states must be one of 32bit, 8bit, got 8/,
    ],
    [() => radam({ lrr: 1 } as unknown as object), TypeError, /Unknown option lrr/],
    [() => adam({ threshold: 5 } as unknown as object), TypeError, /Unknown option threshold/],
    [() => radam("fast" as unknown as object), TypeError, /must be an object/],
  ];
  for (const [make, type, message] of cases) {
    assert.throws(make, (e: Error) => {
      assert.ok(e instanceof type, `${e.constructor.name}: ${e.message}`);
      assert.match(e.message, message);
      return true;
    });
  }
});

Deno.test("init rejects bad params with a clear error", async () => {
  const opt = radam();
  await assert.rejects(() => opt.init({}), RangeError, "at least one tensor");
  await assert.rejects(() => opt.init(null as never), TypeError, "got null");
  await assert.rejects(() => opt.init([1, 2] as never), TypeError, "got Array");
  await assert.rejects(
    () => opt.init({ w: new Float64Array(2) } as never),
    TypeError,
    'parameter "w" to be a Float32Array, got Float64Array',
  );
  await assert.rejects(
    () => opt.init({ w: new Float32Array([1, NaN]) }),
    RangeError,
    'parameter "w" to hold finite numbers, got NaN at index 1',
  );
  await assert.rejects(
    () => opt.init(new Float32Array([Infinity])),
    RangeError,
    "the parameter tensor to hold finite numbers",
  );
  // JSON.parse makes an own "__proto__" key, which a plain record could not hold
  const params = JSON.parse('{"__proto__": 1, "w": 2}');
  params.__proto__ = new Float32Array(2);
  params.w = new Float32Array(2);
  assert.deepEqual(Object.keys(params), ["__proto__", "w"]);
  await assert.rejects(() => opt.init(params), TypeError, 'may not be named "__proto__"');
});

Deno.test("a model too large for 32-bit wasm memory is refused before allocating", async () => {
  // 5 tensors of 64M elements, sharing one buffer: 320M parameters need 5 GiB of arena.
  const big = new Float32Array(64 * 1024 * 1024);
  const params = { a: big, b: big, c: big, d: big, e: big };
  await assert.rejects(
    () => radam({ backend: "wasm" }).init(params),
    (e: Error) => {
      assert.ok(e instanceof RangeError);
      assert.match(e.message, /335544320 parameters/);
      assert.match(e.message, /more than 32-bit WebAssembly memory can address \(4 GiB\)/);
      return true;
    },
  );
});

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
      RangeError,
      "returned -1 at step 2",
    );
    assert.equal(state.step, 1);
    assert.deepEqual(await readParams(state), before);
    state = step(state, { w: new Float32Array([1, 1]) });
    assert.equal(state.step, 2);
  });
}

Deno.test("step rejects things that are not states", () => {
  assert.throws(() => step({} as OptimizerState), TypeError, "Expected an optimizer state");
});
