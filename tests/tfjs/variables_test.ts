/**
 * The TensorFlow.js adapter over the variables it is given: a changing set keeps the state of
 * those still there, keeps aside that of those left out and starts new ones fresh (option
 * `strict` refuses any change), and parameter groups match tfjs variable names.
 */
import assert from "node:assert/strict";
import { adam, adamw, readMoments, saveState, step } from "../../mod.ts";
import { tfOptimizer } from "../../tfjs.ts";
import { denseNet, randoms, tf, uniqueNames, useBackend, weightValues } from "./helpers.ts";

const name = uniqueNames("vars");

Deno.test("tfjs: a changing variable set keeps the state of those still there, starts new ones fresh", async () => {
  await useBackend("cpu");
  const an = name("a"), bn = name("b"), cn = name("c");
  const a = tf.variable(tf.tensor([1, 2]), true, an);
  const b = tf.variable(tf.tensor([3, 4]), true, bn);
  const c = tf.variable(tf.tensor([5, 6]), true, cn);
  const opt = tfOptimizer(adam({ lr: 0.1 }));
  // Reference: one core state per variable, stepped when the variable has a gradient, at the
  // optimizer's global step count (the bias corrections of tfjs's own Adam are global too).
  const g = (t: number, i: number) => randoms(2, 10 * t + i + 1);
  const apply = (t: number, vars: string[]) => {
    const ts = vars.map((_, i) => tf.tensor(g(t, i)));
    opt.applyGradients(Object.fromEntries(vars.map((n, i) => [n, ts[i]])));
    tf.dispose(ts);
  };
  apply(0, [an, bn]);
  apply(1, [an, bn]);
  apply(2, [an]); // b frozen: its state is kept aside, unchanged
  const kept = (await opt.getWeights()).find((w) => w.name === `${bn}/m`)!;
  const bBefore = b.dataSync().slice();
  apply(3, [an, cn]); // c is new
  assert.deepEqual(b.dataSync(), bBefore);
  apply(4, [an, bn, cn]); // b comes back with its moments
  // The same in the core library: for b, steps 1, 2 then step 5 from its kept moments.
  const ref = await adam({ lr: 0.1 }).init({ [bn]: new Float32Array([3, 4]) });
  let s = step(ref, { [bn]: g(0, 1) });
  s = step(s, { [bn]: g(1, 1) });
  const bytes = await saveState(s);
  const mAfter2 = (await readMoments(s)).exp_avg[bn];
  assert.deepEqual(kept.tensor.dataSync(), mAfter2);
  // Steps 3 and 4 did not touch b; at step 5 the optimizer is at t = 5.
  const weights = await opt.getWeights();
  assert.equal(weights[0].tensor.dataSync()[0], 5);
  // c started fresh at step 4: one step from zero moments with t = 4.
  const cm = weights.find((w) => w.name === `${cn}/m`)!.tensor.dataSync();
  const gc3 = g(3, 1), gc4 = g(4, 2);
  for (let j = 0; j < 2; j++) {
    const want = 0.9 * (0.1 * gc3[j]) + 0.1 * gc4[j];
    assert.ok(Math.abs(cm[j] - want) < 1e-6, `${cm[j]} vs ${want}`);
  }
  assert.ok(bytes.length > 0);
  // strict refuses any change, naming the variable, and changes nothing.
  const strict = tfOptimizer(adam(), { strict: true });
  const ga = tf.ones([2]), gb = tf.ones([2]);
  strict.applyGradients({ [an]: ga, [bn]: gb });
  const aBefore = a.dataSync().slice();
  assert.throws(() => strict.applyGradients({ [an]: ga }), (e: Error) => {
    assert.ok(e instanceof RangeError);
    assert.ok(e.message.includes(JSON.stringify(bn)), e.message);
    return true;
  });
  assert.throws(() => strict.applyGradients({ [an]: ga, [bn]: gb, [cn]: gb }), /strict/);
  assert.deepEqual(a.dataSync(), aBefore);
  tf.dispose([ga, gb, ...kept ? [] : [], ...weights.map((w) => w.tensor), kept.tensor]);
  strict.dispose();
  opt.dispose();
  tf.dispose([a, b, c]);
});

Deno.test("tfjs: parameter groups by variable name (no decay on biases)", async () => {
  await useBackend("cpu");
  const model = denseNet(4);
  const opt = tfOptimizer(
    adamw({ lr: 0.1, weightDecay: 0.5, groups: [{ match: /bias$/, weightDecay: 0 }] }),
  );
  const names = model.trainableWeights.map((w) => (w.read() as tf.Variable).name);
  const before = await weightValues(model);
  // Zero gradients: only the decoupled decay moves a weight.
  opt.applyGradients(
    Object.fromEntries(
      model.trainableWeights.map((w) => [(w.read() as tf.Variable).name, tf.zerosLike(w.read())]),
    ),
  );
  const after = await weightValues(model);
  names.forEach((n, i) => {
    if (n.endsWith("bias")) assert.deepEqual(after[i], before[i], n);
    else {
      for (let j = 0; j < after[i].length; j++) {
        assert.equal(after[i][j], Math.fround(before[i][j] * Math.fround(1 - 0.1 * 0.5)), n);
      }
    }
  });
  opt.dispose();
  model.dispose();
});

Deno.test("tfjs: a group that takes none of a step's variables (its layer frozen there) is taken as given", async () => {
  await useBackend("cpu");
  const bodyName = name("body"), headName = name("head");
  const body = tf.variable(tf.tensor([1, 2]), true, bodyName);
  const head = tf.variable(tf.tensor([3, 4]), true, headName);
  // The core library's init refuses a group taking no tensor; a step of the adapter may leave
  // the group's variables out (frozen for a while), so it does not.
  const headOnly = new RegExp(`^${headName}$`);
  const opt = tfOptimizer(adam({ lr: 0.1, groups: [{ match: headOnly, lrScale: 0 }] }));
  const g = tf.tensor([1, 1]);
  opt.applyGradients({ [bodyName]: g }); // the head frozen: the group takes no variable
  opt.applyGradients({ [bodyName]: g, [headName]: g });
  assert.notDeepEqual(Array.from(await body.data()), [1, 2]);
  assert.deepEqual(Array.from(await head.data()), [3, 4]); // lrScale 0: the group's, applied
  tf.dispose([g, body, head]);
  opt.dispose();
});

Deno.test("tfjs: the same variables in another order are those of the state (strict too)", async () => {
  await useBackend("cpu");
  const out: number[][][] = [];
  for (const reorder of [false, true]) {
    const vars = [3, 5].map((n, i) => tf.variable(tf.tensor(randoms(n, i)), true, name(`o${i}`)));
    const opt = tfOptimizer(adam({ lr: 0.1 }), { strict: true });
    for (let t = 0; t < 3; t++) {
      const g = vars.map((v, i) => tf.tensor(randoms(v.size, 9 + i + t)));
      const named = vars.map((v, i) => ({ name: v.name, tensor: g[i] }));
      // Refused before as "not among the variables of the first step" under strict.
      opt.applyGradients(reorder && t > 0 ? named.reverse() : named);
      tf.dispose(g);
    }
    out.push(await Promise.all(vars.map(async (v) => Array.from(await v.data()))));
    opt.dispose();
    tf.dispose(vars);
  }
  assert.deepEqual(out[1], out[0]);
});
