/**
 * The TensorFlow.js adapter refuses bad input on tfjs's cpu and wasm backends: a TypeError or
 * RangeError naming the variable (wrong shape or dtype, not a tensor, an unknown, frozen or
 * disposed variable, a disposed gradient, a non-finite one under `nonFinite: "throw"`), and
 * nothing changes; a `loadState` or `setWeights` not awaited before the next step rejects,
 * nothing loaded.
 */
import assert from "node:assert/strict";
import { adam, checkpointInfo, cosineDecay, lion, radam, saveState, step } from "../../mod.ts";
import { tfOptimizer } from "../../tfjs.ts";
import { CPU_BACKENDS, tf, uniqueNames, useBackend } from "./helpers.ts";

const name = uniqueNames("input");

/** A bad input case: what it is, the gradients, the error it must throw and its message. */
type BadCase = [string, () => unknown, ErrorConstructor, RegExp];

/**
 * The bad gradients for variables `wn` ([2, 2]) and `vn` ([2]), `frozen` (not trainable), and
 * `good` (gradients that are fine).
 */
function badCases(
  wn: string,
  vn: string,
  frozen: tf.Variable,
  good: () => Record<string, tf.Tensor>,
): BadCase[] {
  return [
    [
      "wrong shape",
      () => ({ [wn]: tf.ones([4]), [vn]: tf.ones([2]) }),
      RangeError,
      /shape \[2, 2\].*got \[4\]/,
    ],
    [
      "wrong dtype",
      () => ({ [wn]: tf.ones([2, 2], "int32"), [vn]: tf.ones([2]) }),
      TypeError,
      /float32, got int32/,
    ],
    [
      "not a tensor",
      () => ({ [wn]: [1, 2, 3, 4], [vn]: tf.ones([2]) }),
      TypeError,
      /tf\.Tensor, got Array/,
    ],
    [
      "gradient not awaited",
      () => ({ [wn]: Promise.resolve(), [vn]: tf.ones([2]) }),
      TypeError,
      /tf\.Tensor, got Promise \(a Promise: await it\)$/,
    ],
    ["unknown variable", () => ({ "no/such": tf.ones([2]) }), TypeError, /"no\/such"/],
    ["not trainable", () => ({ [frozen.name]: tf.ones([1]) }), TypeError, /not trainable/],
    [
      "disposed gradient",
      () => {
        const g = good();
        g[wn].dispose();
        return g;
      },
      TypeError,
      /gradient of variable .* was disposed/,
    ],
    [
      "non-finite under throw",
      () => ({
        [wn]: tf.tensor([1, NaN, 1, 1], [2, 2]),
        [vn]: tf.ones([2]),
      }),
      RangeError,
      /NaN/,
    ],
  ];
}

for (const backend of CPU_BACKENDS) {
  Deno.test(`tfjs ${backend}: bad input throws a TypeError/RangeError naming the variable; nothing changes`, async () => {
    await useBackend(backend);
    const wn = name("w"), vn = name("v");
    const w = tf.variable(tf.tensor([1, 2, 3, 4], [2, 2]), true, wn);
    const v = tf.variable(tf.tensor([5, 6]), true, vn);
    const frozen = tf.variable(tf.tensor([1]), false, name("frozen"));
    const optimizer = tfOptimizer(adam({ lr: 0.1, nonFinite: "throw" }));
    const good = () => ({ [wn]: tf.ones([2, 2]), [vn]: tf.ones([2]) });
    const g0 = good();
    optimizer.applyGradients(g0);
    tf.dispose(Object.values(g0));
    const snapshot = async () => {
      const ws = await optimizer.getWeights();
      const out = [
        w.dataSync().slice(),
        v.dataSync().slice(),
        ...ws.map((x) => x.tensor.dataSync().slice()),
      ];
      tf.dispose(ws.map((x) => x.tensor));
      return out;
    };
    const before = await snapshot();
    const cases = badCases(wn, vn, frozen, good);
    for (const [what, make, type, message] of cases) {
      const g = make() as Record<string, tf.Tensor>;
      assert.throws(() => optimizer.applyGradients(g), (e: Error) => {
        assert.ok(e instanceof type, `${what}: ${e.constructor.name}: ${e.message}`);
        assert.match(e.message, message, what);
        if (
          what !== "unknown variable" && what !== "not trainable" &&
          what !== "non-finite under throw"
        ) {
          assert.ok(e.message.includes(JSON.stringify(wn)), `${what}: ${e.message}`);
        }
        if (what === "non-finite under throw") assert.ok(e.message.includes(wn), e.message);
        return true;
      }, what);
      tf.dispose(Object.values(g).filter((t) => t instanceof tf.Tensor && !t.isDisposed));
      assert.deepEqual(await snapshot(), before, `${what} changed something`);
    }
    // Gradients not awaited: a Promise has no keys, so it was taken for an empty map, and the
    // call did nothing, silently.
    assert.throws(
      () => optimizer.applyGradients(Promise.resolve() as never),
      (e: Error) =>
        e instanceof TypeError &&
        /NamedTensorMap or a NamedTensor\[\], got Promise \(a Promise: await it\)$/.test(e.message),
    );
    assert.deepEqual(await snapshot(), before);
    // Weights not awaited (getWeights returns a Promise): refused, saying to await them.
    const pending = optimizer.getWeights();
    await assert.rejects(
      () => optimizer.setWeights(pending as never),
      (e: Error) =>
        e instanceof TypeError &&
        /^setWeights expects a NamedTensor\[\], got Promise \(a Promise: await it\)$/.test(
          e.message,
        ),
    );
    await pending;
    assert.deepEqual(await snapshot(), before);
    // A disposed variable.
    const gone = tf.variable(tf.tensor([1]), true, name("gone"));
    const gn = gone.name;
    gone.dispose();
    const g = tf.ones([1]);
    assert.throws(() => optimizer.applyGradients({ [gn]: g }), /registered|disposed/);
    g.dispose();
    assert.deepEqual(await snapshot(), before);
    assert.equal(optimizer.iterations, 1);
    optimizer.dispose();
    tf.dispose([w, v, frozen]);
  });
}

Deno.test("tfjs: tfOptimizer(checkpointInfo(bytes)) takes the file's settings, but not the stand-in for a schedule it could not store", async () => {
  await useBackend("cpu");
  const made = async (lr: number | ((t: number) => number)) =>
    await saveState(
      step(await lion({ lr }).init({ w: new Float32Array(2) }), { w: new Float32Array([1, -1]) }),
    );
  const kept = tfOptimizer(checkpointInfo(await made(0.01)));
  assert.equal(kept.learningRate, 0.01);
  kept.dispose();
  // Taken, it would throw at the first step, whose error says to pass it to loadState.
  const info = checkpointInfo(await made(cosineDecay(0.01, { decaySteps: 5 })));
  assert.throws(
    () => tfOptimizer(info),
    (e: Error) =>
      e instanceof TypeError &&
      e.message.startsWith(
        "tfOptimizer() was given settings whose lr is the stand-in that checkpointInfo() gives " +
          "for the schedule of a checkpoint saved with one, which throws where it is called: " +
          "pass the schedule itself",
      ),
  );
});

Deno.test("tfjs: a misspelled adapter option is refused; a disposed optimizer refuses to go on", async () => {
  await useBackend("cpu");
  assert.throws(
    () => tfOptimizer(adam(), { strcit: true } as never),
    (e: Error) =>
      e instanceof TypeError &&
      /^Unknown option strcit for tfOptimizer; expected one of strict, warnOnSkip, gradientAccumulationSteps, ema$/
        .test(e.message),
  );
  assert.throws(
    () => tfOptimizer(Promise.resolve(adam()) as never),
    (e: Error) =>
      e instanceof TypeError &&
      e.message ===
        "tfOptimizer() expects an optimizer made by this library, e.g. radam(), got Promise (a Promise: await it)",
  );
  // A maker not called, and a TensorFlow.js optimizer: the error says what was given instead.
  assert.throws(
    () => tfOptimizer(radam as never),
    (e: Error) =>
      e instanceof TypeError &&
      e.message.endsWith(
        "got a function (a factory: call it, radam())",
      ),
  );
  const native = tf.train.adam(0.1);
  assert.throws(
    () => tfOptimizer(native as never),
    (e: Error) =>
      e instanceof TypeError &&
      /got AdamOptimizer \(a TensorFlow.js optimizer: wrap one of this library's/.test(
        e.message,
      ),
  );
  native.dispose();
  const w = tf.variable(tf.tensor([1, 2]), true, name("w"));
  const optimizer = tfOptimizer(adam({ lr: 0.1 }));
  const g = tf.ones([2]);
  optimizer.applyGradients({ [w.name]: g });
  const bytes = await saveState(optimizer.state!);
  const weights = await optimizer.getWeights();
  optimizer.dispose();
  const after = w.dataSync().slice();
  // Not a silent restart from step 0 with zero moments: an error, and the variable unchanged.
  const disposed =
    /^This TensorFlow.js optimizer was disposed; make a new one with tfOptimizer\(\)$/;
  assert.throws(() => optimizer.applyGradients({ [w.name]: g }), {
    name: "TypeError",
    message: disposed,
  });
  assert.deepEqual(w.dataSync(), after);
  await assert.rejects(() => optimizer.getWeights(), { name: "TypeError", message: disposed });
  await assert.rejects(() => optimizer.setWeights(weights), {
    name: "TypeError",
    message: disposed,
  });
  await assert.rejects(() => optimizer.loadState(bytes), { name: "TypeError", message: disposed });
  optimizer.dispose(); // idempotent
  tf.dispose([w, g, ...weights.map((x) => x.tensor)]);
});

Deno.test("tfjs: applyGradients given tf.variableGrads's whole { value, grads } says to pass .grads; nothing changes", async () => {
  // It was refused as `No variable "value" is registered`: true, but no help.
  await useBackend("cpu");
  const w = tf.variable(tf.tensor([1, 2, 3]), true, name("w"));
  const optimizer = tfOptimizer(adam({ lr: 0.1 }));
  const result = tf.variableGrads(() => tf.sum(tf.square(w)) as tf.Scalar);
  assert.throws(() => optimizer.applyGradients(result as never), {
    name: "TypeError",
    message: "applyGradients was given { value, grads }, what tf.variableGrads returns: pass " +
      "its grads, e.g. optimizer.applyGradients(tf.variableGrads(f).grads)",
  });
  assert.equal(optimizer.state, undefined);
  assert.equal(optimizer.iterations, 0);
  assert.deepEqual(w.dataSync(), new Float32Array([1, 2, 3]));
  // Given its grads, it steps.
  optimizer.applyGradients(result.grads);
  assert.equal(optimizer.iterations, 1);
  assert.notDeepEqual(w.dataSync(), new Float32Array([1, 2, 3]));
  // A variable named "value" with a gradient is still a gradient map.
  const value = tf.variable(tf.tensor([1]), true, "value");
  const g = tf.ones([1]);
  optimizer.applyGradients({ value: g });
  assert.notDeepEqual(value.dataSync(), new Float32Array([1]));
  optimizer.dispose();
  tf.dispose([w, value, g, result.value, ...Object.values(result.grads)]);
});

Deno.test("tfjs: applyGradients given one tensor or a Map says how to key the gradients; nothing changes", async () => {
  // A tensor was refused as `No variable "kept" is registered` (its own keys taken for names),
  // and a Map was taken as a record of no key: a step that did nothing, silently.
  await useBackend("cpu");
  const w = tf.variable(tf.tensor([1, 2, 3]), true, name("w"));
  const g = tf.ones([3]);
  const optimizer = tfOptimizer(adam({ lr: 0.1 }));
  const expects = "applyGradients expects a NamedTensorMap or a NamedTensor[], got ";
  const keyed = " (one tensor: key each gradient by its variable's name, " +
    "optimizer.applyGradients({ [variable.name]: grad }))";
  for (
    const [given, message] of [
      [g, `${expects}Tensor${keyed}`],
      [w, `${expects}Variable${keyed}`],
      [
        new Map([[w.name, g]]),
        `${expects}Map (a Map's entries are not a record's keys: pass Object.fromEntries(map))`,
      ],
    ] as const
  ) {
    assert.throws(() => optimizer.applyGradients(given as never), { name: "TypeError", message });
  }
  assert.equal(optimizer.state, undefined);
  assert.equal(optimizer.iterations, 0);
  assert.deepEqual(w.dataSync(), new Float32Array([1, 2, 3]));
  optimizer.applyGradients(Object.fromEntries(new Map([[w.name, g]])));
  assert.equal(optimizer.iterations, 1);
  optimizer.dispose();
  tf.dispose([w, g]);
});

Deno.test("tfjs: each gradient is read once from a NamedTensorMap or a NamedTensor[]; that one is stepped", async () => {
  await useBackend("cpu");
  const init = tf.tensor([1, 2, 3, 4], [2, 2]);
  const good = tf.tensor([0.5, -1, 2, 0.25], [2, 2]);
  const bad = tf.ones([4]);
  for (const form of ["map", "array"] as const) {
    const [tested, twin] = [name("tested"), name("twin")];
    const vars = [tf.variable(init, true, tested), tf.variable(init, true, twin)];
    const [a, b] = [tfOptimizer(adam({ lr: 0.1 })), tfOptimizer(adam({ lr: 0.1 }))];
    const reads: Record<string, number> = {};
    // Every read counted; a second read of anything gives a gradient of the wrong shape.
    const twoFaced = (key: string, first: unknown, later: unknown) => () =>
      (reads[key] = (reads[key] ?? 0) + 1) === 1 ? first : later;
    if (form === "map") {
      const map = {} as Record<string, tf.Tensor>;
      Object.defineProperty(map, tested, { enumerable: true, get: twoFaced(tested, good, bad) });
      a.applyGradients(map);
      b.applyGradients({ [twin]: good });
    } else {
      const element = {};
      Object.defineProperty(element, "name", { get: twoFaced("name", tested, twin) });
      Object.defineProperty(element, "tensor", { get: twoFaced("tensor", good, bad) });
      const list = new Proxy([element], {
        get: (target, key, receiver) =>
          key === "0"
            ? twoFaced("0", element, { name: twin, tensor: bad })()
            : Reflect.get(target, key, receiver),
      });
      a.applyGradients(list as never);
      b.applyGradients([{ name: twin, tensor: good }]);
    }
    const expected = form === "map" ? { [tested]: 1 } : { 0: 1, name: 1, tensor: 1 };
    assert.deepEqual(reads, expected, form);
    assert.deepEqual(vars[0].dataSync(), vars[1].dataSync(), form);
    assert.notDeepEqual(vars[0].dataSync(), init.dataSync(), form);
    a.dispose();
    b.dispose();
    tf.dispose(vars);
  }
  tf.dispose([init, good, bad]);
});

for (const backend of CPU_BACKENDS) {
  Deno.test(`tfjs ${backend}: a loadState or setWeights not awaited before the next step rejects with a TypeError, and loads nothing`, async () => {
    // It replaced the moments and the step count that step had made, after its update to the
    // variable: a run that was neither the loaded one nor a fresh one, with no error.
    await useBackend(backend);
    const w = tf.variable(tf.tensor([1, 2, 3]), true, name("w"));
    const g = tf.ones([3]);
    const a = tfOptimizer(adam({ lr: 0.1 }));
    for (let i = 0; i < 3; i++) a.applyGradients({ [w.name]: g });
    const checkpoint = await saveState(a.state!);
    const weights = await a.getWeights();
    const loads = [
      ["loadState(bytes)", (b: ReturnType<typeof tfOptimizer>) => b.loadState(checkpoint)],
      ["setWeights(weights)", (b: ReturnType<typeof tfOptimizer>) => b.setWeights(weights)],
    ] as const;
    for (const [what, load] of loads) {
      const b = tfOptimizer(adam({ lr: 0.1 }));
      const pending = load(b); // no await
      b.applyGradients({ [w.name]: g });
      await assert.rejects(pending, {
        name: "TypeError",
        message: `A step was taken while ${what} was under way (was it awaited?); nothing was ` +
          `loaded: await optimizer.${what} before training`,
      });
      assert.equal(b.iterations, 1, what);
      assert.equal(b.state!.step, 1, what);
      // Awaited, it loads.
      await load(b);
      assert.equal(b.iterations, 3, what);
      b.applyGradients({ [w.name]: g });
      assert.equal(b.iterations, 4, what);
      b.dispose();
    }
    a.dispose();
    tf.dispose([w, g]);
  });
}
