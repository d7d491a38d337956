/**
 * The tests that `loadState(bytes)` and `setWeights(weights)` of the TensorFlow.js adapter share:
 * state that fits no variable of the model is refused with a RangeError naming a few of its names
 * and of the model's variables, and the optimizer is left exactly as it was; state of which some
 * fits (by name, or by base name) loads, the other variables starting fresh.
 */
import assert from "node:assert/strict";
import { adam, CheckpointError } from "../../mod.ts";
import { type TfOptimizer, tfOptimizer } from "../../tfjs.ts";
import { optimizerSnapshot, stepAll, tf, uniqueNames, useBackend } from "./helpers.ts";

/** One way of giving an optimizer its state: a checkpoint, or tfjs weights. */
export interface Loader<T> {
  /** The method: `loadState` or `setWeights`. */
  readonly method: string;
  /** The state of an Adam optimizer over new variables `names` (of `shapes`), 7 steps in. */
  of(names: string[], shapes: number[][]): Promise<T>;
  /** Gives `opt` the state `state`. */
  load(opt: TfOptimizer, state: T): Promise<void>;
  /** The names the refusal of `state` (of variables `names`) lists, in its order. */
  listed(state: T, names: string[]): string[];
  /** How the refusal begins. */
  readonly refusal: RegExp;
  /** Frees what `state` holds. */
  free(state: T): void;
}

/** Registers the shared tests for `loader`. */
export function matchingTests<T>(loader: Loader<T>): void {
  const name = uniqueNames(`match-${loader.method}`);
  const { method } = loader;

  Deno.test(`tfjs: ${method} of state that fits no variable is refused, naming both sides; nothing changes`, async () => {
    await useBackend("cpu");
    const otherNames = ["a", "b", "c", "d", "e"].map((n) => name(`other/${n}`));
    const other = await loader.of(otherNames, otherNames.map(() => [3]));
    // The model's variables; and state of variables of their names but other shapes.
    const modelNames = ["k", "q", "r", "s"].map((n) => name(`model/${n}`));
    const sameNamed = await loader.of(modelNames.slice(0, 2), [[3, 2], [4]]);
    const vars = modelNames.map((n) => tf.variable(tf.ones([2, 3]), true, n));
    const twinVars = modelNames.map((n) => tf.variable(tf.ones([2, 3]), true, `${n}-twin`));
    const [opt, twin] = [tfOptimizer(adam({ lr: 0.1 })), tfOptimizer(adam({ lr: 0.1 }))];
    for (let t = 0; t < 2; t++) {
      stepAll(opt, vars);
      stepAll(twin, twinVars);
    }
    const before = await optimizerSnapshot(opt);
    const listed = loader.listed(other, otherNames);
    await assert.rejects(() => loader.load(opt, other), (e: Error) => {
      assert.ok(e instanceof RangeError && !(e instanceof CheckpointError), e.message);
      assert.match(e.message, loader.refusal);
      // A few of the names given, and of the model's variables, then how many more.
      for (const n of listed.slice(0, 3)) assert.ok(e.message.includes(JSON.stringify(n)));
      assert.ok(!e.message.includes(JSON.stringify(listed[3])), e.message);
      assert.ok(e.message.includes(`and ${listed.length - 3} more`), e.message);
      assert.ok(e.message.includes(JSON.stringify(modelNames[0])), e.message);
      assert.match(e.message, /base name .*_<n>/);
      assert.match(e.message, /zero moments at step 7/);
      return true;
    });
    assert.deepEqual(await optimizerSnapshot(opt), before);
    // The names of the model's variables, of other shapes: nothing fits either.
    await assert.rejects(() => loader.load(opt, sameNamed), (e: Error) => {
      assert.match(e.message, loader.refusal);
      return true;
    });
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
    loader.free(other);
    loader.free(sameNamed);
  });

  Deno.test(`tfjs: ${method} of state of which some fits loads it; the others start fresh`, async () => {
    await useBackend("cpu");
    const [kept, gone, renamed] = [name("part/a"), name("part/b"), name("base/w")];
    const partial = await loader.of([kept, gone], [[3], [3]]);
    const suffixed = await loader.of([renamed], [[2, 2]]);
    // By name: `kept` fits, `gone` has no variable, `new` no state.
    const vars = [
      tf.variable(tf.ones([3]), true, kept),
      tf.variable(tf.ones([3]), true, name("new")),
    ];
    const opt = tfOptimizer(adam({ lr: 0.1 }));
    await loader.load(opt, partial);
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
    await loader.load(other, suffixed);
    assert.equal(other.iterations, 7);
    other.dispose();
    tf.dispose([...vars, w1]);
    loader.free(partial);
    loader.free(suffixed);
  });

  Deno.test(`tfjs: ${method}: a variable named <name>_1 that is not in the first step takes its state when it comes`, async () => {
    await useBackend("cpu");
    const [a, b] = [name("late/a"), name("late/b")];
    const state = await loader.of([a, b], [[3], [2, 2]]);
    // The reference: the same variables under the saved names.
    const shapes = [[3], [2, 2]];
    const same = [a, b].map((n, i) => tf.variable(tf.ones(shapes[i]), true, n));
    const renamed = [a, b].map((n, i) => tf.variable(tf.ones(shapes[i]), true, `${n}_1`));
    const [opt, ref] = [tfOptimizer(adam({ lr: 0.1 })), tfOptimizer(adam({ lr: 0.1 }))];
    await loader.load(opt, state);
    await loader.load(ref, state);
    // b is frozen at first (a layer frozen when the model was saved), then trained.
    stepAll(opt, [renamed[0]]);
    stepAll(ref, [same[0]]);
    stepAll(opt, renamed, 0.5);
    stepAll(ref, same, 0.5);
    const [got, want] = [await optimizerSnapshot(opt), await optimizerSnapshot(ref)];
    assert.deepEqual(
      got.weights.map((w) => w[0]),
      want.weights.map((w) => `${w[0]}`.replace(/\/(m|v)$/, "_1/$1")),
    );
    assert.deepEqual(got.weights.map((w) => w[1]), want.weights.map((w) => w[1]));
    renamed.forEach((v, i) => assert.deepEqual(v.dataSync(), same[i].dataSync()));
    opt.dispose();
    ref.dispose();
    tf.dispose([...same, ...renamed]);
    loader.free(state);
  });
}
