/**
 * The state kept aside for a variable that is gone (disposed: tfjs's registry holds no variable
 * of its name, or another) is forgotten only once a new state is made (`forgetTaken`): a step
 * whose state fails to be made leaves it kept. Until then it counts for nothing in the matching
 * of loaded names (`fitting`): a state read by `setWeights` or `loadState` goes to the one new
 * variable of its base name as it would were the gone state already forgotten.
 */
import assert from "node:assert/strict";
import { type Kept, KeptStates } from "../../tfjs/kept.ts";
import { entryOf } from "../../tfjs/layout.ts";

/** Kept state of `name` (two elements), made for `tf.Variable` `id` (none: loaded). */
function held(name: string, m: number, id?: number): Kept {
  return { entry: entryOf(name, [2], false, id), sections: [, , new Float32Array([m, m])] };
}

/** Kept states: "w" loaded (m 1), then `gone` (m 2), kept aside for variable 7, now disposed. */
function keptWithGone(gone: string): KeptStates {
  const kept = new KeptStates();
  kept.replace(new Map([["w", held("w", 1)]]), 3, 0);
  kept.keepFirst([held(gone, 2, 7)]);
  return kept;
}

for (const gone of ["w_2", "w_3"]) {
  Deno.test(`tfjs kept: a gone variable's state (${gone}) does not keep a loaded one from a new variable, and stays until a state is made`, () => {
    const kept = keptWithGone(gone);
    const registry = { w_3: { id: 9 } }; // w_3 is a new variable; no variable 7 is left
    const wanted = [{ name: "w_3", shape: [2], variable: 9 }];
    const fitting = kept.fitting(wanted, false, registry);
    assert.deepEqual(fitting.get("w_3")?.sections[2], new Float32Array([1, 1]));
    // Not yet forgotten (making the state may still fail): the gone state is kept.
    if (gone !== "w_3") assert.ok(kept.names().includes(gone), kept.names().join());
    kept.forgetTaken(wanted, registry);
    assert.deepEqual(kept.names(), []);
  });
}

Deno.test("tfjs kept: a variable alive under the gone one's id keeps its state, which competes as before", () => {
  const kept = keptWithGone("w_2");
  const registry = { w_2: { id: 7 }, w_3: { id: 9 } };
  const wanted = [{ name: "w_3", shape: [2], variable: 9 }];
  // "w_2" left out of the step and alive: another candidate of base name "w", so nothing moves.
  assert.equal(kept.fitting(wanted, false, registry).get("w_3"), undefined);
  kept.forgetTaken(wanted, registry);
  assert.deepEqual(kept.names().sort(), ["w", "w_2"]);
});
