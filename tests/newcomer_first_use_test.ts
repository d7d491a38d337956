/**
 * What a newcomer writes first, out of another library's habits, and that each now says what to
 * write instead where it was JavaScript's own error or no hint: `opt.zero_grad()` (PyTorch's),
 * `radam({ maximize: 1 })` (and a store's `serialize: 1`), LookAhead's `k` (or `sync_period`)
 * given to a factory without it (a bare `alpha` told `lr` too: it is the Adam paper's step size),
 * Keras's `clipnorm` (said to be `clipGradNorm`, which clips by the global norm, not each
 * tensor's), `meanOfContributions` given null, `Array.from({ length: n }, adam)`, options after
 * `undefined` (`sgd(undefined, 0.9)`, whose hint wrote `...options`), and a symbol key or
 * `__proto__` assigned on a state's slots.
 */
import assert from "node:assert/strict";
import { adam, adamw, lion, lookahead, radam, ranger, sgd, step } from "../mod.ts";
import { meanOfContributions, memoryCheckpointStore, optimisticStep } from "../store.ts";
import { saying } from "./util.ts";

// deno-lint-ignore no-explicit-any
const call = (f: (...args: any[]) => unknown, ...args: unknown[]) => () => f(...args);

Deno.test("zero_grad() or zeroGrad() on an optimizer or a state says nothing needs zeroing; the state steps on", async () => {
  const opt = radam({ lr: 0.1 });
  let state = await opt.init({ w: new Float32Array([1, 2]) });
  for (const method of ["zero_grad", "zeroGrad"]) {
    for (const [what, value] of [["An optimizer", opt], ["A state", state]] as const) {
      assert.throws(
        () => (value as unknown as Record<string, () => void>)[method](),
        saying(
          TypeError,
          `${what} has no ${method}() method, and nothing needs zeroing: gradients are given to ` +
            "each step, state = step(state, grads)",
        ),
      );
    }
  }
  assert.throws(
    () => (lookahead(adam()) as unknown as { zero_grad(): void }).zero_grad(),
    saying(TypeError, "zeroes them after each step, state.grads.w.fill(0)"),
  );
  // Not own keys: the optimizer is as it was, spread and as JSON; the state steps on.
  assert.deepEqual(Object.keys(opt), ["name", "settings", "init"]);
  assert.deepEqual(Object.keys(state), []);
  state = step(state, { w: new Float32Array([1, 1]) });
  assert.equal(state.step, 1);
});

Deno.test("1 or 0 given for a boolean option says the boolean to write", () => {
  assert.throws(
    call(radam, { maximize: 1 }),
    saying(TypeError, "Option maximize must be a boolean, got 1 (a number: write maximize: true)"),
  );
  assert.throws(
    call(sgd, { momentum: 0.9, nesterov: 0 }),
    saying(TypeError, "Option nesterov must be a boolean, got 0 (a number: write nesterov: false)"),
  );
  // Another number has no boolean to name; text keeps its own hint.
  assert.throws(call(adam, { maximize: 2 }), (e: Error) => e.message.endsWith("got 2"));
  assert.throws(call(adam, { maximize: "true" }), saying(TypeError, 'value === "true"'));
  assert.equal(radam({ maximize: true }).settings.hyperparameters.maximize, true);
});

Deno.test("1 or 0 given for a store's boolean option says the boolean to write; nothing is saved", async () => {
  const store = memoryCheckpointStore();
  for (const [value, write] of [[1, "true"], [0, "false"]] as const) {
    await assert.rejects(
      optimisticStep(store, {
        optimizer: radam(),
        init: () => ({ w: new Float32Array(2) }),
        gradient: (s) => void s.grads.w.fill(1),
        serialize: value as never,
      }),
      saying(
        TypeError,
        `Option serialize must be a boolean, got ${value} (a number: write serialize: ${write})`,
      ),
    );
  }
  assert.equal(await store.load(), null);
});

Deno.test("LookAhead's options given to a factory without LookAhead say how to wrap it", () => {
  assert.throws(
    call(radam, { sync_period: 6 }),
    saying(
      TypeError,
      "(sync_period is LookAhead's k, an option of lookahead, which wraps an optimizer: " +
        "lookahead(radam(), { k: 6 }), or ranger({ k: 6 }), Ranger: RAdam in LookAhead with " +
        "gradient centralization)",
    ),
  );
  assert.throws(
    call(adam, { k: 5 }),
    saying(
      TypeError,
      "(k is an option of lookahead, which wraps an optimizer: lookahead(adam(), { k: 5 }))",
    ),
  );
  assert.throws(call(sgd, { la_steps: 5 }), saying(TypeError, "lookahead(sgd(), { k: 5 })"));
  assert.throws(
    call(adamw, { alpha: 0.5 }),
    saying(TypeError, "lookahead(adamw(), { alpha: 0.5 })"),
  );
  assert.throws(
    call(lion, { slow_step_size: "x" }),
    saying(TypeError, "lookahead(lion(), { alpha })"),
  );
  // alpha is also the learning rate as the Adam paper (its step size α) and Chainer name it:
  // adam({ alpha: 1e-3 }) is told lr first, not only LookAhead's alpha, where 0.001 would run
  // and keep the slow weights all but still.
  for (const name of ["adam", "sgd"] as const) {
    const make = { adam, sgd }[name];
    assert.throws(
      call(make, { alpha: 1e-3 }),
      saying(
        TypeError,
        "(alpha, where it is the learning rate, as the Adam paper's step size α and Chainer's " +
          `Adam(alpha) are, is lr here: ${name}({ lr: 0.001 }); LookAhead's alpha is an option ` +
          `of lookahead, which wraps an optimizer: lookahead(${name}(), { alpha: 0.001 }))`,
      ),
    );
  }
  assert.throws(call(adam, { alpha: "x" }), saying(TypeError, "is lr here: adam({ lr });"));
  assert.throws(
    call(radam, { alpha: 0.5 }),
    saying(TypeError, "lookahead(radam(), { alpha: 0.5 }), or ranger({ alpha: 0.5 }), Ranger:"),
  );
  // Another library's name of LookAhead's alpha is LookAhead's alone.
  assert.throws(
    call(adam, { slow_step_size: 0.5 }),
    (e: Error) =>
      e.message.endsWith(
        "(slow_step_size is LookAhead's alpha, an option of lookahead, which wraps an " +
          "optimizer: lookahead(adam(), { alpha: 0.5 }))",
      ),
  );
  // What the hints write works; ranger's own k, and its other names, as before.
  assert.equal(lookahead(radam(), { k: 6 }).settings.lookahead?.k, 6);
  assert.equal(ranger({ k: 6 }).settings.lookahead?.k, 6);
  assert.throws(call(ranger, { sync_period: 6 }), saying(TypeError, "(sync_period is k here)"));
});

Deno.test("LookAhead's options given to a factory without LookAhead keep the others in the call they write", () => {
  assert.throws(
    call(radam, { lr: 1e-3, sync_period: 6 }),
    saying(
      TypeError,
      "lookahead(radam({ lr: 0.001 }), { k: 6 }), or ranger({ lr: 0.001, k: 6 }), Ranger:",
    ),
  );
  // LookAhead's others go to lookahead, under their names here; a value not written is named.
  assert.throws(
    call(adam, { slow_step_size: 0.45, lr: () => 1e-3, sync_period: 6, betas: [0.95, 0.999] }),
    saying(
      TypeError,
      "(slow_step_size is LookAhead's alpha, an option of lookahead, which wraps an optimizer: " +
        "lookahead(adam({ lr, betas: [0.95, 0.999] }), { alpha: 0.45, k: 6 }))",
    ),
  );
  // Many options: the first three, then "…".
  assert.throws(
    call(sgd, { lr: 0.1, momentum: 0.9, nesterov: true, dampening: 0, k: 5 }),
    saying(TypeError, "lookahead(sgd({ lr: 0.1, momentum: 0.9, nesterov: true, … }), { k: 5 })"),
  );
  // A bare alpha, the learning rate: lr in its place, beside the others.
  assert.throws(
    call(adam, { alpha: 1e-3, eps: 1e-7 }),
    saying(TypeError, "is lr here: adam({ lr: 0.001, eps: 1e-7 }); LookAhead's alpha is "),
  );
  // What they write works.
  const written = lookahead(radam({ lr: 0.001 }), { k: 6 }).settings;
  assert.deepEqual([written.hyperparameters.lr, written.lookahead?.k], [0.001, 6]);
});

Deno.test("Keras's clipnorm says that clipGradNorm clips by the global norm, not each tensor's", async () => {
  for (const key of ["clipnorm", "clipNorm"]) {
    assert.throws(
      call(adam, { [key]: 1 }),
      saying(
        TypeError,
        `(${key}, Keras's, clips each tensor's gradient by its own norm, which this library does ` +
          "not: clipGradNorm clips all the gradients together by their global norm",
      ),
    );
    // Given beside an optimizer made (to init, lookahead, tfOptimizer), the same.
    const init = adam().init({ w: new Float32Array(2) }, { [key]: 1 } as never);
    const global = "which clips all the gradients together by their global norm (Keras's " +
      "global_clipnorm), not each tensor's by its own as Keras's clipnorm does)";
    await assert.rejects(
      init,
      saying(
        TypeError,
        `(${key} is an option of the optimizer, clipGradNorm there: adam({ clipGradNorm }), ${global}`,
      ),
    );
    assert.throws(
      call(lookahead, adam(), { [key]: 1 }),
      saying(TypeError, `lookahead(adam({ clipGradNorm })), ${global}`),
    );
  }
  // Keras's global_clipnorm and PyTorch's max_norm are clipGradNorm.
  assert.throws(
    call(adam, { global_clipnorm: 1 }),
    saying(TypeError, "(global_clipnorm is clipGradNorm here)"),
  );
  assert.throws(call(adam, { max_norm: 1 }), saying(TypeError, "(max_norm is clipGradNorm here)"));
});

Deno.test("Keras's clipvalue says there is no clipping by value here, and to clamp each gradient before the step", async () => {
  for (const key of ["clipvalue", "clipValue"]) {
    const hint = `(${key}, Keras's, clips each gradient's elements to [−v, v], which this ` +
      "library does not: its only clipping is clipGradNorm, of all the gradients together by " +
      "their global norm; to clip by value, clamp each gradient's elements to [−v, v] before " +
      "the step, g[i] = Math.min(v, Math.max(-v, g[i])))";
    const ends = (e: Error) => e instanceof TypeError && e.message.endsWith(hint);
    assert.throws(call(adam, { [key]: 1 }), ends);
    assert.throws(call(lookahead, adam(), { [key]: 1 }), ends);
    await assert.rejects(adam().init({ w: new Float32Array(2) }, { [key]: 1 } as never), ends);
  }
});

Deno.test("meanOfContributions given null or a part of another type names the argument; out is left as it was", () => {
  const part = { samples: 2, gradient: new Float32Array([1, 3]) };
  const out = new Float32Array([7, 7]);
  const cases: [() => void, ErrorConstructor, string][] = [
    [
      call(meanOfContributions, [part], null),
      TypeError,
      "out must be a Float32Array (where the mean is written), got null",
    ],
    [
      call(meanOfContributions, null, out),
      TypeError,
      "parts must be an array (or an iterable) of { samples, gradient }, got null",
    ],
    [call(meanOfContributions, [part], out, null), TypeError, "acc must be a Float64Array"],
    [
      call(meanOfContributions, [part, null], out),
      TypeError,
      "parts[1] must be { samples, gradient }, got null",
    ],
    [
      call(meanOfContributions, [{ samples: 1 }], out),
      TypeError,
      "parts[0].gradient must be a Float32Array, got undefined",
    ],
    [
      call(meanOfContributions, [part, { ...part, samples: "8" }], out),
      TypeError,
      'parts[1].samples must be a number, got a string "8"',
    ],
    [
      call(meanOfContributions, [part, { ...part, samples: -1 }], out),
      RangeError,
      "parts[1].samples must be finite and ≥ 0, got -1",
    ],
  ];
  for (const [f, kind, text] of cases) {
    assert.throws(f, saying(kind, `meanOfContributions(parts, out, acc?): ${text}`));
    assert.deepEqual([...out], [7, 7]);
  }
  meanOfContributions([part, { samples: 0, gradient: new Float32Array(2) }], out);
  assert.deepEqual([...out], [1, 3]);
});

Deno.test("Array.from({ length: n }, adam) says how to make each; options after undefined show a real call", () => {
  assert.throws(
    () => Array.from({ length: 2 }, adam as never),
    saying(
      TypeError,
      "Options of adam go in one object, got 0 after undefined (if it is the β1, adam({ betas: " +
        "[0, 0.999] }); if it is an index, as Array.from({ length: n }, adam) passes one: make " +
        "each in a function of your own, Array.from({ length: n }, () => adam({ … })))",
    ),
  );
  assert.equal(Array.from({ length: 2 }, () => adam()).length, 2);
  assert.throws(
    call(sgd, undefined, 0.9),
    saying(
      TypeError,
      "Options of sgd go in one object, got 0.9 after undefined (sgd({ momentum: 0.9 }))",
    ),
  );
  assert.throws(
    call(adam, undefined, undefined, 0.99),
    saying(TypeError, "got 0.99 after undefined (adam({ betas: [0.9, 0.99] }))"),
  );
  assert.throws(
    call(lookahead, radam(), undefined, 0.5),
    saying(TypeError, "got 0.5 after undefined (lookahead(optimizer, { alpha: 0.5 }))"),
  );
  // After an options object given, the spread of it stays; map's index and array stay accepted.
  assert.throws(
    call(sgd, { lr: 0.1 }, 0.9),
    saying(TypeError, "sgd({ ...options, momentum: 0.9 })"),
  );
  assert.equal([undefined, undefined].map(adam as never).length, 2);
  assert.throws(call(adam, undefined, 1, []), TypeError); // (not map's: 1 is not the array's)
});

Deno.test("a symbol key or __proto__ assigned on a state's slots says the record holds its tensors alone", async () => {
  let state = await radam().init({ w: new Float32Array(2), b: new Float32Array(1) });
  const tag = Symbol("tag");
  for (const record of ["grads", "params"] as const) {
    const slots = state[record] as Record<string | symbol, unknown>;
    assert.throws(
      () => (slots[tag] = 1),
      saying(
        TypeError,
        `Cannot set state.${record}[Symbol(tag)]: state.${record} is frozen, the state's tensors ` +
          'by name, "w" and "b", and nothing else; keep what you attach to it in a WeakMap keyed by it',
      ),
    );
    assert.throws(
      () => (slots.__proto__ = {}),
      saying(TypeError, `Cannot set state.${record}.__proto__: state.${record} is frozen`),
    );
    assert.equal(Object.getPrototypeOf(Object.getPrototypeOf(slots)), Object.prototype);
    assert.equal(slots[tag], undefined);
  }
  state = step(state, { w: new Float32Array([1, 1]), b: new Float32Array([1]) });
  assert.equal(state.step, 1);
});
