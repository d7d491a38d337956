/**
 * What a new user passes first that the library refused, or answered with a misleading hint:
 * `meanOfContributions` given a `Set` (or a generator) of parts, or another realm's typed
 * arrays, which it now takes; a `Map` of parts, or a gradient of plain numbers, which it refuses
 * saying what to pass; `sgd(undefined, 0)`, whose 0 was said to be an index alone; a model's
 * nested record of tensors given to `init` or `step`, and a list of gradients given to `step`,
 * which were refused without saying that each tensor goes under one name; a state given to
 * `init` for its tensors; `saveState(state, path)`, which dropped the path and wrote no file,
 * silently; and Keras's `decay`, refused as an unknown option alone.
 */
import assert from "node:assert/strict";
import vm from "node:vm";
import {
  adam,
  adamw,
  lion,
  loadState,
  radam,
  ranger,
  readParams,
  saveState,
  sgd,
  step,
} from "../mod.ts";
import { meanOfContributions, type WeightedGradient } from "../store.ts";
import { saying } from "./util.ts";

// deno-lint-ignore no-explicit-any
const call = (f: (...args: any[]) => unknown, ...args: unknown[]) => () => f(...args);

const parts: WeightedGradient[] = [
  { samples: 1, gradient: new Float32Array([1, 2]) },
  { samples: 3, gradient: new Float32Array([5, 6]) },
];

Deno.test("meanOfContributions takes a Set, a generator or a Map's values of parts, as an array", () => {
  function* generated() {
    yield* parts;
  }
  const byId = new Map(parts.map((part, i) => [`c${i}`, part]));
  for (const given of [new Set(parts), generated(), byId.values()]) {
    const out = new Float32Array(2);
    meanOfContributions(given, out);
    assert.deepEqual([...out], [4, 5]);
  }
});

Deno.test("meanOfContributions takes another realm's Float32Array and Float64Array", () => {
  const other = vm.runInNewContext(
    "({ f32: (n) => new Float32Array(n), f64: (n) => new Float64Array(n) })",
  );
  const gradient = other.f32(2);
  gradient.set([1, 2]);
  assert.ok(!(gradient instanceof Float32Array));
  const out = other.f32(2);
  meanOfContributions([{ samples: 1, gradient }, parts[1]], out, other.f64(2));
  assert.deepEqual([...out], [4, 5]);
});

Deno.test("meanOfContributions given a Map of parts or a gradient of numbers says what to pass; out is left as it was", () => {
  const out = new Float32Array([7, 7]);
  const head = "meanOfContributions(parts, out, acc?): ";
  assert.throws(
    call(meanOfContributions, new Map([["a", parts[0]]]), out),
    saying(
      TypeError,
      `${head}parts must be an array (or an iterable) of { samples, gradient }, got Map ` +
        "(a Map: pass its values, map.values())",
    ),
  );
  assert.throws(
    call(meanOfContributions, [{ samples: 1, gradient: [1, 2] }], out),
    saying(
      TypeError,
      `${head}parts[0].gradient must be a Float32Array, got Array(2) (convert it: new ` +
        "Float32Array(values))",
    ),
  );
  // A tag alone, on an object that is no typed array, is not one.
  const fake = { [Symbol.toStringTag]: "Float32Array", length: 2 };
  assert.throws(
    call(meanOfContributions, parts, fake),
    saying(TypeError, `${head}out must be a Float32Array`),
  );
  assert.throws(call(meanOfContributions, "ab", out), saying(TypeError, "got a string"));
  assert.deepEqual([...out], [7, 7]);
});

Deno.test("sgd(undefined, 0) says how to write a momentum of 0, and what to do where 0 is Array.from's index", () => {
  const index = "if it is an index, as Array.from({ length: n }, sgd) passes one: make each in " +
    "a function of your own, Array.from({ length: n }, () => sgd({ … })))";
  assert.throws(
    call(sgd, undefined, 0),
    saying(
      TypeError,
      `Options of sgd go in one object, got 0 after undefined (if it is the momentum, sgd({ ` +
        `momentum: 0 }); ${index}`,
    ),
  );
  assert.throws(
    call(adam, undefined, 0),
    saying(TypeError, "got 0 after undefined (if it is the β1, adam({ betas: [0, 0.999] }); if"),
  );
  assert.equal(sgd({ momentum: 0 }).settings.hyperparameters.momentum, 0);
});

Deno.test("a nested record of tensors given to init or step says to name each by its path; the state steps on", async () => {
  const layer = { weight: new Float32Array(2), bias: new Float32Array(1) };
  const hint = '(a record of tensors: name each by its path, { "fc1.weight": …, "fc1.bias": … })';
  await assert.rejects(
    radam().init({ fc1: layer } as never),
    saying(
      TypeError,
      `Expected parameter "fc1" to be a Float32Array or { data: Float32Array, shape }, got Object ${hint}`,
    ),
  );
  const state = await radam({ lr: 0.1 }).init({
    "fc1.weight": new Float32Array([1, 2]),
    "fc1.bias": new Float32Array([3]),
  });
  assert.throws(
    () => step(state, { fc1: layer } as never),
    saying(
      TypeError,
      `Missing gradient for parameter "fc1.weight"; got an unexpected "fc1" ${hint}`,
    ),
  );
  assert.equal(state.step, 0);
  const next = step(state, {
    "fc1.weight": new Float32Array([1, 1]),
    "fc1.bias": new Float32Array([1]),
  });
  assert.equal(next.step, 1);
  assert.ok((await readParams(next))["fc1.bias"][0] < 3);
});

Deno.test("a list of gradients given to step says to give each under its tensor's name; the state steps on", async () => {
  const names = ["a", "b", "c", "d"];
  const state = await radam().init(Object.fromEntries(names.map((n) => [n, new Float32Array(1)])));
  const hint =
    `(a list: give each gradient under its tensor's name, { "a": …, "b": …, "c": …, … })`;
  const list = names.map(() => new Float32Array(1));
  for (const grads of [list, list.values()]) {
    assert.throws(
      () => step(state, grads as never),
      saying(TypeError, `Grads must be a Float32Array or a record of named Float32Arrays, got `),
    );
    assert.throws(() => step(state, grads as never), saying(TypeError, hint));
  }
  assert.equal(step(state, Object.fromEntries(names.map((n, i) => [n, list[i]]))).step, 1);
});

Deno.test("a state given to init for its tensors says that its parameters are state.params", async () => {
  let state = await radam({ lr: 0.1 }).init({ w: new Float32Array([1, 2]) });
  state = step(state, { w: new Float32Array([1, 1]) });
  await assert.rejects(
    radam().init(state as never),
    saying(
      TypeError,
      "Params must be a Float32Array or a record of named Float32Arrays, got an optimizer state " +
        "(init takes tensors: a state's parameters are state.params, await " +
        "opt.init(state.params) starts afresh from them; a state of these tensors that goes on " +
        "from its moments and step count is await opt.init(state.params, { from: state }))",
    ),
  );
  // Each call the hint writes does what it says.
  const fresh = await radam().init(state.params);
  assert.equal(fresh.step, 0);
  assert.deepEqual([...fresh.params.w], [...state.params.w]);
  const carried = await radam().init(state.params, { from: state });
  assert.equal(carried.step, 1);
});

Deno.test("saveState(state, path) says that it writes no file and how to write its bytes; the state is saved after", async () => {
  const state = await radam().init({ w: new Float32Array([1, 2]) });
  const message = "saveState writes no file: it takes the state alone and returns a Promise of " +
    'the checkpoint\'s bytes, got a second argument, a string "model.safetensors"; write the ' +
    "bytes yourself, await Deno.writeFile(path, await saveState(state)) (Node: writeFile of " +
    "node:fs/promises)";
  const save = saveState as (...args: unknown[]) => Promise<Uint8Array>;
  await assert.rejects(save(state, "model.safetensors"), saying(TypeError, message));
  await assert.rejects(
    save(state, new URL("file:///m.safetensors")),
    saying(TypeError, "got a second argument, URL;"),
  );
  // An index and an array, as map passes them, are dropped as before.
  const [bytes] = await Promise.all([state].map(save));
  assert.equal((await loadState(bytes)).step, 0);
  assert.equal(state.step, 0);
});

Deno.test("Keras's decay says it is a schedule of the learning rate here, and that a weight decay is weightDecay", () => {
  assert.throws(
    () => adam({ decay: 0.01 } as never),
    saying(
      TypeError,
      "(Keras's decay of the learning rate, lr / (1 + decay·iterations), is a schedule here of the " +
        "1-based step t, adam({ lr: (t) => lr0 / (1 + decay * (t - 1)) }); a weight decay is the " +
        "option weightDecay)",
    ),
  );
  // The schedule it writes gives Keras's rates: lr0 at the first step, lr0 / (1 + decay) at the second.
  const lr0 = 1e-3, decay = 0.5;
  const opt = adam({ lr: (t) => lr0 / (1 + decay * (t - 1)) });
  const lr = opt.settings.hyperparameters.lr as (t: number) => number;
  assert.equal(lr(1), lr0);
  assert.equal(lr(2), lr0 / 1.5);
});

Deno.test("a tensor with its shape, its data of another kind, is not said to be a layer's record", async () => {
  const shaped = { data: new Float32Array(2), shape: [2] };
  await assert.rejects(
    radam().init({ w: { data: shaped, shape: [2] } } as never),
    saying(
      TypeError,
      'Expected parameter "w" to be a Float32Array or { data: Float32Array, shape }, got Object ' +
        "whose data is Object",
    ),
  );
  const state = await radam().init({ "fc1.weight": new Float32Array(2) });
  assert.throws(
    () => step(state, { fc1: shaped } as never),
    (error: Error) =>
      error instanceof TypeError &&
      error.message.endsWith(
        'Missing gradient for parameter "fc1.weight"; got an unexpected "fc1"',
      ),
  );
  assert.equal(state.step, 0);
});

Deno.test("a model's record nested deeper says each tensor's whole path, a layer referring back too", async () => {
  const fc1: Record<string, unknown> = { weight: new Float32Array(2), bias: new Float32Array(1) };
  const encoder = { fc1, norm: { scale: new Float32Array(2) } };
  fc1.parent = encoder; // (a layer's reference back to its model)
  const hint = '(a record of tensors: name each by its path, { "encoder.fc1.weight": …, ' +
    '"encoder.fc1.bias": …, … })';
  await assert.rejects(
    radam().init({ encoder } as never),
    saying(
      TypeError,
      `Expected parameter "encoder" to be a Float32Array or { data: Float32Array, shape }, got Object ${hint}`,
    ),
  );
  const state = await radam().init({ "encoder.fc1.weight": new Float32Array(2) });
  assert.throws(
    () => step(state, { encoder } as never),
    saying(TypeError, `got an unexpected "encoder" ${hint}`),
  );
  assert.equal(state.step, 0);
});

Deno.test("a list of one gradient for a state of one bare tensor says to pass it bare", async () => {
  const state = await radam().init(new Float32Array(2));
  const g = new Float32Array([1, 1]);
  for (const grads of [[g], [g].values()]) {
    assert.throws(
      () => step(state, grads as never),
      saying(
        TypeError,
        "(a list: this state holds one tensor, given bare to init: pass its gradient bare, " +
          "not in a list)",
      ),
    );
  }
  assert.equal(state.step, 0);
  assert.equal(step(state, g).step, 1);
});

Deno.test("meanOfContributions refuses a typed array of another type, or a DataView, tagged as a Float32Array", () => {
  const head = "meanOfContributions(parts, out, acc?): ";
  const tagged = <T extends object>(value: T) =>
    Object.defineProperty(value, Symbol.toStringTag, { value: "Float32Array" });
  const out = new Float32Array([7, 7]);
  assert.throws(
    call(meanOfContributions, [{ samples: 1, gradient: tagged(new Uint8Array([1, 2])) }], out),
    saying(TypeError, `${head}parts[0].gradient must be a Float32Array, got Uint8Array`),
  );
  const view = tagged(new DataView(new ArrayBuffer(8)));
  assert.throws(
    call(meanOfContributions, parts, view),
    saying(
      TypeError,
      `${head}out must be a Float32Array (where the mean is written), got DataView`,
    ),
  );
  // (a subclass whose tag says Float32Array: a Float64Array still)
  class Tagged extends Float64Array {}
  tagged(Tagged.prototype);
  assert.throws(
    call(meanOfContributions, [{ samples: 1, gradient: new Tagged([1, 2]) }], out),
    saying(TypeError, `${head}parts[0].gradient must be a Float32Array`),
  );
  assert.deepEqual([...out], [7, 7]);
  assert.deepEqual([...new Uint8Array(view.buffer)], new Array(8).fill(0));
});

Deno.test("radam(undefined, n), an index of 1 or more, offers no β1 reading whose call would throw", () => {
  for (
    const [f, name] of [[radam, "radam"], [adam, "adam"], [adamw, "adamw"], [lion, "lion"]] as const
  ) {
    for (const n of [1, 2, 7]) {
      assert.throws(
        call(f, undefined, n),
        saying(
          TypeError,
          `Options of ${name} go in one object, got ${n} after undefined (${n} is no β1, which ` +
            `${name}'s second argument would be, in [0, 1): if it is an index, as Array.from(` +
            `{ length: n }, ${name}) passes one: make each in a function of your own, ` +
            `Array.from({ length: n }, () => ${name}({ … })))`,
        ),
      );
      // The reading offered for 0 is a call that runs; one for n would throw.
      assert.throws(() => f({ betas: [n, 0.999] }), RangeError);
    }
    assert.throws(
      call(f, undefined, 0),
      saying(TypeError, `if it is the β1, ${name}({ betas: [0, `),
    );
    assert.ok(f({ betas: [0, 0.999] }));
  }
  assert.throws(() => Array.from({ length: 3 }, radam as never), saying(TypeError, "got 0 after"));
  // Ranger's first positional option is its alpha, in [0, 1]: 1 can be one, 2 cannot.
  assert.throws(
    call(ranger, undefined, 1),
    saying(TypeError, "if it is the alpha, ranger({ alpha: 1 })"),
  );
  assert.throws(
    call(ranger, undefined, 2),
    saying(
      TypeError,
      "got 2 after undefined (2 is no alpha, which ranger's second argument would be, in [0, 1]: if it is an index",
    ),
  );
  assert.throws(() => ranger({ alpha: 2 }), RangeError);
});
