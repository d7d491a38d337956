/**
 * After `optimizer.loadState(bytes)`, until a step, `optimizer.state` is saved under the
 * optimizer's own settings, as a save after the step would be: its optimizer, hyperparameters
 * and learning rate (a `setLearningRate` before the step too), not the checkpoint's. A
 * checkpoint whose tensors are laid out otherwise (other moments, `gc`, states format) gives no
 * state until the step, as after `setWeights`.
 */
import "@tensorflow/tfjs-backend-webgpu";
import assert from "node:assert/strict";
import { adam, adamw, dispose, saveState, sgd, step } from "../../mod.ts";
import { parseSafetensors } from "../../base/safetensors.ts";
import { type TfOptimizer, tfOptimizer } from "../../tfjs.ts";
import {
  CPU_BACKENDS,
  seededVars,
  stepWith,
  tf,
  uniqueNames,
  useBackend,
  webgpuTestOptions,
} from "./helpers.ts";

const name = uniqueNames("loaded_settings");

/** Sums mid-accumulation and averages, saved beside the state. */
const EXTRAS = { gradientAccumulationSteps: 2, ema: true };

/** The settings a checkpoint states (its metadata less the step count), and its tensors. */
async function settingsSaved(opt: TfOptimizer) {
  const file = parseSafetensors(await saveState(opt.state!));
  const { step: _, ...rest } = file.metadata;
  return { ...rest, tensors: [...file.tensors.keys()].sort().join() };
}

/** A checkpoint of adam after a step over `vars` (with `EXTRAS`, and a call summed). */
async function adamBytes(vars: tf.Variable[], options = {}): Promise<Uint8Array> {
  const source = tfOptimizer(adam({ lr: 0.1, ...options }), EXTRAS);
  for (let t = 1; t <= 3; t++) stepWith(source, vars, t);
  const bytes = await saveState(source.state!);
  source.dispose();
  return bytes;
}

async function savedAsAfterStep(backend: string): Promise<void> {
  await useBackend(backend);
  const vars = seededVars(name, 2, 3);
  const bytes = await adamBytes(vars);
  const make = () => tfOptimizer(adamw({ lr: 0.01, weightDecay: 0.3 }), EXTRAS);
  const after = async (set: (o: TfOptimizer) => void) => {
    const stepped = make();
    await stepped.loadState(bytes);
    set(stepped);
    for (let t = 4; t <= 5; t++) stepWith(stepped, vars, t); // (the step, and a call summed)
    const settings = await settingsSaved(stepped);
    stepped.dispose();
    return settings;
  };
  const opt = make();
  await opt.loadState(bytes);
  assert.equal(opt.state!.optimizer, "adamw");
  assert.equal(opt.state!.step, 1);
  assert.deepEqual(await settingsSaved(opt), await after(() => {}));
  const before = opt.state!;
  opt.setLearningRate(0.5);
  assert.deepEqual(await settingsSaved(opt), await after((o) => o.setLearningRate(0.5)));
  // (That of the old rate: ended, in the optimizer's terms.)
  await assert.rejects(saveState(before), /after a loadState, its next step or setLearningRate/);
  const schedule = (t: number) => 0.1 / t;
  opt.learningRate = schedule;
  assert.throws(() => dispose(opt.state!), /optimizer\.dispose\(\)/); // (still the optimizer's)
  assert.throws(() => step(opt.state!, {}), /applyGradients/);
  assert.deepEqual(await settingsSaved(opt), await after((o) => o.learningRate = schedule));
  assert.equal(opt.state!.step, 1);
  opt.dispose();
  tf.dispose(vars);
}

for (const backend of CPU_BACKENDS) {
  Deno.test(`tfjs ${backend}: after loadState, optimizer.state saves the optimizer's settings and learning rate, as a save after a step does`, async () => {
    await savedAsAfterStep(backend);
  });
}

Deno.test({
  name:
    "tfjs webgpu: after loadState, optimizer.state saves the optimizer's settings and learning rate, as a save after a step does",
  ...await webgpuTestOptions(),
  async fn() {
    await savedAsAfterStep("webgpu");
  },
});

Deno.test("tfjs: after a loadState of a checkpoint laid out otherwise, optimizer.state is undefined until the next step", async () => {
  await useBackend("cpu");
  const vars = seededVars(name, 4, 3);
  const cases: [Uint8Array, () => TfOptimizer][] = [
    [await adamBytes(vars, { gc: true }), () => tfOptimizer(adam(), EXTRAS)],
    [await adamBytes(vars), () => tfOptimizer(adam({ gc: true }), EXTRAS)],
  ];
  const plain = tfOptimizer(sgd({ lr: 0.1 }));
  stepWith(plain, vars, 1);
  cases.push([await saveState(plain.state!), () => tfOptimizer(sgd({ lr: 0.1, momentum: 0.9 }))]);
  plain.dispose();
  for (const [bytes, make] of cases) {
    const opt = make();
    await opt.loadState(bytes);
    assert.equal(opt.state, undefined);
    assert.equal(opt.iterations, 1);
    await assert.rejects(saveState(opt.state!), /undefined until its first step/);
    stepWith(opt, vars, 2);
    assert.equal(opt.iterations, 2);
    opt.dispose();
  }
  tf.dispose(vars);
});
