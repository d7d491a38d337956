/**
 * `optimizer.loadState(bytes)` of a checkpoint none of whose tensors fits a variable of the model
 * (another model's, or a model not built yet) is refused with a RangeError naming a few of the
 * file's tensors and of the model's variables, and the optimizer is left exactly as it was; a
 * checkpoint of which some tensor fits (by name, or by base name) loads as before, the others
 * starting fresh; a checkpoint holding no tensor is damaged (CheckpointError).
 */
import assert from "node:assert/strict";
import { adam, CheckpointError, saveState } from "../../mod.ts";
import { tfOptimizer } from "../../tfjs.ts";
import { edit } from "../checkpoint_files.ts";
import { matchingTests } from "./match_cases.ts";
import { ofTrainedAdam, stepAll, tf, uniqueNames, useBackend } from "./helpers.ts";

const name = uniqueNames("match");

/** A checkpoint of an Adam optimizer over variables `names` (of `shapes`), 7 steps in. */
function checkpointOf(names: string[], shapes: number[][]): Promise<Uint8Array> {
  return ofTrainedAdam(names, shapes, (opt) => saveState(opt.state!));
}

matchingTests<Uint8Array>({
  method: "loadState",
  of: checkpointOf,
  load: (opt, bytes) => opt.loadState(bytes),
  listed: (_, names) => names, // a checkpoint's tensors are named by their variables
  refusal: /^No tensor of this checkpoint fits/,
  free: () => {},
});

Deno.test("tfjs: loadState before the model is built, or of a checkpoint holding no tensor, is refused", async () => {
  await useBackend("cpu");
  const bytes = await checkpointOf([name("early/w")], [[2]]);
  assert.deepEqual(Object.keys(tf.engine().registeredVariables), []);
  const opt = tfOptimizer(adam({ lr: 0.1 }));
  await assert.rejects(() => opt.loadState(bytes), (e: Error) => {
    assert.ok(e instanceof RangeError, e.message);
    assert.match(e.message, /none is registered: build or load the model first/);
    return true;
  });
  assert.equal(opt.iterations, 0);
  assert.equal(opt.state, undefined);
  // No tensor at all: a damaged file (every state holds one), refused as such.
  const empty = edit(bytes, (h) => {
    for (const key of Object.keys(h)) if (key !== "__metadata__") delete h[key];
    h.__metadata__.tensor_order = "[]";
  });
  const w = tf.variable(tf.ones([2]), true, name("late/w"));
  await assert.rejects(() => opt.loadState(empty), CheckpointError);
  assert.equal(opt.iterations, 0);
  stepAll(opt, [w]);
  assert.equal(opt.iterations, 1);
  opt.dispose();
  w.dispose();
});
