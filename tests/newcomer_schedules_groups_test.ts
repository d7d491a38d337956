/**
 * A new user's likely mistakes with learning-rate schedules, and what they get: a schedule maker
 * given itself as `lr` (`lr: linearWarmup`, the call forgotten) is a TypeError at once, naming it
 * and saying to call it (it was taken for a schedule and called with the step: `linearWarmup(1)`
 * threw "Option warmupSteps must be an integer ≥ 1, got undefined" at the first step, and
 * `constantLr(1)` returned a function, refused as "the learning-rate schedule returned a
 * function"); `chain`'s pairs given in one array, or a pair swapped, or a number where a schedule
 * goes, say so; a part's steps out of range name the part, as does a part that would start past
 * step 2⁵³ − 1; a maker given uncalled as a part's schedule says to call it. A parameter group
 * written as PyTorch's (`params`, `lr`), or given `states`, or a name or list of names as its
 * `match`, says what to write instead.
 */
import assert from "node:assert/strict";
import {
  adam,
  chain,
  constantLr,
  cosineDecay,
  linearWarmup,
  loadState,
  oneCycle,
  radam,
  saveState,
  type Schedule,
  step,
} from "../mod.ts";

/** `value` where the types would refuse it: the mistakes are those of JavaScript users. */
const loose = <T>(value: unknown) => value as T;

const makers = [
  [constantLr, "constantLr(1e-3)"],
  [linearWarmup, "linearWarmup(1e-3, { warmupSteps: 100 })"],
  [cosineDecay, "cosineDecay(1e-3, { decaySteps: 1000 })"],
  [oneCycle, "oneCycle(1e-3, { totalSteps: 1000 })"],
  [chain, "chain([schedule, steps], …)"],
] as const;

Deno.test("newcomer schedules: a schedule maker given as lr is a TypeError at once, saying to call it", async () => {
  for (const [maker, call] of makers) {
    const name = call.slice(0, call.indexOf("("));
    const expected = (e: Error) => {
      assert.ok(e instanceof TypeError, `${name}: ${e.name}: ${e.message}`);
      assert.equal(
        e.message,
        `Option lr must be a number or a schedule (t) => lr, got ${name} itself, which makes a schedule: call it, lr: ${call}`,
      );
      return true;
    };
    assert.throws(() => radam({ lr: loose<Schedule>(maker) }), expected);
    assert.throws(() => adam({ lr: loose<Schedule>(maker), weightDecay: 0 }), expected);
    // And where a checkpoint is loaded with another lr.
    const state = await radam({ lr: 1e-3 }).init({ w: new Float32Array(2) });
    const bytes = await saveState(state);
    await assert.rejects(() => loadState(bytes, { lr: loose<Schedule>(maker) }), expected);
  }
});

Deno.test("newcomer schedules: a schedule of the caller's, whatever its name, is still a schedule", async () => {
  // Named as a maker of the library's, but the caller's own: taken as it is.
  const own = { linearWarmup: (t: number) => 1e-3 * Math.min(1, t / 10) }.linearWarmup;
  assert.equal(own.name, "linearWarmup");
  let state = await radam({ lr: own }).init({ w: new Float32Array(2) });
  state = step(state, { w: new Float32Array([1, 1]) });
  assert.equal(state.step, 1);
  // The schedules the makers make are schedules.
  const made = [
    constantLr(1e-3),
    linearWarmup(1e-3, { warmupSteps: 100 }),
    cosineDecay(1e-3, { decaySteps: 1000 }),
    oneCycle(1e-3, { totalSteps: 1000 }),
    chain([constantLr(1e-3), 1]),
  ];
  for (const lr of made) {
    const s = await radam({ lr }).init({ w: new Float32Array(2) });
    assert.equal(step(s, { w: new Float32Array([1, 1]) }).step, 1);
  }
});

Deno.test("newcomer schedules: chain's pairs in one array, a swapped pair or a number as a schedule say so", () => {
  const warm = linearWarmup(1e-3, { warmupSteps: 100 });
  const decay = cosineDecay(1e-3, { decaySteps: 900 });
  const refused = (f: () => unknown, type: ErrorConstructor, message: string) =>
    assert.throws(f, (e: Error) => {
      assert.ok(e instanceof type, `${e.name}: ${e.message}`);
      assert.equal(e.message, message);
      return true;
    });
  refused(
    () => chain(loose([[warm, 100], [decay, 900]])),
    TypeError,
    "chain() parts must be [schedule, steps], got Array(2) as a schedule (the pairs came in one array: give each as its own argument, chain([s1, n1], [s2, n2]), or spread the array, chain(...pairs))",
  );
  refused(
    () => chain([warm, 100], loose([900, decay])),
    TypeError,
    "chain() parts must be [schedule, steps], got 900 as a schedule (swapped: the schedule comes first, [schedule, steps])",
  );
  refused(
    () => chain(loose([1e-3, 100])),
    TypeError,
    "chain() parts must be [schedule, steps], got 0.001 as a schedule (a constant learning rate is a schedule so: constantLr(0.001))",
  );
  refused(
    () => chain([warm, 100], [decay, -900]),
    RangeError,
    "Option steps of chain() part 1 must be an integer from 1 to 2⁵³ − 1, got -900",
  );
});

Deno.test("newcomer schedules: a schedule maker given uncalled as chain's part is a TypeError at once", () => {
  // It was taken for a schedule: linearWarmup(101) threw "Option warmupSteps must be …" at the
  // first step that reached its part, constantLr(1) returned a function.
  for (const [maker, call] of makers) {
    const name = call.slice(0, call.indexOf("("));
    const expected = (e: Error) => {
      assert.ok(e instanceof TypeError, `${name}: ${e.name}: ${e.message}`);
      assert.equal(
        e.message,
        `chain() parts must be [schedule, steps], got ${name} itself as a schedule, which makes one: call it, [${call}, steps]`,
      );
      return true;
    };
    assert.throws(() => chain([constantLr(1e-3), 100], [loose<Schedule>(maker), 900]), expected);
    assert.throws(() => chain([loose<Schedule>(maker), 100]), expected);
  }
});

Deno.test("newcomer schedules: chain's counts end by step 2⁵³ − 1, the last a state takes", () => {
  const max = Number.MAX_SAFE_INTEGER;
  const refused = (f: () => unknown, message: string) =>
    assert.throws(f, (e: Error) => {
      assert.ok(e instanceof RangeError, `${e.name}: ${e.message}`);
      assert.equal(e.message, message);
      return true;
    });
  refused(
    () => chain([constantLr(1), 2 ** 53], [constantLr(2), 1]),
    `Option steps of chain() part 0 must be an integer from 1 to 2⁵³ − 1, got ${2 ** 53}`,
  );
  // Each count in range, but a part after them would start past the last step: it never runs.
  const never = "would start past step 2⁵³ − 1, the last step a state takes, and never run: " +
    "the steps of the parts before it add up to 2⁵³ − 1 or more";
  refused(() => chain([constantLr(1), max], [constantLr(2), 1]), `chain() part 1 ${never}`);
  refused(
    () => chain([constantLr(1), 2 ** 52], [constantLr(2), 2 ** 52], [constantLr(3), 1]),
    `chain() part 2 ${never}`,
  );
  // The last part may start at the last step, and run on with a count of any size in range.
  const s = chain([constantLr(1), max - 1], [constantLr(2), max]);
  assert.deepEqual([s(1), s(max - 1), s(max)], [1, 1, 2]);
});

Deno.test("newcomer groups: PyTorch's group keys, states, and names as match say what to write", () => {
  const refused = (group: unknown, message: string) =>
    assert.throws(() => radam({ groups: [loose({ match: /b/, ...(group as object) })] }), {
      name: "TypeError",
      message,
    });
  const keys = "expected one of match, lrScale, weightDecay";
  refused(
    { states: "8bit" },
    `Unknown option states for groups[0]; ${keys} (states is an option of the whole optimizer, e.g. radam({ states: "8bit" }); tensors under 4096 values keep f32 moments)`,
  );
  refused(
    { lr: 1e-2 },
    `Unknown option lr for groups[0]; ${keys} (a group's learning rate is the optimizer's lr times lrScale: lrScale: 10)`,
  );
  refused(
    { params: ["fc.bias"] },
    `Unknown option params for groups[0]; ${keys} (a group takes its tensors by name: match: /^fc\\./ or match: (name) => names.includes(name))`,
  );
  const match = "Option groups[0].match must be a RegExp or a function of the name";
  refused(
    { match: "fc.bias" },
    `${match}, got a string "fc.bias" (one name: match: (name) => name === "fc.bias")`,
  );
  refused(
    { match: ["fc.bias", "fc.weight"] },
    `${match}, got Array(2) (names: match: (name) => names.includes(name))`,
  );
  refused({ match: 3 }, `${match}, got 3`);
});
