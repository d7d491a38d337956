/** The shared wording of command-line mistakes (examples/_suggest.ts). */
import assert from "node:assert/strict";
import fc from "fast-check";
import {
  editDistance,
  matchChoice,
  nearest,
  notAChoice,
  typedFlag,
  typedIndex,
  unknownFlag,
} from "./_suggest.ts";

const word = fc.string({ unit: fc.constantFrom(..."abcdefg-"), maxLength: 12 });

Deno.test("suggest: the edit distance is 0 to itself in any case, symmetric, 1 for one edit", () => {
  fc.assert(fc.property(word, word, fc.nat(), (a, b, at) => {
    assert.equal(editDistance(a, a.toUpperCase()), 0);
    assert.equal(editDistance(a, b), editDistance(b, a));
    assert.ok(editDistance(a, b) <= Math.max(a.length, b.length));
    const i = at % (a.length + 1);
    assert.equal(editDistance(a, `${a.slice(0, i)}x${a.slice(i)}`), 1); // one inserted
    if (i < a.length) assert.ok(editDistance(a, a.slice(0, i) + a.slice(i + 1)) === 1);
  }));
  assert.equal(editDistance("mdoe", "mode"), 1); // two neighbours swapped
});

Deno.test("suggest: the nearest is the closest of those near enough, or none", () => {
  const flags = ["epochs", "seeds", "lrs", "optimizers", "states", "batch-size", "out"];
  assert.equal(nearest("optimizer", flags), "optimizers");
  assert.equal(nearest("lr-sweep", flags), "lrs");
  assert.equal(nearest("State", flags), "states");
  assert.equal(nearest("batchsize", flags), "batch-size");
  assert.equal(nearest("bogus", flags), undefined);
  assert.equal(nearest("x", []), undefined);
});

Deno.test("suggest: the messages name what was typed, the nearest, and every name", () => {
  assert.equal(
    unknownFlag("--optimizer=radam", ["epochs", "optimizers"]),
    'Unknown flag "--optimizer=radam" (did you mean --optimizers?); the flags are --epochs, ' +
      "--optimizers",
  );
  assert.equal(
    unknownFlag("--optimizer radam", ["epochs", "optimizers"]),
    'Unknown flag "--optimizer radam" (did you mean --optimizers?); the flags are --epochs, ' +
      "--optimizers",
  );
  assert.equal(
    unknownFlag("-x", ["epochs"]),
    'Unknown flag "-x"; the flags are --epochs',
  );
  assert.equal(
    notAChoice("optimizers", "adamW", ["radam", "adam"]),
    '--optimizers: "adamW" is not one of radam, adam (in any case; did you mean adam?)',
  );
});

Deno.test("suggest: a choice matches in any case, unless two differ in case alone", () => {
  assert.equal(matchChoice("RAdam", ["radam", "adam"]), "radam");
  assert.equal(matchChoice("adam", ["radam", "adam"]), "adam");
  assert.equal(matchChoice("adamw", ["radam", "adam"]), undefined);
  assert.equal(matchChoice("k", ["K", "k"]), "k");
  assert.equal(matchChoice("x", ["K", "k"]), undefined);
  assert.equal(matchChoice("K", ["k", "K"]), "K");
  assert.equal(matchChoice("kk", ["Kk", "kK"]), undefined);
});

Deno.test("suggest: an unknown flag is shown as typed, with its value given apart or inline", () => {
  const args = ["--epochs", "2", "--optimizer", "radam", "--out=x", "--bogus", "--seeds=3"];
  assert.equal(typedFlag(args, 2), "--optimizer radam");
  assert.equal(typedFlag(args, 4), "--out=x");
  assert.equal(typedFlag(args, 5), "--bogus"); // the next word is a flag
  assert.equal(typedFlag(["stray", "word"], 0), "stray"); // no flag: no value taken
  assert.equal(typedFlag(["--last"], 0), "--last");
  assert.equal(typedIndex(args, "--optimizer"), 2);
  assert.equal(typedIndex(args, "--out"), 4);
  assert.equal(typedIndex(args, "--ou"), undefined);
  assert.equal(typedIndex(["-xv"], "-x"), undefined);
});
