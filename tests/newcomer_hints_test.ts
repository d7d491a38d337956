/**
 * Rough edges of a first hour: an argument after a factory's options object was ignored
 * (`adam({ lr: 1e-3 }, 0.9)` trained with the default betas); it is refused, and the error shows
 * where it goes. What `map` passes (index and array) and undefined extras stay accepted.
 */
import assert from "node:assert/strict";
import {
  adam,
  adamw,
  cosineDecay,
  linearWarmup,
  lion,
  loadState,
  lookahead,
  radam,
  ranger,
  saveState,
  sgd,
} from "../mod.ts";

// deno-lint-ignore no-explicit-any
const call = (f: (...args: any[]) => unknown, ...args: unknown[]) => () => f(...args);

Deno.test("an argument after a factory's options object is refused, with the option it stands for", () => {
  assert.throws(call(adam, { lr: 1e-3 }, 0.9), {
    name: "TypeError",
    message: "Options of adam go in one object, got 0.9 after it " +
      "(adam({ ...options, betas: [0.9, 0.999] }))",
  });
  assert.throws(call(sgd, { lr: 0.1 }, 0.9), {
    message: /sgd\(\{ \.\.\.options, momentum: 0\.9 \}\)/,
  });
  assert.throws(call(ranger, {}, 0.5), { message: /ranger\(\{ \.\.\.options, alpha: 0\.5 \}\)/ });
  assert.throws(call(lion, {}, [0.9, 0.95]), { message: /betas: \[0\.9, 0\.95\]/ });
  for (const f of [radam, adamw]) {
    assert.throws(call(f, { lr: 1e-3 }, { eps: 1e-8 }), {
      name: "TypeError",
      message: /go in one object, got Object after it \(name it in that object\)$/,
    });
  }
  assert.throws(call(lookahead, radam(), { k: 5 }, 0.5), {
    name: "TypeError",
    message: "Options of lookahead go in one object, got 0.5 after it " +
      "(lookahead(optimizer, { ...options, alpha: 0.5 }))",
  });
});

Deno.test("map's index and array, and undefined extras, stay accepted after an options object", () => {
  const made = [{ lr: 1e-3 }, { lr: 3e-4 }].map(adam);
  assert.deepEqual(made.map((o) => o.settings.hyperparameters.lr), [1e-3, 3e-4]);
  assert.equal(call(adam, { lr: 1e-3 }, undefined)() !== undefined, true);
  assert.equal(call(sgd, undefined, undefined)() !== undefined, true);
  const inner = radam();
  assert.equal([{ k: 5 }].map((o) => lookahead(inner, o))[0].settings.lookahead?.k, 5);
  // Not map's shape: an index of another array.
  assert.throws(call(adam, { lr: 1e-3 }, 0, [{ lr: 1e-3 }]), TypeError);
});

Deno.test("a schedule maker given one object names its first argument and shows the call", () => {
  assert.throws(() => linearWarmup({ lr: 1e-3, steps: 100 } as never, undefined as never), {
    name: "TypeError",
    message: "The first argument of linearWarmup must be the learning rate, a finite number ≥ 0, " +
      "got Object (write linearWarmup(0.001, { warmupSteps: 100 }))",
  });
  // No step count in it: the maker's own example.
  assert.throws(() => cosineDecay({ lr: 1e-3 } as never, undefined as never), {
    message:
      /^The first argument of cosineDecay .* \(write cosineDecay\(1e-3, \{ decaySteps: 1000 \}\)\)$/,
  });
});

Deno.test("loadState given an optimizer, and lookahead given the adapter's ema, say what to write", async () => {
  const bytes = await saveState(await adam().init({ w: new Float32Array(2) }));
  const held = "(the checkpoint holds its optimizer and options: loadState(bytes), " +
    "with { lr } for a schedule)";
  await assert.rejects(loadState(bytes, { optimizer: adam() } as never), {
    name: "TypeError",
    message: /^Unknown option optimizer for loadState; .*\(the checkpoint holds/,
  });
  await assert.rejects(loadState(bytes, adam() as never), {
    name: "TypeError",
    message: `loadState() takes no optimizer, got one for its options ${held}`,
  });
  assert.equal((await loadState(bytes)).step, 0);
  assert.throws(() => lookahead(radam(), { ema: true } as never), {
    name: "TypeError",
    message: "Unknown option ema for lookahead; expected one of k, alpha " +
      "(ema is an option of tfOptimizer: tfOptimizer(lookahead(radam()), { ema }))",
  });
});
