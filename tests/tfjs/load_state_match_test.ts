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

Deno.test("tfjs: loadState of a checkpoint that fits no variable is refused, naming both sides; nothing changes", async () => {
  await useBackend("cpu");
  const fileNames = ["a", "b", "c", "d", "e"].map((n) => name(`other/${n}`));
  const other = await checkpointOf(fileNames, fileNames.map(() => [3]));
  // The model's variables; and a checkpoint of variables of their names but other shapes.
  const modelNames = ["k", "q", "r", "s"].map((n) => name(`model/${n}`));
  const sameNamed = await checkpointOf(modelNames.slice(0, 2), [[3, 2], [4]]);
  const vars = modelNames.map((n) => tf.variable(tf.ones([2, 3]), true, n));
  const twinVars = modelNames.map((n) => tf.variable(tf.ones([2, 3]), true, `${n}-twin`));
  const [opt, twin] = [tfOptimizer(adam({ lr: 0.1 })), tfOptimizer(adam({ lr: 0.1 }))];
  for (let t = 0; t < 2; t++) {
    stepAll(opt, vars);
    stepAll(twin, twinVars);
  }
  const before = await optimizerSnapshot(opt);
  await assert.rejects(() => opt.loadState(other), (e: Error) => {
    assert.ok(e instanceof RangeError && !(e instanceof CheckpointError), e.message);
    // A few of the file's tensors, and of the model's variables, then how many more.
    for (const n of fileNames.slice(0, 3)) assert.ok(e.message.includes(JSON.stringify(n)));
    assert.ok(!e.message.includes(JSON.stringify(fileNames[3])), e.message);
    assert.match(e.message, /and 2 more/);
    assert.ok(e.message.includes(JSON.stringify(modelNames[0])), e.message);
    assert.match(e.message, /base name .*_<n>/);
    assert.match(e.message, /zero moments at step 7/);
    return true;
  });
  assert.deepEqual(await optimizerSnapshot(opt), before);
  // The names of the model's variables, of other shapes: no tensor fits either.
  await assert.rejects(() => opt.loadState(sameNamed), /No tensor of this checkpoint fits/);
  assert.deepEqual(await optimizerSnapshot(opt), before);
  // And the next step is the twin's, bit for bit.
  stepAll(opt, vars);
  stepAll(twin, twinVars);
  const after = await optimizerSnapshot(opt), twinAfter = await optimizerSnapshot(twin);
  assert.equal(after.iterations, 3);
  assert.deepEqual(after.weights.map((w) => w[1]), twinAfter.weights.map((w) => w[1]));
  vars.forEach((v, i) => assert.deepEqual(v.dataSync(), twinVars[i].dataSync()));
  opt.dispose();
  twin.dispose();
  tf.dispose([...vars, ...twinVars]);
});

Deno.test("tfjs: loadState of a checkpoint of which some tensor fits loads it; the others start fresh", async () => {
  await useBackend("cpu");
  const [kept, gone, renamed] = [name("part/a"), name("part/b"), name("base/w")];
  const partial = await checkpointOf([kept, gone], [[3], [3]]);
  const suffixed = await checkpointOf([renamed], [[2, 2]]);
  // By name: `kept` fits, `gone` has no variable, `fresh` no tensor.
  const vars = [
    tf.variable(tf.ones([3]), true, kept),
    tf.variable(tf.ones([3]), true, name("new")),
  ];
  const opt = tfOptimizer(adam({ lr: 0.1 }));
  await opt.loadState(partial);
  assert.equal(opt.iterations, 7);
  stepAll(opt, vars);
  assert.equal(opt.iterations, 8);
  const weights = await opt.getWeights();
  const m = (v: tf.Variable) => weights.find((w) => w.name === `${v.name}/m`)!.tensor.dataSync();
  // The first moment after one step from zero is (1 - β₁)·g; the loaded one carries its history.
  assert.deepEqual(m(vars[1]), new Float32Array(3).fill(Math.fround(0.1 * 0.25)));
  assert.notDeepEqual(m(vars[0]), m(vars[1]));
  tf.dispose(weights.map((w) => w.tensor));
  opt.dispose();
  // By base name: a variable that tfjs named `<name>_1`.
  const w1 = tf.variable(tf.ones([2, 2]), true, `${renamed}_1`);
  const other = tfOptimizer(adam({ lr: 0.1 }));
  await other.loadState(suffixed);
  assert.equal(other.iterations, 7);
  other.dispose();
  tf.dispose([...vars, w1]);
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
