/**
 * What a newcomer writes first, coming from PyTorch, optax or a config file, where the call
 * failed with JavaScript's own words or a message that did not say what to write: a boolean
 * option read as text (`maximize: "true"`) said only that it must be a boolean; a schedule's
 * options given as text (`cosineDecay(1e-3, "1000")`) only that they must be an object; a
 * function of the caller's named like a factory (`function adam() {}`) was told to be called as
 * if it were the library's; `radam.init(params)` (optax's `optax.adam(lr).init(params)`) and
 * `opt.update(grads, state)` were "is not a function"; `step(state, grads, lr)` and `step(state,
 * params, grads)` dropped the third argument silently; Ranger's, optax's and Hugging Face's
 * names of options (`use_gc`, `sync_period`, `max_grad_norm`) were only unknown, as were optax's
 * and Keras's of a cosine decay (`alpha`, `init_value`); and a generator given to `init`
 * (`model.parameters()`) was described as "".
 */
import assert from "node:assert/strict";
import {
  adam,
  cosineDecay,
  linearWarmup,
  lookahead,
  oneCycle,
  type OptimizerState,
  radam,
  ranger,
  readParams,
  sgd,
  step,
} from "../mod.ts";
import { memoryCheckpointStore, optimisticStep } from "../store.ts";
import { saying } from "./util.ts";

const AS_TEXT = ' (a boolean as text: convert it, value === "true")';

Deno.test("a boolean option given as text, from a config file or an environment variable, says how to convert it", () => {
  // Text other than "true" or "false" (Python's "True", " false") is told a conversion that
  // reads it as it means: value === "true" would be false for "True".
  const FOLDED = ' (a boolean as text: convert it, value.trim().toLowerCase() === "true")';
  const cases: [string, () => unknown, string][] = [
    ["maximize", () => radam({ maximize: "true" as never }), AS_TEXT],
    ["decoupledWeightDecay", () => adam({ decoupledWeightDecay: "false" as never }), AS_TEXT],
    ["degenerateToSgd", () => radam({ degenerateToSgd: " False " as never }), FOLDED],
    ["nesterov", () => sgd({ momentum: 0.9, nesterov: "TRUE" as never }), FOLDED],
    ["maximize", () => adam({ maximize: "True" as never }), FOLDED],
    ["gc", () => ranger({ gc: "false" as never }), AS_TEXT],
  ];
  for (const [name, make, hint] of cases) {
    assert.throws(make, (e: Error) => {
      assert.ok(e instanceof TypeError);
      assert.match(e.message, new RegExp(`^Option ${name} must be a boolean, got a string`));
      assert.ok(e.message.endsWith(hint), e.message);
      return true;
    });
  }
  // Each conversion the errors give reads the text as it means.
  for (const value of ["True", " false ", "TRUE", "true", "False"]) {
    assert.equal(value.trim().toLowerCase() === "true", /true/i.test(value));
  }
  // Other text is not taken for a boolean's, and a number's text still says Number(value).
  assert.throws(
    () => radam({ maximize: "yes" as never }),
    (e: Error) => e.message.endsWith('"yes"'),
  );
  assert.throws(() => radam({ lr: "1e-3" as never }), /Number\(value\)\)$/);
});

Deno.test("a store's boolean option given as text says how to convert it; nothing is saved", async () => {
  const store = memoryCheckpointStore();
  await assert.rejects(
    optimisticStep(store, {
      optimizer: radam(),
      init: () => ({ w: new Float32Array(2) }),
      gradient: (s) => void s.grads.w.fill(1),
      serialize: "true" as never,
    }),
    saying(TypeError, `Option serialize must be a boolean, got a string "true"${AS_TEXT}`),
  );
  assert.equal(await store.load(), null);
});

Deno.test("LookAhead's names in other libraries given to the store say where k and alpha go", async () => {
  const store = memoryCheckpointStore();
  const cases: [string, string][] = [
    [
      "sync_period",
      "(sync_period is an option of the optimizer, k there: optimizer: lookahead(radam(), { k }))",
    ],
    [
      "la_alpha",
      "(la_alpha is an option of the optimizer, alpha there: optimizer: lookahead(radam(), { alpha }))",
    ],
    ["use_gc", "(use_gc is an option of the optimizer, gc there: optimizer: radam({ … }))"],
  ];
  for (const [key, hint] of cases) {
    await assert.rejects(
      optimisticStep(store, {
        optimizer: radam(),
        init: () => ({ w: new Float32Array(2) }),
        gradient: (s: OptimizerState) => void s.grads.w.fill(1),
        [key]: 1,
      } as never),
      (e: Error) => {
        assert.ok(e instanceof TypeError);
        assert.match(e.message, new RegExp(`^Unknown option ${key} for optimisticStep; `));
        assert.ok(e.message.endsWith(` ${hint}`), e.message);
        return true;
      },
    );
  }
  assert.equal(await store.load(), null);
});

Deno.test("a schedule's options given as text say to write them in an object", () => {
  assert.throws(
    () => cosineDecay(1e-3, "1000" as never),
    saying(
      TypeError,
      'Options of cosineDecay must be an object, got a string "1000" (write cosineDecay(1e-3, ' +
        "{ decaySteps: 1000 }))",
    ),
  );
  assert.throws(
    () => cosineDecay(1e-3, "x" as never),
    saying(TypeError, "(write cosineDecay(1e-3, { decaySteps: 1000 }))"),
  );
  assert.throws(
    () => linearWarmup(1e-3, "100" as never),
    saying(TypeError, "(write linearWarmup(1e-3, { warmupSteps: 100 }))"),
  );
  assert.throws(
    () => oneCycle(1e-3, "cos" as never),
    saying(TypeError, "(write oneCycle(1e-3, { totalSteps: 1000 }))"),
  );
});

Deno.test("a function of the caller's named like a factory is not taken for the library's", async () => {
  function adam() {
    return 1e-3;
  }
  const radamLike = Object.defineProperty(() => {}, "name", { value: "radam" });
  for (const f of [adam, radamLike]) {
    assert.throws(
      () => lookahead(f as never),
      (e: Error) => e instanceof TypeError && e.message.endsWith("e.g. radam(), got a function"),
    );
    assert.throws(() => step(f as never), (e: Error) => !/a factory/.test(e.message));
  }
  // The library's own, and another copy's (marked alike, under the registered symbol), are.
  assert.throws(
    () => lookahead(radam as never),
    saying(TypeError, "(a factory: call it, radam())"),
  );
  const otherCopys = Object.defineProperty(() => ({}), Symbol.for("@optim/radam.factory"), {
    value: "adamw",
  });
  assert.throws(() => lookahead(otherCopys as never), saying(TypeError, "call it, adamw())"));
  await assert.rejects(
    readParams(otherCopys as never),
    saying(TypeError, "(a factory: call it, and make its state, await adamw().init(params))"),
  );
});

Deno.test("a factory's init, called as optax's optimizer's is, says to call the factory first", () => {
  for (const [name, factory] of Object.entries({ radam, adam, sgd, ranger })) {
    assert.throws(
      () => (factory as unknown as { init(p: unknown): unknown }).init({ w: new Float32Array(2) }),
      saying(
        TypeError,
        `${name}.init: ${name} is the factory, not an optimizer: call it first, ` +
          `await ${name}({ lr: 1e-3 }).init(params)`,
      ),
    );
    // Not enumerable: a factory still looks as it did.
    assert.deepEqual(Object.keys(factory), []);
  }
});

Deno.test("opt.update(grads, state), as optax writes it, says how a state is stepped", () => {
  assert.throws(
    () => (radam() as unknown as { update(): void }).update(),
    saying(TypeError, "An optimizer has no update() method: it holds no state."),
  );
  assert.deepEqual(Object.keys(radam()), ["name", "settings", "init"]);
});

Deno.test("step given a third argument (a learning rate, the parameters) is refused; the state steps on", async () => {
  let state: OptimizerState = await radam({ lr: 0.1 }).init({ w: new Float32Array([1, 2]) });
  const g = { w: new Float32Array([1, 1]) };
  const refuse = (extra: unknown, hint: string) =>
    assert.throws(
      () => (step as (...args: unknown[]) => unknown)(state, g, extra),
      saying(
        TypeError,
        "step takes two arguments, step(state, grads), and would drop the others, got a third, " +
          hint,
      ),
    );
  refuse(1e-3, "0.001 (a learning rate is the optimizer's option, radam({ lr })");
  refuse({ lr: 1e-3 }, "Object (a learning rate is the optimizer's option");
  refuse(
    state.params,
    "Object (tensors: a state holds its parameters, state.params, which each step",
  );
  refuse(-1, "-1 (a learning rate is the optimizer's option");
  refuse(new Float32Array(2), "Float32Array (tensors: a state holds its parameters");
  assert.equal(state.step, 0);
  assert.deepEqual([...(await readParams(state)).w], [1, 2]);
  state = (step as (...args: unknown[]) => OptimizerState)(state, g, undefined);
  assert.equal(state.step, 1);
});

Deno.test("step given as a callback, which is given an index or a key beside the state and the gradients, steps as before", async () => {
  const grads = [1, 2, 3].map((x) => ({ w: new Float32Array([x, x]) }));
  const init = () => radam({ lr: 0.1 }).init({ w: new Float32Array([1, 2]) });
  // Array's reduce: (state, grads, index, array).
  const reduced = grads.reduce(step, await init());
  assert.equal(reduced.step, 3);
  // RxJS's scan, lodash's reduce over an object: (state, grads, index or key).
  const scan = step as (state: OptimizerState, g: unknown, at: unknown) => OptimizerState;
  let scanned = await init();
  for (const [i, g] of grads.entries()) scanned = scan(scanned, g, i);
  scanned = scan(scanned, grads[0], "fc");
  assert.equal(scanned.step, 4);
  // The same steps taken one by one.
  let plain = await init();
  for (const g of [...grads, grads[0]]) plain = step(plain, g);
  assert.deepEqual((await readParams(scanned)).w, (await readParams(plain)).w);
});

Deno.test("Ranger's, LookAhead's and clipping's names in other libraries say which option they are", () => {
  const cases: [() => unknown, string][] = [
    [() => ranger({ use_gc: false } as never), "(use_gc is gc here)"],
    [() => ranger({ N_sma_threshhold: 5 } as never), "(N_sma_threshhold is threshold here)"],
    [() => ranger({ la_steps: 6 } as never), "(la_steps is k here)"],
    [() => ranger({ la_alpha: 0.5 } as never), "(la_alpha is alpha here)"],
    [() => lookahead(adam(), { sync_period: 6 } as never), "(sync_period is k here)"],
    [() => lookahead(adam(), { slowStepSize: 0.5 } as never), "(slowStepSize is alpha here)"],
    [() => adam({ max_grad_norm: 1 } as never), "(max_grad_norm is clipGradNorm here)"],
    [() => adam({ global_clipnorm: 1 } as never), "(global_clipnorm is clipGradNorm here)"],
    [() => adam({ schedule: () => 1e-3 } as never), "(schedule is lr here)"],
  ];
  for (const [make, hint] of cases) assert.throws(make, saying(TypeError, hint));
  // Where the option is not the optimizer's, nothing is said of it (radam has no k).
  assert.throws(() => radam({ sync_period: 6 } as never), (e: Error) => !/ here\)/.test(e.message));
});

Deno.test("a generator of tensors given to init (model.parameters()) says each needs a name", async () => {
  function* parameters() {
    yield new Float32Array(2);
  }
  await assert.rejects(
    radam().init(parameters() as never),
    saying(
      TypeError,
      "got an object (an iterator, as PyTorch's model.parameters(): name each, as its " +
        "named_parameters() does",
    ),
  );
});

Deno.test("optax's and Keras's names of a cosine decay's options say which they are, or the call to write", () => {
  assert.throws(
    () => cosineDecay(1e-3, { decaySteps: 100, alpha: 0.1 } as never),
    saying(
      TypeError,
      "(alpha, in optax and Keras a fraction of lr, is finalLr here, the rate itself, alpha × lr: " +
        "cosineDecay(1e-3, { decaySteps: 1000 }))",
    ),
  );
  assert.throws(
    () => cosineDecay(1e-3, { decaySteps: 100, end_value: 0 } as never),
    saying(TypeError, "(end_value is finalLr here: "),
  );
  // optax's cosine_decay_schedule(init_value, decay_steps) and Keras's CosineDecay, by name.
  for (
    const given of [{ init_value: 0.01, decay_steps: 50 }, {
      initialLearningRate: 0.01,
      decaySteps: 50,
    }]
  ) {
    assert.throws(
      () => cosineDecay(given as never, undefined as never),
      saying(TypeError, "got Object (write cosineDecay(0.01, { decaySteps: 50 }))"),
    );
  }
});

Deno.test("another library's name of a schedule's option is said only to a maker that has the option", () => {
  // linearWarmup and oneCycle have no finalLr, linearWarmup no decaySteps nor totalSteps, oneCycle
  // no warmupSteps: their errors name their own options alone.
  const cases: [() => unknown, string][] = [
    [() => linearWarmup(1e-3, { warmupSteps: 10, alpha: 0.1 } as never), "alpha"],
    [() => oneCycle(1e-3, { totalSteps: 10, end_value: 0 } as never), "end_value"],
    [() => oneCycle(1e-3, { totalSteps: 10, eta_min: 0 } as never), "eta_min"],
    [() => linearWarmup(1e-3, { warmupSteps: 10, T_max: 5 } as never), "T_max"],
    [() => linearWarmup(1e-3, { warmupSteps: 10, epochs: 5 } as never), "epochs"],
    [() => cosineDecay(1e-3, { decaySteps: 10, final_div_factor: 5 } as never), "final_div_factor"],
    [() => oneCycle(1e-3, { totalSteps: 10, warmup: 5 } as never), "warmup"],
  ];
  for (const [make, key] of cases) {
    assert.throws(make, (e: Error) => {
      assert.ok(e instanceof TypeError);
      assert.match(
        e.message,
        new RegExp(`^Unknown option ${key} for \\w+; expected one of [\\w, ]+$`),
      );
      return true;
    });
  }
  // Where the maker has it, or it is the learning rate (every maker's first argument), it is said.
  assert.throws(
    () => oneCycle(1e-3, { totalSteps: 10, max_lr: 0.1 } as never),
    saying(
      TypeError,
      "(max_lr is the first argument here, lr: oneCycle(1e-3, { totalSteps: 1000 }))",
    ),
  );
  assert.throws(
    () => oneCycle(1e-3, { totalSteps: 10, epochs: 5 } as never),
    saying(TypeError, "(totalSteps here is epochs × stepsPerEpoch: "),
  );
});
