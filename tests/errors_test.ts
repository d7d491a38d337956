import assert from "node:assert/strict";
import { runInNewContext } from "node:vm";
import { type ArenaLayout, planArena } from "../base/arena.ts";
import { planCompactArena } from "../base/arena_compact.ts";
import { checkWasmCapacity } from "../cpu/wasm_backend.ts";
import {
  adam,
  adamw,
  dispose,
  loadState,
  lookahead,
  type OptimizerState,
  type ParamGroup,
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
    // An array of the wrong length says how long it was (not only "got Array").
    [
      () => radam({ betas: [0.9] as unknown as [number, number] }),
      TypeError,
      /Option betas must be an array of two numbers \[β1, β2\], got Array\(1\)$/,
    ],
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
    // A group's misspelled setting (PyTorch's weight_decay, or lr for lrScale) is not ignored.
    [
      () => adamw({ groups: [{ match: /bias/, weight_decay: 0 } as unknown as ParamGroup] }),
      TypeError,
      /Unknown option weight_decay for groups\[0\]; expected one of match, lrScale, weightDecay/,
    ],
    [
      () => radam({ groups: [{ match: /a/ }, { match: /b/, lr: 1 } as unknown as ParamGroup] }),
      TypeError,
      /Unknown option lr for groups\[1\]/,
    ],
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
  await assert.rejects(() => opt.init({}), saying(RangeError, "at least one tensor"));
  await assert.rejects(() => opt.init(null as never), saying(TypeError, "got null"));
  await assert.rejects(() => opt.init([1, 2] as never), saying(TypeError, "got Array"));
  // Objects of a class are not records of tensors: their fields are not tensor names.
  await assert.rejects(
    () => opt.init(new Map([["w", new Float32Array(2)]]) as never),
    saying(TypeError, "Params must be a Float32Array or a record of named Float32Arrays, got Map"),
  );
  await assert.rejects(
    () => opt.init(new Tensor(new Float32Array(2)) as never),
    saying(TypeError, "got Tensor (a TensorFlow.js tensor: pass its values, `await tensor.data()`"),
  );
  await assert.rejects(
    () => opt.init({ w: new Tensor(new Float32Array(2)) } as never),
    saying(
      TypeError,
      'parameter "w" to be a Float32Array or { data: Float32Array, shape }, got Tensor (a TensorFlow.js',
    ),
  );
  await assert.rejects(
    () => opt.init({ w: { data: [1, 2], shape: [2] } } as never),
    saying(TypeError, "got Object whose data is Array(2) (convert it: new Float32Array(values))"),
  );
  await assert.rejects(
    () => opt.init({ w: { data: new Float64Array(2), shape: [2] } } as never),
    saying(
      TypeError,
      "got Object whose data is Float64Array (convert it: new Float32Array(values))",
    ),
  );
  await assert.rejects(
    () => opt.init({ w: { data: new Float32Array(6), shape: "2x3" } } as never),
    saying(
      TypeError,
      'shape of parameter "w" to be an array of integers from 0 to 2⁵³ − 1, got a string "2x3"',
    ),
  );
  await assert.rejects(
    () => opt.init({ w: { data: new Float32Array(6), shape: [2, 1.5] } }),
    saying(TypeError, "got [2, 1.5]"),
  );
  // An empty tensor with a dimension past 2⁵³ − 1 trained and saved, but its checkpoint was
  // refused on load (a file's shapes are safe integers).
  for (const big of [2 ** 53, 1e300]) {
    await assert.rejects(
      () => opt.init({ w: { data: new Float32Array(0), shape: [big, 0] } }),
      saying(TypeError, `got [${big}, 0]`),
    );
  }
  await assert.rejects(
    () => opt.init({ w: new Float64Array(2) } as never),
    saying(
      TypeError,
      'parameter "w" to be a Float32Array or { data: Float32Array, shape }, got Float64Array',
    ),
  );
  await assert.rejects(
    () => opt.init({ w: new Float32Array([1, NaN]) }),
    saying(RangeError, 'parameter "w" to hold finite numbers, got NaN at index 1'),
  );
  await assert.rejects(
    () => opt.init(new Float32Array([Infinity])),
    saying(RangeError, "the parameter tensor to hold finite numbers"),
  );
  // JSON.parse makes an own "__proto__" key, which a plain record could not hold
  const params = JSON.parse('{"__proto__": 1, "w": 2}');
  params.__proto__ = new Float32Array(2);
  params.w = new Float32Array(2);
  assert.deepEqual(Object.keys(params), ["__proto__", "w"]);
  await assert.rejects(() => opt.init(params), saying(TypeError, 'may not be named "__proto__"'));
});

Deno.test("init refuses tensor names a checkpoint could not hold apart, naming both", async () => {
  const t = () => new Float32Array(4096);
  const cases: [() => Promise<unknown>, string][] = [
    [() => radam().init({ w: t(), "w.exp_avg": t() }), '"w.exp_avg" twice, as the exp_avg of "w"'],
    [() => adam({ backend: "js" }).init({ w: t(), "w.exp_avg_sq": t() }), "exp_avg_sq of"],
    [() => lookahead(adam()).init({ w: t(), "w.slow": t() }), 'the slow of "w"'],
    [
      () => radam().init({ w: t(), "w.exp_avg.codes": t() }),
      'the exp_avg of "w" (codes)',
    ],
    [() => radam().init({ __metadata__: t() }), "the header's metadata"],
  ];
  for (const [init, words] of cases) await assert.rejects(init, saying(TypeError, words));
  // Without LookAhead, "w.slow" is a name like any other: saved and loaded, in both formats.
  for (const states of ["32bit", "8bit"] as const) {
    const state = await radam({ states }).init({ w: t(), "w.slow": t(), "w.scales": t() });
    const back = await loadState(await saveState(state));
    assert.deepEqual(Object.keys(back.params).sort(), ["w", "w.scales", "w.slow"]);
  }
});

Deno.test("a model too large for 32-bit wasm memory is refused before allocating", async () => {
  // 5 tensors of 64M elements: 320M parameters need 5 GiB of arena. (Five arrays, not one given
  // five times, which init refuses; zeros, read and never written, take the OS's zero page.)
  const big = () => new Float32Array(64 * 1024 * 1024);
  const params = { a: big(), b: big(), c: big(), d: big(), e: big() };
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

Deno.test("the too-large refusal advises 8-bit states only where they would shrink the arena", () => {
  const advice = 'use states: "8bit"';
  const refusal = (layout: ArenaLayout) => {
    try {
      checkWasmCapacity(layout);
    } catch (e) {
      assert.ok(e instanceof RangeError);
      return e.message;
    }
    assert.fail("not refused");
  };
  // 32-bit moments: 8 bits would shrink them.
  assert.ok(refusal(planArena(["w"], [300_000_000])).includes(advice));
  // Already 8-bit (450M parameters, padded to whole blocks in the arena: the count is the
  // model's), or a rule that keeps no moment (SGD without momentum): nothing to shrink.
  const compact = refusal(
    planCompactArena(["w"], [450_000_000], { moments: 2, nonNegative: [false, true] }),
  );
  assert.ok(!compact.includes(advice), compact);
  assert.match(compact, /^The model has 450000000 parameters/);
  const plain = refusal(planArena(["w"], [600_000_000], { moments: 0 }));
  assert.ok(!plain.includes(advice), plain);
  assert.match(plain, /Split the parameters between several optimizers, or use the webgpu backend/);
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

Deno.test("init and loadState refuse options they do not take, and a device that is not one", async () => {
  const opt = radam();
  const params = { w: new Float32Array(2) };
  await assert.rejects(
    () => opt.init(params, { backend: "js" } as never),
    saying(TypeError, "Unknown option backend for init; expected one of device"),
  );
  await assert.rejects(
    () => opt.init(params, { device: {} as GPUDevice }),
    saying(
      TypeError,
      "Option device must be a GPUDevice (await adapter.requestDevice()), got Object",
    ),
  );
  const bytes = await saveState(await opt.init(params));
  await assert.rejects(
    () => loadState(bytes, { learningRate: 1e-4 } as never),
    saying(
      TypeError,
      "Unknown option learningRate for loadState; expected one of backend, lr, threads",
    ),
  );
  await assert.rejects(
    () => loadState(bytes, { device: "gpu" as never }),
    saying(
      TypeError,
      'Option device must be a GPUDevice (await adapter.requestDevice()), got a string "gpu"',
    ),
  );
  await assert.rejects(
    () => loadState(bytes.slice().buffer as never),
    saying(
      TypeError,
      "A checkpoint must be a Uint8Array, got ArrayBuffer (wrap it: new Uint8Array(buffer))",
    ),
  );
  assert.equal((await loadState(bytes, { lr: 1e-4 })).step, 0);
});

for (const backend of ["js", "wasm", "threads"] as const) {
  Deno.test(`${backend}: a schedule or gradient getter that uses its state mid-step is refused; the step completes`, async () => {
    // A schedule that stepped its own state ran the inner step, which emptied the outer step's
    // gradients: the outer one then threw "Cannot read properties of undefined (reading
    // 'byteOffset')".
    const options = backend === "threads"
      ? { backend: "wasm" as const, threads: 2, threadThreshold: 0 }
      : { backend };
    const params = { w: new Float32Array([1, -2, 3]), b: new Float32Array([0.5]) };
    const g = { w: new Float32Array([0.1, 0.2, -0.3]), b: new Float32Array([1]) };
    let live: OptimizerState | undefined;
    const refused: unknown[] = [];
    const settled: Promise<unknown>[] = [];
    let inside = false; // (the inner steps, were they taken, call the schedule too)
    const useIt = () => {
      if (live === undefined || inside) return;
      inside = true;
      const s = live;
      for (const use of [() => step(s, g), () => step(s), () => dispose(s)]) {
        try {
          use();
          refused.push("not refused");
        } catch (error) {
          refused.push(error);
        }
      }
      for (const read of [readParams, readMoments, saveState]) {
        settled.push(read(s).then(() => "not refused", (error) => error));
      }
      inside = false;
    };
    const opt = radam({ ...options, lr: (t) => (useIt(), 1e-2 * t) });
    const twinOpt = radam({ ...options, lr: (t) => 1e-2 * t });
    let state = await opt.init(params), twin = await twinOpt.init(params);
    try {
      live = state;
      state = step(state, g); // copied-in gradients: where they were lost
      live = state;
      state.grads.w.set(g.w);
      state.grads.b.set(g.b);
      state = step(state); // zero copy
      live = undefined;
      // A gradient getter that steps the state.
      const getter = {
        w: g.w,
        get b() {
          useIt();
          return g.b;
        },
      };
      live = state;
      state = step(state, getter);
      live = undefined;
      for (let t = 0; t < 3; t++) twin = step(twin, g);
      const errors = [...refused, ...await Promise.all(settled)];
      assert.equal(errors.length, 24); // 6 uses in 3 schedule calls and 1 getter
      for (const error of errors) {
        assert.ok(error instanceof TypeError, String(error));
        assert.match(error.message, /A step of this optimizer state is in progress/);
      }
      assert.equal(state.step, 3);
      assert.deepEqual(await readParams(state), await readParams(twin));
      assert.deepEqual(await readMoments(state), await readMoments(twin));
      // Still usable in every way after.
      assert.equal(step(state, g).step, 4);
    } finally {
      dispose(state);
      dispose(twin);
    }
  });
}

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
