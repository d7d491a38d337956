/**
 * `optimizer.state` is the adapter's: `step(optimizer.state, …)` consumed it (on cpu and webgpu)
 * and `dispose(optimizer.state)` ended it, so the optimizer's next step failed with advice for a
 * state of one's own ("use the state that step() returned", "start again from init"). Both are
 * now TypeErrors that say which call to use, nothing changed; reading and saving it still work.
 * Its `dispose()` method (a tfjs tensor's way) names the optimizer's `dispose()`, not the function
 * `dispose(state)` that refuses it.
 * The webgpu case needs an adapter, unless RADAM_NO_GPU=1 says the machine has none.
 */
import "@tensorflow/tfjs-backend-webgpu";
import assert from "node:assert/strict";
import { adam, dispose, readMoments, readParams, saveState, step } from "../../mod.ts";
import { tfOptimizer } from "../../tfjs.ts";
import { CPU_BACKENDS, tf, uniqueNames, useBackend, webgpuTestOptions } from "./helpers.ts";

const named = uniqueNames("held");
const sanitize = await webgpuTestOptions();

/** On `backend`: step and dispose of optimizer.state are refused, and the optimizer goes on. */
async function refusesHeldState(backend: string): Promise<void> {
  await useBackend(backend);
  const w = tf.variable(tf.tensor1d([1, -2, 3]), true, named("w"));
  const optimizer = tfOptimizer(adam({ lr: 0.1 }));
  const grad = tf.ones([3]);
  optimizer.applyGradients({ [w.name]: grad });
  const state = optimizer.state!;
  const before = [...await w.data()];
  assert.throws(() => step(state, { [w.name]: new Float32Array(3).fill(1) }), {
    name: "TypeError",
    message: "This optimizer state is a TensorFlow.js optimizer's (optimizer.state of " +
      "tfOptimizer): step it through the optimizer's applyGradients (model.fit, " +
      "optimizer.minimize), not with step()",
  });
  assert.throws(() => dispose(state), {
    name: "TypeError",
    message: "This optimizer state is a TensorFlow.js optimizer's (optimizer.state of " +
      "tfOptimizer): free it with optimizer.dispose(), not dispose(state)",
  });
  // Its dispose() method, as a tfjs tensor's, names the optimizer's, not dispose(state), which
  // is refused for it.
  assert.throws(() => (state as unknown as { dispose(): void }).dispose(), {
    name: "TypeError",
    message: "A state has no dispose() method, and this one is a TensorFlow.js optimizer's " +
      "(optimizer.state of tfOptimizer): free it with optimizer.dispose()",
  });
  // Stored or sent by structured clone (Deno KV, postMessage), it would be {}: refused, saying
  // to store its checkpoint, and to resume through the optimizer's own loadState (the library's
  // loadState(bytes) makes a state of one's own, which the optimizer would not train on).
  const saysTheOptimizers = (e: Error) => {
    assert.match(e.message, /const bytes = await saveState\(optimizer\.state\), a Uint8Array/);
    assert.match(e.message, /resume with await optimizer\.loadState\(bytes\);/);
    return true;
  };
  assert.throws(() => structuredClone(state), (e: Error) => {
    assert.equal(e.name, "DataCloneError");
    assert.match(e.message, /^An optimizer state cannot be cloned /);
    return saysTheOptimizers(e);
  });
  const kv = await Deno.openKv(":memory:");
  await assert.rejects(kv.set(["state"], state), TypeError);
  await assert.rejects(kv.set(["state"], state), saysTheOptimizers);
  kv.close();
  assert.throws(() => JSON.stringify({ state }), (e: Error) => {
    assert.match(e.message, /^An optimizer state is not JSON /);
    return saysTheOptimizers(e);
  });
  // Nothing changed: the state still reads, saves and steps through the optimizer.
  assert.deepEqual([...(await readParams(state))[w.name]], before);
  assert.ok((await saveState(state)).length > 0);
  optimizer.applyGradients({ [w.name]: grad });
  assert.equal(optimizer.iterations, 2);
  assert.notDeepEqual([...await w.data()], before);
  optimizer.dispose();
  tf.dispose([w, grad]);
}

for (const backend of CPU_BACKENDS) {
  Deno.test(`tfjs (${backend}): step and dispose of optimizer.state say to use the optimizer's calls`, () =>
    refusesHeldState(backend));
}

Deno.test({
  name: "tfjs (webgpu): step and dispose of optimizer.state say to use the optimizer's calls",
  ...sanitize,
  fn: () => refusesHeldState("webgpu"),
});

Deno.test("a state of one's own still steps and disposes", async () => {
  let state = await adam({ lr: 0.1 }).init({ w: new Float32Array([1, 2]) });
  state = step(state, { w: new Float32Array([1, 1]) });
  assert.equal(state.step, 1);
  dispose(state);
});

/** The rejection of `call` of optimizer.state once the adapter replaced or disposed it. */
function endedByAdapter(call: string) {
  return (e: unknown) => {
    assert.ok(e instanceof TypeError, String(e));
    assert.equal(
      e.message,
      "This optimizer state was a TensorFlow.js optimizer's (optimizer.state of tfOptimizer), " +
        "which replaced (setWeights, loadState; after a loadState, its next step or setLearningRate) " +
        `or disposed it before ${call} read it: save the ` +
        "optimizer's state with await optimizer.getWeights() (as model.save with " +
        "includeOptimizer does), or await saveState(optimizer.state) before setWeights, " +
        "loadState or dispose",
    );
    return true;
  };
}

/**
 * A saveState of optimizer.state still under way (on webgpu, where it first waits for the GPU)
 * when the adapter replaces the state (`setWeights`, `loadState`) or disposes it, and a read or
 * save of the state it replaced: the rejection says so in the adapter's terms, not with the
 * core's "disposed … start again from init".
 */
async function readingWhileEnded(backend: string, end: "setWeights" | "loadState" | "dispose") {
  await useBackend(backend);
  const w = tf.variable(tf.tensor1d([1, -2, 3]), true, named("w"));
  const optimizer = tfOptimizer(adam({ lr: 0.1 }));
  const grad = tf.ones([3]);
  optimizer.applyGradients({ [w.name]: grad });
  const bytes = await saveState(optimizer.state!);
  const weights = await optimizer.getWeights();
  const state = optimizer.state!;
  const saving = saveState(state);
  if (end === "setWeights") await optimizer.setWeights(weights);
  else if (end === "loadState") await optimizer.loadState(bytes);
  else optimizer.dispose();
  if (backend === "webgpu") await assert.rejects(saving, endedByAdapter("saveState"));
  else assert.ok((await saving).length > 0); // (the CPU reads it at the call)
  await assert.rejects(saveState(state), endedByAdapter("saveState"));
  await assert.rejects(readParams(state), endedByAdapter("readParams"));
  await assert.rejects(readMoments(state), endedByAdapter("readMoments"));
  optimizer.dispose();
  tf.dispose([w, grad]);
}

for (const end of ["setWeights", "loadState", "dispose"] as const) {
  for (const backend of CPU_BACKENDS) {
    Deno.test(`tfjs (${backend}): a save or read of optimizer.state after ${end} ended it says so in the adapter's terms`, () =>
      readingWhileEnded(backend, end));
  }
  Deno.test({
    name:
      `tfjs (webgpu): a saveState of optimizer.state under way when ${end} ends it says so in the adapter's terms`,
    ...sanitize,
    fn: () => readingWhileEnded("webgpu", end),
  });
}
