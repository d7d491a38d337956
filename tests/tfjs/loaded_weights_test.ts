/**
 * The weights of a state taken by `loadState`, before a step: `getWeights` lists them in the
 * order it gave before the save (the variables' order, not an 8-bit arena's, which holds small
 * tensors first), and the moments are held once, in the arena of the state loaded (which
 * `optimizer.state` gives until a step), not copied beside it; copied once a step ends it.
 */
import assert from "node:assert/strict";
import { EXP_AVG, EXP_AVG_SQ } from "../../base/arena.ts";
import type { HostBackend } from "../../base/backend.ts";
import { stateInternals } from "../../core/state.ts";
import { adam, dispose, saveState } from "../../mod.ts";
import { tfOptimizer } from "../../tfjs.ts";
import { keptFromCheckpoint } from "../../tfjs/from_checkpoint.ts";
import { compactViews } from "../../tfjs/host_state.ts";
import { KeptStates } from "../../tfjs/kept.ts";
import { tf, uniqueNames, useBackend } from "./helpers.ts";

const name = uniqueNames("loaded_weights");

/** Variables of 5000 (held in 8 bits under states "8bit"), 3 and 10 elements, in that order. */
function variables(): tf.Variable[] {
  return ([[5000], [3], [10]] as const).map((shape, i) =>
    tf.variable(tf.fill([...shape], 0.5 + i), true, name(`v${i}`))
  );
}

/** Two steps of `optimizer` over `vars`. */
function train(optimizer: ReturnType<typeof tfOptimizer>, vars: readonly tf.Variable[]): void {
  for (let t = 0; t < 2; t++) {
    const grads = vars.map((v, i) => tf.fill(v.shape, 0.1 * (t + 1) - 0.05 * i));
    optimizer.applyGradients(Object.fromEntries(vars.map((v, i) => [v.name, grads[i]])));
    tf.dispose(grads);
  }
}

/** The weights' names and values, in the order given. */
async function weights(
  optimizer: ReturnType<typeof tfOptimizer>,
): Promise<[string, tf.TypedArray][]> {
  return (await optimizer.getWeights()).map((w) => [w.name, w.tensor.dataSync().slice()]);
}

for (const states of ["32bit", "8bit"] as const) {
  Deno.test(`tfjs: getWeights after loadState gives the weights in the order it gave before (states ${states})`, async () => {
    await useBackend("cpu");
    const vars = variables();
    const optimizer = tfOptimizer(adam({ lr: 0.01, states }));
    const other = tfOptimizer(adam({ lr: 0.01, states }));
    try {
      train(optimizer, vars);
      const before = await weights(optimizer);
      const bytes = await saveState(optimizer.state!);
      await optimizer.loadState(bytes);
      assert.deepEqual(await weights(optimizer), before);
      await other.loadState(bytes); // (another optimizer: the same)
      assert.deepEqual(await weights(other), before);
    } finally {
      optimizer.dispose();
      other.dispose();
      tf.dispose(vars);
    }
  });
}

Deno.test("tfjs: the state loadState read holds the moments once, and a step leaving a variable out copies its own", async () => {
  await useBackend("cpu");
  const vars = variables();
  const optimizer = tfOptimizer(adam({ lr: 0.01, states: "8bit" }));
  try {
    train(optimizer, vars);
    const bytes = await saveState(optimizer.state!);
    const before = await weights(optimizer);
    const tensors = tf.memory().numTensors, bytesHeld = tf.memory().numBytes;
    await optimizer.loadState(bytes);
    assert.equal(tf.memory().numTensors, tensors);
    assert.equal(tf.memory().numBytes, bytesHeld);
    // A step over the first two: the third's moments, kept aside, are its own, as they were.
    const grads = vars.slice(0, 2).map((v) => tf.onesLike(v));
    optimizer.applyGradients({ [vars[0].name]: grads[0], [vars[1].name]: grads[1] });
    tf.dispose(grads);
    const after = new Map(await weights(optimizer));
    for (const [n, values] of before.filter(([n]) => n.startsWith(vars[2].name))) {
      assert.deepEqual(after.get(n), values, n);
    }
  } finally {
    optimizer.dispose();
    tf.dispose(vars);
  }
});

Deno.test("tfjs: keptFromCheckpoint keeping the state gives views of its arena, which ownBorrowed copies", async () => {
  const optimizer = adam({ states: "8bit" });
  const init = await optimizer.init({
    big: new Float32Array(4096).fill(0.25),
    small: new Float32Array([1, 2]),
  });
  const bytes = await saveState(init);
  const { kept, state } = await keptFromCheckpoint(optimizer.settings, bytes, true);
  const backend = stateInternals(state!).backend as HostBackend;
  const arena = backend.viewSection(EXP_AVG).small.buffer;
  const small = kept.get("small")!, big = kept.get("big")!;
  assert.equal(small.borrowed, true);
  assert.equal(small.sections[EXP_AVG]!.buffer, arena, "a view, not a copy");
  assert.equal(small.sections[EXP_AVG_SQ]!.buffer, arena);
  assert.equal(big.codes![0]!.codes.buffer, compactViews(backend)[0].big.codes.buffer);
  // Without the state: copies.
  const copied = (await keptFromCheckpoint(optimizer.settings, bytes)).kept.get("small")!;
  assert.equal(copied.borrowed, undefined);
  assert.notEqual(copied.sections[EXP_AVG]!.buffer, arena);

  const states = new KeptStates();
  states.replace(kept, 0, 0);
  states.ownBorrowed();
  const owned = new Map([...states.names()].map((n, i) => [n, [...states.values()][i]]));
  for (const [n, k] of owned) {
    assert.equal(k.borrowed, undefined, n);
    for (const s of k.sections) if (s) assert.notEqual(s.buffer, arena, n);
    assert.deepEqual(k.sections, kept.get(n)!.sections, n);
  }
  assert.notEqual(owned.get("big")!.codes![0]!.codes.buffer, big.codes![0]!.codes.buffer);
  assert.deepEqual(owned.get("big")!.codes, big.codes);
  assert.deepEqual(states.names(), ["big", "small"]); // (tensor_order: as given to init)
  dispose(state!);
});

for (const states of ["32bit", "8bit"] as const) {
  Deno.test(`tfjs: a step or getWeights after the memory of the state loadState read was transferred says so, changing nothing (states ${states})`, async () => {
    await useBackend("cpu");
    const vars = variables();
    const optimizer = tfOptimizer(adam({ lr: 0.01, states }));
    const resumed = tfOptimizer(adam({ lr: 0.01, states }));
    const grads = Object.fromEntries(vars.map((v) => [v.name, tf.onesLike(v)]));
    try {
      train(optimizer, vars);
      const bytes = await saveState(optimizer.state!);
      await optimizer.loadState(bytes);
      await resumed.loadState(bytes);
      // (optimizer.state is the state loaded until a step: its params share its arena.)
      const params = optimizer.state!.params as Record<string, Float32Array>;
      structuredClone(params[vars[1].name], {
        transfer: [params[vars[1].name].buffer as ArrayBuffer],
      });
      const values = await Promise.all(vars.map((v) => v.data()));
      const detached = { name: "TypeError", message: /memory was detached/ };
      assert.throws(() => optimizer.applyGradients(grads), detached);
      assert.deepEqual(await Promise.all(vars.map((v) => v.data())), values);
      assert.equal(optimizer.iterations, 2);
      await assert.rejects(optimizer.getWeights(), detached);
      // Loaded again, it trains on as an optimizer that loaded it once.
      await optimizer.loadState(bytes);
      optimizer.applyGradients(grads);
      const after = await weights(optimizer);
      for (const v of vars) v.assign(tf.tensor(values[vars.indexOf(v)], v.shape));
      resumed.applyGradients(grads);
      assert.deepEqual(after, await weights(resumed));
    } finally {
      optimizer.dispose();
      resumed.dispose();
      tf.dispose([...vars, ...Object.values(grads)]);
    }
  });
}
