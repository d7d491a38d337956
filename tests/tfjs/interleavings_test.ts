/**
 * Concurrency of the TensorFlow.js adapter on tfjs's cpu, wasm and webgpu backends: programs of
 * steps, `getWeights`, `saveState` of its state, `setWeights` and `loadState` of what an earlier
 * call gave, learning rate changes and a fit-like loop yielding between its steps, their Promises
 * awaited or not and released in orders fast-check's scheduler draws, the optimizer disposed or
 * not at the end with calls under way. Each `getWeights` and `saveState` gives the state as a
 * sequential replay of the calls that took effect has it at its call (bits, bytes); a load a step
 * overtook rejects with the documented TypeError and changes nothing, and one that resolved had
 * no step taken while it was under way; a call refused says why (a TypeError: disposed, a
 * learning rate on webgpu, a saveState overtaken there); every call settles; the final state
 * and variables are the replay's; no tensor is left behind.
 */
import assert from "node:assert/strict";
import fc from "fast-check";
import { adam, lookahead, radam, saveState, sgd } from "../../mod.ts";
import { type TfOptimizer, tfOptimizer } from "../../tfjs.ts";
import { StatePaths } from "../../tfjs/state_paths.ts";
import "@tensorflow/tfjs-backend-webgpu";
import { checkLoads, errorOf, type Outcome } from "./load_checks.ts";
import {
  CPU_BACKENDS,
  randoms,
  tf,
  uniqueNames,
  useBackend,
  webgpuTestOptions,
} from "./helpers.ts";

type Op =
  | { t: "step"; seed: number }
  | { t: "fit"; seeds: number[]; awaited: boolean }
  | { t: "get"; awaited: boolean }
  | { t: "save"; awaited: boolean }
  | { t: "setw"; awaited: boolean }
  | { t: "load"; awaited: boolean }
  | { t: "lr"; lr: number }
  | { t: "yield" };

const seed = fc.integer({ min: 1, max: 1 << 30 });
const opArb: fc.Arbitrary<Op> = fc.oneof(
  { weight: 4, arbitrary: fc.record({ t: fc.constant("step" as const), seed }) },
  {
    weight: 2,
    arbitrary: fc.record({
      t: fc.constant("fit" as const),
      seeds: fc.array(seed, { minLength: 1, maxLength: 3 }),
      awaited: fc.boolean(),
    }),
  },
  ...(["get", "save", "setw", "load"] as const).map((t) => ({
    weight: 3,
    arbitrary: fc.record({ t: fc.constant(t), awaited: fc.boolean() }) as fc.Arbitrary<Op>,
  })),
  {
    weight: 1,
    arbitrary: fc.record({ t: fc.constant("lr" as const), lr: fc.constantFrom(1e-3, 5e-2) }),
  },
  { weight: 2, arbitrary: fc.constant({ t: "yield" as const }) },
);

const RULES = {
  adam: () => adam({ lr: 1e-2 }),
  radam: () => radam({ lr: 1e-2 }),
  sgd: () => sgd({ lr: 1e-2, momentum: 0.9 }),
  lookahead: () => lookahead(adam({ lr: 1e-2 }), { k: 2 }),
};
type Rule = keyof typeof RULES;

interface Case {
  rule: Rule;
  lengths: number[];
  ops: Op[];
  /** Whether the optimizer is disposed once the program is over, its calls still under way. */
  dispose: boolean;
}

const caseArb: fc.Arbitrary<Case> = fc.record({
  rule: fc.constantFrom(...(Object.keys(RULES) as Rule[])),
  lengths: fc.array(fc.integer({ min: 1, max: 12 }), { minLength: 1, maxLength: 3 }),
  ops: fc.array(opArb, { minLength: 1, maxLength: 12 }),
  dispose: fc.boolean(),
});

/** What the program did, in the order it took effect. */
type Event =
  | { t: "step"; grads: Float32Array[] }
  | { t: "get"; id: number }
  | { t: "save"; id: number }
  | { t: "lr"; lr: number }
  | { t: "load-call"; id: number }
  | { t: "dispose" }
  | { t: "replace"; id?: number };

/** What a load was given: the weights a getWeights gave, or the bytes a saveState gave. */
type LoadInput = { weights: [string, tf.TypedArray][] } | { bytes: Uint8Array };

/** Starts `setWeights` or `loadState` of `input`; gives it and the tensors made for it. */
function startLoad(opt: TfOptimizer, input: LoadInput): [Promise<void>, tf.Tensor[]] {
  if ("bytes" in input) return [opt.loadState(input.bytes.slice()), []];
  const ws = input.weights.map(([name, data]) => ({
    name,
    tensor: data instanceof Int32Array ? tf.tensor(data, undefined, "int32") : tf.tensor(data),
  }));
  return [opt.setWeights(ws), ws.map((w) => w.tensor)];
}

/** A saveState overtaken by a step on webgpu (core/checkpoint.ts). */
const OVERTAKEN = "The state was stepped before saveState() read it";

/** The error of a call under way when the optimizer was disposed (tfjs/optimizer.ts). */
const DISPOSED = "This TensorFlow.js optimizer was disposed";

/**
 * A saveState of a state on the GPU that a load replaced meanwhile, or dispose disposed, in the
 * adapter's terms (core/held.ts, tfjs/_hints.ts).
 */
const REPLACED = "This optimizer state was a TensorFlow.js optimizer's (optimizer.state of " +
  "tfOptimizer), which replaced (setWeights, loadState; after a loadState, its next step or " +
  "setLearningRate) or disposed it before saveState read it";

function readWeights(ws: { name: string; tensor: tf.Tensor }[]): [string, number[]][] {
  return ws.map((w) => [w.name, [...new Uint32Array(w.tensor.dataSync().slice().buffer)]]);
}

/** The replaces of the optimizer's state, logged where they happen (StatePaths.replace). */
let onReplace: (() => void) | undefined;
const replace = StatePaths.prototype.replace;
StatePaths.prototype.replace = function (...args: Parameters<typeof replace>) {
  onReplace?.();
  return replace.apply(this, args);
};

const name = uniqueNames("interleave");

function gradsOf(lengths: number[], seed: number): Float32Array[] {
  return lengths.map((n, i) => randoms(n, seed + i));
}

function stepWith(opt: TfOptimizer, vars: tf.Variable[], grads: Float32Array[]): void {
  const tensors = grads.map((g) => tf.tensor1d(g));
  try {
    opt.applyGradients(Object.fromEntries(vars.map((v, i) => [v.name, tensors[i]])));
  } finally {
    tf.dispose(tensors);
  }
}

/** Runs `c` under `s`; gives its log, the outcomes of its reads and its loads' outcomes. */
async function runConcurrent(c: Case, names: string[], s: fc.Scheduler) {
  const vars = variablesOf(c, names);
  const opt = tfOptimizer(RULES[c.rule]());
  const log: Event[] = [];
  const refusedLr: unknown[] = [];
  const reads = new Map<number, Promise<Outcome>>();
  const weightsGot: [string, tf.TypedArray][][] = [];
  const bytesGot: Uint8Array[] = [];
  const loads: { id: number; input: LoadInput; outcome: Promise<Outcome> }[] = [];
  const pendingReplaces: { t: "replace"; id?: number }[] = [];
  onReplace = () => {
    const e: { t: "replace"; id?: number } = { t: "replace" };
    log.push(e);
    pendingReplaces.push(e);
  };
  const all: Promise<unknown>[] = [];
  let id = 0;
  const step = (seed: number) => {
    const grads = gradsOf(c.lengths, seed);
    stepWith(opt, vars, grads);
    log.push({ t: "step", grads });
  };
  const program = async () => {
    for (const op of c.ops) {
      const n = id++;
      let p: Promise<unknown> | undefined;
      if (op.t === "step") step(op.seed);
      else if (op.t === "lr") {
        try {
          opt.learningRate = op.lr;
          log.push({ t: "lr", lr: op.lr });
        } catch (e) {
          refusedLr.push(e); // (on webgpu once stepped: documented, nothing changed)
        }
      } else if (op.t === "yield") await s.schedule(Promise.resolve());
      else if (op.t === "fit") {
        // (its Promise waits on the scheduler's, so it is not one the scheduler releases)
        const fitting = (async () => {
          for (const seed of op.seeds) {
            await s.schedule(Promise.resolve()); // (as model.fit yields between batches)
            step(seed);
          }
        })();
        const settled = fitting.catch((e) => void refusedLr.push(e)); // (a step once disposed)
        all.push(settled);
        if (op.awaited) await settled;
      } else if (op.t === "get") {
        log.push({ t: "get", id: n });
        const got = opt.getWeights().then((ws) => {
          // (read at once: calls at once dispose none of each other's sets)
          const copy = ws.map((w) =>
            [w.name, w.tensor.dataSync().slice()] as [string, tf.TypedArray]
          );
          weightsGot.push(copy);
          return readWeights(ws);
        });
        p = got;
        reads.set(n, got.then((value) => ({ value }), errorOf));
      } else if (op.t === "save") {
        log.push({ t: "save", id: n });
        const state = opt.state;
        const got = (async () => {
          if (state === undefined) throw new TypeError("no state");
          const bytes = await saveState(state);
          bytesGot.push(bytes.slice());
          return [...bytes];
        })();
        p = got;
        reads.set(n, got.then((value) => ({ value }), errorOf));
      } else if (op.t === "setw" || op.t === "load") {
        const input: LoadInput | undefined = op.t === "setw"
          ? weightsGot.at(-1) && { weights: weightsGot.at(-1)! }
          : bytesGot.at(-1) && { bytes: bytesGot.at(-1)! };
        if (input === undefined) continue;
        log.push({ t: "load-call", id: n });
        const [loading, given] = startLoad(opt, input);
        const outcome = loading.then(() => {
          // (the replaces happen in the order of the loads' resolutions)
          pendingReplaces.shift()!.id = n;
          return { value: "loaded" };
        }, errorOf);
        outcome.finally(() => tf.dispose(given));
        loads.push({ id: n, input, outcome });
        p = loading;
      }
      if (p) {
        p.catch(() => {});
        const released = s.schedule(p);
        all.push(released.catch(() => {}));
        if ("awaited" in op && op.awaited) await released.catch(() => {});
      }
    }
  };
  await s.waitFor(program());
  if (c.dispose) {
    opt.dispose();
    log.push({ t: "dispose" });
  }
  await s.waitFor(Promise.all(all));
  await s.waitAll();
  const loadOutcomes = await Promise.all(loads.map((l) => l.outcome));
  const final = c.dispose ? undefined : readWeights(await opt.getWeights());
  const finalVars = await Promise.all(vars.map(async (v) => [...await v.data()]));
  onReplace = undefined;
  opt.dispose();
  tf.dispose(vars);
  const outcomes = new Map<number, Outcome>();
  for (const [k, v] of reads) outcomes.set(k, await v);
  return { log, refusedLr, outcomes, loads, loadOutcomes, final, finalVars, weightsGot, bytesGot };
}

export async function check(c: Case, s: fc.Scheduler): Promise<void> {
  const names = c.lengths.map((_, i) => name(`w${i}`));
  const tensors = tf.memory().numTensors;
  const run = await runConcurrent(c, names, s);
  assert.equal(tf.memory().numTensors, tensors, "tensors left behind");
  // Every load either took effect (a replace logged) or was overtaken by a step.
  checkLoads(run, c.dispose ? DISPOSED : undefined);
  // The sequential replay of what took effect.
  const vars = variablesOf(c, names);
  const opt = tfOptimizer(RULES[c.rule]());
  const inputs = new Map(run.loads.map((l) => [l.id, l.input]));
  for (const e of run.log) {
    if (e.t === "dispose") break;
    if (e.t === "step") stepWith(opt, vars, e.grads);
    else if (e.t === "lr") opt.learningRate = e.lr;
    else if (e.t === "get" || e.t === "save") {
      let got: Outcome;
      try {
        if (e.t === "get") got = { value: readWeights(await opt.getWeights()) };
        else {
          if (opt.state === undefined) throw new TypeError("no state");
          got = { value: [...await saveState(opt.state)] };
        }
      } catch (error) {
        got = errorOf(error);
      }
      const o = run.outcomes.get(e.id)!;
      const at = run.log.indexOf(e);
      if ("error" in o && o.error.startsWith(`TypeError: ${OVERTAKEN}`)) {
        // (documented on webgpu: the state stepped before a saveState not awaited read it)
        assert.ok(run.log.slice(at).some((l) => l.t === "step"), `${o.error}, with no step`);
      } else if ("error" in o && o.error.startsWith(`TypeError: ${DISPOSED}`)) {
        assert.ok(c.dispose, o.error); // (a read under way when the optimizer was disposed)
      } else if ("error" in o && o.error.startsWith(`TypeError: ${REPLACED}`)) {
        // (on webgpu: a load replaced, or dispose disposed, the state being read on the GPU)
        assert.ok(tf.getBackend() === "webgpu", o.error);
        const after = run.log.slice(at).some((l) => l.t === "replace" || l.t === "dispose");
        assert.ok(after, `${o.error}, neither replaced nor disposed`);
      } else assert.deepEqual(o, got, `${e.t} ${e.id}`);
    } else if (e.t === "replace" && e.id !== undefined) {
      const [loading, given] = startLoad(opt, inputs.get(e.id)!);
      await loading;
      tf.dispose(given);
    }
  }
  if (!c.dispose) {
    assert.deepEqual(run.final, readWeights(await opt.getWeights()), "final weights");
  }
  const finalVars = await Promise.all(vars.map(async (v) => [...await v.data()]));
  assert.deepEqual(run.finalVars, finalVars, "final variables");
  for (const e of run.refusedLr) {
    // (lr on webgpu once stepped, documented; a step of the loop once disposed)
    assert.ok(e instanceof TypeError, String(e));
    const disposed = c.dispose && e.message.startsWith(DISPOSED);
    assert.ok(tf.getBackend() === "webgpu" || disposed, String(e));
  }
  opt.dispose();
  tf.dispose(vars);
}

for (const backend of CPU_BACKENDS) {
  Deno.test(`tfjs ${backend} interleavings: every read is the sequential replay's, loads overtaken refuse, nothing leaks`, async () => {
    await useBackend(backend);
    await fc.assert(fc.asyncProperty(caseArb, fc.scheduler(), check), {
      numRuns: 150,
    });
  });
}

const sanitize = await webgpuTestOptions();

Deno.test({
  name:
    "tfjs webgpu interleavings: every read is the sequential replay's, loads overtaken refuse, nothing leaks",
  ...sanitize,
  async fn() {
    await useBackend("webgpu");
    await fc.assert(fc.asyncProperty(caseArb, fc.scheduler(), check), {
      numRuns: 20, // (llvmpipe is slow)
    });
  },
});

function variablesOf(c: Case, names: string[]): tf.Variable[] {
  return tf.tidy(() => c.lengths.map((n, i) => tf.variable(tf.fill([n], 0.5 + i), true, names[i])));
}
