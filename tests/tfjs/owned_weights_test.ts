/**
 * The tensors getWeights gives are the optimizer's, as tfjs's own optimizers' weights are (its
 * variables): valid until a later getWeights has given its own, or the optimizer's dispose,
 * which dispose them; one set held, whatever the number of calls. A caller's own dispose of them
 * is harmless; a refused getWeights leaks nothing and leaves the last set valid; a clone is the
 * caller's; another optimizer takes them with setWeights. Calls at once dispose none of each
 * other's sets: two `model.save` with the optimizer under way both write it. On tfjs's cpu and
 * wasm backends.
 */
import assert from "node:assert/strict";
import { radam } from "../../mod.ts";
import { tfOptimizer } from "../../tfjs.ts";
import {
  checkReadDuringReplace,
  CPU_BACKENDS,
  data,
  denseNet,
  randoms,
  tf,
  tfl,
  uniqueNames,
  useBackend,
} from "./helpers.ts";

const name = uniqueNames("owned");

/** An optimizer (nonFinite: "propagate") 2 steps in over two new variables. */
function trained() {
  const vars = [
    tf.variable(tf.tensor(randoms(12, 1), [3, 4]), true, name("w")),
    tf.variable(
      tf.tensor(randoms(4, 2)),
      true,
      name("b"),
    ),
  ];
  const opt = tfOptimizer(radam({ lr: 1e-2, nonFinite: "propagate" }));
  const step = (bad = false) => {
    const grads = vars.map((v, i) => {
      const g = randoms(v.size, 10 + i);
      if (bad) g[1] = NaN;
      return tf.tensor(g, v.shape);
    });
    opt.applyGradients(Object.fromEntries(vars.map((v, i) => [v.name, grads[i]])));
    tf.dispose(grads);
  };
  step();
  step();
  return { vars, opt, step };
}

/** The values of weights, by name. */
function valuesOf(weights: { name: string; tensor: tf.Tensor }[]): [string, number[]][] {
  return weights.map((w) => [w.name, [...w.tensor.dataSync()]]);
}

for (const backend of CPU_BACKENDS) {
  Deno.test(`tfjs ${backend}: getWeights' tensors are the optimizer's: disposed at the next getWeights and at dispose, one set held`, async () => {
    await useBackend(backend);
    const { vars, opt } = trained();
    const base = tf.memory().numTensors;
    const first = await opt.getWeights();
    assert.deepEqual(first.map((w) => w.name), [
      "iter",
      ...["m", "v"].flatMap((s) => vars.map((v) => `${v.name}/${s}`)),
    ]);
    assert.equal(tf.memory().numTensors, base + first.length);
    const kept = first.map((w) => ({ name: w.name, tensor: tf.clone(w.tensor) }));
    const values = valuesOf(first);
    const second = await opt.getWeights();
    assert.ok(first.every((w) => w.tensor.isDisposed), "the first set, at the second call");
    assert.deepEqual(valuesOf(kept), values, "a clone is the caller's");
    assert.deepEqual(valuesOf(second), values);
    for (let i = 0; i < 20; i++) await opt.getWeights();
    assert.equal(tf.memory().numTensors, base + first.length + kept.length, "one set held");
    // Disposing them oneself is harmless: tfjs's dispose of a disposed tensor does nothing.
    const mine = await opt.getWeights();
    tf.dispose(mine.map((w) => w.tensor));
    mine[0].tensor.dispose();
    const last = await opt.getWeights();
    assert.equal(tf.memory().numTensors, base + last.length + kept.length);
    // Two calls at once: neither disposes the other's set, which the next call disposes.
    const [early, late] = await Promise.all([opt.getWeights(), opt.getWeights()]);
    assert.ok(!early.some((w) => w.tensor.isDisposed) && !late.some((w) => w.tensor.isDisposed));
    assert.deepEqual(valuesOf(early), values);
    assert.deepEqual(valuesOf(late), values);
    await opt.getWeights();
    assert.ok([...early, ...late].every((w) => w.tensor.isDisposed), "at the next call");
    // Another optimizer takes them (setWeights copies them), and gives the same.
    const other = tfOptimizer(radam({ lr: 1e-2 }));
    await other.setWeights(await opt.getWeights());
    assert.deepEqual(valuesOf(await other.getWeights()), values);
    other.dispose();
    opt.dispose();
    assert.equal(tf.memory().numTensors, base + kept.length, "disposed with the optimizer");
    tf.dispose([...vars, ...kept.map((w) => w.tensor)]);
  });

  Deno.test(`tfjs ${backend}: a refused getWeights leaks nothing and leaves the last set valid; one disposed meanwhile leaks nothing`, async () => {
    await useBackend(backend);
    const { vars, opt, step } = trained();
    const base = tf.memory().numTensors;
    const held = await opt.getWeights();
    const values = valuesOf(held);
    step(true); // NaN reaches the moments (nonFinite: "propagate"): getWeights refuses them
    for (let i = 0; i < 3; i++) {
      await assert.rejects(() => opt.getWeights(), RangeError);
      assert.equal(tf.memory().numTensors, base + held.length, "nothing left by the refusal");
    }
    // (Held past a later getWeights, against the contract: still what it was, as none was given.)
    assert.deepEqual(valuesOf(held), values);
    opt.dispose();
    assert.ok(held.every((w) => w.tensor.isDisposed));
    assert.equal(tf.memory().numTensors, base);
    // An optimizer disposed while its getWeights reads the state: the call is refused, and the
    // tensors it made are disposed with the rest.
    const again = trained();
    const before = tf.memory().numTensors;
    const pending = again.opt.getWeights();
    again.opt.dispose();
    await assert.rejects(pending, { name: "TypeError", message: /was disposed/ });
    assert.equal(tf.memory().numTensors, before);
    tf.dispose([...vars, ...again.vars]);
  });

  Deno.test(`tfjs ${backend}: setWeights of getWeights' tensors takes them all while a later getWeights disposes them`, async () => {
    // setWeights read the tensors one after another, an await apart: a getWeights that gave its
    // set meanwhile disposed the rest, and setWeights threw "Tensor is disposed."
    await useBackend(backend);
    const { vars, opt } = trained();
    const weights = await opt.getWeights();
    const values = valuesOf(weights);
    const other = tfOptimizer(radam({ lr: 1e-2 }));
    const [, later] = await Promise.all([other.setWeights(weights), opt.getWeights()]);
    assert.ok(weights.every((w) => w.tensor.isDisposed), "disposed by the later call");
    assert.deepEqual(valuesOf(later), values);
    assert.deepEqual(valuesOf(await other.getWeights()), values);
    other.dispose();
    opt.dispose();
    // The same of moments in 8 bits (codes and scales).
    const big = tf.variable(tf.tensor(randoms(4096, 3)), true, name("big"));
    const compact = tfOptimizer(radam({ lr: 1e-2, states: "8bit" }));
    const grad = tf.tensor(randoms(4096, 4));
    compact.applyGradients({ [big.name]: grad });
    const codes = await compact.getWeights();
    assert.ok(codes.some((w) => w.name.endsWith(".codes")));
    const codeValues = valuesOf(codes);
    const taker = tfOptimizer(radam({ lr: 1e-2, states: "8bit" }));
    await Promise.all([taker.setWeights(codes), compact.getWeights()]);
    assert.deepEqual(valuesOf(await taker.getWeights()), codeValues);
    taker.dispose();
    compact.dispose();
    tf.dispose([...vars, big, grad]);
  });

  Deno.test(`tfjs ${backend}: a getWeights under way when setWeights or loadState replaces the state gives the state at its call`, async () => {
    await useBackend(backend);
    const v = tf.variable(tf.tensor(randoms(4099, 5)), true, name("replaced"));
    const grad = tf.tensor(randoms(4099, 6));
    // The replace's kept-aside moments were given too (each name twice).
    await checkReadDuringReplace(() => radam({ lr: 0.1, states: "8bit" }), v, grad);
    tf.dispose([v, grad]);
  });
}

for (const backend of CPU_BACKENDS) {
  Deno.test(`tfjs ${backend}: two model.save with includeOptimizer at once both write the optimizer's weights, which load back`, async () => {
    await useBackend(backend);
    const model = denseNet(4);
    model.compile({ optimizer: tfOptimizer(radam({ lr: 1e-2 })), loss: "meanSquaredError" });
    const { x, y } = data([6], 8, 3);
    await model.fit(x, y, { epochs: 1, batchSize: 4, shuffle: false, verbose: 0 });
    const expected = (await model.optimizer.getWeights()).map((w) => [w.name, w.tensor.dataSync()]);
    const saved: tf.io.ModelArtifacts[] = [];
    const handler = tf.io.withSaveHandler((artifacts) => {
      saved.push(artifacts);
      return Promise.resolve({
        modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: "JSON" },
      });
    });
    // (e.g. a save each epoch not awaited, and one at the end): each reads the set its own call gave
    await Promise.all([1, 2].map(() => model.save(handler, { includeOptimizer: true })));
    for (const artifacts of saved) {
      const loaded = await tfl.loadLayersModel(tf.io.fromMemory(artifacts));
      const got = (await loaded.optimizer.getWeights()).map((w) => [w.name, w.tensor.dataSync()]);
      assert.deepEqual(got, expected);
      loaded.optimizer.dispose();
      loaded.dispose();
    }
    model.optimizer.dispose();
    model.dispose();
    tf.dispose([x, y]);
  });
}
