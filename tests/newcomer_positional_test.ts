/**
 * Options given as positional arguments, as other libraries take them (`radam(0.001, 0.9)`, as
 * tfjs's `tf.train.adam(lr, beta1, beta2, epsilon)`; PyTorch's `Adam(params, lr, betas, eps,
 * weight_decay)`; `lookahead(opt, 5, 0.5)`, as PyTorch's `Lookahead(optimizer, k, alpha)`): the
 * error's hint showed the learning rate alone, `radam({ lr: 0.001 })`, dropping the betas. It
 * now shows the whole options object the arguments stand for, which the tests then run.
 */
import assert from "node:assert/strict";
import { adam, adamw, lion, lookahead, radam, ranger, sgd } from "../mod.ts";

/** The call the hint of `call` shows, after "by name, not in order: ". */
function hinted(call: () => unknown, name: string, lr: number): string {
  try {
    call();
  } catch (e) {
    assert.ok(e instanceof TypeError, String(e));
    const lead = `Options of ${name} must be an object, got ${lr} (options go in one object, ` +
      "by name, not in order: ";
    assert.ok(e.message.startsWith(lead), e.message);
    assert.ok(e.message.endsWith(")"), e.message);
    return e.message.slice(lead.length, -1);
  }
  assert.fail("not refused");
}

Deno.test("radam(0.001, 0.9) shows the options object with its betas, as each Adam's and Lion's order reads them", () => {
  // deno-lint-ignore no-explicit-any
  const given = (f: (...args: any[]) => unknown, ...args: unknown[]) => () => f(...args);
  assert.equal(
    hinted(given(radam, 0.001, 0.9), "radam", 0.001),
    "radam({ lr: 0.001, betas: [0.9, 0.999] })",
  );
  // tfjs's order: beta1, beta2, epsilon.
  assert.equal(
    hinted(given(adam, 0.002, 0.8, 0.99, 1e-7), "adam", 0.002),
    "adam({ lr: 0.002, betas: [0.8, 0.99], eps: 1e-7 })",
  );
  // PyTorch's: betas as a pair, eps, weight_decay.
  assert.equal(
    hinted(given(adamw, 0.001, [0.9, 0.95], 1e-6, 0.1), "adamw", 0.001),
    "adamw({ lr: 0.001, betas: [0.9, 0.95], eps: 0.000001, weightDecay: 0.1 })",
  );
  // Lion's β2 default is its own; it has no eps.
  assert.equal(
    hinted(given(lion, 1e-4, 0.95), "lion", 1e-4),
    "lion({ lr: 0.0001, betas: [0.95, 0.99] })",
  );
  assert.equal(
    hinted(given(lion, 1e-4, [0.9, 0.99], 0.01), "lion", 1e-4),
    "lion({ lr: 0.0001, betas: [0.9, 0.99], weightDecay: 0.01 })",
  );
  // What it shows runs, and means what was given.
  const { hyperparameters } = radam({ lr: 0.001, betas: [0.9, 0.999] }).settings;
  assert.deepEqual([hyperparameters.beta1, hyperparameters.beta2], [0.9, 0.999]);
});

Deno.test("sgd, ranger and lookahead given positional options show their objects; what cannot be placed is said to go by name", () => {
  // deno-lint-ignore no-explicit-any
  const given = (f: (...args: any[]) => unknown, ...args: unknown[]) => () => f(...args);
  // PyTorch's SGD order, and tfjs's momentum(lr, momentum, useNesterov).
  assert.equal(
    hinted(given(sgd, 0.1, 0.9, 0, 5e-4), "sgd", 0.1),
    "sgd({ lr: 0.1, momentum: 0.9, dampening: 0, weightDecay: 0.0005 })",
  );
  assert.equal(
    hinted(given(sgd, 0.1, 0.9, true), "sgd", 0.1),
    "sgd({ lr: 0.1, momentum: 0.9, nesterov: true })",
  );
  // Ranger's own order: alpha, k, threshold, then betas.
  assert.equal(
    hinted(given(ranger, 0.001, 0.5, 6), "ranger", 0.001),
    "ranger({ lr: 0.001, alpha: 0.5, k: 6 })",
  );
  assert.equal(
    hinted(given(ranger, 0.001, 0.9, 0.999), "ranger", 0.001),
    "ranger({ lr: 0.001, alpha: 0.9 }); name the other arguments too",
  );
  assert.equal(
    hinted(given(radam, 0.001, "0.9"), "radam", 0.001),
    "radam({ lr: 0.001 }); name the other arguments too",
  );
  assert.equal(
    sgd({ lr: 0.1, momentum: 0.9, nesterov: true }).settings.hyperparameters.momentum,
    0.9,
  );
  assert.throws(() => (lookahead as (...a: unknown[]) => unknown)(radam(), 5, 0.5), {
    name: "TypeError",
    message:
      "Options of lookahead must be an object, got 5 (k is an option: lookahead(optimizer, { k: 5, alpha: 0.5 }))",
  });
  // A learning rate alone, or followed by undefined, keeps its hint.
  assert.throws(() => (radam as (...a: unknown[]) => unknown)(0.001, undefined), {
    message:
      "Options of radam must be an object, got 0.001 (pass a learning rate as radam({ lr: 0.001 }))",
  });
});

Deno.test("a positional pair of betas that is not two numbers, an undefined one, and lookahead's alpha first are shown as calls that run", () => {
  // deno-lint-ignore no-explicit-any
  const given = (f: (...args: any[]) => unknown, ...args: unknown[]) => () => f(...args);
  // A pair not of two numbers cannot be placed (it was shown as `betas: [0.9, x]`, no code).
  assert.equal(
    hinted(given(radam, 0.001, [0.9, "x"]), "radam", 0.001),
    "radam({ lr: 0.001 }); name the other arguments too",
  );
  assert.equal(
    hinted(given(adam, 0.001, [[0.9, 0.99], [0.9, 0.99]]), "adam", 0.001),
    "adam({ lr: 0.001 }); name the other arguments too",
  );
  // An undefined argument is left out (it stopped the placing there); one where betas go is
  // tfjs's β1, as only tfjs's order leaves arguments undefined: what follows is its β2.
  assert.equal(
    hinted(given(radam, 0.001, undefined, 1e-6), "radam", 0.001),
    "radam({ lr: 0.001, betas: [0.9, 0.000001] })",
  );
  assert.equal(
    radam({ lr: 0.001, betas: [0.9, 0.000001] }).settings.hyperparameters.beta2,
    1e-6,
  );
  // lookahead(opt, alpha, k), the order of Ranger's own Lookahead: 0.5 is no step count, so it
  // is alpha (it was shown as { k: 0.5, alpha: 6 }, refused in turn).
  const ahead = lookahead as (...a: unknown[]) => unknown;
  assert.throws(() => ahead(radam(), 0.5, 6), {
    name: "TypeError",
    message: "Options of lookahead must be an object, got 0.5 (alpha is an option: " +
      "lookahead(optimizer, { alpha: 0.5, k: 6 }))",
  });
  assert.throws(() => ahead(radam(), 0.5), {
    message: "Options of lookahead must be an object, got 0.5 (alpha is an option: " +
      "lookahead(optimizer, { alpha: 0.5 }))",
  });
  assert.equal(lookahead(radam(), { alpha: 0.5, k: 6 }).settings.lookahead?.k, 6);
  // What cannot be placed after k is said to go by name too.
  assert.throws(() => ahead(radam(), 5, "0.5"), {
    message: "Options of lookahead must be an object, got 5 (k is an option: " +
      "lookahead(optimizer, { k: 5 }); name the other arguments too)",
  });
});

Deno.test("learning rates mapped to a factory, [0.001, 0.0003].map(radam), keep the learning rate's hint: map's index and array are no betas", () => {
  // map calls radam(lr, index, array): the index was shown as β1, radam({ lr: 0.001, betas:
  // [0, 0.999] }), the array as an argument to name.
  const lrs = [0.001, 0.0003];
  assert.throws(() => lrs.map(radam as (lr: unknown) => unknown), {
    name: "TypeError",
    message:
      "Options of radam must be an object, got 0.001 (pass a learning rate as radam({ lr: 0.001 }))",
  });
  assert.throws(() => [0.1].map(sgd as (lr: unknown) => unknown), {
    message: "Options of sgd must be an object, got 0.1 (pass a learning rate as sgd({ lr: 0.1 }))",
  });
  // Positional options that only look so are still shown.
  assert.equal(
    hinted(() => (sgd as (...a: unknown[]) => unknown)(0.1, 0, [0.2]), "sgd", 0.1),
    "sgd({ lr: 0.1, momentum: 0 }); name the other arguments too",
  );
});

Deno.test("tfjs's arguments left undefined (adam(1e-3, undefined, 0.99), β1 at its default) stand in tfjs's places: β2, then ε", () => {
  // deno-lint-ignore no-explicit-any
  const given = (f: (...args: any[]) => unknown, ...args: unknown[]) => () => f(...args);
  assert.equal(
    hinted(given(adam, 0.001, undefined, 0.99), "adam", 0.001),
    "adam({ lr: 0.001, betas: [0.9, 0.99] })",
  );
  assert.equal(
    hinted(given(adam, 0.001, undefined, undefined, 1e-7), "adam", 0.001),
    "adam({ lr: 0.001, eps: 1e-7 })",
  );
  assert.equal(
    hinted(given(radam, 0.001, 0.8, undefined, 1e-7), "radam", 0.001),
    "radam({ lr: 0.001, betas: [0.8, 0.999], eps: 1e-7 })",
  );
  // What the hints say runs.
  assert.deepEqual(adam({ lr: 0.001, betas: [0.9, 0.99] }).settings.hyperparameters.beta2, 0.99);
});

Deno.test('a learning rate as text (adam(Deno.env.get("LR"))) or a schedule given for the options (Keras\'s Adam(schedule)) says how it goes', () => {
  assert.throws(() => adam("1e-3" as never), {
    name: "TypeError",
    message: 'Options of adam must be an object, got a string "1e-3" (a number as text: ' +
      "convert it, Number(value), and pass a learning rate as adam({ lr: 0.001 }))",
  });
  assert.throws(() => radam(((t: number) => 1e-3 / t) as never), {
    name: "TypeError",
    message: "Options of radam must be an object, got a function (a learning-rate schedule, " +
      "(t) => number, is the option lr: radam({ lr: schedule }))",
  });
  // Text that is no number: no hint.
  assert.throws(() => adam("fast" as never), {
    message: 'Options of adam must be an object, got a string "fast"',
  });
});
