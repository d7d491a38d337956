/**
 * Concurrency of the TensorFlow.js adapter under tfjs-layers on tfjs's cpu and wasm backends:
 * `model.fit` (yielding to fast-check's scheduler after each batch), `model.save` with its
 * optimizer into an IO handler whose `save` resolves when the scheduler says (then
 * `tf.loadLayersModel` of what it saved), `getWeights`, `setWeights` and `loadState` of what an
 * earlier call gave, `saveState` of the state and learning rate changes, awaited or not. Every
 * `getWeights` call (model.save's too) gives the state a sequential replay of the steps and
 * loads that took effect has at its call (bits); a load overtaken by a step rejects with the
 * documented TypeError and changes nothing; a saved model loads with the optimizer weights it
 * saved; the final state and variables are the replay's; no tensor is left behind.
 */
import assert from "node:assert/strict";
import fc from "fast-check";
import { adam, lookahead, radam, saveState } from "../../mod.ts";
import { TfOptimizer, tfOptimizer } from "../../tfjs.ts";
import type { NamedTensor } from "../../tfjs/gradients.ts";
import { StatePaths } from "../../tfjs/state_paths.ts";
import { CPU_BACKENDS, data, tf, tfl, useBackend } from "./helpers.ts";
import { checkLoads, errorOf, type Outcome } from "./load_checks.ts";

type Op =
  | { t: "fit"; batches: number; awaited: boolean }
  | { t: "get"; awaited: boolean }
  | { t: "save"; awaited: boolean; reload: boolean }
  | { t: "bytes"; awaited: boolean }
  | { t: "setw"; awaited: boolean }
  | { t: "load"; awaited: boolean }
  | { t: "lr"; lr: number }
  | { t: "yield" };

const awaited = fc.boolean();
const opArb: fc.Arbitrary<Op> = fc.oneof(
  {
    weight: 4,
    arbitrary: fc.record({
      t: fc.constant("fit" as const),
      batches: fc.integer({ min: 1, max: 3 }),
      awaited,
    }),
  },
  { weight: 3, arbitrary: fc.record({ t: fc.constant("get" as const), awaited }) },
  {
    weight: 3,
    arbitrary: fc.record({ t: fc.constant("save" as const), awaited, reload: fc.boolean() }),
  },
  { weight: 2, arbitrary: fc.record({ t: fc.constant("bytes" as const), awaited }) },
  { weight: 2, arbitrary: fc.record({ t: fc.constant("setw" as const), awaited }) },
  { weight: 2, arbitrary: fc.record({ t: fc.constant("load" as const), awaited }) },
  {
    weight: 1,
    arbitrary: fc.record({ t: fc.constant("lr" as const), lr: fc.constantFrom(1e-3, 5e-2) }),
  },
  { weight: 2, arbitrary: fc.constant({ t: "yield" as const }) },
);

const RULES = {
  adam: () => adam({ lr: 1e-2 }),
  radam: () => radam({ lr: 1e-2 }),
  lookahead: () => lookahead(adam({ lr: 1e-2 }), { k: 2 }),
};
type Rule = keyof typeof RULES;
const caseArb = fc.record({
  rule: fc.constantFrom(...(Object.keys(RULES) as Rule[])),
  ops: fc.array(opArb, { minLength: 1, maxLength: 10 }),
});
type Case = { rule: Rule; ops: Op[] };

type Values = [string, tf.TypedArray, number[]][];
type Event =
  | { t: "step"; grads: Values }
  | { t: "get"; id: number }
  | { t: "lr"; lr: number }
  | { t: "load-call"; id: number }
  | { t: "replace"; id?: number };
type LoadInput = { weights: Values } | { bytes: Uint8Array };

function bitsOf(ws: readonly { name: string; tensor: tf.Tensor }[]): [string, number[]][] {
  return ws.map((w) => [w.name, [...new Uint32Array(w.tensor.dataSync().slice().buffer)]]);
}

/** The calls of the optimizer under test, logged where they happen. */
let hooks:
  | {
    opt: TfOptimizer;
    step(grads: Values): void;
    get(p: Promise<NamedTensor[]>): void;
    replace(): void;
  }
  | undefined;
const proto = TfOptimizer.prototype;
const { applyGradients, getWeights } = proto;
proto.applyGradients = function (g) {
  const items = Array.isArray(g) ? g.map((w) => [w.name, w.tensor] as const) : Object.entries(g);
  const grads = items.flatMap((
    [n, t],
  ) => (t ? [[n, t.dataSync().slice(), t.shape] as Values[number]] : []));
  applyGradients.call(this, g);
  if (hooks?.opt === this) hooks.step(grads);
};
proto.getWeights = function () {
  const p = getWeights.call(this);
  if (hooks?.opt === this) hooks.get(p);
  return p;
};
const replace = StatePaths.prototype.replace;
StatePaths.prototype.replace = function (...args: Parameters<typeof replace>) {
  hooks?.replace();
  return replace.apply(this, args);
};

function startLoad(opt: TfOptimizer, input: LoadInput): [Promise<void>, tf.Tensor[]] {
  if ("bytes" in input) return [opt.loadState(input.bytes.slice()), []];
  const ws = input.weights.map(([name, v, shape]) => ({
    name,
    tensor: tf.tensor(v, shape, v instanceof Int32Array ? "int32" : "float32"),
  }));
  return [opt.setWeights(ws), ws.map((w) => w.tensor)];
}

function stepWith(opt: TfOptimizer, grads: Values): void {
  const tensors = grads.map(([n, g, shape]) => [n, tf.tensor(g, shape)] as const);
  opt.applyGradients(Object.fromEntries(tensors));
  tf.dispose(tensors.map(([, t]) => t));
}

/** The optimizer weights in what `model.save` wrote (after the model's own). */
function savedOptimizerBits(artifacts: tf.io.ModelArtifacts, modelWeights: number) {
  const specs = artifacts.weightSpecs!;
  const map = tf.io.decodeWeights(artifacts.weightData!, specs);
  const named = specs.slice(modelWeights).map((s) => ({ name: s.name, tensor: map[s.name] }));
  const bits = bitsOf(named);
  tf.dispose(Object.values(map));
  return bits;
}

async function runConcurrent(c: Case, s: fc.Scheduler) {
  const model = tfl.sequential({ layers: [tfl.layers.dense({ units: 3, inputShape: [4] })] });
  const opt = tfOptimizer(RULES[c.rule]());
  model.compile({ optimizer: opt, loss: "meanSquaredError" });
  const initial: Values = model.trainableWeights.map((w) => {
    const v = w.read() as tf.Variable;
    return [v.name, v.dataSync().slice(), v.shape];
  });
  const { x, y } = data([4], 6, 7);
  const log: Event[] = [];
  const gets = new Map<number, Promise<Outcome>>();
  const weightsGot: Values[] = [];
  const bytesGot: Uint8Array[] = [];
  const loads: { id: number; input: LoadInput; outcome: Promise<Outcome> }[] = [];
  const saved: Promise<Outcome>[] = [];
  const reloads: tf.io.ModelArtifacts[] = [];
  const pending: { t: "replace"; id?: number }[] = [];
  let nextGet = 0, nextLoad = 0;
  hooks = {
    opt,
    step: (grads) => log.push({ t: "step", grads }),
    get: (p) => {
      const id = nextGet++;
      log.push({ t: "get", id });
      gets.set(
        id,
        p.then((ws) => {
          weightsGot.push(ws.map((w) => [w.name, w.tensor.dataSync().slice(), w.tensor.shape]));
          return { value: bitsOf(ws) };
        }, errorOf),
      );
    },
    replace: () => {
      const e: { t: "replace"; id?: number } = { t: "replace" };
      log.push(e);
      pending.push(e);
    },
  };
  const all: Promise<unknown>[] = [];
  let fitting = false;
  const program = async () => {
    for (const op of c.ops) {
      let p: Promise<unknown> | undefined; // (one the scheduler releases)
      let q: Promise<unknown> | undefined; // (one that waits on the scheduler's)
      if (op.t === "lr") {
        opt.learningRate = op.lr;
        log.push({ t: "lr", lr: op.lr });
      } else if (op.t === "yield") await s.schedule(Promise.resolve());
      else if (op.t === "fit") {
        if (fitting) continue; // (tfjs-layers refuses a second fit at once)
        fitting = true;
        q = model.fit(x, y, {
          batchSize: Math.ceil(6 / op.batches),
          epochs: 1,
          shuffle: false,
          verbose: 0,
          callbacks: { onBatchEnd: () => s.schedule(Promise.resolve()) },
        }).finally(() => fitting = false);
      } else if (op.t === "get") p = opt.getWeights();
      else if (op.t === "bytes") {
        const state = opt.state;
        if (state === undefined) continue;
        p = saveState(state).then((b) => void bytesGot.push(b.slice()));
      } else if (op.t === "save") {
        let artifacts: tf.io.ModelArtifacts | undefined;
        const handler = tf.io.withSaveHandler((a) => {
          artifacts = a;
          return s.schedule(Promise.resolve({
            modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: "JSON" as const },
          }));
        });
        const saving = model.save(handler, { includeOptimizer: true }).then(() => {
          if (op.reload) reloads.push(artifacts!);
          return savedOptimizerBits(artifacts!, model.weights.length);
        });
        saved.push(saving.then((value) => ({ value }), errorOf));
        q = saving;
      } else {
        const input: LoadInput | undefined = op.t === "setw"
          ? weightsGot.at(-1) && { weights: weightsGot.at(-1)! }
          : bytesGot.at(-1) && { bytes: bytesGot.at(-1)! };
        if (input === undefined) continue;
        const id = nextLoad++;
        log.push({ t: "load-call", id });
        const [loading, given] = startLoad(opt, input);
        const outcome = loading.then(() => {
          pending.shift()!.id = id; // (the replaces happen in the order the loads resolve)
          return { value: "loaded" };
        }, errorOf);
        outcome.finally(() => tf.dispose(given));
        loads.push({ id, input, outcome });
        p = loading;
      }
      if (p) {
        p.catch(() => {});
        q = s.schedule(p);
      }
      if (q) {
        all.push(q.catch(() => {}));
        if ("awaited" in op && op.awaited) await q.catch(() => {});
      }
    }
  };
  await s.waitFor(program());
  await s.waitFor(Promise.all(all));
  await s.waitAll();
  const final = bitsOf(await opt.getWeights());
  hooks = undefined;
  const loadOutcomes = await Promise.all(loads.map((l) => l.outcome));
  const outcomes = new Map<number, Outcome>();
  for (const [k, v] of gets) outcomes.set(k, await v);
  const savedOutcomes = await Promise.all(saved);
  // (loaded once the program is over: the log is of the optimizer under test alone)
  for (const artifacts of reloads) {
    const loaded = await tfl.loadLayersModel(tf.io.fromMemory(artifacts));
    const again = bitsOf(await loaded.optimizer.getWeights());
    loaded.optimizer.dispose();
    loaded.dispose();
    assert.deepEqual(again, savedOptimizerBits(artifacts, model.weights.length), "model loaded");
  }
  const finalVars = bitsOf(model.trainableWeights.map((w) => ({ name: w.name, tensor: w.read() })));
  opt.dispose();
  model.dispose();
  tf.dispose([x, y]);
  return { log, initial, outcomes, loads, loadOutcomes, savedOutcomes, final, finalVars };
}

async function check(c: Case, s: fc.Scheduler): Promise<void> {
  const tensors = tf.memory().numTensors;
  const run = await runConcurrent(c, s);
  assert.equal(tf.memory().numTensors, tensors, "tensors left behind");
  checkLoads(run);
  const values = new Set<string>();
  for (const o of run.outcomes.values()) values.add(JSON.stringify(o));
  for (const o of run.savedOutcomes) {
    assert.ok("value" in o, `model.save: ${JSON.stringify(o)}`);
    assert.ok(values.has(JSON.stringify(o)), "model.save wrote weights no getWeights gave");
  }
  // The sequential replay of what took effect.
  const vars = tf.tidy(() =>
    run.initial.map(([n, v, shape]) => tf.variable(tf.tensor(v, shape), true, n))
  );
  const opt = tfOptimizer(RULES[c.rule]());
  const inputs = new Map(run.loads.map((l) => [l.id, l.input]));
  for (const e of run.log) {
    if (e.t === "step") stepWith(opt, e.grads);
    else if (e.t === "lr") opt.learningRate = e.lr;
    else if (e.t === "get") {
      const o = run.outcomes.get(e.id)!;
      const ws = await opt.getWeights().then((ws) => ({ value: bitsOf(ws) }), errorOf);
      assert.deepEqual(o, ws, `get ${e.id}`);
    } else if (e.t === "replace" && e.id !== undefined) {
      const [loading, given] = startLoad(opt, inputs.get(e.id)!);
      await loading;
      tf.dispose(given);
    }
  }
  assert.deepEqual(run.final, bitsOf(await opt.getWeights()), "final weights");
  assert.deepEqual(
    run.finalVars.map(([, v]) => v),
    bitsOf(vars.map((v) => ({ name: v.name, tensor: v }))).map(([, v]) => v),
    "final variables",
  );
  opt.dispose();
  tf.dispose(vars);
}

for (const backend of CPU_BACKENDS) {
  Deno.test(`tfjs ${backend} interleavings: model.fit, model.save and loads give the sequential replay's state, nothing leaks`, async () => {
    await useBackend(backend);
    await fc.assert(fc.asyncProperty(caseArb, fc.scheduler(), check), {
      numRuns: 80,
    });
  });
}
