/**
 * A newcomer's first writing of option `ema` and of the callbacks: the momentum given as the
 * option itself (`ema: 0.99`) or under another library's name (`ema: { decay: 0.99 }`), and the
 * library's optimizer given to a callback's factory (`emaCallback(radam())`) where the
 * `tfOptimizer` of it goes, each said only what was expected. They now say what to write.
 */
import assert from "node:assert/strict";
import { adam, lion, lookahead, radam, sgd } from "../../mod.ts";
import { emaCallback, skippedStepsCallback, tfOptimizer } from "../../tfjs.ts";

Deno.test("tfjs: ema given a momentum bare, or as decay, says it is ema: { momentum }", () => {
  assert.throws(() => tfOptimizer(adam(), { ema: 0.99 as never }), {
    name: "TypeError",
    message: "Option ema must be a boolean or { momentum, overwriteFrequency }, got 0.99 " +
      "(a momentum: ema: { momentum: 0.99 })",
  });
  for (const key of ["decay", "ema_momentum", "emaMomentum"]) {
    assert.throws(() => tfOptimizer(adam(), { ema: { [key]: 0.99 } as never }), {
      name: "TypeError",
      message: `Unknown option ${key} for ema; expected one of momentum, overwriteFrequency ` +
        `(${key} is momentum here)`,
    });
  }
  // A number no momentum takes (past 1, NaN), or 0 and 1 (ema: false and true as numbers,
  // which say so), is not written as one: it said ema: { momentum: 1.5 }, refused in turn.
  for (const ema of [1.5, NaN, -0.5, 0, 1]) {
    const bit = ema === 0 || ema === 1 ? ` (a number: write ema: ${ema === 1})` : "";
    assert.throws(() => tfOptimizer(adam(), { ema: ema as never }), {
      name: "TypeError",
      message: "Option ema must be a boolean or { momentum, overwriteFrequency }, got " +
        String(ema) + bit,
    });
  }
  // What they say runs.
  const optimizer = tfOptimizer(adam(), { ema: { momentum: 0.99 } });
  assert.equal(optimizer.averages!.settings.momentum, 0.99);
  optimizer.dispose();
});

Deno.test("tfjs: a callback's factory given the library's optimizer says to pass its tfOptimizer", () => {
  assert.throws(() => emaCallback(radam() as never), {
    name: "TypeError",
    message: "emaCallback() expects an optimizer made by tfOptimizer(), got Object (an optimizer " +
      "of this library: pass the TensorFlow.js optimizer made of it, the one model.compile was " +
      "given, const optimizer = tfOptimizer(radam(), { ema: true }); emaCallback(optimizer), or " +
      "emaCallback(model.optimizer))",
  });
  assert.throws(() => skippedStepsCallback(adam() as never), {
    name: "TypeError",
    message: "skippedStepsCallback() expects an optimizer made by tfOptimizer(), got Object (an " +
      "optimizer of this library: pass the TensorFlow.js optimizer made of it, the one " +
      "model.compile was given, const optimizer = tfOptimizer(adam()); " +
      "skippedStepsCallback(optimizer), or skippedStepsCallback(model.optimizer))",
  });
  // An optimizer of another name, or wrapped, is written as given (it said radam()).
  assert.throws(
    () => emaCallback(lion() as never),
    { message: /const optimizer = tfOptimizer\(lion\(\), \{ ema: true \}\); emaCallback/ },
  );
  assert.throws(
    () => skippedStepsCallback(lookahead(sgd()) as never),
    { message: /const optimizer = tfOptimizer\(opt\); skippedStepsCallback/ },
  );
  const optimizer = tfOptimizer(radam(), { ema: true });
  emaCallback(optimizer);
  skippedStepsCallback(optimizer);
  optimizer.dispose();
});
