import assert from "node:assert/strict";
import {
  adam,
  adamw,
  dispose,
  lion,
  loadState,
  lookahead,
  type Optimizer,
  radam,
  ranger,
  readMoments,
  readParams,
  readSlowWeights,
  saveState,
  sgd,
  SINGLE_TENSOR_NAME,
  step,
} from "../mod.ts";
import { inspect } from "node:util";
import { SLOW } from "../base/arena.ts";
import { stateInternals } from "../core/state.ts";
import { saying, scalarsAt } from "./util.ts";

const grad = (n: number, x: number) => new Float32Array(n).fill(x);

Deno.test("the library runs with no permissions granted", () => {
  for (const name of ["read", "write", "net", "env", "run", "ffi", "sys"] as const) {
    assert.notEqual(Deno.permissions.querySync({ name }).state, "granted", name);
  }
});

Deno.test('backend "auto" picks wasm where WebAssembly SIMD exists (here)', async () => {
  const state = await radam().init({ w: grad(3, 1) });
  assert.equal(state.backend, "wasm");
  assert.equal((await radam({ backend: "js" }).init({ w: grad(3, 1) })).backend, "js");
});

Deno.test("optimizer values carry their resolved settings", () => {
  assert.equal(radam().settings.hyperparameters.threshold, 5);
  assert.equal(adam().settings.hyperparameters.weightDecay, 0);
  assert.equal(adamw().settings.hyperparameters.weightDecay, 1e-2);
  assert.equal(adamw().settings.hyperparameters.decoupledWeightDecay, true);
  assert.equal(adam().settings.hyperparameters.decoupledWeightDecay, false);
  assert.equal(adamw({ weightDecay: 0.5 }).name, "adamw");
  // RAdam, Adam and AdamW run one rule; its flags are their hyperparameters.
  assert.deepEqual([radam(), adam(), adamw(), ranger(), lion()].map((o) => o.settings.rule), [
    "adam",
    "adam",
    "adam",
    "adam",
    "lion",
  ]);
});

Deno.test("option states: in settings.run, every factory and lookahead; 32bit by default", async () => {
  const factories: ((o?: { states?: "8bit" }) => Optimizer)[] = [
    radam,
    adam,
    adamw,
    lion,
    sgd,
    ranger,
  ];
  for (const make of factories) {
    assert.equal(make().settings.run.states, "32bit");
    assert.equal(make({ states: "8bit" }).settings.run.states, "8bit");
    if (make !== ranger) {
      assert.equal(lookahead(make({ states: "8bit" })).settings.run.states, "8bit");
    }
  }
  // LookAhead's slow weights stay f32: its arena has the f32 section beside the codes
  const state = await lookahead(lion({ states: "8bit" })).init({ w: new Float32Array(8192) });
  const layout = stateInternals(state).backend.layout;
  assert.deepEqual(layout.compact, [true]);
  assert.ok(layout.sectionOffsets[SLOW] >= 0);
  assert.deepEqual((await readSlowWeights(state)).w, new Float32Array(8192));
  // SGD without momentum keeps no moment: 8-bit states change nothing
  const plain = await sgd({ states: "8bit" }).init({ w: new Float32Array(8192) });
  assert.deepEqual(stateInternals(plain).backend.layout.compact, [false]);
});

Deno.test("8-bit states: readMoments returns decoded f32 copies; the compact tensors come last", async () => {
  let state = await adam({ states: "8bit", lr: 0.1 }).init({
    z: new Float32Array(5000),
    a: new Float32Array(3),
  });
  state = step(state, { z: new Float32Array(5000).fill(2), a: new Float32Array([1, 2, 3]) });
  const { exp_avg, exp_avg_sq } = await readMoments(state);
  // one value in the block: it is its scale, stored exactly; the small tensor is f32
  assert.ok(exp_avg.z.every((x) => x === Math.fround(0.1 * 2)));
  assert.ok(exp_avg_sq.z.every((x) => x === Math.fround(Math.fround(1 - 0.999) * 4)));
  assert.deepEqual(exp_avg.a, Float32Array.from([0.1, 0.2, 0.3].map(Math.fround)));
  exp_avg.z[0] = 5; // a copy
  assert.notEqual((await readMoments(state)).exp_avg.z[0], 5);
  assert.deepEqual(state.names, ["a", "z"]);
  assert.deepEqual(Object.keys(state.params).sort(), ["a", "z"]);
});

for (const backend of ["wasm", "js"] as const) {
  Deno.test(`${backend}: zero-copy slots give the same result as copied gradients`, async () => {
    const p = { a: new Float32Array([1, 2, 3, 4, 5]), b: new Float32Array([-1, 0.5]) };
    let copied = await radam({ backend, lr: 0.1 }).init(p);
    let zero = await radam({ backend, lr: 0.1 }).init(p);
    const slotA = zero.grads.a, slotB = zero.grads.b, paramA = zero.params.a;
    for (let t = 1; t <= 10; t++) {
      const g = { a: grad(5, Math.sin(t)), b: grad(2, Math.cos(t)) };
      copied = step(copied, g);
      zero.grads.a.set(g.a);
      zero.grads.b.set(g.b);
      zero = t % 2 ? step(zero) : step(zero, zero.grads);
    }
    assert.deepEqual(await readParams(zero), await readParams(copied));
    // the views are the same objects, still valid, and live
    assert.equal(zero.grads.a, slotA);
    assert.equal(zero.grads.b, slotB);
    assert.equal(zero.params.a, paramA);
    assert.deepEqual(paramA, (await readParams(zero)).a);
  });

  Deno.test(`${backend}: step returns a new state and consumes the old one`, async () => {
    const s0 = await radam({ backend }).init({ w: grad(4, 1) });
    const s1 = step(s0, { w: grad(4, 1) });
    assert.notEqual(s0, s1);
    assert.equal(s1.step, 1);
    const consumed = /consumed by step\(\)/;
    assert.throws(() => s0.step, consumed);
    assert.throws(() => s0.params, consumed);
    assert.throws(() => step(s0, { w: grad(4, 1) }), consumed);
    await assert.rejects(() => readParams(s0), consumed); // a rejection, not a throw
    await assert.rejects(() => readMoments(s0), consumed);
    assert.equal(step(s1, { w: grad(4, 1) }).step, 2);
  });

  Deno.test(`${backend}: a bare Float32Array is one tensor named ""`, async () => {
    let state = await adam({ backend }).init(new Float32Array([1, 2, 3]));
    assert.deepEqual(state.names, [SINGLE_TENSOR_NAME]);
    state = step(state, new Float32Array([1, 1, 1]));
    state = step(state, { "": new Float32Array([1, 1, 1]) });
    const params = await readParams(state);
    assert.deepEqual(Object.keys(params), [""]);
    assert.ok(params[""][0] < 1);
  });

  Deno.test(`${backend}: init copies params; readParams returns copies`, async () => {
    const w = new Float32Array([1, 2]);
    let state = await radam({ backend }).init({ w });
    const snapshot = (await readParams(state)).w;
    w[0] = 100;
    assert.equal(state.params.w[0], 1, "caller's array is not the arena");
    state = step(state, { w: grad(2, 1) });
    assert.deepEqual(snapshot, new Float32Array([1, 2]), "copy did not change");
  });

  Deno.test(`${backend}: lr schedules are called with the 1-based step`, async () => {
    const seen: number[] = [];
    let state = await radam({ backend, lr: (t) => (seen.push(t), 0.01 * t) }).init(grad(4, 1));
    for (let i = 0; i < 8; i++) state = step(state, grad(4, 1));
    assert.deepEqual(seen, [1, 2, 3, 4, 5, 6, 7, 8]);
  });

  Deno.test(`${backend}: Adam's first step moves each weight by lr (sign of the gradient)`, async () => {
    let state = await adam({ backend, lr: 1e-3 }).init({ w: new Float32Array([1, -1, 0]) });
    state = step(state, { w: new Float32Array([0.5, -2, 3]) });
    const { w } = await readParams(state);
    const expected = [1 - 1e-3, -1 + 1e-3, -1e-3];
    for (let i = 0; i < 3; i++) assert.ok(Math.abs(w[i] - expected[i]) < 1e-7, `${w[i]}`);
    const { exp_avg, exp_avg_sq } = await readMoments(state);
    assert.ok(Math.abs(exp_avg.w[1] - -0.2) < 1e-7);
    assert.ok(Math.abs(exp_avg_sq.w[1] - 0.004) < 1e-9);
    // unrectified: lr · sqrt(1 − β2) / (1 − β1)
    assert.equal(scalarsAt(state, 1).stepSize, 1e-3 * Math.sqrt(1 - 0.999) / (1 - 0.9));
  });

  Deno.test(`${backend}: maximize climbs instead of descending`, async () => {
    let state = await radam({ backend, maximize: true, lr: 0.1 }).init({ w: grad(3, 0) });
    state = step(state, { w: grad(3, 1) });
    assert.ok((await readParams(state)).w.every((x) => x > 0));
  });

  Deno.test(`${backend}: zero-length tensors are allowed beside others`, async () => {
    let state = await radam({ backend }).init({ empty: new Float32Array(0), w: grad(3, 1) });
    state = step(state, { empty: new Float32Array(0), w: grad(3, 1) });
    assert.equal((await readParams(state)).empty.length, 0);
  });
}

Deno.test("states are independent: growing one instance never detaches another's views", async () => {
  const a = await radam().init({ w: grad(8, 1) });
  const view = a.params.w;
  const big = await radam().init({ w: new Float32Array(1 << 20) });
  assert.equal(view.length, 8, "view still attached");
  assert.equal(view[0], 1);
  assert.equal(big.params.w.length, 1 << 20);
});

Deno.test("settings: each rule's own hyperparameters are typed, and nested only", () => {
  // Compiles only if each factory's settings carry its rule's types (`deno check` runs on tests).
  const r = radam({ eps: 1e-6, threshold: 6 });
  const eps: number = r.settings.hyperparameters.eps * 2;
  const threshold: number = r.settings.hyperparameters.threshold + 1;
  const nesterov: boolean = !r.settings.hyperparameters.nesterov;
  assert.equal(eps, 2e-6);
  assert.equal(threshold, 7);
  assert.equal(nesterov, true);
  const a = adamw({ eps: 1e-7 });
  const decoupled: boolean = a.settings.hyperparameters.decoupledWeightDecay;
  assert.equal(decoupled, true);
  assert.equal(a.settings.hyperparameters.eps * 10, 1e-6);
  // LookAhead keeps the inner rule's types; Ranger is RAdam's.
  const wrapped = lookahead(adam({ eps: 1e-5 }), { k: 3 });
  assert.equal(wrapped.settings.hyperparameters.eps + 0, 1e-5);
  assert.equal(ranger().settings.hyperparameters.threshold - 5, 0);
  const l = lion();
  // @ts-expect-error Lion has no eps
  const none: number = l.settings.hyperparameters.eps;
  assert.equal(none, undefined);
  // @ts-expect-error settings have no flat copy of a hyperparameter (no index signature)
  assert.equal(r.settings.eps, undefined);
  // @ts-expect-error nor of how a state runs
  assert.equal(r.settings.threads, undefined);
  // @ts-expect-error nor of a training-loop feature
  assert.equal(r.settings.gc, undefined);
  assert.deepEqual(Object.keys(r.settings).sort(), [
    "hyperparameters",
    "loop",
    "name",
    "rule",
    "run",
  ]);
  // Every optimizer is still an Optimizer (the default view: the common hyperparameters).
  const all: Optimizer[] = [r, a, wrapped, l, ranger()];
  assert.equal(all.length, 5);
});

Deno.test("settings: the hyperparameters every rule has are typed (arithmetic needs no cast)", () => {
  for (
    const optimizer of [radam({ lr: 0.02 }), lion({ lr: 0.02 }), lookahead(adamw({ lr: 0.02 }))]
  ) {
    const s = optimizer.settings;
    const h = s.hyperparameters;
    // Compiles only if these are typed (number / boolean), not unknown.
    const lr: number = typeof h.lr === "number" ? h.lr * 2 : NaN;
    const decay: number = h.weightDecay * 2;
    const maximize: boolean = !h.maximize;
    const threads: number = s.run.threads + 1;
    const gc: boolean = !s.loop.gc;
    assert.equal(lr, 0.04, s.name);
    assert.ok(decay >= 0, s.name);
    assert.equal(maximize, true, s.name);
    assert.equal(threads, 2, s.name);
    assert.equal(gc, true, s.name);
  }
});

Deno.test("console.log(state) shows its optimizer, backend, step, tensors, parameters and states (Deno and Node), or that it was consumed or disposed", async () => {
  // It showed "StateHandle {}" (the getters are on the prototype).
  let state = await ranger({ states: "8bit", backend: "js" }).init({
    w: new Float32Array(5000),
    b: new Float32Array(3),
  });
  const first = state;
  state = step(state, { w: grad(5000, 0.1), b: grad(3, 0.1) });
  const shown = 'OptimizerState { optimizer: "ranger", backend: "js", step: 1, tensors: 2, ' +
    'parameters: 5003, states: "8bit" }';
  const oneLine = { breakLength: Infinity };
  assert.equal(Deno.inspect(state, oneLine), shown);
  // Node's util.inspect (the npm package's) quotes strings its own way.
  assert.equal(inspect(state, oneLine), shown.replaceAll('"', "'"));
  assert.equal(
    Deno.inspect(first),
    "OptimizerState <consumed by step(): use the state it returned>",
  );
  assert.equal(
    inspect([first]),
    "[ OptimizerState <consumed by step(): use the state it returned> ]",
  );
  dispose(state);
  assert.equal(Deno.inspect(state), "OptimizerState <disposed>");
  assert.equal(inspect(state), "OptimizerState <disposed>");
});

Deno.test("step: gradients that are not Float32Arrays fail type-checking too, not only at run time", async () => {
  // The overload for a state of either kind (GPU or CPU) took grads of any type, so these
  // type-checked (a state typed `OptimizerState` matches it) and failed only when run.
  const state = await radam().init({ w: new Float32Array(2) });
  const numbers: Record<string, number[]> = { w: [1, 2] };
  // @ts-expect-error numbers in an Array are not a gradient
  assert.throws(() => step(state, numbers), TypeError);
  // @ts-expect-error nor is a Float64Array
  assert.throws(() => step(state, { w: new Float64Array(2) }), TypeError);
  assert.equal(state.step, 0);
});

Deno.test("step: a gradient that is not an enumerable property of its record is missing, as init would not take it, and no other one slips past the check", async () => {
  // It was found (an own property) but not counted (for...in): "Unexpected gradient undefined",
  // and beside it an extra gradient was taken for it by the count and ignored.
  for (const backend of ["js", "wasm"] as const) {
    let state = await radam({ backend }).init({ w: grad(2, 1), b: grad(1, 1) });
    const hidden = (more: Record<string, Float32Array> = {}) =>
      Object.defineProperty({ b: grad(1, 1), ...more }, "w", { value: grad(2, 1) });
    const missing = 'Missing gradient for parameter "w" (the record has it as a property that is ' +
      "not enumerable: make it an enumerable one)";
    assert.throws(() => step(state, hidden()), saying(TypeError, missing));
    assert.throws(
      () => step(state, hidden({ x: grad(2, 1) })),
      saying(TypeError, `${missing}; got an unexpected "x"`),
    );
    assert.equal(state.step, 0);
    state = step(state, { w: grad(2, 1), b: grad(1, 1) });
    assert.equal(state.step, 1);
  }
});

Deno.test("state.names is frozen: sorting it in place cannot put gradients in other tensors' slots", async () => {
  // It was the layout's own array: state.names.sort() reordered the names the step pairs with
  // the slots, so that a's gradient stepped b and b's stepped a, and readParams and checkpoints
  // gave each tensor the other's values.
  for (const backend of ["js", "wasm"] as const) {
    for (const states of ["32bit", "8bit"] as const) {
      const params = { b: new Float32Array(4096), a: new Float32Array(4096), c: grad(2, 0) };
      let state = await sgd({ backend, states, lr: 1 }).init(params);
      let loaded = await loadState(await saveState(state), { backend });
      for (const s of [state, loaded]) {
        assert.throws(() => (s.names as string[]).sort(), TypeError);
        assert.throws(() => (s.names as string[]).reverse(), TypeError);
        assert.ok(Object.isFrozen(s.names), `${backend}, ${states}`);
      }
      const grads = { a: grad(4096, 1), b: grad(4096, 5), c: grad(2, 3) };
      state = step(state, grads);
      loaded = step(loaded, grads);
      for (const s of [state, loaded]) {
        const read = await readParams(s);
        for (const [name, g] of Object.entries(grads)) {
          assert.equal(s.params[name][0], -g[0], `${backend}, ${states}: ${name}`);
          assert.equal(read[name][0], -g[0], `${backend}, ${states}: ${name} read`);
        }
      }
    }
  }
});

Deno.test("js: a state whose arena was transferred away says so, where it skipped every step", async () => {
  // The TypeScript backend's arena is a plain ArrayBuffer: transferred (postMessage of
  // state.params.w with its buffer in the transfer list), every view read as empty, and each
  // step was counted skipped, doing nothing, for ever (reads threw "Cannot perform Construct on
  // a detached ArrayBuffer").
  const detached = "This optimizer state's memory was detached";
  for (const options of [{}, { clipGradNorm: 1 }, { nonFinite: "propagate" as const }]) {
    let state = await radam({ backend: "js", ...options }).init({ w: grad(3, 1) });
    state = step(state, { w: grad(3, 1) });
    structuredClone(state.params.w, { transfer: [state.params.w.buffer as ArrayBuffer] });
    assert.throws(() => step(state, { w: grad(3, 1) }), saying(TypeError, detached));
    assert.throws(() => step(state), saying(TypeError, detached));
    assert.equal(state.step, 1);
    assert.equal(state.skippedSteps, 0);
    await assert.rejects(readParams(state), saying(TypeError, detached));
    await assert.rejects(readMoments(state), saying(TypeError, detached));
    await assert.rejects(saveState(state), saying(TypeError, detached));
  }
  // A WebAssembly memory cannot be transferred: the wasm backend refuses at the transfer.
  const wasm = await radam({ backend: "wasm" }).init({ w: grad(3, 1) });
  assert.throws(() =>
    structuredClone(wasm.params.w, { transfer: [wasm.params.w.buffer as ArrayBuffer] })
  );
  assert.equal(step(wasm, { w: grad(3, 1) }).step, 1);
});
