/**
 * After `optimizer.loadState(bytes)`, until a step makes the state, `optimizer.state` is the
 * checkpoint as loaded: a serverless invocation given nothing to train on saves back what it
 * loaded, and the next one loads that and trains on as if it had never been saved (cpu, wasm,
 * webgpu). `setWeights`, a step, another load and `dispose` end it; a refused load keeps it.
 * Its parameters are the checkpoint's, as its TSDoc says: `readParams(optimizer.state)` gives
 * the values saved, not the variables' now, until the next step takes the variables'.
 */
import "@tensorflow/tfjs-backend-webgpu";
import assert from "node:assert/strict";
import { ranger, readParams, saveState, step } from "../../mod.ts";
import { type TfOptimizer, tfOptimizer, type TfOptimizerOptions } from "../../tfjs.ts";
import {
  CPU_BACKENDS,
  seededVars,
  stepWith,
  tf,
  transpose,
  uniqueNames,
  useBackend,
  webgpuTestOptions,
} from "./helpers.ts";

const name = uniqueNames("loaded_state");

/** Options with something saved beside the state: sums mid-accumulation and averages. */
const OPTIONS: TfOptimizerOptions = { gradientAccumulationSteps: 2, ema: true };

function fresh(): TfOptimizer {
  return tfOptimizer(ranger({ lr: 0.05, k: 3 }), OPTIONS);
}

/** The variables' values and a checkpoint of the state after `calls` more calls from `seed`. */
async function trained(opt: TfOptimizer, vars: tf.Variable[], seed: number, calls: number) {
  for (let t = 0; t < calls; t++) stepWith(opt, vars, seed + t);
  const values = await Promise.all(vars.map((v) => v.data()));
  return { values, bytes: await saveState(opt.state!), iterations: opt.iterations };
}

async function loadSaveLoad(backend: string): Promise<void> {
  await useBackend(backend);
  const vars = seededVars(name, 3, 5);
  const source = fresh();
  const bytes = (await trained(source, vars, 1, 5)).bytes; // (2 steps, a call summed)
  source.dispose();
  const at = await Promise.all(vars.map((v) => v.data()));
  const reset = () => vars.forEach((v, i) => v.assign(tf.tensor(at[i], v.shape)));

  // One invocation: load, train.
  const straight = fresh();
  await straight.loadState(bytes);
  const expected = await trained(straight, vars, 10, 5);
  straight.dispose();

  // Another: load, no data, save back; the next loads that and trains.
  reset();
  const idle = fresh();
  await idle.loadState(bytes);
  const loaded = idle.state;
  assert.ok(loaded !== undefined, backend);
  assert.equal(loaded.step, 2, backend);
  assert.equal(idle.iterations, 2, backend);
  assert.equal(idle.accumulatedBatches, 1, backend);
  const probe = fresh();
  assert.equal(idle.backend, probe.backend, backend); // (where the next step runs, not "js")
  probe.dispose();
  const again = await saveState(loaded);
  assert.deepEqual(again, bytes, backend); // (what it loaded, sums and averages too)
  assert.throws(() => step(loaded as never, {}), TypeError, backend); // (the optimizer's)
  idle.dispose();
  await assert.rejects(saveState(loaded), TypeError, backend); // (ended with the optimizer)
  const next = fresh();
  await next.loadState(again);
  assert.deepEqual(await trained(next, vars, 10, 5), expected, backend);
  // A step makes the state: the loaded one ends.
  await next.loadState(again);
  const ended = next.state!;
  stepWith(next, vars, 20);
  assert.notEqual(next.state, ended, backend);
  await assert.rejects(saveState(ended), TypeError, backend);
  next.dispose();
  tf.dispose(vars);
}

for (const backend of CPU_BACKENDS) {
  Deno.test(`tfjs ${backend}: loadState, saveState(optimizer.state) with no step, loadState of that: training goes on as if never saved`, async () => {
    await loadSaveLoad(backend);
  });
}

const sanitize = await webgpuTestOptions();

Deno.test({
  name:
    "tfjs webgpu: loadState, saveState(optimizer.state) with no step, loadState of that: training goes on as if never saved",
  ...sanitize,
  async fn() {
    await loadSaveLoad("webgpu");
  },
});

Deno.test("tfjs: a refused load keeps the state loaded before; setWeights and another load end it", async () => {
  await useBackend("cpu");
  const vars = seededVars(name, 7, 4);
  const source = fresh();
  for (let t = 0; t < 4; t++) stepWith(source, vars, t);
  const bytes = await saveState(source.state!);
  const opt = fresh();
  await opt.loadState(bytes);
  const loaded = opt.state!;
  await assert.rejects(opt.loadState(bytes.subarray(1)));
  assert.equal(opt.state, loaded);
  assert.deepEqual(await saveState(opt.state!), bytes);
  await opt.loadState(bytes); // another load: its own
  assert.notEqual(opt.state, loaded);
  await assert.rejects(saveState(loaded), TypeError);
  const reloaded = opt.state!;
  const weights = await source.getWeights();
  await opt.setWeights(weights);
  assert.equal(opt.state, undefined); // (weights carry no parameters: made by the next step)
  await assert.rejects(saveState(reloaded), TypeError);
  source.dispose();
  opt.dispose();
  tf.dispose(vars);
});

Deno.test("tfjs: after loadState, readParams(optimizer.state) gives the checkpoint's parameters, not the variables'; the next step takes the variables'", async () => {
  await useBackend("cpu");
  const vars = seededVars(name, 7, 4);
  const source = fresh();
  const { values: saved, bytes } = await trained(source, vars, 3, 4);
  source.dispose();
  const other = fresh(); // (the variables move on: another optimizer's step of two calls)
  stepWith(other, vars, 20), stepWith(other, vars, 21);
  other.dispose();
  const now = await Promise.all(vars.map((v) => v.data() as Promise<Float32Array>));
  assert.notDeepEqual(now, saved);
  const opt = fresh();
  await opt.loadState(bytes);
  // (Ranger centralizes: the state holds the kernel [4, 3] transposed, as `state`'s TSDoc says.)
  const held = (
    values: readonly tf.TypedArray[],
  ) => [transpose(values[0] as Float32Array, 4, 3), values[1]];
  const params = await readParams(opt.state!);
  assert.deepEqual(vars.map((v) => params[v.name]), held(saved));
  stepWith(opt, vars, 30), stepWith(opt, vars, 31); // (a step of two calls)
  const after = await readParams(opt.state!);
  const stepped = await Promise.all(vars.map((v) => v.data()));
  assert.deepEqual(vars.map((v) => after[v.name]), held(stepped));
  assert.notDeepEqual(stepped, saved);
  opt.dispose();
  tf.dispose(vars);
});
