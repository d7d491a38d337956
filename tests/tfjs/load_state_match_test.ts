/**
 * `optimizer.loadState(bytes)` of a checkpoint none of whose tensors fits a variable of the model
 * (another model's, or a model not built yet) is refused with a RangeError naming a few of the
 * file's tensors and of the model's variables, and the optimizer is left exactly as it was; a
 * checkpoint of which some tensor fits (by name, or by base name) loads as before, the others
 * starting fresh; a checkpoint holding no tensor is damaged (CheckpointError); one of another
 * rule holding a moment (or slow weights) this optimizer does not keep is refused (TypeError).
 */
import assert from "node:assert/strict";
import { adam, CheckpointError, lion, radam, ranger, saveState, sgd } from "../../mod.ts";
import { tfOptimizer } from "../../tfjs.ts";
import { edit } from "../checkpoint_files.ts";
import { matchingTests } from "./match_cases.ts";
import {
  ofTrainedAdam,
  optimizerSnapshot,
  stepAll,
  tf,
  uniqueNames,
  useBackend,
} from "./helpers.ts";

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

Deno.test("tfjs: loadState of another rule's checkpoint takes its moments by name: another rule's are refused, nothing changes", async () => {
  await useBackend("cpu");
  const cases = [
    // [saved by, loaded into, the refusal names (undefined: loads)]
    [() => sgd({ momentum: 0.9 }), () => adam(), /moment momentum_buffer this adam/],
    [() => lion(), () => sgd({ momentum: 0.9 }), /moment exp_avg this sgd/],
    [() => adam(), () => lion(), /moment exp_avg_sq this lion/],
    [() => ranger(), () => radam(), /slow weights this radam/],
    [() => sgd({ momentum: 0.9 }), () => sgd(), /momentum_buffer this sgd .*keeps no state/],
    [() => radam(), () => adam(), undefined],
    [() => radam(), () => ranger(), undefined],
  ] as const;
  for (const [from, into, refusal] of cases) {
    const v = tf.variable(tf.ones([3]), true, name("rules/w"));
    const saver = tfOptimizer(from());
    for (let t = 0; t < 3; t++) stepAll(saver, [v]);
    const bytes = await saveState(saver.state!);
    const opt = tfOptimizer(into());
    stepAll(opt, [v]);
    const before = await optimizerSnapshot(opt);
    if (refusal === undefined) {
      await opt.loadState(bytes);
      assert.equal(opt.iterations, 3);
      const moments = async (o: typeof opt) =>
        (await optimizerSnapshot(o)).weights.filter(([n]) => /\/[mv]$/.test(n));
      assert.equal((await moments(saver)).length, 2);
      assert.deepEqual(await moments(opt), await moments(saver));
    } else {
      await assert.rejects(() => opt.loadState(bytes), (e: Error) => {
        assert.ok(e instanceof TypeError, e.message);
        assert.match(e.message, refusal);
        return true;
      });
      assert.deepEqual(await optimizerSnapshot(opt), before);
    }
    saver.dispose();
    opt.dispose();
    v.dispose();
  }
});
